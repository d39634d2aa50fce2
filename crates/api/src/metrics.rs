//! Prometheus metrics at `/metrics`. Labels are bounded: route templates and status
//! codes, discard reasons (fixed sets) and at most [`MAX_TENANT_LABELS`] tenants, never
//! tenants' stream labels.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Distinct tenants that get their own `tenant` label value; later ones are counted
/// under [`OTHER_TENANTS`], so that clients choosing tenant IDs cannot grow `/metrics`
/// without bound.
pub(crate) const MAX_TENANT_LABELS: usize = 1000;

/// The `tenant` label value of tenants past [`MAX_TENANT_LABELS`].
pub(crate) const OTHER_TENANTS: &str = "__other__";

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), (u64, f64)>>,
    pushed_entries: AtomicU64,
    pushed_bytes: AtomicU64,
    discarded: Mutex<Discards>,
}

/// `loki_discarded_samples_total` and `loki_discarded_bytes_total` by (reason, tenant).
#[derive(Debug, Default)]
struct Discards {
    counts: BTreeMap<(&'static str, String), (u64, u64)>,
    tenants: BTreeSet<String>,
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

    /// Counts entries and bytes refused for `reason` (one of Loki's fixed reasons).
    pub(crate) fn record_discarded(
        &self,
        tenant: &str,
        reason: &'static str,
        entries: u64,
        bytes: u64,
    ) {
        let mut d = self.discarded.lock().unwrap_or_else(|p| p.into_inner());
        let tenant = if d.tenants.contains(tenant) {
            tenant.to_string()
        } else if d.tenants.len() < MAX_TENANT_LABELS {
            d.tenants.insert(tenant.to_string());
            tenant.to_string()
        } else {
            OTHER_TENANTS.to_string()
        };
        let slot = d.counts.entry((reason, tenant)).or_default();
        slot.0 += entries;
        slot.1 += bytes;
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
        self.render_discarded(&mut out);
        for (name, help, v) in extra {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }

    fn render_discarded(&self, out: &mut String) {
        let d = self.discarded.lock().unwrap_or_else(|p| p.into_inner());
        for (name, help, pick) in [
            (
                "loki_discarded_samples_total",
                "The total number of samples that were discarded.",
                0,
            ),
            (
                "loki_discarded_bytes_total",
                "The total number of bytes that were discarded.",
                1,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((reason, tenant), (entries, bytes)) in &d.counts {
                let v = if pick == 0 { entries } else { bytes };
                let _ = writeln!(
                    out,
                    "{name}{{reason=\"{reason}\",tenant=\"{}\"}} {v}",
                    escape_label_value(tenant)
                );
            }
        }
    }

    /// [`Metrics::render`] plus the write path's backlog and flush counters.
    pub(crate) fn render_with_backlog(&self, backlog: &fenrir_ingest::FlushBacklog) -> String {
        let mut out = self.render(&[]);
        let gauges = [
            (
                "fenrir_ingester_unflushed_bytes",
                "Compressed bytes of sealed chunks waiting for the object store.",
                backlog.unflushed_bytes,
            ),
            (
                "fenrir_ingester_unflushed_chunks",
                "Sealed chunks waiting for the object store.",
                backlog.unflushed_chunks,
            ),
            (
                "fenrir_ingester_max_unflushed_bytes",
                "Backlog at which pushes are refused with 503.",
                backlog.max_unflushed_bytes,
            ),
            (
                "fenrir_ingester_memory_bytes",
                "Bytes held by open blocks, compressed parts and sealed chunks.",
                backlog.memory_bytes,
            ),
            (
                "fenrir_ingester_memory_budget_bytes",
                "ingester.memory_budget: past it pushes seal, flush and compress early.",
                backlog.memory_budget,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let counters = [
            (
                "fenrir_ingester_flush_failures_total",
                "Flushes that failed to write to the object store.",
                backlog.flush_failures,
            ),
            (
                "fenrir_ingester_flushed_chunks_total",
                "Chunks written to the object store.",
                backlog.flushed_chunks,
            ),
            (
                "fenrir_ingester_flushed_bytes_total",
                "Compressed bytes written to the object store.",
                backlog.flushed_bytes,
            ),
            (
                "fenrir_ingester_backlog_refused_pushes_total",
                "Pushes refused with 503 because the backlog was full.",
                backlog.refused_pushes,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        out
    }
}

/// Prometheus text-format escaping of a label value.
fn escape_label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discards_render_with_bounded_tenants() {
        let m = Metrics::default();
        m.record_discarded("fake", "line_too_long", 2, 10);
        m.record_discarded("fake", "line_too_long", 1, 5);
        m.record_discarded("fake", "rate_limited", 4, 400);
        for i in 0..MAX_TENANT_LABELS + 5 {
            m.record_discarded(&format!("t{i}"), "stream_limit", 1, 1);
        }
        let text = m.render(&[]);
        assert!(
            text.contains(
                "loki_discarded_samples_total{reason=\"line_too_long\",tenant=\"fake\"} 3\n"
            ),
            "{text}"
        );
        assert!(text
            .contains("loki_discarded_bytes_total{reason=\"line_too_long\",tenant=\"fake\"} 15\n"));
        assert!(text
            .contains("loki_discarded_bytes_total{reason=\"rate_limited\",tenant=\"fake\"} 400\n"));
        // "fake" took one of the slots: six tenants share the overflow label.
        assert!(text.contains(
            "loki_discarded_samples_total{reason=\"stream_limit\",tenant=\"__other__\"} 6\n"
        ));
        let series = text
            .lines()
            .filter(|l| l.starts_with("loki_discarded_samples_total{"))
            .count();
        assert_eq!(series, MAX_TENANT_LABELS + 2);
        assert_eq!(escape_label_value("a\"b\\c"), "a\\\"b\\\\c");
    }

    #[test]
    fn backlog_metrics_are_rendered_with_types() {
        let backlog = fenrir_ingest::FlushBacklog {
            unflushed_bytes: 1234,
            unflushed_chunks: 3,
            max_unflushed_bytes: 1 << 30,
            flush_failures: 2,
            flushed_chunks: 7,
            flushed_bytes: 9000,
            refused_pushes: 1,
            memory_bytes: 5 << 20,
            memory_budget: 48 << 20,
        };
        let text = Metrics::default().render_with_backlog(&backlog);
        for line in [
            "# TYPE fenrir_ingester_unflushed_bytes gauge",
            "fenrir_ingester_unflushed_bytes 1234",
            "fenrir_ingester_unflushed_chunks 3",
            "fenrir_ingester_max_unflushed_bytes 1073741824",
            "# TYPE fenrir_ingester_flush_failures_total counter",
            "fenrir_ingester_flush_failures_total 2",
            "fenrir_ingester_flushed_chunks_total 7",
            "fenrir_ingester_flushed_bytes_total 9000",
            "fenrir_ingester_backlog_refused_pushes_total 1",
            "# TYPE fenrir_ingester_memory_bytes gauge",
            "fenrir_ingester_memory_bytes 5242880",
            "fenrir_ingester_memory_budget_bytes 50331648",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }
}
