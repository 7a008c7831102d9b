//! From evidence to findings and verdicts. Pure: no I/O, so every rule is unit-testable.

use mta_sts_net::{
    CertProblem, ConnectFailure, DnsError, FetchError, MxProbe, ProbeOutcome, TlsFailure,
};
use mta_sts_policy::{Mode, Policy, Severity, StsRecord};
use mta_sts_tlsrpt::TlsRptRecord;
use serde::Serialize;

use crate::evidence::{Evidence, MxHost};
use crate::finding::{Area, Finding};

const RFC_TXT: &str = "RFC 8461 §3.1";
const RFC_FETCH: &str = "RFC 8461 §3.3";
const RFC_MODE: &str = "RFC 8461 §5";
const RFC_MX: &str = "RFC 8461 §4.1";
const RFC_CERT: &str = "RFC 8461 §4.2";
const RFC_TLSRPT: &str = "RFC 8460 §3";

/// Certificates expiring within this many seconds get a warning (14 days).
pub const EXPIRY_WARNING: i64 = 14 * 86_400;

/// A policy fetch slower than this gets a warning: senders wait at most a minute
/// (RFC 8461 §3.3) and many give up much sooner.
pub const SLOW_FETCH: std::time::Duration = std::time::Duration::from_secs(10);

/// What a compliant sender does with mail for the domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum SenderVerdict {
    /// `enforce`, and every MX host passes: mail goes only over authenticated TLS.
    Protected,
    /// `enforce`, MX hosts not tested over SMTP (`--no-smtp` or port 25 unreachable from here).
    EnforcedUntested,
    /// `enforce`, but some MX hosts, or some addresses of them, fail: senders skip those and
    /// deliver to the others.
    Degraded {
        /// MX hosts senders refuse at one address or more.
        failing_mx: Vec<String>,
    },
    /// `enforce`, and no address of any MX host passes: senders defer, then bounce, all mail.
    MailWouldBounce {
        /// MX hosts senders refuse.
        failing_mx: Vec<String>,
    },
    /// The MX records cannot be looked up: senders defer mail until DNS answers.
    MailDeferred {
        /// The lookup failure.
        reason: String,
    },
    /// `testing`: senders deliver anyway and report failures.
    Testing {
        /// MX hosts that would fail under `enforce`.
        would_fail_under_enforce: Vec<String>,
    },
    /// No usable policy (none published, invalid, unreachable, or mode `none`): senders
    /// deliver as without MTA-STS.
    NotProtected {
        /// Why, in a few words.
        reason: String,
    },
    /// Nothing could be looked up (the resolver does not answer): the check says nothing
    /// about the domain.
    Unknown {
        /// Why.
        reason: String,
    },
}

impl SenderVerdict {
    /// One line for people.
    pub fn summary(&self) -> String {
        match self {
            SenderVerdict::Protected => "protected: senders deliver only over authenticated TLS".into(),
            SenderVerdict::EnforcedUntested => {
                "enforced, MX hosts not tested over SMTP from here".into()
            }
            SenderVerdict::Degraded { failing_mx } => format!(
                "degraded: senders refuse {} (at one address or more) and deliver to the other MX hosts and addresses",
                failing_mx.join(", ")
            ),
            SenderVerdict::MailWouldBounce { failing_mx } => format!(
                "mail would bounce: senders refuse every MX host ({})",
                failing_mx.join(", ")
            ),
            SenderVerdict::Testing { would_fail_under_enforce } if would_fail_under_enforce.is_empty() => {
                "not protected yet (testing): senders report failures but deliver anyway; every MX would pass under enforce".into()
            }
            SenderVerdict::Testing { would_fail_under_enforce } => format!(
                "not protected yet (testing); under enforce these MX would fail: {}",
                would_fail_under_enforce.join(", ")
            ),
            SenderVerdict::MailDeferred { reason } => format!("mail is deferred: {reason}"),
            SenderVerdict::NotProtected { reason } => format!("not protected: {reason}"),
            SenderVerdict::Unknown { reason } => format!("unknown: {reason}"),
        }
    }
}

/// Strict RFC hygiene: how many errors and warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Hygiene {
    /// Findings at error level.
    pub errors: usize,
    /// Findings at warning level.
    pub warnings: usize,
}

