//! The collector: datagrams in, per-day counts committed to the store an interval at a time.
//!
//! One thread only drains the socket, so that a burst is taken off the kernel's short datagram
//! queue as fast as it arrives: it copies datagrams into batches and hands each to a second
//! thread, which reads and aggregates them in memory; neither waits for the database. Every
//! [`CollectorOptions::flush_interval`] the aggregated interval goes to a task that commits it
//! through the store's group commit; a commit that fails is retried, keeping the interval. A
//! crash loses only the interval not yet committed (and what the kernel still held), never a
//! committed one.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{self, BufRead};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mta_sts_store::{
    CollectedFailure, CollectedInterval, CollectedSessions, InvalidDatagram, ReportScope, Store,
    StoreError,
};
use mta_sts_tlsrpt::report::{AppliedPolicy, FailureDetail, UtcDay};
use std::sync::mpsc as mpsc_std;
use tokio::sync::mpsc;

use super::datagram::{Datagram, MAX_DATAGRAM_SIZE};

/// What time it is, in UTC seconds: the collector files each datagram under the UTC day it
/// arrived on. Tests inject a clock to cross a day boundary without waiting for one.
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch.
    fn now_unix_seconds(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_seconds(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
            })
    }
}

/// How the collector runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorOptions {
    /// How often what was aggregated is committed: the most a crash can lose.
    pub flush_interval: Duration,
    /// The socket receive buffer asked for (`SO_RCVBUF`), in bytes. On Linux it does not bound
    /// what a unix datagram socket holds: the kernel queues at most
    /// [`datagram_queue_limit`] datagrams, charged to each sender's send buffer.
    pub receive_buffer: usize,
    /// Invalid datagrams kept per interval for inspection; past that they are only counted.
    pub kept_invalid_per_interval: usize,
}

impl Default for CollectorOptions {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_secs(1),
            receive_buffer: 32 * 1024 * 1024,
            kept_invalid_per_interval: 100,
        }
    }
}

/// What a collector run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CollectorStats {
    /// Datagrams (or lines) read, valid or not.
    pub datagrams: u64,
    /// Of those, the ones that could not be read.
    pub invalid: u64,
    /// Intervals committed.
    pub intervals: u64,
}

/// Why the collector stopped with an error.
#[derive(Debug)]
#[non_exhaustive]
pub enum CollectError {
    /// The socket could not be set up.
    Socket {
        /// Its path.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// Reading the input failed.
    Read(io::Error),
    /// The store refused an interval and kept refusing it until shutdown.
    Store(StoreError),
}

impl std::fmt::Display for CollectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Socket { path, source } => {
                write!(f, "cannot listen on {}: {source}", path.display())
            }
            Self::Read(source) => write!(f, "cannot read the input: {source}"),
            Self::Store(source) => write!(f, "cannot commit collected results: {source}"),
        }
    }
}

impl std::error::Error for CollectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Socket { source, .. } | Self::Read(source) => Some(source),
            Self::Store(source) => Some(source),
        }
    }
}

/// Counts per policy entry, aggregated in memory until the next commit.
#[derive(Debug, Default)]
struct Entry {
    successful: u64,
    failed: u64,
    failures: HashMap<FailureKey, FailureDetail>,
}

/// (scope, policy type, policy string, policy domain, MX patterns).
type PolicyKey = (ReportScope, String, Vec<String>, String, Vec<String>);
/// Every field of a failure detail but its count.
type FailureKey = (String, [Option<String>; 6]);

/// Aggregates datagrams in memory into the next interval to commit.
#[derive(Debug)]
pub struct Aggregator {
    id_prefix: String,
    sequence: u64,
    entries: HashMap<PolicyKey, (AppliedPolicy, Entry)>,
    datagrams: u64,
    invalid: u64,
    kept_invalid: Vec<InvalidDatagram>,
    kept_invalid_limit: usize,
}

impl Aggregator {
    /// An empty aggregator keeping at most `kept_invalid_limit` invalid datagrams per interval.
    pub fn new(kept_invalid_limit: usize) -> Self {
        // Interval ids must be unique across restarts and across collectors sharing a store.
        let random = RandomState::new().hash_one(std::process::id());
        Self {
            id_prefix: format!(
                "{}-{}-{random:016x}",
                SystemClock.now_unix_seconds(),
                std::process::id()
            ),
            sequence: 0,
            entries: HashMap::new(),
            datagrams: 0,
            invalid: 0,
            kept_invalid: Vec::new(),
            kept_invalid_limit,
        }
    }

