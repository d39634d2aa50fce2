//! `fenrir-bench ingest`: pushes the pre-encoded workload over C keep-alive connections and
//! measures throughput, request latency and (given a PID) the server's CPU and peak RSS.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderName, Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};
use crate::http::{Connection, Target};
use crate::procstat::{load_average, Process};
use crate::stats::{quantile, round};
use crate::workload::{generate, WorkloadSpec};

const PUSH_PATH: &str = "/loki/api/v1/push";
const MAX_ATTEMPTS: u32 = 20;
const KEPT_ERRORS: usize = 5;

/// What `ingest` was asked to do.
pub(crate) struct IngestOptions {
    pub(crate) url: String,
    pub(crate) lines: u64,
    pub(crate) streams: usize,
    pub(crate) connections: usize,
    pub(crate) batch: usize,
    pub(crate) pid: Option<u32>,
    pub(crate) tenant: String,
    pub(crate) state: PathBuf,
}

/// What `query` needs to know about the data `ingest` pushed.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct State {
    pub(crate) start_ns: i64,
    pub(crate) end_ns: i64,
    pub(crate) tenant: String,
    pub(crate) lines: u64,
    pub(crate) streams: usize,
}

/// Request latency percentiles in milliseconds.
#[derive(Debug, Serialize)]
pub(crate) struct Latency {
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
}

/// The figures of one ingest run.
#[derive(Debug, Serialize)]
pub(crate) struct IngestReport {
    pub(crate) lines: u64,
    pub(crate) streams: usize,
    pub(crate) raw_mb: f64,
    pub(crate) requests: usize,
    pub(crate) connections: usize,
    /// Generating and encoding the requests, before the clock starts.
    pub(crate) prepare_s: f64,
    pub(crate) wall_s: f64,
    /// This tool's own CPU while pushing, to show it was not the bottleneck.
    pub(crate) client_cpu_s: f64,
    pub(crate) lines_per_s: f64,
    pub(crate) mb_per_s: f64,
    pub(crate) latency: Latency,
    pub(crate) retries: u64,
    pub(crate) server_cpu_s: Option<f64>,
    pub(crate) cpu_s_per_million_lines: Option<f64>,
    pub(crate) server_peak_rss_mb: Option<f64>,
    pub(crate) failed_requests: usize,
    pub(crate) errors: Vec<String>,
    /// The machine's load averages (1, 5, 15 min) when the push ended: above the number
    /// of cores, other work competed with the server and wall times are inflated.
    pub(crate) load_average: Option<[f64; 3]>,
}

/// How one connection's share of the work went.
#[derive(Default)]
struct WorkerOutcome {
    latencies_ms: Vec<f64>,
    retries: u64,
    failures: Vec<String>,
}

