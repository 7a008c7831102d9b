//! The load: N clients, each on its own keep-alive HTTPS connection, posting reports one after
//! the other and timing each from the first byte written to the last byte of the answer read.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::cpu;
use crate::report::gzip_report;

/// After a failed request or connection, how long a client waits before connecting again, so a
/// server that is down is not hammered in a tight loop.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// What to run, shared by every client.
pub struct Plan {
    /// The server's loopback address.
    pub addr: SocketAddr,
    /// SNI and the name the certificate must carry.
    pub server_name: ServerName<'static>,
    /// The `Host` header: the server name, with the port.
    pub host: String,
    /// The intake path (`/tlsrpt`).
    pub path: String,
    /// Concurrent clients, one connection each.
    pub clients: usize,
    /// Requests before this long after the start are not counted, so that start-up effects
    /// (empty caches, a fresh database file) do not weigh on the figures.
    pub warmup: Duration,
    /// How long the measured window lasts at most.
    pub duration: Duration,
    /// How many reports the measured window posts at most.
    pub count: Option<u64>,
    /// A request taking longer counts as an error and its connection is replaced.
    pub timeout: Duration,
    /// Trusts the benchmark CA only.
    pub tls: Arc<ClientConfig>,
    /// Makes this run's report-ids unique.
    pub run_id: String,
    /// The server process, whose CPU time over the measured window is reported.
    pub server_pid: Option<u32>,
}

/// What one client saw in the measured window.
#[derive(Default)]
struct ClientTally {
    /// Latency of each 2xx answer.
    acked_latencies: Vec<Duration>,
    /// Answers by HTTP status.
    statuses: BTreeMap<u16, u64>,
    /// `201 Created` answers, warm-up included: what the store must hold afterwards.
    created: u64,
    /// Requests that got no answer (connection lost, timeout), warm-up included.
    errors: u64,
    last_error: Option<String>,
}

/// What the whole run saw.
pub struct Outcome {
    /// Time to open every connection (TCP and TLS handshakes), before the clock starts.
    pub connect: Duration,
    /// From the end of the warm-up until the last client finished.
    pub measured: Duration,
    /// Latencies of 2xx answers, sorted.
    pub latencies: Vec<Duration>,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// `201 Created` answers, warm-up included: every one must be in the store.
    pub created: u64,
    /// Requests without an answer, and the last reason.
    pub errors: u64,
    pub last_error: Option<String>,
    /// CPU seconds used in the measured window by this process and by the server.
    pub client_cpu: Option<f64>,
    pub server_cpu: Option<f64>,
}

impl Outcome {
    /// Reports answered 2xx (201 stored, 200 duplicate) in the measured window.
    pub fn acked(&self) -> u64 {
        self.latencies.len() as u64
    }

    /// The latency at quantile `q` (0 < q ≤ 1), nearest rank.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = (q * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }
}

/// Opens every connection, runs the clients until the duration or count is reached, and
/// gathers what they saw.
pub async fn run(plan: Arc<Plan>) -> anyhow::Result<Outcome> {
    let connector = TlsConnector::from(Arc::clone(&plan.tls));
    let started = Instant::now();
    let mut handshakes = Vec::with_capacity(plan.clients);
    for _ in 0..plan.clients {
        let (plan, connector) = (Arc::clone(&plan), connector.clone());
        handshakes.push(tokio::spawn(
            async move { connect(&plan, &connector).await },
        ));
    }
    let mut senders = Vec::with_capacity(plan.clients);
    for handshake in handshakes {
        senders.push(handshake.await??);
    }
    let connect = started.elapsed();

    let start = Instant::now();
    let window_start = start + plan.warmup;
    let deadline = window_start + plan.duration;
    let posted = Arc::new(AtomicU64::new(0));
    let server_pid = plan.server_pid;
    let cpu_at_window_start = tokio::spawn(async move {
        tokio::time::sleep_until(window_start.into()).await;
        (
            cpu::seconds(None),
            server_pid.and_then(|p| cpu::seconds(Some(p))),
        )
    });
    let mut clients = Vec::with_capacity(plan.clients);
    for (index, sender) in senders.into_iter().enumerate() {
        let client = Client {
            plan: Arc::clone(&plan),
            connector: connector.clone(),
            index,
            window_start,
            deadline,
            posted: Arc::clone(&posted),
        };
        clients.push(tokio::spawn(client.run(sender)));
    }
    let mut outcome = Outcome {
        connect,
        measured: Duration::ZERO,
        latencies: Vec::new(),
        statuses: BTreeMap::new(),
        created: 0,
        errors: 0,
        last_error: None,
        client_cpu: None,
        server_cpu: None,
    };
    for client in clients {
        let tally = client.await?;
        outcome.latencies.extend(tally.acked_latencies);
        for (status, n) in tally.statuses {
            *outcome.statuses.entry(status).or_default() += n;
        }
        outcome.created += tally.created;
        outcome.errors += tally.errors;
        outcome.last_error = tally.last_error.or(outcome.last_error);
    }
    let finished = Instant::now();
    let (client_cpu_end, server_cpu_end) = (
        cpu::seconds(None),
        server_pid.and_then(|p| cpu::seconds(Some(p))),
    );
    outcome.measured = finished.saturating_duration_since(window_start);
    outcome.latencies.sort_unstable();
    let (client_cpu_start, server_cpu_start) = cpu_at_window_start.await?;
    outcome.client_cpu = client_cpu_end.zip(client_cpu_start).map(|(b, a)| b - a);
    outcome.server_cpu = server_cpu_end.zip(server_cpu_start).map(|(b, a)| b - a);
    Ok(outcome)
}

