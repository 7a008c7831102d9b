//! The `_mta-sts` TXT record (RFC 8461 §3.1).

use serde::Serialize;

use crate::diag::{Diagnostic, DiagnosticList, Lint, Severity};
use crate::taglist::{self, RecordKind, skip_wsp};

/// The `_mta-sts` record's grammar.
pub const STS_RECORD: RecordKind = RecordKind {
    version: "v=STSv1",
    label: "_mta-sts",
    rfc: "RFC 8461 §3.1",
};

const READER: taglist::RecordReader<StsRecord> = taglist::RecordReader {
    kind: STS_RECORD,
    plain: parse_plain,
    read,
};

/// Longest policy id the RFC allows.
pub const MAX_ID_LEN: usize = 32;

/// A valid `_mta-sts` TXT record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StsRecord {
    /// The policy id (1–32 letters and digits); a new id tells senders to refetch the policy.
    pub id: String,
    /// Fields other than `v` and `id`, in record order; senders ignore them.
    pub extensions: Vec<(String, String)>,
}

impl StsRecord {
    /// Parses one record (its character-strings already concatenated).
    pub fn parse(record: &[u8]) -> Result<StsRecord, Diagnostic> {
        READER.parse(record)
    }

    /// Parses one record and reports every finding.
    pub fn lint(record: &[u8]) -> Lint<StsRecord> {
        READER.lint(record)
    }

    /// Picks and parses the record a sender uses from all TXT records at `_mta-sts.<domain>`,
    /// each with its character-strings concatenated.
    pub fn lint_rrset<R: AsRef<[u8]>>(records: &[R]) -> Lint<StsRecord> {
        READER.lint_rrset(records)
    }

    /// The record text, as published.
    pub fn to_text(&self) -> String {
        let mut text = format!("v=STSv1; id={}", self.id);
        for (name, value) in &self.extensions {
            text.push_str("; ");
            text.push_str(name);
            text.push('=');
            text.push_str(value);
        }
        text
    }
}

pub(crate) fn first_error(diagnostics: Vec<Diagnostic>) -> Diagnostic {
    let mut diagnostics = diagnostics;
    match diagnostics.iter().position(Diagnostic::is_error) {
        Some(i) => diagnostics.swap_remove(i),
        None => Diagnostic::new(Severity::Error, "invalid", (1, 1), "", "invalid input"),
    }
}

/// The record as nearly everyone publishes it, `v=STSv1; id=ID` with an optional trailing
/// separator, read in one pass. `None` sends anything else to the full reader, which explains.
fn parse_plain(record: &[u8]) -> Option<StsRecord> {
    let rest = record.strip_prefix(b"v=STSv1")?;
    let rest = skip_wsp(rest).strip_prefix(b";")?;
    let rest = skip_wsp(rest).strip_prefix(b"id=")?;
    let len = rest
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    let (id, tail) = rest.split_at_checked(len)?;
    if !(1..=MAX_ID_LEN).contains(&len) || !taglist::is_record_end(tail) {
        return None;
    }
    let id = std::str::from_utf8(id).ok()?.to_owned();
    Some(StsRecord {
        id,
        extensions: Vec::new(),
    })
}

/// True when `id` is 1–32 ALPHA / DIGIT.
pub fn is_valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn read(record: &[u8], diagnostics: &mut DiagnosticList) -> Option<StsRecord> {
    let rfc = STS_RECORD.rfc;
    let mut id: Option<&str> = None;
    let mut extensions = Vec::new();
    let mut ok = true;
    let syntax_ok =
        taglist::for_each_field(record, STS_RECORD, diagnostics, |field, diagnostics| {
            let at = (1, field.value_column);
            if field.name == "id" {
                if id.is_some() {
                    // RFC 8461 §3.2: all but the first of a non-repeated field are ignored.
                    diagnostics.push(
                        Diagnostic::new(
                            Severity::Warning,
                            "duplicate-id",
                            (1, field.column),
                            rfc,
                            "the record has more than one id; senders use the first",
                        )
                        .hint("keep one id field"),
                    );
                    return;
                }
                if !is_valid_id(field.value) {
                    diagnostics.push(invalid_id(field.value, at));
                    ok = false;
                }
                id = Some(field.value);
            } else if !taglist::read_extension(&field, STS_RECORD, &mut extensions, diagnostics) {
                ok = false;
            }
        });
    if !syntax_ok {
        return None;
    }
    let Some(id) = id else {
        diagnostics.push(
            Diagnostic::new(
                Severity::Error,
                "missing-id",
                (1, 1),
                rfc,
                "the record has no id field",
            )
            .hint("add an id, e.g. \"v=STSv1; id=20240101T000000\"; change it whenever the policy changes"),
        );
        return None;
    };
    ok.then(|| StsRecord {
        id: id.to_owned(),
        extensions,
    })
}

