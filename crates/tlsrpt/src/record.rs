//! The `_smtp._tls` TXT record (RFC 8460 §3).

use serde::Serialize;

use mta_sts_policy::taglist::{self, Field, RecordKind, skip_wsp};
use mta_sts_policy::{Diagnostic, DiagnosticList, Lint, Severity};

/// The `_smtp._tls` record's grammar.
pub const TLSRPT_RECORD: RecordKind = RecordKind {
    version: "v=TLSRPTv1",
    label: "_smtp._tls",
    rfc: "RFC 8460 §3",
};

const READER: taglist::RecordReader<TlsRptRecord> = taglist::RecordReader {
    kind: TLSRPT_RECORD,
    plain: parse_plain,
    read,
};

/// Where reports go: one URI of the `rua` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "scheme", content = "uri", rename_all = "lowercase")]
pub enum ReportUri {
    /// `mailto:` — reports are mailed (RFC 8460 §5.3).
    Mailto(String),
    /// `https:` — reports are POSTed (RFC 8460 §5.4).
    Https(String),
}

impl ReportUri {
    /// The URI as written in the record.
    pub fn as_str(&self) -> &str {
        match self {
            ReportUri::Mailto(uri) | ReportUri::Https(uri) => uri,
        }
    }

    /// Parses one URI of a `rua` list; the error explains what is wrong with it.
    pub fn parse(uri: &str) -> Result<ReportUri, UriProblem> {
        check_uri(uri)
    }
}

impl std::fmt::Display for ReportUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a `rua` URI cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriProblem {
    /// Stable kebab-case code.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub hint: &'static str,
    /// Byte offset in the URI where the problem is.
    pub offset: usize,
}

/// A valid `_smtp._tls` TXT record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsRptRecord {
    /// The usable report destinations, in record order (at least one).
    pub rua: Vec<ReportUri>,
    /// Fields other than `v` and `rua`, in record order; senders ignore them.
    pub extensions: Vec<(String, String)>,
}

impl TlsRptRecord {
    /// Parses one record (its character-strings already concatenated).
    pub fn parse(record: &[u8]) -> Result<TlsRptRecord, Diagnostic> {
        READER.parse(record)
    }

    /// Parses one record and reports every finding.
    pub fn lint(record: &[u8]) -> Lint<TlsRptRecord> {
        READER.lint(record)
    }

    /// Picks and parses the record a sender uses from all TXT records at `_smtp._tls.<domain>`.
    pub fn lint_rrset<R: AsRef<[u8]>>(records: &[R]) -> Lint<TlsRptRecord> {
        READER.lint_rrset(records)
    }

    /// The record text, as published.
    pub fn to_text(&self) -> String {
        let rua: Vec<&str> = self.rua.iter().map(ReportUri::as_str).collect();
        let mut text = format!("v=TLSRPTv1; rua={}", rua.join(","));
        for (name, value) in &self.extensions {
            text.push_str("; ");
            text.push_str(name);
            text.push('=');
            text.push_str(value);
        }
        text
    }
}

