//! `mta-sts resolver`, `resolver purge` and `query` as processes, with the command lines of
//! issue 12, against the loopback lab: the cache in `--data-dir` survives a restart, a purge
//! reaches the running resolver, `query` says what is answered and why.

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mta_sts_testnet::{DnsHandle, HttpBehaviour, HttpsHandle, Lab, Site, Zone, next_loopback_ip};
use support::run_beside_lab as run;

const ENFORCE: &str = "version: STSv1\nmode: enforce\nmx: mx1.enforce.example\nmx: *.mx.enforce.example\nmax_age: 86400\n";
const ENFORCE_REPLY: &str =
    "OK secure match=mx1.enforce.example:.mx.enforce.example servername=hostname";

struct Setup {
    lab: Lab,
    dns: DnsHandle,
    web: HttpsHandle,
    dir: PathBuf,
    ca_file: PathBuf,
}

async fn setup(name: &str) -> Setup {
    let lab = Lab::new();
    let web = lab
        .https([Site::policy("mta-sts.enforce.example", ENFORCE)])
        .await
        .unwrap();
    let dns = lab.dns([enforce_zone(&web)]).await.unwrap();
    let dir = std::env::temp_dir().join(format!(
        "mta-sts-resolver-cli-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, lab.ca().root_pem()).unwrap();
    Setup {
        lab,
        dns,
        web,
        dir,
        ca_file,
    }
}

fn enforce_zone(web: &HttpsHandle) -> Zone {
    Zone::new("enforce.example")
        .txt("_mta-sts", &["v=STSv1; id=1"])
        .address("mta-sts", web.ip())
}

impl Setup {
    fn data_dir(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// `--data-dir DIR --ca-file PEM --resolver IP:PORT --https-port N`.
    fn args(&self) -> Vec<String> {
        vec![
            "--data-dir".into(),
            self.data_dir(),
            "--ca-file".into(),
            self.ca_file.display().to_string(),
            "--resolver".into(),
            self.dns.addr().to_string(),
            "--https-port".into(),
            self.lab.https_port().unwrap().to_string(),
        ]
    }

    /// Breaks DNS and the policy host: from now on only the cache knows the policy.
    fn break_network(&self) {
        self.dns
            .set_zone(Zone::new("enforce.example").servfail("_mta-sts"));
        self.web
            .set_site(Site::new(
                "mta-sts.enforce.example",
                HttpBehaviour::Status(500),
            ))
            .unwrap();
    }
}

/// A running `mta-sts resolver`, stopped on drop.
struct Resolver {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Resolver {
    fn start(listen: SocketAddr, args: &[String], log: &Path) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_mta-sts"))
            .args(["resolver", "--listen", &listen.to_string()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let resolver = Self {
            child,
            addr: listen,
            log: log.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(listen).is_err() {
            assert!(Instant::now() < deadline, "no listener: {}", resolver.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        resolver
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asks one request on a connection of its own (blocking: call it off the runtime).
fn ask_blocking(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(stream, "{}:{request},", request.len()).unwrap();
    let mut reply = Vec::new();
    let mut byte = [0];
    loop {
        stream.read_exact(&mut byte).unwrap();
        reply.push(byte[0]);
        if let Some(text) = std::str::from_utf8(&reply)
            .ok()
            .and_then(|t| t.split_once(':'))
        {
            let (length, rest) = text;
            if rest.len() == length.parse::<usize>().unwrap() + 1 {
                assert!(rest.ends_with(','));
                return rest[..rest.len() - 1].to_owned();
            }
        }
    }
}

async fn ask(addr: SocketAddr, request: &str) -> String {
    let request = request.to_owned();
    tokio::task::spawn_blocking(move || ask_blocking(addr, &request))
        .await
        .unwrap()
}

async fn start(listen: SocketAddr, args: Vec<String>, log: PathBuf) -> Resolver {
    tokio::task::spawn_blocking(move || Resolver::start(listen, &args, &log))
        .await
        .unwrap()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn quick_form_with_data_dir_keeps_the_cache_across_a_restart() {
    let s = setup("restart").await;
    let listen = SocketAddr::from((next_loopback_ip(), 8461));
    let resolver = start(listen, s.args(), s.dir.join("first.log")).await;
    assert_eq!(
        ask(resolver.addr, "postfix enforce.example").await,
        ENFORCE_REPLY
    );
    assert_eq!(
        ask(resolver.addr, "postfix [192.0.2.1]:25").await,
        "NOTFOUND "
    );
    let status = tokio::task::spawn_blocking(move || resolver.terminate())
        .await
        .unwrap();
    assert!(status.success(), "SIGTERM is a clean stop: {status}");

    s.break_network();
    let resolver = start(listen, s.args(), s.dir.join("second.log")).await;
    assert_eq!(
        ask(resolver.addr, "postfix enforce.example").await,
        ENFORCE_REPLY,
        "{}",
        resolver.log()
    );
    assert_eq!(
        s.web.requests().len(),
        1,
        "fetched once, before the restart"
    );
    assert!(
        resolver.log().contains("policy cache loaded"),
        "{}",
        resolver.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn query_says_what_is_answered_and_why() {
    let s = setup("query").await;
    let mut args = strings(&["query", "Enforce.Example.", "--json"]);
    args.extend(s.args());
    let out = run(args.clone()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer = json(&out);
    assert_eq!(answer["domain"], "enforce.example");
    assert_eq!(answer["map"], "postfix");
    assert_eq!(answer["reply"], ENFORCE_REPLY);
    assert_eq!(answer["cache"], "looked_up");
    assert_eq!(answer["last_lookup"]["outcome"], "valid");
    assert_eq!(answer["policy"]["id"], "1");
    assert_eq!(answer["policy"]["mode"], "enforce");
    assert_eq!(answer["policy"]["mx"][1], "*.mx.enforce.example");
    assert!(
        answer["policy"]["expires_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(answer["reason"], "mode enforce, policy id 1");
    // query writes nothing: a resolver on the same store has nothing cached.
    let listen = SocketAddr::from((next_loopback_ip(), 8461));
    let resolver = start(listen, s.args(), s.dir.join("query.log")).await;
    assert_eq!(
        ask(resolver.addr, "postfix enforce.example").await,
        ENFORCE_REPLY
    );
    assert_eq!(s.web.requests().len(), 2);
    drop(resolver);
    // Now the resolver has cached it, and query reads it from there.
    s.break_network();
    let answer = json(&run(args).await);
    assert_eq!(answer["cache"], "cached");
    assert_eq!(answer["reply"], ENFORCE_REPLY);

    let mut text = strings(&["query", "enforce.example", "--color", "never"]);
    text.extend(s.args());
    let out = run(text).await;
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(
        shown.contains(&format!("reply        {ENFORCE_REPLY}")),
        "{shown}"
    );
    assert!(shown.contains("answered from the cache"), "{shown}");
    assert!(
        shown.contains("id 1, mode enforce, max_age 86400"),
        "{shown}"
    );

    let answer = json(
        &run(strings(&[
            "query",
            "[192.0.2.1]",
            "--json",
            "--data-dir",
            &s.data_dir(),
        ]))
        .await,
    );
    assert_eq!(answer["reply"], "NOTFOUND ");
    assert_eq!(answer["cache"], "not_a_domain");
    assert_eq!(answer["policy"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_reaches_the_running_resolver() {
    let s = setup("purge").await;
    let listen = SocketAddr::from((next_loopback_ip(), 8461));
    let resolver = start(listen, s.args(), s.dir.join("purge.log")).await;
    assert_eq!(
        ask(resolver.addr, "postfix enforce.example").await,
        ENFORCE_REPLY
    );
    s.break_network();
    assert_eq!(
        ask(resolver.addr, "postfix enforce.example").await,
        ENFORCE_REPLY
    );

    let out = run(strings(&[
        "resolver",
        "purge",
        "enforce.example",
        "--json",
        "--data-dir",
        &s.data_dir(),
    ]))
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        json(&out),
        serde_json::json!({"purged": 1, "domain": "enforce.example"})
    );
    // Within sync_interval (5 s) the running resolver forgets it; with DNS failing and
    // nothing cached, the answer is NOTFOUND.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = ask(resolver.addr, "postfix enforce.example").await;
        if reply == "NOTFOUND " {
            break;
        }
        assert_eq!(reply, ENFORCE_REPLY);
        assert!(
            Instant::now() < deadline,
            "never purged: {}",
            resolver.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        resolver.log().contains("purged from the cache"),
        "{}",
        resolver.log()
    );

    let out = run(strings(&[
        "resolver",
        "purge",
        "nothing.example",
        "--data-dir",
        &s.data_dir(),
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1), "nothing was cached for it");
    let out = run(strings(&[
        "resolver",
        "purge",
        "--all",
        "--data-dir",
        &s.data_dir(),
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("purged every cached policy"));
    let out = run(strings(&[
        "resolver",
        "purge",
        "[192.0.2.1]",
        "--data-dir",
        &s.data_dir(),
    ]))
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a domain"));
    let out = run(strings(&["resolver", "purge", "--data-dir", &s.data_dir()])).await;
    assert_eq!(out.status.code(), Some(2), "DOMAIN or --all");
}
