//! Gathering what a sender would see of a domain: DNS, the policy, every MX address over SMTP.

use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use mta_sts_net::{DnsError, FetchError, FetchedPolicy, Mx, MxProbe, Net, ProbeOptions, TxtAnswer};
use serde::{Serialize, Serializer};

/// What to look at.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Skip port 25 (many networks block outbound SMTP).
    pub no_smtp: bool,
    /// Also try each MX without SNI (some servers pick the wrong certificate then).
    pub without_sni: bool,
}

/// Everything seen while checking a domain; the findings are derived from it alone.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    /// The policy domain, lowercase A-labels.
    pub domain: String,
    /// When the check ran, Unix seconds.
    pub checked_at: i64,
    /// `_mta-sts.<domain>` TXT.
    #[serde(serialize_with = "outcome")]
    pub sts_txt: Result<TxtAnswer, DnsError>,
    /// The policy fetch (attempted even without a TXT record, to diagnose half-done setups).
    #[serde(serialize_with = "outcome")]
    pub policy: Result<FetchedPolicy, FetchError>,
    /// The MX records.
    #[serde(serialize_with = "outcome")]
    pub mx: Result<Vec<Mx>, DnsError>,
    /// Each MX host (or the domain itself, as implicit MX) and its SMTP probes.
    pub mx_hosts: Vec<MxHost>,
    /// `_smtp._tls.<domain>` TXT.
    #[serde(serialize_with = "outcome")]
    pub tlsrpt_txt: Result<TxtAnswer, DnsError>,
    /// Port 25 was not tried (`--no-smtp`).
    pub smtp_skipped: bool,
}

/// One MX host and what its addresses said.
#[derive(Debug, Clone, Serialize)]
pub struct MxHost {
    /// Host name, lowercase, without trailing dot.
    pub host: String,
    /// MX preference (0 for an implicit MX).
    pub preference: u16,
    /// The domain has no MX records and this is the domain itself (RFC 5321 §5.1).
    pub implicit: bool,
    /// One probe per address (empty when SMTP was skipped).
    #[serde(serialize_with = "outcome")]
    pub probes: Result<Vec<MxProbe>, DnsError>,
}

/// Serializes a `Result` as `{"ok": value}` or `{"error": error}`.
fn outcome<T: Serialize, E: Serialize, S: Serializer>(
    value: &Result<T, E>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    #[serde(rename_all = "lowercase")]
    enum Outcome<'a, T, E> {
        Ok(&'a T),
        Error(&'a E),
    }
    match value {
        Ok(v) => Outcome::<T, E>::Ok(v).serialize(serializer),
        Err(e) => Outcome::<T, E>::Error(e).serialize(serializer),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Looks at `domain` as a sender would. DNS lookups and the policy fetch run at once, then
/// every address of every MX host is probed at once.
pub async fn gather(net: &Net, domain: &str, options: CheckOptions) -> Evidence {
    let resolver = net.resolver();
    let sts_name = format!("_mta-sts.{domain}");
    let tlsrpt_name = format!("_smtp._tls.{domain}");
    let (sts_txt, policy, mx, tlsrpt_txt) = futures_util::join!(
        resolver.txt_answer(&sts_name),
        net.fetch_policy(domain),
        resolver.mx(domain),
        resolver.txt_answer(&tlsrpt_name),
    );
    let hosts: Vec<(String, u16, bool)> = match &mx {
        Ok(records) if records.iter().any(Mx::is_null) => Vec::new(),
        Ok(records) => {
            let mut records = records.clone();
            records.sort_by(|a, b| (a.preference, &a.exchange).cmp(&(b.preference, &b.exchange)));
            records.dedup_by(|a, b| a.exchange == b.exchange);
            records
                .into_iter()
                .map(|r| (r.exchange, r.preference, false))
                .collect()
        }
        // RFC 5321 §5.1: without MX records the domain itself is the mail host.
        Err(e) if e.is_no_records() => vec![(domain.to_owned(), 0, true)],
        Err(_) => Vec::new(),
    };
    let probe_options = ProbeOptions::default().with_without_sni(options.without_sni);
    let mx_hosts = join_all(
        hosts
            .into_iter()
            .map(|(host, preference, implicit)| async move {
                let probes = if options.no_smtp {
                    Ok(Vec::new())
                } else {
                    net.probe_mx_host(&host, probe_options).await
                };
                MxHost {
                    host,
                    preference,
                    implicit,
                    probes,
                }
            }),
    )
    .await;
    Evidence {
        domain: domain.to_owned(),
        checked_at: now(),
        sts_txt,
        policy,
        mx,
        mx_hosts,
        tlsrpt_txt,
        smtp_skipped: options.no_smtp,
    }
}
