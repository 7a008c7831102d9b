//! TLS-RPT for a sending MTA (RFC 8460): read the MTA's per-delivery TLS results (libtlsrpt
//! datagrams), aggregate them per UTC day, build the daily reports and deliver them.
//!
//! - [`Datagram::parse`]: one libtlsrpt datagram → [`Datagram`] or a typed [`DatagramError`].
//! - [`collect_socket`] / [`collect_lines`]: the collector. A thread receives and aggregates
//!   in memory ([`Aggregator`]); every [`CollectorOptions::flush_interval`] the interval is
//!   committed to the store (idempotently, through its group commit). The day a datagram is
//!   filed under comes from a [`Clock`], which tests inject.
//! - [`build_day`]: one RFC 8460 report per (UTC day, policy domain, TLSRPT record), written by
//!   the `tlsrpt` crate's strict writer, stored with a pending delivery per `rua` URI.
//! - [`deliver_due`]: `mailto:` as a [`report_mail`] through an SMTP relay (STARTTLS required),
//!   `https:` as a POST of `application/tlsrpt+gzip`; retries with [`backoff`] for
//!   [`RETRY_FOR`], a size limit and a suppression list ([`DeliveryOptions`]); mails
//!   DKIM-signed by a [`ReportSigner`] when one is configured (RFC 8460 §3).

mod collect;
mod daily;
mod datagram;
mod deliver;
mod dkim;
mod mail;

pub use collect::{
    Aggregator, Clock, CollectError, CollectorOptions, CollectorStats, DRAIN_NICE, DrainPriority,
    RECOMMENDED_DATAGRAM_QUEUE, SystemClock, bind_socket, collect_lines, collect_socket,
    datagram_queue_limit, raise_drain_priority, receive_buffer_size,
};
pub use daily::{Reporter, build_day, build_report, gzip, report_file_name, report_id};
pub use datagram::{
    Datagram, DatagramError, DatagramPolicy, MAX_DATAGRAM_SIZE, MAX_ENTRIES, policy_type_of_code,
    result_type_of_code,
};
pub use deliver::{
    DeliveryOptions, DeliveryRun, HttpsPost, RETRY_FOR, SendError, SmtpRelay, backoff, deliver_due,
    https_post, is_suppressed, mailto_address, relay_mail,
};
pub use dkim::{DkimError, ReportSigner};
pub use mail::{header_text, report_mail, rfc5322_date};
