//! CPU time of a process from `/proc/PID/stat`, to tell how much of the two cores the server and
//! the load generator each used.

/// `USER_HZ`: the unit of `utime` and `stime`, 100 on every Linux architecture's user interface.
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU seconds used so far by process `pid` (this process when `None`), all
/// threads included; `None` when it cannot be read (not Linux, process gone).
pub fn seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    parse_stat(&stat)
}

/// `utime + stime` from a `stat` line. The command name in field 2 may hold spaces and
/// parentheses, so fields are counted after its last `)`: field 3 (state) comes first, so
/// `utime` (field 14) and `stime` (field 15) are the 12th and 13th.
fn parse_stat(stat: &str) -> Option<f64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utime_and_stime_are_fields_fourteen_and_fifteen() {
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 2000 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(parse_stat(stat), Some(3.0));
    }

    #[test]
    fn own_process_is_readable() {
        assert!(seconds(None).is_some());
    }
}
