//! `mta-sts resolver`: the Postfix socketmap MTA-STS policy server.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mta_sts_net::{Net, NetConfig};
use mta_sts_sender::resolver::{Clock, PolicyResolver, ResolverConfig, bind, serve};

use crate::Outcome;
use crate::args::ResolverArgs;

/// The config from `--config`, or from the quick-form flags.
fn config(args: &ResolverArgs) -> anyhow::Result<ResolverConfig> {
    if let Some(path) = &args.config {
        return Ok(ResolverConfig::load(path)?);
    }
    let mut config = ResolverConfig::default();
    if !args.listen.is_empty() {
        config.listen.clone_from(&args.listen);
    }
    config.network.dns_resolver = args.resolver;
    config.network.ca_file.clone_from(&args.ca_file);
    config.network.https_port = args.https_port;
    Ok(config)
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

/// `resolver`.
pub fn resolver(args: &ResolverArgs) -> anyhow::Result<Outcome> {
    crate::init_logging();
    let config = Arc::new(config(args)?);
    let net = Net::new(net_config(&config)?).context("cannot set up the network")?;
    crate::runtime()?.block_on(async move {
        let listeners = config
            .listen
            .iter()
            .map(|addr| bind(addr, &config.unix_socket))
            .collect::<Result<Vec<_>, _>>()?;
        let resolver = PolicyResolver::new(net, Arc::clone(&config), Clock::system());
        serve(resolver, listeners, shutdown_signal()).await;
        anyhow::Ok(Outcome::Ok)
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
