//! `mta-sts resolver`: the Postfix socketmap MTA-STS policy server, and `resolver purge`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use mta_sts_net::{Net, NetConfig};
use mta_sts_sender::resolver::{
    Clock, Key, ListenAddr, PolicyResolver, ResolverConfig, bind, normalize_key, serve_on,
};
use mta_sts_store::{Location, Store};

use crate::Outcome;
use crate::args::StoreArgs;
use crate::render::clean;

/// `mta-sts resolver [purge]`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ResolverArgs {
    #[command(subcommand)]
    pub command: Option<ResolverCommand>,
    /// The config file (TOML: listen, zones, cache, network, storage).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["listen", "resolver", "ca_file", "https_port"])]
    pub config: Option<PathBuf>,
    /// Listen on this address: IP:PORT or unix:PATH (repeatable) [default: 127.0.0.1:8461].
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<ListenAddr>,
    #[command(flatten)]
    pub net: ResolverNetArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// How the resolver reaches DNS and policy hosts, in the quick form.
#[derive(Debug, Args)]
pub struct ResolverNetArgs {
    /// Use this DNS server (IP:PORT) instead of the system resolver (/etc/resolv.conf).
    #[arg(long, value_name = "IP:PORT")]
    pub resolver: Option<std::net::SocketAddr>,
    /// Trust the roots in this PEM file for policy hosts, besides the public ones.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Fetch policies from this port instead of 443.
    #[arg(long, value_name = "N")]
    pub https_port: Option<u16>,
}

/// `mta-sts resolver …`.
#[derive(Debug, Subcommand)]
pub enum ResolverCommand {
    /// Drop a domain's cached policy (or every one) from the store; running resolvers on the
    /// same store drop it from memory within `sync_interval` (5 s), so the next mail to the
    /// domain looks its policy up anew.
    ///
    /// Exit status: 0 when something was purged (always with --all), 1 when nothing was
    /// cached for DOMAIN, 2 for usage or store errors.
    Purge(PurgeArgs),
}

/// `resolver purge`.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The domain whose policy to drop.
    #[arg(value_name = "DOMAIN", required_unless_present = "all")]
    pub domain: Option<String>,
    /// Drop every cached policy.
    #[arg(long, conflicts_with = "domain")]
    pub all: bool,
    /// The resolver's config file, for its [storage].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print {"purged": N, "domain": D|null} as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// The config from `--config`, or from the quick-form flags.
pub(crate) fn config(
    config: Option<&PathBuf>,
    net: &ResolverNetArgs,
) -> anyhow::Result<ResolverConfig> {
    if let Some(path) = config {
        return Ok(ResolverConfig::load(path)?);
    }
    let mut config = ResolverConfig::default();
    config.network.dns_resolver = net.resolver;
    config.network.ca_file.clone_from(&net.ca_file);
    config.network.https_port = net.https_port;
    Ok(config)
}

/// Where the cache persists: the flags, then the config's `[storage]`, then the platform's
/// data directory (as for `serve`).
pub(crate) fn location(args: &StoreArgs, config: &ResolverConfig) -> anyhow::Result<Location> {
    if args.database.is_some() || args.data_dir.is_some() {
        return crate::serve::location(args, None);
    }
    let storage = StoreArgs {
        data_dir: config.storage.data_dir.clone(),
        database: config.storage.database.clone(),
    };
    crate::serve::location(&storage, None)
}

/// Opens the store at `location`, saying where when it cannot.
pub(crate) async fn open_store(location: &Location) -> anyhow::Result<Arc<Store>> {
    let store = Store::open(location)
        .await
        .with_context(|| format!("cannot open the store at {location}"))?;
    Ok(Arc::new(store))
}

/// The network settings of `config`.
pub(crate) fn net_config(config: &ResolverConfig) -> anyhow::Result<NetConfig> {
    let network = &config.network;
    let mut net = NetConfig {
        resolver: network.dns_resolver,
        ..NetConfig::default()
    };
    if let Some(port) = network.https_port {
        net.https_port = port;
    }
    if let Some(seconds) = network.timeout {
        net.timeout = Duration::from_secs(seconds);
    }
    if let Some(path) = &network.ca_file {
        net.add_ca_file(path)?;
    }
    Ok(net)
}

