//! `fenrir-bench query`: the fixed query list of `loki_bench.py` over the data `ingest`
//! pushed, each run R times on a fresh connection, with wall time and server CPU per run.

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderName, Method};
use serde::Serialize;
use serde_json::Value;

use crate::error::{BenchError, Result};
use crate::http::{query_string, Connection, Target};
use crate::ingest::State;
use crate::procstat::{load_average, Process};
use crate::stats::{median, round};
use crate::workload::NEEDLE;

/// What `query` was asked to do.
pub(crate) struct QueryOptions {
    pub(crate) url: String,
    pub(crate) pid: Option<u32>,
    pub(crate) rounds: usize,
    pub(crate) state: PathBuf,
    /// Run only these queries (by name); all when empty.
    pub(crate) only: Vec<String>,
}

#[derive(Clone, Copy)]
enum Kind {
    Range,
    Labels,
    LabelValues,
}

struct BenchQuery {
    name: &'static str,
    kind: Kind,
    /// The LogQL text, or the label name for [`Kind::LabelValues`].
    text: String,
    extra: &'static [(&'static str, &'static str)],
}

/// The same list, in the same order and with the same parameters, as `loki_bench.py`.
fn queries() -> Vec<BenchQuery> {
    let range = |name, text: &str, extra| BenchQuery {
        name,
        kind: Kind::Range,
        text: text.to_string(),
        extra,
    };
    vec![
        range(
            "needle",
            &format!(r#"{{app="bench"}} |= "{NEEDLE}""#),
            &[("limit", "100")],
        ),
        range(
            "filter_count",
            r#"sum(count_over_time({app="bench"} |= "ERROR" [1m]))"#,
            &[("step", "60")],
        ),
        range(
            "json_status",
            r#"sum by (status) (count_over_time({app="bench"} | json | status >= 500 [5m]))"#,
            &[("step", "300")],
        ),
        range(
            "log_volume",
            r#"sum by (level, detected_level) (count_over_time({app="bench"} | drop __error__[1m]))"#,
            &[("step", "60")],
        ),
        range(
            "recent_logs",
            r#"{app="bench", service="svc-1"}"#,
            &[("limit", "1000")],
        ),
        range(
            "regex_logs",
            r#"{app="bench", env="prod"} |~ "status\":5[0-9]{2}" | json | duration_ms > 1500"#,
            &[("limit", "500")],
        ),
        BenchQuery {
            name: "labels",
            kind: Kind::Labels,
            text: String::new(),
            extra: &[],
        },
        BenchQuery {
            name: "label_values",
            kind: Kind::LabelValues,
            text: "pod".to_string(),
            extra: &[],
        },
    ]
}

/// The figures of one query over its rounds.
#[derive(Debug, Serialize)]
pub(crate) struct QueryFigures {
    pub(crate) name: &'static str,
    pub(crate) status: u16,
    pub(crate) min_s: f64,
    pub(crate) median_s: f64,
    pub(crate) cpu_s: Option<f64>,
    pub(crate) resp_bytes: usize,
    /// Entries for log queries, series for metric queries, names or values for label calls.
    pub(crate) results: u64,
}

/// The figures of the whole query run.
#[derive(Debug, Serialize)]
pub(crate) struct QueryReport {
    pub(crate) rounds: usize,
    pub(crate) server_rss_mb_before: Option<f64>,
    pub(crate) queries: Vec<QueryFigures>,
    pub(crate) server_peak_rss_mb: Option<f64>,
    /// The machine's load averages (1, 5, 15 min) after the last query.
    pub(crate) load_average: Option<[f64; 3]>,
}

pub(crate) fn run(options: &QueryOptions) -> Result<QueryReport> {
    if options.rounds == 0 {
        return Err(BenchError::Usage("--rounds must be positive".into()));
    }
    let selected = select(queries(), &options.only)?;
    let target = Target::parse(&options.url)?;
    let process = options.pid.map(Process::new).transpose()?;
    let state: State = {
        let bytes = std::fs::read(&options.state).map_err(|source| BenchError::Io {
            what: "cannot read the state `ingest` leaves (run ingest first)",
            path: options.state.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes)?
    };
    let runtime = crate::ops::runtime()?;
    let rss_before = process.map(|p| p.rss_bytes()).transpose()?;
    let mut figures = Vec::new();
    for query in selected {
        let path = request_path(&query, &state);
        let mut walls = Vec::with_capacity(options.rounds);
        let mut cpus = Vec::with_capacity(options.rounds);
        let mut last = None;
        for _ in 0..options.rounds {
            let cpu_before = process.map(|p| p.cpu_seconds()).transpose()?;
            let started = Instant::now();
            let answer = runtime.block_on(async {
                let mut connection = Connection::open(&target).await?;
                connection
                    .send(
                        Method::GET,
                        &path,
                        &[(HeaderName::from_static("x-scope-orgid"), &state.tenant)],
                        Bytes::new(),
                    )
                    .await
            })?;
            walls.push(started.elapsed().as_secs_f64());
            if let (Some(p), Some(before)) = (process, cpu_before) {
                cpus.push(p.cpu_seconds()? - before);
            }
            last = Some(answer);
        }
        let answer = last.expect("rounds > 0");
        figures.push(QueryFigures {
            name: query.name,
            status: answer.status.as_u16(),
            min_s: round(walls.iter().copied().fold(f64::INFINITY, f64::min), 4),
            median_s: round(median(&walls), 4),
            cpu_s: process.map(|_| round(median(&cpus), 3)),
            resp_bytes: answer.body.len(),
            results: count_results(&answer.body),
        });
    }
    let to_mb = |b: u64| round(b as f64 / (1024.0 * 1024.0), 1);
    Ok(QueryReport {
        rounds: options.rounds,
        server_rss_mb_before: rss_before.map(to_mb),
        queries: figures,
        server_peak_rss_mb: process.map(|p| p.peak_rss_bytes()).transpose()?.map(to_mb),
        load_average: load_average(),
    })
}

/// The queries named in `only` (all of them when it is empty), in the list's order.
fn select(all: Vec<BenchQuery>, only: &[String]) -> Result<Vec<BenchQuery>> {
    if let Some(unknown) = only
        .iter()
        .find(|n| !all.iter().any(|q| q.name == n.as_str()))
    {
        let names: Vec<_> = all.iter().map(|q| q.name).collect();
        return Err(BenchError::Usage(format!(
            "unknown query {unknown:?}; the queries are {}",
            names.join(", ")
        )));
    }
    Ok(all
        .into_iter()
        .filter(|q| only.is_empty() || only.iter().any(|n| n == q.name))
        .collect())
}

fn request_path(query: &BenchQuery, state: &State) -> String {
    let mut params = vec![
        ("start", state.start_ns.to_string()),
        ("end", state.end_ns.to_string()),
    ];
    let path = match query.kind {
        Kind::Range => {
            params.push(("query", query.text.clone()));
            "/loki/api/v1/query_range".to_string()
        }
        Kind::Labels => "/loki/api/v1/labels".to_string(),
        Kind::LabelValues => format!("/loki/api/v1/label/{}/values", query.text),
    };
    params.extend(query.extra.iter().map(|(k, v)| (*k, v.to_string())));
    format!("{path}?{}", query_string(&params))
}

/// Counts what an answer holds, as a cheap check that both servers found the same data.
fn count_results(body: &[u8]) -> u64 {
    let Ok(answer) = serde_json::from_slice::<Value>(body) else {
        return 0;
    };
    match &answer["data"] {
        Value::Array(items) => items.len() as u64,
        data => match (data["resultType"].as_str(), data["result"].as_array()) {
            (Some("streams"), Some(streams)) => streams
                .iter()
                .map(|s| s["values"].as_array().map_or(0, |v| v.len() as u64))
                .sum(),
            (_, Some(series)) => series.len() as u64,
            _ => 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State {
            start_ns: 10,
            end_ns: 20,
            tenant: "bench".into(),
            lines: 100,
            streams: 10,
        }
    }

    #[test]
    fn the_query_list_matches_the_python_tool() {
        let names: Vec<_> = queries().iter().map(|q| q.name).collect();
        assert_eq!(
            names,
            [
                "needle",
                "filter_count",
                "json_status",
                "log_volume",
                "recent_logs",
                "regex_logs",
                "labels",
                "label_values"
            ]
        );
        let regex = &queries()[5];
        assert_eq!(
            regex.text,
            r#"{app="bench", env="prod"} |~ "status\":5[0-9]{2}" | json | duration_ms > 1500"#
        );
    }

    #[test]
    fn selects_queries_by_name() {
        let all = select(queries(), &[]).unwrap();
        assert_eq!(all.len(), 8);
        let two = select(queries(), &["log_volume".into(), "needle".into()]).unwrap();
        let names: Vec<_> = two.iter().map(|q| q.name).collect();
        assert_eq!(names, ["needle", "log_volume"]);
        assert!(select(queries(), &["nope".into()]).is_err());
    }

    #[test]
    fn builds_request_paths() {
        let q = queries();
        assert_eq!(
            request_path(&q[4], &state()),
            "/loki/api/v1/query_range?start=10&end=20&query=%7Bapp%3D%22bench%22%2C+service%3D%22svc-1%22%7D&limit=1000"
        );
        assert_eq!(
            request_path(&q[6], &state()),
            "/loki/api/v1/labels?start=10&end=20"
        );
        assert_eq!(
            request_path(&q[7], &state()),
            "/loki/api/v1/label/pod/values?start=10&end=20"
        );
    }

    #[test]
    fn counts_entries_series_and_values() {
        let streams = br#"{"status":"success","data":{"resultType":"streams","result":[
            {"stream":{"a":"1"},"values":[["1","x"],["2","y"]]},{"stream":{"a":"2"},"values":[["3","z"]]}]}}"#;
        assert_eq!(count_results(streams), 3);
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{},"values":[[1,"2"]]},{"metric":{"s":"500"},"values":[]}]}}"#;
        assert_eq!(count_results(matrix), 2);
        let labels = br#"{"status":"success","data":["app","env","pod"]}"#;
        assert_eq!(count_results(labels), 3);
        assert_eq!(count_results(b"not json"), 0);
    }
}
