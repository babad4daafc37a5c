//! Reads a server process's CPU time, memory and open files from /proc, so a test or a
//! benchmark run reports what the server (not the test or load tool) spent. Works for any
//! server binary, Rust or Go, native or under qemu-user.
//!
//! The one /proc reader of the repository: the integration tests use it through
//! `tests/support/`, and the benchmark tool (`bench/`) includes this file by path.
#![allow(dead_code)]

use std::io;

/// Kernel clock ticks per second in /proc/PID/stat (USER_HZ, 100 on every Linux ABI).
pub const TICKS_PER_SECOND: u64 = 100;

/// One reading of a process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProcSample {
    /// User + system CPU time of all threads, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set size (VmRSS), KiB.
    pub rss_kib: u64,
    /// Anonymous part of the resident set (RssAnon), KiB: heap, stacks, not the binary.
    pub rss_anon_kib: u64,
    /// Peak resident set size (VmHWM), KiB.
    pub hwm_kib: u64,
}

impl ProcSample {
    /// CPU seconds between `earlier` and `self`.
    pub fn cpu_seconds_since(&self, earlier: &ProcSample) -> f64 {
        self.cpu_ticks.saturating_sub(earlier.cpu_ticks) as f64 / TICKS_PER_SECOND as f64
    }
}

/// Reads /proc/PID/stat and /proc/PID/status.
pub fn sample(pid: u32) -> io::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let cpu_ticks = parse_stat_cpu_ticks(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc stat"))?;
    let mut out = parse_status(&status);
    out.cpu_ticks = cpu_ticks;
    Ok(out)
}

/// Number of open file descriptors of `pid` (entries of /proc/PID/fd).
pub fn open_fds(pid: u32) -> io::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// utime + stime from a /proc/PID/stat line. The command name (field 2) is in
/// parentheses and may hold spaces, so fields are counted after the last `)`:
/// field 3 (state) is the first one there, utime is field 14 and stime field 15.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = after_name.split_whitespace();
    // Fields 3..=13 are skipped: 11 of them.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// VmRSS, RssAnon and VmHWM (KiB) from /proc/PID/status; missing lines read as 0.
pub fn parse_status(status: &str) -> ProcSample {
    let mut out = ProcSample::default();
    for line in status.lines() {
        let mut words = line.split_whitespace();
        let (Some(name), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(kib) = value.parse::<u64>() else {
            continue;
        };
        match name {
            "VmRSS:" => out.rss_kib = kib,
            "RssAnon:" => out.rss_anon_kib = kib,
            "VmHWM:" => out.hwm_kib = kib,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_spaces_in_name() {
        // A real line shape; utime=1234, stime=56.
        let line = "4242 (my derp srv) S 1 4242 4242 0 -1 4194560 1795 0 0 0 1234 56 0 0 20 0 \
                    5 0 123456 9000000 600 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0";
        assert_eq!(parse_stat_cpu_ticks(line), Some(1290));
    }

    #[test]
    fn stat_line_truncated() {
        assert_eq!(parse_stat_cpu_ticks("1 (x) S 1 2 3"), None);
        assert_eq!(parse_stat_cpu_ticks("no parens"), None);
    }

    #[test]
    fn status_fields() {
        let text = "Name:\ttinyderp\nVmHWM:\t    2048 kB\nVmRSS:\t    1900 kB\n\
                    RssAnon:\t     700 kB\nRssFile:\t    1200 kB\n";
        let sample = parse_status(text);
        assert_eq!(
            sample,
            ProcSample {
                cpu_ticks: 0,
                rss_kib: 1900,
                rss_anon_kib: 700,
                hwm_kib: 2048
            }
        );
    }

    #[test]
    fn own_process_is_readable() {
        let me = sample(std::process::id()).unwrap();
        assert!(me.rss_kib > 0);
        assert!(me.hwm_kib >= me.rss_kib);
        assert!(open_fds(std::process::id()).unwrap() >= 3);
    }

    #[test]
    fn cpu_seconds_difference() {
        let a = ProcSample {
            cpu_ticks: 100,
            ..ProcSample::default()
        };
        let b = ProcSample {
            cpu_ticks: 350,
            ..ProcSample::default()
        };
        assert_eq!(b.cpu_seconds_since(&a), 2.5);
        assert_eq!(a.cpu_seconds_since(&b), 0.0);
    }
}
