//! Reading what the user gives: files, standard input, TXT records in zone-file form.

use std::io::{BufRead, Read};
use std::path::Path;

use anyhow::{Context, bail};

/// Largest input read into memory; far above any policy, so the linter can say how big it is.
const MAX_INPUT: u64 = 256 * 1024 * 1024;

/// Reads a file, or standard input for `-`; returns a display name and the bytes.
pub fn read_file(path: &Path) -> anyhow::Result<(String, Vec<u8>)> {
    let mut bytes = Vec::new();
    let name = if path == Path::new("-") {
        std::io::stdin()
            .take(MAX_INPUT + 1)
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
        "<stdin>".to_owned()
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_INPUT + 1).read_to_end(&mut bytes))
            .with_context(|| format!("cannot read {}", path.display()))?;
        path.display().to_string()
    };
    if bytes.len() as u64 > MAX_INPUT {
        bail!("{name} is larger than {} MiB", MAX_INPUT / 1024 / 1024);
    }
    Ok((name, bytes))
}

/// The record a user typed: as is; or, when it starts with `"`, zone-file character-strings
/// (`"v=STSv1; " "id=1"`) concatenated without spaces, as a resolver would hand them over; or
/// a whole zone-file line as `dns records` prints it (`_mta-sts.example.com. 3600 IN TXT "…"`).
pub fn record_text(raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    let raw = raw.trim_ascii();
    if raw.starts_with(b"\"") {
        return character_strings(raw);
    }
    if let Some(strings) = zone_line_strings(raw) {
        return character_strings(strings);
    }
    Ok(raw.to_vec())
}

/// The character-strings of a zone-file line `OWNER [TTL] [CLASS] TXT "…" …`, when `line` is
/// one.
fn zone_line_strings(line: &[u8]) -> Option<&[u8]> {
    let quote = line.iter().position(|&b| b == b'"')?;
    let head: Vec<&[u8]> = line[..quote]
        .split(u8::is_ascii_whitespace)
        .filter(|t| !t.is_empty())
        .collect();
    let (last, fields) = head.split_last()?;
    let is_txt = last.eq_ignore_ascii_case(b"TXT");
    // OWNER, then at most a TTL and a class, in either order.
    let known = |t: &&[u8]| t.iter().all(u8::is_ascii_digit) || t.eq_ignore_ascii_case(b"IN");
    (is_txt && (1..=3).contains(&fields.len()) && fields[1..].iter().all(known))
        .then_some(&line[quote..])
}

/// Zone-file character-strings, concatenated.
fn character_strings(raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    let arg = String::from_utf8_lossy(raw);
    let mut out = Vec::new();
    let mut chars = raw.iter().copied().peekable();
    loop {
        while chars.next_if(|b| b.is_ascii_whitespace()).is_some() {}
        match chars.next() {
            None => return Ok(out),
            Some(b'"') => {}
            Some(_) => bail!("expected '\"' between character-strings in {arg}"),
        }
        loop {
            match chars.next() {
                None => bail!("unterminated '\"' in {arg}"),
                Some(b'"') => break,
                Some(b'\\') => {
                    let digits: Vec<u8> = std::iter::from_fn(|| chars.next_if(u8::is_ascii_digit))
                        .take(3)
                        .collect();
                    if digits.is_empty() {
                        match chars.next() {
                            Some(b) => out.push(b),
                            None => bail!("dangling '\\' in {arg}"),
                        }
                    } else {
                        let value: u32 = std::str::from_utf8(&digits)
                            .ok()
                            .and_then(|d| d.parse().ok())
                            .unwrap_or(256);
                        let Ok(byte) = u8::try_from(value) else {
                            bail!(
                                "escape \\{} is not a byte in {arg}",
                                String::from_utf8_lossy(&digits)
                            );
                        };
                        out.push(byte);
                    }
                }
                Some(b) => out.push(b),
            }
        }
    }
}

/// Records given on standard input (`-`): one per non-empty line.
pub fn records_from_stdin() -> anyhow::Result<Vec<Vec<u8>>> {
    let (_, bytes) = read_file(Path::new("-"))?;
    bytes
        .split(|&b| b == b'\n')
        .filter(|line| !line.trim_ascii().is_empty())
        .map(record_text)
        .collect()
}

