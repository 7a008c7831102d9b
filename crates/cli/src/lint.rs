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
    out!("{}", render::diagnostics(source, diagnostics, style));
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
    let (name, body) = input::read_file(&args.file)?;
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

/// Parses the record arguments: one record is linted alone, several as one RRset.
fn lint_records<T>(
    args: &LintRecordArgs,
    one: fn(&[u8]) -> Lint<T>,
    rrset: fn(&[Vec<u8>]) -> Lint<T>,
) -> anyhow::Result<(Vec<Vec<u8>>, Lint<T>)> {
    let records = args
        .records
        .iter()
        .map(|r| input::record_text(std::os::unix::ffi::OsStrExt::as_bytes(r.as_os_str())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let lint = match records.as_slice() {
        [record] => one(record),
        _ => rrset(&records),
    };
    Ok((records, lint))
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
    let (records, lint) = lint_records(args, StsRecord::lint, StsRecord::lint_rrset)?;
    report_record("_mta-sts", args, &records, &lint, style)
}

/// `lint tlsrpt-record TEXT...`.
pub fn tlsrpt_record(args: &LintRecordArgs, style: Style) -> anyhow::Result<Outcome> {
    let (records, lint) = lint_records(args, TlsRptRecord::lint, TlsRptRecord::lint_rrset)?;
    report_record("_smtp._tls", args, &records, &lint, style)
}
