//! Running the application: listeners, TLS handshakes, graceful shutdown, reload.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::acme::Acme;
use crate::app::{AppState, PeerAddr, app};
use crate::config::{Config, ConfigError, Limits, Tls};
use crate::intake::ReportSink;
use crate::tls::{self, CertResolver, TlsError};

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connections get to finish after shutdown is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the server could not start or reload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A certificate file could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A listen address could not be bound.
    // The reason is the source, so a chain printer (`{:#}`) says it once.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// ACME needs a place for its account and certificates.
    #[error("tls.acme.state_dir: not set, and no storage.data_dir to put acme/ in; set either")]
    NoAcmeStateDir,
    /// [`Server::reload`] of a configuration that was not loaded from a file.
    #[error("nothing to reload: the configuration was not loaded from a file")]
    NoConfigFile,
    /// HTTPS listeners, but `tls.mode = "none"` (only possible by editing fields after load).
    #[error("HTTPS listeners need certificates, but tls.mode is \"none\"")]
    NoTls,
}

/// The sockets the server accepts connections on. Bind them yourself (port 0 in tests) or with
/// [`Listeners::bind`].
#[derive(Debug, Default)]
pub struct Listeners {
    /// Connections here start with a TLS handshake.
    pub https: Vec<TcpListener>,
    /// Connections here are plain HTTP.
    pub http: Vec<TcpListener>,
}

impl Listeners {
    /// Binds every address of `config.listen`.
    ///
    /// # Errors
    /// [`ServerError::Bind`] naming the address.
    pub async fn bind(config: &Config) -> Result<Listeners, ServerError> {
        async fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, ServerError> {
            let mut listeners = Vec::with_capacity(addrs.len());
            for &addr in addrs {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServerError::Bind { addr, source })?;
                listeners.push(listener);
            }
            Ok(listeners)
        }
        Ok(Listeners {
            https: bind_all(&config.listen.https).await?,
            http: bind_all(&config.listen.http).await?,
        })
    }
}

/// A configured server: the application state and the certificates. Cheap to clone; clones
/// share everything, so one can [`reload`](Server::reload) while another
/// [`run`](Server::run)s.
#[derive(Clone)]
pub struct Server {
    state: AppState,
    resolver: Arc<CertResolver>,
    config: Arc<Mutex<Config>>,
    /// Wakes the ACME task when the domain list changes.
    domains_changed: Arc<Notify>,
}

impl Server {
    /// Checks `config`, loads its certificate files and prepares the application.
    ///
    /// # Errors
    /// [`ServerError::Tls`] when a certificate file cannot be loaded.
    pub fn new(config: Config, sink: Arc<dyn ReportSink>) -> Result<Server, ServerError> {
        let resolver = Arc::new(CertResolver::default());
        if config.tls == Tls::Files {
            resolver.replace_all(tls::load_config_certs(&config)?);
        }
        Ok(Server {
            state: AppState::new(&config, sink),
            resolver,
            config: Arc::new(Mutex::new(config)),
            domains_changed: Arc::new(Notify::new()),
        })
    }

    /// Serves the dashboard, API and metrics from `data` too (see [`AppState::with_dashboard`]).
    #[must_use]
    pub fn with_dashboard(mut self, data: Arc<dyn crate::dashboard::DashboardData>) -> Server {
        let config = self.config();
        self.state = self.state.with_dashboard(&config, data);
        self
    }

    /// The application as a router (what the listeners serve), for `oneshot` tests.
    pub fn router(&self) -> Router {
        app(self.state.clone())
    }

    /// The configuration in use.
    pub fn config(&self) -> Config {
        self.lock_config().clone()
    }

    /// Reads the configuration file again and, if it and its certificates are valid, serves
    /// its policies and certificates from now on. Open connections are kept. On error the old
    /// configuration stays in use. Listen addresses, TLS mode and intake limits need a restart.
    ///
    /// # Errors
    /// Why the new configuration was refused.
    pub fn reload(&self) -> Result<(), ServerError> {
        let source: Option<PathBuf> = self.lock_config().source.clone();
        let source = source.ok_or(ServerError::NoConfigFile)?;
        self.replace_config(Config::load(source)?)
    }

