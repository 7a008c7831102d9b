//! Many domains in one run, bounded: `check D1 D2 …` ([`Checker::check_all`]) and `scan`
//! ([`Checker::check_each`], fed from a stream).

use futures_util::{Stream, StreamExt};
use mta_sts_net::Net;

use crate::analyze::{Report, analyze};
use crate::evidence::{CheckOptions, gather};

/// Default for [`Checker::concurrency`]: enough to keep a run of thousands of domains moving,
/// few enough that a home router or a resolver does not start dropping answers.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// A DNS cache size for a run over many domains ([`mta_sts_net::NetConfig::dns_cache_size`]):
/// domains share MX hosts and their addresses, which are then asked about once.
pub const RUN_DNS_CACHE_SIZE: u64 = 8192;

/// Checks many domains with one network (so one DNS cache when the [`Net`] has one), at most
/// [`Checker::concurrency`] domains at a time; within each domain at most
/// [`crate::MAX_PROBES_PER_DOMAIN`] SMTP sessions are open.
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
}

impl Checker {
    /// A checker with [`DEFAULT_CONCURRENCY`].
    pub fn new(net: Net, options: CheckOptions) -> Self {
        Self {
            net,
            options,
            concurrency: DEFAULT_CONCURRENCY,
        }
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
        analyze(gather(&self.net, domain, self.options).await)
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
    /// order), never more than the limit at once. Domains are pulled from `domains` only as
    /// earlier ones finish, so a bounded channel or a file read line by line behind it keeps
    /// memory bounded whatever the input size.
    pub fn check_each<'a, S, D>(&'a self, domains: S) -> impl Stream<Item = Report> + 'a
    where
        S: Stream<Item = D> + 'a,
        D: AsRef<str> + 'a,
    {
        domains
            .map(move |domain| async move { self.check(domain.as_ref()).await })
            .buffer_unordered(self.concurrency)
    }
}
