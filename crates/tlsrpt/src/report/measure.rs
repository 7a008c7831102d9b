//! What reading a body will cost in memory, found before anything is allocated for it.
//!
//! The reader takes each member of a report as it is parsed, never a tree of the whole
//! document, but what it returns still grows with the number of values read (an entry's
//! structure is larger than its shortest JSON), so the bound is still the one of a JSON tree,
//! which costs far more than its text: `[0,0,…]` would take 32 bytes per 2-byte value,
//! `[{"a":0},…]` a B-tree node of about 640 bytes per 8-byte object. [`measure`] scans a body
//! (decompressing it as a stream, into nothing) and bounds what reading it will take;
//! [`Report::from_json`](super::Report::from_json) refuses a document over [`MAX_TREE_BYTES`]
//! before reading it.

use std::io::Read;

use flate2::read::MultiGzDecoder;

use super::ReportError;
use super::decode::GZIP_MAGIC;

/// The most memory the reader spends on one report's JSON tree, as [`tree_bytes`] bounds it.
/// Real daily reports, even with thousands of failure details, stay under a tenth of it.
pub const MAX_TREE_BYTES: usize = 64 * 1024 * 1024;

/// Bytes a JSON value may take in the tree, counting the slack of a growing array.
const BYTES_PER_VALUE: usize = 64;
/// Bytes of the first B-tree node of a JSON object with members.
const BYTES_PER_OBJECT: usize = 640;

/// What reading one body costs, found by [`measure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyCost {
    /// Length of the JSON once decompressed.
    pub json_len: usize,
    /// Upper bound of the JSON tree's memory (see [`MAX_TREE_BYTES`]).
    pub tree_bytes: usize,
}

impl BodyCost {
    /// Upper bound of the memory reading the body takes besides the body itself: the
    /// decompressed JSON (with the slack of a growing buffer) and the tree, unless the tree is
    /// over [`MAX_TREE_BYTES`] (then the reader refuses the report before building it).
    pub fn reading_bytes(&self) -> usize {
        let tree = if self.tree_bytes > MAX_TREE_BYTES {
            0
        } else {
            self.tree_bytes
        };
        self.json_len.saturating_mul(2).saturating_add(tree)
    }
}

/// Scans `body` (gunzipped as a stream when it starts with the gzip magic, whatever the label,
/// as [`decode`](super::decode) does) and bounds what reading it costs. Nothing proportional to
/// the body is allocated, so it is safe to run before deciding whether to read a body at all.
///
/// # Errors
///
/// [`ReportError::Gzip`] when the gzip stream is broken; [`ReportError::TooLarge`] when the
/// JSON is longer than `max_len`.
pub fn measure(body: &[u8], max_len: usize) -> Result<BodyCost, ReportError> {
    if !body.starts_with(GZIP_MAGIC) {
        if body.len() > max_len {
            return Err(ReportError::TooLarge { limit: max_len });
        }
        return Ok(BodyCost {
            json_len: body.len(),
            tree_bytes: tree_bytes(body),
        });
    }
    let mut decoder = MultiGzDecoder::new(body);
    let mut counter = TreeCounter::default();
    let mut chunk = vec![0; 64 * 1024];
    let mut json_len: usize = 0;
    loop {
        let read = decoder
            .read(&mut chunk)
            .map_err(|error| ReportError::Gzip {
                reason: error.to_string(),
            })?;
        let Some(read_bytes) = chunk.get(..read) else {
            break;
        };
        if read_bytes.is_empty() {
            break;
        }
        json_len = json_len.saturating_add(read);
        if json_len > max_len {
            return Err(ReportError::TooLarge { limit: max_len });
        }
        counter.feed(read_bytes);
    }
    Ok(BodyCost {
        json_len,
        tree_bytes: counter.bytes(json_len),
    })
}

/// Upper bound of the memory a JSON tree of `json` takes: every value and member name at
/// [`BYTES_PER_VALUE`], every object a B-tree node more, and the text of every string.
pub fn tree_bytes(json: &[u8]) -> usize {
    let mut counter = TreeCounter::default();
    counter.feed(json);
    counter.bytes(json.len())
}

/// Counts the values of a JSON text fed in pieces: outside strings, every `,` and `:` starts a
/// value or a member name, and every `[` or `{` opens one.
#[derive(Default)]
struct TreeCounter {
    in_string: bool,
    escaped: bool,
    values: usize,
    objects: usize,
}

impl TreeCounter {
    fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if byte == b'\\' {
                    self.escaped = true;
                } else if byte == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match byte {
                b'"' => self.in_string = true,
                b',' | b':' | b'[' => self.values += 1,
                b'{' => {
                    self.values += 1;
                    self.objects += 1;
                }
                _ => {}
            }
        }
    }

    fn bytes(&self, json_len: usize) -> usize {
        self.values
            .saturating_add(1)
            .saturating_mul(BYTES_PER_VALUE)
            .saturating_add(self.objects.saturating_mul(BYTES_PER_OBJECT))
            .saturating_add(json_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_inside_strings_do_not_count() {
        assert_eq!(tree_bytes(br#""a,b:[{""#), tree_bytes(br#""abcdef""#));
        assert_eq!(tree_bytes(br#""\",{""#), tree_bytes(br#""xxxx""#));
    }

    #[test]
    fn objects_cost_a_node_each() {
        let flat = tree_bytes(b"[0,0,0,0]");
        let objects = tree_bytes(br#"[{"a":0},{"a":0}]"#);
        // One value for the array, one per comma, one for the document itself.
        assert_eq!(flat, (1 + 3 + 1) * BYTES_PER_VALUE + 9);
        assert_eq!(
            objects,
            (1 + 1 + 2 + 2 + 1) * BYTES_PER_VALUE + 2 * BYTES_PER_OBJECT + 17
        );
    }
}
