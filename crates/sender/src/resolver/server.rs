//! The socketmap server: TCP and unix listeners, one task per connection, pipelined requests
//! answered in order, caps on connections, request size and idle time, and a shutdown that
//! lets every connection finish the requests it has read.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, UnixListener};
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::config::{ListenAddr, UnixSocket};
use super::lookup::{PolicyResolver, escape};
use super::netstring::read_frame;

/// How long a started request may take to arrive in full, and a reply to be taken by the
/// client: a peer that stalls mid-request or stops reading is cut off after this.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections waiting in the kernel for `accept`.
const BACKLOG: u32 = 1024;
/// The longest idle timeout honoured (a year): longer ones mean no timeout.
const MAX_IDLE_SECONDS: u64 = 365 * 24 * 3600;

/// A bound listener, ready for [`serve`].
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A unix socket listener and its path (removed at shutdown).
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Where it listens.
    pub fn addr(&self) -> ListenAddr {
        match self {
            Self::Tcp(listener) => listener
                .local_addr()
                .map_or_else(|_| ListenAddr::Unix(PathBuf::new()), ListenAddr::Tcp),
            Self::Unix(_, path) => ListenAddr::Unix(path.clone()),
        }
    }
}

/// A listener that could not be set up.
#[derive(Debug)]
pub struct BindError {
    /// The address.
    pub addr: ListenAddr,
    /// What failed.
    pub step: &'static str,
    /// The system's error.
    pub source: io::Error,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot {} {}: {}", self.step, self.addr, self.source)
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Binds `addr`. TCP sockets get `SO_REUSEPORT`, so a new instance can start listening
/// before the old one stops (a restart that refuses no connection). A unix socket replaces a
/// stale socket file and gets the owner, group and mode of `unix`.
pub fn bind(addr: &ListenAddr, unix: &UnixSocket) -> Result<Listener, BindError> {
    let error = |step| {
        let addr = addr.clone();
        move |source| BindError { addr, step, source }
    };
    match addr {
        ListenAddr::Tcp(socket_addr) => {
            let socket = if socket_addr.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }
            .map_err(error("create a socket for"))?;
            socket
                .set_reuseaddr(true)
                .map_err(error("set SO_REUSEADDR on"))?;
            socket
                .set_reuseport(true)
                .map_err(error("set SO_REUSEPORT on"))?;
            socket.bind(*socket_addr).map_err(error("bind"))?;
            let listener = socket.listen(BACKLOG).map_err(error("listen on"))?;
            Ok(Listener::Tcp(listener))
        }
        ListenAddr::Unix(path) => {
            remove_stale_socket(path).map_err(error("remove the stale socket at"))?;
            let listener = UnixListener::bind(path).map_err(error("bind"))?;
            set_socket_access(path, unix).map_err(error("set owner and mode of"))?;
            Ok(Listener::Unix(listener, path.clone()))
        }
    }
}

fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a file that is not a socket is in the way",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn set_socket_access(path: &Path, unix: &UnixSocket) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(mode) = &unix.mode {
        let bits = u32::from_str_radix(mode.trim_start_matches("0o"), 8).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("mode {mode:?} is not an octal number like \"0660\""),
            )
        })?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(bits))?;
    }
    let uid = unix
        .owner
        .as_deref()
        .map(|name| account_id("/etc/passwd", name))
        .transpose()?;
    let gid = unix
        .group
        .as_deref()
        .map(|name| account_id("/etc/group", name))
        .transpose()?;
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(path, uid, gid)?;
    }
    Ok(())
}

/// A user or group id: the number itself, or looked up by name in `/etc/passwd` or
/// `/etc/group` (the third field).
fn account_id(file: &str, name: &str) -> io::Result<u32> {
    if let Ok(id) = name.parse() {
        return Ok(id);
    }
    let text = std::fs::read_to_string(file)?;
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let found = fields.next()? == name;
            let id = fields.nth(1)?.parse().ok()?;
            found.then_some(id)
        })
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no {name:?} in {file}")))
}

/// Serves `listeners` until `shutdown` completes; then stops accepting, lets every open
/// connection answer the requests it has read (for up to the configured shutdown timeout),
/// and removes unix socket files. Connections run on the runtime that runs this.
pub async fn serve(
    resolver: PolicyResolver,
    listeners: Vec<Listener>,
    shutdown: impl Future<Output = ()>,
) {
    serve_on(resolver, listeners, shutdown, Vec::new()).await;
}

