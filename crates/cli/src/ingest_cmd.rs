//! `mta-sts reports ingest SOURCE...`: report files, directories, one mail on standard input
//! (as an MDA), Maildir and mbox into the store, every one through [`Store::ingest`].
//!
//! A mail's whole message is the raw body kept (`message/rfc822`); a file's bytes are. One
//! body that cannot be read is quarantined with its reason and the run goes on. Bodies are
//! ingested concurrently so that the store's writer commits them in groups, and sources are
//! walked lazily, so memory does not grow with the number of files.

use std::ffi::OsStr;
use std::io::{IsTerminal, Read, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use mta_sts_store::{DkimCheck, DkimResult, Ingested, Source, Store, StoreError, StoreOptions};
use mta_sts_tlsrpt::mail::MAX_MAIL_SIZE;
use tokio::sync::Semaphore;

use crate::Outcome;
use crate::args::ReportsIngestArgs;
use crate::dkim_verify::DkimVerifier;
use crate::imap_source::{self, Disposition, ImapOptions, Mailbox};
use crate::render::clean;

/// The most reports committed in one transaction by `reports ingest`: a bulk load of
/// thousands of files costs a few flushes and writes each touched page once per batch, not
/// once per handful of reports. A file counts as stored only once its batch has committed.
const BATCH: usize = 1024;

/// Bodies in flight at once: a batch being committed while the next one is read.
const IN_FLIGHT: usize = 2 * BATCH;

/// The content type kept with a mail's raw bytes; the store reads such a body as a mail.
pub(crate) const MAIL_TYPE: &str = "message/rfc822";

/// The Maildir++ folder that unreadable messages are moved to.
const QUARANTINE_FOLDER: &str = ".Quarantine";

/// The header added to a message moved to the quarantine folder.
const QUARANTINE_HEADER: &str = "X-MTA-STS-Quarantine";

/// The exit status that makes an MTA keep a message queued and try again (sysexits.h).
const EX_TEMPFAIL: u8 = 75;

/// `reports ingest`.
pub fn ingest(args: &ReportsIngestArgs) -> anyhow::Result<Outcome> {
    let sources: Vec<SourceArg> = args
        .sources
        .iter()
        .map(SourceArg::parse)
        .collect::<anyhow::Result<_>>()?;
    let stdin_only = matches!(sources.as_slice(), [SourceArg::Stdin]);
    if args.watch && !sources.iter().all(|s| matches!(s, SourceArg::Imap(_))) {
        anyhow::bail!("--watch is for imap:// and imaps:// sources only");
    }
    let imap = if sources.iter().any(|s| matches!(s, SourceArg::Imap(_))) {
        Some(imap_options(args)?)
    } else {
        None
    };
    if sources
        .iter()
        .filter(|s| matches!(s, SourceArg::Stdin))
        .count()
        > 1
    {
        anyhow::bail!("`-` (standard input) can be given once");
    }
    // An MDA reads the message before anything else, so that a store that is down costs the
    // MTA a retry, not the message.
    let stdin_message = if sources.iter().any(|s| matches!(s, SourceArg::Stdin)) {
        Some(read_stdin()?)
    } else {
        None
    };
    let location = crate::serve::location(&args.store, None)?;
    let dkim = if args.no_dkim {
        None
    } else {
        match DkimVerifier::new(&dkim_net_config(args)?) {
            Ok(verifier) => Some(Arc::new(verifier)),
            // An MDA must not lose the message over it: go on, every mail unchecked (and in
            // quarantine with --require-dkim).
            Err(error) => {
                eprintln!(
                    "mta-sts: warning: DKIM signatures are not checked: {}",
                    clean(&format!("{error:#}"))
                );
                None
            }
        }
    };
    let require_dkim = args.require_dkim;
    let runtime = crate::runtime()?;
    runtime.block_on(async move {
        let options = StoreOptions {
            max_batch: BATCH,
            ..StoreOptions::default()
        };
        let store = match Store::open_with(&location, options).await {
            Ok(store) => Arc::new(store),
            Err(error) => {
                eprintln!(
                    "mta-sts: error: cannot open the store at {}: {}",
                    clean(&location.to_string()),
                    clean(&error.to_string())
                );
                if stdin_message.is_some() {
                    eprintln!("mta-sts: the message was not stored; exit 75 asks the MTA to retry");
                }
                return Ok(Outcome::Exit(EX_TEMPFAIL));
            }
        };
        let run = Run::new(store.clone(), dkim, require_dkim);
        if let (true, Some(imap)) = (args.watch, &imap) {
            // Until interrupted; what is in flight then is finished before the counts.
            let watchers = sources.iter().filter_map(|source| match source {
                SourceArg::Imap(mailbox) => Some(imap_source::ingest(&run, mailbox, imap)),
                _ => None,
            });
            tokio::select! {
                _ = futures_util::future::join_all(watchers) => {}
                () = mta_sts_server::shutdown_signal() => {}
            }
        }
        for source in sources.iter().filter(|_| !args.watch) {
            match source {
                SourceArg::Stdin => {
                    let bytes = stdin_message.clone().unwrap_or_default();
                    let content_type = sniff_type(&bytes, true);
                    run.submit(Item::new("-".to_owned(), Source::Mail, content_type, bytes))
                        .await;
                }
                SourceArg::Path(path) => run.walk(path).await,
                SourceArg::Maildir(path) => run.maildir(path).await,
                SourceArg::Mbox(path) => run.mbox(path).await,
                SourceArg::Imap(mailbox) => {
                    if let Some(imap) = &imap {
                        imap_source::ingest(&run, mailbox, imap).await;
                    }
                }
            }
        }
        run.finish().await;
        let totals = run.totals.snapshot();
        if let Ok(store) = Arc::try_unwrap(store) {
            store.close().await;
        }
        totals.print(args.json, stdin_only)?;
        Ok(if totals.store_errors > 0 {
            Outcome::Exit(EX_TEMPFAIL)
        } else if totals.unreadable > 0 {
            Outcome::Problems
        } else {
            Outcome::Ok
        })
    })
}

/// The DNS that DKIM keys are looked up with: `--resolver` or the system's, a short timeout
/// per query (a signature whose key cannot be had fails, it does not hold up the run).
fn dkim_net_config(args: &ReportsIngestArgs) -> anyhow::Result<mta_sts_net::NetConfig> {
    if !(args.dns_timeout.is_finite() && args.dns_timeout > 0.0) {
        anyhow::bail!("--dns-timeout must be a positive number of seconds");
    }
    Ok(mta_sts_net::NetConfig {
        resolver: args.resolver,
        timeout: Duration::from_secs_f64(args.dns_timeout),
        ..mta_sts_net::NetConfig::default()
    })
}

/// A `[[mailbox]]` of `serve`: a future that reads the folder into `store` for as long as the
/// server runs (IMAP with IDLE, a Maildir every `poll`), DKIM checked with the system's DNS.
/// An error in the block is returned at once, before the server starts.
pub(crate) fn watch_mailbox(
    store: Arc<Store>,
    mailbox: &mta_sts_server::Mailbox,
) -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    let label = clean(&mailbox.url);
    let source = SourceArg::parse(&std::ffi::OsString::from(&mailbox.url))
        .with_context(|| format!("[[mailbox]] {label}"))?;
    let imap = match &source {
        SourceArg::Imap(_) => {
            let password = match &mailbox.password_file {
                Some(path) => Some(read_password(path)?),
                None => std::env::var(imap_source::PASSWORD_ENV).ok(),
            };
            let folder = |name: &Option<String>, default: &str| {
                name.clone().unwrap_or_else(|| default.to_owned())
            };
            Some(ImapOptions {
                processed: folder(&mailbox.processed, crate::args::IMAP_PROCESSED),
                quarantine: folder(&mailbox.quarantine, crate::args::IMAP_QUARANTINE),
                password,
                watch: true,
                tls: imap_tls(&mailbox.ca_file)?,
            })
        }
        SourceArg::Maildir(_) => None,
        _ => anyhow::bail!("[[mailbox]] {label}: not an IMAP URL or maildir:PATH"),
    };
    let dkim = match DkimVerifier::new(&mta_sts_net::NetConfig::default()) {
        Ok(verifier) => Some(Arc::new(verifier)),
        Err(error) => {
            tracing::warn!(
                "[[mailbox]] {label}: DKIM signatures are not checked: {}",
                clean(&format!("{error:#}"))
            );
            None
        }
    };
    let run = Run::new(store, dkim, mailbox.require_dkim).quiet();
    let poll = mailbox.poll;
    tracing::info!("reading report mail from {label}");
    Ok(async move {
        match (&source, &imap) {
            (SourceArg::Imap(source), Some(imap)) => imap_source::ingest(&run, source, imap).await,
            (SourceArg::Maildir(path), _) => loop {
                run.maildir(path).await;
                // Every message's outcome is settled before the folder is looked at again.
                run.finish().await;
                tokio::time::sleep(poll).await;
            },
            _ => {}
        }
    })
}