/// The record as nearly everyone publishes it, `v=TLSRPTv1; rua=URI[,URI...]` with supported
/// URIs and an optional trailing separator, read in one pass. `None` sends anything else to the
/// full reader, which explains.
fn parse_plain(record: &[u8]) -> Option<TlsRptRecord> {
    let rest = record.strip_prefix(b"v=TLSRPTv1")?;
    let rest = skip_wsp(rest).strip_prefix(b";")?;
    let rest = skip_wsp(rest).strip_prefix(b"rua=")?;
    let text = std::str::from_utf8(rest).ok()?;
    let bytes = text.as_bytes();
    let mut rua = Vec::new();
    let mut at = 0;
    loop {
        // Each URI is scanned once; the scan stops at what ends it. The common shapes take the
        // short lane, the others the general scan.
        let uri_text = text.get(at..)?;
        let (len, scheme) = match simple_uri(uri_text.as_bytes()) {
            Some((len, scheme)) if ends_uri(uri_text.as_bytes().get(len)) => (len, scheme),
            _ => {
                let scan = scan_uri(uri_text).ok()?;
                let uri = uri_text.get(..scan.len).filter(|u| !u.is_empty())?;
                (scan.len, uri_scheme(uri, &scan).ok()?)
            }
        };
        let uri = uri_text.get(..len)?;
        at += len;
        let after = at + skip_len(bytes.get(at..)?);
        if rua.capacity() == 0 {
            // Allocate once: for one destination, or a few when a list follows.
            rua = Vec::with_capacity(if bytes.get(after) == Some(&b',') {
                4
            } else {
                1
            });
        }
        rua.push(scheme.report_uri(uri));
        match bytes.get(after) {
            Some(b',') => at = after + 1 + skip_len(bytes.get(after + 1..)?),
            // Whitespace after the last field is only allowed before a ';'.
            None if after == at => break,
            Some(b';') if taglist::is_record_end(bytes.get(after..)?) => break,
            _ => return None,
        }
    }
    Some(TlsRptRecord {
        rua,
        extensions: Vec::new(),
    })
}

/// The length and scheme of the URI at the start of `bytes` when it has one of the shapes nearly
/// every record uses: `mailto:LOCAL@DOMAIN` or `https://HOST[:PORT][/PATH]`, the local part and
/// path of plain URI characters, the domain or host of non-empty labels of letters, digits and
/// `-`. The URI ends where the returned length points; [`parse_plain`] checks that a URI may end
/// there. `None` for any other shape: [`scan_uri`] and [`uri_scheme`] then read it, and accept
/// everything this accepts, with the same scheme.
fn simple_uri(bytes: &[u8]) -> Option<(usize, Scheme)> {
    const MAILTO: &[u8] = b"mailto:";
    const HTTPS: &[u8] = b"https://";
    if bytes.get(..MAILTO.len())?.eq_ignore_ascii_case(MAILTO) {
        let local = run_len(bytes.get(MAILTO.len()..)?, &PLAIN_URI_CHARS);
        let at_sign = MAILTO.len() + local;
        if local == 0 || bytes.get(at_sign) != Some(&b'@') {
            return None;
        }
        let domain = host_len(bytes.get(at_sign + 1..)?)?;
        return Some((at_sign + 1 + domain, Scheme::Mailto));
    }
    if !bytes.get(..HTTPS.len())?.eq_ignore_ascii_case(HTTPS) {
        return None;
    }
    let mut end = HTTPS.len() + host_len(bytes.get(HTTPS.len()..)?)?;
    if bytes.get(end) == Some(&b':') {
        end += 1 + bytes
            .get(end + 1..)?
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
    }
    if bytes.get(end) == Some(&b'/') {
        end += run_len(bytes.get(end..)?, &PLAIN_URI_CHARS);
    }
    Some((end, Scheme::Https))
}

/// The length of the dot-separated host at the start of `bytes`; `None` when a label is empty.
fn host_len(bytes: &[u8]) -> Option<usize> {
    let mut end = 0;
    loop {
        let label = run_len(bytes.get(end..)?, &HOST_CHARS);
        if label == 0 {
            return None;
        }
        end += label;
        if bytes.get(end) != Some(&b'.') {
            return Some(end);
        }
        end += 1;
    }
}

/// How many bytes at the start of `bytes` are in `table`.
fn run_len(bytes: &[u8], table: &[bool; 256]) -> usize {
    bytes
        .iter()
        .position(|&b| !table.get(usize::from(b)).copied().unwrap_or(false))
        .unwrap_or(bytes.len())
}

/// Whether a URI of a `rua` list may end before `next`: at the end, a `,`, a `;` or whitespace.
fn ends_uri(next: Option<&u8>) -> bool {
    matches!(next, None | Some(b',' | b';' | b' ' | b'\t'))
}

