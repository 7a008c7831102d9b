//! Netstrings (`<length>:<bytes>,`), the framing of Postfix's socketmap protocol.
//!
//! The reader works on whatever bytes have arrived so far: it returns a complete request, asks
//! for more, or rejects the input. Lengths are capped before any byte of the payload is
//! buffered, so a peer cannot make the server hold more than [`MAX_REQUEST_LEN`] per request.

use std::fmt;

/// The longest request payload accepted, in bytes. Postfix sends `<map-name> <key>`, and a
/// domain name is at most 253 bytes; the reference daemon's limit is 1024 too.
pub const MAX_REQUEST_LEN: usize = 1024;

/// At most this many length digits: enough for any length up to [`MAX_REQUEST_LEN`] with
/// leading zeros to spare, few enough that the number cannot overflow.
const MAX_LENGTH_DIGITS: usize = 9;

/// Why the bytes on a connection are not a netstring. Every one closes that connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetstringError {
    /// A byte other than a digit or `:` in the length.
    BadLength,
    /// The length is larger than the limit.
    TooLong {
        /// The length announced (or the part of it read so far).
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// The payload is not followed by `,`.
    BadTerminator,
}

impl fmt::Display for NetstringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadLength => f.write_str("netstring length is not digits followed by ':'"),
            Self::TooLong { length, limit } => {
                write!(
                    f,
                    "netstring length {length} is over the limit of {limit} bytes"
                )
            }
            Self::BadTerminator => f.write_str("netstring payload is not followed by ','"),
        }
    }
}

impl std::error::Error for NetstringError {}

/// One complete netstring at the front of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Where the payload is in the buffer.
    pub payload: std::ops::Range<usize>,
    /// How many bytes of the buffer the netstring takes, terminator included.
    pub consumed: usize,
}

/// Reads the netstring at the start of `buf`: `Ok(Some(frame))` when it is complete,
/// `Ok(None)` when more bytes are needed, and an error as soon as the bytes cannot start a
/// netstring of at most `limit` bytes.
pub fn read_frame(buf: &[u8], limit: usize) -> Result<Option<Frame>, NetstringError> {
    let mut length: usize = 0;
    let mut digits = 0;
    for (i, &byte) in buf.iter().enumerate() {
        match byte {
            b'0'..=b'9' => {
                digits += 1;
                if digits > MAX_LENGTH_DIGITS {
                    return Err(NetstringError::TooLong { length, limit });
                }
                length = length * 10 + usize::from(byte - b'0');
                if length > limit {
                    return Err(NetstringError::TooLong { length, limit });
                }
            }
            b':' if digits > 0 => {
                let start = i + 1;
                let end = start + length;
                return match buf.get(end) {
                    None => Ok(None),
                    Some(b',') => Ok(Some(Frame {
                        payload: start..end,
                        consumed: end + 1,
                    })),
                    Some(_) => Err(NetstringError::BadTerminator),
                };
            }
            _ => return Err(NetstringError::BadLength),
        }
    }
    Ok(None)
}

/// Appends `payload` as a netstring to `out`.
pub fn write_frame(payload: &[u8], out: &mut Vec<u8>) {
    use std::io::Write as _;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{}:", payload.len());
    out.extend_from_slice(payload);
    out.push(b',');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(buf: &[u8]) -> Option<&[u8]> {
        let frame = read_frame(buf, MAX_REQUEST_LEN).unwrap()?;
        Some(&buf[frame.payload])
    }

    #[test]
    fn complete_netstring_is_read() {
        assert_eq!(payload(b"12:hello world!,"), Some(&b"hello world!"[..]));
        assert_eq!(payload(b"0:,"), Some(&b""[..]));
    }

    #[test]
    fn pipelined_netstrings_are_read_one_at_a_time() {
        let buf = b"3:abc,2:de,";
        let first = read_frame(buf, 10).unwrap().unwrap();
        assert_eq!(first.consumed, 6);
        let second = read_frame(&buf[first.consumed..], 10).unwrap().unwrap();
        assert_eq!(&buf[first.consumed..][second.payload], b"de");
    }

    #[test]
    fn partial_netstring_asks_for_more() {
        for end in 0..b"5:hello,".len() {
            assert_eq!(read_frame(&b"5:hello,"[..end], 10), Ok(None), "{end}");
        }
    }

    #[test]
    fn length_over_the_limit_is_rejected_before_the_payload() {
        assert_eq!(
            read_frame(b"1025:", MAX_REQUEST_LEN),
            Err(NetstringError::TooLong {
                length: 1025,
                limit: MAX_REQUEST_LEN
            })
        );
        assert!(read_frame(b"0000000000001:", MAX_REQUEST_LEN).is_err());
    }

    #[test]
    fn malformed_netstrings_are_rejected() {
        assert_eq!(read_frame(b":abc,", 10), Err(NetstringError::BadLength));
        assert_eq!(read_frame(b"3x", 10), Err(NetstringError::BadLength));
        assert_eq!(read_frame(b" 3:abc,", 10), Err(NetstringError::BadLength));
        assert_eq!(
            read_frame(b"3:abcd", 10),
            Err(NetstringError::BadTerminator)
        );
    }

    #[test]
    fn written_netstring_reads_back() {
        let mut out = Vec::new();
        write_frame(b"NOTFOUND ", &mut out);
        assert_eq!(out, b"9:NOTFOUND ,");
        assert_eq!(payload(&out), Some(&b"NOTFOUND "[..]));
    }
}
