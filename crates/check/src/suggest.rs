//! What to publish: a policy covering the live MX set, the report destinations, and the order
//! to roll it out in — never a step backwards from what is published without saying so.

use mta_sts_net::DnsError;
use mta_sts_policy::{Mode, MxPattern, Policy, StsRecord};
use mta_sts_tlsrpt::{ReportUri, TlsRptRecord};
use serde::Serialize;

use crate::analyze::Report;

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct SuggestRequest {
    /// The mode asked for (`--mode`); `None` keeps `enforce` for a domain that enforces now,
    /// and suggests `testing` otherwise.
    pub mode: Option<Mode>,
    /// Report destinations given (`--rua`): added to those published now.
    pub rua: Vec<ReportUri>,
}

/// The suggested policy and what changes against the published one.
#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    /// The suggested policy.
    pub policy: Policy,
    /// Its canonical text (what to serve).
    pub policy_text: String,
    /// The change from the published policy, when one is published.
    pub diff: Option<PolicyDiff>,
    /// The `rua` destinations of the suggested `_smtp._tls` record, in order.
    pub rua: Vec<ReportUri>,
    /// Where [`Suggestion::rua`] comes from.
    pub rua_source: RuaSource,
    /// Things to know before following the suggestion: steps backwards, a domain without MX.
    pub warnings: Vec<Warning>,
    /// Why the suggestion keeps or changes what is published (e.g. a wildcard kept).
    pub notes: Vec<String>,
    /// Rollout steps, in order.
    pub steps: Vec<String>,
}

impl Suggestion {
    /// False when the domain cannot be given a policy as it is (it does not exist, or has no
    /// MX records): the suggestion is then no advice to publish.
    pub fn is_usable(&self) -> bool {
        !self.warnings.iter().any(|w| w.blocking)
    }
}

/// Where the suggested report destinations come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuaSource {
    /// The published `_smtp._tls` record, unchanged.
    Published,
    /// The published record's destinations with the `--rua` values added.
    PublishedAndGiven,
    /// The `--rua` values (nothing usable is published).
    Given,
    /// `mailto:tlsrpt@DOMAIN` (nothing published, nothing given).
    Default,
}

/// Something to know before following a suggestion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Stable code, e.g. `lowers-protection`.
    pub code: &'static str,
    /// What it means for the domain.
    pub message: String,
    /// True when there is nothing safe to publish (exit 1).
    pub blocking: bool,
}

impl Warning {
    fn new(code: &'static str, message: String) -> Self {
        Warning {
            code,
            message,
            blocking: false,
        }
    }

    fn blocking(code: &'static str, message: String) -> Self {
        Warning {
            code,
            message,
            blocking: true,
        }
    }
}

/// How the suggested policy differs from the published one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyDiff {
    /// `mx` patterns to add.
    pub add_mx: Vec<String>,
    /// `mx` patterns to remove.
    pub remove_mx: Vec<String>,
    /// `(published, suggested)` mode, when it changes.
    pub mode: Option<(Mode, Mode)>,
    /// `(published, suggested)` max_age, when it changes.
    pub max_age: Option<(u32, u32)>,
}

impl PolicyDiff {
    /// True when nothing changes.
    pub fn is_empty(&self) -> bool {
        *self == PolicyDiff::default()
    }
}

/// How strongly a mode protects mail: a suggestion that lowers it says so.
fn protection(mode: Mode) -> u8 {
    match mode {
        Mode::Enforce => 2,
        Mode::Testing => 1,
        Mode::None => 0,
    }
}