    /// Reads one datagram that arrived at `now` (UTC seconds) and adds it to the day's counts;
    /// an invalid one is counted (and kept, up to the limit).
    pub fn add(&mut self, bytes: &[u8], now: i64) {
        self.datagrams += 1;
        match Datagram::parse(bytes) {
            Ok(datagram) => self.add_datagram(datagram, UtcDay::containing(now)),
            Err(error) => self.add_invalid(bytes, error.to_string(), now),
        }
    }

    fn add_invalid(&mut self, bytes: &[u8], reason: String, now: i64) {
        self.invalid += 1;
        if self.kept_invalid.len() < self.kept_invalid_limit {
            self.kept_invalid.push(InvalidDatagram {
                received_at: now,
                bytes: bytes.get(..MAX_DATAGRAM_SIZE).unwrap_or(bytes).to_vec(),
                reason,
            });
        }
    }

    /// Adds a datagram already read to the counts of `day`.
    pub fn add_datagram(&mut self, datagram: Datagram, day: UtcDay) {
        let scope = ReportScope {
            day,
            domain: datagram.domain,
            tlsrpt_record: datagram.tlsrpt_record,
        };
        for policy in datagram.policies {
            let key = (
                scope.clone(),
                policy.policy.policy_type.as_str().to_owned(),
                policy.policy.policy_string.clone(),
                policy.policy.policy_domain.clone(),
                policy.policy.mx_host.clone(),
            );
            let (_, entry) = self
                .entries
                .entry(key)
                .or_insert_with(|| (policy.policy, Entry::default()));
            if policy.failed {
                entry.failed += 1;
            } else {
                entry.successful += 1;
            }
            for failure in policy.failures {
                let key = (
                    failure.result_type.as_str().to_owned(),
                    [
                        failure.sending_mta_ip.clone(),
                        failure.receiving_mx_hostname.clone(),
                        failure.receiving_mx_helo.clone(),
                        failure.receiving_ip.clone(),
                        failure.additional_information.clone(),
                        failure.failure_reason_code.clone(),
                    ],
                );
                entry
                    .failures
                    .entry(key)
                    .and_modify(|existing| {
                        existing.failed_session_count = existing
                            .failed_session_count
                            .saturating_add(failure.failed_session_count);
                    })
                    .or_insert(failure);
            }
        }
    }

    /// Whether nothing was added since the last [`Aggregator::take`].
    pub fn is_empty(&self) -> bool {
        self.datagrams == 0
    }

    /// What was aggregated since the last call, as an interval with a fresh id; the aggregator
    /// starts over empty.
    pub fn take(&mut self) -> CollectedInterval {
        self.sequence += 1;
        let mut interval = CollectedInterval {
            id: format!("{}-{}", self.id_prefix, self.sequence),
            datagrams: std::mem::take(&mut self.datagrams),
            invalid: std::mem::take(&mut self.invalid),
            kept_invalid: std::mem::take(&mut self.kept_invalid),
            ..CollectedInterval::default()
        };
        for ((scope, ..), (policy, entry)) in self.entries.drain() {
            for detail in entry.failures.into_values() {
                interval.failures.push(CollectedFailure {
                    scope: scope.clone(),
                    policy: policy.clone(),
                    detail,
                });
            }
            interval.sessions.push(CollectedSessions {
                scope,
                policy,
                successful: entry.successful,
                failed: entry.failed,
            });
        }
        interval
    }
}

