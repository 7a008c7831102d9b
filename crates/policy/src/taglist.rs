//! The `v=...; name=value; ...` shape shared by the `_mta-sts` and `_smtp._tls` TXT records.
//!
//! Both RFCs use the same grammar: a version tag first, then fields separated by
//! `*WSP ";" *WSP`, an optional trailing separator, field names of 1–32 characters
//! (`ALPHA / DIGIT` first, then `ALPHA / DIGIT / "_" / "-" / "."`). This module splits a record
//! into fields and picks the one record of an RRset; each record type validates its own values.

use crate::diag::{Diagnostic, DiagnosticList, Lint, Severity};

/// The rules of one record type: its version tag and where the RFC states them.
#[derive(Debug, Clone, Copy)]
pub struct RecordKind {
    /// The exact, case-sensitive version tag, e.g. `v=STSv1`.
    pub version: &'static str,
    /// Where the record is published, e.g. `_mta-sts`.
    pub label: &'static str,
    /// The RFC section with the record's grammar.
    pub rfc: &'static str,
}

/// How one record type is read: its grammar, a one-pass reader for the shape nearly everyone
/// publishes (no diagnostics to give), and the full reader that explains everything else.
#[derive(Debug)]
pub struct RecordReader<T> {
    /// The record's grammar.
    pub kind: RecordKind,
    /// The fast path: `Some` only for a clean record that the full reader would accept as is.
    pub plain: fn(&[u8]) -> Option<T>,
    /// The full reader: every finding goes to the list.
    pub read: fn(&[u8], &mut DiagnosticList) -> Option<T>,
}

impl<T> RecordReader<T> {
    /// Parses one record; the error is the first problem that makes it unusable.
    pub fn parse(&self, record: &[u8]) -> Result<T, Diagnostic> {
        if let Some(plain) = (self.plain)(record) {
            return Ok(plain);
        }
        let lint = self.lint(record);
        let error = lint.first_error().cloned();
        lint.value.ok_or_else(|| {
            error.unwrap_or_else(|| {
                Diagnostic::new(
                    Severity::Error,
                    "invalid",
                    (1, 1),
                    self.kind.rfc,
                    "invalid record",
                )
            })
        })
    }

    /// Parses one record and reports every finding.
    pub fn lint(&self, record: &[u8]) -> Lint<T> {
        if let Some(plain) = (self.plain)(record) {
            return Lint::new(Some(plain), DiagnosticList::default());
        }
        let mut diagnostics = DiagnosticList::default();
        let value = (self.read)(record, &mut diagnostics);
        Lint::new(value, diagnostics)
    }

    /// Picks and parses the record a sender uses from an RRset (each record with its
    /// character-strings concatenated).
    pub fn lint_rrset<R: AsRef<[u8]>>(&self, records: &[R]) -> Lint<T> {
        let mut diagnostics = DiagnosticList::default();
        let value = select_record(records, self.kind, &mut diagnostics)
            .and_then(|record| (self.read)(record, &mut diagnostics));
        Lint::new(value, diagnostics)
    }
}

/// One `name=value` field of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The field name, as written.
    pub name: &'a str,
    /// The value: everything after `=` up to the next `;`, without trailing whitespace.
    pub value: &'a str,
    /// 1-based column of the name in the record.
    pub column: u32,
    /// 1-based column of the value in the record.
    pub value_column: u32,
}

/// Longest TXT record we read: far above any real record, low enough that garbage is cheap.
pub const MAX_RECORD_LEN: usize = 8192;

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// True when no byte is below 0x20, 0x7f or above: eight bytes at a time. May return false for
/// printable text (a tab, say); callers then check byte by byte.
fn surely_printable(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let screen = |x: u64| {
        let below_space = x.wrapping_sub(ONES * 0x20) & !x;
        let del = x ^ (ONES * 0x7f);
        let is_del = del.wrapping_sub(ONES) & !del;
        (x | below_space | is_del) & HIGH
    };
    let chunks = bytes.chunks_exact(8);
    let tail = chunks.remainder();
    let mut flags = chunks.fold(0, |acc, chunk| {
        acc | <[u8; 8]>::try_from(chunk).map_or(HIGH, |c| screen(u64::from_ne_bytes(c)))
    });
    let mut last = [b' '; 8];
    if let Some(dst) = last.get_mut(..tail.len()) {
        dst.copy_from_slice(tail);
    }
    flags |= screen(u64::from_ne_bytes(last));
    flags == 0
}

/// `bytes` without its leading WSP (spaces and tabs).
pub fn skip_wsp(bytes: &[u8]) -> &[u8] {
    let n = bytes.iter().take_while(|&&b| is_wsp(b)).count();
    bytes.get(n..).unwrap_or_default()
}

