//! The daily reports: what was collected for a UTC day → one RFC 8460 report per (policy domain,
//! TLSRPT record), stored with one pending delivery per `rua` destination.

use std::io::Write as _;

use flate2::Compression;
use flate2::write::GzEncoder;
use mta_sts_store::{CollectedReport, NewOutgoingReport, OutgoingReport, Store, StoreError};
use mta_sts_tlsrpt::TlsRptRecord;
use mta_sts_tlsrpt::report::{ReportBuilder, UtcDay};
use sha2::{Digest, Sha256};

/// Who sends the reports: written into every report and report mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reporter {
    /// `organization-name`.
    pub organization_name: String,
    /// `contact-info`: an address or URI where the organization can be reached.
    pub contact_info: String,
    /// The submitter's domain: the `TLS-Report-Submitter` header, the first part of report
    /// file names, and the domain of report-ids.
    pub submitter: String,
}

impl Reporter {
    /// A reporter named `organization_name`, reached at `contact_info`; the submitter domain is
    /// the contact address's domain (`tlsrpt@sender.example` → `sender.example`), or
    /// `localhost` when it has none.
    pub fn new(organization_name: impl Into<String>, contact_info: impl Into<String>) -> Self {
        let contact_info = contact_info.into();
        let submitter = contact_info
            .rsplit_once('@')
            .map(|(_, domain)| domain.trim_end_matches('>').to_ascii_lowercase())
            .filter(|domain| !domain.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        Self {
            organization_name: organization_name.into(),
            contact_info,
            submitter,
        }
    }
}

/// A built report's `report-id`: unique per submitter, day, domain and TLSRPT record (a domain
/// whose record changed during the day gets two reports).
pub fn report_id(reporter: &Reporter, day: UtcDay, domain: &str, tlsrpt_record: &str) -> String {
    let digest = Sha256::digest(tlsrpt_record.as_bytes());
    let short: String = digest
        .iter()
        .take(4)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("{day}_{domain}_{short}@{}", reporter.submitter)
}

/// The report file name of RFC 8460 §5.1: `sender!policy-domain!begin!end!unique-id.json.gz`,
/// the timestamps in seconds since the epoch.
pub fn report_file_name(reporter: &Reporter, report: &OutgoingReport) -> String {
    let range = report.scope.day.date_range();
    let unique: String = report
        .report_id
        .split('@')
        .next()
        .unwrap_or_default()
        .rsplit('_')
        .next()
        .unwrap_or_default()
        .to_owned();
    format!(
        "{}!{}!{}!{}!{unique}.json.gz",
        reporter.submitter,
        report.scope.domain,
        range.start.unix_seconds(),
        range.end.unix_seconds()
    )
}

/// Builds the reports of `day` from what was collected, and stores each with a pending
/// delivery per destination of its TLSRPT record, due at `due_at`. Idempotent: a report built
/// before is kept as it was. Returns every report of the day.
///
/// # Errors
///
/// When the store cannot be read or written.
pub async fn build_day(
    store: &Store,
    day: UtcDay,
    reporter: &Reporter,
    due_at: i64,
) -> Result<Vec<OutgoingReport>, StoreError> {
    for collected in store.collected_reports(day).await? {
        store
            .add_outgoing_report(build_report(reporter, &collected), due_at)
            .await?;
    }
    store.outgoing_reports(day).await
}

/// One collected report as RFC 8460 JSON with its destinations. A TLSRPT record that does not
/// parse gives a report with no destination: it is kept, and `status` shows it goes nowhere.
pub fn build_report(reporter: &Reporter, collected: &CollectedReport) -> NewOutgoingReport {
    let scope = &collected.scope;
    let report_id = report_id(reporter, scope.day, &scope.domain, &scope.tlsrpt_record);
    let mut builder = ReportBuilder::new(
        reporter.organization_name.as_str(),
        report_id.as_str(),
        scope.day.date_range(),
    )
    .contact_info(reporter.contact_info.as_str());
    for entry in &collected.policies {
        builder.add_sessions(&entry.policy, entry.successful, entry.failed);
        for failure in &entry.failures {
            builder.add_failure(&entry.policy, failure.clone());
        }
    }
    let destinations = TlsRptRecord::parse(scope.tlsrpt_record.as_bytes())
        .map(|record| {
            record
                .rua
                .iter()
                .map(|uri| uri.as_str().to_owned())
                .collect()
        })
        .unwrap_or_default();
    NewOutgoingReport {
        scope: scope.clone(),
        report_id,
        json: builder.build().to_json().into_bytes(),
        destinations,
    }
}

/// The report JSON gzipped, as both delivery methods send it (RFC 8460 §5.2).
pub fn gzip(json: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(json.len() / 4 + 64),
        Compression::default(),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(json);
    encoder.finish().unwrap_or_default()
}
