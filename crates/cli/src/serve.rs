//! `mta-sts serve` (policy hosting and report intake into the store) and `mta-sts reports`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use async_trait::async_trait;
use mta_sts_server::{
    CertFiles, Config, IncomingReport, IngestOutcome, QuickTls, ReportSink, SinkError,
};
use mta_sts_store::{Ingested, Location, ReportFilter, ReportKey, Source, Store, StoreOptions};

use crate::Outcome;
use crate::alerts::{AlertingSink, Alerts};
use crate::args::{ReportsListArgs, ReportsShowArgs, ServeArgs, StoreArgs};
use crate::render::{Style, clean};

/// The store as the intake's sink: the raw bytes commit (in a group commit) before the answer.
struct StoreSink(Arc<Store>);

#[async_trait]
impl ReportSink for StoreSink {
    async fn ingest(&self, report: IncomingReport) -> Result<IngestOutcome, SinkError> {
        let content_type = report.content_type.as_deref().unwrap_or("");
        // The intake has read the body (to log and screen it): the store takes what it read.
        let ingested = match report.read {
            Some(read) => {
                self.0
                    .ingest_read(Source::Https, content_type, &report.body, read)
                    .await
            }
            None => {
                self.0
                    .ingest(Source::Https, content_type, &report.body)
                    .await
            }
        };
        if let Ok(Ingested::Conflict { report: key, .. }) = &ingested {
            // The intake logs the report itself; a conflict is worth a line of its own.
            tracing::warn!(
                report = key.0,
                "report differs from a stored report with the same identity (one may be forged; see `mta-sts reports show`)"
            );
        }
        match ingested {
            // A different body with a stored identity is new to the store: kept and flagged.
            Ok(Ingested::Stored { .. } | Ingested::Conflict { .. }) => Ok(IngestOutcome::Stored),
            Ok(Ingested::Duplicate { .. }) => Ok(IngestOutcome::Duplicate),
            Ok(Ingested::Quarantined { reason, .. }) => Ok(IngestOutcome::Quarantined { reason }),
            Ok(Ingested::TooLarge { limit, .. }) => Ok(IngestOutcome::TooLarge { limit }),
            Err(e) => Err(SinkError::new(e.to_string())),
        }
    }
}

/// The platform's data directory for the store: systemd's `StateDirectory=` when run as a
/// service (dist/systemd), else /var/lib/mta-sts for root and the XDG data directory for users.
fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
        // Several directories are separated by ':'; the unit names one.
        let first = dir.to_string_lossy().split(':').next().map(PathBuf::from);
        if let Some(first) = first {
            return first;
        }
    }
    let root = std::env::var_os("USER").is_some_and(|u| u == "root")
        || std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false);
    if root {
        return PathBuf::from("/var/lib/mta-sts");
    }
    match (std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME")) {
        (Some(xdg), _) if !xdg.is_empty() => PathBuf::from(xdg).join("mta-sts"),
        (_, Some(home)) => PathBuf::from(home).join(".local/share/mta-sts"),
        _ => PathBuf::from("mta-sts-data"),
    }
}

/// Flags first, then the config file's `[storage]`, then the platform default.
///
/// # Errors
/// A database URL that is not PostgreSQL's (`mysql://…` would otherwise name a directory).
pub(crate) fn location(args: &StoreArgs, config: Option<&Config>) -> anyhow::Result<Location> {
    let storage = config.map(|c| &c.storage);
    if let Some(url) = &args.database {
        database(url, "--database")
    } else if let Some(dir) = &args.data_dir {
        Ok(Location::DataDirectory(dir.clone()))
    } else if let Some(url) = storage.and_then(|s| s.database.as_ref()) {
        database(url, "storage.database")
    } else if let Some(dir) = storage.and_then(|s| s.data_dir.as_ref()) {
        Ok(Location::DataDirectory(dir.clone()))
    } else {
        Ok(Location::DataDirectory(default_data_dir()))
    }
}

/// A database URL: PostgreSQL is the only database server supported.
pub(crate) fn database(url: &str, from: &str) -> anyhow::Result<Location> {
    match Location::parse(url) {
        location @ Location::Postgres(_) => Ok(location),
        _ => bail!(
            "{from} {}: only postgres:// (or postgresql://) URLs are supported; for SQLite give a data directory (--data-dir DIR, or storage.data_dir)",
            clean(&mta_sts_store::redact_password(url))
        ),
    }
}