pub(crate) fn read_password(path: &Path) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .trim_end_matches(['\r', '\n'])
        .to_owned())
}

/// TLS client settings of IMAP: the public roots plus `ca_files`.
fn imap_tls(ca_files: &[PathBuf]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut net = mta_sts_net::NetConfig::default();
    for path in ca_files {
        net.add_ca_file(path)?;
    }
    Ok(mta_sts_net::verifying_client_config(&net.extra_roots, &[])?)
}

/// The settings of IMAP sources: folders, the password, the TLS roots.
fn imap_options(args: &ReportsIngestArgs) -> anyhow::Result<ImapOptions> {
    let password = match &args.imap_password_file {
        Some(path) => Some(read_password(path)?),
        None => std::env::var(imap_source::PASSWORD_ENV).ok(),
    };
    Ok(ImapOptions {
        processed: args.imap_processed.clone(),
        quarantine: args.imap_quarantine.clone(),
        password,
        watch: args.watch,
        tls: imap_tls(&args.ca_file)?,
    })
}

/// One `SOURCE` argument.
enum SourceArg {
    Stdin,
    Path(PathBuf),
    Maildir(PathBuf),
    Mbox(PathBuf),
    Imap(Mailbox),
}

impl SourceArg {
    fn parse(arg: &std::ffi::OsString) -> anyhow::Result<Self> {
        if arg == "-" {
            return Ok(Self::Stdin);
        }
        let text = arg.to_string_lossy();
        if let Some(path) = text.strip_prefix("maildir:") {
            return Ok(Self::Maildir(PathBuf::from(path)));
        }
        if let Some(path) = text.strip_prefix("mbox:") {
            return Ok(Self::Mbox(PathBuf::from(path)));
        }
        if text.starts_with("imap://") || text.starts_with("imaps://") {
            return Mailbox::parse(&text)
                .map(Self::Imap)
                .map_err(|error| error.context("bad IMAP source"));
        }
        Ok(Self::Path(PathBuf::from(arg)))
    }
}