/// True when `tail`, what follows a record's last field, is empty or one `*WSP ";" *WSP`.
pub fn is_record_end(tail: &[u8]) -> bool {
    tail.is_empty()
        || skip_wsp(tail)
            .strip_prefix(b";")
            .is_some_and(|rest| skip_wsp(rest).is_empty())
}

/// The first index from `at` whose byte does not satisfy `keep` (or the length).
fn skip(bytes: &[u8], at: usize, keep: impl Fn(u8) -> bool) -> usize {
    let rest = bytes.get(at..).unwrap_or_default();
    at + rest.iter().position(|&b| !keep(b)).unwrap_or(rest.len())
}

fn col(index: usize) -> (u32, u32) {
    (
        1,
        u32::try_from(index).unwrap_or(u32::MAX).saturating_add(1),
    )
}

/// True when `name` follows the extension-name rule: `(ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" /
/// "-" / ".")`.
pub fn is_field_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            first.is_ascii_alphanumeric()
                && rest.len() <= 31
                && rest
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        }
        None => false,
    }
}

/// True when `value` follows the extension-value rule: `1*(%x21-3A / %x3C / %x3E-7E)`, i.e.
/// visible ASCII except `=` and `;`.
pub fn is_field_value(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'=' && b != b';')
}

/// A field the record type does not define: kept (senders ignore it) when its value follows
/// the extension-value rule, with a note; otherwise an error. Returns false for the error.
pub fn read_extension(
    field: &Field<'_>,
    kind: RecordKind,
    extensions: &mut Vec<(String, String)>,
    diagnostics: &mut DiagnosticList,
) -> bool {
    if !is_field_value(field.value) {
        diagnostics.push(
            Diagnostic::new(
                Severity::Error,
                "invalid-field-value",
                (1, field.value_column),
                kind.rfc,
                format!(
                    "field {} has an invalid value \"{}\"",
                    field.name, field.value
                ),
            )
            .hint("values are visible ASCII without spaces, '=' or ';'"),
        );
        return false;
    }
    let rfc_name = kind.rfc.split(" §").next().unwrap_or(kind.rfc);
    diagnostics.push(Diagnostic::new(
        Severity::Info,
        "unknown-field",
        (1, field.column),
        kind.rfc,
        format!(
            "field {} is not defined by {rfc_name}; senders ignore it",
            field.name
        ),
    ));
    extensions.push((field.name.to_owned(), field.value.to_owned()));
    true
}

/// True when `record` is one the RFC keeps from an RRset: it begins with the version tag,
/// followed by a separator or nothing (so `v=STSv10` is not an STSv1 record).
pub fn has_version(record: &[u8], kind: RecordKind) -> bool {
    match record.strip_prefix(kind.version.as_bytes()) {
        Some(rest) => rest.first().is_none_or(|&b| b == b';' || is_wsp(b)),
        None => false,
    }
}