    /// Serves `config`'s policies and certificates from now on (what [`Server::reload`] does
    /// after reading the file).
    ///
    /// # Errors
    /// [`ServerError::Tls`] when a certificate file cannot be loaded; nothing changes then.
    pub fn replace_config(&self, config: Config) -> Result<(), ServerError> {
        let certs = match config.tls {
            Tls::Files => Some(tls::load_config_certs(&config)?),
            _ => None,
        };
        if let Some(certs) = certs {
            self.resolver.replace_all(certs);
        }
        self.state.replace_policies(&config);
        let domains = config.domains().len();
        let before = self.lock_config().dns_records();
        // A changed policy needs its new id in DNS: say which record to publish now.
        for d in config.dns_records() {
            let old = before.iter().find(|b| b.domain == d.domain);
            if old.is_none_or(|old| old.policy_id != d.policy_id) {
                tracing::info!(
                    "policy of {} changed: publish {} TXT \"{}\"",
                    d.domain,
                    d.sts.name,
                    d.sts.value
                );
            }
        }
        *self.lock_config() = config;
        self.domains_changed.notify_one();
        tracing::info!(domains, "configuration reloaded");
        Ok(())
    }

    /// Accepts connections on `listeners` until `shutdown` completes, then stops accepting
    /// and gives open connections a few seconds to finish. With ACME, obtains and renews
    /// certificates meanwhile.
    ///
    /// # Errors
    /// [`ServerError::NoTls`] or [`ServerError::NoAcmeStateDir`] before anything is served.
    pub async fn run(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let config = self.config();
        let acme = match &config.tls {
            Tls::Acme(acme) => {
                let state_dir = acme
                    .state_dir
                    .clone()
                    .or_else(|| config.storage.data_dir.as_ref().map(|d| d.join("acme")))
                    .ok_or(ServerError::NoAcmeStateDir)?;
                Some(Acme::new(
                    acme.clone(),
                    state_dir,
                    self.resolver.clone(),
                    self.state.acme_tokens(),
                ))
            }
            Tls::None if !listeners.https.is_empty() => return Err(ServerError::NoTls),
            _ => None,
        };
        let tls = TlsAcceptor::from(tls::server_config(self.resolver.clone(), acme.is_some()));

        let (stop_tx, stop_rx) = watch::channel(false);
        let router = self.router();
        let connections = Arc::new(ConnectionLimits::new(&config.limits));
        let accept_loops: Vec<_> = listeners
            .https
            .into_iter()
            .map(|listener| (listener, Some(tls.clone())))
            .chain(listeners.http.into_iter().map(|listener| (listener, None)))
            .map(|(listener, tls)| {
                tokio::spawn(accept_loop(
                    listener,
                    tls,
                    router.clone(),
                    Arc::clone(&connections),
                    stop_rx.clone(),
                ))
            })
            .collect();
        let acme_task = acme.map(|acme| {
            let server = self.clone();
            let domains_changed = self.domains_changed.clone();
            tokio::spawn(acme.run(
                move || {
                    server
                        .config()
                        .domains()
                        .iter()
                        .map(|d| d.policy_host())
                        .collect()
                },
                domains_changed,
                stop_rx.clone(),
            ))
        });

        shutdown.await;
        tracing::info!("shutting down: no new connections, open requests get {SHUTDOWN_GRACE:?}");
        let _ = stop_tx.send(true);
        if let Some(task) = acme_task {
            task.abort();
        }
        // Each listener's connections are told to finish (idle keep-alives close now), all at
        // once, and given SHUTDOWN_GRACE.
        let mut draining = Vec::new();
        for task in accept_loops {
            if let Ok(graceful) = task.await {
                draining.push(tokio::spawn(graceful.shutdown()));
            }
        }
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            for task in draining {
                let _ = task.await;
            }
        });
        if drained.await.is_err() {
            tracing::warn!("connections still open after the shutdown grace period; closing");
        }
        Ok(())
    }

    fn lock_config(&self) -> std::sync::MutexGuard<'_, Config> {
        self.config.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Binds `config`'s addresses and serves until `shutdown` completes; reloads the config file
/// on SIGHUP (a failed reload is logged and the old configuration kept).
///
/// # Errors
/// Why the server could not start.
pub async fn serve(
    config: Config,
    sink: Arc<dyn ReportSink>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    serve_with_dashboard(config, sink, None, shutdown).await
}