/// The message on standard input, up to [`MAX_MAIL_SIZE`].
fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_MAIL_SIZE).unwrap_or(u64::MAX) + 1;
    std::io::stdin()
        .lock()
        .take(limit)
        .read_to_end(&mut bytes)
        .context("cannot read the message on standard input")?;
    if bytes.len() > MAX_MAIL_SIZE {
        anyhow::bail!(
            "the message on standard input is larger than {MAX_MAIL_SIZE} bytes; no TLS report \
             is that large"
        );
    }
    Ok(bytes)
}

/// What a body is, from its name (when it has one) and its first bytes: a mail unless it is
/// a report file (zip, gzip or JSON).
fn sniff_type(bytes: &[u8], mail_expected: bool) -> &'static str {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let first = start.and_then(|at| bytes.get(at)).copied();
    if bytes.starts_with(b"PK\x03\x04") {
        "application/zip"
    } else if bytes.starts_with(b"\x1f\x8b") {
        "application/tlsrpt+gzip"
    } else if first == Some(b'{') || bytes.starts_with(b"\xEF\xBB\xBF") {
        "application/tlsrpt+json"
    } else if mail_expected {
        MAIL_TYPE
    } else {
        "application/octet-stream"
    }
}

/// The content type of a file by its name; `None` for a file that is not a report, which a
/// directory walk skips.
fn type_by_name(path: &Path) -> Option<&'static str> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    if name.ends_with(".eml") || name.ends_with(".msg") {
        Some(MAIL_TYPE)
    } else if name.ends_with(".gz") {
        Some("application/tlsrpt+gzip")
    } else if name.ends_with(".json") {
        Some("application/tlsrpt+json")
    } else if name.ends_with(".zip") {
        Some("application/zip")
    } else {
        None
    }
}