/// The config from `--config`, or from the quick-form flags.
fn config(args: &ServeArgs) -> anyhow::Result<Config> {
    if let Some(path) = &args.config {
        return Ok(Config::load(path)?);
    }
    if args.domain.is_empty() {
        bail!("give --config FILE, or at least one --domain D --policy FILE");
    }
    if args.domain.len() != args.policy.len() {
        bail!(
            "{} --domain but {} --policy: give one policy file per domain, in the same order",
            args.domain.len(),
            args.policy.len()
        );
    }
    let tls = match (&args.cert, &args.key, &args.acme_email) {
        (Some(cert), Some(key), _) => QuickTls::Files(CertFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (_, _, Some(email)) => QuickTls::Acme {
            email: email.clone(),
        },
        _ if args.plain_http => QuickTls::PlainHttp,
        _ => bail!("choose how to serve: --cert PEM --key PEM, --acme-email ADDR, or --plain-http"),
    };
    let listen = if args.listen.is_empty() {
        let default = if args.plain_http {
            "127.0.0.1:8080"
        } else {
            "0.0.0.0:443"
        };
        vec![default.parse().context("default listen address")?]
    } else {
        args.listen.clone()
    };
    let domains = args
        .domain
        .iter()
        .cloned()
        .zip(args.policy.iter().cloned())
        .collect();
    let mut config = Config::from_quick(listen, domains, tls)?;
    if let Some(dir) = &args.store.data_dir {
        config.storage.data_dir = Some(dir.clone());
    }
    Ok(config)
}

/// Every configured domain's certificate must name `mta-sts.<domain>`, or senders refuse it
/// (RFC 8461 §3.3): refused at start-up with the names it has, or, when allowed, warned about.
fn check_certificate_names(config: &Config, allow_mismatch: bool) -> anyhow::Result<()> {
    let mismatches = config.certificate_mismatches();
    for m in &mismatches {
        let message = format!(
            "the certificate {} does not name {} (it names: {})",
            m.cert.display(),
            m.host,
            if m.names.is_empty() {
                "nothing".to_owned()
            } else {
                m.names.join(", ")
            }
        );
        if !allow_mismatch {
            bail!(
                "{}; senders would refuse it. Use a certificate for {}, or --allow-mismatched-certs to serve anyway",
                clean(&message),
                m.host
            );
        }
        tracing::warn!(
            "{}; serving anyway (--allow-mismatched-certs)",
            clean(&message)
        );
    }
    Ok(())
}

/// `serve`.
pub fn serve(args: &ServeArgs) -> anyhow::Result<Outcome> {
    crate::init_logging_as(args.log_format);
    let config = config(args)?;
    check_certificate_names(&config, args.allow_mismatched_certs)?;
    let location = location(&args.store, Some(&config))?;
    if config.storage.data_dir.is_none() {
        // ACME keeps its account and certificates next to the store.
        if let Location::DataDirectory(dir) = &location {
            let mut config = config.clone();
            config.storage.data_dir = Some(dir.clone());
            return run_server(config, location);
        }
    }
    run_server(config, location)
}

fn run_server(config: Config, location: Location) -> anyhow::Result<Outcome> {
    crate::runtime()?.block_on(async move {
        let options = StoreOptions {
            max_report_size: config.intake.max_decompressed,
            ..StoreOptions::default()
        };
        let store = Store::open_with(&location, options)
            .await
            .map_err(|error| open_error(&location, &error))?;
        tracing::info!("reports are stored in {location}");
        let store = Arc::new(store);
        let sink: Arc<dyn ReportSink> = Arc::new(StoreSink(Arc::clone(&store)));
        let (alerts, sink) = start_alerts(&config, &store, sink)?;
        if config.dashboard.enabled() {
            tracing::info!(
                users = config.dashboard.users.len(),
                tokens = config.dashboard.tokens.len(),
                "dashboard, /api/v1/ and /metrics served at / (login needed)"
            );
        } else {
            tracing::info!(
                "dashboard off: to see the reports in a browser, add a [[dashboard.user]] with a \
                 password_hash from `mta-sts passwd` to the config file (see the README)"
            );
        }
        for mailbox in &config.mailboxes {
            let watch = crate::ingest_cmd::watch_mailbox(Arc::clone(&store), mailbox)?;
            tokio::spawn(watch);
        }
        if crate::serve_checks::ScheduledChecks::start(&location, &config, alerts.clone())? {
            tracing::info!(
                domains = config.domains().len(),
                interval_seconds = config.checks.interval.as_secs(),
                "scheduled checks on ([checks] in the config file)"
            );
        }
        let dashboard = Arc::new(crate::dashboard_data::StoreDashboard(store));
        start_report_alerts(&config, &alerts, &dashboard);
        let served = mta_sts_server::serve_with_dashboard(
            config,
            sink,
            Some(dashboard),
            mta_sts_server::shutdown_signal(),
        )
        .await;
        // A check under way ends with the process: it runs again after the next start.
        served.context("server failed")?;
        anyhow::Ok(Outcome::Ok)
    })
}

/// The alert engine over `store` with its delivery task, and a sink that tells it when reports
/// arrive.
fn start_alerts(
    config: &Config,
    store: &Arc<Store>,
    sink: Arc<dyn ReportSink>,
) -> anyhow::Result<(Alerts, Arc<dyn ReportSink>)> {
    let alerts = Alerts::new(Arc::clone(store), &config.alerts)?;
    alerts.spawn_delivery();
    let sink = Arc::new(AlertingSink {
        sink,
        alerts: alerts.clone(),
    });
    Ok((alerts, sink))
}

/// The report-derived alerts of every configured domain, evaluated periodically and after
/// reports arrive.
fn start_report_alerts(
    config: &Config,
    alerts: &Alerts,
    dashboard: &Arc<crate::dashboard_data::StoreDashboard>,
) {
    let domains = config
        .domains()
        .iter()
        .map(|d| d.name().to_owned())
        .collect();
    crate::alerts::reports::spawn(
        alerts.clone(),
        Arc::clone(dashboard) as Arc<dyn mta_sts_server::DashboardData>,
        domains,
        crate::alerts::reports::Rules::from_config(&config.alerts),
        config.alerts.evaluate_interval,
    );
}

pub(crate) async fn open_store(args: &StoreArgs) -> anyhow::Result<Store> {
    let location = location(args, None)?;
    if let Location::DataDirectory(dir) = &location
        && !dir.join(mta_sts_store::SQLITE_FILE_NAME).exists()
    {
        bail!(
            "no store at {} (reports arrive with `mta-sts serve`; use --data-dir or --database)",
            dir.display()
        );
    }
    Store::open(&location)
        .await
        .map_err(|error| open_error(&location, &error))
}

/// Why the store at `location` could not be opened, said once. A failed connection names
/// the database and repeats the driver's message at every level of its chain: only the
/// innermost cause is kept then, with what to check.
fn open_error(location: &Location, error: &mta_sts_store::StoreError) -> anyhow::Error {
    let mta_sts_store::StoreError::Connect { source, .. } = error else {
        return anyhow::anyhow!(
            "cannot open the store at {location}: {}",
            clean(&error.to_string())
        );
    };
    let mut cause: &dyn std::error::Error = source;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let hint = if matches!(location, Location::Postgres(_)) {
        "; is PostgreSQL running there, and are host, port, user, password and database right?"
    } else {
        ""
    };
    anyhow::anyhow!(
        "cannot open the store at {location}: {}{hint}",
        clean(&cause.to_string())
    )
}

/// `reports list`.
pub fn list(args: &ReportsListArgs, style: Style) -> anyhow::Result<Outcome> {
    let reports = crate::runtime()?.block_on(async {
        let store = open_store(&args.store).await?;
        let filter = ReportFilter {
            domain: args.domain.clone(),
            limit: args.limit,
            ..ReportFilter::default()
        };
        anyhow::Ok(store.list_reports(&filter).await?)
    })?;
    if args.json {
        let json: Vec<_> = reports
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.key.0,
                    "organization_name": r.organization_name,
                    "report_id": r.report_id,
                    "date_start": r.date_start.to_string(),
                    "date_end": r.date_end.to_string(),
                    "policies": r.policies.iter().map(|p| serde_json::json!({
                        "domain": p.domain,
                        "policy_type": p.policy_type,
                        "successful": p.successful,
                        "failed": p.failed,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(Outcome::Ok);
    }
    if reports.is_empty() {
        outln!("no reports");
        return Ok(Outcome::Ok);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        style.bold(&format!(
            "{:>6}  {:<24} {:<22} {:<21} {:<24} {:<6} {:>9} {:>7}",
            "ID", "REPORTER", "PERIOD START", "REPORT-ID", "POLICY DOMAIN", "TYPE", "OK", "FAILED"
        ))
    );
    for r in &reports {
        let first = |s: &str, n: usize| clean(s).chars().take(n).collect::<String>();
        for (i, p) in r.policies.iter().enumerate() {
            let (id, org, start, rid) = if i == 0 {
                (
                    r.key.0.to_string(),
                    first(&r.organization_name, 24),
                    r.date_start.to_string(),
                    first(&r.report_id, 21),
                )
            } else {
                Default::default()
            };
            let failed = if p.failed > 0 {
                style.bad(&format!("{:>7}", p.failed))
            } else {
                format!("{:>7}", p.failed)
            };
            let _ = writeln!(
                out,
                "{id:>6}  {org:<24} {start:<22} {rid:<21} {:<24} {:<6} {:>9} {failed}",
                first(&p.domain, 24),
                first(&p.policy_type, 6),
                p.successful
            );
        }
        if r.policies.is_empty() {
            let _ = writeln!(
                out,
                "{:>6}  {:<24} {:<22} {:<21} (no policies)",
                r.key.0,
                first(&r.organization_name, 24),
                r.date_start.to_string(),
                first(&r.report_id, 21)
            );
        }
    }
    out!("{out}");
    Ok(Outcome::Ok)
}

/// `reports show ID`.
pub fn show(args: &ReportsShowArgs, style: Style) -> anyhow::Result<Outcome> {
    let stored = crate::runtime()?.block_on(async {
        let store = open_store(&args.store).await?;
        anyhow::Ok(store.get_report(ReportKey(args.id)).await?)
    })?;
    let Some(stored) = stored else {
        bail!("no report with ID {} (see `mta-sts reports list`)", args.id);
    };
    let r = &stored.report;
    if args.json {
        let report: serde_json::Value = serde_json::from_str(&r.to_json())?;
        let warnings: Vec<_> = stored
            .warnings
            .iter()
            .map(|w| serde_json::json!({"path": w.path, "message": w.message}))
            .collect();
        let json = serde_json::json!({
            "id": stored.key.0,
            "raw_id": stored.raw.0,
            "counted": stored.counted,
            "conflicting": stored.conflicting.iter().map(|key| key.0).collect::<Vec<_>>(),
            "report": report,
            "warnings": warnings,
        });
        outln!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(Outcome::Ok);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        style.bold(&format!(
            "Report {} from {}",
            stored.key.0,
            clean(&r.organization_name)
        ))
    );
    let _ = writeln!(out, "  report-id: {}", clean(&r.report_id));
    let _ = writeln!(
        out,
        "  period:    {} to {}",
        r.date_range.start, r.date_range.end
    );
    if let Some(contact) = &r.contact_info {
        let _ = writeln!(out, "  contact:   {}", clean(contact));
    }
    if !stored.conflicting.is_empty() {
        let others: Vec<String> = stored.conflicting.iter().map(|k| k.0.to_string()).collect();
        let counted = if stored.counted {
            "this one is counted"
        } else {
            "this one is not counted"
        };
        let _ = writeln!(
            out,
            "  {} other reports with this identity differ: {} ({counted}; one may be forged)",
            style.bad("conflict:"),
            others.join(", ")
        );
    }
    for p in &r.policies {
        let a = &p.policy;
        let _ = writeln!(
            out,
            "\n  {} policy for {}: {} successful, {} failed sessions",
            clean(a.policy_type.as_str()),
            clean(&a.policy_domain),
            p.summary.total_successful_session_count,
            p.summary.total_failure_session_count
        );
        if !a.mx_host.is_empty() {
            let _ = writeln!(out, "    mx: {}", clean(&a.mx_host.join(", ")));
        }
        for line in &a.policy_string {
            let _ = writeln!(out, "    policy: {}", clean(line));
        }
        for f in &p.failure_details {
            let _ = writeln!(
                out,
                "    {} x {}: {} -> {} [{}] {}",
                style.bad(&f.failed_session_count.to_string()),
                clean(f.result_type.as_str()),
                clean(f.sending_mta_ip.as_deref().unwrap_or("?")),
                clean(f.receiving_mx_hostname.as_deref().unwrap_or("?")),
                clean(f.receiving_ip.as_deref().unwrap_or("?")),
                clean(
                    f.failure_reason_code
                        .as_deref()
                        .or(f.additional_information.as_deref())
                        .unwrap_or("")
                )
            );
        }
    }
    for w in &stored.warnings {
        let _ = writeln!(out, "  note: {}: {}", clean(&w.path), clean(&w.message));
    }
    out!("{out}");
    Ok(Outcome::Ok)
}
