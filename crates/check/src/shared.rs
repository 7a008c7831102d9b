//! What the domains of one run share: hosted mail puts thousands of domains on one MX fleet,
//! and each address of it is probed once, its result given to every domain that uses it.

use std::net::IpAddr;
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use mta_sts_net::{MxProbe, Net, ProbeOptions};

/// Most MX host addresses whose probes a run keeps ([`crate::Checker`]); the least used go
/// first, so memory stays bounded whatever the number of domains.
pub const PROBE_CACHE_SIZE: u64 = 8192;

/// How long a run reuses a probe: a scan of many hours sees a fleet change.
pub const PROBE_CACHE_TTL: Duration = Duration::from_secs(3600);

/// A probe under way or done, awaited by every domain that asked for it.
type SharedProbe = Shared<BoxFuture<'static, MxProbe>>;

/// The SMTP probes of a run, by MX host name and address: the certificate is judged against
/// the host name (and SNI names it), so two names on one address are two probes.
#[derive(Clone)]
pub(crate) struct Probes {
    cache: Option<moka::sync::Cache<(String, IpAddr), SharedProbe>>,
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probes")
            .field("shared", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl Probes {
    /// Every probe made anew (one domain checked on its own).
    pub(crate) fn unshared() -> Self {
        Self { cache: None }
    }

    /// Probes shared by the domains of a run.
    pub(crate) fn shared() -> Self {
        Self {
            cache: Some(
                moka::sync::Cache::builder()
                    .max_capacity(PROBE_CACHE_SIZE)
                    .time_to_live(PROBE_CACHE_TTL)
                    .build(),
            ),
        }
    }

    /// The probe of `host` at `ip`: made now, or the one another domain of the run made or
    /// is making (then this waits for it: one session, not one per domain).
    pub(crate) async fn probe(
        &self,
        net: &Net,
        host: &str,
        ip: IpAddr,
        options: ProbeOptions,
    ) -> MxProbe {
        let Some(cache) = &self.cache else {
            return net.probe_mx_with(host, ip, options).await;
        };
        let probe = cache.get_with((host.to_owned(), ip), || {
            let (net, host) = (net.clone(), host.to_owned());
            async move { net.probe_mx_with(&host, ip, options).await }
                .boxed()
                .shared()
        });
        probe.await
    }
}
