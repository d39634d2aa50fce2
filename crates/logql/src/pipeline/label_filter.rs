//! Label filters: string matchers, numeric/duration/bytes comparisons and `ip()`,
//! combined with `and` (both sides always run) and `or` (short-circuits).
//!
//! Regex label filters copy Loki 3.4's rewrite of simple regexes into substring tests
//! (logql.md §2.11.1, grafana/loki#23892): `al.*`, `.*al` and alternations of literals
//! with a common prefix (`warn|warning`) match *anywhere* in the value, so
//! `name=~"al.*"` keeps `prealpha`. We copy it because clients compare answers with Loki;
//! every other regex is anchored as documented.

use fenrir_common::{MatchOp, Matcher};
use memchr::memmem;

use super::convert::{parse_go_duration, parse_go_float, parse_humanize_bytes};
use super::ip::IpMatcher;
use super::labels::{LineLabels, ERROR_LABEL, ERR_LABEL_FILTER};
use crate::ast::{CmpOp, LabelFilter};

#[derive(Debug, Clone)]
enum RegexTest {
    /// The value equals one of these (ASCII case-insensitively when `fold`).
    Equals {
        values: Vec<String>,
        fold: bool,
    },
    /// The value contains one of these (the Loki quirk).
    Contains {
        finders: Vec<memmem::Finder<'static>>,
        lowered: bool,
    },
    Anchored(Matcher),
}

impl RegexTest {
    fn new(name: &str, src: &str) -> Result<RegexTest, String> {
        if let Some(t) = simplify(src) {
            return Ok(t);
        }
        Matcher::new(MatchOp::Re, name, src)
            .map(RegexTest::Anchored)
            .map_err(|e| e.to_string())
    }

    fn is_match(&self, value: &str) -> bool {
        match self {
            RegexTest::Equals { values, fold } => values.iter().any(|v| {
                if *fold {
                    v.eq_ignore_ascii_case(value)
                } else {
                    v == value
                }
            }),
            RegexTest::Contains { finders, lowered } => {
                if *lowered {
                    let lower = value.to_ascii_lowercase();
                    finders.iter().any(|f| f.find(lower.as_bytes()).is_some())
                } else {
                    finders.iter().any(|f| f.find(value.as_bytes()).is_some())
                }
            }
            RegexTest::Anchored(m) => m.matches(value),
        }
    }
}

fn is_literal(s: &str) -> bool {
    !s.is_empty() && !s.bytes().any(|b| b"\\.+*?()|[]{}^$".contains(&b))
}

/// The shapes Loki turns into string tests; `None` for everything else.
fn simplify(src: &str) -> Option<RegexTest> {
    let (fold, body) = match src.strip_prefix("(?i)") {
        Some(rest) => (true, rest),
        None => (false, src),
    };
    if fold && !body.is_ascii() {
        return None;
    }
    let contains = |parts: Vec<&str>| RegexTest::Contains {
        finders: parts
            .into_iter()
            .map(|p| {
                let p = if fold {
                    p.to_ascii_lowercase()
                } else {
                    p.to_string()
                };
                memmem::Finder::new(p.as_bytes()).into_owned()
            })
            .collect(),
        lowered: fold,
    };
    let one_sided = body
        .strip_prefix(".*")
        .map(|b| b.strip_suffix(".*").unwrap_or(b))
        .or_else(|| body.strip_suffix(".*"));
    if let Some(core) = one_sided {
        return is_literal(core).then(|| contains(vec![core]));
    }
    let alternatives: Vec<&str> = body.split('|').collect();
    if !alternatives.iter().all(|a| is_literal(a)) {
        return None;
    }
    if alternatives.len() > 1 {
        let first = alternatives[0].as_bytes()[0];
        let shared_prefix = alternatives.iter().all(|a| {
            let b = a.as_bytes()[0];
            if fold {
                b.eq_ignore_ascii_case(&first)
            } else {
                b == first
            }
        });
        if shared_prefix {
            // Go factors the common prefix out and Loki's rewrite then tests substrings.
            return Some(contains(alternatives));
        }
    }
    Some(RegexTest::Equals {
        values: alternatives.into_iter().map(str::to_string).collect(),
        fold,
    })
}

