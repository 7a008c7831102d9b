//! `tlsrpt-load`: sends libtlsrpt datagrams to a collector's unix datagram socket as fast as it
//! can (or at `--rate`), from its own process, like an MTA under load. `--mode nonblocking`
//! drops a datagram the socket refuses (EAGAIN), as libtlsrpt does; `--mode blocking` waits.
//! Prints one JSON line: what was sent and dropped, and the rate.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Blocking,
    Nonblocking,
}

#[derive(Debug, Parser)]
struct Args {
    /// The collector's socket.
    #[arg(long)]
    socket: PathBuf,
    /// Datagrams to send.
    #[arg(long, default_value_t = 500_000)]
    count: u64,
    /// Datagrams per second to aim for; 0 sends as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// How a full socket is handled.
    #[arg(long, value_enum, default_value_t = Mode::Blocking)]
    mode: Mode,
    /// Distinct policy domains.
    #[arg(long, default_value_t = 1000)]
    domains: u64,
}

/// Datagram `index`: an STS success, or (one in ten) a certificate failure.
fn datagram(index: u64, domains: u64) -> Vec<u8> {
    let domain = format!("d{}.example", index % domains.max(1));
    let failed = index.is_multiple_of(10);
    let details = if failed {
        r#","failure-details":[{"c":204,"s":"192.0.2.1","r":"198.51.100.7","n":"mx1.example.com"}]"#
    } else {
        ""
    };
    format!(
        r#"{{"dpv":"1","d":"{domain}","pr":"v=TLSRPTv1; rua=mailto:tlsrpt@{domain}","policies":[{{"policy-type":2,"policy-string":["version: STSv1","mode: enforce","mx: mx1.{domain}","max_age: 604800"],"policy-domain":"{domain}","mx-host":["mx1.{domain}"],"f":{},"t":{}{details}}}]}}"#,
        u8::from(failed),
        u8::from(failed)
    )
    .into_bytes()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let socket = UnixDatagram::unbound().context("socket")?;
    socket
        .set_nonblocking(args.mode == Mode::Nonblocking)
        .context("set_nonblocking")?;
    // A pool of distinct datagrams, built before the clock starts.
    let pool: Vec<Vec<u8>> = (0..args.domains.max(1) * 10)
        .map(|index| datagram(index, args.domains))
        .collect();
    let (mut sent, mut dropped) = (0_u64, 0_u64);
    let start = Instant::now();
    for index in 0..args.count {
        if args.rate > 0 && index.is_multiple_of(100) {
            let due = Duration::from_secs_f64(index as f64 / args.rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let bytes = &pool[(index % pool.len() as u64) as usize];
        match socket.send_to(bytes, &args.socket) {
            Ok(_) => sent += 1,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => dropped += 1,
            Err(error) => return Err(error).context("send"),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        r#"{{"mode":"{:?}","sent":{sent},"dropped":{dropped},"seconds":{seconds:.3},"offered_per_second":{:.0}}}"#,
        args.mode,
        args.count as f64 / seconds
    );
    Ok(())
}
