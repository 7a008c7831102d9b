//! `bench/intake.sh` never skips its lost-report check: without the database client it needs
//! (and no way to install it), it fails at once with a message that names what is missing,
//! before building anything.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A directory holding only the tools the script needs before its client check (`dirname`):
/// no `sqlite3`, no `psql`, no `apt-get`.
fn bare_path() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mta-sts-bare-path-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("dirname");
    if !link.exists() {
        let dirname = ["/usr/bin/dirname", "/bin/dirname"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("dirname is installed");
        // The tests run in parallel and share the directory: another may have made the link.
        match std::os::unix::fs::symlink(dirname, &link) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                panic!("cannot link {dirname} into {}: {e}", dir.display())
            }
            _ => {}
        }
    }
    dir
}

fn run_without_clients(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("intake.sh");
    let bash = ["/usr/bin/bash", "/bin/bash"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("bash is installed");
    Command::new(bash)
        .arg(script)
        .args(args)
        .env_clear()
        .env("PATH", bare_path())
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn intake_sh_fails_clearly_without_sqlite3() {
    let out = run_without_clients(&["sqlite"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("== installing sqlite3"), "{stdout}");
    assert!(
        stderr.contains("bench/intake.sh: sqlite3 is missing and could not be installed"),
        "{stderr}"
    );
    assert!(!stdout.contains("building"), "{stdout}");
}

#[test]
fn intake_sh_fails_clearly_without_psql() {
    let url = (
        "MTA_STS_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:1/postgres",
    );
    let out = run_without_clients(&["postgres"], &[url]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("bench/intake.sh: psql is missing and could not be installed"),
        "{stderr}"
    );
    assert!(!stdout.contains("building"), "{stdout}");
}