/// A body to ingest, and what to do with its source once it is safe.
pub(crate) struct Item {
    label: String,
    source: Source,
    content_type: &'static str,
    bytes: Vec<u8>,
    pub(crate) after: After,
}

impl Item {
    pub(crate) fn new(
        label: String,
        source: Source,
        content_type: &'static str,
        bytes: Vec<u8>,
    ) -> Self {
        Self {
            label,
            source,
            content_type,
            bytes,
            after: After::Nothing,
        }
    }
}

/// What happens to a message's source once its outcome is committed.
pub(crate) enum After {
    Nothing,
    Maildir {
        root: PathBuf,
        path: PathBuf,
    },
    /// Tell the IMAP source, which moves the message.
    Imap {
        uid: u32,
        done: tokio::sync::mpsc::UnboundedSender<(u32, Disposition)>,
    },
}

#[derive(Default)]
struct Counters {
    read: AtomicU64,
    stored: AtomicU64,
    duplicates: AtomicU64,
    quarantined: AtomicU64,
    skipped: AtomicU64,
    unreadable: AtomicU64,
    store_errors: AtomicU64,
    dkim_pass: AtomicU64,
    dkim_fail: AtomicU64,
    dkim_none: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Totals {
    read: u64,
    stored: u64,
    duplicates: u64,
    quarantined: u64,
    skipped: u64,
    unreadable: u64,
    store_errors: u64,
    dkim_pass: u64,
    dkim_fail: u64,
    dkim_none: u64,
}

impl Counters {
    fn snapshot(&self) -> Totals {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Totals {
            read: get(&self.read),
            stored: get(&self.stored),
            duplicates: get(&self.duplicates),
            quarantined: get(&self.quarantined),
            skipped: get(&self.skipped),
            unreadable: get(&self.unreadable),
            store_errors: get(&self.store_errors),
            dkim_pass: get(&self.dkim_pass),
            dkim_fail: get(&self.dkim_fail),
            dkim_none: get(&self.dkim_none),
        }
    }
}

impl Totals {
    fn print(self, json: bool, stdin_only: bool) -> anyhow::Result<()> {
        if json {
            let value = serde_json::json!({
                "read": self.read,
                "stored": self.stored,
                "duplicates": self.duplicates,
                "quarantined": self.quarantined,
                "skipped": self.skipped,
                "unreadable": self.unreadable,
                "store_errors": self.store_errors,
                "dkim": {
                    "pass": self.dkim_pass,
                    "fail": self.dkim_fail,
                    "none": self.dkim_none,
                },
            });
            outln!("{}", serde_json::to_string_pretty(&value)?);
            return Ok(());
        }
        if stdin_only {
            // An MDA's output goes to the MTA's log: one line.
            let what = if self.stored > 0 {
                "stored"
            } else if self.duplicates > 0 {
                "duplicate (stored before)"
            } else if self.quarantined > 0 {
                "quarantined (kept, see `mta-sts reports list`)"
            } else {
                "not stored"
            };
            outln!("message: {what}");
            return Ok(());
        }
        let checked = self.dkim_pass + self.dkim_fail + self.dkim_none;
        outln!(
            "{} read: {} stored, {} duplicates, {} quarantined, {} skipped, {} unreadable{}{}",
            self.read,
            self.stored,
            self.duplicates,
            self.quarantined,
            self.skipped,
            self.unreadable,
            if checked > 0 {
                format!(
                    "; DKIM of {checked} mails: {} pass, {} fail, {} unsigned",
                    self.dkim_pass, self.dkim_fail, self.dkim_none
                )
            } else {
                String::new()
            },
            if self.store_errors > 0 {
                format!(", {} not stored (store error)", self.store_errors)
            } else {
                String::new()
            }
        );
        Ok(())
    }
}

/// One run of `ingest`: the store, the bodies in flight, the counts and the progress line.
pub(crate) struct Run {
    store: Arc<Store>,
    dkim: Option<Arc<DkimVerifier>>,
    require_dkim: bool,
    slots: Arc<Semaphore>,
    totals: Arc<Counters>,
    progress: Option<Progress>,
}

struct Progress {
    started: Instant,
    last: std::sync::Mutex<Instant>,
}

impl Run {
    fn new(store: Arc<Store>, dkim: Option<Arc<DkimVerifier>>, require_dkim: bool) -> Self {
        let progress = std::io::stderr().is_terminal().then(|| Progress {
            started: Instant::now(),
            last: std::sync::Mutex::new(Instant::now()),
        });
        Self {
            store,
            dkim,
            require_dkim,
            slots: Arc::new(Semaphore::new(IN_FLIGHT)),
            totals: Arc::new(Counters::default()),
            progress,
        }
    }