pub(crate) fn run(options: &IngestOptions) -> Result<IngestReport> {
    if options.connections == 0 {
        return Err(BenchError::Usage("--connections must be positive".into()));
    }
    let target = Target::parse(&options.url)?;
    let process = options.pid.map(Process::new).transpose()?;
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| BenchError::Usage(format!("clock before 1970: {e}")))?
        .as_nanos() as i64;
    let prepare_started = Instant::now();
    let work = generate(WorkloadSpec {
        lines: options.lines,
        streams: options.streams,
        batch: options.batch,
        now_ns,
    })?;
    let prepare_s = prepare_started.elapsed().as_secs_f64();
    let requests = work.bodies.len();
    let me = Process::new(std::process::id())?;
    let bodies = Arc::new(work.bodies);

    let runtime = crate::ops::runtime()?;
    let cpu_before = process.map(|p| p.cpu_seconds()).transpose()?;
    let client_cpu_before = me.cpu_seconds()?;
    let started = Instant::now();
    let outcomes = runtime.block_on(async {
        let next = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..options.connections)
            .map(|_| {
                let (target, bodies, next) = (target.clone(), bodies.clone(), next.clone());
                let tenant = options.tenant.clone();
                tokio::spawn(async move { push_worker(target, bodies, next, tenant).await })
            })
            .collect();
        let mut outcomes = Vec::with_capacity(workers.len());
        for worker in workers {
            let outcome = worker.await.map_err(|e| BenchError::Http {
                url: options.url.clone(),
                message: format!("worker failed: {e}"),
            })??;
            outcomes.push(outcome);
        }
        Ok::<_, BenchError>(outcomes)
    })?;
    let wall = started.elapsed().as_secs_f64();
    let client_cpu = me.cpu_seconds()? - client_cpu_before;
    let cpu = match (process, cpu_before) {
        (Some(p), Some(before)) => Some(p.cpu_seconds()? - before),
        _ => None,
    };
    let peak_rss = process.map(|p| p.peak_rss_bytes()).transpose()?;

    let mut latencies: Vec<f64> = Vec::with_capacity(requests);
    let mut retries = 0;
    let mut failures = Vec::new();
    for outcome in outcomes {
        latencies.extend(outcome.latencies_ms);
        retries += outcome.retries;
        failures.extend(outcome.failures);
    }
    latencies.sort_by(f64::total_cmp);

    let state = State {
        start_ns: work.start_ns,
        end_ns: now_ns + 1_000_000_000,
        tenant: options.tenant.clone(),
        lines: work.lines,
        streams: options.streams,
    };
    std::fs::write(&options.state, serde_json::to_vec_pretty(&state)?).map_err(|source| {
        BenchError::Io {
            what: "cannot write",
            path: options.state.clone(),
            source,
        }
    })?;

    let raw_mb = work.raw_bytes as f64 / 1e6;
    Ok(IngestReport {
        lines: work.lines,
        streams: options.streams,
        raw_mb: round(raw_mb, 1),
        requests,
        connections: options.connections,
        prepare_s: round(prepare_s, 2),
        wall_s: round(wall, 3),
        client_cpu_s: round(client_cpu, 2),
        lines_per_s: (work.lines as f64 / wall).round(),
        mb_per_s: round(raw_mb / wall, 2),
        latency: Latency {
            p50_ms: round(quantile(&latencies, 0.5), 2),
            p90_ms: round(quantile(&latencies, 0.9), 2),
            p99_ms: round(quantile(&latencies, 0.99), 2),
            max_ms: round(quantile(&latencies, 1.0), 2),
        },
        retries,
        server_cpu_s: cpu.map(|c| round(c, 2)),
        cpu_s_per_million_lines: cpu.map(|c| round(c / work.lines as f64 * 1e6, 2)),
        server_peak_rss_mb: peak_rss.map(|b| round(b as f64 / (1024.0 * 1024.0), 1)),
        failed_requests: failures.len(),
        errors: failures.into_iter().take(KEPT_ERRORS).collect(),
        load_average: load_average(),
    })
}

/// Takes the next body until none is left; retries 429 and 5xx answers with a growing
/// pause (as promtail does) and reconnects when the server closes the connection.
async fn push_worker(
    target: Target,
    bodies: Arc<Vec<Bytes>>,
    next: Arc<AtomicUsize>,
    tenant: String,
) -> Result<WorkerOutcome> {
    let headers: [(HeaderName, &str); 2] = [
        (header::CONTENT_TYPE, "application/x-protobuf"),
        (HeaderName::from_static("x-scope-orgid"), tenant.as_str()),
    ];
    let mut outcome = WorkerOutcome::default();
    let mut connection = Connection::open(&target).await?;
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some(body) = bodies.get(index) else {
            return Ok(outcome);
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = Instant::now();
            let answer = connection
                .send(Method::POST, PUSH_PATH, &headers, body.clone())
                .await;
            let latency_ms = sent.elapsed().as_secs_f64() * 1e3;
            let retry = match answer {
                Ok(answer) if answer.status.is_success() => {
                    outcome.latencies_ms.push(latency_ms);
                    false
                }
                Ok(answer)
                    if answer.status == StatusCode::TOO_MANY_REQUESTS
                        || answer.status.is_server_error() =>
                {
                    true
                }
                Ok(answer) => {
                    outcome.failures.push(format!(
                        "{} {}",
                        answer.status.as_u16(),
                        String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)])
                    ));
                    false
                }
                Err(err) => {
                    connection = Connection::open(&target).await.map_err(|_| err)?;
                    true
                }
            };
            if !retry {
                break;
            }
            if attempt >= MAX_ATTEMPTS {
                outcome
                    .failures
                    .push(format!("request {index}: gave up after {attempt} attempts"));
                break;
            }
            outcome.retries += 1;
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
        }
    }
}