/// [`serve`], with the connections dealt round-robin to the runtimes of `workers` (one
/// single-threaded runtime per core: a connection then lives on one thread, and a request
/// costs no wake-up of another thread). Requests the cache answers at once are answered
/// there; lookups, the store and everything else run on the runtime that runs this. With no
/// workers, connections run on this runtime too.
pub async fn serve_on(
    resolver: PolicyResolver,
    listeners: Vec<Listener>,
    shutdown: impl Future<Output = ()>,
    workers: Vec<Handle>,
) {
    let workers = Arc::new(workers);
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(
        resolver.config().limits.max_connections.max(1),
    ));
    let mut acceptors = JoinSet::new();
    let mut paths = Vec::new();
    for listener in listeners {
        tracing::info!(listen = %listener.addr(), "socketmap server listening");
        if let Listener::Unix(_, path) = &listener {
            paths.push(path.clone());
        }
        acceptors.spawn(accept_loop(
            listener,
            resolver.clone(),
            Arc::clone(&slots),
            stop_rx.clone(),
            Arc::clone(&workers),
        ));
    }
    shutdown.await;
    tracing::info!("shutting down: no new connections; open ones finish their requests");
    let _ = stop_tx.send(true);
    let grace = resolver.config().shutdown_grace();
    let drained = tokio::time::timeout(grace, async {
        while acceptors.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("connections still open after the shutdown timeout; closing them");
        acceptors.shutdown().await;
    }
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
}