fn skip_len(bytes: &[u8]) -> usize {
    bytes.len() - skip_wsp(bytes).len()
}

fn read(record: &[u8], diagnostics: &mut DiagnosticList) -> Option<TlsRptRecord> {
    let rfc = TLSRPT_RECORD.rfc;
    let mut rua: Option<Vec<ReportUri>> = None;
    let mut extensions = Vec::new();
    let mut ok = true;
    let syntax_ok =
        taglist::for_each_field(record, TLSRPT_RECORD, diagnostics, |field, diagnostics| {
            if field.name == "rua" {
                if rua.is_some() {
                    diagnostics.push(
                        Diagnostic::new(
                            Severity::Warning,
                            "duplicate-rua",
                            (1, field.column),
                            rfc,
                            "the record has more than one rua field; senders use the first",
                        )
                        .hint("list every destination in one rua, separated by ','"),
                    );
                    return;
                }
                rua = Some(read_rua(&field, diagnostics, &mut ok));
            } else if !taglist::read_extension(&field, TLSRPT_RECORD, &mut extensions, diagnostics)
            {
                ok = false;
            }
        });
    if !syntax_ok {
        return None;
    }
    let Some(rua) = rua else {
        diagnostics.push(
            Diagnostic::new(
                Severity::Error,
                "missing-rua",
                (1, 1),
                rfc,
                "the record has no rua field",
            )
            .hint("add where reports go, e.g. \"rua=mailto:tlsrpt@example.com\""),
        );
        return None;
    };
    if rua.is_empty() && ok {
        diagnostics.push(
            Diagnostic::new(
                Severity::Error,
                "no-usable-rua",
                (1, 1),
                rfc,
                "rua has no mailto: or https: URI, so no report can be sent",
            )
            .hint("use rua=mailto:ADDRESS or rua=https://HOST/PATH"),
        );
        ok = false;
    }
    ok.then_some(TlsRptRecord { rua, extensions })
}

/// Reads `rua=URI *(*WSP "," *WSP URI)`; unsupported schemes are dropped with a warning,
/// malformed URIs make the record invalid.
fn read_rua(field: &Field<'_>, diagnostics: &mut DiagnosticList, ok: &mut bool) -> Vec<ReportUri> {
    let rfc = TLSRPT_RECORD.rfc;
    let mut uris = Vec::new();
    let mut offset = 0usize;
    let mut unsupported = Vec::new();
    for part in field.value.split(',') {
        let start = offset + (part.len() - part.trim_start_matches([' ', '\t']).len());
        offset += part.len() + 1;
        let uri = part.trim_matches([' ', '\t']);
        let column = |at: usize| {
            field
                .value_column
                .saturating_add(u32::try_from(start + at).unwrap_or(u32::MAX))
        };
        match check_uri(uri) {
            Ok(parsed) => uris.push(parsed),
            Err(problem) if problem.code == "rua-unsupported-scheme" => {
                unsupported.push((column(0), problem));
            }
            Err(problem) => {
                diagnostics.push(
                    Diagnostic::new(
                        Severity::Error,
                        problem.code,
                        (1, column(problem.offset)),
                        rfc,
                        problem.message,
                    )
                    .hint(problem.hint),
                );
                *ok = false;
            }
        }
    }
    // Without any usable URI the record is useless (an error below); beside usable ones, an
    // unsupported URI only means those reports go elsewhere.
    let severity = if uris.is_empty() {
        Severity::Error
    } else {
        Severity::Warning
    };
    for (column, problem) in unsupported {
        diagnostics.push(
            Diagnostic::new(severity, problem.code, (1, column), rfc, problem.message)
                .hint(problem.hint),
        );
        if severity == Severity::Error {
            *ok = false;
        }
    }
    uris
}

fn problem(code: &'static str, offset: usize, message: String, hint: &'static str) -> UriProblem {
    UriProblem {
        code,
        message,
        hint,
        offset,
    }
}

