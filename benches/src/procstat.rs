//! The server's CPU time and memory, read from `/proc/<pid>` (so the tool must run on the
//! server's machine when given `--pid`).

use std::path::PathBuf;

use crate::error::{BenchError, Result};

/// Linux reports `utime`/`stime` in USER_HZ ticks, 100 per second on every mainstream
/// architecture (the value `sysconf(_SC_CLK_TCK)` returns).
const TICKS_PER_SECOND: f64 = 100.0;

/// A process whose resource use is measured.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Process {
    pid: u32,
}

impl Process {
    /// Fails at once if the process does not exist, so that a typo is not a silent zero.
    pub(crate) fn new(pid: u32) -> Result<Self> {
        let process = Process { pid };
        process.cpu_seconds()?;
        Ok(process)
    }

    /// User plus system CPU seconds used so far, all threads (dead ones included).
    pub(crate) fn cpu_seconds(&self) -> Result<f64> {
        let path = self.path("stat");
        let text = read(&path)?;
        parse_stat_cpu(&text).ok_or_else(|| BenchError::Parse {
            path,
            message: "no utime/stime fields".into(),
        })
    }

    /// Peak resident set size (`VmHWM`) in bytes.
    pub(crate) fn peak_rss_bytes(&self) -> Result<u64> {
        self.status_field("VmHWM:")
    }

    /// Current resident set size (`VmRSS`) in bytes.
    pub(crate) fn rss_bytes(&self) -> Result<u64> {
        self.status_field("VmRSS:")
    }

    fn status_field(&self, name: &str) -> Result<u64> {
        let path = self.path("status");
        let text = read(&path)?;
        parse_status_kib(&text, name)
            .map(|kib| kib * 1024)
            .ok_or_else(|| BenchError::Parse {
                path,
                message: format!("no {name} line"),
            })
    }

    fn path(&self, file: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/{file}", self.pid))
    }
}

/// The machine's 1, 5 and 15 minute load averages: how much else competed for the CPUs.
pub(crate) fn load_average() -> Option<[f64; 3]> {
    parse_load_average(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

fn parse_load_average(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

fn read(path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| BenchError::Io {
        what: "cannot read",
        path: path.clone(),
        source,
    })
}

/// Fields 14 and 15 of `/proc/<pid>/stat`, counted after the parenthesised command name
/// (which may itself hold spaces and parentheses).
fn parse_stat_cpu(stat: &str) -> Option<f64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

fn parse_status_kib(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_after_a_command_name_with_spaces() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 2279 0 0 0 250 75 0 0 20 0 9 0";
        assert_eq!(parse_stat_cpu(stat), Some(3.25));
        assert_eq!(parse_stat_cpu("garbage"), None);
    }

    #[test]
    fn reads_status_sizes_in_kib() {
        let status = "Name:\tfenrir\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(51_200));
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(40_960));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn measures_this_process() {
        let me = Process::new(std::process::id()).unwrap();
        assert!(me.cpu_seconds().unwrap() >= 0.0);
        let rss = me.rss_bytes().unwrap();
        assert!(rss > 0);
        assert!(me.peak_rss_bytes().unwrap() >= rss);
    }

    #[test]
    fn reads_load_averages() {
        assert_eq!(
            parse_load_average("10.00 9.57 10.13 11/165 8087\n"),
            Some([10.0, 9.57, 10.13])
        );
        assert_eq!(parse_load_average("1.0 x"), None);
        assert!(load_average().is_some());
    }

    #[test]
    fn a_missing_process_is_an_error() {
        assert!(Process::new(u32::MAX).is_err());
    }
}