#[derive(Debug, Clone)]
enum StringTest {
    Eq(String),
    Neq(String),
    Re(RegexTest),
    Nre(RegexTest),
}

#[derive(Debug, Clone)]
enum Compiled {
    And(Box<Compiled>, Box<Compiled>),
    Or(Box<Compiled>, Box<Compiled>),
    Str {
        name: String,
        test: StringTest,
    },
    Number {
        name: String,
        op: CmpOp,
        value: f64,
    },
    Duration {
        name: String,
        op: CmpOp,
        value: i64,
    },
    Bytes {
        name: String,
        op: CmpOp,
        value: u64,
    },
    Ip {
        name: String,
        negated: bool,
        ip: IpMatcher,
    },
}

/// A compiled label filter stage.
#[derive(Debug, Clone)]
pub(crate) struct LabelFilterStage {
    root: Compiled,
}

fn compare<T: PartialOrd>(op: CmpOp, a: T, b: T) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Neq => a != b,
        CmpOp::Gt => a > b,
        CmpOp::Gte => a >= b,
        CmpOp::Lt => a < b,
        CmpOp::Lte => a <= b,
    }
}

impl LabelFilterStage {
    pub(crate) fn new(filter: &LabelFilter) -> Result<LabelFilterStage, String> {
        Ok(LabelFilterStage {
            root: compile(filter)?,
        })
    }

    pub(crate) fn keep(&self, labels: &mut LineLabels) -> bool {
        eval(&self.root, labels)
    }

