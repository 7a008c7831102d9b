//! Network namespaces, for the lab conditions loopback alone cannot make: an address that
//! drops SYNs, so a TCP connect never completes (a firewalled or vanished host).
//!
//! A test creates a namespace (root and `ip` from iproute2 needed, `nft` for drop rules) and
//! runs itself inside it with [`NetNamespace::run_test`]: the inner run sees
//! [`NetNamespace::inside`] set and builds its lab on the namespace's own loopback, where the
//! rules apply. Nothing outside the namespace is touched, and dropping the value kills what
//! still runs inside and deletes it.

use std::ffi::OsStr;
use std::io;
use std::net::IpAddr;
use std::process::{Command, Output, Stdio};

/// The environment variable that tells a test it runs inside a namespace (its name).
const INSIDE: &str = "MTA_STS_TEST_NETNS";

/// A network namespace of this process, deleted on drop.
#[derive(Debug)]
pub struct NetNamespace {
    name: String,
}

impl NetNamespace {
    /// Creates the namespace `name` with its loopback interface up.
    ///
    /// Fails with an error that says what is missing when the process cannot (not root, no
    /// `ip`): tests that need a namespace fail then, they do not skip.
    pub fn create(name: &str) -> io::Result<Self> {
        // A namespace left by a killed earlier run of the same pid would make `add` fail.
        let _ = quiet(Command::new("ip").args(["netns", "del", name]));
        run(Command::new("ip").args(["netns", "add", name])).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!(
                    "cannot create network namespace {name} ({error}); this test needs root \
                     and iproute2's `ip`"
                ),
            )
        })?;
        let namespace = Self {
            name: name.to_owned(),
        };
        run(namespace.command("ip").args(["link", "set", "lo", "up"]))?;
        Ok(namespace)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Inside the namespace, drops every TCP SYN sent to `ip` (an nftables rule), so a connect
    /// to it neither succeeds nor is refused: it times out.
    pub fn drop_syns_to(&self, ip: IpAddr) -> io::Result<()> {
        let family = if ip.is_ipv4() { "ip" } else { "ip6" };
        let rules = format!(
            "table inet mtasts_testnet {{\n  chain input {{\n    type filter hook input \
             priority 0; policy accept;\n    {family} daddr {ip} tcp flags syn drop\n  }}\n}}\n"
        );
        let mut nft = self.command("nft");
        nft.args(["-f", "-"]);
        run_with_input(&mut nft, rules.as_bytes()).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!(
                    "cannot add the drop rule in {} ({error}); install nftables",
                    self.name
                ),
            )
        })
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name])
            .arg(program)
            .env(INSIDE, &self.name);
        command
    }

    /// Runs the test `name` of the current test binary inside the namespace and returns its
    /// output; the inner run finds [`NetNamespace::inside`] set.
    pub fn run_test(&self, name: &str) -> io::Result<Output> {
        let exe = std::env::current_exe()?;
        self.command(exe)
            .args(["--exact", name, "--nocapture", "--test-threads", "1"])
            .stdin(Stdio::null())
            .output()
    }

    /// The namespace this process runs inside, when [`NetNamespace::run_test`] started it.
    pub fn inside() -> Option<String> {
        std::env::var(INSIDE).ok().filter(|name| !name.is_empty())
    }
}

impl Drop for NetNamespace {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = quiet(Command::new("kill").args(["-9", pid]));
            }
        }
        let _ = quiet(Command::new("ip").args(["netns", "del", &self.name]));
    }
}

/// Runs `command`; an exit status other than 0 is an error carrying its standard error.
fn run(command: &mut Command) -> io::Result<()> {
    run_with_input(command, b"")
}

fn run_with_input(command: &mut Command, input: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input)?;
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{command:?} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn quiet(command: &mut Command) -> io::Result<std::process::ExitStatus> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
}
