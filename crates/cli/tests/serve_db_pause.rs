//! `mta-sts serve` on a PostgreSQL that stops answering without closing its sockets: a
//! throwaway PostgreSQL of this test, paused with SIGSTOP (the postmaster and every backend)
//! and resumed with SIGCONT while reports arrive. Policy hosting keeps answering; the intake
//! answers 503 with Retry-After within its timeout, never a 2xx for a report not committed;
//! after SIGCONT it stores again without a restart, and every acknowledged report is stored
//! once.
//!
//! It needs PostgreSQL's server binaries (Debian's `postgresql`, which `scripts/pg-test.sh`
//! installs; `scripts/test.sh` runs this suite inside it). Without them the test says SKIPPED,
//! unless `MTA_STS_REQUIRE_POSTGRES` is set: then it fails.

mod support;

use support::report_json;

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mta_sts_testnet::next_loopback_ip;

/// The intake's request timeout in this test (`intake.timeout_seconds`).
const INTAKE_TIMEOUT: Duration = Duration::from_secs(6);

/// How long the database stays paused.
const PAUSE: Duration = Duration::from_secs(15);

/// A PostgreSQL cluster of this test: its own directory and port, stopped and removed on drop.
struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    postmaster: u32,
}

/// The newest PostgreSQL under /usr/lib/postgresql with the programs needed.
fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| {
            ["pg_ctl", "initdb", "postgres"]
                .iter()
                .all(|p| bin.join(p).exists())
        })
        .collect();
    found.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop()
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// `program args` as PostgreSQL's user when running as root (it refuses to run as root).
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port(ip: IpAddr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Postgres {
    fn start(bin: PathBuf) -> Postgres {
        let dir = std::env::temp_dir().join(format!("mta-sts-pgpause-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            run(
                Command::new("chown").arg("postgres:").arg(&dir),
                "chown the cluster directory",
            );
        }
        let data = dir.join("data");
        run(
            as_server_user(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-A", "trust", "-U", "postgres"]),
            "initdb",
        );
        let port = free_port(IpAddr::from([127, 0, 0, 1]));
        run(
            as_server_user(&bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("server.log"))
                .args(["-w", "-t", "60", "-o"])
                .arg(format!(
                    "-p {port} -k {} -c listen_addresses=127.0.0.1",
                    dir.display()
                ))
                .arg("start"),
            "pg_ctl start",
        );
        let pid_file = std::fs::read_to_string(data.join("postmaster.pid")).unwrap();
        let postmaster = pid_file.lines().next().unwrap().trim().parse().unwrap();
        Postgres {
            bin,
            dir,
            port,
            postmaster,
        }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The postmaster and its children (backends, WAL writer, checkpointer...).
    fn processes(&self) -> Vec<u32> {
        let mut pids = vec![self.postmaster];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            // /proc/PID/stat: "PID (COMM) STATE PPID ..."; COMM may hold spaces, not ')'.
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(self.postmaster) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Sends `signal` (STOP, CONT) to the postmaster and all its children, by process id.
    fn signal(&self, signal: &str) -> usize {
        let pids = self.processes();
        for pid in &pids {
            // A child may have exited since the scan: nothing to signal then.
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
        pids.len()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.signal("CONT");
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `mta-sts serve`, killed on drop.
struct Serve {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_serve(dir: &Path, database: &str) -> Serve {
    let addr = SocketAddr::new(IpAddr::V4(next_loopback_ip()), 0);
    let addr = SocketAddr::new(addr.ip(), free_port(addr.ip()));
    let config = dir.join("mta-sts.toml");
    std::fs::write(
        &config,
        format!(
            "[listen]\nhttp = [\"{addr}\"]\n[tls]\nmode = \"none\"\n[checks]\nenabled = false\n[storage]\n\
             database = \"{database}\"\n[intake]\ntimeout_seconds = {}\n\
             [[domain]]\nname = \"example.com\"\nmode = \"testing\"\nmx = [\"mx1.example.com\"]\n",
            INTAKE_TIMEOUT.as_secs()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_mta-sts"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("serve.log")).unwrap())
        .spawn()
        .unwrap();
    support::wait_for_listener(addr);
    Serve { child, addr }
}

/// What an HTTP exchange gave: status (0: no answer), Retry-After, and how long it took.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    retry_after: String,
    took: Duration,
}

fn post(addr: SocketAddr, id: usize) -> Answer {
    let started = Instant::now();
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--max-time", "20"])
        .args(["-w", "%{http_code} %header{retry-after}"])
        .args(["-H", "Content-Type: application/tlsrpt+json"])
        .args(["--data-binary", &report_json(id)])
        .arg(format!("http://{addr}/tlsrpt"))
        .output()
        .expect("curl is installed");
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, retry_after) = text.split_once(' ').unwrap_or((&text, ""));
    Answer {
        status: status.trim().parse().unwrap_or(0),
        retry_after: retry_after.trim().to_owned(),
        took,
    }
}

fn get_policy(addr: SocketAddr) -> Answer {
    let started = Instant::now();
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--max-time", "5"])
        .args(["-w", "%{http_code}"])
        .args(["-H", "Host: mta-sts.example.com"])
        .arg(format!("http://{addr}/.well-known/mta-sts.txt"))
        .output()
        .expect("curl is installed");
    Answer {
        status: String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0),
        retry_after: String::new(),
        took: started.elapsed(),
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The report-ids stored, as numbers.
fn stored_ids(database: &str) -> Vec<usize> {
    let out = Command::new(env!("CARGO_BIN_EXE_mta-sts"))
        .args([
            "reports",
            "list",
            "--json",
            "--limit",
            "100000",
            "--database",
            database,
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["report_id"]
                .as_str()
                .unwrap()
                .trim_start_matches("r-")
                .parse()
                .unwrap()
        })
        .collect()
}

#[test]
fn a_paused_database_gets_503s_policy_keeps_answering_and_nothing_is_lost() {
    let Some(bin) = postgres_bin() else {
        assert!(
            std::env::var_os("MTA_STS_REQUIRE_POSTGRES").is_none(),
            "MTA_STS_REQUIRE_POSTGRES is set but no PostgreSQL under /usr/lib/postgresql"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: no PostgreSQL server binaries (scripts/pg-test.sh installs them)"
        );
        return;
    };
    let postgres = Postgres::start(bin);
    let database = postgres.url();
    let dir = postgres.dir.join("serve");
    std::fs::create_dir_all(&dir).unwrap();
    let serve = start_serve(&dir, &database);
    let addr = serve.addr;

    // Before: reports are stored.
    let mut acked: Vec<usize> = Vec::new();
    let mut refused: Vec<usize> = Vec::new();
    for id in 0..20 {
        let answer = post(addr, id);
        assert_eq!(
            answer.status, 201,
            "report {id} before the pause: {answer:?}"
        );
        acked.push(id);
    }

    // Paused: 8 senders post new reports, and a client fetches the policy, all the while.
    let stopped = postgres.signal("STOP");
    let paused_at = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(1000));
    let answers = Arc::new(Mutex::new(Vec::<(usize, Answer)>::new()));
    let senders: Vec<_> = (0..8)
        .map(|_| {
            let (done, next, answers) =
                (Arc::clone(&done), Arc::clone(&next), Arc::clone(&answers));
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let id = next.fetch_add(1, Ordering::Relaxed);
                    let answer = post(addr, id);
                    answers.lock().unwrap().push((id, answer));
                }
            })
        })
        .collect();
    let mut policy_answers = Vec::new();
    let mut peak_rss = 0;
    while paused_at.elapsed() < PAUSE {
        policy_answers.push(get_policy(addr));
        peak_rss = peak_rss.max(rss_kib(serve.child.id()));
        std::thread::sleep(Duration::from_millis(250));
    }
    done.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.join().unwrap();
    }
    let during = std::mem::take(&mut *answers.lock().unwrap());

    // Resumed: the intake stores again, without a restart.
    postgres.signal("CONT");
    let resumed_at = Instant::now();
    let mut recovered_after = None;
    let mut id = 5000;
    while resumed_at.elapsed() < Duration::from_secs(60) {
        let answer = post(addr, id);
        match answer.status {
            201 => {
                acked.push(id);
                recovered_after = Some(resumed_at.elapsed());
                break;
            }
            503 => refused.push(id),
            other => panic!("report {id} after SIGCONT: {other}: {answer:?}"),
        }
        id += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    let recovered_after = recovered_after.expect("the intake stores again after SIGCONT");

    let slowest_policy = policy_answers
        .iter()
        .map(|a| a.took)
        .max()
        .unwrap_or_default();
    let slowest_intake = during.iter().map(|(_, a)| a.took).max().unwrap_or_default();
    let unavailable = during.iter().filter(|(_, a)| a.status == 503).count();
    println!(
        "paused {stopped} PostgreSQL processes for {PAUSE:?}: {} policy GETs (slowest {slowest_policy:?}), \
         {} reports posted ({unavailable} answered 503, slowest answer {slowest_intake:?}), \
         serve's peak RSS {} MiB; stored again {recovered_after:?} after SIGCONT",
        policy_answers.len(),
        during.len(),
        peak_rss / 1024
    );

    // Policy hosting never depended on the database.
    assert!(!policy_answers.is_empty());
    for answer in &policy_answers {
        assert_eq!(answer.status, 200, "policy GET while paused: {answer:?}");
    }
    // Every report got an answer (curl waits 20 s; the intake's timeout is 6 s): 503 with
    // Retry-After, or a 2xx for one committed before the pause took hold.
    assert!(
        unavailable > 0,
        "no 503 while the database was paused: {during:?}"
    );
    for (id, answer) in &during {
        match answer.status {
            200 | 201 => acked.push(*id),
            503 => {
                assert!(
                    !answer.retry_after.is_empty(),
                    "503 without Retry-After: {answer:?}"
                );
                refused.push(*id);
            }
            other => panic!("report {id} while paused: {other} ({answer:?})"),
        }
    }
    assert!(peak_rss < 512 * 1024, "serve's RSS reached {peak_rss} KiB");

    // The senders retry what got 503: stored now (or found stored, if it was committed
    // after all).
    for id in &refused {
        let answer = post(addr, *id);
        assert!(
            matches!(answer.status, 200 | 201),
            "retry of report {id}: {answer:?}"
        );
        acked.push(*id);
    }

    let mut stored = stored_ids(&database);
    stored.sort_unstable();
    let all = stored.len();
    stored.dedup();
    assert_eq!(all, stored.len(), "a report is stored twice");
    acked.sort_unstable();
    acked.dedup();
    let missing: Vec<_> = acked
        .iter()
        .filter(|id| stored.binary_search(id).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );
    drop(serve);
}
