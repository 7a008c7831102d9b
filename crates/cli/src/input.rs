//! Reading what the user gives: files, standard input, TXT records in zone-file form.

use std::io::Read;
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

/// The record a user typed: as is, or, when it starts with `"`, zone-file character-strings
/// (`"v=STSv1; " "id=1"`) concatenated without spaces, as a resolver would hand them over.
pub fn record_text(raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    if !raw.trim_ascii_start().starts_with(b"\"") {
        return Ok(raw.to_vec());
    }
    let arg = String::from_utf8_lossy(raw);
    let mut out = Vec::new();
    let mut chars = raw.trim_ascii().iter().copied().peekable();
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

/// A TXT record value in zone-file form: quoted character-strings of at most 255 bytes, with
/// `"` and `\` escaped.
pub fn zone_strings(value: &str) -> Vec<String> {
    value
        .as_bytes()
        .chunks(255)
        .map(|chunk| {
            let mut s = String::with_capacity(chunk.len() + 2);
            s.push('"');
            for &b in chunk {
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
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let strings = zone_strings(&value);
        assert_eq!(strings.len(), 2);
        assert_eq!(strings[0].len(), 257);
        let joined = strings.join(" ");
        assert_eq!(record_text(joined.as_bytes()).unwrap(), value.as_bytes());
    }
}