/// The result of checking one domain.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The domain checked.
    pub domain: String,
    /// What a compliant sender does.
    pub sender: SenderVerdict,
    /// RFC hygiene.
    pub hygiene: Hygiene,
    /// Set when the check could not be completed (e.g. the resolver does not answer); the
    /// verdicts then say little.
    pub incomplete: Option<String>,
    /// Every finding, most severe first within each area.
    pub findings: Vec<Finding>,
    /// The policy in force, if a valid one was fetched.
    pub policy: Option<Policy>,
    /// What was seen.
    pub evidence: Evidence,
}

impl Report {
    /// True when any finding is an error or a warning (exit status 1).
    pub fn has_problems(&self) -> bool {
        self.hygiene.errors + self.hygiene.warnings > 0
    }

    /// Why `area` was not checked, when it was not (its findings are then empty or say so).
    pub fn not_checked(&self, area: Area) -> Option<String> {
        let e = &self.evidence;
        let has_findings = self.findings.iter().any(|f| f.area == area);
        if e.resolver_unreachable() {
            return (area != Area::Domain).then(|| "nothing could be looked up".to_owned());
        }
        if e.domain_not_found() && area != Area::Domain {
            return Some(format!("{} does not exist", e.domain));
        }
        if has_findings {
            return None;
        }
        if let Some(why) = &self.incomplete {
            return Some(why.clone());
        }
        let no_record = e.sts_txt.is_err() || self.policy_record_invalid();
        match area {
            Area::Policy if no_record && e.policy.is_err() => Some(
                "no usable _mta-sts record, so senders fetch no policy (and none is served)"
                    .to_owned(),
            ),
            Area::Mx if self.policy.is_none() => match &e.mx {
                Ok(_) => Some("no policy to match the MX hosts against".to_owned()),
                Err(_) => None,
            },
            Area::Smtp if e.smtp_skipped => Some("--no-smtp".to_owned()),
            Area::Smtp if e.mx_hosts.is_empty() => Some("no MX host to connect to".to_owned()),
            _ => None,
        }
    }

    fn policy_record_invalid(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.area == Area::StsRecord && f.severity == Severity::Error)
    }
}

/// Derives findings and verdicts from what was seen.
pub fn analyze(evidence: Evidence) -> Report {
    let mut a = Analysis {
        domain: evidence.domain.clone(),
        now: evidence.checked_at,
        findings: Vec::new(),
    };
    if evidence.resolver_unreachable() {
        return resolver_unreachable(a, evidence);
    }
    if evidence.domain_not_found() {
        a.push(
            Finding::new("domain-not-found", Severity::Error, Area::Domain, &a.domain, "the domain does not exist in DNS (NXDOMAIN), so mail to it bounces; nothing else was checked")
                .evidence(evidence.mx.as_ref().err().map(ToString::to_string).unwrap_or_default())
                .rfc("RFC 5321 §5.1")
                .fix("check the spelling of the domain, or register and delegate it"),
        );
        return report(
            a,
            evidence,
            None,
            SenderVerdict::NotProtected {
                reason: "the domain does not exist (NXDOMAIN)".into(),
            },
        );
    }
    let record = a.sts_record(&evidence);
    let policy = a.policy(&evidence, record.is_some());
    let mode = policy.as_ref().map(|p| p.mode);
    if let Some(p) = &policy {
        a.mode(p);
    }
    a.mx_records(&evidence, policy.as_ref());
    let smtp = a.smtp(&evidence, mode);
    a.tlsrpt(&evidence);

    let sender = sender_verdict(
        &evidence,
        record.is_some(),
        policy.as_ref(),
        &smtp,
        &a.findings,
    );
    report(a, evidence, policy, sender)
}

/// The report, findings sorted by area and severity.
fn report(
    mut a: Analysis,
    evidence: Evidence,
    policy: Option<Policy>,
    sender: SenderVerdict,
) -> Report {
    a.findings
        .sort_by(|x, y| x.area.cmp(&y.area).then(y.severity.cmp(&x.severity)));
    let count = |s| a.findings.iter().filter(|f| f.severity == s).count();
    let hygiene = Hygiene {
        errors: count(Severity::Error),
        warnings: count(Severity::Warning),
    };
    Report {
        domain: evidence.domain.clone(),
        sender,
        hygiene,
        incomplete: incomplete(&evidence),
        findings: a.findings,
        policy,
        evidence,
    }
}