    /// Ingests `item` on its own task once a slot is free.
    pub(crate) async fn submit(&self, item: Item) {
        let Ok(permit) = self.slots.clone().acquire_owned().await else {
            return;
        };
        self.totals.read.fetch_add(1, Ordering::Relaxed);
        let store = self.store.clone();
        let totals = self.totals.clone();
        let dkim = self.dkim.clone();
        let require_dkim = self.require_dkim;
        tokio::spawn(async move {
            let outcome = ingest_one(&store, dkim.as_deref(), require_dkim, &totals, &item).await;
            record(&totals, &item, &outcome);
            settle(&item, outcome.as_ref().ok());
            drop(permit);
        });
        self.show_progress();
    }

    /// Waits for every body in flight.
    async fn finish(&self) {
        let _ = self
            .slots
            .acquire_many(u32::try_from(IN_FLIGHT).unwrap_or(u32::MAX))
            .await;
        if self.progress.is_some() {
            eprint!("\r\x1b[2K");
        }
    }

    /// No progress line (a daemon's standard error is its log).
    fn quiet(mut self) -> Self {
        self.progress = None;
        self
    }

    fn show_progress(&self) {
        let Some(progress) = &self.progress else {
            return;
        };
        let Ok(mut last) = progress.last.lock() else {
            return;
        };
        if last.elapsed() < Duration::from_millis(200) {
            return;
        }
        *last = Instant::now();
        let t = self.totals.snapshot();
        let rate = t.read as f64 / progress.started.elapsed().as_secs_f64().max(0.001);
        eprint!(
            "\r\x1b[2K{} files ({rate:.0}/s): {} stored, {} duplicates, {} rejected",
            t.read,
            t.stored,
            t.duplicates,
            t.quarantined + t.unreadable
        );
        let _ = std::io::stderr().flush();
    }