/// The policy for the domain's live MX hosts, the report destinations and the rollout.
///
/// Published patterns that still cover a live MX host are kept (a wildcard too); every live
/// host not covered gets an exact pattern. The published `rua` destinations are kept.
pub fn suggest(report: &Report, request: &SuggestRequest) -> Suggestion {
    let domain = &report.domain;
    let published = report.policy.as_ref();
    let mut warnings = Vec::new();
    let mut notes = Vec::new();

    match &report.evidence.mx {
        Err(DnsError::NoRecords { nxdomain: true, .. }) => warnings.push(Warning::blocking(
            "domain-not-found",
            format!("{domain} does not exist (NXDOMAIN): there is no mail to protect; check the spelling"),
        )),
        Err(DnsError::NoRecords { .. }) => warnings.push(Warning::blocking(
            "no-mx",
            format!("{domain} has no MX records: senders would deliver to {domain} itself (implicit MX); publish the MX records of your mail servers first, then run suggest again"),
        )),
        _ => {}
    }

    let live: Vec<&str> = report
        .evidence
        .mx_hosts
        .iter()
        .map(|h| h.host.as_str())
        .collect();
    let mx = patterns(published, &live, &mut notes);

    let enforcing_now = published.is_some_and(|p| p.mode == Mode::Enforce);
    let mode = request.mode.unwrap_or(if enforcing_now {
        Mode::Enforce
    } else {
        Mode::Testing
    });
    if let Some(p) = published.filter(|p| protection(mode) < protection(p.mode)) {
        warnings.push(Warning::new(
            "lowers-protection",
            format!(
                "this lowers protection: {domain} is in mode {} now, and under {mode} senders deliver even when an MX fails validation{}",
                p.mode,
                if mode == Mode::None { " and stop applying the policy" } else { "" }
            ),
        ));
    }
    if mode == Mode::Enforce && !published.is_some_and(|p| p.mode != Mode::None) {
        warnings.push(Warning::new(
            "enforce-without-testing",
            format!("{domain} has no policy in testing now: under enforce, senders refuse an MX that fails validation from the first day; start with --mode testing unless TLS reports already show clean sessions"),
        ));
    }

    let max_age = max_age(published, mode);
    let policy = Policy {
        version: "STSv1",
        mode,
        mx,
        max_age,
        extensions: Vec::new(),
    };
    let diff = published.map(|published| diff(published, &policy));

    let published_rua = published_rua(report, &mut warnings);
    let (rua, rua_source) = report_destinations(domain, published_rua.as_deref(), &request.rua);

    let state = State {
        domain,
        published,
        sts_record: has_sts_record(report),
        policy_changes: diff.as_ref().is_none_or(|d| !d.is_empty()),
        tlsrpt: rua_source,
        mode,
    };
    Suggestion {
        policy_text: policy.to_text(),
        policy,
        diff,
        steps: state.steps(),
        rua,
        rua_source,
        warnings,
        notes,
    }
}

/// The published patterns that still cover a live host, in their order, then an exact
/// pattern for each live host they leave uncovered.
fn patterns(published: Option<&Policy>, live: &[&str], notes: &mut Vec<String>) -> Vec<MxPattern> {
    let mut mx: Vec<MxPattern> = Vec::new();
    for pattern in published.map_or(&[][..], |p| &p.mx[..]) {
        let covered: Vec<&str> = live
            .iter()
            .copied()
            .filter(|h| pattern.matches(h))
            .collect();
        if covered.is_empty() || mx.contains(pattern) {
            continue;
        }
        if pattern.is_wildcard() {
            notes.push(format!(
                "keeps mx: {pattern}: it still covers today's MX {}",
                covered.join(", ")
            ));
        }
        mx.push(pattern.clone());
    }
    for host in live {
        if !mx.iter().any(|p| p.matches(host))
            && let Ok((pattern, _)) = MxPattern::parse(host)
        {
            mx.push(pattern);
        }
    }
    mx
}

/// The recommended max_age of the mode, or the published one when the mode stays and it is
/// longer (a shorter cache would be a step backwards), within what the linter accepts.
fn max_age(published: Option<&Policy>, mode: Mode) -> u32 {
    let recommended = mode.recommended_max_age();
    match published {
        Some(p)
            if p.mode == mode
                && p.max_age > recommended
                && (mode != Mode::Testing || p.max_age <= Mode::Enforce.recommended_max_age()) =>
        {
            p.max_age
        }
        _ => recommended,
    }
}

fn diff(published: &Policy, policy: &Policy) -> PolicyDiff {
    let shown = |p: &MxPattern| p.to_string();
    PolicyDiff {
        add_mx: policy
            .mx
            .iter()
            .filter(|p| !published.mx.contains(p))
            .map(shown)
            .collect(),
        remove_mx: published
            .mx
            .iter()
            .filter(|p| !policy.mx.contains(p))
            .map(shown)
            .collect(),
        mode: (published.mode != policy.mode).then_some((published.mode, policy.mode)),
        max_age: (published.max_age != policy.max_age)
            .then_some((published.max_age, policy.max_age)),
    }
}

/// Whether senders find an `_mta-sts` record now.
fn has_sts_record(report: &Report) -> bool {
    report
        .evidence
        .sts_txt
        .as_ref()
        .is_ok_and(|answer| StsRecord::lint_rrset(&answer.records).value.is_some())
}