/// [`serve`], with the dashboard, API and metrics read from `dashboard` (when the config's
/// `[dashboard]` names someone).
///
/// # Errors
/// Why the server could not start.
pub async fn serve_with_dashboard(
    config: Config,
    sink: Arc<dyn ReportSink>,
    dashboard: Option<Arc<dyn crate::dashboard::DashboardData>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let listeners = Listeners::bind(&config).await?;
    let mut server = Server::new(config, sink)?;
    if let Some(data) = dashboard {
        server = server.with_dashboard(data);
    }
    log_listening(&listeners, &server.config());
    let state = server.state.clone();
    let reloader = server.clone();
    let sighup = tokio::spawn(async move {
        let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; reload by restarting");
            return;
        };
        while hangup.recv().await.is_some() {
            if let Err(error) = reloader.reload() {
                tracing::error!(%error, "reload refused; keeping the running configuration");
            }
        }
    });
    let result = server.run(listeners, shutdown).await;
    sighup.abort();
    if result.is_ok() {
        tracing::info!(refused_reports = state.refused_reports(), "stopped");
    }
    result
}

/// Said once the sockets are bound, so the log never claims a port it does not have: each
/// listener, then each domain's policy URL with the `_mta-sts` record that goes with it.
fn log_listening(listeners: &Listeners, config: &Config) {
    let domains = config.domains().len();
    let bound = |list: &[TcpListener], scheme: &str| {
        for listener in list {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!("listening on {scheme}://{addr} for {domains} domains");
            }
        }
    };
    bound(&listeners.https, "https");
    bound(&listeners.http, "http");
    for d in config.dns_records() {
        tracing::info!(
            "serving {}; publish {} TXT \"{}\"",
            d.policy_url,
            d.sts.name,
            d.sts.value
        );
    }
}

/// Completes on Ctrl-C or SIGTERM: the usual `shutdown` for [`serve`].
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// The caps on open connections, shared by every listener: all clients together, and each IP
/// address. A connection past either is closed as soon as it is accepted, so slow or idle
/// clients cannot use up file descriptors or tasks.
struct ConnectionLimits {
    open: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    max_per_ip: usize,
    header_timeout: Duration,
}

/// One admitted connection; its places under both caps are given back on drop.
struct Admitted {
    _open: OwnedSemaphorePermit,
    ip: IpAddr,
    limits: Arc<ConnectionLimits>,
}

impl ConnectionLimits {
    fn new(limits: &Limits) -> Self {
        ConnectionLimits {
            open: Arc::new(Semaphore::new(limits.max_connections)),
            per_ip: Mutex::new(HashMap::new()),
            max_per_ip: limits.max_connections_per_ip,
            header_timeout: limits.header_timeout,
        }
    }

    /// A place for a connection from `ip`, or `None` when a cap is reached.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        let open = Arc::clone(&self.open).try_acquire_owned().ok()?;
        let mut per_ip = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
        let count = per_ip.entry(ip).or_insert(0);
        if *count >= self.max_per_ip {
            return None;
        }
        *count += 1;
        Some(Admitted {
            _open: open,
            ip,
            limits: Arc::clone(self),
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut per_ip = self
            .limits
            .per_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: Arc<ConnectionLimits>,
    mut stop: watch::Receiver<bool>,
) -> GracefulShutdown {
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, typically: wait instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => return graceful,
        };
        let Some(admitted) = limits.admit(peer.ip()) else {
            tracing::debug!(%peer, "connection refused: too many open connections");
            drop(stream);
            continue;
        };
        let header_timeout = limits.header_timeout;
        let watcher = graceful.watcher();
        let router = router.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _admitted = admitted;
            let service =
                hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
                    request.extensions_mut().insert(PeerAddr(peer));
                    router.clone().oneshot(request)
                });
            // The header timeout runs from the start of every wait for a request, so it also
            // closes keep-alive connections that stay idle.
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let result = match tls {
                None => {
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(connection).await
                }
                Some(tls) => {
                    let Some(stream) = handshake(&tls, stream, peer).await else {
                        return;
                    };
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(connection).await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
}

/// The TLS handshake; `None` when it failed, timed out, or was an ACME validation (which
/// only needs the handshake).
async fn handshake(
    tls: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
        Ok(Ok(stream)) => {
            if stream.get_ref().1.alpn_protocol() == Some(tls::ACME_TLS_ALPN) {
                return None;
            }
            Some(stream)
        }
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}