/// Opens one keep-alive HTTPS connection; its driver runs as its own task.
async fn connect(
    plan: &Plan,
    connector: &TlsConnector,
) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let tcp = TcpStream::connect(plan.addr)
        .await
        .with_context(|| format!("cannot connect to {}", plan.addr))?;
    // Requests are written whole; Nagle would only delay the last segment.
    tcp.set_nodelay(true)?;
    let tls = connector
        .connect(plan.server_name.clone(), tcp)
        .await
        .with_context(|| format!("TLS handshake with {} failed", plan.addr))?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(async move {
        // A connection that fails shows up as an error of the request on it.
        let _ = connection.await;
    });
    Ok(sender)
}

struct Client {
    plan: Arc<Plan>,
    connector: TlsConnector,
    index: usize,
    window_start: Instant,
    deadline: Instant,
    /// Reports posted in the measured window by every client, for `--count`.
    posted: Arc<AtomicU64>,
}

impl Client {
    async fn run(self, sender: SendRequest<Full<Bytes>>) -> ClientTally {
        let mut tally = ClientTally::default();
        let mut sender = Some(sender);
        for seq in 0.. {
            let now = Instant::now();
            if now >= self.deadline {
                break;
            }
            let measured = now >= self.window_start;
            if measured
                && let Some(count) = self.plan.count
                && self.posted.fetch_add(1, Ordering::Relaxed) >= count
            {
                break;
            }
            // Compressing is the sender's work, so it is done before the clock starts.
            let body = gzip_report(&self.plan.run_id, self.index, seq);
            let begun = Instant::now();
            let answer = match sender.as_mut() {
                Some(sender) => {
                    tokio::time::timeout(self.plan.timeout, post(&self.plan, sender, body))
                        .await
                        .unwrap_or_else(|_| {
                            Err(anyhow::anyhow!("no answer within {:?}", self.plan.timeout))
                        })
                }
                None => Err(anyhow::anyhow!("not connected")),
            };
            let latency = begun.elapsed();
            if let Ok(201) = answer {
                tally.created += 1;
            }
            match answer {
                Ok(status) if measured => {
                    *tally.statuses.entry(status).or_default() += 1;
                    if (200..300).contains(&status) {
                        tally.acked_latencies.push(latency);
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tally.errors += 1;
                    tally.last_error = Some(format!("{error:#}"));
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    sender = match connect(&self.plan, &self.connector).await {
                        Ok(new) => Some(new),
                        Err(error) => {
                            tally.last_error = Some(format!("{error:#}"));
                            None
                        }
                    };
                }
            }
        }
        tally
    }
}

/// POSTs one gzip report and reads the whole answer; its HTTP status.
async fn post(
    plan: &Plan,
    sender: &mut SendRequest<Full<Bytes>>,
    body: Bytes,
) -> anyhow::Result<u16> {
    sender.ready().await?;
    let request = hyper::Request::post(plan.path.as_str())
        .header(HOST, plan.host.as_str())
        .header(CONTENT_TYPE, "application/tlsrpt+gzip")
        .body(Full::new(body))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(status)
}
