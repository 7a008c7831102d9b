//! IMAP sources of `reports ingest`: `imaps://user@host[:port]/FOLDER` (TLS from the first
//! byte, port 993) and `imap://user@host[:port]/FOLDER` (STARTTLS, port 143; a server without
//! it is refused rather than sent the password in clear).
//!
//! Every message in the folder is read once with `BODY.PEEK[]` (it stays unseen), goes
//! through the same path as every other source, and once its outcome is committed it is moved:
//! stored or duplicate to the processed folder, refused by the reader to the quarantine folder
//! (the store keeps its bytes and reason either way). A message the store could not take stays
//! where it is, so the next run (or the next wake-up of `--watch`) tries it again; a rerun
//! never loops on one that was refused. With `--watch` the connection stays open and waits
//! with IMAP IDLE, reconnecting with back-off when it breaks.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_imap::{Client, Session};
use futures_util::StreamExt;
use mta_sts_store::Source;
use mta_sts_tlsrpt::mail::MAX_MAIL_SIZE;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::ingest_cmd::{After, Item, MAIL_TYPE, Run};
use crate::render::clean;

/// The environment variable with the IMAP password (when the URL has none).
pub const PASSWORD_ENV: &str = "MTA_STS_IMAP_PASSWORD";

/// How long any one IMAP step (connect, TLS, a command and its answer) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Messages fetched per `UID FETCH`, and their bytes at most: the run holds no more at once.
const BATCH_MESSAGES: usize = 64;
const BATCH_BYTES: u64 = 64 * 1024 * 1024;

/// IDLE is renewed well within the 30 minutes after which a server may log the client out
/// (RFC 2177); sooner while messages the store could not take wait for another try.
const IDLE_RENEW: Duration = Duration::from_secs(25 * 60);
const IDLE_RETRY: Duration = Duration::from_secs(5 * 60);

/// Back-off between reconnections of `--watch`.
const RECONNECT_FIRST: Duration = Duration::from_secs(1);
const RECONNECT_MAX: Duration = Duration::from_secs(5 * 60);

/// What becomes of a message once its outcome is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Stored or already stored: to the processed folder.
    Processed,
    /// Refused by the reader (kept in the store's quarantine): to the quarantine folder.
    Quarantine,
    /// Not committed (the store failed): left in the folder for the next run.
    Leave,
}

/// An `imap://` or `imaps://` source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mailbox {
    implicit_tls: bool,
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
    folder: String,
}

impl Mailbox {
    /// Reads `imap[s]://user[:password]@host[:port][/FOLDER]` (percent-encoded parts; the folder
    /// is `INBOX` when none is given).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let (implicit_tls, rest) = if let Some(rest) = text.strip_prefix("imaps://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("imap://") {
            (false, rest)
        } else {
            anyhow::bail!("an IMAP source starts with imap:// or imaps://");
        };
        let (authority, folder) = rest.split_once('/').unwrap_or((rest, ""));
        let Some((userinfo, hostport)) = authority.rsplit_once('@') else {
            anyhow::bail!("the IMAP URL names no user: imap[s]://USER@HOST[:PORT]/FOLDER");
        };
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(percent_decode(password)?)),
            None => (userinfo, None),
        };
        let user = percent_decode(user)?;
        if user.is_empty() {
            anyhow::bail!("the IMAP URL names no user: imap[s]://USER@HOST[:PORT]/FOLDER");
        }
        let default_port = if implicit_tls { 993 } else { 143 };
        let (host, port) = split_host_port(hostport, default_port)?;
        let folder = match percent_decode(folder.trim_end_matches('/'))? {
            folder if folder.is_empty() => "INBOX".to_owned(),
            folder => folder,
        };
        Ok(Self {
            implicit_tls,
            host,
            port,
            user,
            password,
            folder,
        })
    }

    /// The source as messages name it: no password.
    pub fn label(&self) -> String {
        let scheme = if self.implicit_tls { "imaps" } else { "imap" };
        format!(
            "{scheme}://{}@{}:{}/{}",
            self.user, self.host, self.port, self.folder
        )
    }
}

