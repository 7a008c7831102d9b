//! Gathering what a sender would see of a domain: DNS, the policy, every MX address over SMTP.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use futures_util::future::join_all;
use mta_sts_net::{
    DnsError, FetchError, FetchedPolicy, Mx, MxProbe, Net, ProbeOptions, TxtAnswer,
    serialize_rfc3339,
};
use mta_sts_policy::StsRecord;
use mta_sts_tlsrpt::TlsRptRecord;
use serde::{Serialize, Serializer};

use crate::shared::Probes;

/// Most SMTP sessions one domain's check has open at once: a domain with many MX hosts and
/// addresses must not open dozens of sockets in a burst.
pub const MAX_PROBES_PER_DOMAIN: usize = 8;

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
    /// When the check ran, Unix seconds (RFC 3339 UTC in JSON).
    #[serde(serialize_with = "serialize_rfc3339")]
    pub checked_at: i64,
    /// The DNS server asked (`IP:PORT`), or `None` for the system's resolver.
    pub resolver: Option<String>,
    /// `_mta-sts.<domain>` TXT.
    #[serde(serialize_with = "sts_txt_json")]
    pub sts_txt: Result<TxtAnswer, DnsError>,
    /// The policy fetch (attempted even without a TXT record, to diagnose half-done setups).
    #[serde(serialize_with = "policy_json")]
    pub policy: Result<FetchedPolicy, FetchError>,
    /// The MX records.
    #[serde(serialize_with = "outcome")]
    pub mx: Result<Vec<Mx>, DnsError>,
    /// Each MX host (or the domain itself, as implicit MX) and its SMTP probes.
    pub mx_hosts: Vec<MxHost>,
    /// `_smtp._tls.<domain>` TXT.
    #[serde(serialize_with = "tlsrpt_txt_json")]
    pub tlsrpt_txt: Result<TxtAnswer, DnsError>,
    /// Port 25 was not tried (`--no-smtp`).
    pub smtp_skipped: bool,
}

impl Evidence {
    /// Whether the domain itself does not exist: its MX lookup answered NXDOMAIN.
    pub fn domain_not_found(&self) -> bool {
        matches!(&self.mx, Err(DnsError::NoRecords { nxdomain: true, .. }))
    }

    /// Whether not one DNS lookup got an answer from the resolver (not even an error code):
    /// the resolver is unreachable, and nothing says anything about the domain.
    pub fn resolver_unreachable(&self) -> bool {
        let silent = |r: Result<(), &DnsError>| {
            matches!(
                r,
                Err(DnsError::Failed {
                    reason: mta_sts_net::DnsFailure::Timeout | mta_sts_net::DnsFailure::Other(_),
                    ..
                })
            )
        };
        silent(self.sts_txt.as_ref().map(drop))
            && silent(self.mx.as_ref().map(drop))
            && silent(self.tlsrpt_txt.as_ref().map(drop))
    }
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

/// Bytes from the network as text: as they are when they are valid UTF-8 (`false`); otherwise
/// losslessly escaped (`true`): every backslash doubled and every byte that is not part of
/// valid UTF-8 written `\xNN`.
pub fn bytes_as_text(bytes: &[u8]) -> (Cow<'_, str>, bool) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return (Cow::Borrowed(text), false);
    }
    let mut out = String::with_capacity(bytes.len() + 16);
    for chunk in bytes.utf8_chunks() {
        out.push_str(&chunk.valid().replace('\\', "\\\\"));
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    (Cow::Owned(out), true)
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

/// A TXT answer for programs: the records as text, and the record a sender uses, parsed.
#[derive(Serialize)]
struct TxtJson<'a, P> {
    /// Each record, strings concatenated, as text.
    records: Vec<Cow<'a, str>>,
    /// Some record is not UTF-8 and is shown escaped (see [`bytes_as_text`]).
    escaped: bool,
    /// The CNAME targets followed.
    cname_chain: &'a [String],
    /// The record a sender uses, when it is valid.
    parsed: Option<P>,
}

fn txt_json<'a, P>(answer: &'a TxtAnswer, parsed: Option<P>) -> TxtJson<'a, P> {
    let texts: Vec<(Cow<'a, str>, bool)> =
        answer.records.iter().map(|r| bytes_as_text(r)).collect();
    TxtJson {
        escaped: texts.iter().any(|(_, escaped)| *escaped),
        records: texts.into_iter().map(|(text, _)| text).collect(),
        cname_chain: &answer.cname_chain,
        parsed,
    }
}

fn sts_txt_json<S: Serializer>(
    value: &Result<TxtAnswer, DnsError>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let json = value
        .as_ref()
        .map(|answer| txt_json(answer, StsRecord::lint_rrset(&answer.records).value));
    outcome(&json, serializer)
}

fn tlsrpt_txt_json<S: Serializer>(
    value: &Result<TxtAnswer, DnsError>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let json = value
        .as_ref()
        .map(|answer| txt_json(answer, TlsRptRecord::lint_rrset(&answer.records).value));
    outcome(&json, serializer)
}

