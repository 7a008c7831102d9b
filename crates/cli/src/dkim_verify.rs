//! DKIM verification of report mail (RFC 8460 §3 asks report mail to be signed).
//!
//! `mail-auth` checks the signatures; the DNS questions are asked through `mta-sts-net`'s
//! resolver (so `--resolver` reaches a lab's DNS as every other command does), never through
//! `mail-auth`'s own: the keys the signatures name are looked up first and handed to the
//! verifier as a filled cache, and the verifier's own resolver has no server at all. Keys are
//! looked up once per run, however many mails a reporter signed with them.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use futures_util::FutureExt;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::{
    AuthenticatedMessage, DkimResult as Verified, DnsError, Error as AuthError,
    MessageAuthenticator, Parameters, ResolverCache, Txt,
};
use mta_sts_net::{NetConfig, Resolver};
use mta_sts_store::{DkimCheck, DkimResult};

/// Checks the DKIM signatures of mails, with the DNS of one [`NetConfig`].
pub(crate) struct DkimVerifier {
    resolver: Resolver,
    authenticator: MessageAuthenticator,
    /// `selector._domainkey.domain.` (lowercase) → what DNS said.
    keys: Mutex<HashMap<String, KeyLookup>>,
}

/// What DNS said about one key name.
#[derive(Clone)]
enum KeyLookup {
    /// The TXT records at the name.
    Records(Vec<Vec<u8>>),
    /// No such name, or no TXT record at it.
    Missing,
    /// The lookup failed (timeout, SERVFAIL): the reason.
    Failed(String),
}

impl DkimVerifier {
    /// A verifier asking DNS as `config` says.
    pub(crate) fn new(config: &NetConfig) -> anyhow::Result<Self> {
        let resolver = Resolver::new(config).context("cannot set up DNS for DKIM")?;
        // No name server: every key is handed over in the cache, and anything else the
        // verifier might ask (ATPS) fails here instead of leaving the machine.
        let authenticator = MessageAuthenticator::new(
            ResolverConfig::from_parts(None, vec![], vec![]),
            ResolverOpts::default(),
        )
        .context("cannot set up the DKIM verifier")?;
        Ok(Self {
            resolver,
            authenticator,
            keys: Mutex::new(HashMap::new()),
        })
    }

    /// The DKIM check of one mail: pass when a signature verifies, fail when it is signed but
    /// none does, none when it carries no signature.
    pub(crate) async fn verify(&self, mail: &[u8]) -> DkimCheck {
        // The MIME parser under mail-auth can panic on malformed structure (see tlsrpt::mail).
        let Ok(Some(message)) =
            catch_unwind(AssertUnwindSafe(|| AuthenticatedMessage::parse(mail)))
        else {
            return DkimCheck {
                result: DkimResult::None,
                domain: None,
                reason: Some("the message could not be parsed for DKIM".to_owned()),
            };
        };
        if message.dkim_headers.is_empty() && !message.has_dkim_errors {
            return DkimCheck {
                result: DkimResult::None,
                domain: None,
                reason: None,
            };
        }
        let mut keys = HashMap::new();
        for header in &message.dkim_headers {
            let signature = &header.header;
            let name = key_name(&signature.s, &signature.d);
            if !keys.contains_key(name.as_str()) {
                let lookup = self.lookup(&name).await;
                keys.insert(name.into_boxed_str(), key_record(&lookup));
            }
        }
        let cache = Prefetched(keys);
        let verified = AssertUnwindSafe(
            self.authenticator
                .verify_dkim(Parameters::new(&message).with_txt_cache(&cache)),
        )
        .catch_unwind()
        .await;
        let Ok(outputs) = verified else {
            return DkimCheck {
                result: DkimResult::Fail,
                domain: None,
                reason: Some("the DKIM verifier failed on this message".to_owned()),
            };
        };
        if let Some(pass) = outputs.iter().find(|o| *o.result() == Verified::Pass) {
            return DkimCheck {
                result: DkimResult::Pass,
                domain: pass.signature().map(|s| s.d.to_ascii_lowercase()),
                reason: None,
            };
        }
        let reasons: Vec<String> = outputs
            .iter()
            .map(|output| {
                let why = match output.result() {
                    Verified::Neutral(e)
                    | Verified::Fail(e)
                    | Verified::PermError(e)
                    | Verified::TempError(e) => e.to_string(),
                    Verified::Pass | Verified::None => "no result".to_owned(),
                };
                match output.signature() {
                    Some(s) => format!("d={}: {why}", s.d),
                    None => why,
                }
            })
            .collect();
        DkimCheck {
            result: DkimResult::Fail,
            domain: message
                .dkim_headers
                .first()
                .map(|h| h.header.d.to_ascii_lowercase()),
            reason: Some(if reasons.is_empty() {
                "no signature could be checked".to_owned()
            } else {
                reasons.join("; ")
            }),
        }
    }

    /// The TXT records at `name`, asked once per run.
    async fn lookup(&self, name: &str) -> KeyLookup {
        if let Some(known) = self.keys.lock().ok().and_then(|k| k.get(name).cloned()) {
            return known;
        }
        let started = Instant::now();
        let lookup = match self.resolver.txt(name).await {
            Ok(records) => KeyLookup::Records(records),
            Err(error) if error.is_no_records() => KeyLookup::Missing,
            Err(error) => KeyLookup::Failed(format!(
                "{error} (after {:.1} s)",
                started.elapsed().as_secs_f64()
            )),
        };
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert(name.to_owned(), lookup.clone());
        }
        lookup
    }
}

/// The DNS name of a DKIM key, as `mail-auth` asks for it: `selector._domainkey.domain.`,
/// lowercase.
fn key_name(selector: &str, domain: &str) -> String {
    let mut name = format!("{selector}._domainkey.{}", domain.trim_end_matches('.'));
    name.make_ascii_lowercase();
    name.push('.');
    name
}

/// The cache entry for a key: the first record that reads as a DKIM key, else the error the
/// verifier reports.
fn key_record(lookup: &KeyLookup) -> Txt {
    match lookup {
        KeyLookup::Records(records) => {
            let mut result = Err(AuthError::Dns(DnsError::InvalidRecordType));
            for record in records {
                result = DomainKey::parse(record);
                if result.is_ok() {
                    break;
                }
            }
            result.into()
        }
        KeyLookup::Missing => Txt::Error(AuthError::Dns(DnsError::RecordNotFound(
            ResponseCode::NXDomain,
        ))),
        KeyLookup::Failed(reason) => Txt::Error(AuthError::Dns(DnsError::Resolver(reason.clone()))),
    }
}

/// The keys of one message, looked up beforehand; any other name is a DNS failure.
struct Prefetched(HashMap<Box<str>, Txt>);

impl ResolverCache<Box<str>, Txt> for Prefetched {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Some(self.0.get(name).cloned().unwrap_or_else(|| {
            Txt::Error(AuthError::Dns(DnsError::Resolver(
                "not asked: only the signatures' keys are looked up".to_owned(),
            )))
        }))
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.get(name).cloned()
    }

    fn insert(&self, _key: Box<str>, _value: Txt, _valid_until: Instant) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_are_lowercase_and_fully_qualified() {
        assert_eq!(
            key_name("Sel1", "Mail.Example."),
            "sel1._domainkey.mail.example."
        );
    }
}
