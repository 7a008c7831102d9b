//! What to publish: a policy covering the live MX set, and the order to roll it out in.

use mta_sts_policy::{Mode, MxPattern, Policy};
use serde::Serialize;

use crate::analyze::Report;

/// The suggested policy and what changes against the published one.
#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    /// The suggested policy.
    pub policy: Policy,
    /// Its canonical text (what to serve).
    pub policy_text: String,
    /// The change from the published policy, when one is published.
    pub diff: Option<PolicyDiff>,
    /// Rollout steps, in order.
    pub steps: Vec<String>,
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

/// The policy for the domain's live MX hosts (one exact pattern each; a wildcard only covers
/// what you may not control), in `mode`.
pub fn suggest(report: &Report, mode: Mode) -> Suggestion {
    let mx: Vec<MxPattern> = report
        .evidence
        .mx_hosts
        .iter()
        .filter_map(|h| MxPattern::parse(&h.host).ok().map(|(p, _)| p))
        .collect();
    let max_age = mode.recommended_max_age();
    let policy = Policy {
        version: "STSv1",
        mode,
        mx,
        max_age,
        extensions: Vec::new(),
    };
    let diff = report.policy.as_ref().map(|published| {
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
            mode: (published.mode != mode).then_some((published.mode, mode)),
            max_age: (published.max_age != max_age).then_some((published.max_age, max_age)),
        }
    });
    let domain = &report.domain;
    let steps = vec![
        format!("Publish the TLS-RPT record first (_smtp._tls.{domain}), so you receive reports from the start."),
        format!("Serve the policy at https://mta-sts.{domain}/.well-known/mta-sts.txt (certificate valid for mta-sts.{domain})."),
        format!("Then publish the _mta-sts.{domain} record with the new id: senders fetch the policy when the id changes."),
        "Stay in testing for about two weeks, reading the daily TLS reports; fix every MX that fails.".to_owned(),
        "Then switch to mode: enforce (new policy, then new id), and raise max_age to weeks once stable.".to_owned(),
    ];
    Suggestion {
        policy_text: policy.to_text(),
        policy,
        diff,
        steps,
    }
}
