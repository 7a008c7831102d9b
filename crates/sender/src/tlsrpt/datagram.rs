//! The libtlsrpt datagram: one delivery attempt's TLS outcome, as Postfix (≥ 3.10, with
//! `smtp_tlsrpt_enable = yes`) sends it to `smtp_tlsrpt_socket_name`.
//!
//! A datagram is one JSON object:
//!
//! ```json
//! {"dpv": "1", "d": "example.com", "pr": "v=TLSRPTv1; rua=mailto:tlsrpt@example.com",
//!  "policies": [{"policy-type": 2, "policy-string": ["version: STSv1", "mode: enforce", "…"],
//!                "policy-domain": "example.com", "mx-host": ["mx.example.com"],
//!                "f": 1, "t": 1,
//!                "failure-details": [{"c": 202, "s": "192.0.2.1", "r": "198.51.100.7",
//!                                     "n": "mx.example.com", "h": "mx.example.com",
//!                                     "f": "X509_V_ERR_…", "a": "…"}]}]}
//! ```
//!
//! `dpv` is the datagram protocol version (only `"1"` exists); `d` the policy domain the report
//! is about; `pr` its `_smtp._tls` TXT record; each policy carries the RFC 8460 policy fields
//! with `policy-type` as a number (1 `tlsa`, 2 `sts`, 9 `no-policy-found`), `f` the final
//! result (0 success, 1 failure), `t` the number of failure details, and the failure details
//! with one-letter keys (`c` result-type code, `s` sending-mta-ip, `r` receiving-ip, `n`
//! receiving-mx-hostname, `h` receiving-mx-helo, `a` additional-information, `f`
//! failure-reason-code). Unknown keys are ignored, as a newer MTA may add some.

use std::fmt;

use mta_sts_tlsrpt::report::{AppliedPolicy, FailureDetail, PolicyType, ResultType};
use serde::Deserialize;

/// The largest datagram read; larger ones are invalid. libtlsrpt's datagrams are a few hundred
/// bytes, a policy string with many MX lines a few kilobytes.
pub const MAX_DATAGRAM_SIZE: usize = 64 * 1024;

/// The most policies and failure details one datagram may carry: a delivery attempt applies
/// one or two policies and fails on at most a handful of MX addresses.
pub const MAX_ENTRIES: usize = 256;

/// One delivery attempt's outcome, read from a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// `d`: the policy domain the report is about, lowercased, one trailing dot removed.
    pub domain: String,
    /// `pr`: the domain's TLSRPT record, which says where reports go.
    pub tlsrpt_record: String,
    /// `policies`: each policy applied, with its result.
    pub policies: Vec<DatagramPolicy>,
}

/// One policy of a datagram and what happened under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatagramPolicy {
    /// The policy as RFC 8460 writes it.
    pub policy: AppliedPolicy,
    /// `f`: whether the session failed under this policy.
    pub failed: bool,
    /// `failure-details`, each with a count of 1.
    pub failures: Vec<FailureDetail>,
}

/// Why a datagram could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatagramError {
    /// Longer than [`MAX_DATAGRAM_SIZE`].
    TooLarge {
        /// Its length in bytes (at least this many, when it was cut off on receipt).
        len: usize,
    },
    /// Not JSON of the datagram's shape; the message says what and where.
    Malformed(String),
    /// `dpv` is not `"1"`.
    UnsupportedVersion(String),
    /// `d` is empty.
    EmptyDomain,
    /// A `policy-type` other than 1, 2 or 9.
    UnknownPolicyType {
        /// Index in `policies`.
        policy: usize,
        /// The number sent.
        code: i64,
    },
    /// More than [`MAX_ENTRIES`] policies or failure details.
    TooManyEntries,
}

impl fmt::Display for DatagramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len } => write!(
                f,
                "datagram of {len} bytes is larger than the {MAX_DATAGRAM_SIZE} bytes allowed"
            ),
            Self::Malformed(reason) => write!(f, "datagram is not a libtlsrpt datagram: {reason}"),
            Self::UnsupportedVersion(version) => write!(
                f,
                "datagram protocol version \"dpv\" is {version:?}; only \"1\" is known"
            ),
            Self::EmptyDomain => f.write_str("datagram field \"d\" (the policy domain) is empty"),
            Self::UnknownPolicyType { policy, code } => write!(
                f,
                "policies[{policy}].policy-type is {code}; known are 1 (tlsa), 2 (sts) and 9 \
                 (no-policy-found)"
            ),
            Self::TooManyEntries => write!(
                f,
                "datagram has more than {MAX_ENTRIES} policies or failure details"
            ),
        }
    }
}

impl std::error::Error for DatagramError {}

#[derive(Deserialize)]
struct Wire {
    dpv: Option<String>,
    d: String,
    pr: String,
    policies: Vec<WirePolicy>,
}

#[derive(Deserialize)]
struct WirePolicy {
    #[serde(rename = "policy-type")]
    policy_type: i64,
    #[serde(rename = "policy-string", default)]
    policy_string: Vec<String>,
    #[serde(rename = "policy-domain", default)]
    policy_domain: Option<String>,
    #[serde(rename = "mx-host", default)]
    mx_host: Vec<String>,
    f: FinalResult,
    #[serde(rename = "failure-details", default)]
    failure_details: Vec<WireFailure>,
}