    /// A source (an IMAP mailbox, one of its messages) that could not be read.
    pub(crate) fn source_failed(&self, what: &str, error: &anyhow::Error) {
        self.totals.unreadable.fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "mta-sts: cannot read {}: {}",
            clean(what),
            clean(&format!("{error:#}"))
        );
    }

    fn unreadable(&self, what: &Path, error: &dyn std::fmt::Display) {
        self.totals.unreadable.fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "mta-sts: cannot read {}: {}",
            clean(&what.display().to_string()),
            clean(&error.to_string())
        );
    }

    /// A file, or every report file under a directory (recursively, in name order per
    /// directory, without following symbolic links to directories).
    async fn walk(&self, root: &Path) {
        let metadata = match std::fs::metadata(root) {
            Ok(metadata) => metadata,
            Err(error) => return self.unreadable(root, &error),
        };
        if !metadata.is_dir() {
            // A file named explicitly is read whatever its name: its bytes decide.
            return self.file(root, None).await;
        }
        let mut stack = vec![root.to_owned()];
        while let Some(dir) = stack.pop() {
            let mut entries: Vec<_> = match std::fs::read_dir(&dir) {
                Ok(entries) => entries.filter_map(Result::ok).collect(),
                Err(error) => {
                    self.unreadable(&dir, &error);
                    continue;
                }
            };
            entries.sort_by_key(std::fs::DirEntry::file_name);
            // Directories are pushed in reverse so that they are visited in name order.
            let mut subdirs = Vec::new();
            for entry in entries {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    subdirs.push(path);
                } else if kind.is_file() {
                    match type_by_name(&path) {
                        Some(content_type) => self.file(&path, Some(content_type)).await,
                        None => {
                            self.totals.skipped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            stack.extend(subdirs.into_iter().rev());
        }
    }

    async fn file(&self, path: &Path, content_type: Option<&'static str>) {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) => return self.unreadable(path, &error),
        };
        let content_type = content_type.unwrap_or_else(|| sniff_type(&bytes, true));
        let source = if content_type == MAIL_TYPE {
            Source::Mail
        } else {
            Source::File
        };
        let label = path.display().to_string();
        self.submit(Item::new(label, source, content_type, bytes))
            .await;
    }

    /// Every message of a Maildir not yet marked seen: `new/`, then `cur/` without the `S`
    /// flag. A stored (or duplicate) message is moved to `cur/` and marked seen; one that
    /// cannot be read is moved to the `.Quarantine` folder with its reason in a header.
    async fn maildir(&self, root: &Path) {
        for sub in ["new", "cur"] {
            let dir = root.join(sub);
            let mut names: Vec<_> = match std::fs::read_dir(&dir) {
                Ok(entries) => entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .map(|e| e.file_name())
                    .collect(),
                Err(error) => {
                    self.unreadable(&dir, &error);
                    continue;
                }
            };
            names.sort();
            for name in names {
                if name.to_string_lossy().starts_with('.') || is_seen(&name) {
                    continue;
                }
                let path = dir.join(&name);
                let bytes = match std::fs::read(&path) {
                    Ok(bytes) => bytes,
                    Err(error) => {
                        self.unreadable(&path, &error);
                        continue;
                    }
                };
                let mut item =
                    Item::new(path.display().to_string(), Source::Mail, MAIL_TYPE, bytes);
                item.after = After::Maildir {
                    root: root.to_owned(),
                    path,
                };
                self.submit(item).await;
            }
        }
    }

    /// Every message of an mbox file. The file is not changed: the store keeps each message
    /// once by its content, so a rerun finds them as duplicates.
    async fn mbox(&self, path: &Path) {
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(error) => return self.unreadable(path, &error),
        };
        let messages =
            mail_parser::mailbox::mbox::MessageIterator::new(std::io::BufReader::new(file));
        for (index, message) in messages.enumerate() {
            let label = format!("{}#{}", path.display(), index + 1);
            match message {
                Ok(message) => {
                    let bytes = message.unwrap_contents();
                    self.submit(Item::new(label, Source::Mail, MAIL_TYPE, bytes))
                        .await;
                }
                Err(error) => {
                    // The file cannot be read past here.
                    self.unreadable(Path::new(&label), &error);
                    break;
                }
            }
        }
    }
}

