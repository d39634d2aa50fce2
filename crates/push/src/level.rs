//! `detected_level`: the log level Loki derives for every entry (`discover_log_levels`).
//!
//! In order: a level-like stream label, a level-like structured-metadata field, the OTLP
//! `severity_number`, then the line itself (JSON keys up to depth 2, logfmt keys, and
//! otherwise substring heuristics). Values are normalised to `trace, debug, info, warn,
//! error, critical, fatal`, or `unknown` when the line gives nothing away.

use std::borrow::Cow;
use std::fmt;

use fenrir_common::LabelSet;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The structured-metadata name Loki stores the level under.
pub(crate) const DETECTED_LEVEL: &str = "detected_level";

/// OTLP severity number, as the OTLP ingestion path stores it in structured metadata.
const SEVERITY_NUMBER: &str = "severity_number";

/// Field names that carry a level, in priority order (Loki's default list).
const LEVEL_FIELDS: [&str; 11] = [
    "level",
    "LEVEL",
    "Level",
    "log.level",
    "severity",
    "SEVERITY",
    "Severity",
    "SeverityText",
    "lvl",
    "LVL",
    "Lvl",
];

/// How deep JSON objects are searched for a level field (top level is depth 0).
const JSON_MAX_DEPTH: usize = 2;

const UNKNOWN: &str = "unknown";

/// The value of the first level-like stream label, looked up once per stream.
pub(crate) fn stream_level(stream: &LabelSet) -> Option<&str> {
    LEVEL_FIELDS.iter().find_map(|f| stream.get(f))
}

/// The `detected_level` for an entry without one, given its stream's [`stream_level`];
/// `None` when a level field exists but is empty (Loki then adds nothing).
#[cfg(test)]
pub(crate) fn detect_level(
    stream_level: Option<&str>,
    structured_metadata: &[(String, String)],
    line: &str,
) -> Option<String> {
    let sm_get = |name: &str| {
        structured_metadata
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    detect_level_with(stream_level, sm_get, line).map(Cow::into_owned)
}

/// [`detect_level`] with the entry's metadata looked up by `sm_get`; Loki's level names
/// are static, so the common case allocates nothing.
pub(crate) fn detect_level_with<'a>(
    stream_level: Option<&'a str>,
    sm_get: impl Fn(&str) -> Option<&'a str>,
    line: &str,
) -> Option<Cow<'static, str>> {
    let from_fields = stream_level.or_else(|| LEVEL_FIELDS.iter().find_map(|f| sm_get(f)));
    let level: Cow<'static, str> = match from_fields {
        Some(v) => normalize_level(v).map_or_else(|| Cow::Owned(v.to_string()), Cow::Borrowed),
        None => match sm_get(SEVERITY_NUMBER).filter(|v| !v.is_empty()) {
            Some(n) => Cow::Borrowed(otlp_severity_level(n)),
            None => Cow::Borrowed(level_from_line(line)),
        },
    };
    (!level.is_empty()).then_some(level)
}

/// A level name in any case (and common abbreviations) mapped to Loki's spelling.
pub(crate) fn normalize_level(v: &str) -> Option<&'static str> {
    let is = |names: &[&str]| names.iter().any(|n| v.eq_ignore_ascii_case(n));
    Some(if is(&["trace", "trc"]) {
        "trace"
    } else if is(&["debug", "dbg"]) {
        "debug"
    } else if is(&["info", "inf", "information"]) {
        "info"
    } else if is(&["warn", "wrn", "warning"]) {
        "warn"
    } else if is(&["error", "err"]) {
        "error"
    } else if is(&["critical"]) {
        "critical"
    } else if is(&["fatal"]) {
        "fatal"
    } else {
        return None;
    })
}

/// OTLP `SeverityNumber` ranges: 1–4 trace, 5–8 debug, 9–12 info, 13–16 warn,
/// 17–20 error, 21–24 fatal. Unparsable numbers count as info, as in Loki.
fn otlp_severity_level(n: &str) -> &'static str {
    match n.parse::<i64>() {
        Err(_) => "info",
        Ok(0) => UNKNOWN,
        Ok(n) if n <= 4 => "trace",
        Ok(n) if n <= 8 => "debug",
        Ok(n) if n <= 12 => "info",
        Ok(n) if n <= 16 => "warn",
        Ok(n) if n <= 20 => "error",
        Ok(n) if n <= 24 => "fatal",
        Ok(_) => UNKNOWN,
    }
}

