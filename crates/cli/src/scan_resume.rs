//! `scan --out FILE --resume` in bounded memory: beside the results, `FILE.resume` says which
//! input lines are finished — every line before a mark, and the few finished beyond it (the
//! scan finishes domains out of order, but only within the domains in flight) — and how long
//! the results were then. A resumed scan skips those lines by number, and remembers by name
//! only the domains written after the last mark (at most a second's worth). Without the file
//! (results of an older scan) every finished domain is remembered by name.

use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use anyhow::Context as _;
use mta_sts_check::{MAX_SCAN_LINE, ScanLine};
use serde::{Deserialize, Serialize};

use crate::input::read_line;
use crate::render::clean;

/// Format version of the mark file.
const VERSION: u32 = 1;

/// Longest mark file read: it lists the lines finished beyond the mark, which are bounded by
/// what is in flight, never by the input.
const MAX_MARK_BYTES: u64 = 64 * 1024 * 1024;

/// Where the mark of the results file `out` is kept.
pub fn mark_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".resume");
    PathBuf::from(name)
}

/// What `FILE.resume` holds.
#[derive(Debug, Serialize, Deserialize)]
struct Mark {
    version: u32,
    /// The `--domains` argument of the scan.
    domains: String,
    /// Its `--shard`, as K/N.
    shard: Option<String>,
    /// Every input line numbered below this one (from 1) is finished, or is no domain of
    /// this shard.
    next_line: u64,
    /// Lines at or after `next_line` that are finished too.
    finished_after: Vec<u64>,
    /// The length of the results file when this was written: lines after it are finished
    /// domains this mark does not list yet.
    results_bytes: u64,
}

/// The input of a scan: which `--domains` and `--shard`, so a mark of another input is not
/// taken for this one.
pub struct Input<'a> {
    pub domains: &'a str,
    pub shard: Option<String>,
}

/// What an interrupted scan finished, to be skipped.
#[derive(Debug, Default)]
pub struct Finished {
    /// Every line below this one is finished.
    before: u64,
    /// Finished lines at or after `before`.
    lines: HashSet<u64>,
    /// Domains finished after the mark was written (or all, without a mark).
    names: HashSet<String>,
}

impl Finished {
    /// Whether line `number` (from 1), the domain `domain`, was finished.
    pub fn contains(&self, number: u64, domain: Option<&str>) -> bool {
        number < self.before
            || self.lines.contains(&number)
            || domain.is_some_and(|d| self.names.contains(d))
    }

    /// Lines from this one on may be finished ones a new mark must list again.
    pub fn first_unmarked(&self) -> u64 {
        self.before
    }
}

/// Reads what the results `out` (and their mark, when there is one) say is finished. A last
/// line cut short (the scan was killed while writing it) is cut off the file, so appending
/// continues on a line of its own. Returns the length of the results file as left.
pub fn finished(out: &Path, input: &Input<'_>) -> anyhow::Result<(Finished, u64)> {
    let mut file = match std::fs::OpenOptions::new().read(true).write(true).open(out) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Finished::default(), 0));
        }
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", out.display())),
    };
    let length = file.metadata()?.len();
    let mut finished = Finished::default();
    let mut from = 0;
    match read_mark(out)? {
        Some(mark) if mark.domains != input.domains || mark.shard != input.shard => eprintln!(
            "mta-sts: {} is a scan of --domains {}{}, not of this input: every finished domain is remembered by name",
            out.display(),
            clean(&mark.domains),
            mark.shard
                .as_ref()
                .map(|s| format!(" --shard {}", clean(s)))
                .unwrap_or_default()
        ),
        Some(mark) if mark.results_bytes <= length => {
            finished.before = mark.next_line;
            finished.lines = mark.finished_after.into_iter().collect();
            from = mark.results_bytes;
        }
        Some(_) => eprintln!(
            "mta-sts: {} is longer than {} says the results are; every finished domain is remembered by name",
            mark_path(out).display(),
            out.display()
        ),
        None if length > 0 => eprintln!(
            "mta-sts: no {} beside the results (an older scan?): every finished domain is remembered by name",
            mark_path(out).display()
        ),
        None => {}
    }
    let complete = read_names(&mut file, out, from, &mut finished.names)?;
    if complete != length {
        file.set_len(complete)
            .with_context(|| format!("cannot cut the last line off {}", out.display()))?;
    }
    Ok((finished, complete))
}

