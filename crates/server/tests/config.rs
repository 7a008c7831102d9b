//! `mta-sts.toml`: refusals say where and why; DNS records match the bodies served.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mta_sts_policy::policy_id;
use mta_sts_server::{
    AcmeChallenge, CertFiles, Config, ConfigError, DEFAULT_ACME_REQUEST_TIMEOUT, QuickTls, Tls,
};

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("."))
}

const PLAIN: &str = "[tls]\nmode = \"none\"\n";

#[test]
fn config_that_would_publish_an_invalid_policy_is_refused_with_the_diagnostic() {
    let error = load(&format!(
        "{PLAIN}[[domain]]\nname = \"example.com\"\nmode = \"enforce\"\nmx = [\"mx1.example.com\", \"mx.*.example.com\"]\n"
    ))
    .unwrap_err();
    let ConfigError::InvalidPolicy { domain, problems } = &error else {
        panic!("{error}");
    };
    assert_eq!(domain, "example.com");
    assert_eq!(problems[0].location, "mx[1]");
    assert!(!problems[0].diagnostic.code.is_empty());
    let shown = error.to_string();
    assert!(shown.contains("domain example.com"), "{shown}");
    assert!(shown.contains("mx[1]"), "{shown}");
    assert!(shown.contains(problems[0].diagnostic.code), "{shown}");
}

#[test]
fn enforce_without_mx_is_refused() {
    let error = load(&format!(
        "{PLAIN}[[domain]]\nname = \"example.com\"\nmode = \"enforce\"\n"
    ))
    .unwrap_err();
    assert!(
        matches!(error, ConfigError::InvalidPolicy { .. }),
        "{error}"
    );
}

#[test]
fn max_age_over_a_year_is_refused_at_max_age() {
    let error = load(&format!(
        "{PLAIN}[[domain]]\nname = \"example.com\"\nmode = \"testing\"\nmx = [\"mx.example.com\"]\nmax_age = 99999999\n"
    ))
    .unwrap_err();
    let ConfigError::InvalidPolicy { problems, .. } = &error else {
        panic!("{error}");
    };
    assert_eq!(problems[0].location, "max_age", "{error}");
}

#[test]
fn invalid_policy_file_is_refused_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.txt"),
        "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: +86400\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("mta-sts.toml"),
        format!("{PLAIN}[[domain]]\nname = \"example.com\"\npolicy_file = \"policy.txt\"\n"),
    )
    .unwrap();
    let error = Config::load(dir.path().join("mta-sts.toml")).unwrap_err();
    let shown = error.to_string();
    assert!(shown.contains("policy.txt line 4"), "{shown}");
}

#[test]
fn policy_file_is_served_byte_for_byte_and_its_id_is_derived_from_those_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let body = "version: STSv1\nmode: testing\nmx: mx1.example.com\nmax_age: 604800\n";
    std::fs::write(dir.path().join("policy.txt"), body).unwrap();
    std::fs::write(
        dir.path().join("mta-sts.toml"),
        format!(
            "{PLAIN}[[domain]]\nname = \"Example.com.\"\npolicy_file = \"policy.txt\"\nrua = [\"mailto:tls@example.com\"]\n"
        ),
    )
    .unwrap();
    let config = Config::load(dir.path().join("mta-sts.toml")).unwrap();
    let domain = &config.domains()[0];
    assert_eq!(domain.name(), "example.com");
    assert_eq!(domain.policy_body(), body.as_bytes());
    let records = config.dns_records();
    assert_eq!(records[0].policy_id, policy_id(body.as_bytes()));
    assert_eq!(records[0].sts.name, "_mta-sts.example.com.");
    assert_eq!(
        records[0].sts.value,
        format!("v=STSv1; id={}", policy_id(body.as_bytes()))
    );
    assert_eq!(records[0].tlsrpt.name, "_smtp._tls.example.com.");
    assert_eq!(
        records[0].tlsrpt.value,
        "v=TLSRPTv1; rua=mailto:tls@example.com"
    );
    assert_eq!(
        records[0].policy_url,
        "https://mta-sts.example.com/.well-known/mta-sts.txt"
    );
}

#[test]
fn generated_policy_is_canonical_and_rua_defaults_to_this_intake() {
    let config = load(&format!(
        "{PLAIN}[intake]\npath = \"/reports\"\n[[domain]]\nname = \"example.com\"\nmode = \"testing\"\nmx = [\"mx1.example.com\"]\n"
    ))
    .unwrap();
    let domain = &config.domains()[0];
    assert_eq!(
        domain.policy_body(),
        b"version: STSv1\r\nmode: testing\r\nmx: mx1.example.com\r\nmax_age: 604800\r\n"
    );
    let records = config.dns_records();
    assert_eq!(
        records[0].tlsrpt.value,
        "v=TLSRPTv1; rua=https://mta-sts.example.com/reports"
    );
    assert_eq!(records[0].policy_id, policy_id(domain.policy_body()));
}