/// A TXT record value split into DNS character-strings of at most 255 bytes (at character
/// boundaries), as data: no quotes, no escapes.
pub fn character_string_values(value: &str) -> Vec<String> {
    let mut strings = Vec::new();
    let mut current = String::new();
    for c in value.chars() {
        if current.len() + c.len_utf8() > 255 {
            strings.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() || strings.is_empty() {
        strings.push(current);
    }
    strings
}

/// One character-string in zone-file form: quoted, with `"` and `\` escaped and bytes outside
/// printable ASCII written as `\DDD`.
pub fn zone_quote(string: &str) -> String {
    let mut s = String::with_capacity(string.len() + 2);
    s.push('"');
    for &b in string.as_bytes() {
        match b {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(b as char);
            }
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\{b:03}")),
        }
    }
    s.push('"');
    s
}

/// What [`read_line`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// The line is at most the cap long (else the buffer holds only its start).
    pub fits: bool,
    /// It ended in a line feed (the last line of a file may not).
    pub ended: bool,
    /// Bytes consumed from the input, line end included.
    pub consumed: u64,
}

/// Reads one line into `buf` without its line end (LF or CRLF), keeping at most `cap + 1`
/// bytes of it: a longer line is consumed to its end and not kept, so a file of one endless
/// line never fills memory. `None` at the end of the input.
pub fn read_line(
    input: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    cap: u64,
) -> std::io::Result<Option<Line>> {
    buf.clear();
    let mut consumed = input.take(cap + 1).read_until(b'\n', buf)? as u64;
    if consumed == 0 {
        return Ok(None);
    }
    let mut ended = buf.last() == Some(&b'\n');
    if !ended && consumed > cap {
        // Too long: skip to the end of the line.
        let mut rest = Vec::new();
        loop {
            rest.clear();
            let m = input.take(64 * 1024).read_until(b'\n', &mut rest)?;
            consumed += m as u64;
            if m == 0 || rest.last() == Some(&b'\n') {
                ended = m > 0;
                break;
            }
        }
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    Ok(Some(Line {
        fits: buf.len() as u64 <= cap,
        ended,
        consumed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_skipped_whole() {
        let long = "x".repeat(5000);
        let text = format!("a.example\r\n{long}\nb.example");
        let mut input: &[u8] = text.as_bytes();
        let mut buf = Vec::new();
        let line = |fits, ended, consumed| {
            Some(Line {
                fits,
                ended,
                consumed,
            })
        };
        assert_eq!(
            read_line(&mut input, &mut buf, 1024).unwrap(),
            line(true, true, 11)
        );
        assert_eq!(buf, b"a.example");
        assert_eq!(
            read_line(&mut input, &mut buf, 1024).unwrap(),
            line(false, true, 5001)
        );
        assert_eq!(
            read_line(&mut input, &mut buf, 1024).unwrap(),
            line(true, false, 9)
        );
        assert_eq!(buf, b"b.example");
        assert_eq!(read_line(&mut input, &mut buf, 1024).unwrap(), None);
    }

    #[test]
    fn zone_form_concatenates_without_spaces() {
        assert_eq!(
            record_text(br#""v=STSv1; " "id=1""#).unwrap(),
            b"v=STSv1; id=1"
        );
        assert_eq!(record_text(br#""a\"b\\c\059""#).unwrap(), b"a\"b\\c;");
        assert_eq!(record_text(b"v=STSv1; id=1").unwrap(), b"v=STSv1; id=1");
        assert!(record_text(br#""open"#).is_err());
    }

    #[test]
    fn long_values_are_split_into_255_byte_strings() {
        let value = "x".repeat(300);
        let strings = character_string_values(&value);
        assert_eq!(strings.len(), 2);
        assert_eq!(strings[0].len(), 255);
        let joined: Vec<String> = strings.iter().map(|s| zone_quote(s)).collect();
        assert_eq!(
            record_text(joined.join(" ").as_bytes()).unwrap(),
            value.as_bytes()
        );
    }

    #[test]
    fn a_whole_zone_line_is_read_as_its_strings() {
        for line in [
            r#"_mta-sts.example.com. 3600 IN TXT "v=STSv1; id=1""#,
            r#"_mta-sts.example.com. IN 3600 TXT "v=STSv1; " "id=1""#,
            r#"_mta-sts TXT "v=STSv1; id=1""#,
            "  _mta-sts.example.com. 300 in txt \"v=STSv1; id=1\"\n",
        ] {
            assert_eq!(
                record_text(line.as_bytes()).unwrap(),
                b"v=STSv1; id=1",
                "{line}"
            );
        }
        // Not a zone line: the text is the record, and the linter says what is wrong.
        let odd = r#"v=STSv1; id=1 TXT "x""#;
        assert_eq!(record_text(odd.as_bytes()).unwrap(), odd.as_bytes());
    }
}