fn read_mark(out: &Path) -> anyhow::Result<Option<Mark>> {
    let path = mark_path(out);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_MARK_BYTES), &mut text)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mark: Mark = serde_json::from_slice(&text).with_context(|| {
        format!(
            "{} is not the mark of a scan; remove it to resume by the domain names in the results",
            path.display()
        )
    })?;
    if mark.version != VERSION {
        anyhow::bail!(
            "{} is of another version ({}); remove it to resume by the domain names in the results",
            path.display(),
            mark.version
        );
    }
    Ok(Some(mark))
}

/// Adds the domain of every whole line from byte `from` on to `names`; returns where the
/// whole lines end.
fn read_names(
    file: &mut File,
    out: &Path,
    from: u64,
    names: &mut HashSet<String>,
) -> anyhow::Result<u64> {
    file.seek(SeekFrom::Start(from))?;
    let mut input = BufReader::new(file);
    let mut line = Vec::new();
    let mut complete = from;
    let mut number = 0u64;
    while let Some(read) = read_line(&mut input, &mut line, MAX_SCAN_LINE as u64)
        .with_context(|| format!("cannot read {}", out.display()))?
    {
        number += 1;
        if !read.ended {
            eprintln!(
                "mta-sts: {} ends in a line cut short (the scan was interrupted while writing it); it is dropped and its domain checked again",
                out.display()
            );
            break;
        }
        let parsed = if read.fits {
            ScanLine::from_json(&line)
        } else {
            Err(format!("longer than {MAX_SCAN_LINE} bytes"))
        };
        let parsed = parsed.map_err(|why| {
            anyhow::anyhow!(
                "{} line {number} after byte {from} is not a scan result ({}); --resume continues only a file written by scan --out",
                out.display(),
                clean(&why)
            )
        })?;
        names.insert(parsed.domain);
        complete += read.consumed;
    }
    Ok(complete)
}

/// Which lines of this scan are finished, kept as the mark is: the lowest line not finished,
/// and the finished ones beyond it. The input reader and the results writer share it.
#[derive(Debug, Default)]
pub struct Ledger {
    state: Mutex<LedgerState>,
}

#[derive(Debug, Default)]
struct LedgerState {
    /// Lines sent to be checked and not written yet.
    pending: BTreeSet<u64>,
    /// Finished lines that may lie beyond the lowest pending one.
    done: BTreeSet<u64>,
    /// Every line up to this one has been read.
    read_to: u64,
}

impl Ledger {
    fn state(&self) -> std::sync::MutexGuard<'_, LedgerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Line `number` is sent to be checked.
    pub fn sent(&self, number: u64) {
        let mut state = self.state();
        state.pending.insert(number);
        state.read_to = number;
    }

    /// Line `number` was finished before (resumed), or holds nothing to check.
    pub fn skipped(&self, number: u64, finished: bool) {
        let mut state = self.state();
        if finished {
            state.done.insert(number);
        }
        state.read_to = number;
    }

    /// The result of line `number` is written.
    pub fn written(&self, number: u64) {
        let mut state = self.state();
        state.pending.remove(&number);
        state.done.insert(number);
    }

