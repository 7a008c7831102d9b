//! The socketmap resolver end to end on testnet: real DNS packets, real HTTPS policy fetches,
//! real TCP and unix socket clients speaking netstrings.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mta_sts_net::{Net, NetConfig};
use mta_sts_sender::resolver::{
    Clock, DaneReply, ListenAddr, Listener, PolicyResolver, ResolverConfig, UnixSocket, ZoneConfig,
    bind, serve, serve_on,
};
use mta_sts_store::{Location, Store};
use mta_sts_testnet::{DnsHandle, HttpBehaviour, HttpsHandle, Lab, Site, Zone};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

const ENFORCE: &str = "version: STSv1\nmode: enforce\nmx: mx1.enforce.example\nmx: *.mx.enforce.example\nmax_age: 86400\n";
const TESTING: &str = "version: STSv1\nmode: testing\nmx: mx.testing.example\nmax_age: 86400\n";
const START: i64 = 1_800_000_000;

/// The DANE domains of the lab: each has an MX host, an MTA-STS policy in `enforce` mode that
/// covers it (so that without DANE the answer would be `OK secure`) unless it is DANE-only.
/// (label, zone signed, TLSA record at _25._tcp of the MX host, MTA-STS)
const DANE_DOMAINS: &[(&str, bool, bool, bool)] = &[
    ("dane", true, true, true),
    ("unsigned-tlsa", false, true, true),
    ("signed-no-tlsa", true, false, true),
    ("dane-only", true, true, false),
];
/// A DANE-EE SHA-256 association (usage 3, selector 1, matching 1): what most DANE MX hosts
/// publish. Its value does not matter to the resolver, only that a validated record exists.
const TLSA_DATA: [u8; 32] = [0xab; 32];

fn dane_policy(label: &str) -> String {
    format!("version: STSv1\nmode: enforce\nmx: mx1.{label}.example\nmax_age: 86400\n")
}

/// The zone of DANE domain `label` as [`DANE_DOMAINS`] describes it; `signed` and `tlsa` as
/// given, so a test can change them.
fn dane_zone(label: &str, signed: bool, tlsa: bool, sts: bool, web: &HttpsHandle) -> Zone {
    let mut zone = Zone::new(&format!("{label}.example"))
        .mx(10, &format!("mx1.{label}.example"))
        .a("mx1", "127.0.0.9".parse().unwrap());
    if tlsa {
        zone = zone.tlsa("_25._tcp.mx1", 3, 1, 1, &TLSA_DATA);
    }
    if sts {
        zone = zone
            .txt("_mta-sts", &["v=STSv1; id=d1"])
            .address("mta-sts", web.ip());
    }
    if signed { zone.signed() } else { zone }
}

