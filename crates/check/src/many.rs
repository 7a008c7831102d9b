//! Many domains in one run, bounded: `check D1 D2 …` ([`Checker::check_all`]) and `scan`
//! ([`Checker::check_each`], fed from a stream).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use mta_sts_net::Net;
use tokio::time::Instant;

use crate::analyze::{Report, analyze};
use crate::evidence::{CheckOptions, gather_with};
use crate::shared::Probes;

/// Default for [`Checker::concurrency`]: enough to keep a run of thousands of domains moving,
/// few enough that a home router or a resolver does not start dropping answers.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// Default concurrency of a scan (`mta-sts scan`): a scan waits mostly on the network, so
/// hundreds of domains in flight keep two cores busy, while [`DEFAULT_PER_DESTINATION`]
/// keeps what any one provider sees small; a resolver that cannot take that many lookups at
/// once (a home router's forwarder) wants a lower `--concurrency`.
pub const DEFAULT_SCAN_CONCURRENCY: usize = 256;

/// A default for [`mta_sts_net::NetConfig::per_destination`] in a run over many domains:
/// sessions open at once to one address, so hosted mail and hosted policies are asked
/// politely, and a fleet's connection limits are not mistaken for failures.
pub const DEFAULT_PER_DESTINATION: usize = 8;

/// A DNS cache size for a run over many domains ([`mta_sts_net::NetConfig::dns_cache_size`]):
/// domains share MX hosts and their addresses, which are then asked about once.
pub const RUN_DNS_CACHE_SIZE: u64 = 8192;

/// Checks many domains with one network (so one DNS cache when the [`Net`] has one), at most
/// [`Checker::concurrency`] domains at a time, and at most [`Checker::rate`] started per
/// second; within each domain at most [`crate::MAX_PROBES_PER_DOMAIN`] SMTP sessions are open.
///
/// The domains of a run share their SMTP probes: each address of an MX host is probed once
/// (at most [`crate::PROBE_CACHE_SIZE`] kept, each for [`crate::PROBE_CACHE_TTL`]) and every
/// domain that uses it gets that result, as checking it alone would have found.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use futures_util::StreamExt;
/// use mta_sts_check::{CheckOptions, Checker, RUN_DNS_CACHE_SIZE};
/// use mta_sts_net::{Net, NetConfig};
///
/// let net = Net::new(NetConfig { dns_cache_size: RUN_DNS_CACHE_SIZE, ..NetConfig::default() })?;
/// let checker = Checker::new(net, CheckOptions::default()).concurrency(8);
/// let domains = ["example.com", "example.org"];
/// let mut reports = std::pin::pin!(checker.check_all(domains, |_| {}));
/// while let Some(report) = reports.next().await {
///     println!("{}: {}", report.domain, report.sender.summary());
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Checker {
    net: Net,
    options: CheckOptions,
    concurrency: usize,
    probes: Probes,
    pace: Option<Arc<Pace>>,
}

impl Checker {
    /// A checker with [`DEFAULT_CONCURRENCY`].
    pub fn new(net: Net, options: CheckOptions) -> Self {
        Self {
            net,
            options,
            concurrency: DEFAULT_CONCURRENCY,
            probes: Probes::shared(),
            pace: None,
        }
    }

    /// At most `per_second` domains started per second (none: no limit), evenly spaced.
    pub fn rate(mut self, per_second: Option<f64>) -> Self {
        self.pace = per_second
            .filter(|r| r.is_finite() && *r > 0.0)
            .map(|r| Arc::new(Pace::new(Duration::from_secs_f64(1.0 / r))));
        self
    }

    /// At most `limit` domains checked at once (at least 1).
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = limit.max(1);
        self
    }

    /// The concurrency limit.
    pub fn limit(&self) -> usize {
        self.concurrency
    }

    /// Checks one domain.
    pub async fn check(&self, domain: &str) -> Report {
        if let Some(pace) = &self.pace {
            pace.wait().await;
        }
        analyze(gather_with(&self.net, &self.probes, domain, self.options).await)
    }

    /// The reports of `domains`, in their order. Domains are started as earlier ones finish,
    /// never more than the limit at once; `done` sees each report as soon as it is ready (in
    /// any order), for a progress display.
    pub fn check_all<'a, I, D>(
        &'a self,
        domains: I,
        done: impl Fn(&Report) + 'a,
    ) -> impl Stream<Item = Report> + 'a
    where
        I: IntoIterator<Item = D> + 'a,
        D: AsRef<str> + 'a,
    {
        let done = std::sync::Arc::new(done);
        futures_util::stream::iter(domains)
            .map(move |domain| {
                let done = std::sync::Arc::clone(&done);
                async move {
                    let report = self.check(domain.as_ref()).await;
                    done(&report);
                    report
                }
            })
            .buffered(self.concurrency)
    }

    /// The reports of the domains `domains` yields, each as soon as it is ready (in any
    /// order) beside the tag it came with (a line number, say), never more than the limit at
    /// once. Domains are pulled from `domains` only as earlier ones finish, so a bounded
    /// channel or a file read line by line behind it keeps memory bounded whatever the input
    /// size.
    pub fn check_each<'a, S, T, D>(&'a self, domains: S) -> impl Stream<Item = (T, Report)> + 'a
    where
        S: Stream<Item = (T, D)> + 'a,
        T: 'a,
        D: AsRef<str> + 'a,
    {
        domains
            .map(move |(tag, domain)| async move { (tag, self.check(domain.as_ref()).await) })
            .buffer_unordered(self.concurrency)
    }
}

/// Starts spaced evenly: each caller of [`Pace::wait`] gets the next free instant, at least
/// one period after the one before, so no burst follows a quiet spell.
#[derive(Debug)]
struct Pace {
    period: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pace {
    fn new(period: Duration) -> Self {
        Self {
            period,
            next: Mutex::new(None),
        }
    }

    async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let at = next.map_or(now, |n| n.max(now));
            *next = Some(at + self.period);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_rate_spaces_starts_evenly_and_allows_no_burst_after_a_pause() {
        let pace = Arc::new(Pace::new(Duration::from_millis(100)));
        let started = Instant::now();
        let waits: Vec<_> = (0..5)
            .map(|_| {
                let pace = Arc::clone(&pace);
                tokio::spawn(async move {
                    pace.wait().await;
                    Instant::now()
                })
            })
            .collect();
        let mut at = Vec::new();
        for wait in waits {
            at.push(wait.await.unwrap().duration_since(started));
        }
        at.sort();
        let ms: Vec<u128> = at.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 100, 200, 300, 400]);
        // A quiet second earns no burst: the next two are still one period apart.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = Instant::now();
        pace.wait().await;
        pace.wait().await;
        assert_eq!(before.elapsed(), Duration::from_millis(100));
    }
}
