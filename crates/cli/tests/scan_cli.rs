//! `mta-sts scan` and `mta-sts scan summarize` as a user runs them, against a loopback lab of
//! a few hundred generated domains of several kinds, healthy and broken, on two shared MX
//! fleets ([`ManyDomains`]).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use mta_sts_testnet::{
    DnsHandle, DomainKind as Kind, HttpsHandle, HttpsServer, Lab, ManyDomains, Site, SmtpBehaviour,
    SmtpHandle, SmtpServer, Zone,
};
use serde_json::Value;
use support::run_beside_lab as run;

const PER_KIND: usize = 30;
const DOMAINS: usize = PER_KIND * Kind::ALL.len();
const FLEETS: usize = 2;

fn kind_of(i: usize) -> Kind {
    ManyDomains::kind(i)
}

fn domain_name(i: usize) -> String {
    ManyDomains::domain(i)
}

struct World {
    many: ManyDomains,
    ca_file: PathBuf,
    dir: PathBuf,
}

async fn world(name: &str) -> World {
    let many = ManyDomains::start(DOMAINS, FLEETS).await.unwrap();
    let ca_file = support::lab_ca_file(many.lab());
    let dir = support::temp_dir(name);
    World { many, ca_file, dir }
}

impl World {
    /// The network flags for the lab.
    fn net(&self) -> Vec<String> {
        support::lab_flags(self.many.lab(), self.many.dns(), &self.ca_file)
    }

    /// A domains file of the whole lab, with `extra` lines first.
    fn domains_file(&self, extra: &[&str]) -> PathBuf {
        let mut text: String = extra.iter().map(|l| format!("{l}\n")).collect();
        for i in 0..DOMAINS {
            text.push_str(&domain_name(i));
            text.push('\n');
        }
        let path = self.dir.join("domains.txt");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `scan ARGS` on the lab, 32 domains at once unless ARGS say otherwise: the default
    /// (hundreds) in an unoptimised build on a loaded machine could push a step past the
    /// tests' 3 s timeout.
    fn scan(&self, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = vec!["scan".into()];
        all.extend(args.iter().map(|s| (*s).to_owned()));
        if !args.contains(&"--concurrency") {
            all.extend(["--concurrency".into(), "32".into()]);
        }
        all.extend(self.net());
        all
    }

    /// `scan` of the whole lab into a results file; it must succeed.
    async fn scan_to_file(&self, extra: &[&str]) -> (PathBuf, std::process::Output) {
        let domains = self.domains_file(&[]);
        let out = self.dir.join("results.jsonl");
        let mut args = vec![
            "--domains",
            domains.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let scanned = run(self.scan(&args)).await;
        assert_eq!(
            scanned.status.code(),
            Some(0),
            "{}",
            support::stderr(&scanned)
        );
        (out, scanned)
    }

    /// The `_mta-sts` names asked about since the `from`-th query: which domains were checked.
    fn checked_since(&self, from: usize) -> Vec<String> {
        self.many.dns().queries()[from..]
            .iter()
            .filter_map(|(name, _)| {
                let name = name.to_string();
                name.strip_prefix("_mta-sts.")
                    .map(|d| d.trim_end_matches('.').to_owned())
            })
            .collect()
    }
}

/// The lines of a results file, as JSON, by domain (each domain once).
fn results(text: &str) -> BTreeMap<String, Value> {
    let mut by_domain = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}: {line}", n + 1));
        let domain = value["domain"].as_str().unwrap().to_owned();
        assert!(
            by_domain.insert(domain.clone(), value).is_none(),
            "{domain} twice"
        );
    }
    by_domain
}

/// A report without what changes from one run to the next (times).
fn stable(mut value: Value) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.retain(|key, _| key != "checked_at" && !key.contains("elapsed"));
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut value);
    value
}

