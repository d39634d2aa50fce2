//! Loki's request parameters: the merged form (query string plus urlencoded POST body),
//! its timestamp and duration formats, and the default time bounds.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap, Method};

use crate::ApiError;

const NANOS: i64 = 1_000_000_000;

/// Query parameters from the URL and, for form POSTs, the body; repeated keys kept.
#[derive(Debug, Default, Clone)]
pub(crate) struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    pub(crate) fn parse(
        method: &Method,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Self {
        let mut pairs: Vec<(String, String)> = query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if *method == Method::POST && is_form {
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        Form { pairs }
    }

    /// The first value of `key`, if present and non-empty.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub(crate) fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Loki's timestamp parameter formats, in its order: float seconds (fraction rounded to
/// ms), integer seconds (≤ 10 digits) or nanoseconds, then RFC3339.
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    if s.contains('.') {
        if let Ok(f) = s.parse::<f64>() {
            let secs = f.trunc();
            let ms = ((f - secs) * 1000.0).round();
            return Ok(secs as i64 * NANOS + ms as i64 * 1_000_000);
        }
    }
    if let Ok(n) = s.parse::<i64>() {
        return Ok(if s.len() <= 10 {
            n.saturating_mul(NANOS)
        } else {
            n
        });
    }
    fenrir_common::time::parse_rfc3339(s).ok_or_else(|| {
        format!("parsing time \"{s}\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"{s}\" as \"2006\"")
    })
}

/// A duration parameter (`step`, `interval`): float seconds or a Prometheus duration.
pub(crate) fn parse_step(s: &str) -> Result<i64, ApiError> {
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() {
            return Ok((f * NANOS as f64).round() as i64);
        }
    }
    parse_prometheus_duration(s)
        .or_else(|| parse_go_duration(s))
        .ok_or_else(|| ApiError::bad_request(format!("cannot parse \"{s}\" to a valid duration")))
}

/// Prometheus durations: `1h30m`, `500ms`, `2d`, units ms, s, m, h, d, w, y, in order.
pub(crate) fn parse_prometheus_duration(s: &str) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(0);
    }
    let units: [(&str, i64); 7] = [
        ("y", 365 * 86_400 * NANOS),
        ("w", 7 * 86_400 * NANOS),
        ("d", 86_400 * NANOS),
        ("h", 3600 * NANOS),
        ("m", 60 * NANOS),
        ("s", NANOS),
        ("ms", 1_000_000),
    ];
    let mut rest = s;
    let mut total: i64 = 0;
    let mut last_unit = 0usize;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (idx, (name, mult)) = units
            .iter()
            .enumerate()
            .filter(|(_, (u, _))| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")))
            .max_by_key(|(_, (u, _))| u.len())?;
        if idx < last_unit {
            return None;
        }
        last_unit = idx + 1;
        rest = &rest[name.len()..];
        total = total.checked_add(n.checked_mul(*mult)?)?;
    }
    Some(total)
}

/// `start`/`end` with Loki's defaults: end = now, start = min(end, now) − since (1h).
pub(crate) fn bounds(form: &Form) -> Result<(i64, i64), ApiError> {
    let now = now_ns();
    let end = match form.get("end") {
        Some(s) => parse_time(s)
            .map_err(|e| ApiError::bad_request(format!("could not parse 'end' parameter: {e}")))?,
        None => now,
    };
    let since = match form.get("since") {
        Some(s) => parse_prometheus_duration(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "could not parse 'since' parameter: cannot parse \"{s}\" to a valid duration"
            ))
        })?,
        None => 3600 * NANOS,
    };
    let start = match form.get("start") {
        Some(s) => parse_time(s).map_err(|e| {
            ApiError::bad_request(format!("could not parse 'start' parameter: {e}"))
        })?,
        None => end.min(now) - since,
    };
    Ok((start, end))
}

/// [`bounds`] for label lookups: an instant (`start == end`, Grafana's log context)
/// covers the millisecond it names, since Grafana sends row times at ms precision.
pub(crate) fn label_bounds(form: &Form) -> Result<(i64, i64), ApiError> {
    let (start, end) = bounds(form)?;
    Ok(if end == start {
        (start, start.saturating_add(1_000_000))
    } else {
        (start, end)
    })
}

/// Go's `time.ParseDuration` (`1.5s`, `2h0m0s`, `300ms`, `1us`), which Grafana 8–9 sent
/// as `step`.
fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut last_mult = f64::INFINITY;
    while !rest.is_empty() {
        let n = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let (unit, mult) = [
            ("ns", 1.0),
            ("us", 1e3),
            ("µs", 1e3),
            ("μs", 1e3),
            ("ms", 1e6),
            ("s", 1e9),
            ("m", 60e9),
            ("h", 3600e9),
        ]
        .into_iter()
        .filter(|(u, _)| rest.starts_with(u))
        .max_by_key(|(u, _)| u.len())?;
        // Units in falling order only, as Prometheus durations (`30m1h` stays an error).
        if mult >= last_mult {
            return None;
        }
        last_mult = mult;
        rest = &rest[unit.len()..];
        total += value * mult;
    }
    let ns = if neg { -total } else { total };
    (ns.abs() < i64::MAX as f64).then_some(ns.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_formats() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000 * NANOS);
        assert_eq!(
            parse_time("1700000000000000000").unwrap(),
            1_700_000_000 * NANOS
        );
        assert_eq!(
            parse_time("1700000000.1234567").unwrap(),
            1_700_000_000 * NANOS + 123_000_000
        );
        assert_eq!(
            parse_time("2024-07-07T08:00:00Z").unwrap(),
            1_720_339_200 * NANOS
        );
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_step("60").unwrap(), 60 * NANOS);
        assert_eq!(parse_step("0.5").unwrap(), NANOS / 2);
        assert_eq!(parse_step("60000ms").unwrap(), 60 * NANOS);
        assert_eq!(parse_step("1h30m").unwrap(), 5400 * NANOS);
        assert!(parse_step("5minutes").is_err());
        assert_eq!(parse_step("15000ms").unwrap(), 15 * NANOS);
        assert_eq!(parse_step("1m0s").unwrap(), 60 * NANOS);
        assert_eq!(parse_step("1.5s").unwrap(), 1_500_000_000);
        assert_eq!(parse_step("2h0m0s").unwrap(), 7200 * NANOS);
        assert_eq!(parse_step("15").unwrap(), 15 * NANOS);
        assert!(parse_step("30m1h").is_err());
    }
}
