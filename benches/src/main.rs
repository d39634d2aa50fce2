//! `fenrir-bench`: a load generator and query benchmark for any server that speaks Loki's
//! push protocol (protobuf + snappy) and query API — Fenrir or Grafana Loki — with the
//! workload and query list of `loki_bench.py`, so that the two can be compared in one run.
//!
//! ```text
//! fenrir-bench startup http://127.0.0.1:3100 --log /tmp/f.log -- fenrir -config.file=f.yaml
//! fenrir-bench ingest  http://127.0.0.1:3100 --lines 1000000 --streams 100 --pid PID
//! fenrir-bench flush   http://127.0.0.1:3100
//! fenrir-bench query   http://127.0.0.1:3100 --rounds 3 --pid PID
//! ```

mod error;
#[cfg(test)]
mod fake_loki;
mod http;
mod ingest;
mod ops;
mod procstat;
mod pyrandom;
mod query;
mod stats;
mod workload;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::error::Result;
use crate::ingest::{IngestOptions, IngestReport};
use crate::query::{QueryOptions, QueryReport};

const DEFAULT_STATE: &str = "/tmp/fenrir_bench_state.json";

#[derive(Parser)]
#[command(
    name = "fenrir-bench",
    about = "Push and query benchmark for Loki-compatible servers"
)]
struct Cli {
    /// Print the figures as JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Push the reference workload and measure throughput, latency, server CPU and RSS.
    Ingest {
        /// Base URL of the server, e.g. http://127.0.0.1:3100.
        url: String,
        #[arg(long, default_value_t = 1_000_000)]
        lines: u64,
        #[arg(long, default_value_t = 100)]
        streams: usize,
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Entries per push request.
        #[arg(long, default_value_t = 2000)]
        batch: usize,
        /// The server's process id, to read its CPU time and peak RSS from /proc.
        #[arg(long)]
        pid: Option<u32>,
        /// Sent as X-Scope-OrgID.
        #[arg(long, default_value = "bench")]
        tenant: String,
        /// Where to record the pushed time range for `query`.
        #[arg(long, default_value = DEFAULT_STATE)]
        state: PathBuf,
    },
    /// Run the fixed query list over what `ingest` pushed.
    Query {
        url: String,
        #[arg(long)]
        pid: Option<u32>,
        /// Runs of each query; the median and minimum are reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long, default_value = DEFAULT_STATE)]
        state: PathBuf,
        /// Run only these queries, e.g. `--only needle,log_volume`.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Start a server command (left running) and time it until GET /ready answers 200.
    Startup {
        url: String,
        /// Append the server's stdout and stderr to this file.
        #[arg(long)]
        log: Option<PathBuf>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// The server command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// POST /flush and time it.
    Flush { url: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "fenrir-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<()> {
    let text = match &cli.command {
        Mode::Ingest {
            url,
            lines,
            streams,
            connections,
            batch,
            pid,
            tenant,
            state,
        } => {
            let report = ingest::run(&IngestOptions {
                url: url.clone(),
                lines: *lines,
                streams: *streams,
                connections: *connections,
                batch: *batch,
                pid: *pid,
                tenant: tenant.clone(),
                state: state.clone(),
            })?;
            render(cli.json, &report, ingest_table)?
        }
        Mode::Query {
            url,
            pid,
            rounds,
            state,
            only,
        } => {
            let report = query::run(&QueryOptions {
                url: url.clone(),
                pid: *pid,
                rounds: *rounds,
                state: state.clone(),
                only: only.clone(),
            })?;
            render(cli.json, &report, query_table)?
        }
        Mode::Startup {
            url,
            log,
            timeout,
            command,
        } => {
            let report = ops::startup(url, command, log.clone(), Duration::from_secs(*timeout))?;
            render(cli.json, &report, |r| {
                format!("pid {}\nready after {:.3} s\n", r.pid, r.ready_s)
            })?
        }
        Mode::Flush { url } => {
            let report = ops::flush(url)?;
            render(cli.json, &report, |r| {
                format!("flush: {} after {:.3} s\n", r.status, r.flush_s)
            })?
        }
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    Ok(())
}

fn render<T: Serialize>(json: bool, report: &T, table: impl Fn(&T) -> String) -> Result<String> {
    if json {
        Ok(serde_json::to_string_pretty(report)? + "\n")
    } else {
        Ok(table(report))
    }
}

fn or_dash(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
}

fn ingest_table(r: &IngestReport) -> String {
    let mut out = String::new();
    let mut row = |name: &str, value: String| out.push_str(&format!("{name:<28} {value}\n"));
    row("lines", format!("{} in {} streams", r.lines, r.streams));
    row("raw log text", format!("{:.1} MB", r.raw_mb));
    row(
        "requests",
        format!("{} over {} connections", r.requests, r.connections),
    );
    row("prepare (not timed)", format!("{:.2} s", r.prepare_s));
    row("wall time", format!("{:.3} s", r.wall_s));
    row(
        "client CPU while pushing",
        format!("{:.2} s", r.client_cpu_s),
    );
    row("ingest rate", format!("{:.0} lines/s", r.lines_per_s));
    row("raw text rate", format!("{:.2} MB/s", r.mb_per_s));
    row(
        "request latency",
        format!(
            "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            r.latency.p50_ms, r.latency.p90_ms, r.latency.p99_ms, r.latency.max_ms
        ),
    );
    row("retries", r.retries.to_string());
    row("server CPU", format!("{} s", or_dash(r.server_cpu_s, 2)));
    row(
        "server CPU per 1M lines",
        format!("{} s", or_dash(r.cpu_s_per_million_lines, 2)),
    );
    row(
        "server peak RSS",
        format!("{} MiB", or_dash(r.server_peak_rss_mb, 1)),
    );
    row("failed requests", r.failed_requests.to_string());
    for error in &r.errors {
        row("  error", error.clone());
    }
    row("machine load average", load(r.load_average));
    out
}

fn load(average: Option<[f64; 3]>) -> String {
    average.map_or_else(
        || "-".to_string(),
        |[one, five, fifteen]| format!("{one:.2} {five:.2} {fifteen:.2}"),
    )
}

fn query_table(r: &QueryReport) -> String {
    let mut out = format!(
        "{:<14} {:>6} {:>10} {:>10} {:>8} {:>10} {:>8}\n",
        "query", "status", "median s", "min s", "CPU s", "bytes", "results"
    );
    for q in &r.queries {
        out.push_str(&format!(
            "{:<14} {:>6} {:>10.4} {:>10.4} {:>8} {:>10} {:>8}\n",
            q.name,
            q.status,
            q.median_s,
            q.min_s,
            or_dash(q.cpu_s, 3),
            q.resp_bytes,
            q.results
        ));
    }
    out.push_str(&format!(
        "rounds {}; server RSS before {} MiB, peak {} MiB\n",
        r.rounds,
        or_dash(r.server_rss_mb_before, 1),
        or_dash(r.server_peak_rss_mb, 1)
    ));
    out.push_str(&format!("machine load average {}\n", load(r.load_average)));
    out
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    /// Pushes a small workload to a fake server, flushes and queries it, end to end.
    #[test]
    fn ingest_flush_and_query_against_a_server() {
        let (url, seen) = fake_loki::start();
        let state =
            std::env::temp_dir().join(format!("fenrir-bench-test-{}.json", std::process::id()));
        let pid = std::process::id();
        let report = ingest::run(&IngestOptions {
            url: url.clone(),
            lines: 20_000,
            streams: 20,
            connections: 3,
            batch: 2000,
            pid: Some(pid),
            tenant: "t1".into(),
            state: state.clone(),
        })
        .unwrap();
        assert_eq!(report.lines, 20_000);
        assert_eq!(seen.lines.load(Ordering::SeqCst), 20_000);
        assert_eq!(report.requests as u64, seen.pushes.load(Ordering::SeqCst));
        assert_eq!(
            report.retries, 1,
            "the first push is refused with 429 and retried"
        );
        assert_eq!(report.failed_requests, 0);
        assert!(report.server_cpu_s.is_some() && report.server_peak_rss_mb.is_some());
        assert!(seen.tenants.lock().unwrap().iter().all(|t| t == "t1"));

        let flushed = ops::flush(&url).unwrap();
        assert_eq!(flushed.status, 204);
        assert_eq!(seen.flushes.load(Ordering::SeqCst), 1);

        let queried = query::run(&QueryOptions {
            url,
            pid: None,
            rounds: 2,
            state: state.clone(),
            only: vec![],
        })
        .unwrap();
        let results: Vec<(&str, u16, u64)> = queried
            .queries
            .iter()
            .map(|q| (q.name, q.status, q.results))
            .collect();
        assert_eq!(
            results,
            [
                ("needle", 200, 2),
                ("filter_count", 200, 1),
                ("json_status", 200, 1),
                ("log_volume", 200, 1),
                ("recent_logs", 200, 2),
                ("regex_logs", 200, 2),
                ("labels", 200, 2),
                ("label_values", 200, 1),
            ]
        );
        let sent = seen.queries.lock().unwrap();
        assert_eq!(sent.len(), 12, "6 range queries, 2 rounds each");
        let recorded: ingest::State =
            serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        assert_eq!(sent[0]["start"], recorded.start_ns.to_string());
        assert_eq!(sent[0]["end"], recorded.end_ns.to_string());
        assert_eq!(sent[0]["limit"], "100");
        assert!(sent[0]["query"].contains(workload::NEEDLE));
        let _ = std::fs::remove_file(state);
    }

    #[test]
    fn a_server_that_is_down_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        assert!(ops::flush(&url).is_err());
    }
}
