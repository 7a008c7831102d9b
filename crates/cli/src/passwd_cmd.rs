//! `mta-sts passwd`: the argon2 hash of a dashboard password, or a new API token with its
//! SHA-256, to paste into `[dashboard]` of mta-sts.toml.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};

use crate::Outcome;
use crate::args::PasswdArgs;

/// Turns the terminal's echo off (or back on) with `stty`; without it the password shows.
fn echo(on: bool) {
    let _ = std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(std::process::Stdio::inherit())
        .status();
}

fn ask(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    echo(false);
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    echo(true);
    eprintln!();
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// `passwd`.
pub fn passwd(args: &PasswdArgs) -> anyhow::Result<Outcome> {
    if args.token {
        let (token, sha256) =
            mta_sts_server::new_api_token().map_err(|e| anyhow::anyhow!("{e}"))?;
        outln!("token:  {token}");
        outln!("sha256: {sha256}");
        eprintln!(
            "Give the token to the API client (Authorization: Bearer TOKEN); it is not kept. \
             In mta-sts.toml:\n[[dashboard.token]]\nname = \"...\"\nsha256 = \"{sha256}\""
        );
        return Ok(Outcome::Ok);
    }
    let password = if std::io::stdin().is_terminal() {
        let first = ask("password: ")?;
        let again = ask("again: ")?;
        if first != again {
            bail!("the two passwords differ; nothing printed");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.is_empty() {
        bail!("no password given (type it, or give it on the first line of standard input)");
    }
    let hash = mta_sts_server::hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
    outln!("{hash}");
    if std::io::stdout().is_terminal() {
        eprintln!("In mta-sts.toml, under [[dashboard.user]]: password_hash = \"{hash}\"");
    }
    Ok(Outcome::Ok)
}
