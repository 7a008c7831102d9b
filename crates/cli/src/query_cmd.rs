//! `mta-sts query DOMAIN`: what `mta-sts resolver` answers Postfix for a domain, and why.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use mta_sts_net::{Net, rfc3339, utc};
use mta_sts_sender::resolver::{Clock, Dane, Entry, Key, PolicyResolver, normalize_key};
use serde_json::{Value, json};

use crate::Outcome;
use crate::args::StoreArgs;
use crate::render::{Style, clean};
use crate::resolver_cmd::{ResolverNetArgs, config, location, net_config, open_store};

/// `query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The domain, or any key Postfix sends (`[mx.example.com]:25`, `example.com.`).
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
    /// Print JSON (shape in the README).
    #[arg(long)]
    pub json: bool,
    /// The map name (zone) to answer for, as in `socketmap:...:NAME`.
    #[arg(long, value_name = "NAME", default_value = "postfix")]
    pub map: String,
    /// The resolver's config file (zones, cache, network, storage).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["resolver", "ca_file", "https_port"])]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub net: ResolverNetArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// How the answer was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CacheState {
    /// The key is not a domain: answered at once.
    NotADomain,
    /// From the cache, as the resolver would.
    Cached,
    /// Looked up now: nothing cached, or the cached answer was due for a lookup.
    LookedUp,
}

impl CacheState {
    fn as_str(self) -> &'static str {
        match self {
            Self::NotADomain => "not_a_domain",
            Self::Cached => "cached",
            Self::LookedUp => "looked_up",
        }
    }
}

/// `query`: reads the resolver's cache in the store and, where the resolver would look the
/// domain up, looks it up; writes nothing.
pub fn query(args: &QueryArgs, style: Style) -> anyhow::Result<Outcome> {
    let config = Arc::new(config(args.config.as_ref(), &args.net)?);
    let zone = config.zone(&args.map).clone();
    let domain = match normalize_key(&args.domain) {
        Key::Domain(domain) => domain,
        Key::NotADomain(why) => {
            let reason = format!("not looked up: {}", why.as_str());
            let answer = Answer {
                key: &args.domain,
                map: &args.map,
                state: CacheState::NotADomain,
                reply: mta_sts_sender::resolver::NOT_FOUND,
                reason: &reason,
                entry: None,
            };
            return answer.print(args.json, style);
        }
    };
    let location = location(&args.store, &config)?;
    let net = Net::new(net_config(&config)?).context("cannot set up the network")?;
    crate::runtime()?.block_on(async {
        let store = open_store(&location).await?;
        let clock = Clock::system();
        let resolver =
            PolicyResolver::with_store(net, Arc::clone(&config), clock.clone(), store, false)
                .await
                .with_context(|| format!("cannot read the policy cache in {location}"))?;
        let (entry, state) = match resolver.cached(&domain).await {
            Some(entry) if !resolver.lookup_due(&entry, clock.now()) => (entry, CacheState::Cached),
            prior => (resolver.lookup(&domain, prior).await, CacheState::LookedUp),
        };
        let entry = resolver.with_dane(entry).await;
        let decision = resolver.decision(&entry, &zone, clock.now());
        let answer = Answer {
            key: &domain,
            map: &args.map,
            state,
            reply: &decision.reply,
            reason: &decision.reason,
            entry: Some(&entry),
        };
        answer.print(args.json, style)
    })
}

/// Everything `query` prints.
struct Answer<'a> {
    key: &'a str,
    map: &'a str,
    state: CacheState,
    reply: &'a [u8],
    reason: &'a str,
    entry: Option<&'a Entry>,
}

impl Answer<'_> {
    fn print(&self, as_json: bool, style: Style) -> anyhow::Result<Outcome> {
        if as_json {
            outln!("{}", self.json());
        } else {
            out!("{}", self.text(style));
        }
        Ok(Outcome::Ok)
    }

    fn json(&self) -> Value {
        let policy = self
            .entry
            .and_then(|entry| entry.policy.as_ref())
            .map(|cached| {
                let mx: Vec<String> = cached.policy.mx.iter().map(ToString::to_string).collect();
                json!({
                    "id": cached.id,
                    "mode": cached.policy.mode.to_string(),
                    "max_age": cached.policy.max_age,
                    "mx": mx,
                    "fetched_at": rfc3339(cached.fetched_at),
                    "confirmed_at": rfc3339(cached.confirmed_at),
                    "expires_at": rfc3339(cached.expires_at()),
                    "body": cached.body,
                })
            });
        json!({
            "domain": self.key,
            "map": self.map,
            "reply": String::from_utf8_lossy(self.reply),
            "reason": self.reason,
            "cache": self.state.as_str(),
            "checked_at": self.entry.map(|entry| rfc3339(entry.checked_at)),
            "last_lookup": self.entry.map(|entry| json!({
                "outcome": entry.outcome.kind(),
                "detail": entry.outcome.detail(),
            })),
            "policy": policy,
            "dane": self.entry.map(|entry| json!({
                "state": entry.dane.kind(),
                "hosts": match &entry.dane {
                    Dane::Present(hosts) => hosts.clone(),
                    Dane::Unchecked | Dane::Absent => Vec::new(),
                },
            })),
        })
    }

    fn text(&self, style: Style) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let mut row = |name: &str, value: &str| {
            let _ = writeln!(out, "{} {}", style.bold(&format!("{name:<12}")), value);
        };
        row(
            "domain",
            &format!("{} (map {})", clean(self.key), clean(self.map)),
        );
        let reply = String::from_utf8_lossy(self.reply);
        let shown = if self.reply.starts_with(b"OK") {
            style.good(&clean(&reply))
        } else if self.reply.starts_with(b"TEMP") {
            style.bad(&clean(&reply))
        } else {
            style.warn(&format!("{reply:?}"))
        };
        row("reply", &shown);
        row("why", &clean(self.reason));
        let Some(entry) = self.entry else {
            return out;
        };
        let state = match self.state {
            CacheState::Cached => "answered from the cache",
            CacheState::LookedUp => "looked up now (nothing usable cached)",
            CacheState::NotADomain => "not looked up",
        };
        row("cache", state);
        row(
            "last lookup",
            &format!(
                "{}, {}",
                clean(&entry.outcome.describe()),
                utc(entry.checked_at)
            ),
        );
        let dane = match &entry.dane {
            Dane::Present(hosts) => format!(
                "DNSSEC-validated TLSA records for {}",
                clean(&hosts.join(", "))
            ),
            Dane::Absent => "none (no DNSSEC-validated TLSA records)".to_owned(),
            Dane::Unchecked => "not looked at yet".to_owned(),
        };
        row("DANE", &dane);
        match &entry.policy {
            None => row("policy", "none cached"),
            Some(cached) => {
                let policy = &cached.policy;
                row(
                    "policy",
                    &format!(
                        "id {}, mode {}, max_age {}",
                        clean(&cached.id),
                        policy.mode,
                        policy.max_age
                    ),
                );
                let mx: Vec<String> = policy.mx.iter().map(ToString::to_string).collect();
                row("mx", &clean(&mx.join(", ")));
                row("fetched", &utc(cached.fetched_at));
                row("confirmed", &utc(cached.confirmed_at));
                row("expires", &utc(cached.expires_at()));
            }
        }
        out
    }
}