/// A lab with two policy domains, a domain without MTA-STS and one whose DNS fails, and a
/// resolver on a loopback port.
struct Setup {
    _lab: Lab,
    dns: DnsHandle,
    web: HttpsHandle,
    net: NetConfig,
    resolver: PolicyResolver,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

/// A resolver serving on a loopback port.
struct Running {
    resolver: PolicyResolver,
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

/// A TCP listener on a free loopback port, and its address.
fn loopback_listener() -> (Listener, SocketAddr) {
    let listener = bind(
        &ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()),
        &UnixSocket::default(),
    )
    .unwrap();
    let ListenAddr::Tcp(addr) = listener.addr() else {
        unreachable!()
    };
    (listener, addr)
}

async fn start(resolver: PolicyResolver) -> Running {
    let (listener, addr) = loopback_listener();
    let (stop, stopped) = oneshot::channel();
    let server = tokio::spawn(serve(resolver.clone(), vec![listener], async {
        let _ = stopped.await;
    }));
    Running {
        resolver,
        addr,
        stop,
        server,
    }
}

fn enforce_zone(id: &str, web: &HttpsHandle) -> Zone {
    Zone::new("enforce.example")
        .txt("_mta-sts", &[&format!("v=STSv1; id={id}")])
        .address("mta-sts", web.ip())
}

async fn setup(config: ResolverConfig) -> Setup {
    setup_with_store(config, None).await
}

async fn setup_with_store(config: ResolverConfig, store: Option<Arc<Store>>) -> Setup {
    let lab = Lab::new();
    let mut sites = vec![
        Site::policy("mta-sts.enforce.example", ENFORCE),
        Site::policy("mta-sts.testing.example", TESTING),
    ];
    for (label, ..) in DANE_DOMAINS {
        sites.push(Site::policy(
            &format!("mta-sts.{label}.example"),
            &dane_policy(label),
        ));
    }
    let web = lab.https(sites).await.unwrap();
    let mut zones = vec![
        enforce_zone("1", &web),
        Zone::new("testing.example")
            .txt("_mta-sts", &["v=STSv1; id=t1"])
            .address("mta-sts", web.ip()),
        Zone::new("plain.example").mx(10, "mx.plain.example"),
        Zone::new("broken.example").servfail("_mta-sts"),
    ];
    for &(label, signed, tlsa, sts) in DANE_DOMAINS {
        zones.push(dane_zone(label, signed, tlsa, sts, &web));
    }
    let dns = lab.dns(zones).await.unwrap();
    let mut net = NetConfig {
        resolver: Some(dns.addr()),
        https_port: lab.https_port().unwrap(),
        timeout: Duration::from_secs(2),
        fetch_timeout: Duration::from_secs(5),
        ..NetConfig::default()
    };
    net.extra_roots.push(lab.ca().root_der().clone());
    let resolver = match store {
        None => PolicyResolver::new(
            Net::new(net.clone()).unwrap(),
            Arc::new(config),
            Clock::manual(START),
        ),
        Some(store) => PolicyResolver::with_store(
            Net::new(net.clone()).unwrap(),
            Arc::new(config),
            Clock::manual(START),
            store,
            true,
        )
        .await
        .unwrap(),
    };
    let running = start(resolver).await;
    Setup {
        _lab: lab,
        dns,
        web,
        net,
        resolver: running.resolver,
        addr: running.addr,
        stop: Some(running.stop),
        server: running.server,
    }
}

fn netstring(payload: &str) -> Vec<u8> {
    format!("{}:{payload},", payload.len()).into_bytes()
}

/// Reads one netstring reply.
async fn read_reply(stream: &mut (impl AsyncReadExt + Unpin)) -> String {
    let mut length = Vec::new();
    loop {
        let byte = stream.read_u8().await.unwrap();
        if byte == b':' {
            break;
        }
        length.push(byte);
    }
    let length: usize = String::from_utf8(length).unwrap().parse().unwrap();
    let mut payload = vec![0; length + 1];
    stream.read_exact(&mut payload).await.unwrap();
    assert_eq!(payload.pop(), Some(b','));
    String::from_utf8(payload).unwrap()
}

async fn ask(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&netstring(request)).await.unwrap();
    read_reply(&mut stream).await
}

const ENFORCE_REPLY: &str =
    "OK secure match=mx1.enforce.example:.mx.enforce.example servername=hostname";

#[tokio::test]
async fn enforce_policy_answers_secure_with_the_patterns() {
    let s = setup(ResolverConfig::default()).await;
    assert_eq!(ask(s.addr, "postfix enforce.example").await, ENFORCE_REPLY);
}

#[tokio::test]
async fn every_key_form_reaches_the_same_policy() {
    let s = setup(ResolverConfig::default()).await;
    for key in [
        "enforce.example",
        "[enforce.example]",
        "[enforce.example]:25",
        "enforce.example:25",
        "Enforce.Example.",
    ] {
        assert_eq!(
            ask(s.addr, &format!("postfix {key}")).await,
            ENFORCE_REPLY,
            "{key}"
        );
    }
    // One lookup served them all.
    assert_eq!(s.web.requests().len(), 1);
}

#[tokio::test]
async fn parent_domains_ip_literals_and_domains_without_policy_are_notfound() {
    let s = setup(ResolverConfig::default()).await;
    for key in [
        ".enforce.example",
        "[192.0.2.1]",
        "plain.example",
        "nonexistent.example",
    ] {
        assert_eq!(
            ask(s.addr, &format!("postfix {key}")).await,
            "NOTFOUND ",
            "{key}"
        );
    }
}