fn level_from_line(line: &str) -> &'static str {
    let field = if is_json_object(line) {
        json_level(line)
    } else if line.contains('=') {
        logfmt_level(line)
    } else {
        None
    };
    field
        .and_then(|v| normalize_level(&v))
        .unwrap_or_else(|| level_from_keywords(line))
}

/// Loki's cheap JSON test: first and last non-space characters are braces.
fn is_json_object(line: &str) -> bool {
    let t = line.trim();
    t.starts_with('{') && t.ends_with('}')
}

/// Substring heuristics for lines that are neither JSON nor logfmt with a level field.
fn level_from_keywords(line: &str) -> &'static str {
    let any = |needles: &[&str]| needles.iter().any(|n| line.contains(n));
    if any(&["info", "INFO"]) {
        "info"
    } else if any(&["err:", "ERR:", "[err]", "[ERR]", "error", "ERROR"]) {
        "error"
    } else if any(&["warn:", "WARN:", "[warn]", "[WARN]", "warning", "WARNING"]) {
        "warn"
    } else if any(&["critical:", "CRITICAL:", "[critical]", "[CRITICAL]"]) {
        "critical"
    } else if any(&["debug:", "DEBUG:", "[debug]", "[DEBUG]"]) {
        "debug"
    } else {
        UNKNOWN
    }
}

/// The first string value (document order) under a level field name, searching nested
/// objects up to [`JSON_MAX_DEPTH`]. Stops parsing at the first match.
fn json_level(line: &str) -> Option<String> {
    if let Some(found) = flat_json_level(line) {
        return found.map(str::to_owned);
    }
    let mut found = None;
    let mut de = serde_json::Deserializer::from_str(line);
    // An error is either malformed JSON or our early stop; `found` tells them apart.
    let _ = de.deserialize_map(ObjectScan {
        depth: 0,
        found: &mut found,
    });
    found
}

/// [`json_level`] for the common shape, without serde: a flat object whose keys and
/// string values need no unescaping. `None` means "not sure": nested values, escapes,
/// exponents or anything odd go to serde, which then decides exactly as before.
fn flat_json_level(line: &str) -> Option<Option<&str>> {
    let b = line.as_bytes();
    let mut i = skip_json_space(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_json_space(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return Some(None);
    }
    loop {
        let (key, after_key) = flat_json_string(line, i)?;
        i = skip_json_space(b, after_key);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_json_space(b, i + 1);
        i = match b.get(i)? {
            b'"' => {
                let (value, after_value) = flat_json_string(line, i)?;
                if LEVEL_FIELDS.contains(&key) {
                    return Some(Some(value));
                }
                after_value
            }
            b't' => json_literal(b, i, b"true")?,
            b'f' => json_literal(b, i, b"false")?,
            b'n' => json_literal(b, i, b"null")?,
            b'-' | b'0'..=b'9' => json_plain_number(b, i)?,
            _ => return None,
        };
        i = skip_json_space(b, i);
        match b.get(i)? {
            b',' => i = skip_json_space(b, i + 1),
            b'}' => return Some(None),
            _ => return None,
        }
    }
}

fn skip_json_space(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The string starting with the quote at `i` and the index after its closing quote, if it
/// has no escapes and no control characters.
fn flat_json_string(line: &str, i: usize) -> Option<(&str, usize)> {
    let b = line.as_bytes();
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let len = memchr::memchr2(b'"', b'\\', &b[i + 1..])?;
    let end = i + 1 + len;
    if b[end] != b'"' || b[i + 1..end].iter().any(|&c| c < 0x20) {
        return None;
    }
    // Both ends are ASCII quotes, hence character boundaries.
    Some((&line[i + 1..end], end + 1))
}

fn json_literal(b: &[u8], i: usize, literal: &[u8]) -> Option<usize> {
    b[i..].starts_with(literal).then_some(i + literal.len())
}

/// A short number without exponent: `-?(0|[1-9][0-9]*)(\.[0-9]+)?`.
fn json_plain_number(b: &[u8], start: usize) -> Option<usize> {
    let digits = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = start + usize::from(b[start] == b'-');
    i = match b.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(i),
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        let fraction = digits(i + 1);
        if fraction == i + 1 {
            return None;
        }
        i = fraction;
    }
    let plain = !matches!(b.get(i), Some(b'e' | b'E')) && i - start <= 15;
    plain.then_some(i)
}

struct ObjectScan<'f> {
    depth: usize,
    found: &'f mut Option<String>,
}