#[test]
fn errors_name_the_domain_and_field() {
    let cases = [
        (
            format!(
                "{PLAIN}[[domain]]\nname = \"example.com\"\nmode = \"testing\"\nmx = [\"mx.example.com\"]\nrua = [\"ftp://x\"]\n"
            ),
            "domain example.com: rua",
        ),
        (
            format!("{PLAIN}[[domain]]\nname = \"example.com\"\n"),
            "domain example.com: mode",
        ),
        (
            format!("{PLAIN}[[domain]]\nmode = \"testing\"\n"),
            "domain #1: name",
        ),
        (
            format!("{PLAIN}[[domain]]\nname = \"mta-sts.example.com\"\nmode = \"none\"\n"),
            "domain mta-sts.example.com: name",
        ),
        (
            format!(
                "{PLAIN}[[domain]]\nname = \"example.com\"\nmode = \"none\"\n[[domain]]\nname = \"EXAMPLE.com\"\nmode = \"none\"\n"
            ),
            "listed twice",
        ),
        (
            "[[domain]]\nname = \"example.com\"\nmode = \"none\"\n".to_owned(),
            "domain example.com: cert",
        ),
        (
            "[tls]\nmode = \"acme\"\n[[domain]]\nname = \"example.com\"\nmode = \"none\"\n"
                .to_owned(),
            "tls.acme",
        ),
        (
            format!("{PLAIN}[[domain]]\nname = \"example.com\"\nmode = \"none\"\nmx_hosts = []\n"),
            "mx_hosts",
        ),
        (
            format!(
                "{PLAIN}[listen]\nhttps = [\"0.0.0.0:443\"]\n[[domain]]\nname = \"example.com\"\nmode = \"none\"\n"
            ),
            "listen.https",
        ),
        (PLAIN.to_owned(), "no [[domain]]"),
        (
            format!(
                "{PLAIN}[intake]\naccept = \"all\"\n[[domain]]\nname = \"example.com\"\nmode = \"none\"\n"
            ),
            "intake.accept: \"all\": must be \"configured\" or \"any\"",
        ),
        (
            "[tls]\nmode = \"acme\"\n[tls.acme]\nemail = \"a@example.com\"\nchallenge = \"dns-01\"\n[[domain]]\nname = \"example.com\"\nmode = \"none\"\n"
                .to_owned(),
            "tls.acme.challenge: \"dns-01\": must be \"tls-alpn-01\" or \"http-01\"",
        ),
        (
            "[listen]\nhttp = []\n[tls]\nmode = \"acme\"\n[tls.acme]\nemail = \"a@example.com\"\nchallenge = \"http-01\"\n[[domain]]\nname = \"example.com\"\nmode = \"none\"\n"
                .to_owned(),
            "listen.http: empty, but tls.acme.challenge = \"http-01\"",
        ),
        (
            "[tls]\nmode = \"acme\"\n[tls.acme]\nemail = \"a@example.com\"\nrequest_timeout = 0\n[[domain]]\nname = \"example.com\"\nmode = \"none\"\n"
                .to_owned(),
            "tls.acme.request_timeout: must be greater than 0",
        ),
    ];
    for (text, expected) in cases {
        let error = load(&text).unwrap_err().to_string();
        assert!(error.contains(expected), "{expected:?} in {error:?}");
    }
}

/// HTTP-01 is answered on the plain HTTP listeners: port 80 unless some are listed.
#[test]
fn acme_http_01_listens_on_port_80_unless_told_otherwise() {
    let acme = |extra: &str| {
        load(&format!(
            "{extra}[tls]\nmode = \"acme\"\n[tls.acme]\nemail = \"a@example.com\"\nchallenge = \"http-01\"\n[[domain]]\nname = \"example.com\"\nmode = \"none\"\n"
        ))
        .unwrap()
    };
    let config = acme("");
    assert_eq!(config.listen.http, ["0.0.0.0:80".parse().unwrap()]);
    let Tls::Acme(settings) = &config.tls else {
        panic!("{:?}", config.tls);
    };
    assert_eq!(settings.challenge, AcmeChallenge::Http01);
    assert_eq!(settings.request_timeout, DEFAULT_ACME_REQUEST_TIMEOUT);
    let behind_proxy = acme("[listen]\nhttp = [\"127.0.0.1:8080\"]\n");
    assert_eq!(
        behind_proxy.listen.http,
        ["127.0.0.1:8080".parse().unwrap()]
    );
}