#[tokio::test]
async fn testing_is_notfound_unless_the_zone_is_strict() {
    let mut config = ResolverConfig::default();
    config.zones.insert(
        "strict".into(),
        ZoneConfig {
            strict_testing: true,
            require_sni: false,
            ..ZoneConfig::default()
        },
    );
    let s = setup(config).await;
    assert_eq!(ask(s.addr, "postfix testing.example").await, "NOTFOUND ");
    assert_eq!(
        ask(s.addr, "strict testing.example").await,
        "OK secure match=mx.testing.example"
    );
}

#[tokio::test]
async fn dns_failure_is_notfound_or_temp_in_a_fail_closed_zone() {
    let mut config = ResolverConfig::default();
    config.zones.insert(
        "closed".into(),
        ZoneConfig {
            fail_closed: true,
            ..ZoneConfig::default()
        },
    );
    let s = setup(config).await;
    assert_eq!(ask(s.addr, "postfix broken.example").await, "NOTFOUND ");
    let reply = ask(s.addr, "closed broken.example").await;
    assert!(reply.starts_with("TEMP TXT lookup failed"), "{reply}");
    // No TXT record is not a failure: no TEMP for it.
    assert_eq!(ask(s.addr, "closed plain.example").await, "NOTFOUND ");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let s = setup(ResolverConfig::default()).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let keys = [
        "enforce.example",
        "plain.example",
        "testing.example",
        "enforce.example",
    ];
    let mut batch = Vec::new();
    for key in keys {
        batch.extend(netstring(&format!("postfix {key}")));
    }
    stream.write_all(&batch).await.unwrap();
    let mut replies = Vec::new();
    for _ in keys {
        replies.push(read_reply(&mut stream).await);
    }
    assert_eq!(
        replies,
        [ENFORCE_REPLY, "NOTFOUND ", "NOTFOUND ", ENFORCE_REPLY]
    );
}

#[tokio::test]
async fn malformed_input_closes_only_that_connection() {
    let s = setup(ResolverConfig::default()).await;
    let mut good = TcpStream::connect(s.addr).await.unwrap();
    good.write_all(&netstring("postfix plain.example"))
        .await
        .unwrap();
    assert_eq!(read_reply(&mut good).await, "NOTFOUND ");
    for bad in [&b"abc:"[..], b"5:hello!", b"99999:"] {
        let mut stream = TcpStream::connect(s.addr).await.unwrap();
        // A good request before the bad bytes is still answered.
        let mut bytes = netstring("postfix plain.example");
        bytes.extend_from_slice(bad);
        stream.write_all(&bytes).await.unwrap();
        assert_eq!(read_reply(&mut stream).await, "NOTFOUND ");
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
            .await
            .expect("the server closes the connection");
        assert!(read.is_ok_and(|n| n == 0), "{bad:?}");
    }
    good.write_all(&netstring("postfix enforce.example"))
        .await
        .unwrap();
    assert_eq!(read_reply(&mut good).await, ENFORCE_REPLY);
}

#[tokio::test]
async fn request_over_the_size_limit_closes_the_connection() {
    let s = setup(ResolverConfig::default()).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(&netstring(&format!("postfix {}", "a".repeat(2000))))
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = stream.read_to_end(&mut rest).await;
    // Closed without an answer (a reset is as good as an end of stream here).
    assert!(read.is_err() || rest.is_empty(), "{rest:?}");
}

