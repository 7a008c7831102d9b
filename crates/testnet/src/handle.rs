//! Running a server task and stopping it again.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// A running server: its address and the means to stop it.
///
/// Dropping the handle aborts the server task, which aborts every connection task it owns, so no
/// task outlives the test that started it. [`ServerHandle::shutdown`] stops it and waits.
#[derive(Debug)]
pub struct ServerHandle {
    /// Where clients reach the server.
    local_addr: SocketAddr,
    /// Dropping or sending on it is the shutdown signal the server's `run` waits on.
    stop: Option<oneshot::Sender<()>>,
    /// The server's `run` future; aborted on drop as a backstop.
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// Spawns `run(shutdown)` on the current tokio runtime; `run` must return soon after the
    /// `shutdown` future completes.
    pub(crate) fn spawn<F, Fut>(local_addr: SocketAddr, run: F) -> Self
    where
        F: FnOnce(ShutdownSignal) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(ShutdownSignal(stopped)));
        Self {
            local_addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The IP address the server listens on (what an A record should point at).
    pub fn ip(&self) -> IpAddr {
        self.local_addr.ip()
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// Signals the server to stop and waits until its task, and all its connections, are gone.
    pub async fn shutdown(mut self) {
        drop(self.stop.take());
        if let Some(task) = self.task.take() {
            // A server task never panics on network input; a JoinError here can only be a
            // cancellation, which is what we asked for.
            let _ = task.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The future a server's `run` waits on: it completes when the owning [`ServerHandle`] is shut
/// down or dropped.
#[derive(Debug)]
pub struct ShutdownSignal(oneshot::Receiver<()>);

impl Future for ShutdownSignal {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        // Both a sent value and a dropped sender mean "stop".
        std::pin::Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// Connection tasks of one server; dropping it aborts them all.
#[derive(Debug, Default)]
pub(crate) struct Connections(JoinSet<()>);

impl Connections {
    /// Spawns a connection task, first forgetting connections that have finished so a long
    /// benchmark does not accumulate them.
    pub(crate) fn spawn(&mut self, connection: impl Future<Output = ()> + Send + 'static) {
        while self.0.try_join_next().is_some() {}
        self.0.spawn(connection);
    }
}

/// Accepts connections until `shutdown` completes, running `on_connection` for each in its own
/// task; returning aborts every connection still open.
pub(crate) async fn accept_loop<F, Fut>(
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
    mut on_connection: F,
) where
    F: FnMut(tokio::net::TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut connections = Connections::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => connections.spawn(on_connection(stream)),
                // Accept fails transiently (e.g. out of file descriptors); retrying at once
                // would spin.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            },
        }
    }
}

/// Sessions in progress at one server, and the most there ever were at once: what a test of
/// a client's per-destination cap counts.
///
/// A session is in progress from its accept until the server starts its last answer (221 to
/// QUIT, the HTTP response), or until it ends without one. A client that holds its place
/// until it has read that answer therefore always holds at least as many places as this
/// counts: the count can never run ahead of the client's cap.
#[derive(Debug, Default)]
pub(crate) struct Gauge {
    open: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    /// A session starts; it is over when the returned value is dropped.
    pub(crate) fn enter(&self) -> InProgress<'_> {
        let open = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(open, Ordering::SeqCst);
        InProgress(self)
    }

    /// The most sessions in progress at once so far.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// One session counted by a [`Gauge`].
#[derive(Debug)]
pub(crate) struct InProgress<'a>(&'a Gauge);

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}