#[test]
fn full_example_config_loads() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/mta-sts.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    // Certificate files are read when serving, not when loading: the example loads anywhere.
    let config = Config::from_toml(&text, Path::new("/etc/mta-sts")).unwrap();
    assert!(!config.domains().is_empty());
    assert_eq!(config.intake.path, "/tlsrpt");
}

#[test]
fn quick_form_serves_policy_files() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.txt");
    std::fs::write(&policy, "version: STSv1\nmode: none\nmax_age: 86400\n").unwrap();
    let listen: SocketAddr = "127.0.0.1:8443".parse().unwrap();
    let config = Config::from_quick(
        vec![listen],
        vec![("example.com".into(), policy.clone())],
        QuickTls::Files(CertFiles {
            cert: PathBuf::from("c.pem"),
            key: PathBuf::from("k.pem"),
        }),
    )
    .unwrap();
    assert_eq!(config.listen.https, [listen]);
    assert_eq!(config.tls, Tls::Files);
    assert_eq!(
        config.domains()[0].cert_files().unwrap().cert,
        PathBuf::from("./c.pem")
    );

    let plain = Config::from_quick(
        vec![listen],
        vec![("example.com".into(), policy)],
        QuickTls::PlainHttp,
    )
    .unwrap();
    assert_eq!(plain.listen.http, [listen]);
    assert!(plain.listen.https.is_empty());
}

/// `intake.path` becomes a route and the `rua` URI: only a plain absolute path that cannot
/// clash with the policy path is taken, and the refusal says what is wrong with it.
#[test]
fn intake_path_is_a_plain_absolute_path_apart_from_the_policy() {
    let with_path = |path: &str| {
        // A TOML basic string: quotes and backslashes escaped, control characters as \uXXXX.
        let quoted: String = path
            .chars()
            .map(|c| match c {
                '"' | '\\' => format!("\\{c}"),
                c if c.is_control() => format!("\\u{:04x}", u32::from(c)),
                c => c.to_string(),
            })
            .collect();
        format!(
            "{PLAIN}[intake]\npath = \"{quoted}\"\n[[domain]]\nname = \"example.com\"\nmode = \"testing\"\nmx = [\"mx1.example.com\"]\n"
        )
    };
    let refused = [
        ("tlsrpt", "absolute path"),
        ("", "absolute path"),
        ("/tlsrpt?key=1", "query"),
        ("/tlsrpt#top", "fragment"),
        ("/{org}", "route syntax"),
        ("/reports/*rest", "route syntax"),
        ("/reports/:org", "route syntax"),
        ("/tls%2frpt", "percent-escapes"),
        ("/tls rpt", "spaces"),
        ("/tls\u{1b}rpt", "control characters"),
        ("/tls\"rpt", "only letters"),
        ("/v1/reports;x=1", "only letters"),
        ("/a,b", "only letters"),
        ("/a//b", "segments"),
        ("/a/../b", "segments"),
        ("/.well-known/mta-sts.txt", "policy path"),
        ("/.WELL-KNOWN/MTA-STS.TXT", "policy path"),
        ("/.well-known/mta-sts/reports", "policy path"),
    ];
    for (path, expected) in refused {
        let error = load(&with_path(path)).unwrap_err().to_string();
        assert!(error.starts_with("intake.path: "), "{path:?}: {error}");
        assert!(
            error.contains(expected),
            "{path:?}: {expected:?} in {error:?}"
        );
    }
    for path in [
        "/",
        "/tlsrpt",
        "/.well-known/tlsrpt",
        "/v1/r=1&b=(2)",
        "/r@x:1",
    ] {
        let config = load(&with_path(path)).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert_eq!(config.intake.path, path);
        // The router takes it without panicking.
        let _ = mta_sts_server::app(mta_sts_server::AppState::new(
            &config,
            std::sync::Arc::new(mta_sts_server::MemorySink::new()),
        ));
    }
}

#[test]
fn mailboxes_are_read_with_paths_resolved_and_bad_ones_named() {
    let domain =
        "[[domain]]\nname = \"example.com\"\nmode = \"testing\"\nmx = [\"mx.example.com\"]\n";
    let config = Config::from_toml(
        &format!(
            "{PLAIN}[[mailbox]]\nurl = \"imaps://r@imap.example.com/INBOX\"\npassword_file = \"pw\"\n\
             [[mailbox]]\nurl = \"maildir:mail/reports\"\npoll_seconds = 5\nrequire_dkim = true\n{domain}"
        ),
        Path::new("/etc/mta-sts"),
    )
    .unwrap();
    let [imap, maildir] = config.mailboxes.as_slice() else {
        panic!("{:?}", config.mailboxes);
    };
    assert_eq!(imap.password_file, Some(PathBuf::from("/etc/mta-sts/pw")));
    assert_eq!(imap.poll.as_secs(), 60);
    assert_eq!(maildir.url, "maildir:/etc/mta-sts/mail/reports");
    assert!(maildir.require_dkim && !imap.require_dkim);

    for (block, expected) in [
        ("url = \"pop3://x@y\"", "mailbox[0].url"),
        ("password_file = \"pw\"", "mailbox[0].url: missing"),
        (
            "url = \"maildir:m\"\npoll_seconds = 0",
            "mailbox[0].poll_seconds",
        ),
        ("url = \"maildir:m\"\nfolder = \"x\"", "unknown field"),
    ] {
        let error = load(&format!("{PLAIN}[[mailbox]]\n{block}\n{domain}")).unwrap_err();
        assert!(error.to_string().contains(expected), "{block}: {error}");
    }
}