/// No lookup got any answer: one finding about the resolver, none about the domain's zone.
fn resolver_unreachable(mut a: Analysis, evidence: Evidence) -> Report {
    let resolver = match &evidence.resolver {
        Some(addr) => format!("the DNS resolver {addr}"),
        None => "the system's DNS resolver (/etc/resolv.conf)".to_owned(),
    };
    let seen = evidence
        .mx
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    a.push(
        Finding::new(
            "resolver-unreachable",
            Severity::Error,
            Area::Domain,
            evidence
                .resolver
                .clone()
                .unwrap_or_else(|| "system resolver".to_owned()),
            format!(
                "no DNS query got an answer, so nothing about {} could be checked",
                a.domain
            ),
        )
        .evidence(seen)
        .fix("check --resolver (IP or IP:PORT) or the network, then run the check again"),
    );
    let reason = format!("{resolver} does not answer");
    report(a, evidence, None, SenderVerdict::Unknown { reason })
}

/// The check says little when the resolver answered nothing at all.
fn incomplete(e: &Evidence) -> Option<String> {
    if e.resolver_unreachable() {
        // The verdict names the resolver; this says what that means for the report.
        return Some("no DNS lookup got an answer".to_owned());
    }
    let failed = |r: Result<(), &DnsError>| matches!(r, Err(DnsError::Failed { .. }));
    let all_failed = failed(e.sts_txt.as_ref().map(drop))
        && failed(e.mx.as_ref().map(drop))
        && failed(e.tlsrpt_txt.as_ref().map(drop));
    all_failed.then(|| match &e.mx {
        Err(err) => format!("no DNS answer for the domain: {err}"),
        Ok(_) => "no DNS answer for the domain".to_owned(),
    })
}

/// An MX host fails when the policy does not cover it or any of its addresses fails (senders
/// may use any address); mail bounces only when no address of any MX host passes (a sender
/// that fails at one address tries the next).
fn sender_verdict(
    e: &Evidence,
    has_record: bool,
    policy: Option<&Policy>,
    smtp: &FailingMx,
    findings: &[Finding],
) -> SenderVerdict {
    match &e.mx {
        Err(err) if !err.is_no_records() => {
            return SenderVerdict::MailDeferred {
                reason: format!("the MX records cannot be looked up ({err})"),
            };
        }
        Ok(records) if records.iter().any(|r| r.is_null()) => {
            return SenderVerdict::NotProtected {
                reason: "the domain receives no mail (null MX)".into(),
            };
        }
        _ => {}
    }
    let Some(policy) = policy.filter(|_| has_record) else {
        let reason = if !has_record {
            "no usable _mta-sts record, so senders never fetch a policy"
        } else {
            "the policy cannot be fetched or is invalid, so senders apply none"
        };
        return SenderVerdict::NotProtected {
            reason: reason.into(),
        };
    };
    let uncovered: Vec<String> = e
        .mx_hosts
        .iter()
        .filter(|h| policy.matching_mx(&h.host).is_none())
        .map(|h| h.host.clone())
        .collect();
    let mut failing_mx: Vec<String> = smtp.any_address.iter().chain(&uncovered).cloned().collect();
    failing_mx.sort();
    failing_mx.dedup();
    let mut refused: Vec<&String> = smtp.every_address.iter().chain(&uncovered).collect();
    refused.sort();
    refused.dedup();
    let untested = e.smtp_skipped || findings.iter().any(|f| f.code == "smtp-unreachable");
    match policy.mode {
        Mode::None => SenderVerdict::NotProtected {
            reason: "the policy mode is none".into(),
        },
        Mode::Testing => SenderVerdict::Testing {
            would_fail_under_enforce: failing_mx,
        },
        Mode::Enforce if !refused.is_empty() && refused.len() >= e.mx_hosts.len() => {
            SenderVerdict::MailWouldBounce { failing_mx }
        }
        Mode::Enforce if !failing_mx.is_empty() => SenderVerdict::Degraded { failing_mx },
        Mode::Enforce if untested => SenderVerdict::EnforcedUntested,
        Mode::Enforce => SenderVerdict::Protected,
    }
}

