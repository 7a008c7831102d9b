//! `mta-sts lint policy|sts-record|tlsrpt-record`.

use mta_sts_policy::{Diagnostic, Lint, Policy, StsRecord};
use mta_sts_tlsrpt::TlsRptRecord;
use serde::Serialize;

use crate::Outcome;
use crate::args::{LintPolicyArgs, LintRecordArgs};
use crate::input;
use crate::render::{self, Source, Style};

/// The JSON shape of every lint command.
#[derive(Serialize)]
struct LintJson<'a, T: Serialize> {
    valid: bool,
    diagnostics: &'a [Diagnostic],
    parsed: T,
}

/// The JSON of a lint that could not read its input: the same shape, with the reason.
#[derive(Serialize)]
struct UnreadJson<'a> {
    valid: bool,
    error: &'a str,
    diagnostics: [Diagnostic; 0],
    parsed: Option<()>,
}

/// At most this many diagnostics are printed for people; a garbage file would otherwise fill
/// the terminal with one finding per line. `--json` lists them all.
const SHOWN_DIAGNOSTICS: usize = 20;

fn outcome(valid: bool) -> Outcome {
    if valid {
        Outcome::Ok
    } else {
        Outcome::Problems
    }
}

/// Prints the verdict, then the diagnostics, for people.
fn print_human(
    what: &str,
    source: &Source<'_>,
    valid: bool,
    diagnostics: &[Diagnostic],
    summary: &str,
    style: Style,
) -> anyhow::Result<()> {
    let shown = &diagnostics[..diagnostics.len().min(SHOWN_DIAGNOSTICS)];
    out!("{}", render::diagnostics(source, shown, style));
    if diagnostics.len() > shown.len() {
        outln!(
            "… and {} more (--json lists them all)\n",
            diagnostics.len() - shown.len()
        );
    }
    let verdict = if valid {
        style.good(&format!("valid {what}"))
    } else {
        style.bad(&format!("invalid {what}"))
    };
    outln!(
        "{}: {verdict} ({}){summary}",
        source.name,
        render::counts(diagnostics)
    );
    Ok(())
}

/// `lint policy FILE|-`.
pub fn policy(args: &LintPolicyArgs, style: Style) -> anyhow::Result<Outcome> {
    let (name, body) = match input::read_file(&args.file) {
        Ok(read) => read,
        Err(error) if args.json => return unread_json(&error),
        Err(error) => return Err(error),
    };
    let lint = Policy::lint(&body);
    let valid = lint.is_valid();
    if args.json {
        let json = LintJson {
            valid,
            diagnostics: &lint.diagnostics,
            parsed: &lint.fields,
        };
        outln!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        let text = String::from_utf8_lossy(&body);
        let summary = match &lint.policy() {
            Some(p) => format!(
                "\n  mode {}, {} mx pattern{}, max_age {}",
                p.mode,
                p.mx.len(),
                if p.mx.len() == 1 { "" } else { "s" },
                p.max_age
            ),
            None => String::new(),
        };
        let source = Source {
            name: &name,
            text: Some(&text),
        };
        print_human("policy", &source, valid, &lint.diagnostics, &summary, style)?;
    }
    Ok(outcome(valid))
}

/// With `--json`, an input that cannot be read is still answered in JSON (exit 2).
fn unread_json(error: &anyhow::Error) -> anyhow::Result<Outcome> {
    let json = UnreadJson {
        valid: false,
        error: &format!("{error:#}"),
        diagnostics: [],
        parsed: None,
    };
    outln!("{}", serde_json::to_string_pretty(&json)?);
    Ok(Outcome::Incomplete)
}

/// The record arguments: each as given (a zone-file line is read as its strings), or, for a
/// single `-`, one record per line of standard input.
fn record_arguments(args: &LintRecordArgs) -> anyhow::Result<Vec<Vec<u8>>> {
    use std::os::unix::ffi::OsStrExt as _;
    match args.records.as_slice() {
        [one] if one == "-" => {
            let records = input::records_from_stdin()?;
            if records.is_empty() {
                anyhow::bail!("no record on standard input");
            }
            Ok(records)
        }
        records => records
            .iter()
            .map(|r| input::record_text(r.as_bytes()))
            .collect(),
    }
}

/// The records as read, and their lint.
type Linted<T> = (Vec<Vec<u8>>, Lint<T>);

/// Parses the record arguments: one record is linted alone, several as one RRset.
fn lint_records<T>(
    args: &LintRecordArgs,
    one: fn(&[u8]) -> Lint<T>,
    rrset: fn(&[Vec<u8>]) -> Lint<T>,
) -> anyhow::Result<Option<Linted<T>>> {
    let records = match record_arguments(args) {
        Ok(records) => records,
        Err(error) if args.json => {
            unread_json(&error)?;
            return Ok(None);
        }
        Err(error) => return Err(error),
    };
    let lint = match records.as_slice() {
        [record] => one(record),
        _ => rrset(&records),
    };
    Ok(Some((records, lint)))
}

fn report_record<T: Serialize>(
    what: &str,
    args: &LintRecordArgs,
    records: &[Vec<u8>],
    lint: &Lint<T>,
    style: Style,
) -> anyhow::Result<Outcome> {
    let valid = lint.is_valid();
    if args.json {
        let json = LintJson {
            valid,
            diagnostics: &lint.diagnostics,
            parsed: &lint.value,
        };
        outln!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        // Point into the record when there is just one; an RRset's findings are about the set.
        let text = match records {
            [one] => Some(String::from_utf8_lossy(one).into_owned()),
            _ => None,
        };
        let source = Source {
            name: what,
            text: text.as_deref(),
        };
        print_human("record", &source, valid, &lint.diagnostics, "", style)?;
    }
    Ok(outcome(valid))
}

/// `lint sts-record TEXT...`.
pub fn sts_record(args: &LintRecordArgs, style: Style) -> anyhow::Result<Outcome> {
    let Some((records, lint)) = lint_records(args, StsRecord::lint, StsRecord::lint_rrset)? else {
        return Ok(Outcome::Incomplete);
    };
    report_record("_mta-sts", args, &records, &lint, style)
}

/// `lint tlsrpt-record TEXT...`.
pub fn tlsrpt_record(args: &LintRecordArgs, style: Style) -> anyhow::Result<Outcome> {
    let Some((records, lint)) = lint_records(args, TlsRptRecord::lint, TlsRptRecord::lint_rrset)?
    else {
        return Ok(Outcome::Incomplete);
    };
    report_record("_smtp._tls", args, &records, &lint, style)
}