fn schema() -> jsonschema::Validator {
    let text = include_str!("../../../schema/check.schema.json");
    let schema: Value = serde_json::from_str(text).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn scan_gives_each_domain_the_report_check_gives() {
    let w = world("equal").await;
    let (out, scanned) = w.scan_to_file(&[]).await;
    // The summary follows the scan on standard output.
    let summary = support::stdout(&scanned);
    assert!(
        summary.contains(&format!("{DOMAINS} domains in")),
        "{summary}"
    );
    let scan = results(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(scan.len(), DOMAINS);

    let mut args: Vec<String> = vec!["check".into(), "--json".into()];
    args.extend((0..DOMAINS).map(domain_name));
    args.extend(w.net());
    let checked = run(args).await;
    let check: Vec<Value> = serde_json::from_slice(&checked.stdout).unwrap();
    assert_eq!(check.len(), DOMAINS);

    let mut statuses: BTreeMap<Kind, BTreeSet<String>> = BTreeMap::new();
    for (i, alone) in check.into_iter().enumerate() {
        let name = domain_name(i);
        let line = scan
            .get(&name)
            .unwrap_or_else(|| panic!("{name} not scanned"));
        assert_eq!(
            stable(line.clone()),
            stable(alone),
            "{name}: scan and check disagree"
        );
        statuses
            .entry(kind_of(i))
            .or_default()
            .insert(line["sender"]["status"].as_str().unwrap().to_owned());
    }
    // Each kind is judged one way, and the kinds apart: the comparison above could fail.
    assert!(statuses.values().all(|s| s.len() == 1), "{statuses:?}");
    assert_eq!(
        statuses[&Kind::Healthy],
        BTreeSet::from(["protected".into()])
    );
    assert_eq!(
        statuses[&Kind::EnforceWithoutStartTls],
        BTreeSet::from(["mail-would-bounce".into()])
    );
    // Every line is a report of check's schema.
    let all = Value::Array(scan.into_values().collect());
    let errors: Vec<String> = schema()
        .iter_errors(&all)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_after_a_kill_checks_only_what_was_not_finished() {
    let w = world("resume").await;
    let domains = w.domains_file(&["# a comment"]);
    let out = w.dir.join("results.jsonl");
    let args = |extra: &[&str]| {
        let mut args = vec![
            "--domains",
            domains.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        w.scan(&args)
    };
    // A slow scan (--rate), killed once a third of the domains is written and its mark has
    // been written at least once.
    let mut child = support::bin()
        .args(args(&["--rate", "40", "--concurrency", "4"]))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mark = out.with_extension("jsonl.resume");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_to_string(&out).map_or(0, |t| t.lines().count()) < DOMAINS / 3
        || !mark.exists()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the scan did not get far"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // As a kill while writing leaves it: a last line cut short.
    let cut = {
        let text = std::fs::read_to_string(&out).unwrap();
        let written = results(&text);
        let cut = (0..DOMAINS)
            .map(domain_name)
            .find(|d| !written.contains_key(d))
            .unwrap();
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new().append(true).open(&out).unwrap();
        write!(file, "{{\"domain\":\"{cut}\",\"sender\":{{\"sta").unwrap();
        cut
    };
    let text = std::fs::read_to_string(&out).unwrap();
    let whole = &text[..text.rfind('\n').unwrap() + 1];
    let finished: BTreeSet<String> = results(whole).into_keys().collect();
    assert!(finished.len() >= DOMAINS / 3 && finished.len() < DOMAINS);

    // Without --resume an existing file is refused.
    let refused = run(args(&[])).await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        support::stderr(&refused).contains("--resume"),
        "{}",
        support::stderr(&refused)
    );

    let before = w.many.dns().queries().len();
    let resumed = run(args(&["--resume"])).await;
    let stderr = support::stderr(&resumed);
    assert_eq!(resumed.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("cut short"), "{stderr}");
    assert!(
        !stderr.contains("remembered by name"),
        "the mark was used: {stderr}"
    );
    assert!(
        stderr.contains(&format!("{} already in the results", finished.len())),
        "{stderr}"
    );
    let checked: BTreeSet<String> = w.checked_since(before).into_iter().collect();
    let expected: BTreeSet<String> = (0..DOMAINS)
        .map(domain_name)
        .filter(|d| !finished.contains(d))
        .collect();
    // Nothing finished is looked up again; everything else is, the cut domain too.
    assert_eq!(checked, expected);
    assert!(checked.contains(&cut));
    let all = results(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(all.len(), DOMAINS, "every domain once, no cut line left");

    // Resuming the finished scan checks nothing.
    let before = w.many.dns().queries().len();
    let again = run(args(&["--resume"])).await;
    assert_eq!(again.status.code(), Some(0), "{}", support::stderr(&again));
    assert!(w.checked_since(before).is_empty());
    assert!(
        support::stderr(&again).contains(&format!("{DOMAINS} already in the results")),
        "{}",
        support::stderr(&again)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shared_mx_is_probed_once_and_its_address_looked_up_from_the_cache() {
    let w = world("shared").await;
    let concurrency = 8;
    let (out, _) = w
        .scan_to_file(&["--concurrency", &concurrency.to_string()])
        .await;
    let scan = results(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(scan.len(), DOMAINS);
    // Every MX server (one address each) had one SMTP session, however many domains use it.
    let mut users: BTreeMap<String, usize> = BTreeMap::new();
    for i in (0..DOMAINS).filter(|i| kind_of(*i) != Kind::NxDomain) {
        *users.entry(w.many.mx_host(i)).or_default() += 1;
    }
    assert_eq!(users.len(), w.many.mx_servers().len());
    assert!(users.values().all(|n| *n >= PER_KIND / 2), "{users:?}");
    for server in w.many.mx_servers() {
        assert_eq!(server.sessions().len(), 1, "{}", server.addr());
    }
    // `check D1 D2 …` shares its probes the same way: one more session each.
    let mut args: Vec<String> = vec!["check".into(), "--json".into()];
    args.extend((0..DOMAINS).map(domain_name));
    args.extend(w.net());
    let checked = run(args).await;
    let reports: Vec<Value> = serde_json::from_slice(&checked.stdout).unwrap();
    assert_eq!(reports.len(), DOMAINS, "{}", support::stderr(&checked));
    for server in w.many.mx_servers() {
        assert_eq!(server.sessions().len(), 2, "check: {}", server.addr());
    }
    // And each domain got the probe of its own MX host.
    for (i, verdict) in (0..DOMAINS).map(|i| (i, &scan[&domain_name(i)])) {
        assert_eq!(
            verdict["sender"]["status"],
            kind_of(i).status(true),
            "{}",
            domain_name(i)
        );
        if kind_of(i) != Kind::NxDomain {
            assert_eq!(
                verdict["evidence"]["mx_hosts"][0]["probes"]["ok"][0]["host"],
                w.many.mx_host(i).as_str()
            );
        }
    }
    // The MX hosts' addresses come from the DNS cache: asked at most once per domain checked
    // at the same time, not once per domain.
    let queries = w.many.dns().queries();
    for host in ["mx-good.fleet0.example.", "mx-good.fleet1.example."] {
        let asked = queries
            .iter()
            .filter(|(name, t)| name.to_string() == host && t.to_string() == "A")
            .count();
        assert!(
            (1..=concurrency).contains(&asked),
            "{host} A asked {asked} times for {} domains",
            4 * PER_KIND / 2
        );
    }
}

/// Hosted mail as big providers run it: each customer domain has an MX host name of its own
/// (`c0.mx.hosted.example`, …), all on one address, and every policy host is on one HTTPS
/// address; both servers are slow to answer (100 ms), so sessions overlap when allowed to.
struct Hosted {
    lab: Lab,
    dns: DnsHandle,
    mx: SmtpHandle,
    web: HttpsHandle,
}

const CUSTOMERS: usize = 24;

fn customer(i: usize) -> String {
    format!("customer{i}.example")
}

async fn hosted() -> Hosted {
    let lab = Lab::new();
    let slow = std::time::Duration::from_millis(100);
    let certificate = lab.ca().issue(&["*.mx.hosted.example"]).unwrap();
    let mx = lab
        .start_smtp(
            SmtpServer::new("mx.hosted.example", SmtpBehaviour::starttls(certificate))
                .greeting_delay(slow),
        )
        .await
        .unwrap();
    let policy = "version: STSv1\nmode: enforce\nmx: *.mx.hosted.example\nmax_age: 86400\n";
    let sites = (0..CUSTOMERS).map(|i| Site::policy(&format!("mta-sts.{}", customer(i)), policy));
    let web = lab
        .start_https(
            HttpsServer::new(lab.ca(), sites)
                .unwrap()
                .response_delay(slow),
        )
        .await
        .unwrap();
    let fleet = (0..CUSTOMERS).fold(Zone::new("mx.hosted.example"), |zone, i| {
        zone.address(&format!("c{i}"), mx.ip())
    });
    let mut zones = vec![fleet];
    zones.extend((0..CUSTOMERS).map(|i| {
        Zone::new(&customer(i))
            .mx(10, &format!("c{i}.mx.hosted.example"))
            .address("mta-sts", web.ip())
            .txt("_mta-sts", &["v=STSv1; id=1"])
    }));
    let dns = lab.dns(zones).await.unwrap();
    Hosted { lab, dns, mx, web }
}

/// Scans the hosted customers with `--per-destination cap`, all of them at once otherwise.
async fn scan_hosted(h: &Hosted, cap: usize) {
    let ca_file = support::lab_ca_file(&h.lab);
    let text: String = (0..CUSTOMERS).map(|i| customer(i) + "\n").collect();
    let domains = support::temp_file(&format!("hosted-{cap}.txt"), text.as_bytes());
    let mut args: Vec<String> = [
        "scan",
        "--domains",
        domains.to_str().unwrap(),
        "--concurrency",
        &CUSTOMERS.to_string(),
        "--per-destination",
        &cap.to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(support::lab_flags(&h.lab, &h.dns, &ca_file));
    let out = run(args).await;
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let lines = support::stdout(&out);
    assert_eq!(lines.lines().count(), CUSTOMERS);
    for line in lines.lines() {
        let report: Value = serde_json::from_str(line).unwrap();
        assert_eq!(report["sender"]["status"], "protected", "{line}");
    }
    // Every customer's own MX name was probed and every policy fetched, at one address each.
    assert!(h.mx.sessions().len() >= CUSTOMERS);
    assert_eq!(h.web.requests().len(), CUSTOMERS);
}

#[tokio::test(flavor = "multi_thread")]
async fn per_destination_caps_the_sessions_one_address_sees_at_once() {
    // A cap of 3 is reached (the sessions do overlap) and never passed.
    let h = hosted().await;
    scan_hosted(&h, 3).await;
    let (smtp, https) = (h.mx.peak_sessions(), h.web.peak_connections());
    assert!((2..=3).contains(&smtp), "{smtp} SMTP sessions at once");
    assert!((2..=3).contains(&https), "{https} policy fetches at once");
    // A cap of 1: one session at a time, though 24 domains are checked at once.
    let h = hosted().await;
    scan_hosted(&h, 1).await;
    assert_eq!(h.mx.peak_sessions(), 1);
    assert_eq!(h.web.peak_connections(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_low_open_file_limit_checks_fewer_domains_at_once_and_every_one_right() {
    let w = world("files").await;
    let domains = w.domains_file(&[]);
    let mut args = vec![
        "ulimit -n 200 && exec \"$0\" \"$@\"".to_owned(),
        env!("CARGO_BIN_EXE_mta-sts").to_owned(),
    ];
    args.extend(w.scan(&["--domains", domains.to_str().unwrap(), "--no-smtp"]));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = support::stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // 200 files, 64 of them kept aside, 12 a domain.
    assert!(
        stderr.contains("at most 200 open files (ulimit -n): checking 11 domains at once"),
        "{stderr}"
    );
    let scan = results(&support::stdout(&out));
    assert_eq!(scan.len(), DOMAINS);
    for i in 0..DOMAINS {
        assert_eq!(
            scan[&domain_name(i)]["sender"]["status"],
            kind_of(i).status(false),
            "{}",
            domain_name(i)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shards_split_the_input_and_bad_lines_are_named() {
    let w = world("shard").await;
    let domains = w.domains_file(&[
        "# a comment",
        "",
        "not a domain!",
        &format!("1,{}", domain_name(0).to_uppercase()),
    ]);
    let mut shards = Vec::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let out = run(w.scan(&[
            "--domains",
            domains.to_str().unwrap(),
            "--shard",
            &shard,
            "--no-smtp",
        ]))
        .await;
        let stderr = support::stderr(&out);
        // The bad line is the first domain line: in shard 1 only.
        if k == 1 {
            assert_eq!(out.status.code(), Some(1), "{stderr}");
            assert!(
                stderr.contains("line 3: skipped") && stderr.contains("not a domain!"),
                "{stderr}"
            );
        } else {
            assert_eq!(out.status.code(), Some(0), "{stderr}");
        }
        let lines: Vec<String> = support::stdout(&out)
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["domain"].as_str().unwrap().to_owned()
            })
            .collect();
        shards.push(lines);
    }
    let mut seen = BTreeMap::new();
    for (k, shard) in shards.iter().enumerate() {
        // 1 bad line + d0000 twice (upper case, with a rank) + 210 domains = 212 lines.
        assert!(
            (70..=71).contains(&shard.len()),
            "shard {}: {}",
            k + 1,
            shard.len()
        );
        for d in shard {
            *seen.entry(d.clone()).or_insert(0) += 1;
        }
    }
    let expected: BTreeSet<String> = (0..DOMAINS).map(domain_name).collect();
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), expected);
    // d0000 is in the input twice (one line in shard 2, one in shard 3); the rest once.
    assert_eq!(seen[&domain_name(0)], 2);
    assert!(
        seen.iter()
            .filter(|(d, _)| **d != domain_name(0))
            .all(|(_, n)| *n == 1)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn summarize_counts_adoption_modes_misconfigurations_and_mx_hosts() {
    let w = world("summary").await;
    let (out, _) = w.scan_to_file(&[]).await;
    let path = out.to_str().unwrap();

    let json = support::mta_sts(&["scan", "summarize", path, "--json"]);
    assert_eq!(json.status.code(), Some(0), "{}", support::stderr(&json));
    let s = support::json(&json);
    let n = PER_KIND as u64;
    assert_eq!(s["domains"], DOMAINS as u64);
    // Records at Healthy, TestingExpiredMx, PolicyNotFound, EnforceWithoutStartTls.
    assert_eq!(s["mta_sts_published"]["domains"], 4 * n);
    assert_eq!(s["mta_sts_policy_valid"]["domains"], 3 * n);
    // TLS-RPT everywhere but at the missing domains.
    assert_eq!(s["tlsrpt_valid"]["domains"], 6 * n);
    assert_eq!(s["modes"]["enforce"]["domains"], 2 * n);
    assert_eq!(s["modes"]["testing"]["domains"], n);
    assert_eq!(s["modes"]["none"]["domains"], 0);
    let week = s["max_age"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["label"] == "1 day to under 1 week")
        .unwrap();
    assert_eq!(week["domains"], 3 * n);
    assert_eq!(week["share"], 1.0);
    assert_eq!(s["would_lose_mail"]["domains"], n);
    assert_eq!(s["verdicts"]["protected"]["domains"], n);
    let by = &s["misconfigured_by_category"];
    assert_eq!(by["policy-fetch"]["domains"], n, "{by}");
    // Errors only: the expired certificate under testing is a warning (mail still goes).
    assert_eq!(by["mx-tls"]["domains"], n, "{by}");
    assert_eq!(by["sts-record"]["domains"], 0, "{by}");
    assert_eq!(by["tlsrpt-record"]["domains"], 0, "{by}");
    assert_eq!(s["misconfigured"]["domains"], 2 * n);
    let hosts = &s["mx_hosts"];
    assert_eq!(hosts["distinct"], 6);
    assert_eq!(
        (&hosts["approximate"], &hosts["dropped"]),
        (&false.into(), &0.into())
    );
    let top = hosts["top"].as_array().unwrap();
    // Two fleets, each with half of every kind: their good MX hosts tie, named in order.
    let (good, plain_host) = ("mx-good.fleet0.example", "mx-plain.fleet0.example");
    assert_eq!(top[0]["name"], good);
    assert_eq!(top[0]["domains"], 4 * n / 2);
    assert_eq!(
        (&top[0]["failing"], &top[0]["error"]),
        (&0.into(), &0.into())
    );
    let plain = top.iter().find(|m| m["name"] == plain_host).unwrap();
    assert_eq!(
        (plain["domains"].clone(), plain["failing"].clone()),
        ((n / 2).into(), (n / 2).into())
    );
    // A fleet is one provider: its domains with an MX that fails (expired under testing,
    // no STARTTLS under enforce) are its failing ones.
    let providers = &s["mx_providers"];
    assert_eq!(providers["distinct"], 2);
    let fleet0 = &providers["top"][0];
    assert_eq!(fleet0["name"], "fleet0.example");
    assert_eq!(
        (fleet0["domains"].clone(), fleet0["failing"].clone()),
        ((6 * n / 2).into(), (2 * n / 2).into())
    );

    let csv = support::mta_sts(&["scan", "summarize", path, "--csv"]);
    assert_eq!(csv.status.code(), Some(0));
    let text = support::stdout(&csv);
    let mut rows = csv_rows(&text);
    assert_eq!(rows.remove(0), ["metric", "key", "domains", "share"]);
    assert!(
        rows.contains(&vec![
            "adoption".to_owned(),
            "mta-sts-published".to_owned(),
            (4 * n).to_string(),
            format!("{:.6}", 4.0 / 7.0)
        ]),
        "{text}"
    );
    assert!(
        rows.iter()
            .any(|r| r[0] == "top-mx" && r[1] == good && r[2] == (4 * n / 2).to_string()),
        "{text}"
    );
    assert!(
        rows.iter().any(|r| r[0] == "top-mx-provider"
            && r[1] == "fleet1.example"
            && r[2] == (6 * n / 2).to_string()),
        "{text}"
    );

    let table = support::mta_sts(&["scan", "summarize", path, "--top", "1"]);
    let text = support::stdout(&table);
    assert!(text.contains("MTA-STS record published"), "{text}");
    assert!(text.contains("would lose mail"), "{text}");
    assert!(
        text.contains("MX hosts by domains (top 1 of 6; --top N for more)"),
        "{text}"
    );
    assert!(
        text.contains("MX providers by domains (top 1 of 2; --top N for more)"),
        "{text}"
    );
    assert!(text.contains(good), "{text}");
    assert!(!text.contains(plain_host), "{text}");

    // A line that is not a result is named and left out; the others still count.
    let mut broken = std::fs::read_to_string(&out).unwrap();
    broken.push_str("{\"domain\": \"x.example\"}\n");
    let broken = support::temp_file("summary-broken.jsonl", broken.as_bytes());
    let out = support::mta_sts(&["scan", "summarize", broken.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        support::stderr(&out).contains(&format!("line {} is not a scan result", DOMAINS + 1)),
        "{}",
        support::stderr(&out)
    );
    assert_eq!(support::json(&out)["domains"], DOMAINS as u64);
}

fn csv_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

/// The PostgreSQL server of `scripts/pg-test.sh` (which `scripts/test.sh` runs the tests in),
/// or `None` (the test then says SKIPPED, or fails when `MTA_STS_REQUIRE_POSTGRES` is set).
fn postgres_url() -> Option<String> {
    let url = std::env::var("MTA_STS_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        assert!(
            std::env::var_os("MTA_STS_REQUIRE_POSTGRES").is_none(),
            "MTA_STS_REQUIRE_POSTGRES is set but MTA_STS_TEST_POSTGRES_URL is not"
        );
        eprintln!("SKIPPED: no MTA_STS_TEST_POSTGRES_URL (scripts/pg-test.sh sets it)");
    }
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn shards_store_their_results_in_one_database_table() {
    let Some(url) = postgres_url() else { return };
    let w = world("database").await;
    let domains = w.domains_file(&[]);
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for k in 1..=2 {
        let shard = format!("{k}/2");
        let out = run(w.scan(&[
            "--domains",
            domains.to_str().unwrap(),
            "--shard",
            &shard,
            "--no-smtp",
            "--database",
            &url,
        ]))
        .await;
        assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    }
    let store = mta_sts_store::Store::open(&mta_sts_store::Location::Postgres(url))
        .await
        .unwrap();
    for i in 0..DOMAINS {
        let rows: Vec<_> = store
            .scan_results(&domain_name(i))
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.checked_at >= started)
            .collect();
        assert_eq!(rows.len(), 1, "{}: {rows:?}", domain_name(i));
        let row = &rows[0];
        assert!(
            row.scanner.ends_with(&format!(" {}/2", i % 2 + 1)),
            "{row:?}"
        );
        assert_eq!(row.status, kind_of(i).status(false), "{row:?}");
        let report: Value = serde_json::from_str(&row.report).unwrap();
        assert_eq!(report["domain"], domain_name(i).as_str());
    }
    store.close().await;
}