const STOP: &str = "level found";

impl<'de> Visitor<'de> for ObjectScan<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(is_level_key) = map.next_key_seed(KeyIsLevel)? {
            map.next_value_seed(ValueScan {
                is_level_key,
                depth: self.depth,
                found: &mut *self.found,
            })?;
            if self.found.is_some() {
                return Err(de::Error::custom(STOP));
            }
        }
        Ok(())
    }
}

struct KeyIsLevel;

impl<'de> DeserializeSeed<'de> for KeyIsLevel {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIsLevel {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(LEVEL_FIELDS.contains(&v))
    }
}

struct ValueScan<'f> {
    is_level_key: bool,
    depth: usize,
    found: &'f mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for ValueScan<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueScan<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if self.is_level_key {
            *self.found = Some(v.to_string());
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.depth + 1 < JSON_MAX_DEPTH {
            return ObjectScan {
                depth: self.depth + 1,
                found: self.found,
            }
            .visit_map(map);
        }
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// The value of the highest-priority level key of a logfmt line (keys compared without
/// case), scanning until the first syntax error as Loki's logfmt decoder does.
fn logfmt_level(line: &str) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for (key, value) in (LogfmtPairs { rest: line }) {
        let Some(rank) = LEVEL_FIELDS
            .iter()
            .position(|f| key.eq_ignore_ascii_case(f))
        else {
            continue;
        };
        if best.is_none_or(|(r, _)| rank < r) {
            best = Some((rank, value.unwrap_or("")));
            if rank == 0 {
                break;
            }
        }
    }
    best.map(|(_, v)| unquote_logfmt(v))
}

/// `key=value` pairs of a logfmt line; a bare `key` has no value. Ends at the first
/// syntax error (`a=b=c`, a quote inside a key or bare value, an unterminated quote).
struct LogfmtPairs<'a> {
    rest: &'a str,
}

impl<'a> Iterator for LogfmtPairs<'a> {
    type Item = (&'a str, Option<&'a str>);

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.rest.trim_start_matches(|c: char| c <= ' ');
        let key_len = s
            .find(|c: char| c <= ' ' || c == '=' || c == '"')
            .unwrap_or(s.len());
        let (key, after) = s.split_at(key_len);
        if key.is_empty() || after.starts_with('"') {
            self.rest = "";
            return None;
        }
        let Some(value_part) = after.strip_prefix('=') else {
            self.rest = after;
            return Some((key, None));
        };
        if let Some(quoted) = value_part.strip_prefix('"') {
            let mut escaped = false;
            let end = quoted.char_indices().find_map(|(i, c)| match (escaped, c) {
                (true, _) => {
                    escaped = false;
                    None
                }
                (false, '\\') => {
                    escaped = true;
                    None
                }
                (false, '"') => Some(i),
                _ => None,
            });
            let Some(end) = end else {
                self.rest = "";
                return None;
            };
            self.rest = &quoted[end + 1..];
            return Some((key, Some(&value_part[..end + 2])));
        }
        let value_len = value_part
            .find(|c: char| c <= ' ')
            .unwrap_or(value_part.len());
        let value = &value_part[..value_len];
        if value.contains(['=', '"']) {
            self.rest = "";
            return None;
        }
        self.rest = &value_part[value_len..];
        Some((key, Some(value)))
    }
}

