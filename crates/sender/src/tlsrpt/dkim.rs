//! DKIM signatures on report mails: RFC 8460 §3 says mailed reports SHOULD be DKIM-signed by
//! the submitter, so that receivers can trust them (our own `reports ingest` counts a
//! DKIM-verified report over unsigned ones).

use std::fmt;

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::{DkimSigner, Done};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject as _;

/// The headers of a report mail the signature covers: every one [`super::report_mail`] writes.
const SIGNED_HEADERS: [&str; 11] = [
    "From",
    "To",
    "Date",
    "Subject",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "TLS-Report-Domain",
    "TLS-Report-Submitter",
    "TLS-Required",
    "Auto-Submitted",
];

/// Why a DKIM key cannot be used, or a mail not signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimError {
    reason: String,
}

impl fmt::Display for DkimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for DkimError {}

fn error(reason: impl Into<String>) -> DkimError {
    DkimError {
        reason: reason.into(),
    }
}

/// Signs report mails with one key, as `d=DOMAIN` and `s=SELECTOR` (the public key is
/// published at `SELECTOR._domainkey.DOMAIN`).
pub struct ReportSigner {
    domain: String,
    selector: String,
    signer: Signer,
}

enum Signer {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

impl fmt::Debug for ReportSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("ReportSigner")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

impl ReportSigner {
    /// A signer from a private key in PEM: RSA (`BEGIN PRIVATE KEY` or `BEGIN RSA PRIVATE
    /// KEY`, signing `rsa-sha256`) or Ed25519 (`BEGIN PRIVATE KEY`, `ed25519-sha256`).
    ///
    /// # Errors
    ///
    /// When the PEM holds no private key, or one of another kind (EC keys are no DKIM
    /// algorithm), or the domain or selector is empty.
    pub fn from_pem(pem: &[u8], domain: &str, selector: &str) -> Result<Self, DkimError> {
        if domain.is_empty() || selector.is_empty() {
            return Err(error("a DKIM key needs a domain and a selector"));
        }
        let key = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| error(format!("no private key in the PEM ({e})")))?;
        let finish = |signer| -> Result<Self, DkimError> {
            Ok(Self {
                domain: domain.to_owned(),
                selector: selector.to_owned(),
                signer,
            })
        };
        match key {
            PrivateKeyDer::Pkcs8(ref der) => {
                match Ed25519Key::from_pkcs8_maybe_unchecked_der(der.secret_pkcs8_der()) {
                    Ok(ed25519) => finish(Signer::Ed25519(build(ed25519, domain, selector))),
                    Err(_) => finish(Signer::Rsa(build(rsa(key)?, domain, selector))),
                }
            }
            PrivateKeyDer::Pkcs1(_) => finish(Signer::Rsa(build(rsa(key)?, domain, selector))),
            PrivateKeyDer::Sec1(_) => Err(error("an EC key cannot sign DKIM: use RSA or Ed25519")),
            _ => Err(error("an unknown kind of private key")),
        }
    }

    /// The signing domain (`d=`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The selector (`s=`).
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// `mail` with a `DKIM-Signature` header in front.
    ///
    /// # Errors
    ///
    /// When the mail cannot be signed (it has none of the signed headers).
    pub fn sign(&self, mail: &[u8]) -> Result<Vec<u8>, DkimError> {
        let signature = match &self.signer {
            Signer::Rsa(signer) => signer.sign(mail),
            Signer::Ed25519(signer) => signer.sign(mail),
        }
        .map_err(|e| error(format!("cannot sign the report mail: {e}")))?;
        let mut signed = signature.to_header().into_bytes();
        signed.extend_from_slice(mail);
        Ok(signed)
    }
}

fn rsa(key: PrivateKeyDer<'_>) -> Result<RsaKey<Sha256>, DkimError> {
    RsaKey::from_key_der(key).map_err(|e| error(format!("neither an RSA nor an Ed25519 key ({e})")))
}

fn build<T: SigningKey>(key: T, domain: &str, selector: &str) -> DkimSigner<T, Done> {
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS)
}