    /// Every label name the filter tests, in order.
    pub(crate) fn label_names(&self, out: &mut Vec<String>) {
        fn walk(f: &Compiled, out: &mut Vec<String>) {
            match f {
                Compiled::And(a, b) | Compiled::Or(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Compiled::Str { name, .. }
                | Compiled::Number { name, .. }
                | Compiled::Duration { name, .. }
                | Compiled::Bytes { name, .. }
                | Compiled::Ip { name, .. } => out.push(name.clone()),
            }
        }
        walk(&self.root, out);
    }
}

fn compile(filter: &LabelFilter) -> Result<Compiled, String> {
    Ok(match filter {
        LabelFilter::And(a, b) => Compiled::And(Box::new(compile(a)?), Box::new(compile(b)?)),
        LabelFilter::Or(a, b) => Compiled::Or(Box::new(compile(a)?), Box::new(compile(b)?)),
        LabelFilter::Parens(inner) => compile(inner)?,
        LabelFilter::String { name, op, value } => Compiled::Str {
            name: name.clone(),
            test: match op {
                MatchOp::Eq => StringTest::Eq(value.clone()),
                MatchOp::Neq => StringTest::Neq(value.clone()),
                MatchOp::Re => StringTest::Re(RegexTest::new(name, value)?),
                MatchOp::Nre => StringTest::Nre(RegexTest::new(name, value)?),
            },
        },
        LabelFilter::Number { name, op, value } => Compiled::Number {
            name: name.clone(),
            op: *op,
            value: *value,
        },
        LabelFilter::Duration { name, op, value } => Compiled::Duration {
            name: name.clone(),
            op: *op,
            value: *value,
        },
        LabelFilter::Bytes { name, op, value } => Compiled::Bytes {
            name: name.clone(),
            op: *op,
            value: *value,
        },
        LabelFilter::Ip {
            name,
            negated,
            pattern,
        } => Compiled::Ip {
            name: name.clone(),
            negated: *negated,
            ip: IpMatcher::new(pattern)?,
        },
    })
}

/// Conversion filters: a missing label drops the line; a line that already has an error
/// passes untouched (only string filters can remove errors, and the first error keeps
/// its details); a value that does not convert passes with `LabelFilterErr`.
fn converted<T>(
    labels: &mut LineLabels,
    name: &str,
    convert: impl Fn(&str) -> Result<T, String>,
    test: impl Fn(T) -> bool,
) -> bool {
    let Some(raw) = labels.get(name) else {
        return false;
    };
    if labels.has_err() {
        return true;
    }
    match convert(raw) {
        Ok(v) => test(v),
        Err(details) => {
            labels.set_err(ERR_LABEL_FILTER, Some(&details));
            true
        }
    }
}

fn eval(f: &Compiled, labels: &mut LineLabels) -> bool {
    match f {
        Compiled::And(a, b) => {
            let left = eval(a, labels);
            let right = eval(b, labels);
            left && right
        }
        Compiled::Or(a, b) => eval(a, labels) || eval(b, labels),
        Compiled::Str { name, test } => {
            let value = if name == ERROR_LABEL {
                labels.err().unwrap_or("")
            } else {
                labels.get(name).unwrap_or("")
            };
            match test {
                StringTest::Eq(v) => value == v,
                StringTest::Neq(v) => value != v,
                StringTest::Re(r) => r.is_match(value),
                StringTest::Nre(r) => !r.is_match(value),
            }
        }
        Compiled::Number { name, op, value } => {
            converted(labels, name, parse_go_float, |v| compare(*op, v, *value))
        }
        Compiled::Duration { name, op, value } => {
            converted(labels, name, parse_go_duration, |v| compare(*op, v, *value))
        }
        Compiled::Bytes { name, op, value } => converted(labels, name, parse_humanize_bytes, |v| {
            compare(*op, v, *value)
        }),
        Compiled::Ip { name, negated, ip } => {
            if labels.has_err() {
                return true;
            }
            match labels.get(name) {
                None => false,
                Some(v) => ip.matches_any_in(v) != *negated,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::labels::ERR_JSON;
    use fenrir_common::LabelSet;

    fn labels(parsed: &[(&str, &str)]) -> LineLabels {
        let mut l = LineLabels::new(LabelSet::from_pairs([("app", "api"), ("pod", "xapi-1")]));
        l.reset(&[]);
        for (k, v) in parsed {
            l.set_parsed(k, v);
        }
        l
    }

    fn s(name: &str, op: MatchOp, value: &str) -> LabelFilter {
        LabelFilter::String {
            name: name.into(),
            op,
            value: value.into(),
        }
    }

    fn num(name: &str, op: CmpOp, value: f64) -> LabelFilter {
        LabelFilter::Number {
            name: name.into(),
            op,
            value,
        }
    }

    fn keep(f: &LabelFilter, l: &mut LineLabels) -> bool {
        LabelFilterStage::new(f).unwrap().keep(l)
    }

    #[test]
    fn string_filters_treat_missing_as_empty() {
        let mut l = labels(&[]);
        assert!(keep(&s("env", MatchOp::Eq, ""), &mut l));
        assert!(keep(&s("env", MatchOp::Re, ".*"), &mut l));
        assert!(!keep(&s("env", MatchOp::Re, ".+"), &mut l));
        assert!(keep(&s("app", MatchOp::Neq, "web"), &mut l));
    }

    #[test]
    fn regex_anchoring_follows_loki() {
        let mut l = labels(&[("name", "prealpha"), ("level", "prewarn"), ("x", "bar")]);
        // The quirk: one-sided wildcards and shared-prefix alternations are substring tests.
        assert!(keep(&s("name", MatchOp::Re, "al.*"), &mut l));
        assert!(keep(&s("pod", MatchOp::Re, "api.*"), &mut l));
        assert!(keep(&s("level", MatchOp::Re, "warn|warning"), &mut l));
        // Shapes that are anchored correctly.
        assert!(!keep(&s("name", MatchOp::Re, "al[a-z]*"), &mut l));
        assert!(!keep(&s("level", MatchOp::Re, "warn|error"), &mut l));
        assert!(!keep(&s("name", MatchOp::Re, "alpha"), &mut l));
        assert!(keep(&s("x", MatchOp::Re, "foo|bar"), &mut l));
        assert!(keep(&s("name", MatchOp::Re, ".*alp.*"), &mut l));
        assert!(keep(&s("x", MatchOp::Re, "(?i)BAR"), &mut l));
        assert_ne!(
            keep(&s("x", MatchOp::Nre, "b.r|q"), &mut l),
            keep(&s("x", MatchOp::Re, "b.r|q"), &mut l)
        );
    }

    #[test]
    fn numeric_missing_drops_bad_value_errors_and_passes() {
        let mut l = labels(&[("status", "503"), ("latency", "n/a"), ("empty", "")]);
        assert!(keep(&num("status", CmpOp::Gte, 500.0), &mut l));
        assert!(!keep(&num("status", CmpOp::Lt, 300.0), &mut l));
        assert!(!keep(&num("missing", CmpOp::Gt, 0.0), &mut l));
        assert!(!l.has_err());
        assert!(keep(&num("empty", CmpOp::Gt, 0.0), &mut l));
        assert_eq!(l.err(), Some(ERR_LABEL_FILTER));
        assert_eq!(
            l.err_details(),
            Some(r#"strconv.ParseFloat: parsing "": invalid syntax"#)
        );
        // The first error owns the details.
        assert!(keep(&num("latency", CmpOp::Gt, 0.0), &mut l));
        assert_eq!(
            l.err_details(),
            Some(r#"strconv.ParseFloat: parsing "": invalid syntax"#)
        );
    }

    #[test]
    fn or_short_circuits_and_evaluates_both() {
        let dur = LabelFilter::Duration {
            name: "latency".into(),
            op: CmpOp::Gt,
            value: 1_000_000_000,
        };
        let get = s("method", MatchOp::Eq, "GET");
        let mut l = labels(&[("latency", "n/a"), ("method", "GET")]);
        assert!(keep(
            &LabelFilter::Or(Box::new(get.clone()), Box::new(dur.clone())),
            &mut l
        ));
        assert!(!l.has_err(), "or stops after a match");
        assert!(keep(
            &LabelFilter::Or(Box::new(dur.clone()), Box::new(get.clone())),
            &mut l
        ));
        assert_eq!(l.err(), Some(ERR_LABEL_FILTER));
        assert_eq!(l.err_details(), Some(r#"time: invalid duration "n/a""#));
        let mut l = labels(&[("latency", "n/a"), ("method", "POST")]);
        assert!(!keep(
            &LabelFilter::And(Box::new(get), Box::new(dur)),
            &mut l
        ));
        assert_eq!(l.err(), Some(ERR_LABEL_FILTER), "and runs both sides");
    }

    #[test]
    fn duration_and_bytes_filters() {
        let mut l = labels(&[("duration", "1.2s"), ("bytes", "2MiB"), ("d", "1d")]);
        let d = |name: &str, value| LabelFilter::Duration {
            name: name.into(),
            op: CmpOp::Gt,
            value,
        };
        assert!(keep(&d("duration", 1_000_000_000), &mut l));
        assert!(!keep(&d("duration", 2_000_000_000), &mut l));
        let b = LabelFilter::Bytes {
            name: "bytes".into(),
            op: CmpOp::Gte,
            value: 1_000_000,
        };
        assert!(keep(&b, &mut l));
        assert!(keep(&d("d", 0), &mut l));
        assert_eq!(
            l.err_details(),
            Some(r#"time: unknown unit "d" in duration "1d""#)
        );
    }

    #[test]
    fn error_label_filters() {
        let mut l = labels(&[]);
        l.set_err(ERR_JSON, Some("x"));
        assert!(keep(&s("__error__", MatchOp::Eq, "JSONParserErr"), &mut l));
        assert!(!keep(&s("__error__", MatchOp::Eq, ""), &mut l));
        assert!(
            keep(&s("__error_details__", MatchOp::Eq, ""), &mut l),
            "details always read as empty"
        );
        assert!(!keep(&num("__error__", CmpOp::Gt, 0.0), &mut l));
    }

    #[test]
    fn ip_label_filter() {
        let f = LabelFilter::Ip {
            name: "addr".into(),
            negated: false,
            pattern: "10.0.0.0/8".into(),
        };
        let mut l = labels(&[("addr", "client 10.0.0.7:80")]);
        assert!(keep(&f, &mut l));
        let mut l = labels(&[("addr", "192.168.1.1")]);
        assert!(!keep(&f, &mut l));
        l.set_err(ERR_JSON, None);
        assert!(keep(&f, &mut l), "errored lines pass");
        let mut l = labels(&[]);
        assert!(!keep(&f, &mut l), "missing label drops");
    }
}
