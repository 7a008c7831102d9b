//! What reading a report costs in memory, as the growth of this process's peak resident size
//! (Linux: `VmHWM`, reset through `/proc/self/clear_refs`) while it reads. The reader takes each
//! member of the report as it is parsed, so a body full of junk (entries of the wrong type,
//! unknown members, long strings nobody reads) costs its capped warnings, not a JSON tree of
//! the whole document.
//!
//! One test in this binary: the figure is the process's, so nothing else may run beside it.

use mta_sts_tlsrpt::report::{MAX_TREE_BYTES, MAX_WARNINGS, Report, ReportWarningKind, tree_bytes};

/// A `kB` line of /proc/self/status, in bytes.
fn status_bytes(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: usize = line
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{field}{line}"));
    kib * 1024
}

/// How far the peak resident size rose above the resident size while `f` ran.
fn peak_growth_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    // "5" resets the peak resident size to the current one (proc(5), clear_refs).
    std::fs::write("/proc/self/clear_refs", "5").expect("resetting VmHWM");
    let before = status_bytes("VmRSS:");
    let value = f();
    (value, status_bytes("VmHWM:").saturating_sub(before))
}

#[test]
fn a_body_of_junk_costs_its_warnings_not_a_tree() {
    // 800,000 policies that are not objects, and a 4 MiB member nobody reads: under the
    // reader's complexity limit, so it is read (a tree of it took about 60 MiB).
    let entries = 800_000;
    let mut json = String::from(
        r#"{"organization-name":"Junk","report-id":"j","date-range":{"start-datetime":"2024-01-01T00:00:00Z","end-datetime":"2024-01-01T23:59:59Z"},"comment":""#,
    );
    json.push_str(&"x".repeat(4 * 1024 * 1024));
    json.push_str(r#"","policies":["#);
    json.push_str(&"0,".repeat(entries - 1));
    json.push_str("0]}");
    assert!(tree_bytes(json.as_bytes()) <= MAX_TREE_BYTES);

    let (read, peak) = peak_growth_during(|| Report::from_json(json.as_bytes()));
    let read = read.expect("a report with junk entries is read");
    assert!(read.report.policies.is_empty());
    assert_eq!(read.warnings.len(), MAX_WARNINGS + 1);
    assert_eq!(
        read.warnings.last().map(|warning| &warning.kind),
        // One warning per entry, and one for the missing contact-info.
        Some(&ReportWarningKind::TooManyWarnings {
            omitted: entries + 1 - MAX_WARNINGS
        })
    );
    // The warnings kept (a path and a kind each) are all that grows with the body; a tree of
    // it took ten times the body.
    assert!(
        peak < 2 * 1024 * 1024,
        "reading a {} byte body took {peak} bytes more at its peak",
        json.len()
    );
}