/// Reads one record's fields (the version tag excluded), calling `field` for each in order.
///
/// Errors go to `diagnostics`; false means the record is not syntactically valid. Nothing is
/// allocated on the way: a DNS resolver or a sender parses these on every lookup.
pub fn for_each_field<'a>(
    record: &'a [u8],
    kind: RecordKind,
    diagnostics: &mut DiagnosticList,
    mut field: impl FnMut(Field<'a>, &mut DiagnosticList),
) -> bool {
    let error = |code, at, message: String| {
        Diagnostic::new(Severity::Error, code, col(at), kind.rfc, message)
    };
    if record.len() > MAX_RECORD_LEN {
        diagnostics.push(error(
            "record-too-long",
            MAX_RECORD_LEN,
            format!(
                "record is {} bytes long; no valid record is near that size",
                record.len()
            ),
        ));
        return false;
    }
    let printable = |b: u8| (0x20..0x7f).contains(&b) || b == b'\t';
    // A word-at-a-time screen first; the exact position only when it finds something.
    let suspicious = !surely_printable(record);
    if let Some(at) = suspicious
        .then(|| record.iter().position(|&b| !printable(b)))
        .flatten()
    {
        let what = match record.get(at) {
            Some(b) if b.is_ascii() => format!("control character 0x{b:02x}"),
            _ => "a non-ASCII byte".to_owned(),
        };
        diagnostics.push(
            error("non-ascii", at, format!("record contains {what}"))
                .hint("TXT records must be printable US-ASCII; percent-encode or remove it"),
        );
        return false;
    }
    // Checked above: every byte is ASCII, so this cannot fail.
    let Ok(text) = std::str::from_utf8(record) else {
        return false;
    };
    if !has_version(record, kind) {
        diagnostics.push(missing_version(text, kind));
        return false;
    }
    let bytes = text.as_bytes();
    let mut at = kind.version.len();
    loop {
        // Separator: *WSP ";" *WSP, or the end of the record.
        let field_end = at;
        at = skip(bytes, at, is_wsp);
        match bytes.get(at) {
            None if at == field_end => return true,
            None => {
                diagnostics.push(
                    error(
                        "trailing-whitespace",
                        field_end,
                        "record ends with whitespace after its last field".to_owned(),
                    )
                    .hint("remove the trailing whitespace (or end the record with ';')"),
                );
                return false;
            }
            Some(b';') => at += 1,
            Some(_) => {
                let word = text.get(at..).unwrap_or_default();
                let word = word.split([';', ' ', '\t']).next().unwrap_or_default();
                diagnostics.push(
                    error(
                        "missing-separator",
                        at,
                        format!("expected ';' before \"{word}\""),
                    )
                    .hint("separate fields with ';'"),
                );
                return false;
            }
        }
        at = skip(bytes, at, is_wsp);
        if at == bytes.len() {
            return true;
        }
        // Field: name "=" value, the value running to the next ';' (trailing WSP excluded).
        let start = at;
        at = skip(bytes, at, |b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
        });
        let name = text.get(start..at).unwrap_or_default();
        if bytes.get(at) != Some(&b'=') {
            let rest = text.get(start..).unwrap_or_default();
            let item = rest
                .split(';')
                .next()
                .unwrap_or_default()
                .trim_end_matches([' ', '\t']);
            let error = if item.is_empty() {
                error(
                    "empty-field",
                    start,
                    "empty field between two ';'".to_owned(),
                )
                .hint("remove the extra ';'")
            } else if item.contains('=') {
                error("invalid-field-name", start, format!("\"{}\" is not a valid field name", item.split('=').next().unwrap_or_default()))
                    .hint("names are 1-32 letters, digits, '_', '-' or '.', starting with a letter or digit, with no spaces around '='")
            } else {
                error(
                    "invalid-field",
                    start,
                    format!("field \"{item}\" has no '='"),
                )
                .hint("write fields as name=value")
            };
            diagnostics.push(error);
            return false;
        }
        if !is_field_name(name) {
            diagnostics.push(
                error("invalid-field-name", start, format!("\"{name}\" is not a valid field name"))
                    .hint("names are 1-32 letters, digits, '_', '-' or '.', starting with a letter or digit, with no spaces around '='"),
            );
            return false;
        }
        at += 1;
        let value_start = at;
        at = skip(bytes, at, |b| b != b';');
        while at > value_start && bytes.get(at - 1).copied().is_some_and(is_wsp) {
            at -= 1;
        }
        let value = text.get(value_start..at).unwrap_or_default();
        field(
            Field {
                name,
                value,
                column: col(start).1,
                value_column: col(value_start).1,
            },
            diagnostics,
        );
    }
}

fn missing_version(text: &str, kind: RecordKind) -> Diagnostic {
    let trimmed = text.trim_start();
    let near_miss = trimmed
        .get(..kind.version.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(kind.version));
    let d = Diagnostic::new(
        Severity::Error,
        "missing-version",
        (1, 1),
        kind.rfc,
        format!("record does not begin with \"{}\"", kind.version),
    );
    if text.starts_with(kind.version) {
        d.hint(format!("\"{}\" must be followed by ';'", kind.version))
    } else if near_miss && trimmed.len() != text.len() {
        d.hint(format!("remove the whitespace before \"{}\"", kind.version))
    } else if near_miss {
        d.hint(format!(
            "the version tag is case-sensitive: write \"{}\"",
            kind.version
        ))
    } else {
        d.hint(format!("the record must start with \"{}\"", kind.version))
    }
}