fn invalid_id(id: &str, at: (u32, u32)) -> Diagnostic {
    let message = if id.is_empty() {
        "id is empty".to_owned()
    } else if id.len() > MAX_ID_LEN {
        format!(
            "id is {} characters long; at most {MAX_ID_LEN} are allowed",
            id.len()
        )
    } else if id.contains([' ', '\t']) {
        format!("id \"{id}\" contains whitespace; fields are separated by ';'")
    } else {
        format!("id \"{id}\" contains characters other than letters and digits")
    };
    Diagnostic::new(Severity::Error, "invalid-id", at, STS_RECORD.rfc, message)
        .hint("use 1-32 letters and digits, e.g. a timestamp like 20240101T000000")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(record: &str) -> Vec<&'static str> {
        StsRecord::lint(record.as_bytes())
            .diagnostics
            .iter()
            .map(|d| d.code)
            .collect()
    }

    #[test]
    fn rfc_example_is_valid() {
        let r = StsRecord::parse(b"v=STSv1; id=20160831085700Z;").unwrap();
        assert_eq!(r.id, "20160831085700Z");
        assert!(r.extensions.is_empty());
    }

    #[test]
    fn id_is_required() {
        assert_eq!(codes("v=STSv1"), ["missing-id"]);
        assert_eq!(codes("v=STSv1;"), ["missing-id"]);
        assert_eq!(codes("v=STSv1; foo=bar"), ["unknown-field", "missing-id"]);
    }

    #[test]
    fn id_is_one_to_32_alphanumerics() {
        assert!(StsRecord::parse(format!("v=STSv1; id={}", "a".repeat(32)).as_bytes()).is_ok());
        assert_eq!(
            codes(&format!("v=STSv1; id={}", "a".repeat(33))),
            ["invalid-id"]
        );
        assert_eq!(codes("v=STSv1; id=2016-08-31"), ["invalid-id"]);
        assert_eq!(codes("v=STSv1; id=abc_1"), ["invalid-id"]);
        assert_eq!(codes("v=STSv1; id="), ["invalid-id"]);
        assert_eq!(codes("v=STSv1; id=1 x=y"), ["invalid-id"]);
    }

    #[test]
    fn extensions_are_kept_and_ignored() {
        let r = StsRecord::parse(b"v=STSv1; x-foo=bar.baz; id=1").unwrap();
        assert_eq!(r.id, "1");
        assert_eq!(r.extensions, [("x-foo".to_owned(), "bar.baz".to_owned())]);
    }

    #[test]
    fn extension_values_exclude_spaces_and_equals() {
        assert_eq!(codes("v=STSv1; id=1; x=a=b"), ["invalid-field-value"]);
    }

    #[test]
    fn plain_path_agrees_with_the_full_reader() {
        for record in [
            "v=STSv1; id=1",
            "v=STSv1;id=abc;",
            "v=STSv1 ; id=abc ; ",
            "v=STSv1;\tid=A1\t",
            "v=STSv1; id=1 ",
            "v=STSv1; id=",
            "v=STSv1; id=1;;",
            "v=STSv1; id=1; x=y",
            "v=STSv1\n; id=1",
            "v=STSv1; id=1\n",
            "v=STSv1;\x0bid=1",
            "v=STSv1;\nid=1",
            "v=STSv1;id=1;\n",
            "v=STSv10; id=1",
            "v=STSv1; id=1-2",
            &format!("v=STSv1; id={}", "a".repeat(33)),
        ] {
            if let Some(plain) = parse_plain(record.as_bytes()) {
                let mut d = DiagnosticList::default();
                assert_eq!(read(record.as_bytes(), &mut d), Some(plain), "{record:?}");
                assert!(d.into_vec().is_empty(), "{record:?}");
            }
        }
        assert!(parse_plain(b"v=STSv1; id=20160831085700Z;").is_some());
        assert!(parse_plain(b"v=STSv1; id=20190429T010101").is_some());
    }

    #[test]
    fn to_text_round_trips() {
        let r = StsRecord::parse(b"v=STSv1;id=abc;x=1").unwrap();
        assert_eq!(r.to_text(), "v=STSv1; id=abc; x=1");
        assert_eq!(StsRecord::parse(r.to_text().as_bytes()).unwrap(), r);
    }
}