/// Binds the collector's datagram socket at `path` (replacing a stale socket file left by an
/// earlier run) with a receive buffer of `receive_buffer` bytes.
///
/// # Errors
///
/// When the socket cannot be bound.
pub fn bind_socket(path: &Path, receive_buffer: usize) -> Result<UnixDatagram, CollectError> {
    let socket_error = |source| CollectError::Socket {
        path: path.to_owned(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if std::os::unix::fs::FileTypeExt::is_socket(&metadata.file_type()) => {
            std::fs::remove_file(path).map_err(socket_error)?;
        }
        _ => {}
    }
    let socket = UnixDatagram::bind(path).map_err(socket_error)?;
    // A smaller buffer than asked for (the kernel's cap) still works; bursts are just riskier.
    let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(receive_buffer);
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(socket_error)?;
    Ok(socket)
}

/// The receive buffer the kernel granted `socket`, in bytes.
pub fn receive_buffer_size(socket: &UnixDatagram) -> io::Result<usize> {
    socket2::SockRef::from(socket).recv_buffer_size()
}

/// The `net.unix.max_dgram_qlen` below which [`datagram_queue_limit`] is too short for bursts.
pub const RECOMMENDED_DATAGRAM_QUEUE: u64 = 4096;

/// How many datagrams Linux queues for a unix datagram socket created now in this network
/// namespace, if it says (`net.unix.max_dgram_qlen`, default 10).
///
/// This, not `SO_RCVBUF`, is what a burst runs into: a blocking sender waits once the queue
/// is full, and a non-blocking one (libtlsrpt, as Postfix uses it) loses the datagram. The
/// limit is fixed when the socket is created, so it must be raised before the collector
/// starts. Each sender's own send buffer (`net.core.wmem_default`) caps what it has queued, too.
pub fn datagram_queue_limit() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Where datagrams come from.
enum Input {
    Socket(UnixDatagram),
    Lines(Box<dyn BufRead + Send>),
}

/// Collects datagrams from `socket` into `store` until `stop` is set, then commits what is left
/// and returns.
///
/// # Errors
///
/// When the socket fails, or the store refuses an interval until shutdown.
pub async fn collect_socket(
    store: &Store,
    socket: UnixDatagram,
    options: &CollectorOptions,
    clock: Arc<dyn Clock>,
    stop: Arc<AtomicBool>,
) -> Result<CollectorStats, CollectError> {
    collect(store, Input::Socket(socket), options, clock, stop).await
}

/// Collects one datagram per line of `input` (the same JSON, for MTAs without libtlsrpt and
/// for tests) until its end or until `stop` is set, commits what is left and returns. Blank
/// lines are skipped.
///
/// # Errors
///
/// When reading fails, or the store refuses an interval until shutdown.
pub async fn collect_lines(
    store: &Store,
    input: Box<dyn BufRead + Send>,
    options: &CollectorOptions,
    clock: Arc<dyn Clock>,
    stop: Arc<AtomicBool>,
) -> Result<CollectorStats, CollectError> {
    collect(store, Input::Lines(input), options, clock, stop).await
}

async fn collect(
    store: &Store,
    input: Input,
    options: &CollectorOptions,
    clock: Arc<dyn Clock>,
    stop: Arc<AtomicBool>,
) -> Result<CollectorStats, CollectError> {
    let (intervals, mut queue) = mpsc::unbounded_channel();
    let receiver_options = options.clone();
    let receiver_stop = Arc::clone(&stop);
    let receiver = std::thread::Builder::new()
        .name("tlsrpt-aggregate".into())
        .spawn(move || {
            receive(
                input,
                &receiver_options,
                &*clock,
                &receiver_stop,
                &intervals,
            )
        })
        .map_err(CollectError::Read)?;
    let mut stats = CollectorStats::default();
    let mut failure = None;
    while let Some(interval) = queue.recv().await {
        let (datagrams, invalid) = (interval.datagrams, interval.invalid);
        match commit_with_retries(store, interval, &stop).await {
            Ok(()) => {
                stats.datagrams += datagrams;
                stats.invalid += invalid;
                stats.intervals += 1;
            }
            Err(error) => {
                failure = Some(error);
                stop.store(true, Ordering::Relaxed);
            }
        }
    }
    let received = receiver
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the receiving thread panicked")));
    if let Some(error) = failure {
        return Err(CollectError::Store(error));
    }
    received.map_err(CollectError::Read)?;
    Ok(stats)
}

/// Commits `interval`, retrying with back-off while the store refuses it; gives up only once
/// `stop` is set and a last attempt failed.
async fn commit_with_retries(
    store: &Store,
    interval: CollectedInterval,
    stop: &AtomicBool,
) -> Result<(), StoreError> {
    let mut delay = Duration::from_millis(100);
    loop {
        // The same id committed twice counts once, so a retry after an uncertain outcome is safe.
        match store.commit_collected(interval.clone()).await {
            Ok(_) => return Ok(()),
            Err(error) if stop.load(Ordering::Relaxed) => return Err(error),
            Err(error) => {
                eprintln!("mta-sts tlsrpt collect: {error}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Datagrams copied off the socket by the draining thread, for the aggregating one.
#[derive(Debug, Default)]
struct Batch {
    /// The datagrams, one after the other.
    bytes: Vec<u8>,
    /// Where each is in `bytes`, and when it arrived (UTC seconds).
    datagrams: Vec<(std::ops::Range<usize>, i64)>,
}

/// A batch is handed over once it holds this many datagrams...
const BATCH_DATAGRAMS: usize = 256;
/// ...or this many bytes...
const BATCH_BYTES: usize = 256 * 1024;
/// ...or its first datagram waited this long (checked whenever the socket returns).
const BATCH_WAIT: Duration = Duration::from_millis(20);
/// Batches waiting for the aggregating thread, at most (about 80 MiB at worst, 65,536 typical
/// datagrams); past that the draining thread waits and the kernel's queue fills.
const QUEUED_BATCHES: usize = 256;

/// The nice value the draining thread asks for when real-time scheduling is refused.
pub const DRAIN_NICE: i32 = -10;

/// How the draining thread is scheduled: what [`raise_drain_priority`] obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainPriority {
    /// `SCHED_FIFO` at priority 1, the lowest real-time priority: it runs as soon as a
    /// datagram wakes it, ahead of every normally scheduled thread on the machine.
    RealTime,
    /// Normal scheduling at nice [`DRAIN_NICE`]; real-time scheduling was refused (why).
    Nice(String),
    /// Normal scheduling at the process's nice value; both were refused (why).
    Normal(String),
}

impl std::fmt::Display for DrainPriority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::RealTime => write!(f, "real-time (SCHED_FIFO priority 1)"),
            Self::Nice(why) => write!(f, "nice {DRAIN_NICE} (real-time refused: {why})"),
            Self::Normal(why) => write!(f, "normal priority ({why})"),
        }
    }
}

/// Asks for the calling thread, and only it, to be scheduled first: `SCHED_FIFO` priority 1
/// (allowed by `CAP_SYS_NICE` or `RLIMIT_RTPRIO` >= 1, systemd's `LimitRTPRIO=1`), else nice
/// [`DRAIN_NICE`] (`CAP_SYS_NICE` or `RLIMIT_NICE`, systemd's `LimitNICE=`), else nothing.
///
/// A thread that only moves datagrams from the socket to a queue, and blocks whenever the socket
/// is empty, costs the machine little at that priority; the kernel's real-time throttling
/// (`kernel.sched_rt_runtime_us`, 95 % by default) still bounds it should it ever spin.
pub fn raise_drain_priority() -> DrainPriority {
    use thread_priority::{
        Error, RealtimeThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let real_time = match set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
    ) {
        Ok(()) => return DrainPriority::RealTime,
        Err(Error::OS(code)) => io::Error::from_raw_os_error(code).to_string(),
        Err(error) => error.to_string(),
    };
    // On Linux a nice value belongs to a thread; the thread id names this one only.
    match rustix::process::setpriority_process(Some(rustix::thread::gettid()), DRAIN_NICE) {
        Ok(()) => DrainPriority::Nice(real_time),
        Err(nice) => DrainPriority::Normal(format!(
            "real-time refused: {real_time}; nice {DRAIN_NICE} refused: {}",
            io::Error::from(nice)
        )),
    }
}

/// The draining thread: takes datagrams off `socket` as fast as they come, stamps them with
/// the time, and hands them over in batches until `stop` is set or the aggregator is gone.
fn drain(
    socket: &UnixDatagram,
    clock: &dyn Clock,
    stop: &AtomicBool,
    batches: &mpsc_std::SyncSender<Batch>,
) -> io::Result<()> {
    // A non-blocking sender (libtlsrpt) has only its send buffer, a few milliseconds of
    // datagrams, to cover the time this thread waits to be scheduled.
    let priority = raise_drain_priority();
    match &priority {
        DrainPriority::RealTime => {
            eprintln!("mta-sts tlsrpt collect: the draining thread runs at {priority}");
        }
        DrainPriority::Nice(_) | DrainPriority::Normal(_) => eprintln!(
            "mta-sts tlsrpt collect: the draining thread runs at {priority}; a non-blocking \
             sender loses datagrams when it waits longer than a few milliseconds for a CPU: \
             allow real-time priority 1 (LimitRTPRIO=1, dist/systemd/mta-sts-tlsrpt.service)"
        ),
    }
    // One byte more than the largest datagram read, to tell a cut-off one.
    let mut buffer = vec![0; MAX_DATAGRAM_SIZE + 1];
    let mut batch = Batch::default();
    let mut first_at = Instant::now();
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        match socket.recv(&mut buffer) {
            Ok(len) => {
                if batch.datagrams.is_empty() {
                    first_at = Instant::now();
                }
                let start = batch.bytes.len();
                batch
                    .bytes
                    .extend_from_slice(buffer.get(..len).unwrap_or(&buffer));
                batch
                    .datagrams
                    .push((start..batch.bytes.len(), clock.now_unix_seconds()));
            }
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(error) => break Err(error),
        }
        let full = batch.datagrams.len() >= BATCH_DATAGRAMS || batch.bytes.len() >= BATCH_BYTES;
        let waited = !batch.datagrams.is_empty() && first_at.elapsed() >= BATCH_WAIT;
        if (full || waited) && batches.send(std::mem::take(&mut batch)).is_err() {
            break Ok(());
        }
    };
    if !batch.datagrams.is_empty() {
        // The aggregator outlives this thread; should it be gone, there is nobody to tell.
        let _ = batches.send(batch);
    }
    result
}

/// The aggregating thread: reads and aggregates (from the draining thread, or the lines of
/// the input), and hands an interval over at each flush.
fn receive(
    input: Input,
    options: &CollectorOptions,
    clock: &dyn Clock,
    stop: &AtomicBool,
    intervals: &mpsc::UnboundedSender<CollectedInterval>,
) -> io::Result<()> {
    let mut aggregator = Aggregator::new(options.kept_invalid_per_interval);
    let mut last_flush = Instant::now();
    let flush = |aggregator: &mut Aggregator, last_flush: &mut Instant| {
        *last_flush = Instant::now();
        if !aggregator.is_empty() {
            // The committer outlives this thread; should it be gone, there is nobody to tell.
            let _ = intervals.send(aggregator.take());
        }
    };
    let result = match input {
        Input::Socket(socket) => {
            let (batches, queue) = mpsc_std::sync_channel::<Batch>(QUEUED_BATCHES);
            std::thread::scope(|scope| {
                let socket = &socket;
                let drain = std::thread::Builder::new()
                    .name("tlsrpt-drain".into())
                    .spawn_scoped(scope, move || drain(socket, clock, stop, &batches))?;
                loop {
                    match queue.recv_timeout(options.flush_interval) {
                        Ok(batch) => {
                            for (range, now) in batch.datagrams {
                                aggregator.add(batch.bytes.get(range).unwrap_or_default(), now);
                            }
                        }
                        Err(mpsc_std::RecvTimeoutError::Timeout) => {}
                        Err(mpsc_std::RecvTimeoutError::Disconnected) => break,
                    }
                    if last_flush.elapsed() >= options.flush_interval {
                        flush(&mut aggregator, &mut last_flush);
                    }
                }
                drain
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("the draining thread panicked")))
            })
        }
        Input::Lines(mut reader) => {
            let mut line = Vec::new();
            loop {
                if stop.load(Ordering::Relaxed) {
                    break Ok(());
                }
                line.clear();
                match io::Read::take(&mut reader, MAX_DATAGRAM_SIZE as u64 + 1)
                    .read_until(b'\n', &mut line)
                {
                    Ok(0) => break Ok(()),
                    Ok(_) => {
                        if line.len() > MAX_DATAGRAM_SIZE && line.last() != Some(&b'\n') {
                            // Skip the rest of an overlong line; it is one invalid datagram.
                            let mut rest = Vec::new();
                            if let Err(error) = reader.read_until(b'\n', &mut rest) {
                                break Err(error);
                            }
                        }
                        let text = line.strip_suffix(b"\n").unwrap_or(&line);
                        let text = text.strip_suffix(b"\r").unwrap_or(text);
                        if !text.iter().all(u8::is_ascii_whitespace) {
                            aggregator.add(text, clock.now_unix_seconds());
                        }
                    }
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) => break Err(error),
                }
                if last_flush.elapsed() >= options.flush_interval {
                    flush(&mut aggregator, &mut last_flush);
                }
            }
        }
    };
    flush(&mut aggregator, &mut last_flush);
    result
}