/// Accepts connections until told to stop, then waits for its connections to end.
async fn accept_loop(
    listener: Listener,
    resolver: PolicyResolver,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    workers: Arc<Vec<Handle>>,
) {
    let home = Handle::current();
    let mut next_worker = 0;
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let accepted = tokio::select! {
            accepted = accept(&listener) => accepted,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
        match accepted {
            Ok(accepted) => {
                let (resolver, stop) = (resolver.clone(), stop.clone());
                let Some(worker) = workers.get(next_worker % workers.len().max(1)) else {
                    connections.spawn(async move {
                        run_connection(accepted, &resolver, stop, None).await;
                        drop(permit);
                    });
                    continue;
                };
                next_worker = next_worker.wrapping_add(1);
                // The socket is registered again on the worker's own event loop.
                let moved = match accepted.into_std() {
                    Ok(moved) => moved,
                    Err(error) => {
                        tracing::warn!(%error, "cannot hand a connection to a worker");
                        continue;
                    }
                };
                let home = home.clone();
                connections.spawn_on(
                    async move {
                        match Accepted::from_std(moved) {
                            Ok(accepted) => {
                                run_connection(accepted, &resolver, stop, Some(&home)).await;
                            }
                            Err(error) => {
                                tracing::warn!(%error, "cannot take a connection on a worker");
                            }
                        }
                        drop(permit);
                    },
                    worker,
                );
            }
            Err(error) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

enum Accepted {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// An accepted connection between event loops.
enum Moved {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl Accepted {
    /// The socket, out of this runtime's event loop (still non-blocking).
    fn into_std(self) -> io::Result<Moved> {
        Ok(match self {
            Self::Tcp(stream) => Moved::Tcp(stream.into_std()?),
            Self::Unix(stream) => Moved::Unix(stream.into_std()?),
        })
    }

    /// The socket, in the event loop of the runtime this is called on.
    fn from_std(moved: Moved) -> io::Result<Self> {
        Ok(match moved {
            Moved::Tcp(stream) => Self::Tcp(tokio::net::TcpStream::from_std(stream)?),
            Moved::Unix(stream) => Self::Unix(tokio::net::UnixStream::from_std(stream)?),
        })
    }
}

/// Serves an accepted connection (see [`connection`]).
async fn run_connection(
    accepted: Accepted,
    resolver: &PolicyResolver,
    stop: watch::Receiver<bool>,
    home: Option<&Handle>,
) {
    match accepted {
        Accepted::Tcp(stream) => {
            let _ = stream.set_nodelay(true);
            connection(stream, resolver, stop, home).await;
        }
        Accepted::Unix(stream) => connection(stream, resolver, stop, home).await,
    }
}

async fn accept(listener: &Listener) -> io::Result<Accepted> {
    match listener {
        Listener::Tcp(listener) => listener.accept().await.map(|(s, _)| Accepted::Tcp(s)),
        Listener::Unix(listener, _) => listener.accept().await.map(|(s, _)| Accepted::Unix(s)),
    }
}

/// Why a connection ended.
#[derive(Debug)]
enum End {
    /// The client closed it, or the server is shutting down with nothing pending.
    Done,
    /// No request for the idle timeout.
    Idle,
    /// Bytes that are not a netstring, or a request over the size limit.
    Malformed(super::netstring::NetstringError),
    /// A read or write failed or timed out.
    Io(io::Error),
}

/// Serves one connection: reads what has arrived, answers every complete request in order
/// (pipelining), writes the replies in one go, and reads again. A request the cache cannot
/// answer at once is decided on `home` when given (the runtime of lookups and the store),
/// else here.
///
/// A request costs a read and a write: the connection has one timer and one wait for the stop
/// signal for its whole life, not a new one per request. The timer is moved only when it
/// fires before the connection's deadline (then it is set to that deadline), or when the
/// deadline comes sooner than it is set for.
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    resolver: &PolicyResolver,
    mut stop: watch::Receiver<bool>,
    home: Option<&Handle>,
) {
    let limits = &resolver.config().limits;
    // Capped so that a deadline computed from it cannot overflow.
    let idle = Duration::from_secs(limits.idle_timeout.min(MAX_IDLE_SECONDS));
    let max_pipelined = limits.max_pipelined.max(1);
    let mut input: Vec<u8> = Vec::with_capacity(4096);
    let mut output: Vec<u8> = Vec::with_capacity(4096);
    let stopped = stop.wait_for(|stop| *stop);
    tokio::pin!(stopped);
    let mut stopping = false;
    let mut last_read = Instant::now();
    let timer = tokio::time::sleep_until(last_read + idle);
    tokio::pin!(timer);
    let end = loop {
        let mut start = 0;
        let mut malformed = None;
        let mut failed = None;
        let mut answered = 0;
        while answered < max_pipelined {
            let rest = input.get(start..).unwrap_or_default();
            match read_frame(rest, limits.max_request) {
                Ok(Some(frame)) => {
                    let payload = rest.get(frame.payload.clone()).unwrap_or_default();
                    if !resolver.answer_at_once(payload, &mut output)
                        && let Err(error) = decide(resolver, payload, &mut output, home).await
                    {
                        failed = Some(error);
                        break;
                    }
                    start += frame.consumed;
                    answered += 1;
                }
                Ok(None) => break,
                Err(error) => {
                    malformed = Some(error);
                    break;
                }
            }
        }
        input.drain(..start);
        if !output.is_empty() {
            // The write timeout's timer is made only when the write has to wait: with
            // `biased`, a write that completes at once never polls it.
            let written = tokio::select! {
                biased;
                written = stream.write_all(&output) => written,
                () = async { tokio::time::sleep(IO_TIMEOUT).await } => {
                    Err(io::ErrorKind::TimedOut.into())
                }
            };
            match written {
                Ok(()) => output.clear(),
                Err(error) => break End::Io(error),
            }
        }
        if let Some(error) = malformed {
            break End::Malformed(error);
        }
        if let Some(error) = failed {
            break End::Io(error);
        }
        if answered == max_pipelined {
            // More may be buffered already: answer it before reading.
            continue;
        }
        if stopping && input.is_empty() {
            break End::Done;
        }
        // A request under way must arrive within IO_TIMEOUT; between requests, wait longer.
        let wait = if input.is_empty() { idle } else { IO_TIMEOUT };
        let deadline = last_read + wait;
        if deadline < timer.deadline() {
            timer.as_mut().reset(deadline);
        }
        let read = tokio::select! {
            biased;
            read = stream.read_buf(&mut input) => Some(read),
            () = &mut timer => None,
            _ = &mut stopped, if !stopping => {
                stopping = true;
                continue;
            }
        };
        match read {
            Some(Ok(0)) => break End::Done,
            Some(Ok(_)) => last_read = Instant::now(),
            Some(Err(error)) => break End::Io(error),
            None if Instant::now() < deadline => timer.as_mut().reset(deadline),
            None if input.is_empty() => break End::Idle,
            None => break End::Io(io::ErrorKind::TimedOut.into()),
        }
    };
    match end {
        End::Done | End::Idle => tracing::trace!(?end, "connection closed"),
        End::Malformed(error) => tracing::warn!(
            %error,
            received = %escape(input.get(..input.len().min(64)).unwrap_or_default()),
            "closing a connection that sent a bad request"
        ),
        End::Io(error) => tracing::debug!(%error, "connection ended"),
    }
    let _ = stream.shutdown().await;
}

/// Answers a request the cache could not answer at once: on `home` when given, else here.
/// An error when the lookup's task ended without an answer (the runtime is going away).
async fn decide(
    resolver: &PolicyResolver,
    payload: &[u8],
    output: &mut Vec<u8>,
    home: Option<&Handle>,
) -> io::Result<()> {
    let Some(home) = home else {
        resolver.answer(payload, output).await;
        return Ok(());
    };
    let (resolver, payload) = (resolver.clone(), payload.to_vec());
    let reply = home
        .spawn(async move {
            let mut reply = Vec::new();
            resolver.answer(&payload, &mut reply).await;
            reply
        })
        .await
        .map_err(|error| {
            io::Error::other(format!("the lookup ended without an answer: {error}"))
        })?;
    output.extend_from_slice(&reply);
    Ok(())
}
