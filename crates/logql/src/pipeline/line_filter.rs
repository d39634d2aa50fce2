//! Line filters: `|=`, `!=`, `|~`, `!~`, `|>`, `!>`, with `or` chains and `ip()`.
//!
//! Substrings use a [`memmem::Finder`] built once; `(?i)literal` and simple regexes
//! (`foo`, `.*foo.*`) become substring tests, as Loki rewrites them.

use memchr::memmem;
use regex::Regex;

use super::ip::IpMatcher;
use super::pattern::Pattern;
use crate::ast::{LineFilter, LineFilterOp, LineFilterValue};

/// One operand of a line filter.
#[derive(Debug, Clone)]
enum Operand {
    /// `|= ""`: every line contains the empty string.
    Always,
    Contains(Box<memmem::Finder<'static>>),
    ContainsFold(FoldFinder),
    Regex(Regex),
    Pattern(Pattern),
    Ip(IpMatcher),
}

impl Operand {
    fn is_match(&self, line: &str) -> bool {
        match self {
            Operand::Always => true,
            Operand::Contains(f) => f.find(line.as_bytes()).is_some(),
            Operand::ContainsFold(f) => f.is_match(line),
            Operand::Regex(re) => re.is_match(line),
            Operand::Pattern(p) => p.test(line),
            Operand::Ip(ip) => ip.matches_any_in(line),
        }
    }
}

/// A compiled line filter: keeps a line when any operand matches, or, for negative
/// operators, when none does (De Morgan on `or` chains).
#[derive(Debug, Clone)]
pub(crate) struct LineFilterStage {
    operands: Vec<Operand>,
    negated: bool,
    /// The literal a kept line must contain, when the filter is one positive substring.
    required: Option<String>,
}

impl LineFilterStage {
    pub(crate) fn new(filter: &LineFilter) -> Result<LineFilterStage, String> {
        let negated = matches!(
            filter.op,
            LineFilterOp::NotContains | LineFilterOp::NotRegex | LineFilterOp::NotPattern
        );
        let mut operands = Vec::with_capacity(filter.values.len());
        for value in &filter.values {
            operands.push(compile_operand(filter.op, value)?);
        }
        let required = match (filter.op, filter.values.as_slice()) {
            (LineFilterOp::Contains, [LineFilterValue::Str(s)]) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        Ok(LineFilterStage {
            operands,
            negated,
            required,
        })
    }

    /// Whether the line passes.
    #[inline]
    pub(crate) fn keep(&self, line: &str) -> bool {
        let any = match self.operands.as_slice() {
            [single] => single.is_match(line),
            many => many.iter().any(|o| o.is_match(line)),
        };
        any != self.negated
    }

    pub(crate) fn required_substring(&self) -> Option<&str> {
        self.required.as_deref()
    }
}

fn compile_operand(op: LineFilterOp, value: &LineFilterValue) -> Result<Operand, String> {
    match (op, value) {
        (LineFilterOp::Regex | LineFilterOp::NotRegex, LineFilterValue::Ip(_))
        | (LineFilterOp::Pattern | LineFilterOp::NotPattern, LineFilterValue::Ip(_)) => {
            Err("ip: invalid operation".to_string())
        }
        (_, LineFilterValue::Ip(p)) => IpMatcher::new(p).map(Operand::Ip),
        (LineFilterOp::Contains | LineFilterOp::NotContains, LineFilterValue::Str(s)) => {
            Ok(substring(s, false))
        }
        (LineFilterOp::Regex | LineFilterOp::NotRegex, LineFilterValue::Str(s)) => regex(s),
        (LineFilterOp::Pattern | LineFilterOp::NotPattern, LineFilterValue::Str(s)) => {
            let p = Pattern::parse(s)?;
            if p.has_named_capture() {
                return Err("named captures are not allowed".to_string());
            }
            Ok(Operand::Pattern(p))
        }
    }
}

fn substring(s: &str, fold: bool) -> Operand {
    if s.is_empty() {
        Operand::Always
    } else if fold {
        Operand::ContainsFold(FoldFinder::new(s))
    } else {
        Operand::Contains(Box::new(memmem::Finder::new(s.as_bytes()).into_owned()))
    }
}

/// Whether `s` is a regex that matches exactly itself.
fn is_plain_literal(s: &str) -> bool {
    !s.bytes().any(|b| b"\\.+*?()|[]{}^$".contains(&b))
}

fn regex(src: &str) -> Result<Operand, String> {
    // Loki's simplifications that do not change results: a literal, `.*lit.*`, and
    // `(?i)literal` become substring tests.
    let (fold, body) = match src.strip_prefix("(?i)") {
        Some(rest) => (true, rest),
        None => (false, src),
    };
    let body_core = body
        .strip_prefix(".*")
        .and_then(|b| b.strip_suffix(".*"))
        .unwrap_or(body);
    if is_plain_literal(body_core) && (!fold || body_core.is_ascii()) {
        return Ok(substring(body_core, fold));
    }
    Regex::new(&fenrir_common::go_regex_syntax(src))
        .map(Operand::Regex)
        .map_err(|e| format!("error parsing regexp: {e}"))
}

/// Case-insensitive substring search for an ASCII needle. Go folds `k` with the Kelvin
/// sign and `s` with the long s; lines that could hit that fall back to a regex.
#[derive(Debug, Clone)]
struct FoldFinder {
    lower: Vec<u8>,
    first_lower: u8,
    first_upper: u8,
    unicode_fallback: Option<Regex>,
}

impl FoldFinder {
    fn new(needle: &str) -> FoldFinder {
        let lower = needle.to_ascii_lowercase().into_bytes();
        let needs_fallback = lower.iter().any(|b| matches!(b, b'k' | b's'));
        FoldFinder {
            first_lower: lower[0],
            first_upper: lower[0].to_ascii_uppercase(),
            unicode_fallback: needs_fallback
                .then(|| Regex::new(&format!("(?i){}", regex::escape(needle))).ok())
                .flatten(),
            lower,
        }
    }

