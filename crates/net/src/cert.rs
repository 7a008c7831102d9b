//! Certificates: what a peer presented, and whether an MTA-STS sender accepts it.
//!
//! Handshakes run with a verifier that checks the handshake signatures but accepts any chain;
//! the chain is then verified here, explicitly, so that a bad certificate is reported with its
//! details (and every problem it has) instead of as a failed handshake. Nothing is sent on a
//! connection before this verdict allows it.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::TrustAnchor;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use serde::Serialize;
use sha2::{Digest, Sha256};
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::config::{ConfigError, NetConfig};

/// What a certificate says about itself, for evidence and for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertSummary {
    /// The subject distinguished name (RFC 4514 form).
    pub subject: String,
    /// The DNS names of the subjectAltName extension: the only names RFC 8461 matches.
    pub subject_alt_names: Vec<String>,
    /// The issuer distinguished name.
    pub issuer: String,
    /// Start of validity, seconds since the Unix epoch (RFC 3339 UTC in JSON).
    #[serde(serialize_with = "serialize_rfc3339")]
    pub not_before: i64,
    /// End of validity, seconds since the Unix epoch (RFC 3339 UTC in JSON).
    #[serde(serialize_with = "serialize_rfc3339")]
    pub not_after: i64,
    /// The serial number, hex.
    pub serial: String,
    /// SHA-256 of the DER encoding, hex: identifies the certificate in reports.
    pub sha256: String,
}

impl CertSummary {
    /// Reads `der`; `None` if it is not an X.509 certificate.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, certificate) = X509Certificate::from_der(der).ok()?;
        let subject_alt_names = match certificate.subject_alternative_name() {
            Ok(Some(extension)) => extension
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let validity = certificate.validity();
        Some(Self {
            subject: certificate.subject().to_string(),
            subject_alt_names,
            issuer: certificate.issuer().to_string(),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            serial: certificate.raw_serial_as_string(),
            sha256: hex(&Sha256::digest(der)),
        })
    }