    /// Writes the mark for results of `results_bytes` bytes (to a new file, then renamed
    /// over the old, so a kill leaves one or the other whole).
    pub fn write_mark(
        &self,
        out: &Path,
        input: &Input<'_>,
        results_bytes: u64,
    ) -> anyhow::Result<()> {
        let mark = {
            let mut state = self.state();
            let next_line = state.pending.first().copied().unwrap_or(state.read_to + 1);
            state.done = state.done.split_off(&next_line);
            Mark {
                version: VERSION,
                domains: input.domains.to_owned(),
                shard: input.shard.clone(),
                next_line,
                finished_after: state.done.iter().copied().collect(),
                results_bytes,
            }
        };
        let path = mark_path(out);
        let mut temporary = path.clone().into_os_string();
        temporary.push(".new");
        let temporary = PathBuf::from(temporary);
        std::fs::write(&temporary, serde_json::to_vec(&mark)?)
            .with_context(|| format!("cannot write {}", temporary.display()))?;
        std::fs::rename(&temporary, &path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mta-sts-resume-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("results.jsonl")
    }

    /// The least of a results line.
    fn line(domain: &str) -> String {
        format!(
            r#"{{"domain":"{domain}","sender":{{"status":"testing"}},"evidence":{{"sts_txt":{{}},"tlsrpt_txt":{{}}}}}}"#
        )
    }

    #[test]
    fn the_mark_lists_only_what_lies_beyond_the_lowest_pending_line() {
        let out = temp("mark");
        std::fs::write(&out, "").unwrap();
        let input = Input {
            domains: "list.txt",
            shard: None,
        };
        let ledger = Ledger::default();
        for n in 1..=6 {
            ledger.sent(n);
        }
        ledger.skipped(7, false); // a comment
        for n in [1, 2, 4, 6] {
            ledger.written(n);
        }
        ledger.write_mark(&out, &input, 0).unwrap();
        let mark = read_mark(&out).unwrap().unwrap();
        assert_eq!(mark.next_line, 3);
        assert_eq!(mark.finished_after, [4, 6]);
        // Once all is written the mark is the line after the last read, and nothing else.
        ledger.written(3);
        ledger.written(5);
        ledger.write_mark(&out, &input, 0).unwrap();
        let mark = read_mark(&out).unwrap().unwrap();
        assert_eq!((mark.next_line, mark.finished_after), (8, vec![]));
    }

    #[test]
    fn results_after_the_mark_are_remembered_by_name_and_a_cut_line_is_dropped() {
        let out = temp("names");
        let first = &format!("{}\n", line("a.example"));
        let input = Input {
            domains: "list.txt",
            shard: Some("1/2".into()),
        };
        let ledger = Ledger::default();
        ledger.sent(1);
        ledger.sent(2);
        ledger.written(1);
        std::fs::write(&out, first).unwrap();
        ledger.write_mark(&out, &input, first.len() as u64).unwrap();
        // Line 2 is written after the mark, line 3 is cut short by a kill.
        let text = format!("{first}{}\n{{\"domain\":\"c.ex", line("b.example"));
        std::fs::write(&out, &text).unwrap();
        let (finished, length) = finished(&out, &input).unwrap();
        assert_eq!(length, text.rfind('\n').unwrap() as u64 + 1);
        assert_eq!(std::fs::metadata(&out).unwrap().len(), length);
        assert!(finished.contains(1, None), "by the mark");
        assert!(
            !finished.names.contains("a.example"),
            "before the mark: not by name"
        );
        assert!(
            finished.contains(2, Some("b.example")),
            "after the mark: by name"
        );
        assert!(
            !finished.contains(3, Some("c.example")),
            "the cut line is not finished"
        );
        // For another input the mark says nothing: every finished domain is known by name.
        let other = Input {
            domains: "list.txt",
            shard: Some("2/2".into()),
        };
        let (finished, _) = super::finished(&out, &other).unwrap();
        assert!(!finished.contains(1, None));
        assert!(finished.contains(1, Some("a.example")));
        assert!(finished.contains(2, Some("b.example")));
    }
}