/// `resolver` and its subcommands.
pub fn resolver(args: &ResolverArgs) -> anyhow::Result<Outcome> {
    match &args.command {
        Some(ResolverCommand::Purge(purge_args)) => purge(purge_args),
        None => run(args),
    }
}

/// `resolver` itself: serve until SIGTERM or Ctrl-C.
fn run(args: &ResolverArgs) -> anyhow::Result<Outcome> {
    crate::init_logging();
    let mut config = config(args.config.as_ref(), &args.net)?;
    if !args.listen.is_empty() {
        config.listen.clone_from(&args.listen);
    }
    let config = Arc::new(config);
    let location = location(&args.store, &config)?;
    let net = Net::new(net_config(&config)?).context("cannot set up the network")?;
    let workers = Workers::start()?;
    let handles = workers.handles.clone();
    let outcome = crate::runtime()?.block_on(async move {
        let listeners = config
            .listen
            .iter()
            .map(|addr| bind(addr, &config.unix_socket))
            .collect::<Result<Vec<_>, _>>()?;
        let store = open_store(&location).await?;
        let resolver =
            PolicyResolver::with_store(net, Arc::clone(&config), Clock::system(), store, true)
                .await
                .with_context(|| format!("cannot read the policy cache in {location}"))?;
        let maintenance = resolver.spawn_maintenance();
        serve_on(resolver.clone(), listeners, shutdown_signal(), handles).await;
        maintenance.abort();
        let _ = maintenance.await;
        // Lookups still under way hold the store too; they are cut off with the runtime, and
        // what they had not saved is looked up again after the restart.
        if let Some(store) = resolver.store().cloned() {
            drop(resolver);
            if let Ok(store) = Arc::try_unwrap(store) {
                store.close().await;
            }
        }
        anyhow::Ok(Outcome::Ok)
    });
    workers.stop();
    outcome
}

/// The runtimes connections run on: one single-threaded runtime per core, each on a thread of
/// its own, so that a request is read, answered and written on one thread with no wake-up of
/// another (lookups, the store and the rest run on the main runtime).
struct Workers {
    handles: Vec<tokio::runtime::Handle>,
    threads: Vec<(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )>,
}

impl Workers {
    fn start() -> anyhow::Result<Self> {
        let count = std::thread::available_parallelism().map_or(1, usize::from);
        let mut workers = Self {
            handles: Vec::new(),
            threads: Vec::new(),
        };
        for i in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start a connection runtime")?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            workers.handles.push(runtime.handle().clone());
            let thread = std::thread::Builder::new()
                .name(format!("resolver-conn-{i}"))
                .spawn(move || {
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                })
                .context("cannot start a connection thread")?;
            workers.threads.push((stop, thread));
        }
        Ok(workers)
    }

    /// Ends the runtimes (after `serve_on` returned: their connections are over).
    fn stop(self) {
        for (stop, thread) in self.threads {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

/// `resolver purge`.
fn purge(args: &PurgeArgs) -> anyhow::Result<Outcome> {
    let config = match &args.config {
        Some(path) => ResolverConfig::load(path)?,
        None => ResolverConfig::default(),
    };
    let domain = match &args.domain {
        None => None,
        Some(text) => match normalize_key(text) {
            Key::Domain(domain) => Some(domain),
            Key::NotADomain(why) => {
                bail!("{:?} is not a domain: {}", text, why.as_str())
            }
        },
    };
    let location = location(&args.store, &config)?;
    let purged = crate::runtime()?.block_on(async {
        let store = open_store(&location).await?;
        let purged = store.purge_policies(domain.as_deref()).await?;
        if let Ok(store) = Arc::try_unwrap(store) {
            store.close().await;
        }
        anyhow::Ok(purged)
    })?;
    if args.json {
        let json = serde_json::json!({ "purged": purged, "domain": domain });
        outln!("{json}");
    } else {
        let what = match &domain {
            Some(domain) => format!("the cached policy of {}", clean(domain)),
            None => "every cached policy".to_owned(),
        };
        let count = if purged == 1 { "entry" } else { "entries" };
        outln!(
            "purged {what} ({purged} {count}); running resolvers drop it within {} s",
            config.cache.sync_interval
        );
    }
    Ok(if purged == 0 && domain.is_some() {
        Outcome::Problems
    } else {
        Outcome::Ok
    })
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
