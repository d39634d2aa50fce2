//! The reference workload of `loki_bench.py`: JSON access-log lines in streams labelled
//! `app, service, pod, env`, spread evenly over the last hour, batched the way promtail
//! batches them (up to 8 streams and `batch` entries per request), with a needle token in
//! three lines. Same seed, same random calls in the same order: the same lines.

use std::fmt::Write as _;

use bytes::Bytes;
use fenrir_proto::{EntryAdapter, Message, PushRequest, StreamAdapter, Timestamp};

use crate::error::{BenchError, Result};
use crate::pyrandom::PyRandom;

/// The unique token that three lines carry (`"trace":"<needle>"`).
pub(crate) const NEEDLE: &str = "3f2a9c7e-5b1d-4e8f-a6c2-9d0b7e1f4a53";
const SEED: u32 = 42;
const SPAN_NS: i64 = 3600 * 1_000_000_000;
const STREAMS_PER_REQUEST: usize = 8;

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WorkloadSpec {
    pub(crate) lines: u64,
    pub(crate) streams: usize,
    pub(crate) batch: usize,
    /// The end of the hour the data covers.
    pub(crate) now_ns: i64,
}

/// Pre-encoded push bodies (protobuf + snappy block) and what they hold.
pub(crate) struct Workload {
    pub(crate) bodies: Vec<Bytes>,
    pub(crate) lines: u64,
    pub(crate) raw_bytes: u64,
    pub(crate) start_ns: i64,
}

/// One request before encoding: per stream, its label string and `(timestamp, line)`s.
type RawRequest = Vec<(usize, Vec<(i64, String)>)>;

impl WorkloadSpec {
    fn check(&self) -> Result<()> {
        if self.streams == 0 || self.batch == 0 {
            return Err(BenchError::Usage(
                "--streams and --batch must be positive".into(),
            ));
        }
        if self.lines < self.streams as u64 {
            return Err(BenchError::Usage(
                "--lines must be at least --streams".into(),
            ));
        }
        Ok(())
    }

    fn start_ns(&self) -> i64 {
        self.now_ns - SPAN_NS
    }
}