#[tokio::test]
async fn unix_socket_gets_its_mode_and_answers() {
    let s = setup(ResolverConfig::default()).await;
    let dir = std::env::temp_dir().join(format!("mta-sts-resolver-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("resolver.sock");
    let listener = bind(
        &ListenAddr::Unix(path.clone()),
        &UnixSocket {
            mode: Some("0660".into()),
            ..UnixSocket::default()
        },
    )
    .unwrap();
    assert!(matches!(listener, Listener::Unix(..)));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o660);
    }
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(s.resolver.clone(), vec![listener], async {
        let _ = stopped.await;
    }));
    let mut stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    stream
        .write_all(&netstring("postfix enforce.example"))
        .await
        .unwrap();
    assert_eq!(read_reply(&mut stream).await, ENFORCE_REPLY);
    drop(stream);
    let _ = stop.send(());
    server.await.unwrap();
    assert!(!path.exists(), "the socket file is removed at shutdown");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn shutdown_lets_an_open_connection_finish_its_request() {
    let mut s = setup(ResolverConfig::default()).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(&netstring("postfix plain.example"))
        .await
        .unwrap();
    assert_eq!(read_reply(&mut stream).await, "NOTFOUND ");
    // Half a request, then the shutdown, then the rest: it is still answered.
    let request = netstring("postfix enforce.example");
    let (head, tail) = request.split_at(10);
    stream.write_all(head).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = s.stop.take().unwrap().send(());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(s.addr).await.is_err(),
        "no new connections once shutting down"
    );
    stream.write_all(tail).await.unwrap();
    assert_eq!(read_reply(&mut stream).await, ENFORCE_REPLY);
    // With nothing pending, the server closes the connection and stops.
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).await.unwrap(), 0);
    tokio::time::timeout(Duration::from_secs(5), s.server)
        .await
        .unwrap()
        .unwrap();
}

// The cache, as RFC 8461 §3.3 and §5.1 ask.

async fn settle() {
    // Background re-checks run in their own tasks; give them time to land.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn fetch_failure_keeps_the_cached_policy() {
    let s = setup(ResolverConfig::default()).await;
    assert_eq!(ask(s.addr, "postfix enforce.example").await, ENFORCE_REPLY);
    policy_host_answers(&s.web, 500);
    // A new id forces a fetch, which fails.
    s.dns.set_zone(enforce_zone("2", &s.web));
    s.resolver.clock().advance(3600);
    assert_eq!(ask(s.addr, "postfix enforce.example").await, ENFORCE_REPLY);
    settle().await;
    assert_eq!(s.web.requests().len(), 2, "the new id was fetched");
    assert_eq!(ask(s.addr, "postfix enforce.example").await, ENFORCE_REPLY);
}

#[tokio::test]
async fn txt_removal_keeps_the_cached_policy_until_it_expires() {
    let s = setup(ResolverConfig::default()).await;
    assert_eq!(ask(s.addr, "postfix enforce.example").await, ENFORCE_REPLY);
    s.dns
        .set_zone(Zone::new("enforce.example").address("mta-sts", s.web.ip()));
    s.resolver.clock().advance(3600);
    assert_eq!(ask(s.addr, "postfix enforce.example").await, ENFORCE_REPLY);
    settle().await;
    s.resolver.clock().advance(3600);
    assert_eq!(ask(s.addr, "postfix enforce.example").await, ENFORCE_REPLY);
    settle().await;
    // max_age is 86400 from the last confirmation, made at the start.
    s.resolver.clock().advance(86400 - 7200);
    assert_eq!(ask(s.addr, "postfix enforce.example").await, "NOTFOUND ");
}

#[tokio::test]
async fn changed_id_refetches_the_policy() {
    let s = setup(ResolverConfig::default()).await;
    assert_eq!(ask(s.addr, "postfix enforce.example").await, ENFORCE_REPLY);
    s.web
        .set_site(Site::policy(
            "mta-sts.enforce.example",
            "version: STSv1\nmode: enforce\nmx: new.enforce.example\nmax_age: 86400\n",
        ))
        .unwrap();
    // Same id: the cached policy is kept, even past the check interval.
    s.resolver.clock().advance(120);
    assert_eq!(ask(s.addr, "postfix enforce.example").await, ENFORCE_REPLY);
    settle().await;
    assert_eq!(s.web.requests().len(), 1);
    s.dns.set_zone(enforce_zone("2", &s.web));
    s.resolver.clock().advance(120);
    ask(s.addr, "postfix enforce.example").await;
    settle().await;
    assert_eq!(
        ask(s.addr, "postfix enforce.example").await,
        "OK secure match=new.enforce.example servername=hostname"
    );
    assert_eq!(s.web.requests().len(), 2);
}