/// `f`: libtlsrpt writes 0 or 1; a boolean is read too.
#[derive(Deserialize)]
#[serde(untagged)]
enum FinalResult {
    Number(i64),
    Bool(bool),
}

#[derive(Deserialize)]
struct WireFailure {
    c: i64,
    s: Option<String>,
    r: Option<String>,
    n: Option<String>,
    h: Option<String>,
    a: Option<String>,
    f: Option<String>,
}

/// The RFC 8460 result type of a libtlsrpt failure code. An unknown code is a
/// `validation-failure` (RFC 8460 §4.3.2: "a general failure for a reason not matching a
/// category above"), with the code kept as its reason when none was given.
pub fn result_type_of_code(code: i64) -> Option<ResultType> {
    Some(match code {
        201 => ResultType::StarttlsNotSupported,
        202 => ResultType::CertificateHostMismatch,
        203 => ResultType::CertificateNotTrusted,
        204 => ResultType::CertificateExpired,
        205 => ResultType::ValidationFailure,
        301 => ResultType::StsPolicyFetchError,
        302 => ResultType::StsPolicyInvalid,
        303 => ResultType::StsWebpkiInvalid,
        304 => ResultType::TlsaInvalid,
        305 => ResultType::DnssecInvalid,
        306 => ResultType::DaneRequired,
        _ => return None,
    })
}

/// The RFC 8460 `policy-type` of a libtlsrpt policy type number.
pub fn policy_type_of_code(code: i64) -> Option<PolicyType> {
    match code {
        1 => Some(PolicyType::Tlsa),
        2 => Some(PolicyType::Sts),
        9 => Some(PolicyType::NoPolicyFound),
        _ => None,
    }
}

/// A domain as reports key it: lowercase, one trailing dot removed.
fn normalize_domain(domain: &str) -> String {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    domain.to_ascii_lowercase()
}

impl Datagram {
    /// Reads one datagram. Never panics.
    ///
    /// # Errors
    ///
    /// When `bytes` is not a datagram of libtlsrpt's format ([`DatagramError`] says why).
    pub fn parse(bytes: &[u8]) -> Result<Self, DatagramError> {
        if bytes.len() > MAX_DATAGRAM_SIZE {
            return Err(DatagramError::TooLarge { len: bytes.len() });
        }
        let wire: Wire = serde_json::from_slice(bytes)
            .map_err(|error| DatagramError::Malformed(error.to_string()))?;
        if let Some(version) = wire.dpv
            && version != "1"
        {
            return Err(DatagramError::UnsupportedVersion(version));
        }
        let domain = normalize_domain(&wire.d);
        if domain.is_empty() {
            return Err(DatagramError::EmptyDomain);
        }
        let entries = wire.policies.len()
            + wire
                .policies
                .iter()
                .map(|policy| policy.failure_details.len())
                .sum::<usize>();
        if entries > MAX_ENTRIES {
            return Err(DatagramError::TooManyEntries);
        }
        let policies = wire
            .policies
            .into_iter()
            .enumerate()
            .map(|(index, policy)| read_policy(index, policy, &domain))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            domain,
            tlsrpt_record: wire.pr,
            policies,
        })
    }
}

fn read_policy(
    index: usize,
    wire: WirePolicy,
    domain: &str,
) -> Result<DatagramPolicy, DatagramError> {
    let policy_type =
        policy_type_of_code(wire.policy_type).ok_or(DatagramError::UnknownPolicyType {
            policy: index,
            code: wire.policy_type,
        })?;
    let failed = match wire.f {
        FinalResult::Number(number) => number != 0,
        FinalResult::Bool(failed) => failed,
    };
    let policy_domain = wire
        .policy_domain
        .map(|policy_domain| normalize_domain(&policy_domain))
        .filter(|policy_domain| !policy_domain.is_empty())
        // RFC 8460 §4.4: `no-policy-found` still names the domain; libtlsrpt may leave it out.
        .unwrap_or_else(|| domain.to_owned());
    let failures = wire
        .failure_details
        .into_iter()
        .map(|failure| {
            let (result_type, reason) = match result_type_of_code(failure.c) {
                Some(result_type) => (result_type, failure.f),
                None => (
                    ResultType::ValidationFailure,
                    failure
                        .f
                        .or_else(|| Some(format!("libtlsrpt failure code {}", failure.c))),
                ),
            };
            FailureDetail {
                result_type,
                sending_mta_ip: failure.s,
                receiving_mx_hostname: failure.n,
                receiving_mx_helo: failure.h,
                receiving_ip: failure.r,
                failed_session_count: 1,
                additional_information: failure.a,
                failure_reason_code: reason,
            }
        })
        .collect();
    Ok(DatagramPolicy {
        policy: AppliedPolicy {
            policy_type,
            policy_string: wire.policy_string,
            policy_domain,
            mx_host: wire.mx_host,
        },
        failed,
        failures,
    })
}
