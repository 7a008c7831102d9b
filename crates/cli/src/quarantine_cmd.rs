//! `mta-sts reports quarantine [list|show ID]`: the bodies the store kept but could not read
//! as reports, and why. Everything from the sender (reason, content type, the body itself) is
//! printed escaped.

use std::fmt::Write as _;
use std::io::IsTerminal;

use anyhow::bail;
use mta_sts_store::{QuarantineEntry, RawId, RawReport};

use crate::Outcome;
use crate::args::{
    QuarantineAction, QuarantineListArgs, QuarantineShowArgs, ReportsQuarantineArgs,
};
use crate::render::{Style, clean};
use crate::serve::open_store;

/// How much of a body `show` prints as text; `--raw` writes all of it.
const PREVIEW_BYTES: usize = 4096;

/// How much of a reason a `list` row shows; `show` has all of it.
const REASON_CHARS: usize = 72;

/// `reports quarantine`, `reports quarantine list`, `reports quarantine show ID`.
pub fn run(args: &ReportsQuarantineArgs, style: Style) -> anyhow::Result<Outcome> {
    match &args.action {
        None => list(&args.list, style),
        Some(QuarantineAction::List(list_args)) => list(list_args, style),
        Some(QuarantineAction::Show(show_args)) => show(show_args, style),
    }
}

fn list(args: &QuarantineListArgs, style: Style) -> anyhow::Result<Outcome> {
    let mut entries = crate::runtime()?.block_on(async {
        let store = open_store(&args.store).await?;
        let entries = match args.limit {
            0 => store.list_quarantine().await?,
            // One more than shown, to know whether the list was cut.
            limit => store.list_quarantine_up_to(limit.saturating_add(1)).await?,
        };
        store.close().await;
        anyhow::Ok(entries)
    })?;
    let cut = args.limit != 0 && entries.len() > args.limit as usize;
    entries.truncate(if cut {
        args.limit as usize
    } else {
        entries.len()
    });
    if args.json {
        let json: Vec<_> = entries.iter().map(entry_json).collect();
        outln!("{}", serde_json::to_string_pretty(&json)?);
    } else if entries.is_empty() {
        outln!("nothing in quarantine");
    } else {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}",
            style.bold(&format!(
                "{:>6}  {:<20} {:<13} {:<6} {:>9}  REASON",
                "ID", "QUARANTINED", "CODE", "SOURCE", "BYTES"
            ))
        );
        for e in &entries {
            let reason: String = clean(&e.reason).chars().take(REASON_CHARS).collect();
            let _ = writeln!(
                out,
                "{:>6}  {:<20} {:<13} {:<6} {:>9}  {reason}",
                e.raw.0,
                e.created_at.to_string(),
                clean(e.code.as_str()),
                clean(&e.source),
                e.size
            );
        }
        out!("{out}");
    }
    if cut {
        eprintln!(
            "mta-sts: showing the first {} entries; --limit N shows more (0: all)",
            args.limit
        );
    }
    Ok(Outcome::Ok)
}

fn show(args: &QuarantineShowArgs, style: Style) -> anyhow::Result<Outcome> {
    if args.raw && std::io::stdout().is_terminal() {
        bail!("--raw writes the body's bytes as received: redirect it to a file (> FILE)");
    }
    let found = crate::runtime()?.block_on(async {
        let store = open_store(&args.store).await?;
        let raw_id = RawId(args.id);
        let found = match store.quarantined(raw_id).await? {
            Some(entry) => store.raw(raw_id).await?.map(|raw| (entry, raw)),
            None => None,
        };
        store.close().await;
        anyhow::Ok(found)
    })?;
    let Some((entry, raw)) = found else {
        bail!(
            "no body with ID {} in quarantine (see `mta-sts reports quarantine list`)",
            args.id
        );
    };
    if args.raw {
        use std::io::Write as _;
        std::io::stdout().write_all(&raw.bytes)?;
        return Ok(Outcome::Ok);
    }
    if args.json {
        let mut json = entry_json(&entry);
        json["received_at"] = raw.received_at.to_string().into();
        json["sha256"] = raw.sha256.clone().into();
        json["body_utf8"] = std::str::from_utf8(&raw.bytes)
            .ok()
            .map_or(serde_json::Value::Null, Into::into);
        outln!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(Outcome::Ok);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        style.bold(&format!(
            "Body {} in quarantine ({})",
            entry.raw.0,
            clean(entry.code.as_str())
        ))
    );
    let _ = writeln!(out, "  reason:       {}", clean(&entry.reason));
    let _ = writeln!(
        out,
        "  received:     {} by {}, {} bytes, content type {}",
        raw.received_at,
        clean(&entry.source),
        entry.size,
        clean(&entry.content_type)
    );
    let _ = writeln!(out, "  quarantined:  {}", entry.created_at);
    let _ = writeln!(out, "  sha256:       {}", raw.sha256);
    out.push_str(&preview(&raw));
    out!("{out}");
    Ok(Outcome::Ok)
}

/// The body as escaped text, or what kind of data it is when it is not text.
fn preview(raw: &RawReport) -> String {
    let bytes = &raw.bytes;
    let kind = if bytes.starts_with(b"\x1f\x8b") {
        Some("gzip data")
    } else if bytes.starts_with(b"PK\x03\x04") {
        Some("zip data")
    } else {
        None
    };
    if let Some(kind) = kind {
        return format!("  body:         {kind}; `--raw > FILE` writes it as received\n");
    }
    let shown = &bytes[..bytes.len().min(PREVIEW_BYTES)];
    let text = String::from_utf8_lossy(shown);
    let mut out = String::from("  body:\n");
    for line in text.split('\n') {
        let _ = writeln!(out, "    {}", clean(line));
    }
    if shown.len() < bytes.len() {
        let _ = writeln!(
            out,
            "  (the first {} of {} bytes; `--raw > FILE` writes all of them)",
            shown.len(),
            bytes.len()
        );
    }
    out
}

fn entry_json(entry: &QuarantineEntry) -> serde_json::Value {
    serde_json::json!({
        "id": entry.raw.0,
        "code": entry.code.as_str(),
        "reason": entry.reason,
        "quarantined_at": entry.created_at.to_string(),
        "source": entry.source,
        "content_type": entry.content_type,
        "size": entry.size,
    })
}
