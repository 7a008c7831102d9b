//! `mta-sts dns records`: the two TXT records to publish.

use anyhow::{Context, bail};
use mta_sts_policy::{MxPattern, Policy, StsRecord, normalize_host, policy_id};
use mta_sts_tlsrpt::{ReportUri, TlsRptRecord};
use serde::Serialize;

use crate::Outcome;
use crate::args::{DnsRecordsArgs, RecordFormat};
use crate::input;
use crate::render::{self, Style};

/// One DNS record to publish.
#[derive(Debug, Serialize)]
pub struct TxtRecord {
    /// Owner name, fully qualified with the trailing dot.
    pub name: String,
    /// Always `TXT`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// TTL in seconds.
    pub ttl: u32,
    /// The record value as senders read it (character-strings concatenated).
    pub value: String,
    /// The value split into DNS character-strings of at most 255 bytes each, as data (the
    /// zone form quotes and escapes them).
    pub strings: Vec<String>,
}

impl TxtRecord {
    fn new(name: String, ttl: u32, value: String) -> Self {
        TxtRecord {
            strings: input::character_string_values(&value),
            name,
            kind: "TXT",
            ttl,
            value,
        }
    }

    /// The record as a zone-file line.
    pub fn zone_line(&self) -> String {
        let strings: Vec<String> = self.strings.iter().map(|s| input::zone_quote(s)).collect();
        format!("{} {} IN TXT {}", self.name, self.ttl, strings.join(" "))
    }
}

#[derive(Serialize)]
struct RecordsJson<'a> {
    domain: &'a str,
    policy_id: &'a str,
    policy_url: String,
    records: &'a [TxtRecord],
}

/// The `--rua` URIs, checked; `mailto:tlsrpt@DOMAIN` when none are given.
pub fn report_uris(given: &[String], domain: &str) -> anyhow::Result<Vec<ReportUri>> {
    if given.is_empty() {
        return parse_report_uris(&[format!("mailto:tlsrpt@{domain}")]);
    }
    parse_report_uris(given)
}