/// Picks the one record of an RRset that a sender uses: records not beginning with the version
/// tag are discarded, and exactly one must remain (RFC 8461 §3.1, RFC 8460 §3).
///
/// Each record is given with its character-strings already concatenated.
pub fn select_record<'a, R: AsRef<[u8]> + 'a>(
    records: &'a [R],
    kind: RecordKind,
    diagnostics: &mut DiagnosticList,
) -> Option<&'a [u8]> {
    let mut kept = records
        .iter()
        .map(AsRef::as_ref)
        .filter(|r| has_version(r, kind));
    let first = kept.next();
    let others = kept.count();
    match first {
        Some(record) if others == 0 => Some(record),
        Some(_) => {
            diagnostics.push(
                Diagnostic::new(
                    Severity::Error,
                    "multiple-records",
                    (1, 1),
                    kind.rfc,
                    format!(
                        "{} TXT records at {} begin with \"{}\"; senders ignore them all",
                        others + 1,
                        kind.label,
                        kind.version
                    ),
                )
                .hint("publish exactly one record; delete the others"),
            );
            None
        }
        None => {
            // Say why a record that looks intended was discarded.
            let hint = records
                .iter()
                .find_map(|r| {
                    let text = String::from_utf8_lossy(r.as_ref());
                    let intended = text
                        .trim_start()
                        .to_ascii_lowercase()
                        .starts_with(&kind.version.to_ascii_lowercase());
                    intended
                        .then(|| missing_version(&text, kind).hint)
                        .flatten()
                })
                .unwrap_or_else(|| {
                    format!("publish one record beginning with \"{}\"", kind.version)
                });
            let d = Diagnostic::new(
                Severity::Error,
                "no-record",
                (1, 1),
                kind.rfc,
                format!(
                    "no TXT record at {} begins with \"{}\"",
                    kind.label, kind.version
                ),
            )
            .hint(hint);
            diagnostics.push(d);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STS: RecordKind = RecordKind {
        version: "v=STSv1",
        label: "_mta-sts",
        rfc: "RFC 8461 §3.1",
    };

    fn split(record: &str) -> Result<Vec<(String, String)>, Vec<Diagnostic>> {
        let mut d = DiagnosticList::default();
        let mut fields = Vec::new();
        let ok = for_each_field(record.as_bytes(), STS, &mut d, |f, _| {
            fields.push((f.name.to_owned(), f.value.to_owned()));
        });
        if ok { Ok(fields) } else { Err(d.into_vec()) }
    }

    fn code(record: &str) -> &'static str {
        split(record).unwrap_err()[0].code
    }

    #[test]
    fn separators_allow_surrounding_whitespace() {
        let fields = split("v=STSv1 ;\tid=1 ; x=y;").unwrap();
        assert_eq!(
            fields,
            [("id".into(), "1".into()), ("x".into(), "y".into())]
        );
    }

    #[test]
    fn trailing_whitespace_without_separator_is_invalid() {
        assert_eq!(code("v=STSv1; id=1 "), "trailing-whitespace");
        assert!(split("v=STSv1; id=1; ").is_ok());
    }

    #[test]
    fn fields_need_a_separator() {
        assert_eq!(code("v=STSv1 id=1"), "missing-separator");
    }

    #[test]
    fn empty_fields_are_invalid() {
        assert_eq!(code("v=STSv1;; id=1"), "empty-field");
    }

    #[test]
    fn version_is_case_sensitive_and_first() {
        assert_eq!(code("V=STSv1; id=1"), "missing-version");
        assert_eq!(code(" v=STSv1; id=1"), "missing-version");
        assert_eq!(code("id=1; v=STSv1"), "missing-version");
        assert_eq!(code("v=STSv10; id=1"), "missing-version");
    }

    #[test]
    fn field_names_follow_the_abnf() {
        assert_eq!(code("v=STSv1; id =1"), "invalid-field-name");
        assert_eq!(code("v=STSv1; _x=1"), "invalid-field-name");
        assert!(split(&format!("v=STSv1; {}=1", "a".repeat(32))).is_ok());
        assert_eq!(
            code(&format!("v=STSv1; {}=1", "a".repeat(33))),
            "invalid-field-name"
        );
        assert_eq!(code("v=STSv1; id"), "invalid-field");
    }

    #[test]
    fn non_ascii_and_control_characters_are_invalid() {
        assert_eq!(code("v=STSv1; id=é"), "non-ascii");
        assert_eq!(code("v=STSv1; id=1\0"), "non-ascii");
    }

    #[test]
    fn printable_screen_never_passes_a_bad_byte() {
        for bad in (0u8..0x20).chain(0x7f..=0xff) {
            for len in 1..20 {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = bad;
                    assert!(!surely_printable(&bytes), "{bad:#x} at {at} of {len}");
                }
            }
        }
        assert!(surely_printable(b"v=STSv1; id=20160831085700Z; ~ !"));
        assert!(surely_printable(b""));
    }

    #[test]
    fn rrset_keeps_exactly_one_versioned_record() {
        let mut d = DiagnosticList::default();
        let set = ["v=spf1 -all", "v=STSv1; id=1"];
        assert_eq!(
            select_record(&set, STS, &mut d),
            Some(&b"v=STSv1; id=1"[..])
        );
        let set = ["v=STSv1; id=1", "v=STSv1; id=2"];
        assert_eq!(select_record(&set, STS, &mut d), None);
        let set = ["v=STSv10; id=1"];
        assert_eq!(select_record(&set, STS, &mut d), None);
        let codes: Vec<_> = d.into_vec().iter().map(|d| d.code).collect();
        assert_eq!(codes, ["multiple-records", "no-record"]);
    }
}