#[tokio::test]
async fn expired_policy_is_dropped_when_it_cannot_be_refreshed() {
    let s = setup(ResolverConfig::default()).await;
    assert_eq!(ask(s.addr, "postfix enforce.example").await, ENFORCE_REPLY);
    s.dns
        .set_zone(Zone::new("enforce.example").servfail("_mta-sts"));
    s.resolver.clock().advance(86400);
    assert_eq!(ask(s.addr, "postfix enforce.example").await, "NOTFOUND ");
}

#[tokio::test]
async fn confirmed_id_extends_the_policy_past_its_first_max_age() {
    let s = setup(ResolverConfig::default()).await;
    assert_eq!(ask(s.addr, "postfix enforce.example").await, ENFORCE_REPLY);
    s.resolver.clock().advance(80_000);
    assert_eq!(ask(s.addr, "postfix enforce.example").await, ENFORCE_REPLY);
    settle().await;
    s.resolver.clock().advance(80_000);
    assert_eq!(ask(s.addr, "postfix enforce.example").await, ENFORCE_REPLY);
    assert_eq!(s.web.requests().len(), 1, "the unchanged id needs no fetch");
}

#[tokio::test]
async fn failed_lookup_is_not_retried_within_five_minutes() {
    let s = setup(ResolverConfig::default()).await;
    let txt_queries = || {
        s.dns
            .queries()
            .iter()
            .filter(|(name, _)| name.to_string().starts_with("_mta-sts.broken"))
            .count()
    };
    assert_eq!(ask(s.addr, "postfix broken.example").await, "NOTFOUND ");
    let after_first = txt_queries();
    assert!(after_first > 0);
    s.resolver.clock().advance(299);
    assert_eq!(ask(s.addr, "postfix broken.example").await, "NOTFOUND ");
    assert_eq!(txt_queries(), after_first);
    s.resolver.clock().advance(1);
    assert_eq!(ask(s.addr, "postfix broken.example").await, "NOTFOUND ");
    assert!(txt_queries() > after_first);
}

// The cache in the store, proactive refresh and purge.

async fn open_store(dir: &std::path::Path) -> Arc<Store> {
    Arc::new(
        Store::open(&Location::DataDirectory(dir.to_owned()))
            .await
            .unwrap(),
    )
}

async fn stored_setup(dir: &std::path::Path) -> Setup {
    setup_with_store(ResolverConfig::default(), Some(open_store(dir).await)).await
}

/// Makes the policy host of enforce.example answer every request with `status`.
fn policy_host_answers(web: &HttpsHandle, status: u16) {
    web.set_site(Site::new(
        "mta-sts.enforce.example",
        HttpBehaviour::Status(status),
    ))
    .unwrap();
}

/// Stops a resolver and closes its store, as the daemon does at SIGTERM.
async fn stop(
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
    resolver: PolicyResolver,
) {
    let _ = stop.send(());
    server.await.unwrap();
    let store = Arc::clone(resolver.store().unwrap());
    drop(resolver);
    Arc::try_unwrap(store).unwrap().close().await;
}

#[tokio::test]
async fn restart_keeps_the_cached_policy() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = stored_setup(dir.path()).await;
    assert_eq!(ask(s.addr, "postfix enforce.example").await, ENFORCE_REPLY);
    stop(s.stop.take().unwrap(), s.server, s.resolver).await;
    // The network now says nothing useful: only the store knows the policy.
    s.dns
        .set_zone(Zone::new("enforce.example").servfail("_mta-sts"));
    policy_host_answers(&s.web, 500);
    let clock = Clock::manual(START + 3600);
    let resolver = PolicyResolver::with_store(
        Net::new(s.net.clone()).unwrap(),
        Arc::new(ResolverConfig::default()),
        clock,
        open_store(dir.path()).await,
        true,
    )
    .await
    .unwrap();
    assert_eq!(resolver.cache().len(), 1, "loaded at start");
    let running = start(resolver).await;
    assert_eq!(
        ask(running.addr, "postfix enforce.example").await,
        ENFORCE_REPLY
    );
    assert_eq!(
        s.web.requests().len(),
        1,
        "fetched once, before the restart"
    );
    // It still expires max_age after its last confirmation, restart or not.
    running.resolver.clock().advance(86400 - 3600);
    assert_eq!(
        ask(running.addr, "postfix enforce.example").await,
        "NOTFOUND "
    );
    stop(running.stop, running.server, running.resolver).await;
}

