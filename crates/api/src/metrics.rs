//! Prometheus metrics at `/metrics`. Labels are bounded: route templates and status
//! codes, never tenants' stream labels.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), (u64, f64)>>,
    pushed_entries: AtomicU64,
    pushed_bytes: AtomicU64,
}

impl Metrics {
    pub(crate) fn record_request(&self, route: &str, status: u16, seconds: f64) {
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let slot = map.entry((route.to_string(), status)).or_default();
        slot.0 += 1;
        slot.1 += seconds;
    }

    pub(crate) fn record_push(&self, entries: u64, bytes: u64) {
        self.pushed_entries.fetch_add(entries, Ordering::Relaxed);
        self.pushed_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn render(&self, extra: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP fenrir_request_duration_seconds Time spent serving HTTP requests.\n");
        out.push_str("# TYPE fenrir_request_duration_seconds summary\n");
        let map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        for ((route, status), (count, secs)) in map.iter() {
            let _ = writeln!(
                out,
                "fenrir_request_duration_seconds_count{{route=\"{route}\",status_code=\"{status}\"}} {count}"
            );
            let _ = writeln!(
                out,
                "fenrir_request_duration_seconds_sum{{route=\"{route}\",status_code=\"{status}\"}} {secs}"
            );
        }
        drop(map);
        let counters = [
            (
                "fenrir_distributor_lines_received_total",
                "Entries accepted by validation.",
                self.pushed_entries.load(Ordering::Relaxed),
            ),
            (
                "fenrir_distributor_bytes_received_total",
                "Line and metadata bytes accepted by validation.",
                self.pushed_bytes.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        for (name, help, v) in extra {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}