/// A fetched policy for programs: the body as text beside how it was served.
#[derive(Serialize)]
struct PolicyJson<'a> {
    url: &'a str,
    /// Always 200: any other status is a fetch error.
    status: u16,
    content_type: Option<&'a str>,
    /// Body size in bytes.
    size: usize,
    body: Cow<'a, str>,
    /// The body is not UTF-8 and is shown escaped (see [`bytes_as_text`]).
    body_escaped: bool,
    peer: std::net::SocketAddr,
    certificate: &'a mta_sts_net::CertSummary,
    tls_version: &'a str,
    cipher_suite: &'a str,
    elapsed_ms: u64,
}

fn policy_json<S: Serializer>(
    value: &Result<FetchedPolicy, FetchError>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let json = value.as_ref().map(|p| {
        let (body, body_escaped) = bytes_as_text(&p.body);
        PolicyJson {
            url: &p.url,
            status: 200,
            content_type: p.content_type.as_deref(),
            size: p.body.len(),
            body,
            body_escaped,
            peer: p.peer,
            certificate: &p.certificate,
            tls_version: &p.tls_version,
            cipher_suite: &p.cipher_suite,
            elapsed_ms: u64::try_from(p.elapsed.as_millis()).unwrap_or(u64::MAX),
        }
    });
    outcome(&json, serializer)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Looks at `domain` as a sender would. DNS lookups and the policy fetch run at once; then the
/// addresses of every MX host are looked up at once and probed, at most
/// [`MAX_PROBES_PER_DOMAIN`] sessions at a time.
pub async fn gather(net: &Net, domain: &str, options: CheckOptions) -> Evidence {
    gather_with(net, &Probes::unshared(), domain, options).await
}

/// [`gather`], taking the SMTP probes from `probes` (shared by the domains of a run).
pub(crate) async fn gather_with(
    net: &Net,
    probes: &Probes,
    domain: &str,
    options: CheckOptions,
) -> Evidence {
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
        // The domain does not exist: there is no host to deliver to, implicit or not.
        Err(DnsError::NoRecords { nxdomain: true, .. }) => Vec::new(),
        // RFC 5321 §5.1: without MX records the domain itself is the mail host.
        Err(e) if e.is_no_records() => vec![(domain.to_owned(), 0, true)],
        Err(_) => Vec::new(),
    };
    let mx_hosts = if options.no_smtp {
        hosts
            .into_iter()
            .map(|(host, preference, implicit)| MxHost {
                host,
                preference,
                implicit,
                probes: Ok(Vec::new()),
            })
            .collect()
    } else {
        probe_hosts(net, probes, hosts, options).await
    };
    Evidence {
        domain: domain.to_owned(),
        checked_at: now(),
        resolver: net.config().resolver.map(|addr| addr.to_string()),
        sts_txt,
        policy,
        mx,
        mx_hosts,
        tlsrpt_txt,
        smtp_skipped: options.no_smtp,
    }
}

/// Every address of every host, probed with at most [`MAX_PROBES_PER_DOMAIN`] sessions open;
/// results stay in host and address order.
async fn probe_hosts(
    net: &Net,
    shared: &Probes,
    hosts: Vec<(String, u16, bool)>,
    options: CheckOptions,
) -> Vec<MxHost> {
    let probe_options = ProbeOptions::default().with_without_sni(options.without_sni);
    let addresses = join_all(
        hosts
            .iter()
            .map(|(host, ..)| net.resolver().addresses(host)),
    )
    .await;
    let sessions: Vec<(usize, &str, IpAddr)> = hosts
        .iter()
        .zip(&addresses)
        .enumerate()
        .flat_map(|(index, ((host, ..), found))| {
            found
                .iter()
                .flatten()
                .map(move |ip| (index, host.as_str(), *ip))
        })
        .collect();
    let mut probes: Vec<Vec<MxProbe>> = vec![Vec::new(); hosts.len()];
    let finished: Vec<(usize, MxProbe)> = futures_util::stream::iter(sessions)
        .map(|(index, host, ip)| async move {
            (index, shared.probe(net, host, ip, probe_options).await)
        })
        .buffered(MAX_PROBES_PER_DOMAIN)
        .collect()
        .await;
    for (index, probe) in finished {
        if let Some(slot) = probes.get_mut(index) {
            slot.push(probe);
        }
    }
    hosts
        .into_iter()
        .zip(addresses)
        .zip(probes)
        .map(|(((host, preference, implicit), found), probes)| MxHost {
            host,
            preference,
            implicit,
            probes: found.map(|_| probes),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_kept_and_other_bytes_are_escaped_losslessly() {
        assert_eq!(
            bytes_as_text(b"v=STSv1; id=1"),
            ("v=STSv1; id=1".into(), false)
        );
        assert!(!bytes_as_text("café".as_bytes()).1);
        assert_eq!(
            bytes_as_text(b"a\\b\xff\xfec"),
            ("a\\\\b\\xff\\xfec".into(), true)
        );
    }
}
