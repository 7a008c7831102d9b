//! Report bodies as they arrive: gzip or plain JSON, whatever the declared type said.

use std::borrow::Cow;
use std::io::Read;

use flate2::read::MultiGzDecoder;

use super::{ReadReport, Report, ReportError};

/// A generous cap on a report's JSON size once decompressed. The largest real daily reports are
/// well under 1 MiB, and gzip can inflate a small body a thousandfold.
pub const DEFAULT_MAX_DECOMPRESSED: usize = 10 * 1024 * 1024;

/// Every gzip member starts with these bytes (RFC 1952 §2.3.1).
pub(super) const GZIP_MAGIC: &[u8] = b"\x1f\x8b";

/// The JSON bytes of a report body: gunzipped when it starts with the gzip magic bytes, else
/// the body itself. Senders label gzip as `application/tlsrpt+json` and JSON as
/// `application/tlsrpt+gzip`, so the bytes decide, not the label.
///
/// # Errors
///
/// [`ReportError::Gzip`] when the body starts as gzip but does not decompress;
/// [`ReportError::TooLarge`] when the JSON is longer than `max_len` bytes (checked while
/// decompressing, so a gzip bomb stops at `max_len`).
pub fn decompress(body: &[u8], max_len: usize) -> Result<Cow<'_, [u8]>, ReportError> {
    if !body.starts_with(GZIP_MAGIC) {
        return if body.len() > max_len {
            Err(ReportError::TooLarge { limit: max_len })
        } else {
            Ok(Cow::Borrowed(body))
        };
    }
    read_capped(MultiGzDecoder::new(body), max_len, |reason| {
        ReportError::Gzip { reason }
    })
    .map(Cow::Owned)
}

/// Reads a decompressor to its end, but never more than `max_len` bytes, whatever the
/// compressed data declares: [`ReportError::TooLarge`] past it, `error(reason)` when the data
/// is broken.
pub(crate) fn read_capped(
    reader: impl Read,
    max_len: usize,
    error: impl FnOnce(String) -> ReportError,
) -> Result<Vec<u8>, ReportError> {
    // Read one byte past the limit to tell "exactly at the limit" from "over it".
    let read_limit = u64::try_from(max_len).unwrap_or(u64::MAX).saturating_add(1);
    let mut bytes = Vec::new();
    reader
        .take(read_limit)
        .read_to_end(&mut bytes)
        .map_err(|e| error(e.to_string()))?;
    if bytes.len() > max_len {
        return Err(ReportError::TooLarge { limit: max_len });
    }
    Ok(bytes)
}

/// Reads a report body as it arrived by HTTPS or as a mail attachment: [`decompress`], then
/// [`Report::from_json`].
///
/// # Errors
///
/// Those of [`decompress`] and [`Report::from_json`].
pub fn decode(body: &[u8], max_len: usize) -> Result<ReadReport, ReportError> {
    Report::from_json(&decompress(body, max_len)?)
}