/// What one pass over a URI's characters found.
struct UriScan {
    /// Bytes up to the first `,`, `;`, space or tab (which end a URI in a `rua` list).
    len: usize,
    colon: Option<usize>,
    at_sign: Option<usize>,
    query: Option<usize>,
    /// `[` or `]` occur (legal only around an IPv6 host or a mail domain literal).
    brackets: bool,
}

/// Checks the characters of the URI at the start of `text`, stopping at `,`, `;`, space or tab.
/// Plain URI characters are skipped by table; only the few that matter stop the scan.
///
/// The error is the offending byte's position; [`char_problem`] says what is wrong with it.
fn scan_uri(text: &str) -> Result<UriScan, usize> {
    let bytes = text.as_bytes();
    let mut scan = UriScan {
        len: bytes.len(),
        colon: None,
        at_sign: None,
        query: None,
        brackets: false,
    };
    let mut at = 0;
    loop {
        let rest = bytes.get(at..).unwrap_or_default();
        at += rest
            .iter()
            .position(|&b| !is_plain_uri_char(b))
            .unwrap_or(rest.len());
        let Some(&b) = bytes.get(at) else { break };
        match b {
            b',' | b';' | b' ' | b'\t' => {
                scan.len = at;
                break;
            }
            b'%' => {
                let hex = bytes.get(at + 1..at + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return Err(at);
                }
            }
            b':' => {
                scan.colon.get_or_insert(at);
            }
            b'@' if scan.query.is_none() => scan.at_sign = Some(at),
            b'?' => {
                scan.query.get_or_insert(at);
            }
            b'@' => {}
            b'[' | b']' => scan.brackets = true,
            _ => return Err(at),
        }
        at += 1;
    }
    Ok(scan)
}

/// Why the byte at `at` of `uri` cannot stand there (found by [`scan_uri`], or a separator
/// inside one URI).
fn char_problem(uri: &str, at: usize) -> UriProblem {
    match uri.as_bytes().get(at).copied().unwrap_or(0) {
        b @ (b'!' | b',' | b';') => unencoded(uri, at, b),
        b'%' => problem(
            "rua-invalid-uri",
            at,
            format!("'%' in URI \"{uri}\" is not followed by two hex digits"),
            "percent-encode as %XX",
        ),
        b => not_allowed(uri, at, b),
    }
}

fn unencoded(uri: &str, at: usize, b: u8) -> UriProblem {
    problem(
        "rua-unencoded-char",
        at,
        format!("'{}' in URI \"{uri}\" must be percent-encoded", b as char),
        "encode ',' as %2C, '!' as %21 and ';' as %3B; DMARC-style size limits (!10m) are not part of TLS-RPT",
    )
}

fn not_allowed(uri: &str, at: usize, b: u8) -> UriProblem {
    problem(
        "rua-invalid-uri",
        at,
        format!(
            "character '{}' is not allowed in URI \"{uri}\"",
            b.escape_ascii()
        ),
        "percent-encode it, and separate URIs with ','",
    )
}

fn check_uri(uri: &str) -> Result<ReportUri, UriProblem> {
    if uri.is_empty() {
        return Err(problem(
            "rua-empty",
            0,
            "empty URI in rua".into(),
            "write one URI, or several separated by ','",
        ));
    }
    let scan = scan_uri(uri).map_err(|at| char_problem(uri, at))?;
    if scan.len < uri.len() {
        return Err(char_problem(uri, scan.len));
    }
    classify_uri(uri, &scan)
}

/// Checks the scheme and its parts of a URI whose characters [`scan_uri`] accepted.
fn classify_uri(uri: &str, scan: &UriScan) -> Result<ReportUri, UriProblem> {
    uri_scheme(uri, scan)
        .map(|scheme| scheme.report_uri(uri))
        .map_err(|fault| fault.problem(uri, scan))
}

/// A supported scheme whose URI has the parts it needs.
#[derive(Clone, Copy)]
enum Scheme {
    Mailto,
    Https,
}

