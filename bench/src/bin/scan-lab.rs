//! `scan-lab`: the lab and the verdict check of bench/scan.sh (issue 15). `serve` runs a
//! testnet lab of generated domains on a few shared MX fleets ([`ManyDomains`]) with DNS on
//! 127.0.0.1:53, HTTPS on 443 and SMTP on 25, for a network namespace of its own; `verify`
//! compares a results file of `mta-sts scan` with the verdict each domain must get.
//!
//! ```text
//! scan-lab serve --dir DIR --domains 100000 --fleets 4
//! scan-lab verify --results DIR/results.jsonl --expect 10000 [--no-smtp]
//! ```

use std::collections::HashSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use mta_sts_testnet::{Lab, ManyDomains};

#[derive(Parser)]
#[command(about = "The lab and the verdict check of the scan benchmark")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the lab until killed; writes DIR/ca.pem, DIR/domains.txt (one domain a line)
    /// and DIR/ready.
    Serve {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        domains: usize,
        #[arg(long, default_value_t = 4)]
        fleets: usize,
    },
    /// Check every line of RESULTS against the lab's truth (the domain's kind gives its
    /// sender status and a finding code); exit 1 on any wrong, missing or repeated verdict.
    Verify {
        #[arg(long)]
        results: PathBuf,
        /// How many domains (the first N of the lab) the results must hold.
        #[arg(long)]
        expect: usize,
        /// The scan ran with --no-smtp.
        #[arg(long)]
        no_smtp: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Serve {
            dir,
            domains,
            fleets,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(serve(dir, domains, fleets))
        }
        Command::Verify {
            results,
            expect,
            no_smtp,
        } => verify(&results, expect, !no_smtp),
    }
}

async fn serve(dir: PathBuf, domains: usize, fleets: usize) -> anyhow::Result<()> {
    let lab = Lab::with_ports(25, 443, "127.0.0.1:53".parse()?);
    let many = ManyDomains::start_in(lab, domains, fleets)
        .await
        .context("cannot start the lab (run inside a network namespace, as root)")?;
    std::fs::write(dir.join("ca.pem"), many.lab().ca().root_pem())?;
    let mut list = std::io::BufWriter::new(std::fs::File::create(dir.join("domains.txt"))?);
    for i in 0..domains {
        writeln!(list, "{}", ManyDomains::domain(i))?;
    }
    list.flush()?;
    drop(list);
    std::fs::write(dir.join("ready"), "")?;
    eprintln!(
        "scan-lab: {domains} domains on {fleets} fleets ({} MX servers)",
        many.mx_servers().len()
    );
    std::future::pending::<()>().await;
    Ok(())
}

/// The index of a lab domain, from its name `dNNNN.example`.
fn index_of(domain: &str) -> Option<usize> {
    domain
        .strip_prefix('d')?
        .strip_suffix(".example")?
        .parse()
        .ok()
}

fn verify(results: &PathBuf, expect: usize, smtp: bool) -> anyhow::Result<()> {
    let file = std::fs::File::open(results)
        .with_context(|| format!("cannot open {}", results.display()))?;
    let mut seen = HashSet::new();
    let (mut right, mut wrong) = (0usize, 0usize);
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line?;
        let report: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{} line {} is not JSON", results.display(), n + 1))?;
        let domain = report["domain"].as_str().unwrap_or_default().to_owned();
        let Some(index) = index_of(&domain).filter(|i| *i < expect) else {
            bail!(
                "line {}: {domain:?} is not one of the lab's first {expect} domains",
                n + 1
            );
        };
        if !seen.insert(index) {
            bail!("line {}: {domain} is in the results twice", n + 1);
        }
        let kind = ManyDomains::kind(index);
        let status = report["sender"]["status"].as_str().unwrap_or_default();
        let codes: Vec<&str> = report["findings"]
            .as_array()
            .map(|f| f.iter().filter_map(|f| f["code"].as_str()).collect())
            .unwrap_or_default();
        let finding_ok = kind.finding(smtp).is_none_or(|code| codes.contains(&code));
        if status == kind.status(smtp) && finding_ok && report["incomplete"].is_null() {
            right += 1;
        } else {
            wrong += 1;
            if wrong <= 10 {
                eprintln!(
                    "wrong: {domain} ({kind:?}): status {status}, expected {}; findings {codes:?}",
                    kind.status(smtp)
                );
            }
        }
    }
    let missing = expect - seen.len();
    println!("verdicts: {right} right, {wrong} wrong, {missing} missing");
    if wrong > 0 || missing > 0 {
        bail!("not every verdict is right");
    }
    Ok(())
}