/// `HOST`, `HOST:PORT`, `[V6]` or `[V6]:PORT`.
fn split_host_port(text: &str, default_port: u16) -> anyhow::Result<(String, u16)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .context("an IPv6 address in an IMAP URL ends with ]")?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        anyhow::bail!("the IMAP URL names no host");
    }
    let port = match port {
        Some(port) => port
            .parse()
            .ok()
            .filter(|&port| port != 0)
            .with_context(|| format!("`{}` is not a port number", clean(port)))?,
        None => default_port,
    };
    Ok((host.to_owned(), port))
}

fn percent_decode(text: &str) -> anyhow::Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .context("a % in an IMAP URL is followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8(out).context("an IMAP URL decodes to UTF-8")
}

/// Settings shared by every IMAP source of a run.
pub struct ImapOptions {
    /// The folder stored and duplicate messages are moved to.
    pub processed: String,
    /// The folder refused messages are moved to.
    pub quarantine: String,
    /// The password when a URL has none.
    pub password: Option<String>,
    /// Keep watching with IDLE until interrupted.
    pub watch: bool,
    /// TLS client settings (public roots plus `--ca-file`).
    pub tls: Arc<rustls::ClientConfig>,
}

type ImapSession = Session<TlsStream<TcpStream>>;

/// Reads `mailbox` once, or (with `--watch`) until the process is interrupted.
pub async fn ingest(run: &Run, mailbox: &Mailbox, options: &ImapOptions) {
    if !options.watch {
        if let Err(error) = once(run, mailbox, options).await {
            run.source_failed(&mailbox.label(), &error);
        }
        return;
    }
    let mut delay = RECONNECT_FIRST;
    loop {
        let error = match watch(run, mailbox, options, &mut delay).await {
            Ok(never) => match never {},
            Err(error) => error,
        };
        eprintln!(
            "mta-sts: {}: {}; connecting again in {} s",
            clean(&mailbox.label()),
            clean(&format!("{error:#}")),
            delay.as_secs()
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}

async fn once(run: &Run, mailbox: &Mailbox, options: &ImapOptions) -> anyhow::Result<()> {
    let mut session = open(mailbox, options).await?;
    let moves = prepare(&mut session, mailbox, options).await?;
    drain(run, &mut session, mailbox, options, moves).await?;
    let _ = step(session.logout()).await;
    Ok(())
}

/// One connection of `--watch`: every message now in the folder, then each one that arrives.
async fn watch(
    run: &Run,
    mailbox: &Mailbox,
    options: &ImapOptions,
    delay: &mut Duration,
) -> anyhow::Result<std::convert::Infallible> {
    let mut session = open(mailbox, options).await?;
    let moves = prepare(&mut session, mailbox, options).await?;
    *delay = RECONNECT_FIRST;
    loop {
        let left = drain(run, &mut session, mailbox, options, moves).await?;
        let mut idle = session.idle();
        step(idle.init()).await.context("IDLE")?;
        let wait = if left > 0 { IDLE_RETRY } else { IDLE_RENEW };
        {
            let (changed, _interrupt) = idle.wait_with_timeout(wait);
            changed.await.context("IDLE")?;
        }
        session = step(idle.done()).await.context("IDLE")?;
    }
}

/// Connects, secures the connection and logs in.
async fn open(mailbox: &Mailbox, options: &ImapOptions) -> anyhow::Result<ImapSession> {
    let address = format!("{}:{}", mailbox.host, mailbox.port);
    let tcp = timeout(STEP_TIMEOUT, TcpStream::connect(&address))
        .await
        .map_err(|_| anyhow::anyhow!("no connection to {address} within {STEP_TIMEOUT:?}"))?
        .with_context(|| format!("cannot connect to {address}"))?;
    let name = ServerName::try_from(mailbox.host.clone())
        .with_context(|| format!("`{}` is not a host name", clean(&mailbox.host)))?;
    let connector = TlsConnector::from(Arc::clone(&options.tls));
    let tcp = if mailbox.implicit_tls {
        tcp
    } else {
        let mut client = Client::new(tcp);
        greeting(&mut client).await?;
        step(client.run_command_and_check_ok("STARTTLS", None))
            .await
            .context(
                "the server does not take STARTTLS (the password is not sent in clear; use \
                 imaps:// if it has TLS on its own port)",
            )?;
        client.into_inner()
    };
    let tls = step_io(connector.connect(name, tcp))
        .await
        .context("TLS handshake")?;
    let mut client = Client::new(tls);
    if mailbox.implicit_tls {
        greeting(&mut client).await?;
    }
    let password = mailbox
        .password
        .as_deref()
        .or(options.password.as_deref())
        .with_context(|| {
            format!("no IMAP password: set {PASSWORD_ENV} or give --imap-password-file")
        })?;
    let session = timeout(STEP_TIMEOUT, client.login(&mailbox.user, password))
        .await
        .map_err(|_| anyhow::anyhow!("no answer to LOGIN within {STEP_TIMEOUT:?}"))?
        .map_err(|(error, _)| error)
        .with_context(|| format!("cannot log in as {}", clean(&mailbox.user)))?;
    Ok(session)
}

async fn greeting<T>(client: &mut Client<T>) -> anyhow::Result<()>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + std::fmt::Debug,
{
    match step_io(client.read_response()).await? {
        Some(_) => Ok(()),
        None => anyhow::bail!("the server closed the connection before its greeting"),
    }
}

/// How messages are moved: `UID MOVE` (RFC 6851) or copy, flag and expunge.
#[derive(Clone, Copy)]
struct Moves {
    has_move: bool,
}

/// Selects the folder and makes the two target folders (an existing one is fine).
async fn prepare(
    session: &mut ImapSession,
    mailbox: &Mailbox,
    options: &ImapOptions,
) -> anyhow::Result<Moves> {
    let capabilities = step(session.capabilities()).await.context("CAPABILITY")?;
    let has_move = capabilities.has_str("MOVE");
    for folder in [&options.processed, &options.quarantine] {
        // NO when it exists; a folder that cannot be made shows when a message moves there.
        let _ = step(session.create(folder)).await;
    }
    step(session.select(&mailbox.folder))
        .await
        .with_context(|| format!("cannot open the folder {}", clean(&mailbox.folder)))?;
    Ok(Moves { has_move })
}

/// Every message now in the folder, in batches; returns how many were left for a later try.
async fn drain(
    run: &Run,
    session: &mut ImapSession,
    mailbox: &Mailbox,
    options: &ImapOptions,
    moves: Moves,
) -> anyhow::Result<usize> {
    let mut uids: Vec<u32> = step(session.uid_search("UNDELETED"))
        .await
        .context("SEARCH")?
        .into_iter()
        .collect();
    uids.sort_unstable();
    let mut left = 0;
    for chunk in uids.chunks(1024) {
        let sizes = sizes(session, chunk).await?;
        let (fit, too_large): (Vec<_>, Vec<_>) = sizes
            .into_iter()
            .partition(|&(_, size)| usize::try_from(size).is_ok_and(|size| size <= MAX_MAIL_SIZE));
        if !too_large.is_empty() {
            for (uid, size) in &too_large {
                run.source_failed(
                    &format!("{}#{uid}", mailbox.label()),
                    &anyhow::anyhow!(
                        "{size} bytes, larger than {MAX_MAIL_SIZE}: no TLS report is that \
                         large; moved to {} unread",
                        options.quarantine
                    ),
                );
            }
            let uids: Vec<u32> = too_large.iter().map(|&(uid, _)| uid).collect();
            move_to(session, moves, &uids, &options.quarantine).await?;
        }
        for batch in batches(&fit) {
            left += fetch_and_ingest(run, session, mailbox, options, moves, &batch).await?;
        }
    }
    Ok(left)
}

/// `(uid, RFC822.SIZE)` of each message of `uids`.
async fn sizes(session: &mut ImapSession, uids: &[u32]) -> anyhow::Result<Vec<(u32, u32)>> {
    let stream = step(session.uid_fetch(uid_set(uids), "(UID RFC822.SIZE)"))
        .await
        .context("FETCH")?;
    let mut stream = std::pin::pin!(stream);
    let mut sizes = Vec::with_capacity(uids.len());
    while let Some(fetch) = step_next(&mut stream).await? {
        if let (Some(uid), Some(size)) = (fetch.uid, fetch.size) {
            sizes.push((uid, size));
        }
    }
    Ok(sizes)
}

/// Groups of at most [`BATCH_MESSAGES`] messages and [`BATCH_BYTES`] bytes.
fn batches(sizes: &[(u32, u32)]) -> Vec<Vec<u32>> {
    let mut batches = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0u64;
    for &(uid, size) in sizes {
        if !batch.is_empty()
            && (batch.len() == BATCH_MESSAGES || bytes + u64::from(size) > BATCH_BYTES)
        {
            batches.push(std::mem::take(&mut batch));
            bytes = 0;
        }
        batch.push(uid);
        bytes += u64::from(size);
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

/// Fetches `uids`, ingests each, and moves each by its outcome; returns how many stay.
async fn fetch_and_ingest(
    run: &Run,
    session: &mut ImapSession,
    mailbox: &Mailbox,
    options: &ImapOptions,
    moves: Moves,
    uids: &[u32],
) -> anyhow::Result<usize> {
    let mut messages = Vec::with_capacity(uids.len());
    {
        let stream = step(session.uid_fetch(uid_set(uids), "(UID BODY.PEEK[])"))
            .await
            .context("FETCH")?;
        let mut stream = std::pin::pin!(stream);
        while let Some(fetch) = step_next(&mut stream).await? {
            if let (Some(uid), Some(body)) = (fetch.uid, fetch.body()) {
                messages.push((uid, body.to_vec()));
            }
        }
    }
    let (done, mut outcomes) = mpsc::unbounded_channel();
    let fetched: HashSet<u32> = messages.iter().map(|(uid, _)| *uid).collect();
    for (uid, bytes) in messages {
        let mut item = Item::new(
            format!("{}#{uid}", mailbox.label()),
            Source::Mail,
            MAIL_TYPE,
            bytes,
        );
        item.after = After::Imap {
            uid,
            done: done.clone(),
        };
        run.submit(item).await;
    }
    drop(done);
    let mut processed = Vec::new();
    let mut quarantine = Vec::new();
    // A message the server listed but did not send is left, like one the store failed on.
    let mut left = uids.iter().filter(|uid| !fetched.contains(uid)).count();
    while let Some((uid, disposition)) = outcomes.recv().await {
        match disposition {
            Disposition::Processed => processed.push(uid),
            Disposition::Quarantine => quarantine.push(uid),
            Disposition::Leave => left += 1,
        }
    }
    move_to(session, moves, &processed, &options.processed).await?;
    move_to(session, moves, &quarantine, &options.quarantine).await?;
    Ok(left)
}

/// Moves `uids` of the selected folder to `folder`.
async fn move_to(
    session: &mut ImapSession,
    moves: Moves,
    uids: &[u32],
    folder: &str,
) -> anyhow::Result<()> {
    if uids.is_empty() {
        return Ok(());
    }
    let set = uid_set(uids);
    let context = || format!("cannot move messages to {}", clean(folder));
    if moves.has_move {
        return step(session.uid_mv(&set, folder))
            .await
            .with_context(context);
    }
    step(session.uid_copy(&set, folder))
        .await
        .with_context(context)?;
    {
        let flagged = step(session.uid_store(&set, "+FLAGS.SILENT (\\Deleted)"))
            .await
            .with_context(context)?;
        let mut flagged = std::pin::pin!(flagged);
        while step_next(&mut flagged).await?.is_some() {}
    }
    let expunged = step(session.expunge()).await.with_context(context)?;
    let mut expunged = std::pin::pin!(expunged);
    while step_next(&mut expunged).await?.is_some() {}
    Ok(())
}

/// `1,5,7`: an IMAP sequence set of UIDs.
fn uid_set(uids: &[u32]) -> String {
    let mut set = String::with_capacity(uids.len() * 6);
    for (i, uid) in uids.iter().enumerate() {
        if i > 0 {
            set.push(',');
        }
        set.push_str(&uid.to_string());
    }
    set
}

async fn step<T>(future: impl Future<Output = async_imap::error::Result<T>>) -> anyhow::Result<T> {
    match timeout(STEP_TIMEOUT, future).await {
        Ok(result) => Ok(result?),
        Err(_) => anyhow::bail!("no answer from the IMAP server within {STEP_TIMEOUT:?}"),
    }
}

async fn step_io<T>(future: impl Future<Output = std::io::Result<T>>) -> anyhow::Result<T> {
    match timeout(STEP_TIMEOUT, future).await {
        Ok(result) => Ok(result?),
        Err(_) => anyhow::bail!("no answer from the IMAP server within {STEP_TIMEOUT:?}"),
    }
}

async fn step_next<S, T>(stream: &mut S) -> anyhow::Result<Option<T>>
where
    S: futures_util::Stream<Item = async_imap::error::Result<T>> + Unpin,
{
    match timeout(STEP_TIMEOUT, stream.next()).await {
        Ok(Some(item)) => Ok(Some(item?)),
        Ok(None) => Ok(None),
        Err(_) => anyhow::bail!("no answer from the IMAP server within {STEP_TIMEOUT:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_read_with_defaults_and_escapes() {
        let mailbox = Mailbox::parse("imaps://reports%40example.com@mail.example.com").unwrap();
        assert!(mailbox.implicit_tls);
        assert_eq!(mailbox.user, "reports@example.com");
        assert_eq!(
            (mailbox.host.as_str(), mailbox.port),
            ("mail.example.com", 993)
        );
        assert_eq!(mailbox.folder, "INBOX");
        assert_eq!(mailbox.password, None);

        let mailbox = Mailbox::parse("imap://u:p%2Fw@[::1]:1143/TLS%20Reports/").unwrap();
        assert!(!mailbox.implicit_tls);
        assert_eq!((mailbox.host.as_str(), mailbox.port), ("::1", 1143));
        assert_eq!(mailbox.password.as_deref(), Some("p/w"));
        assert_eq!(mailbox.folder, "TLS Reports");
        assert_eq!(mailbox.label(), "imap://u@::1:1143/TLS Reports");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, expected) in [
            ("imaps://mail.example.com/INBOX", "names no user"),
            ("imaps://u@/INBOX", "names no host"),
            ("imaps://u@host:0/INBOX", "not a port number"),
            ("imaps://u@host:x/INBOX", "not a port number"),
            ("imaps://u%zz@host/INBOX", "two hex digits"),
            ("pop3://u@host", "imap:// or imaps://"),
        ] {
            let error = Mailbox::parse(url).unwrap_err().to_string();
            assert!(error.contains(expected), "{url}: {error}");
        }
    }

    #[test]
    fn batches_hold_a_bounded_count_and_size() {
        let sizes: Vec<(u32, u32)> = (1..=130).map(|uid| (uid, 1000)).collect();
        let lengths: Vec<usize> = batches(&sizes).iter().map(Vec::len).collect();
        assert_eq!(lengths, [64, 64, 2]);
        let big = 40 * 1024 * 1024;
        let lengths: Vec<usize> = batches(&[(1, big), (2, big), (3, 10)])
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(lengths, [1, 2]);
        assert_eq!(uid_set(&[3, 9, 12]), "3,9,12");
    }
}