impl Scheme {
    fn report_uri(self, uri: &str) -> ReportUri {
        match self {
            Scheme::Mailto => ReportUri::Mailto(uri.to_owned()),
            Scheme::Https => ReportUri::Https(uri.to_owned()),
        }
    }
}

/// What is wrong with a URI, small enough for the hot path; [`UriFault::problem`] says it in
/// words.
#[derive(Clone, Copy)]
enum UriFault {
    NoScheme,
    NotMailAddress,
    BadHostOrPort,
    NoHost,
    Unsupported,
}

impl UriFault {
    fn problem(self, uri: &str, scan: &UriScan) -> UriProblem {
        let after_scheme = scan.colon.map_or(0, |c| c + 1);
        match self {
            UriFault::NoScheme => problem(
                "rua-invalid-uri",
                0,
                format!("\"{uri}\" has no scheme"),
                "write mailto:ADDRESS or https://HOST/PATH",
            ),
            UriFault::NotMailAddress => problem(
                "rua-invalid-uri",
                after_scheme,
                format!("\"{uri}\" is not a mail address"),
                "write mailto:local@domain",
            ),
            UriFault::BadHostOrPort => problem(
                "rua-invalid-uri",
                after_scheme,
                format!("\"{uri}\" has an invalid host or port"),
                "write https://HOST[:PORT]/PATH",
            ),
            UriFault::NoHost => problem(
                "rua-invalid-uri",
                after_scheme,
                format!("\"{uri}\" has no host"),
                "write https://HOST/PATH",
            ),
            UriFault::Unsupported => {
                let scheme = uri
                    .get(..after_scheme.saturating_sub(1))
                    .unwrap_or_default();
                let hint = if scheme.eq_ignore_ascii_case("http") {
                    "reports are only POSTed over https: use https://"
                } else {
                    "TLS-RPT supports mailto: and https: only"
                };
                problem(
                    "rua-unsupported-scheme",
                    0,
                    format!("\"{uri}\" uses scheme \"{scheme}\", which TLS-RPT does not support"),
                    hint,
                )
            }
        }
    }
}

/// The scheme of a URI whose characters [`scan_uri`] accepted, once its parts check out:
/// `mailto:local@domain[?headers]`, or `https://[userinfo@]host[:port][/path][?query]`.
fn uri_scheme(uri: &str, scan: &UriScan) -> Result<Scheme, UriFault> {
    let Some(colon) = scan.colon else {
        return Err(UriFault::NoScheme);
    };
    let scheme = uri.get(..colon).unwrap_or_default();
    let rest = uri.get(colon + 1..).unwrap_or_default();
    if scheme.eq_ignore_ascii_case("mailto") {
        let end = scan.query.unwrap_or(uri.len());
        let valid = scan.at_sign.is_some_and(|at| {
            at > colon + 1
                && uri
                    .get(at + 1..end)
                    .is_some_and(|domain| is_mail_domain(domain, scan.brackets))
        });
        return if valid {
            Ok(Scheme::Mailto)
        } else {
            Err(UriFault::NotMailAddress)
        };
    }
    if !scheme.eq_ignore_ascii_case("https") {
        return Err(UriFault::Unsupported);
    }
    let authority_start = colon + 3;
    let (host_port, after) = rest
        .strip_prefix("//")
        .and_then(|r| {
            let end = r
                .bytes()
                .position(|b| matches!(b, b'/' | b'?' | b'#'))
                .unwrap_or(r.len());
            let authority_end = authority_start + end;
            let host_start = match scan.at_sign {
                Some(at) if at < authority_end => at + 1,
                _ => authority_start,
            };
            Some((
                uri.get(host_start..authority_end)?,
                uri.get(authority_end..)?,
            ))
        })
        .unwrap_or_default();
    let host_port = split_host_port(host_port, scan.brackets)
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()));
    let path_ok = !scan.brackets || !after.contains(['[', ']']);
    let Some((host, _)) = host_port.filter(|_| path_ok) else {
        return Err(UriFault::BadHostOrPort);
    };
    if host.is_empty() {
        Err(UriFault::NoHost)
    } else {
        Ok(Scheme::Https)
    }
}