/// The `rua` of the published `_smtp._tls` record, when one is usable; an unusable one is
/// named in a warning, since the suggestion replaces it.
fn published_rua(report: &Report, warnings: &mut Vec<Warning>) -> Option<Vec<ReportUri>> {
    let answer = report.evidence.tlsrpt_txt.as_ref().ok()?;
    let lint = TlsRptRecord::lint_rrset(&answer.records);
    match lint.value {
        Some(record) => Some(record.rua),
        None => {
            let why = lint
                .diagnostics
                .iter()
                .find(|d| d.is_error())
                .map_or_else(|| "it cannot be read".to_owned(), |d| d.message.clone());
            warnings.push(Warning::new(
                "tlsrpt-record-replaced",
                format!("the published _smtp._tls.{} record is not usable ({why}); the suggested record replaces it", report.domain),
            ));
            None
        }
    }
}

/// The published destinations kept, the given ones added; the default only when there is
/// neither.
fn report_destinations(
    domain: &str,
    published: Option<&[ReportUri]>,
    given: &[ReportUri],
) -> (Vec<ReportUri>, RuaSource) {
    match published {
        Some(published) => {
            let mut rua = published.to_vec();
            for uri in given {
                if !rua.contains(uri) {
                    rua.push(uri.clone());
                }
            }
            let source = if rua.len() > published.len() {
                RuaSource::PublishedAndGiven
            } else {
                RuaSource::Published
            };
            (rua, source)
        }
        None if !given.is_empty() => (given.to_vec(), RuaSource::Given),
        None => (
            vec![ReportUri::Mailto(format!("mailto:tlsrpt@{domain}"))],
            RuaSource::Default,
        ),
    }
}

/// What is published now and what is suggested: decides the rollout text.
struct State<'a> {
    domain: &'a str,
    published: Option<&'a Policy>,
    sts_record: bool,
    policy_changes: bool,
    tlsrpt: RuaSource,
    mode: Mode,
}

impl State<'_> {
    fn steps(&self) -> Vec<String> {
        let domain = self.domain;
        let mut steps = Vec::new();
        match self.tlsrpt {
            RuaSource::Published => {}
            RuaSource::PublishedAndGiven => steps.push(format!("Update the TLS-RPT record (_smtp._tls.{domain}): it keeps the published destinations and adds the new ones.")),
            RuaSource::Given | RuaSource::Default => steps.push(format!("Publish the TLS-RPT record first (_smtp._tls.{domain}), so you receive reports from the start.")),
        }
        if !self.policy_changes && self.sts_record {
            steps.push(format!("The published policy already matches the live MX hosts: keep serving it, and keep the _mta-sts.{domain} record as it is."));
            return steps;
        }
        let at = format!(
            "https://mta-sts.{domain}/.well-known/mta-sts.txt (certificate valid for mta-sts.{domain})"
        );
        let now = self.published.filter(|_| self.sts_record).map(|p| p.mode);
        match now {
            Some(Mode::Enforce) | Some(Mode::Testing) => {
                steps.push(format!("Publish the new policy first: serve it at {at}."));
                steps.push(format!("Then the new id in the _mta-sts.{domain} record: senders refetch the policy when the id changes, and must find the new one."));
            }
            _ => {
                steps.push(format!("Serve the policy at {at}."));
                steps.push(format!("Then publish the _mta-sts.{domain} record with the new id: senders fetch the policy when the id changes."));
            }
        }
        match (now, self.mode) {
            (_, Mode::None) => {
                let cached = self.published.map_or(0, |p| p.max_age);
                steps.push(format!("Keep serving the mode: none policy for at least the old max_age ({cached} s), until every sender's cached policy expired; only then remove the _mta-sts record and the policy host (RFC 8461 §8.3)."));
            }
            (Some(Mode::Enforce), Mode::Testing) => steps.push(
                "While in testing, senders deliver to an MX that fails validation: fix what the TLS reports show, then return to mode: enforce (new policy first, then new id).".to_owned(),
            ),
            (Some(Mode::Enforce), Mode::Enforce) => steps.push(
                "Senders keep enforcing throughout: list a new MX in the policy before it receives mail, and remove an old one from the policy only after it is out of the MX records.".to_owned(),
            ),
            (_, Mode::Enforce) => steps.push(
                "Read the daily TLS reports from the first day: under enforce, a failing MX gets no mail from compliant senders.".to_owned(),
            ),
            (_, Mode::Testing) => {
                steps.push("Stay in testing for about two weeks, reading the daily TLS reports; fix every MX that fails.".to_owned());
                steps.push(format!("Then switch to mode: enforce (`mta-sts suggest {domain} --mode enforce`: new policy first, then new id)."));
            }
        }
        steps
    }
}