#[test]
fn checks_default_to_every_six_hours_and_keep_ninety_days() {
    let config = load(&format!(
        "{PLAIN}[[domain]]\nname = \"example.com\"\nmode = \"none\"\n"
    ))
    .unwrap();
    let checks = &config.checks;
    assert!(checks.enabled);
    assert_eq!(checks.interval, mta_sts_server::DEFAULT_CHECK_INTERVAL);
    assert_eq!(checks.interval.as_secs(), 6 * 3600);
    assert_eq!(checks.retention.as_secs(), 90 * 86_400);
    assert_eq!((checks.https_port, checks.smtp_port), (443, 25));
    let config = load(&format!(
        "{PLAIN}[checks]\nenabled = false\ninterval = \"30m\"\nspread = \"90s\"\nretention = \"7d\"\nresolver = \"127.0.0.1:5353\"\nca_file = [\"ca.pem\"]\nno_smtp = true\ntimeout = 2.5\n[[domain]]\nname = \"example.com\"\nmode = \"none\"\n"
    ))
    .unwrap();
    let checks = &config.checks;
    assert!(!checks.enabled && checks.no_smtp);
    assert_eq!(checks.interval.as_secs(), 1800);
    assert_eq!(checks.spread.as_secs(), 90);
    assert_eq!(checks.retention.as_secs(), 7 * 86_400);
    assert_eq!(checks.resolver.as_deref(), Some("127.0.0.1:5353"));
    assert_eq!(checks.ca_file, [Path::new("./ca.pem")]);
    assert_eq!(checks.timeout, Some(2.5));
}

#[test]
fn checks_errors_name_the_key() {
    for (line, key) in [
        ("interval = \"6 hours\"", "checks.interval"),
        ("interval = \"+6h\"", "checks.interval"),
        ("interval = \"0s\"", "checks.interval"),
        ("spread = \"7h\"", "checks.spread"),
        ("retention = \"1h\"", "checks.retention"),
        ("concurrency = 0", "checks.concurrency"),
        ("timeout = -1", "checks.timeout"),
    ] {
        let error = load(&format!(
            "{PLAIN}[checks]\n{line}\n[[domain]]\nname = \"example.com\"\nmode = \"none\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(error.contains(key), "{line}: {error}");
    }
}

#[test]
fn alerts_default_to_no_channel_and_a_day_of_cool_down() {
    let domain =
        "[[domain]]\nname = \"example.com\"\nmode = \"testing\"\nmx = [\"mx.example.com\"]\n";
    let config = load(&format!("{PLAIN}{domain}")).unwrap();
    assert_eq!(config.alerts, mta_sts_server::AlertsConfig::default());
    assert_eq!(config.alerts.cool_down.as_secs(), 24 * 3600);
    let config = load(&format!(
        "{PLAIN}[alerts]\nwebhook = \"https://hooks.example.net/x\"\ncool_down_hours = 2\n\
         [alerts.smtp]\nhost = \"smtp.example.com\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n{domain}"
    ))
    .unwrap();
    assert_eq!(config.alerts.cool_down.as_secs(), 7200);
    let smtp = config.alerts.smtp.unwrap();
    assert_eq!((smtp.port, smtp.starttls), (587, true));
    for (bad, field) in [
        ("webhook = \"http://hooks.example.net/x\"", "alerts.webhook"),
        ("failure_rate_percent = 0.0", "alerts.failure_rate_percent"),
        (
            "[alerts.smtp]\nhost = \"h\"\nfrom = \"a@example.com\"\nto = []",
            "alerts.smtp.to",
        ),
        (
            "[alerts.smtp]\nhost = \"h\"\nstarttls = false\nusername = \"u\"\npassword_file = \"p\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]",
            "alerts.smtp.starttls",
        ),
    ] {
        let error = load(&format!("{PLAIN}[alerts]\n{bad}\n{domain}")).unwrap_err();
        assert!(error.to_string().starts_with(field), "{bad}: {error}");
    }
}