/// The domain of a mailto address: dot-separated non-empty labels, or (only when the URI has
/// brackets at all) a `[literal]`.
fn is_mail_domain(domain: &str, brackets: bool) -> bool {
    if brackets {
        if let Some(literal) = domain.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            return !literal.is_empty() && !literal.contains(['[', ']']);
        }
        if domain.contains(['[', ']']) {
            return false;
        }
    }
    // Labels are non-empty: no leading, trailing or doubled dot (checked without branches, so
    // the loop stays cheap on the hot path).
    let bytes = domain.as_bytes();
    let doubled = bytes
        .iter()
        .zip(bytes.iter().skip(1))
        .fold(false, |seen, (a, b)| seen | ((*a == b'.') & (*b == b'.')));
    !doubled && bytes.first().is_some_and(|&b| b != b'.') && bytes.last() != Some(&b'.')
}

/// Splits an authority's `host[:port]`, the host possibly an IPv6 `[literal]` ("[" and "]"
/// delimit that and nothing else, RFC 3986 §3.2.2); `None` when malformed.
fn split_host_port(host_port: &str, brackets: bool) -> Option<(&str, &str)> {
    if brackets {
        if let Some(literal) = host_port.strip_prefix('[') {
            let (v6, rest) = literal.split_once(']')?;
            let port = if rest.is_empty() {
                ""
            } else {
                rest.strip_prefix(':')?
            };
            return (!v6.is_empty() && !v6.contains('[')).then_some((v6, port));
        }
        if host_port.contains(['[', ']']) {
            return None;
        }
    }
    Some(host_port.split_once(':').unwrap_or((host_port, "")))
}

/// Characters RFC 3986 allows in a URI that need no further look: all but `%`, `:`, `@`, `?`,
/// `[`, `]` (which [`scan_uri`] notes) and those it forbids.
#[allow(clippy::indexing_slicing)] // const evaluation: an out-of-range index fails the build
const PLAIN_URI_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < table.len() {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'/'
                    | b'#'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b'='
            );
        b += 1;
    }
    table
};

/// Letters, digits and `-`: the characters of a host label on [`simple_uri`]'s short lane.
#[allow(clippy::indexing_slicing)] // const evaluation: an out-of-range index fails the build
const HOST_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < table.len() {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'-';
        b += 1;
    }
    table
};