    fn is_match(&self, line: &str) -> bool {
        let hay = line.as_bytes();
        let n = self.lower.len();
        let mut start = 0;
        while let Some(i) = memchr::memchr2(self.first_lower, self.first_upper, &hay[start..]) {
            let at = start + i;
            if hay.len() - at < n {
                break;
            }
            if hay[at..at + n].eq_ignore_ascii_case(&self.lower) {
                return true;
            }
            start = at + 1;
        }
        match &self.unicode_fallback {
            Some(re) if !line.is_ascii() => re.is_match(line),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(op: LineFilterOp, values: &[&str]) -> LineFilterStage {
        LineFilterStage::new(&LineFilter {
            op,
            values: values
                .iter()
                .map(|v| LineFilterValue::Str(v.to_string()))
                .collect(),
        })
        .unwrap()
    }

    #[test]
    fn contains_and_not_contains() {
        let f = filter(LineFilterOp::Contains, &["GET"]);
        assert!(f.keep("GET /x"));
        assert!(!f.keep("get /x"));
        let f = filter(LineFilterOp::NotContains, &["GET"]);
        assert!(!f.keep("GET /x"));
        assert!(f.keep("POST /x"));
    }

    #[test]
    fn empty_string_filters() {
        assert!(filter(LineFilterOp::Contains, &[""]).keep("anything"));
        assert!(filter(LineFilterOp::Contains, &[""]).keep(""));
        assert!(!filter(LineFilterOp::NotContains, &[""]).keep("anything"));
        assert!(filter(LineFilterOp::Regex, &[""]).keep("x"));
        assert!(!filter(LineFilterOp::NotRegex, &[""]).keep("x"));
    }

    #[test]
    fn or_chains_and_de_morgan() {
        let f = filter(LineFilterOp::Contains, &["GET", "POST"]);
        assert!(f.keep("GET"));
        assert!(f.keep("POST"));
        assert!(!f.keep("PUT"));
        let f = filter(LineFilterOp::NotContains, &["GET", "POST"]);
        assert!(!f.keep("GET"));
        assert!(!f.keep("POST"));
        assert!(f.keep("PUT"));
        let f = filter(LineFilterOp::NotRegex, &["a+b", "c+d"]);
        assert!(!f.keep("xaab"));
        assert!(f.keep("xyz"));
    }

    #[test]
    fn regexes_are_unanchored_and_go_flavoured() {
        let f = filter(LineFilterOp::Regex, &[r#""status":5\d\d"#]);
        assert!(f.keep(r#"{"status":503}"#));
        assert!(!f.keep(r#"{"status":200}"#));
        let f = filter(LineFilterOp::Regex, &[r"^\d+$"]);
        assert!(!f.keep("٣٣"), "\\d is ASCII-only as in Go");
        let f = filter(LineFilterOp::Regex, &["a.b"]);
        assert!(!f.keep("a\nb"), ". does not match a newline");
        assert!(matches!(
            LineFilterStage::new(&LineFilter {
                op: LineFilterOp::Regex,
                values: vec![LineFilterValue::Str("(".into())]
            }),
            Err(e) if e.starts_with("error parsing regexp")
        ));
    }

    #[test]
    fn case_insensitive_fast_path() {
        let f = filter(LineFilterOp::Regex, &["(?i)connection REFUSED"]);
        assert!(matches!(f.operands[0], Operand::ContainsFold(_)));
        assert!(f.keep("err=\"Connection refused\""));
        assert!(!f.keep("connection reset"));
        let f = filter(LineFilterOp::Regex, &["(?i)ok"]);
        assert!(
            f.keep("status O\u{212a}"),
            "Kelvin sign folds to k as in Go"
        );
        let f = filter(LineFilterOp::Regex, &[".*needle.*"]);
        assert!(matches!(f.operands[0], Operand::Contains(_)));
        assert!(f.keep("hay needle hay"));
    }

    #[test]
    fn pattern_filters() {
        let f = filter(LineFilterOp::Pattern, &["<_> msg=\"job failed\" <_>"]);
        assert!(f.keep("level=error msg=\"job failed\" err=x"));
        assert!(!f.keep("level=info msg=\"job done\" err=x"));
        let f = filter(LineFilterOp::NotPattern, &["<_> done"]);
        assert!(!f.keep("job done"));
        let err = LineFilterStage::new(&LineFilter {
            op: LineFilterOp::Pattern,
            values: vec![LineFilterValue::Str("<x> y".into())],
        })
        .unwrap_err();
        assert_eq!(err, "named captures are not allowed");
    }

    #[test]
    fn ip_filters() {
        let f = LineFilterStage::new(&LineFilter {
            op: LineFilterOp::NotContains,
            values: vec![LineFilterValue::Ip("10.0.0.0/8".into())],
        })
        .unwrap();
        assert!(f.keep("no ip at all"), "!= keeps lines with no IP");
        assert!(!f.keep("from 10.1.2.3"));
        assert!(f.keep("from 172.16.0.9"));
        let f = LineFilterStage::new(&LineFilter {
            op: LineFilterOp::Contains,
            values: vec![
                LineFilterValue::Ip("10.0.0.0/8".into()),
                LineFilterValue::Str("special".into()),
            ],
        })
        .unwrap();
        assert!(f.keep("special"));
        assert!(f.keep("10.0.0.1"));
        assert!(!f.keep("1.1.1.1"));
        let err = LineFilterStage::new(&LineFilter {
            op: LineFilterOp::Regex,
            values: vec![LineFilterValue::Ip("10.0.0.0/8".into())],
        })
        .unwrap_err();
        assert_eq!(err, "ip: invalid operation");
    }
}
