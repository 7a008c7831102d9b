//! TLS report (RFC 8460 §4) reader.