fn is_plain_uri_char(b: u8) -> bool {
    PLAIN_URI_CHARS
        .get(usize::from(b))
        .copied()
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(record: &str) -> Vec<&'static str> {
        TlsRptRecord::lint(record.as_bytes())
            .diagnostics
            .iter()
            .map(|d| d.code)
            .collect()
    }

    #[test]
    fn rfc_examples_are_valid() {
        let r = TlsRptRecord::parse(b"v=TLSRPTv1;rua=mailto:reports@example.com").unwrap();
        assert_eq!(
            r.rua,
            [ReportUri::Mailto("mailto:reports@example.com".into())]
        );
        let r = TlsRptRecord::parse(b"v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt")
            .unwrap();
        assert_eq!(
            r.rua,
            [ReportUri::Https(
                "https://reporting.example.com/v1/tlsrpt".into()
            )]
        );
    }

    #[test]
    fn rua_is_required() {
        assert_eq!(codes("v=TLSRPTv1"), ["missing-rua"]);
        assert_eq!(codes("v=TLSRPTv1; x=1"), ["unknown-field", "missing-rua"]);
    }

    #[test]
    fn rua_may_come_after_extensions() {
        let r = TlsRptRecord::parse(b"v=TLSRPTv1; ext=1; rua=mailto:a@example.com;").unwrap();
        assert_eq!(r.rua.len(), 1);
        assert_eq!(r.extensions, [("ext".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn rua_list_is_comma_separated_with_optional_spaces() {
        let r =
            TlsRptRecord::parse(b"v=TLSRPTv1; rua=mailto:a@example.com , https://r.example.com/x")
                .unwrap();
        assert_eq!(r.rua.len(), 2);
        assert_eq!(
            r.to_text(),
            "v=TLSRPTv1; rua=mailto:a@example.com,https://r.example.com/x"
        );
    }

    #[test]
    fn only_mailto_and_https_are_supported() {
        assert_eq!(
            codes("v=TLSRPTv1; rua=http://r.example.com/"),
            ["rua-unsupported-scheme"]
        );
        assert!(!TlsRptRecord::lint(b"v=TLSRPTv1; rua=http://r.example.com/").is_valid());
        let lint = TlsRptRecord::lint(b"v=TLSRPTv1; rua=ftp://r.example.com/,mailto:a@example.com");
        assert!(lint.is_valid());
        assert_eq!(lint.diagnostics[0].severity, Severity::Warning);
    }

    #[test]
    fn reserved_characters_must_be_encoded() {
        assert_eq!(
            codes("v=TLSRPTv1; rua=mailto:a@example.com!10m"),
            ["rua-unencoded-char"]
        );
        assert!(TlsRptRecord::parse(b"v=TLSRPTv1; rua=mailto:a@example.com%2110m").is_ok());
        assert_eq!(
            codes("v=TLSRPTv1; rua=mailto:a@example.com%2"),
            ["rua-invalid-uri"]
        );
    }

    #[test]
    fn malformed_uris_are_invalid() {
        assert_eq!(codes("v=TLSRPTv1; rua=mailto:"), ["rua-invalid-uri"]);
        assert_eq!(codes("v=TLSRPTv1; rua=https:///path"), ["rua-invalid-uri"]);
        assert_eq!(
            codes("v=TLSRPTv1; rua=reports@example.com"),
            ["rua-invalid-uri"]
        );
        assert_eq!(codes("v=TLSRPTv1; rua="), ["rua-empty"]);
        assert_eq!(
            codes("v=TLSRPTv1; rua=mailto:a@example.com,"),
            ["rua-empty"]
        );
    }

    #[test]
    fn version_is_exact() {
        assert_eq!(
            codes("v=tlsrptv1; rua=mailto:a@example.com"),
            ["missing-version"]
        );
        assert_eq!(
            codes("v=TLSRPTv2; rua=mailto:a@example.com"),
            ["missing-version"]
        );
    }

    #[test]
    fn rrset_rule_matches_sts() {
        let set = ["v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@example.com"];
        assert!(TlsRptRecord::lint_rrset(&set).is_valid());
        let set = [
            "v=TLSRPTv1; rua=mailto:a@example.com",
            "v=TLSRPTv1; rua=mailto:b@example.com",
        ];
        assert_eq!(
            TlsRptRecord::lint_rrset(&set).diagnostics[0].code,
            "multiple-records"
        );
    }

    #[test]
    fn plain_path_agrees_with_the_full_reader() {
        for record in [
            "v=TLSRPTv1;rua=mailto:a@example.com",
            "v=TLSRPTv1; rua=mailto:a@example.com , https://x.example/a;",
            "v=TLSRPTv1; rua=mailto:a@example.com ",
            "v=TLSRPTv1; rua=mailto:a@example.com\n",
            "v=TLSRPTv1; rua=mailto:a@example.com\x0b",
            "v=TLSRPTv1; rua=mailto:a@example.com; x=y",
            "v=TLSRPTv1; rua=mailto:a@example.com,",
            "v=TLSRPTv1; rua=http://x.example/",
            "v=TLSRPTv1;\nrua=mailto:a@example.com",
            "v=TLSRPTv1; rua=mailto:a@example.com,\tmailto:b@example.com ;\t",
            "v=TLSRPTv1; rua=mailto:a@\u{e9}.example",
            // Shapes at the edge of the short lane (simple_uri): each either takes it, or
            // leaves it for the general scan, with the full reader's result.
            "v=TLSRPTv1; rua=MAILTO:A@B.EXAMPLE",
            "v=TLSRPTv1; rua=mailto:a.b+c/d=e@b-c.example",
            "v=TLSRPTv1; rua=mailto:@b.example",
            "v=TLSRPTv1; rua=mailto:a@",
            "v=TLSRPTv1; rua=mailto:a@b..example",
            "v=TLSRPTv1; rua=mailto:a@.b.example",
            "v=TLSRPTv1; rua=mailto:a@b.example.",
            "v=TLSRPTv1; rua=mailto:a@b.example:25",
            "v=TLSRPTv1; rua=mailto:a@b_c.example",
            "v=TLSRPTv1; rua=mailto:a@b.example?subject=x",
            "v=TLSRPTv1; rua=mailto:a%40b@c.example",
            "v=TLSRPTv1; rua=mailto:a@[192.0.2.1]",
            "v=TLSRPTv1; rua=mailto:a@b@c.example",
            "v=TLSRPTv1; rua=mailto:a@b.example!10m",
            "v=TLSRPTv1; rua=HTTPS://H.EXAMPLE",
            "v=TLSRPTv1; rua=https://h.example:",
            "v=TLSRPTv1; rua=https://h.example:8443/v1/x",
            "v=TLSRPTv1; rua=https://h.example:80x/",
            "v=TLSRPTv1; rua=https://h.example#f",
            "v=TLSRPTv1; rua=https://h.example/p#f&x=1",
            "v=TLSRPTv1; rua=https://h.example./x",
            "v=TLSRPTv1; rua=https://-/x",
            "v=TLSRPTv1; rua=https:///x",
            "v=TLSRPTv1; rua=https://u@h.example/x",
            "v=TLSRPTv1; rua=https://[2001:db8::1]:8443/x",
            "v=TLSRPTv1; rua=https://h.example/a%2Cb?q=1",
            "v=TLSRPTv1; rua=https://h.example/a:b",
            "v=TLSRPTv1; rua=https:h.example",
            "v=TLSRPTv1; rua=mailto:a@b.example,https://h.example/x ; ",
        ] {
            if let Some(plain) = parse_plain(record.as_bytes()) {
                let mut d = DiagnosticList::default();
                assert_eq!(read(record.as_bytes(), &mut d), Some(plain), "{record:?}");
                assert!(d.into_vec().is_empty(), "{record:?}");
            }
        }
        assert!(parse_plain(b"v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt").is_some());
    }

    #[test]
    fn common_shapes_take_the_short_lane() {
        for uri in [
            "mailto:reports@example.com",
            "MAILTO:a.b+c@b-c.example",
            "https://reporting.example.com/v1/tlsrpt",
            "https://h.example:8443",
            "https://h.example/p#f&x=1",
        ] {
            let (len, _) = simple_uri(uri.as_bytes()).unwrap_or_else(|| panic!("{uri}"));
            assert_eq!(len, uri.len(), "{uri}");
        }
        for uri in [
            "mailto:@b.example",
            "mailto:a@b..example",
            "mailto:a%40b@c.example",
            "mailto:a@[192.0.2.1]",
            "https://u@h.example/x",
            "https://[2001:db8::1]/x",
            "http://h.example/",
        ] {
            let short = simple_uri(uri.as_bytes()).filter(|&(len, _)| len == uri.len());
            assert!(short.is_none(), "{uri}");
        }
    }

    #[test]
    fn columns_point_at_the_bad_uri() {
        let lint = TlsRptRecord::lint(b"v=TLSRPTv1; rua=mailto:a@example.com, mailto:x");
        let d = &lint.diagnostics[0];
        assert_eq!((d.code, d.column), ("rua-invalid-uri", 46));
    }
}