#[tokio::test]
async fn resolvers_sharing_a_store_share_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let s = stored_setup(dir.path()).await;
    assert_eq!(ask(s.addr, "postfix enforce.example").await, ENFORCE_REPLY);
    policy_host_answers(&s.web, 500);
    // A second resolver on the same store, started after the first fetched: it reads the
    // entry from the store when asked, without a fetch of its own.
    let second = PolicyResolver::with_store(
        Net::new(s.net.clone()).unwrap(),
        Arc::new(ResolverConfig::default()),
        Clock::manual(START),
        Arc::clone(s.resolver.store().unwrap()),
        true,
    )
    .await
    .unwrap();
    second.cache().clear();
    let running = start(second).await;
    assert_eq!(
        ask(running.addr, "postfix enforce.example").await,
        ENFORCE_REPLY
    );
    assert_eq!(s.web.requests().len(), 1);
}

#[tokio::test]
async fn purge_drops_the_policy_in_a_running_resolver() {
    let dir = tempfile::tempdir().unwrap();
    let s = stored_setup(dir.path()).await;
    assert_eq!(ask(s.addr, "postfix enforce.example").await, ENFORCE_REPLY);
    assert_eq!(ask(s.addr, "postfix testing.example").await, "NOTFOUND ");
    // The domain moved to another policy host that has not got the policy yet.
    policy_host_answers(&s.web, 404);
    let store = Arc::clone(s.resolver.store().unwrap());
    assert_eq!(
        store.purge_policies(Some("enforce.example")).await.unwrap(),
        1
    );
    assert_eq!(s.resolver.maintain().await.purged, 1);
    assert!(
        s.resolver.cache().get("testing.example").is_some(),
        "only the domain purged"
    );
    // Nothing cached: the domain is looked up again, and without a policy it is NOTFOUND.
    assert_eq!(ask(s.addr, "postfix enforce.example").await, "NOTFOUND ");
    assert_eq!(s.web.requests().len(), 3);
    assert_eq!(store.purge_policies(None).await.unwrap(), 2);
    s.resolver.sync_purges().await.unwrap();
    assert!(s.resolver.cache().is_empty());
    assert!(store.policy_entries().await.unwrap().is_empty());
}

#[tokio::test]
async fn policies_are_refreshed_before_they_expire_without_mail() {
    let s = setup(ResolverConfig::default()).await;
    assert_eq!(ask(s.addr, "postfix enforce.example").await, ENFORCE_REPLY);
    let before = s.resolver.cache().get("enforce.example").unwrap();
    // Within the refresh interval nothing is due.
    s.resolver.clock().advance(600);
    assert_eq!(s.resolver.refresh_due().await, 0);
    // Past it (and its jitter, at most a tenth), the policy is confirmed without a request:
    // the id is unchanged, so there is no fetch, and the expiry moves on.
    s.resolver.clock().advance(3600 + 360 - 600);
    assert_eq!(s.resolver.refresh_due().await, 1);
    let after = s.resolver.cache().get("enforce.example").unwrap();
    let (before, after) = (
        before.policy.as_ref().unwrap(),
        after.policy.as_ref().unwrap(),
    );
    assert_eq!(after.expires_at(), before.expires_at() + 3600 + 360);
    assert_eq!(s.web.requests().len(), 1);
    assert_eq!(s.resolver.refresh_due().await, 0, "confirmed just now");
    // A refresh that fails keeps the policy, and is not tried again within five minutes.
    s.dns
        .set_zone(Zone::new("enforce.example").servfail("_mta-sts"));
    s.resolver.clock().advance(4000);
    assert_eq!(s.resolver.refresh_due().await, 1);
    s.resolver.clock().advance(299);
    assert_eq!(s.resolver.refresh_due().await, 0);
    s.resolver.clock().advance(1);
    assert_eq!(s.resolver.refresh_due().await, 1);
    assert_eq!(ask(s.addr, "postfix enforce.example").await, ENFORCE_REPLY);
}