/// One body into the store. A mail's DKIM check comes first: a verified mail is the more
/// trusted origin (its body wins a conflict), and the check is recorded with the raw body. With
/// `require_dkim`, a mail whose check does not pass is kept in quarantine instead.
async fn ingest_one(
    store: &Store,
    dkim: Option<&DkimVerifier>,
    require_dkim: bool,
    totals: &Counters,
    item: &Item,
) -> Result<Ingested, StoreError> {
    let is_mail = item.content_type == MAIL_TYPE;
    let check = match dkim {
        Some(verifier) if is_mail => Some(verifier.verify(&item.bytes).await),
        _ => None,
    };
    if let Some(check) = &check {
        match check.result {
            DkimResult::Pass => &totals.dkim_pass,
            DkimResult::Fail => &totals.dkim_fail,
            DkimResult::None => &totals.dkim_none,
        }
        .fetch_add(1, Ordering::Relaxed);
    }
    if require_dkim && is_mail {
        let check = check.clone().unwrap_or(DkimCheck {
            result: DkimResult::Fail,
            domain: None,
            reason: Some("DKIM could not be checked (no DNS resolver)".to_owned()),
        });
        if !check.passed() {
            return store
                .hold_unauthenticated(item.source, item.content_type, &item.bytes, &check)
                .await;
        }
    }
    // The check is written with the body, in one transaction: never a checked mail without it.
    match &check {
        Some(check) => {
            store
                .ingest_checked(item.source, item.content_type, &item.bytes, check)
                .await
        }
        None => {
            store
                .ingest(item.source, item.content_type, &item.bytes)
                .await
        }
    }
}