/// The MX hosts with failing addresses, by [`Analysis::smtp`].
#[derive(Debug, Default)]
struct FailingMx {
    /// Hosts where at least one address fails.
    any_address: Vec<String>,
    /// Hosts where every address fails (or none can be found): no sender delivers there.
    every_address: Vec<String>,
}

struct Analysis {
    domain: String,
    now: i64,
    findings: Vec<Finding>,
}

/// How bad a problem at an MX host is: under `enforce` senders refuse it (error); otherwise it
/// is what stands between the domain and `enforce` (warning).
fn mx_severity(mode: Option<Mode>) -> Severity {
    if mode == Some(Mode::Enforce) {
        Severity::Error
    } else {
        Severity::Warning
    }
}

impl Analysis {
    fn push(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    fn sts_record(&mut self, e: &Evidence) -> Option<StsRecord> {
        let subject = format!("_mta-sts.{}", self.domain);
        let publish = format!(
            "run `mta-sts suggest {}` for the policy and records to publish",
            self.domain
        );
        match &e.sts_txt {
            Err(err) if err.is_no_records() => {
                self.push(
                    Finding::new(
                        "sts-record-missing",
                        Severity::Warning,
                        Area::StsRecord,
                        &subject,
                        "the domain does not publish MTA-STS, so senders deliver without it",
                    )
                    .evidence(err.to_string())
                    .rfc(RFC_TXT)
                    .fix(publish),
                );
                None
            }
            Err(err) => {
                self.push(
                    Finding::new("sts-record-lookup-failed", Severity::Error, Area::StsRecord, &subject, "the _mta-sts record cannot be looked up; senders cannot discover the policy")
                        .evidence(err.to_string())
                        .rfc(RFC_TXT)
                        .fix("make the domain's name servers answer TXT queries for this name"),
                );
                None
            }
            Ok(answer) => {
                let lint = StsRecord::lint_rrset(&answer.records);
                self.record_findings(
                    &answer.records,
                    &lint.diagnostics,
                    "sts-record",
                    Area::StsRecord,
                    &subject,
                    &publish,
                );
                lint.value
            }
        }
    }

    /// The linter's findings on a TXT RRset, with the records as evidence. "No record starts
    /// with the version" is the record being missing: a warning with `publish` as the fix.
    fn record_findings(
        &mut self,
        records: &[Vec<u8>],
        diagnostics: &[mta_sts_policy::Diagnostic],
        prefix: &str,
        area: Area,
        subject: &str,
        publish: &str,
    ) {
        let shown: Vec<String> = records
            .iter()
            .map(|r| format!("\"{}\"", String::from_utf8_lossy(r)))
            .collect();
        for d in diagnostics {
            let mut f =
                Finding::from_diagnostic(prefix, area, subject, d).evidence(shown.join(", "));
            if d.code == "no-record" {
                f.code = format!("{prefix}-missing");
                f.severity = Severity::Warning;
                f.message = format!("{}, so senders do not use it", d.message);
                f.fix = publish.to_owned();
            }
            self.push(f);
        }
    }

    fn policy(&mut self, e: &Evidence, has_record: bool) -> Option<Policy> {
        let url = format!("https://mta-sts.{}/.well-known/mta-sts.txt", self.domain);
        let fetched = match &e.policy {
            Ok(fetched) => fetched,
            Err(err) if has_record => {
                let (code, fix) = fetch_error_code(err);
                self.push(
                    Finding::new(
                        code,
                        Severity::Error,
                        Area::Policy,
                        &url,
                        "the policy cannot be fetched, so senders apply none",
                    )
                    .evidence(err.to_string())
                    .rfc(RFC_FETCH)
                    .fix(fix),
                );
                return None;
            }
            Err(_) => return None,
        };
        if !has_record {
            self.push(
                Finding::new("policy-without-record", Severity::Warning, Area::Policy, &url, "a policy is served, but without a valid _mta-sts record senders never fetch it")
                    .evidence(format!("HTTP 200, {} bytes from {}", fetched.body.len(), fetched.peer))
                    .rfc(RFC_TXT)
                    .fix("publish the _mta-sts TXT record (mta-sts dns records)"),
            );
        }
        if fetched.elapsed > SLOW_FETCH {
            self.push(
                Finding::new("policy-fetch-slow", Severity::Warning, Area::Policy, &url, format!("the policy host took {} s to serve the policy; senders give up at 60 s or sooner", fetched.elapsed.as_secs()))
                    .evidence(format!("{} bytes in {} ms from {}", fetched.body.len(), fetched.elapsed.as_millis(), fetched.peer))
                    .rfc(RFC_FETCH)
                    .fix("serve the policy within a second or two (a static file, near the senders)"),
            );
        }
        let days_left = (fetched.certificate.not_after - self.now) / 86_400;
        if fetched.certificate.not_after - self.now < EXPIRY_WARNING {
            self.push(
                Finding::new("policy-cert-expiring", Severity::Warning, Area::Policy, &url, format!("the policy host's certificate expires in {days_left} days"))
                    .evidence(format!("valid until {} (issuer {})", mta_sts_net::utc(fetched.certificate.not_after), fetched.certificate.issuer))
                    .rfc(RFC_FETCH)
                    .fix("renew the certificate of mta-sts.<domain> (or automate it: mta-sts serve --acme-email)"),
            );
        }
        let lint = Policy::lint(&fetched.body);
        for d in &lint.diagnostics {
            self.push(Finding::from_diagnostic("policy", Area::Policy, &url, d));
        }
        lint.into_policy()
    }

    fn mode(&mut self, policy: &Policy) {
        let subject = format!("https://mta-sts.{}/.well-known/mta-sts.txt", self.domain);
        match policy.mode {
            Mode::Testing => self.push(
                Finding::new("mode-testing", Severity::Warning, Area::Policy, subject, "the policy is in testing: senders report failures but still deliver without TLS")
                    .evidence("mode: testing")
                    .rfc(RFC_MODE)
                    .fix("once TLS reports show no failures for two weeks, switch to mode: enforce"),
            ),
            Mode::None => self.push(
                Finding::new("mode-none", Severity::Warning, Area::Policy, subject, "the policy mode is none: senders treat the domain as having no policy")
                    .evidence("mode: none")
                    .rfc(RFC_MODE)
                    .fix("use mode: testing, then enforce (none is only for withdrawing MTA-STS)"),
            ),
            Mode::Enforce => {}
        }
    }

    fn mx_records(&mut self, e: &Evidence, policy: Option<&Policy>) {
        let subject = self.domain.clone();
        match &e.mx {
            Err(err) if !err.is_no_records() => self.push(
                Finding::new("mx-lookup-failed", Severity::Error, Area::Mx, &subject, "the MX records cannot be looked up")
                    .evidence(err.to_string())
                    .rfc("RFC 5321 §5.1")
                    .fix("make the domain's name servers answer MX queries"),
            ),
            Err(err) => self.push(
                Finding::new("implicit-mx", Severity::Warning, Area::Mx, &subject, "the domain has no MX records; senders deliver to the domain's own address (implicit MX)")
                    .evidence(err.to_string())
                    .rfc("RFC 5321 §5.1")
                    .fix(format!("publish MX records; meanwhile the policy must list \"mx: {subject}\"")),
            ),
            Ok(records) if records.iter().any(|r| r.is_null()) => self.push(
                Finding::new("null-mx", Severity::Info, Area::Mx, &subject, "the domain publishes a null MX: it receives no mail, so MTA-STS has nothing to protect")
                    .evidence("MX 0 .")
                    .rfc("RFC 7505"),
            ),
            Ok(_) => {}
        }
        let Some(policy) = policy else { return };
        let severity = mx_severity(Some(policy.mode));
        for host in &e.mx_hosts {
            if policy.matching_mx(&host.host).is_none() && policy.mode != Mode::None {
                let patterns: Vec<String> = policy.mx.iter().map(ToString::to_string).collect();
                self.push(
                    Finding::new("mx-not-covered", severity, Area::Mx, &host.host, "no policy mx pattern covers this MX host, so senders refuse it under enforce")
                        .evidence(format!("policy mx: {}", if patterns.is_empty() { "none".to_owned() } else { patterns.join(", ") }))
                        .rfc(RFC_MX)
                        .fix(format!("add \"mx: {}\" to the policy (and publish a new id)", host.host)),
                );
            }
        }
        if !e.mx_hosts.is_empty() {
            for pattern in &policy.mx {
                if !e.mx_hosts.iter().any(|h| pattern.matches(&h.host)) {
                    self.push(
                        Finding::new("policy-mx-unused", Severity::Warning, Area::Mx, pattern.to_string(), "this policy mx pattern matches no current MX host")
                            .evidence(format!("MX hosts: {}", e.mx_hosts.iter().map(|h| h.host.as_str()).collect::<Vec<_>>().join(", ")))
                            .rfc(RFC_MX)
                            .fix("remove stale patterns, so a host you no longer run cannot be used to receive your mail"),
                    );
                }
            }
        }
    }

    /// Probes → findings; returns the MX hosts with failing addresses.
    fn smtp(&mut self, e: &Evidence, mode: Option<Mode>) -> FailingMx {
        if e.smtp_skipped {
            if !e.mx_hosts.is_empty() {
                self.push(
                    Finding::new(
                        "smtp-skipped",
                        Severity::Info,
                        Area::Smtp,
                        self.domain.clone(),
                        "STARTTLS and certificates of the MX hosts were not checked (--no-smtp)",
                    )
                    .rfc(RFC_CERT),
                );
            }
            return FailingMx::default();
        }
        let probes: Vec<&MxProbe> = e
            .mx_hosts
            .iter()
            .filter_map(|h| h.probes.as_ref().ok())
            .flatten()
            .collect();
        // Nothing answered on port 25 at all: most likely this network blocks outbound SMTP.
        let unreachable = |p: &&MxProbe| {
            matches!(
                p.outcome,
                ProbeOutcome::ConnectFailed {
                    reason: ConnectFailure::Timeout | ConnectFailure::Unreachable(_)
                }
            )
        };
        if !probes.is_empty() && probes.iter().all(unreachable) {
            let port = probes.first().map_or(25, |p| p.addr.port());
            self.push(
                Finding::new("smtp-unreachable", Severity::Warning, Area::Smtp, self.domain.clone(), format!("no MX address answered on port {port} from here; this network probably blocks outbound SMTP, so TLS on the MX hosts is untested"))
                    .evidence(format!("{} addresses timed out", probes.len()))
                    .rfc(RFC_CERT)
                    .fix("run the check from a mail server, or pass --no-smtp"),
            );
            return FailingMx::default();
        }
        let severity = mx_severity(mode);
        let mut failing = FailingMx::default();
        for host in &e.mx_hosts {
            let (any, every) = self.mx_host(host, severity);
            if any {
                failing.any_address.push(host.host.clone());
            }
            if every {
                failing.every_address.push(host.host.clone());
            }
        }
        failing
    }

    /// Findings for one MX host; whether any address fails, and whether every one does.
    fn mx_host(&mut self, host: &MxHost, severity: Severity) -> (bool, bool) {
        let probes = match &host.probes {
            Ok(p) if !p.is_empty() => p,
            Ok(_) => return (false, false),
            Err(err) => {
                let code = if err.is_no_records() {
                    "mx-no-address"
                } else {
                    "mx-address-lookup-failed"
                };
                self.push(
                    Finding::new(
                        code,
                        Severity::Error,
                        Area::Smtp,
                        &host.host,
                        "the MX host has no usable address, so no sender can deliver to it",
                    )
                    .evidence(err.to_string())
                    .rfc("RFC 5321 §5.1")
                    .fix(
                        "publish A/AAAA records for the MX host, or remove it from the MX records",
                    ),
                );
                return (true, true);
            }
        };
        let mut failed = 0;
        for probe in probes {
            let subject = format!("{} [{}]:{}", host.host, probe.addr.ip(), probe.addr.port());
            if let Some(f) = self.probe(probe, &subject, severity) {
                failed += 1;
                self.push(f);
            }
            if let Some(without) = &probe.without_sni
                && probe.is_valid_for_mta_sts()
                && !without.is_valid_for_mta_sts()
            {
                self.push(
                    Finding::new("smtp-cert-needs-sni", Severity::Info, Area::Smtp, &subject, "without SNI the server presents a certificate that is not valid for the MX host; senders that send no SNI fail")
                        .evidence(without.outcome.to_string())
                        .rfc(RFC_CERT),
                );
            }
        }
        (failed > 0, failed == probes.len())
    }

    /// The finding for one probe that fails (also pushes expiry warnings for ones that pass).
    fn probe(&mut self, probe: &MxProbe, subject: &str, severity: Severity) -> Option<Finding> {
        let failure = |code: &str, message: String, fix: &str| {
            Some(
                Finding::new(code, severity, Area::Smtp, subject, message)
                    .evidence(probe.outcome.to_string())
                    .rfc(RFC_CERT)
                    .fix(fix),
            )
        };
        match &probe.outcome {
            ProbeOutcome::Ok => {}
            ProbeOutcome::ConnectFailed { reason } => {
                let port = probe.addr.port();
                let (code, message) = match reason {
                    ConnectFailure::Timeout => (
                        "smtp-connect-timeout",
                        format!(
                            "no answer on port {port} in time: the address drops connections (firewall) or is down"
                        ),
                    ),
                    ConnectFailure::Refused => (
                        "smtp-connect-failed",
                        format!("connection to port {port} refused: nothing listens there"),
                    ),
                    _ => (
                        "smtp-connect-failed",
                        format!("cannot connect to port {port}: {reason}"),
                    ),
                };
                return failure(
                    code,
                    message,
                    "make the MX host reachable on port 25 at every address it publishes, or remove the address or the host",
                );
            }
            ProbeOutcome::BannerTimeout | ProbeOutcome::Timeout { .. } => {
                return failure(
                    "smtp-timeout",
                    "the SMTP server does not answer in time".into(),
                    "check the MX host's SMTP service",
                );
            }
            ProbeOutcome::BannerRejected { .. } | ProbeOutcome::EhloRejected { .. } => {
                return failure(
                    "smtp-rejected",
                    "the SMTP server refuses sessions".into(),
                    "check the MX host's SMTP service (421/554 greeting)",
                );
            }
            ProbeOutcome::NoStartTls => {
                return failure(
                    "smtp-no-starttls",
                    "the SMTP server does not offer STARTTLS".into(),
                    "enable STARTTLS with a certificate for the MX host name",
                );
            }
            ProbeOutcome::StartTlsRejected { .. } => {
                return failure(
                    "smtp-starttls-rejected",
                    "STARTTLS is offered but refused".into(),
                    "fix the server's TLS configuration (certificate and key)",
                );
            }
            ProbeOutcome::HandshakeFailed {
                legacy_tls_only: true,
                ..
            } => {
                return failure(
                    "smtp-tls-legacy-only",
                    "the server speaks only TLS 1.0/1.1; MTA-STS senders need TLS 1.2 or newer"
                        .into(),
                    "enable TLS 1.2 and 1.3 on the MX host",
                );
            }
            ProbeOutcome::HandshakeFailed { .. } => {
                return failure(
                    "smtp-handshake-failed",
                    "the TLS handshake after STARTTLS fails".into(),
                    "fix the server's TLS configuration (certificate, key, protocols)",
                );
            }
            _ => {
                return failure(
                    "smtp-protocol-error",
                    "the SMTP session broke off before TLS was established".into(),
                    "check the MX host's SMTP service",
                );
            }
        }
        let tls = probe.tls.as_ref()?;
        if let Some(problem) = tls.verification.problems.first() {
            let (code, fix) = cert_problem_code(problem);
            return Some(
                Finding::new(
                    code,
                    severity,
                    Area::Smtp,
                    subject,
                    format!("the certificate is not acceptable to MTA-STS senders: {problem}"),
                )
                .evidence(match &tls.certificate {
                    Some(c) => format!(
                        "subject {}, names {}, issuer {}, {}",
                        c.subject,
                        c.subject_alt_names.join(" "),
                        c.issuer,
                        tls.version
                    ),
                    None => tls.version.clone(),
                })
                .rfc(RFC_CERT)
                .fix(fix),
            );
        }
        if let Some(cert) = &tls.certificate
            && cert.not_after - self.now < EXPIRY_WARNING
        {
            self.push(
                Finding::new(
                    "smtp-cert-expiring",
                    Severity::Warning,
                    Area::Smtp,
                    subject,
                    format!(
                        "the certificate expires in {} days",
                        (cert.not_after - self.now) / 86_400
                    ),
                )
                .evidence(format!("issuer {}", cert.issuer))
                .rfc(RFC_CERT)
                .fix("renew the MX host's certificate (and automate renewal)"),
            );
        }
        None
    }

    fn tlsrpt(&mut self, e: &Evidence) {
        let subject = format!("_smtp._tls.{}", self.domain);
        let publish = format!(
            "publish \"v=TLSRPTv1; rua=mailto:tlsrpt@{}\" so senders tell you when TLS fails",
            self.domain
        );
        match &e.tlsrpt_txt {
            Err(err) if err.is_no_records() => self.push(
                Finding::new(
                    "tlsrpt-record-missing",
                    Severity::Warning,
                    Area::TlsRpt,
                    &subject,
                    "no TLS-RPT record: senders cannot report TLS failures to you",
                )
                .evidence(err.to_string())
                .rfc(RFC_TLSRPT)
                .fix(publish),
            ),
            Err(err) => self.push(
                Finding::new(
                    "tlsrpt-record-lookup-failed",
                    Severity::Error,
                    Area::TlsRpt,
                    &subject,
                    "the TLS-RPT record cannot be looked up",
                )
                .evidence(err.to_string())
                .rfc(RFC_TLSRPT)
                .fix("make the domain's name servers answer TXT queries for this name"),
            ),
            Ok(answer) => {
                let lint = TlsRptRecord::lint_rrset(&answer.records);
                self.record_findings(
                    &answer.records,
                    &lint.diagnostics,
                    "tlsrpt-record",
                    Area::TlsRpt,
                    &subject,
                    &publish,
                );
            }
        }
    }
}

fn fetch_error_code(err: &FetchError) -> (&'static str, &'static str) {
    match err {
        FetchError::InvalidDomain { .. } => ("policy-host-invalid", "check the domain name"),
        FetchError::Dns { .. } => (
            "policy-host-dns",
            "publish an A/AAAA (or CNAME) record for mta-sts.<domain>",
        ),
        FetchError::Connect { .. } => (
            "policy-host-unreachable",
            "serve HTTPS on port 443 at mta-sts.<domain>",
        ),
        FetchError::Tls {
            failure: TlsFailure::Certificate { .. },
            ..
        } => (
            "policy-host-certificate",
            "serve a certificate valid for mta-sts.<domain> from a public CA, with its intermediates",
        ),
        FetchError::Tls { .. } => (
            "policy-host-tls",
            "serve HTTPS with TLS 1.2 or newer on mta-sts.<domain>",
        ),
        FetchError::Timeout { .. } => (
            "policy-fetch-timeout",
            "make the policy host answer quickly",
        ),
        FetchError::Status { .. } => (
            "policy-http-status",
            "serve the policy with status 200 at /.well-known/mta-sts.txt",
        ),
        FetchError::Redirect { .. } => (
            "policy-redirect",
            "serve the policy directly: senders never follow redirects",
        ),
        FetchError::ContentType { .. } => (
            "policy-content-type",
            "serve the policy as Content-Type: text/plain",
        ),
        FetchError::TooLarge { .. } => (
            "policy-too-large",
            "serve only the policy (a few lines), under 64 KiB",
        ),
        _ => (
            "policy-http-error",
            "serve the policy over plain HTTP/1.1 responses",
        ),
    }
}

fn cert_problem_code(problem: &CertProblem) -> (&'static str, &'static str) {
    match problem {
        CertProblem::Expired { .. } => ("smtp-cert-expired", "renew the MX host's certificate"),
        CertProblem::NotYetValid { .. } => (
            "smtp-cert-not-yet-valid",
            "check the certificate dates and the server clock",
        ),
        CertProblem::NameMismatch { .. } => (
            "smtp-cert-name-mismatch",
            "use a certificate whose subjectAltName includes the MX host name",
        ),
        CertProblem::SelfSigned => (
            "smtp-cert-self-signed",
            "use a certificate from a public CA (e.g. Let's Encrypt)",
        ),
        CertProblem::MissingIntermediate { .. } => (
            "smtp-cert-missing-intermediate",
            "serve the full chain (leaf and intermediates); senders do not fetch missing ones",
        ),
        CertProblem::UntrustedIssuer { .. } => (
            "smtp-cert-untrusted",
            "use a certificate from a CA that public trust stores include",
        ),
        _ => (
            "smtp-cert-invalid",
            "serve a valid certificate chain for the MX host name",
        ),
    }
}