#[tokio::test]
async fn entries_without_a_policy_are_evicted_once_a_lookup_is_due() {
    let s = setup(ResolverConfig::default()).await;
    assert_eq!(ask(s.addr, "postfix plain.example").await, "NOTFOUND ");
    assert_eq!(ask(s.addr, "postfix enforce.example").await, ENFORCE_REPLY);
    assert_eq!(s.resolver.evict(), 0, "the NOTFOUND answer is still fresh");
    s.resolver.clock().advance(60);
    assert_eq!(s.resolver.evict(), 1);
    assert!(s.resolver.cache().get("plain.example").is_none());
    assert!(s.resolver.cache().get("enforce.example").is_some());
}

// DANE first (RFC 8461 §2): the testnet DNS server stands in for a validating resolver and
// sets the AD bit on answers from signed zones.

fn secure_reply(label: &str) -> String {
    format!("OK secure match=mx1.{label}.example servername=hostname")
}

#[tokio::test]
async fn mx_hosts_with_validated_tlsa_records_get_dane_not_secure() {
    let s = setup(ResolverConfig::default()).await;
    assert_eq!(ask(s.addr, "postfix dane.example").await, "OK dane");
    assert_eq!(ask(s.addr, "postfix dane-only.example").await, "OK dane");
    let decision = s
        .resolver
        .decide("dane.example", s.resolver.config().zone("postfix"))
        .await;
    assert!(
        decision
            .reason
            .contains("TLSA records for mx1.dane.example"),
        "{}",
        decision.reason
    );
}

#[tokio::test]
async fn tlsa_records_without_dnssec_do_not_count() {
    let s = setup(ResolverConfig::default()).await;
    // Unsigned TLSA records are ignored, as Postfix ignores them: MTA-STS applies.
    assert_eq!(
        ask(s.addr, "postfix unsigned-tlsa.example").await,
        secure_reply("unsigned-tlsa")
    );
    // A signed zone without TLSA records is no DANE either.
    assert_eq!(
        ask(s.addr, "postfix signed-no-tlsa.example").await,
        secure_reply("signed-no-tlsa")
    );
}

#[tokio::test]
async fn a_zone_can_leave_dane_to_postfix() {
    let mut config = ResolverConfig::default();
    config.zones.insert(
        "postfix-dane".into(),
        ZoneConfig {
            dane: DaneReply::Notfound,
            ..ZoneConfig::default()
        },
    );
    let s = setup(config).await;
    assert_eq!(ask(s.addr, "postfix-dane dane.example").await, "NOTFOUND ");
    // Domains without DANE are answered as in any zone.
    assert_eq!(
        ask(s.addr, "postfix-dane signed-no-tlsa.example").await,
        secure_reply("signed-no-tlsa")
    );
}

#[tokio::test]
async fn dane_published_later_replaces_mta_sts_at_the_next_check() {
    let s = setup(ResolverConfig::default()).await;
    assert_eq!(
        ask(s.addr, "postfix signed-no-tlsa.example").await,
        secure_reply("signed-no-tlsa")
    );
    s.dns
        .set_zone(dane_zone("signed-no-tlsa", true, true, true, &s.web));
    s.resolver.clock().advance(3600);
    // The valid policy is served while DNS is asked again in the background...
    ask(s.addr, "postfix signed-no-tlsa.example").await;
    settle().await;
    // ...and then DANE comes first.
    assert_eq!(
        ask(s.addr, "postfix signed-no-tlsa.example").await,
        "OK dane"
    );
}