fn record(totals: &Counters, item: &Item, outcome: &Result<Ingested, StoreError>) {
    let counter = match outcome {
        Ok(Ingested::Stored { .. }) => &totals.stored,
        Ok(Ingested::Conflict { report, .. }) => {
            eprintln!(
                "mta-sts: {}: stored as report {report}, which differs from a stored report \
                 with the same identity (see `mta-sts reports show {report}`)",
                clean(&item.label)
            );
            &totals.stored
        }
        Ok(Ingested::Duplicate { .. }) => &totals.duplicates,
        Ok(Ingested::Quarantined { reason, .. }) => {
            eprintln!(
                "mta-sts: {}: quarantined: {}",
                clean(&item.label),
                clean(reason)
            );
            &totals.quarantined
        }
        Ok(Ingested::TooLarge { limit, .. }) => {
            eprintln!(
                "mta-sts: {}: quarantined: larger than {limit} bytes once decompressed",
                clean(&item.label)
            );
            &totals.quarantined
        }
        Err(error) => {
            eprintln!(
                "mta-sts: {}: not stored: {}",
                clean(&item.label),
                clean(&error.to_string())
            );
            &totals.store_errors
        }
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Moves a Maildir message once its outcome is committed (`None`: it was not), or tells its
/// IMAP source.
fn settle(item: &Item, outcome: Option<&Ingested>) {
    let (root, path) = match &item.after {
        After::Nothing => return,
        After::Imap { uid, done } => {
            let disposition = match outcome {
                None => Disposition::Leave,
                Some(Ingested::Quarantined { .. } | Ingested::TooLarge { .. }) => {
                    Disposition::Quarantine
                }
                Some(_) => Disposition::Processed,
            };
            // The source is gone only when its run stopped: the message stays for the next.
            let _ = done.send((*uid, disposition));
            return;
        }
        After::Maildir { root, path } => (root, path),
    };
    let Some(outcome) = outcome else {
        return;
    };
    let result = match outcome {
        Ingested::Stored { .. } | Ingested::Duplicate { .. } | Ingested::Conflict { .. } => {
            mark_seen(root, path)
        }
        Ingested::Quarantined { reason, .. } => quarantine_message(root, path, &item.bytes, reason),
        Ingested::TooLarge { limit, .. } => quarantine_message(
            root,
            path,
            &item.bytes,
            &format!("larger than {limit} bytes once decompressed"),
        ),
    };
    if let Err(error) = result {
        eprintln!(
            "mta-sts: {}: stored, but cannot move the message: {}",
            clean(&path.display().to_string()),
            clean(&format!("{error:#}"))
        );
    }
}

/// Whether a Maildir file name carries the `S` (seen) flag: `unique:2,FLAGS`.
fn is_seen(name: &OsStr) -> bool {
    name.to_string_lossy()
        .rsplit_once(":2,")
        .is_some_and(|(_, flags)| flags.contains('S'))
}

/// `unique:2,FLAGS` with `S` added (flags in ASCII order, as the Maildir spec asks).
fn seen_name(name: &OsStr) -> String {
    let name = name.to_string_lossy();
    let (unique, flags) = name.rsplit_once(":2,").unwrap_or((&name, ""));
    let mut flags: Vec<char> = flags.chars().chain(['S']).collect();
    flags.sort_unstable();
    flags.dedup();
    format!("{unique}:2,{}", flags.into_iter().collect::<String>())
}

fn mark_seen(root: &Path, path: &Path) -> anyhow::Result<()> {
    let name = path.file_name().context("a message file has a name")?;
    let target = root.join("cur").join(seen_name(name));
    std::fs::rename(path, &target).with_context(|| format!("rename to {}", target.display()))
}

/// Moves a message to the `.Quarantine` Maildir++ folder, with the reason in a header at the
/// top (the store keeps the message exactly as it arrived).
fn quarantine_message(root: &Path, path: &Path, bytes: &[u8], reason: &str) -> anyhow::Result<()> {
    let folder = root.join(QUARANTINE_FOLDER);
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(folder.join(sub))
            .with_context(|| format!("create {}", folder.join(sub).display()))?;
    }
    let name = path.file_name().context("a message file has a name")?;
    let seen = seen_name(name);
    let tmp = folder.join("tmp").join(&seen);
    let header: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut text = format!("{QUARANTINE_HEADER}: {header}\r\n").into_bytes();
    text.extend_from_slice(bytes);
    std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, folder.join("cur").join(&seen)).context("move into the folder")?;
    std::fs::remove_file(path).with_context(|| format!("remove {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_flag_is_added_in_order() {
        assert_eq!(seen_name(OsStr::new("123.abc:2,RF")), "123.abc:2,FRS");
        assert_eq!(seen_name(OsStr::new("123.abc")), "123.abc:2,S");
        assert_eq!(seen_name(OsStr::new("1.x:2,S")), "1.x:2,S");
        assert!(is_seen(OsStr::new("1.x:2,FS")));
        assert!(!is_seen(OsStr::new("1.x:2,F")));
        assert!(!is_seen(OsStr::new("1.S")));
    }

    #[test]
    fn bytes_decide_what_a_body_is() {
        assert_eq!(sniff_type(b"\x1f\x8b\x08", true), "application/tlsrpt+gzip");
        assert_eq!(sniff_type(b"  {\"a\":1}", true), "application/tlsrpt+json");
        assert_eq!(sniff_type(b"PK\x03\x04", true), "application/zip");
        assert_eq!(sniff_type(b"From: a@b\r\n", true), MAIL_TYPE);
    }
}