    /// Whether subject and issuer are the same name: the certificate claims to sign itself.
    fn is_self_issued(&self) -> bool {
        self.subject == self.issuer
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One reason a sender refuses a certificate (RFC 8461 §3.3 for policy hosts, §4.2 for MX).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CertProblem {
    /// The peer presented no certificate.
    NoCertificate,
    /// The leaf cannot be read as an X.509 certificate.
    Malformed {
        /// The parser's complaint.
        detail: String,
    },
    /// Past its `notAfter`.
    Expired {
        /// End of validity, Unix seconds (RFC 3339 UTC in JSON).
        #[serde(serialize_with = "serialize_rfc3339")]
        not_after: i64,
    },
    /// Before its `notBefore`.
    NotYetValid {
        /// Start of validity, Unix seconds (RFC 3339 UTC in JSON).
        #[serde(serialize_with = "serialize_rfc3339")]
        not_before: i64,
    },
    /// No subjectAltName DNS-ID matches the host name.
    NameMismatch {
        /// The name that had to match.
        expected: String,
        /// The DNS names the certificate has.
        presented: Vec<String>,
    },
    /// The certificate signs itself and is not a trusted root.
    SelfSigned,
    /// The server sent only the leaf, whose issuer is not a trusted root: the intermediate is
    /// missing (senders do not fetch it from the AIA URL).
    MissingIntermediate {
        /// The leaf's issuer.
        issuer: String,
    },
    /// The chain does not lead to a trusted root.
    UntrustedIssuer {
        /// The leaf's issuer.
        issuer: String,
    },
    /// The chain is broken in another way (bad signature, wrong key usage, ...).
    InvalidChain {
        /// webpki's verdict.
        detail: String,
    },
}

impl fmt::Display for CertProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCertificate => f.write_str("no certificate was presented"),
            Self::Malformed { detail } => write!(f, "the certificate cannot be read: {detail}"),
            Self::Expired { not_after } => write!(f, "expired at {}", utc(*not_after)),
            Self::NotYetValid { not_before } => {
                write!(f, "not valid before {}", utc(*not_before))
            }
            Self::NameMismatch {
                expected,
                presented,
            } => write!(
                f,
                "not valid for {expected} (its DNS names: {})",
                if presented.is_empty() {
                    "none".to_owned()
                } else {
                    presented.join(", ")
                }
            ),
            Self::SelfSigned => f.write_str("self-signed"),
            Self::MissingIntermediate { issuer } => write!(
                f,
                "the intermediate certificate is missing: the server sends only its own \
                 certificate, issued by {issuer}"
            ),
            Self::UntrustedIssuer { issuer } => {
                write!(f, "does not chain to a trusted root (issuer: {issuer})")
            }
            Self::InvalidChain { detail } => write!(f, "invalid chain: {detail}"),
        }
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`, for people.
pub fn utc(seconds: i64) -> String {
    let (date, time) = civil(seconds);
    format!("{date} {time} UTC")
}

/// Unix seconds as an RFC 3339 UTC timestamp, `YYYY-MM-DDTHH:MM:SSZ`, for programs.
pub fn rfc3339(seconds: i64) -> String {
    let (date, time) = civil(seconds);
    format!("{date}T{time}Z")
}

/// Serializes Unix seconds as [`rfc3339`].
pub fn serialize_rfc3339<S: serde::Serializer>(
    seconds: &i64,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339(*seconds))
}

/// Date and time of day of Unix seconds, UTC.
fn civil(seconds: i64) -> (String, String) {
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm), valid for the whole proleptic calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!(
            "{:02}:{:02}:{:02}",
            rest / 3600,
            rest % 3600 / 60,
            rest % 60
        ),
    )
}

/// A certificate chain as an MTA-STS sender judges it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertVerdict {
    /// The host name the certificate had to be valid for.
    pub host: String,
    /// Every problem found; empty means the chain is acceptable.
    pub problems: Vec<CertProblem>,
}

impl CertVerdict {
    /// Whether a sender accepts the certificate.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for CertVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.problems.is_empty() {
            return write!(f, "certificate valid for {}", self.host);
        }
        write!(f, "certificate not acceptable for {}: ", self.host)?;
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// The roots a sender trusts: `webpki-roots` plus [`NetConfig::extra_roots`].
#[derive(Clone, Debug)]
pub(crate) struct TrustRoots {
    anchors: Arc<[TrustAnchor<'static>]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl TrustRoots {
    pub(crate) fn new(config: &NetConfig, provider: &CryptoProvider) -> Result<Self, ConfigError> {
        let mut anchors: Vec<TrustAnchor<'static>> = webpki_roots::TLS_SERVER_ROOTS.to_vec();
        for (index, root) in config.extra_roots.iter().enumerate() {
            let anchor =
                webpki::anchor_from_trusted_cert(root).map_err(|error| ConfigError::Root {
                    index,
                    reason: error.to_string(),
                })?;
            anchors.push(anchor.to_owned());
        }
        Ok(Self {
            anchors: anchors.into(),
            algorithms: provider.signature_verification_algorithms,
        })
    }

    /// Judges `chain` (leaf first, as presented) for `host` at `now`.
    ///
    /// Trust, dates and name are checked independently, so an expired certificate for the
    /// wrong name from an unknown CA shows all three problems. Intermediates are only those
    /// presented: like MTAs, no AIA fetching.
    pub(crate) fn verify(
        &self,
        chain: &[CertificateDer<'_>],
        host: &str,
        now: SystemTime,
    ) -> CertVerdict {
        let mut verdict = CertVerdict {
            host: host.to_owned(),
            problems: Vec::new(),
        };
        let Some((leaf_der, intermediates)) = chain.split_first() else {
            verdict.problems.push(CertProblem::NoCertificate);
            return verdict;
        };
        let summary = CertSummary::from_der(leaf_der);
        let leaf = match (EndEntityCert::try_from(leaf_der), &summary) {
            (Ok(leaf), Some(summary)) => (leaf, summary),
            (Err(error), _) => {
                verdict.problems.push(CertProblem::Malformed {
                    detail: error.to_string(),
                });
                return verdict;
            }
            (_, None) => {
                verdict.problems.push(CertProblem::Malformed {
                    detail: "not an X.509 certificate".to_owned(),
                });
                return verdict;
            }
        };
        let (leaf, summary) = leaf;
        let now_seconds = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |elapsed| {
                i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
            });

        if let Some(problem) = self.chain_problem(&leaf, intermediates, summary, now_seconds) {
            verdict.problems.push(problem);
        }
        if now_seconds > summary.not_after {
            verdict.problems.push(CertProblem::Expired {
                not_after: summary.not_after,
            });
        } else if now_seconds < summary.not_before {
            verdict.problems.push(CertProblem::NotYetValid {
                not_before: summary.not_before,
            });
        }
        let name_ok = ServerName::try_from(host)
            .ok()
            .is_some_and(|name| leaf.verify_is_valid_for_subject_name(&name).is_ok());
        if !name_ok {
            verdict.problems.push(CertProblem::NameMismatch {
                expected: host.to_owned(),
                presented: summary.subject_alt_names.clone(),
            });
        }
        verdict
    }

    /// Whether the chain leads to a trusted root, judged at a time when the leaf is valid, so
    /// that an expired leaf does not hide an untrusted issuer (dates are reported apart).
    fn chain_problem(
        &self,
        leaf: &EndEntityCert<'_>,
        intermediates: &[CertificateDer<'_>],
        summary: &CertSummary,
        now: i64,
    ) -> Option<CertProblem> {
        let judged_at = now.clamp(summary.not_before, summary.not_after);
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(judged_at).unwrap_or(0),
        ));
        let result = leaf.verify_for_usage(
            self.algorithms.all,
            &self.anchors,
            intermediates,
            time,
            KeyUsage::server_auth(),
            None,
            None,
        );
        match result {
            Ok(_) => None,
            Err(webpki::Error::UnknownIssuer) if summary.is_self_issued() => {
                Some(CertProblem::SelfSigned)
            }
            Err(webpki::Error::UnknownIssuer) if intermediates.is_empty() => {
                Some(CertProblem::MissingIntermediate {
                    issuer: summary.issuer.clone(),
                })
            }
            Err(webpki::Error::UnknownIssuer) => Some(CertProblem::UntrustedIssuer {
                issuer: summary.issuer.clone(),
            }),
            Err(error) => Some(CertProblem::InvalidChain {
                detail: format!("{error:?}"),
            }),
        }
    }
}

/// Accepts any certificate chain but checks the handshake signatures, so the peer still proves
/// it holds the key of the certificate it presented. The chain is judged afterwards by
/// [`TrustRoots::verify`].
#[derive(Debug)]
struct RecordingVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The crypto provider of every connection: ring, named explicitly so that a process where
/// another crate enables aws-lc-rs still gets the same behaviour.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS 1.2/1.3 client config that verifies the server the ordinary way (the public roots
/// plus `extra_roots`, the name, the dates), for connections that carry credentials or
/// reports rather than probe: an IMAP mailbox, a report delivery.
pub fn verifying_client_config(
    extra_roots: &[CertificateDer<'static>],
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for (index, root) in extra_roots.iter().enumerate() {
        roots.add(root.clone()).map_err(|error| ConfigError::Root {
            index,
            reason: error.to_string(),
        })?;
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| unreachable!("ring supports TLS 1.2 and 1.3"))
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A TLS 1.2/1.3 client config that records the chain instead of judging it.
pub(crate) fn client_config(
    provider: Arc<CryptoProvider>,
    alpn: &[&[u8]],
    sni: bool,
) -> Arc<ClientConfig> {
    let verifier = Arc::new(RecordingVerifier {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| unreachable!("ring supports TLS 1.2 and 1.3"))
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    config.enable_sni = sni;
    // Every probe is a fresh look at the server, never a resumed session.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// The negotiated parameters of a TLS session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TlsInfo {
    /// `TLSv1.3`, `TLSv1.2`.
    pub version: String,
    /// The IANA name of the cipher suite (`TLS13_AES_256_GCM_SHA384`).
    pub cipher_suite: String,
    /// The leaf certificate, if one was presented and could be read.
    pub certificate: Option<CertSummary>,
    /// The other certificates presented, in order.
    pub intermediates: Vec<CertSummary>,
    /// The sender's judgement of the chain.
    pub verification: CertVerdict,
}

impl TlsInfo {
    /// Reads what `connection` negotiated and judges its chain for `host`.
    pub(crate) fn from_connection(
        connection: &rustls::ClientConnection,
        roots: &TrustRoots,
        host: &str,
    ) -> Self {
        let chain = connection.peer_certificates().unwrap_or_default();
        let mut summaries = chain.iter().map(|der| CertSummary::from_der(der));
        let certificate = summaries.next().flatten();
        let intermediates = summaries.flatten().collect();
        let version = connection.protocol_version().map_or_else(
            || "unknown".to_owned(),
            |version| match version {
                rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
                rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
                other => format!("{other:?}"),
            },
        );
        let cipher_suite = connection.negotiated_cipher_suite().map_or_else(
            || "unknown".to_owned(),
            |suite| format!("{:?}", suite.suite()),
        );
        Self {
            version,
            cipher_suite,
            certificate,
            intermediates,
            verification: roots.verify(chain, host, SystemTime::now()),
        }
    }
}

/// What a failed TLS handshake tells: a readable reason, and whether the server speaks only
/// TLS 1.0/1.1 (it answered with an older version, or the exchange ended in a
/// protocol_version alert).
pub(crate) fn handshake_failure(error: &std::io::Error) -> (String, bool) {
    let tls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls_error {
        Some(tls_error) => {
            let legacy = matches!(
                tls_error,
                rustls::Error::PeerIncompatible(
                    rustls::PeerIncompatible::ServerDoesNotSupportTls12Or13
                ) | rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion)
            );
            let plaintext = matches!(
                tls_error,
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
            );
            let reason = if legacy {
                format!("the server speaks only TLS 1.0/1.1, not TLS 1.2 or 1.3 ({tls_error})")
            } else if plaintext {
                // What a plain HTTP (or SMTP) listener on the TLS port answers a ClientHello with.
                format!(
                    "the server answered in plain text, not TLS: the port serves unencrypted \
                     HTTP (or another protocol) where TLS is expected ({tls_error})"
                )
            } else {
                tls_error.to_string()
            };
            (reason, legacy)
        }
        None if error.kind() == std::io::ErrorKind::UnexpectedEof => (
            "the server closed the connection during the TLS handshake".to_owned(),
            false,
        ),
        None => (error.to_string(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_renders_calendar_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_704_067_199), "2023-12-31 23:59:59 UTC");
        assert_eq!(rfc3339(1_704_067_199), "2023-12-31T23:59:59Z");
    }

    #[test]
    fn plaintext_instead_of_tls_is_explained() {
        let error = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        );
        let (reason, legacy) = handshake_failure(&error);
        assert!(reason.contains("not TLS"), "{reason}");
        assert!(!legacy);
    }
}