#[tokio::test]
async fn dane_is_kept_when_dnssec_lookups_fail() {
    let s = setup(ResolverConfig::default()).await;
    assert_eq!(ask(s.addr, "postfix dane.example").await, "OK dane");
    s.dns.set_zone(
        dane_zone("dane", true, true, true, &s.web)
            .servfail("@")
            .servfail("_25._tcp.mx1"),
    );
    s.resolver.clock().advance(3600);
    ask(s.addr, "postfix dane.example").await;
    settle().await;
    // A failed lookup never turns a DANE domain into an MTA-STS one.
    assert_eq!(ask(s.addr, "postfix dane.example").await, "OK dane");
}

#[tokio::test]
async fn restart_looks_at_dane_before_answering_from_the_stored_policy() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = stored_setup(dir.path()).await;
    assert_eq!(
        ask(s.addr, "postfix signed-no-tlsa.example").await,
        secure_reply("signed-no-tlsa")
    );
    stop(s.stop.take().unwrap(), s.server, s.resolver).await;
    // While the resolver was down, the domain published TLSA records.
    s.dns
        .set_zone(dane_zone("signed-no-tlsa", true, true, true, &s.web));
    let resolver = PolicyResolver::with_store(
        Net::new(s.net.clone()).unwrap(),
        Arc::new(ResolverConfig::default()),
        Clock::manual(START + 10),
        open_store(dir.path()).await,
        true,
    )
    .await
    .unwrap();
    let running = start(resolver).await;
    // The stored policy is still valid, but the first answer after the restart is DANE.
    assert_eq!(
        ask(running.addr, "postfix signed-no-tlsa.example").await,
        "OK dane"
    );
    stop(running.stop, running.server, running.resolver).await;
}

/// Two single-threaded runtimes on threads of their own, as `mta-sts resolver` runs its
/// connections; they end when the returned senders are dropped.
fn worker_runtimes() -> (Vec<tokio::runtime::Handle>, Vec<oneshot::Sender<()>>) {
    (0..2)
        .map(|_| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            std::thread::spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            });
            (handle, stop)
        })
        .unzip()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_on_worker_runtimes_answer_in_order_and_finish_at_shutdown() {
    let s = setup(ResolverConfig::default()).await;
    let (listener, addr) = loopback_listener();
    let (workers, _keep) = worker_runtimes();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_on(
        s.resolver.clone(),
        vec![listener],
        async {
            let _ = stopped.await;
        },
        workers,
    ));
    // Two connections, one per worker; the first request of each is a lookup (made on the
    // runtime of serve_on), then pipelined requests answered from the cache, in order.
    let mut streams = Vec::new();
    for _ in 0..2 {
        streams.push(TcpStream::connect(addr).await.unwrap());
    }
    for stream in &mut streams {
        let mut pipelined = netstring("postfix enforce.example");
        pipelined.extend(netstring("postfix [192.0.2.1]"));
        pipelined.extend(netstring("postfix ENFORCE.example."));
        pipelined.extend(netstring("postfix plain.example"));
        stream.write_all(&pipelined).await.unwrap();
    }
    for stream in &mut streams {
        assert_eq!(read_reply(stream).await, ENFORCE_REPLY);
        assert_eq!(read_reply(stream).await, "NOTFOUND ");
        assert_eq!(read_reply(stream).await, ENFORCE_REPLY);
        assert_eq!(read_reply(stream).await, "NOTFOUND ");
    }
    // Half a request, then the shutdown, then the rest: it is still answered.
    let request = netstring("postfix enforce.example");
    let (head, tail) = request.split_at(10);
    let stream = &mut streams[1];
    stream.write_all(head).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stop.send(());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no new connections once shutting down"
    );
    stream.write_all(tail).await.unwrap();
    assert_eq!(read_reply(stream).await, ENFORCE_REPLY);
    for stream in &mut streams {
        let mut rest = Vec::new();
        assert_eq!(stream.read_to_end(&mut rest).await.unwrap(), 0);
    }
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
}