/// The `--rua` URIs, checked (none when none are given).
pub fn parse_report_uris(given: &[String]) -> anyhow::Result<Vec<ReportUri>> {
    given
        .iter()
        .map(|uri| {
            ReportUri::parse(uri)
                .map_err(|p| anyhow::anyhow!("--rua {uri}: {} ({})", p.message, p.hint))
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .context("invalid report destination")
}

/// Checks a policy domain name and returns it in normalized form (lowercase A-labels).
pub fn policy_domain(domain: &str) -> anyhow::Result<String> {
    let valid = normalize_host(domain).ok().filter(|normalized| {
        normalized.contains('.')
            && MxPattern::parse(normalized).is_ok_and(|(p, _)| !p.is_wildcard())
    });
    match valid {
        Some(normalized) => Ok(normalized),
        None => bail!("\"{domain}\" is not a valid domain name (e.g. example.com)"),
    }
}

/// The `_mta-sts` and `_smtp._tls` records for a domain, a policy body and report URIs.
///
/// The id is derived from the exact policy body: publish that body, and the id changes
/// exactly when it does.
pub fn build_records(
    domain: &str,
    body: &[u8],
    rua: &[ReportUri],
    ttl: u32,
) -> anyhow::Result<[TxtRecord; 2]> {
    let sts = StsRecord {
        id: policy_id(body),
        extensions: Vec::new(),
    };
    let tlsrpt = TlsRptRecord {
        rua: rua.to_vec(),
        extensions: Vec::new(),
    };
    // What we print must pass our own linter, as any record would.
    for (text, ok) in [
        (
            sts.to_text(),
            StsRecord::lint(sts.to_text().as_bytes()).is_valid(),
        ),
        (
            tlsrpt.to_text(),
            TlsRptRecord::lint(tlsrpt.to_text().as_bytes()).is_valid(),
        ),
    ] {
        if !ok {
            bail!("internal error: generated record {text:?} does not lint");
        }
    }
    Ok([
        TxtRecord::new(format!("_mta-sts.{domain}."), ttl, sts.to_text()),
        TxtRecord::new(format!("_smtp._tls.{domain}."), ttl, tlsrpt.to_text()),
    ])
}

/// `dns records --config FILE`: the records of every domain `mta-sts serve` hosts.
fn records_of_config(path: &std::path::Path, args: &DnsRecordsArgs) -> anyhow::Result<Outcome> {
    let config = mta_sts_server::Config::load(path)?;
    let domains = config.dns_records();
    match args.format {
        RecordFormat::Json => {
            let json: Vec<_> = domains
                .iter()
                .map(|d| {
                    let records = [
                        TxtRecord::new(d.sts.name.clone(), args.ttl, d.sts.value.clone()),
                        TxtRecord::new(d.tlsrpt.name.clone(), args.ttl, d.tlsrpt.value.clone()),
                    ];
                    serde_json::json!({
                        "domain": d.domain,
                        "policy_id": d.policy_id,
                        "policy_url": d.policy_url,
                        "records": records,
                    })
                })
                .collect();
            outln!("{}", serde_json::to_string_pretty(&json)?);
        }
        RecordFormat::Zone => {
            outln!(
                "; MTA-STS and TLS-RPT records for the domains of {}",
                path.display()
            );
            for d in &domains {
                outln!("; {}: policy served at {}", d.domain, d.policy_url);
                for (name, value) in [
                    (&d.sts.name, &d.sts.value),
                    (&d.tlsrpt.name, &d.tlsrpt.value),
                ] {
                    outln!(
                        "{}",
                        TxtRecord::new(name.clone(), args.ttl, value.clone()).zone_line()
                    );
                }
            }
        }
    }
    Ok(Outcome::Ok)
}

/// `dns records --domain D --policy FILE [--rua URI]... [--format zone|json]`.
pub fn records(args: &DnsRecordsArgs, style: Style) -> anyhow::Result<Outcome> {
    if let Some(config) = &args.config {
        return records_of_config(config, args);
    }
    let (Some(domain), Some(policy)) = (&args.domain, &args.policy) else {
        anyhow::bail!("give --domain and --policy, or --config");
    };
    let domain = policy_domain(domain)?;
    let (name, body) = input::read_file(policy)?;
    let lint = Policy::lint(&body);
    if !lint.is_valid() {
        eprint!("{}", render::policy_errors(&name, &body, &lint, style));
        eprintln!(
            "{}",
            style.bad("no records printed: the policy is invalid (see `mta-sts lint policy`)")
        );
        return Ok(Outcome::Problems);
    }
    let rua = report_uris(&args.rua, &domain)?;
    let records = build_records(&domain, &body, &rua, args.ttl)?;
    let id = policy_id(&body);
    match args.format {
        RecordFormat::Json => {
            let json = RecordsJson {
                domain: &domain,
                policy_id: &id,
                policy_url: format!("https://mta-sts.{domain}/.well-known/mta-sts.txt"),
                records: &records,
            };
            outln!("{}", serde_json::to_string_pretty(&json)?);
        }
        RecordFormat::Zone => {
            outln!("; MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) records for {domain}");
            outln!("; Serve {name} unchanged at https://mta-sts.{domain}/.well-known/mta-sts.txt");
            outln!("; before publishing this id; it changes whenever the policy file does.");
            for record in &records {
                outln!("{}", record.zone_line());
            }
            if args.rua.is_empty() {
                outln!(
                    "; rua defaults to mailto:tlsrpt@{domain}: make sure that mailbox exists, or pass --rua"
                );
            }
            outln!(
                "; mta-sts.{domain} also needs an A/AAAA (or CNAME) record for the policy host."
            );
        }
    }
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_fully_qualified_and_lint_clean() {
        let rua = [ReportUri::parse("mailto:tlsrpt@example.com").unwrap()];
        let [sts, tls] = build_records("example.com", b"version: STSv1\r\n", &rua, 300).unwrap();
        assert_eq!(sts.name, "_mta-sts.example.com.");
        assert!(sts.value.starts_with("v=STSv1; id="));
        assert_eq!(
            tls.zone_line(),
            "_smtp._tls.example.com. 300 IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@example.com\""
        );
    }

    #[test]
    fn domains_are_normalized() {
        assert_eq!(policy_domain("Example.COM.").unwrap(), "example.com");
        assert_eq!(
            policy_domain("bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert!(policy_domain("*.example.com").is_err());
        assert!(policy_domain("exa mple.com").is_err());
    }
}