/// Generates and encodes every request up front so that pushing costs the client nothing
/// but the writes.
pub(crate) fn generate(spec: WorkloadSpec) -> Result<Workload> {
    let labels: Vec<Bytes> = (0..spec.streams)
        .map(|s| Bytes::from(stream_labels(s)))
        .collect();
    let mut bodies = Vec::new();
    let mut lines = 0u64;
    let mut raw_bytes = 0u64;
    let mut encoder = snap::raw::Encoder::new();
    for_each_request(spec, |request| {
        let push = PushRequest {
            streams: request
                .into_iter()
                .map(|(stream, entries)| StreamAdapter {
                    labels: labels[stream].clone(),
                    entries: entries
                        .into_iter()
                        .map(|(ts, line)| {
                            lines += 1;
                            raw_bytes += line.len() as u64;
                            EntryAdapter {
                                timestamp: Some(Timestamp::from_unix_nanos(ts)),
                                line: Bytes::from(line),
                                ..Default::default()
                            }
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let body = encoder.compress_vec(&push.encode_to_vec())?;
        bodies.push(Bytes::from(body));
        Ok(())
    })?;
    Ok(Workload {
        bodies,
        lines,
        raw_bytes,
        start_ns: spec.start_ns(),
    })
}

/// The label string of stream `s`, exactly as `loki_bench.py` writes it.
pub(crate) fn stream_labels(s: usize) -> String {
    let env = if s.is_multiple_of(3) { "dev" } else { "prod" };
    format!(
        r#"{{app="bench", service="svc-{}", pod="pod-{s}", env="{env}"}}"#,
        s % 20
    )
}

/// Builds the requests in `loki_bench.py`'s order: rounds over groups of 8 streams, each
/// stream contributing `batch / 8` consecutive entries per request.
fn for_each_request(
    spec: WorkloadSpec,
    mut emit: impl FnMut(RawRequest) -> Result<()>,
) -> Result<()> {
    spec.check()?;
    let mut rng = PyRandom::new(SEED);
    let per_stream = spec.lines / spec.streams as u64;
    let step = SPAN_NS / per_stream as i64;
    let start_ns = spec.start_ns();
    let mut needles: Vec<(usize, u64)> = Vec::with_capacity(3);
    for _ in 0..3 {
        let stream = rng.below(spec.streams as u64) as usize;
        let index = rng.below(per_stream);
        needles.push((stream, index));
    }
    let streams_per_request = spec.streams.min(STREAMS_PER_REQUEST);
    let per_stream_in_request = (spec.batch / streams_per_request).max(1) as u64;
    let mut position = vec![0u64; spec.streams];
    let mut line = String::with_capacity(320);
    loop {
        let mut done = true;
        for group_start in (0..spec.streams).step_by(streams_per_request) {
            let group_end = (group_start + streams_per_request).min(spec.streams);
            let mut request: RawRequest = Vec::new();
            let group = position.iter_mut().enumerate();
            for (stream, position) in group.take(group_end).skip(group_start) {
                let from = *position;
                if from >= per_stream {
                    continue;
                }
                done = false;
                let to = per_stream.min(from + per_stream_in_request);
                let mut entries = Vec::with_capacity((to - from) as usize);
                for k in from..to {
                    line.clear();
                    make_line(&mut rng, k, &mut line);
                    if needles.contains(&(stream, k)) {
                        line.pop();
                        let _ = write!(line, r#","trace":"{NEEDLE}"}}"#);
                    }
                    let ts = start_ns + k as i64 * step + stream as i64;
                    entries.push((ts, line.clone()));
                }
                *position = to;
                request.push((stream, entries));
            }
            if !request.is_empty() {
                emit(request)?;
            }
        }
        if done {
            return Ok(());
        }
    }
}

/// One JSON access-log line: `json.dumps(doc, separators=(",", ":"))` of `make_line`.
fn make_line(rng: &mut PyRandom, i: u64, out: &mut String) {
    let status = rng.choice(&[200, 200, 200, 200, 201, 204, 301, 400, 404, 500]);
    let level = if status >= 500 {
        "ERROR"
    } else {
        rng.choice(&["INFO", "INFO", "INFO", "DEBUG", "WARN"])
    };
    let msg = rng.choice(&["request completed", "LOG", "cache miss", "upstream slow"]);
    let method = rng.choice(&["GET", "GET", "POST", "PUT", "DELETE"]);
    let resource = rng.choice(&["users", "orders", "search", "items"]);
    let id = rng.randint(1, 100_000);
    let duration = rng.randint(1, 2000);
    let bytes = rng.randint(0, 90_000);
    let user = rng.randint(1, 5000);
    let request_id = rng.getrandbits(128);
    let _ = write!(
        out,
        r#"{{"ts":{i},"level":"{level}","logger":"com.example.http.AccessLog","msg":"{msg}","method":"{method}","url":"/api/{resource}/{id}","status":{status},"duration_ms":{duration},"bytes":{bytes},"user":"u{user}","request_id":"{request_id:032x}"}}"#
    );
}

impl From<snap::Error> for BenchError {
    fn from(err: snap::Error) -> Self {
        BenchError::Encode(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(lines: u64, streams: usize) -> WorkloadSpec {
        WorkloadSpec {
            lines,
            streams,
            batch: 2000,
            now_ns: 1_800_000_000_000_000_000,
        }
    }

    fn requests(spec: WorkloadSpec) -> Vec<RawRequest> {
        let mut out = Vec::new();
        for_each_request(spec, |r| {
            out.push(r);
            Ok(())
        })
        .unwrap();
        out
    }

    // Every expected value below was printed by `loki_bench.py`'s own code (CPython 3.11)
    // for 4000 lines in 10 streams, batch 2000.
    #[test]
    fn same_requests_and_lines_as_the_python_tool() {
        let reqs = requests(spec(4000, 10));
        let shape: Vec<(usize, usize)> = reqs
            .iter()
            .map(|r| (r.len(), r.iter().map(|(_, e)| e.len()).sum()))
            .collect();
        assert_eq!(shape, [(8, 2000), (2, 500), (8, 1200), (2, 300)]);
        let raw: usize = reqs
            .iter()
            .flatten()
            .flat_map(|(_, e)| e.iter().map(|(_, l)| l.len()))
            .sum();
        assert_eq!(raw, 928_724);
        let (stream, entries) = &reqs[3][0];
        assert_eq!(*stream, 8);
        assert_eq!(
            entries[0].1,
            r#"{"ts":250,"level":"INFO","logger":"com.example.http.AccessLog","msg":"LOG","method":"DELETE","url":"/api/orders/15973","status":400,"duration_ms":34,"bytes":81255,"user":"u1641","request_id":"260af84bc1d878b8a36c7e7d5c989c01"}"#
        );
    }

    #[test]
    fn needle_sits_in_the_same_three_lines() {
        let reqs = requests(spec(4000, 10));
        let mut found: Vec<(usize, String)> = reqs
            .iter()
            .flatten()
            .flat_map(|(s, e)| e.iter().map(move |(_, l)| (*s, l)))
            .filter(|(_, l)| l.contains(NEEDLE))
            .map(|(s, l)| (s, l.clone()))
            .collect();
        found.sort();
        assert_eq!(found.len(), 3);
        assert_eq!(
            found[0],
            (
                1,
                r#"{"ts":12,"level":"WARN","logger":"com.example.http.AccessLog","msg":"cache miss","method":"DELETE","url":"/api/items/80126","status":400,"duration_ms":804,"bytes":76939,"user":"u936","request_id":"753659efd873dad95a1baf0e591196dc","trace":"3f2a9c7e-5b1d-4e8f-a6c2-9d0b7e1f4a53"}"#
                    .to_string()
            )
        );
        assert_eq!(found[1].0, 3);
        assert_eq!(found[2].0, 4);
    }

    #[test]
    fn timestamps_cover_the_last_hour_in_order_per_stream() {
        let s = spec(4000, 10);
        let reqs = requests(s);
        let mut last = [i64::MIN; 10];
        for (stream, entries) in reqs.iter().flatten() {
            for (ts, _) in entries {
                assert!(*ts > last[*stream]);
                assert!(*ts >= s.now_ns - SPAN_NS && *ts < s.now_ns);
                last[*stream] = *ts;
            }
        }
    }

    #[test]
    fn encoded_bodies_decode_back_to_the_lines() {
        let work = generate(spec(4000, 10)).unwrap();
        assert_eq!(work.bodies.len(), 4);
        assert_eq!(work.lines, 4000);
        assert_eq!(work.raw_bytes, 928_724);
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&work.bodies[1])
            .unwrap();
        let push = PushRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(push.streams.len(), 2);
        assert_eq!(push.streams[0].labels, stream_labels(8).as_bytes());
        assert_eq!(push.streams[0].entries.len(), 250);
    }

    #[test]
    fn labels_follow_the_python_scheme() {
        assert_eq!(
            stream_labels(23),
            r#"{app="bench", service="svc-3", pod="pod-23", env="prod"}"#
        );
        assert_eq!(
            stream_labels(3),
            r#"{app="bench", service="svc-3", pod="pod-3", env="dev"}"#
        );
    }

    #[test]
    fn rejects_empty_workloads() {
        assert!(generate(spec(5, 10)).is_err());
        assert!(generate(WorkloadSpec {
            batch: 0,
            ..spec(100, 10)
        })
        .is_err());
    }
}
