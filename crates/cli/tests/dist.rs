//! The packaging in `dist/`: the systemd unit of `serve` has what a service on port 443 needs,
//! systemd itself accepts it, and its command line is one the binary understands.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn dist(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../dist")
        .join(path)
}

/// `section -> key -> values` of a unit file (a key may repeat).
fn unit_keys(text: &str) -> HashMap<String, HashMap<String, Vec<String>>> {
    let mut sections: HashMap<String, HashMap<String, Vec<String>>> = HashMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not a key=value line: {line}"));
        assert!(!section.is_empty(), "{key} outside a section");
        sections
            .entry(section.clone())
            .or_default()
            .entry(key.trim().to_owned())
            .or_default()
            .push(value.trim().to_owned());
    }
    sections
}

const SERVE_UNIT: &str = "systemd/mta-sts-serve.service";

#[test]
fn serve_unit_runs_as_a_dedicated_user_that_may_bind_port_443() {
    let text = std::fs::read_to_string(dist(SERVE_UNIT)).unwrap();
    let unit = unit_keys(&text);
    let service = &unit["Service"];
    let one = |key: &str| {
        let values = service
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in [Service]"));
        assert_eq!(values.len(), 1, "{key} given {} times", values.len());
        values[0].as_str()
    };
    assert_eq!(one("User"), "mta-sts");
    assert_eq!(one("AmbientCapabilities"), "CAP_NET_BIND_SERVICE");
    assert_eq!(one("CapabilityBoundingSet"), "CAP_NET_BIND_SERVICE");
    assert_eq!(one("StateDirectory"), "mta-sts");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert!(one("ExecStart").starts_with("/usr/local/bin/mta-sts serve "));
    assert_eq!(unit["Install"]["WantedBy"], ["multi-user.target"]);
    // The user the unit names is the one sysusers creates.
    let sysusers = std::fs::read_to_string(dist("sysusers.d/mta-sts.conf")).unwrap();
    assert!(
        sysusers
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["u", "mta-sts"])),
        "{sysusers}"
    );
}

#[test]
fn serve_unit_command_line_is_understood_by_the_binary() {
    let text = std::fs::read_to_string(dist(SERVE_UNIT)).unwrap();
    let exec = unit_keys(&text)["Service"]["ExecStart"][0].clone();
    let mut words = exec.split_whitespace().skip(1);
    let mut args: Vec<String> = Vec::new();
    while let Some(word) = words.next() {
        args.push(word.to_owned());
        if word == "--config" {
            // The flags are the unit's; the file is one that is not there.
            let config = words.next().expect("--config FILE");
            assert_eq!(config, "/etc/mta-sts/mta-sts.toml");
            args.push("/nonexistent/mta-sts.toml".to_owned());
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_mta-sts"))
        .args(&args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("Usage:"), "the unit's flags are wrong: {err}");
    assert!(err.contains("/nonexistent/mta-sts.toml"), "{err}");
}

#[test]
fn systemd_accepts_the_serve_unit() {
    let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("systemd-analyze (package systemd, installed by scripts/test.sh)");
    // verify checks that ExecStart is executable: point it at the binary under test.
    let text = std::fs::read_to_string(dist(SERVE_UNIT))
        .unwrap()
        .replace("/usr/local/bin/mta-sts", env!("CARGO_BIN_EXE_mta-sts"));
    let dir = std::env::temp_dir().join(format!("mta-sts-dist-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = dir.join("mta-sts-serve.service");
    std::fs::write(&unit, text).unwrap();
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on a key it ignores, and says so on stderr: either is a defect.
    assert!(out.status.success() && err.trim().is_empty(), "{err}");
}

#[test]
fn completions_cover_every_command_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_mta-sts"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for word in ["suggest", "serve", "sts-record", "max-age", "acme-email"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_mta-sts"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_pages_are_generated_for_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_mta-sts"))
        .arg("man")
        .output()
        .unwrap();
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH mta-sts 1"), "{page}");
    assert!(page.contains("suggest"), "{page}");

    let dir = std::env::temp_dir().join(format!("mta-sts-man-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_mta-sts"))
        .args(["man", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The page the serve unit's Documentation= names.
    let serve = std::fs::read_to_string(dir.join("mta-sts-serve.1")).unwrap();
    assert!(serve.contains("\\-\\-acme\\-email"), "{serve}");
    assert!(dir.join("mta-sts-policy-new.1").exists());
}