fn unquote_logfmt(v: &str) -> String {
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(line: &str) -> String {
        detect_level(None, &[], line).unwrap()
    }

    #[test]
    fn levels_from_lines() {
        let cases: &[(&str, &str)] = &[
            // JSON: level fields, nested up to depth 2, values normalised.
            (r#"{"level":"DEBUG","msg":"error here"}"#, "debug"),
            (r#"{"msg":"x","LEVEL":"Critical"}"#, "critical"),
            (r#"{"SEVERITY":"FATAL"}"#, "fatal"),
            (r#"{"level":"ERR"}"#, "error"),
            (r#"{"lvl":"wrn"}"#, "warn"),
            (r#"{"log":{"level":"trace"}}"#, "trace"),
            (r#"{"log.level":"information"}"#, "info"),
            (r#"{"a":{"b":{"level":"warn"}}}"#, UNKNOWN),
            (r#"{"a":[{"level":"warn"}],"level":"info"}"#, "info"),
            (r#"{"level":30,"msg":"x"}"#, UNKNOWN),
            (r#"{"foo":"bar","msg":"with INFO keyword"}"#, "info"),
            (r#"  {"level":"warn"}  "#, "warn"),
            // Malformed JSON falls back to the keyword scan.
            (r#"{"level":"ERROR","message":"truncated payload"#, "error"),
            // logfmt: first-priority key wins, any case, quotes stripped.
            ("ts=1 level=warn msg=x", "warn"),
            (r#"foo=bar msg="keyword error not used" level=Warn"#, "warn"),
            (r#"FOO=bar LEVEL=inFO"#, "info"),
            (r#"severity=critical"#, "critical"),
            (r#"lvl=debug level="error""#, "error"),
            (r#"level=NA msg="nothing""#, UNKNOWN),
            (r#"level=error msg="unterminated quote job=email"#, "error"),
            ("a=b=c level=warn", UNKNOWN),
            (r#"user="a b" action=login ip=10.0.25.61"#, UNKNOWN),
            (r#"foo=bar msg="message with info""#, "info"),
            // Database line with `=` that is not logfmt: keyword scan.
            (
                "2024-07-07 09:59:09.727 UTC [265] WARNING:  statement: SET seen = now()",
                "warn",
            ),
            // Plain text keywords.
            ("INFO: ok", "info"),
            ("WARN: disk usage 91%", "warn"),
            ("this is a warning log", "warn"),
            ("2024-07-07 UTC [1] ERROR:  deadlock detected", "error"),
            ("critical: boom", "critical"),
            ("[CRITICAL] boom", "critical"),
            ("DEBUG: details", "debug"),
            ("[err] x", "error"),
            ("batch step 26 finished", UNKNOWN),
            ("10.3.1.1 - - \"GET /api HTTP/1.1\" 200", UNKNOWN),
            ("", UNKNOWN),
        ];
        for (line, want) in cases {
            assert_eq!(level(line), *want, "{line:?}");
        }
    }

    /// Whatever the fast path answers, serde answers the same.
    fn serde_json_level(line: &str) -> Option<String> {
        let mut found = None;
        let mut de = serde_json::Deserializer::from_str(line);
        let _ = de.deserialize_map(ObjectScan {
            depth: 0,
            found: &mut found,
        });
        found
    }

    #[test]
    fn flat_json_scan_agrees_with_serde() {
        let sure = [
            r#"{"ts":250,"level":"INFO","logger":"a.b","status":400,"x":-0.5}"#,
            r#" { "a" : true , "b":false,"c":null, "lvl" : "warn" } "#,
            r#"{"a":1,"b":"x"}"#,
            r#"{}"#,
            r#"{"level":30,"msg":"x"}"#,
            r#"{"msg":"info","severity":"debug"}"#,
            r#"{"a":"é","Level":"ünï"}"#,
        ];
        for line in sure {
            let fast = flat_json_level(line);
            assert!(fast.is_some(), "{line}");
            assert_eq!(
                fast.unwrap().map(str::to_owned),
                serde_json_level(line),
                "{line}"
            );
        }
        let unsure = [
            r#"{"log":{"level":"trace"}}"#,
            r#"{"a":[1],"level":"info"}"#,
            r#"{"le\u0076el":"warn"}"#,
            r#"{"level":"wa\"rn"}"#,
            r#"{"a":1e5,"level":"info"}"#,
            r#"{"a":01,"level":"info"}"#,
            r#"{"a":1.,"level":"info"}"#,
            r#"{"a":tru,"level":"info"}"#,
            r#"{"a":1 "level":"info"}"#,
            "{\"a\":\"tab\there\",\"level\":\"info\"}",
            r#"{"a":12345678901234567890,"level":"info"}"#,
            r#"{"a":1,"#,
            r#"{"level""#,
            r#"["level","info"]"#,
        ];
        for line in unsure {
            assert_eq!(flat_json_level(line), None, "{line}");
        }
    }

    proptest::proptest! {
        #[test]
        fn flat_json_scan_never_disagrees(
            keys in proptest::collection::vec("(level|lvl|msg|a|Severity|x\\\\y|b\\\"c)", 0..5),
            values in proptest::collection::vec("(\"[a-zA-Z \\\\\"]{0,6}\"|-?[0-9]{1,3}(\\.[0-9])?|true|null|1e3|\\{\\}|\\[\\]|01)", 0..5),
            spaces in " {0,2}",
        ) {
            let body: Vec<String> = keys
                .iter()
                .zip(&values)
                .map(|(k, v)| format!("\"{k}\"{spaces}:{spaces}{v}"))
                .collect();
            let line = format!("{{{}}}", body.join(","));
            if let Some(fast) = flat_json_level(&line) {
                proptest::prop_assert_eq!(fast.map(str::to_owned), serde_json_level(&line), "{}", line);
            }
        }
    }

    #[test]
    fn labels_and_metadata_take_precedence() {
        let stream = LabelSet::from_pairs([("app", "x"), ("level", "WaRn")]);
        assert_eq!(
            detect_level(stream_level(&stream), &[], r#"{"level":"error"}"#).unwrap(),
            "warn"
        );
        let stream = LabelSet::from_pairs([("SeverityText", "debug")]);
        let sm = vec![(SEVERITY_NUMBER.to_string(), "13".to_string())];
        assert_eq!(
            detect_level(stream_level(&stream), &sm, "x").unwrap(),
            "debug"
        );
        // Unknown values from fields are kept as they are.
        let stream = LabelSet::from_pairs([("level", "notice")]);
        assert_eq!(
            detect_level(stream_level(&stream), &[], "x").unwrap(),
            "notice"
        );
        let sm = vec![("severity".to_string(), "warn".to_string())];
        assert_eq!(detect_level(None, &sm, "error").unwrap(), "warn");
        let sm = vec![("severity".to_string(), String::new())];
        assert_eq!(detect_level(None, &sm, "error"), None);
    }

    #[test]
    fn otlp_severity_numbers() {
        let cases = [
            ("0", UNKNOWN),
            ("1", "trace"),
            ("7", "debug"),
            ("9", "info"),
            ("13", "warn"),
            ("17", "error"),
            ("24", "fatal"),
            ("25", UNKNOWN),
            ("foo", "info"),
        ];
        for (n, want) in cases {
            let sm = vec![(SEVERITY_NUMBER.to_string(), n.to_string())];
            assert_eq!(detect_level(None, &sm, "error").unwrap(), want, "{n}");
        }
    }

    #[test]
    fn logfmt_scanner_stops_at_errors() {
        let pairs: Vec<_> = LogfmtPairs {
            rest: r#" a=1 b c="x \" y" d= e"#,
        }
        .collect();
        assert_eq!(
            pairs,
            vec![
                ("a", Some("1")),
                ("b", None),
                ("c", Some(r#""x \" y""#)),
                ("d", Some("")),
                ("e", None)
            ]
        );
        assert_eq!(LogfmtPairs { rest: "=x a=1" }.count(), 0);
        assert_eq!(
            LogfmtPairs {
                rest: "a=1 b=2=3 c=4"
            }
            .count(),
            1
        );
    }
}
