//! Entry points for the fuzz targets in `fuzz/`: the readers of bytes a peer sends, run over
//! an in-memory stream exactly as they run over a socket. Not for other uses.

use futures_util::FutureExt;

use crate::fetch::{FetchError, ResponseReader};
use crate::smtp::{Session, SmtpReply};

/// Reads SMTP replies from `bytes` until one fails to read; returns those read and whether
/// reading stopped on garbage (rather than at the end of the bytes).
pub fn smtp_replies(bytes: &[u8]) -> (Vec<SmtpReply>, bool) {
    let stream = tokio::io::join(bytes, tokio::io::sink());
    let mut session = Session::new(stream, std::time::Duration::from_secs(1));
    let mut replies = Vec::new();
    loop {
        // An in-memory stream never waits, so the future is ready when first polled.
        match session.read_reply_unbounded().now_or_never() {
            Some(Ok(reply)) => replies.push(reply),
            Some(Err(crate::smtp::ReplyError::Closed)) => return (replies, false),
            Some(Err(_)) | None => return (replies, true),
        }
    }
}

/// Reads an HTTP/1.1 response (interim responses, head, body framed by `Content-Length`,
/// chunks or the end of the bytes) as a policy fetch does; returns the status and the body.
pub fn http_response(bytes: &[u8]) -> Result<(u16, Vec<u8>), FetchError> {
    let read = async {
        let mut reader = ResponseReader::new(bytes);
        let head = reader.read_final_head().await?;
        let body = reader.read_body(&head).await?;
        Ok((head.status, body))
    };
    read.now_or_never().unwrap_or_else(|| {
        Err(FetchError::Http {
            detail: "the reader waited on an in-memory stream".to_owned(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_until_the_end() {
        let (replies, garbage) = smtp_replies(b"220 hi\r\n250-a\r\n250 STARTTLS\r\n");
        assert_eq!(replies.len(), 2);
        assert_eq!(replies[1].lines, ["a", "STARTTLS"]);
        assert!(!garbage);
        assert!(smtp_replies(b"220 hi\r\nxyz\r\n").1);
    }

    #[test]
    fn a_response_is_read_whole() {
        let (status, body) =
            http_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));
        assert!(http_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok").is_err());
    }
}
