//! `label_replace(v, dst, replacement, src, regex)` with Go's `Regexp.Expand` rules.

use fenrir_common::{go_regex_syntax, LabelSet};
use regex::{Captures, Regex};

use super::{Elem, StepVec};
use crate::ast::LabelReplace;
use crate::fxhash::FxHashMap;
use crate::{Error, Result};

pub(crate) fn eval_label_replace(lr: &LabelReplace, input: Vec<StepVec>) -> Result<Vec<StepVec>> {
    let re = Regex::new(&format!("^(?:{})$", go_regex_syntax(&lr.regex)))
        .map_err(|e| Error::Query(format!("invalid regex in label_replace: {e}")))?;
    let mut memo: FxHashMap<LabelSet, LabelSet> = FxHashMap::default();
    Ok(input
        .into_iter()
        .map(|step| {
            step.into_iter()
                .map(|e| {
                    let labels = match memo.get(&e.labels) {
                        Some(l) => l.clone(),
                        None => {
                            let l = replace(lr, &re, &e.labels);
                            memo.insert(e.labels.clone(), l.clone());
                            l
                        }
                    };
                    Elem {
                        labels,
                        value: e.value,
                    }
                })
                .collect()
        })
        .collect())
}

fn replace(lr: &LabelReplace, re: &Regex, labels: &LabelSet) -> LabelSet {
    let src = labels.get(&lr.src).unwrap_or("");
    let Some(caps) = re.captures(src) else {
        return labels.clone();
    };
    let value = expand(&lr.replacement, re, &caps);
    let mut b = labels.to_builder();
    if value.is_empty() {
        b.remove(&lr.dst);
    } else {
        b.set(lr.dst.clone(), value);
    }
    // Other labels keep their empty values (parsed `x=""`); only `dst` is removed.
    b.build_keep_empty()
}

/// Go's `Regexp.Expand`: `$$` is `$`; `$name` and `${name}` take the longest run of
/// letters, digits and `_` as the name (so `$1x` is the group named `1x`); a name of
/// digits without a leading zero is a group number; a malformed `$` is kept as text.
fn expand(template: &str, re: &Regex, caps: &Captures<'_>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let Some((name, after)) = extract_name(rest) else {
            out.push('$');
            continue;
        };
        rest = after;
        let group = match group_number(name) {
            Some(n) => caps.get(n),
            None => re
                .capture_names()
                .position(|n| n == Some(name))
                .and_then(|i| caps.get(i)),
        };
        if let Some(m) = group {
            out.push_str(m.as_str());
        }
    }
    out.push_str(rest);
    out
}

/// The name after a `$`, and the text after it.
fn extract_name(s: &str) -> Option<(&str, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let end = body
        .char_indices()
        .find(|&(_, c)| !(c.is_alphabetic() || c.is_ascii_digit() || c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let name = &body[..end];
    let after = &body[end..];
    if braced {
        let after = after.strip_prefix('}')?;
        return Some((name, after));
    }
    Some((name, after))
}

/// A group number as Go reads it: ASCII digits, no leading zero, below 10^8.
fn group_number(name: &str) -> Option<usize> {
    if !name.bytes().all(|b| b.is_ascii_digit()) || (name.len() > 1 && name.starts_with('0')) {
        return None;
    }
    let mut n: usize = 0;
    for b in name.bytes() {
        if n >= 100_000_000 {
            return None;
        }
        n = n * 10 + usize::from(b - b'0');
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::ast::{LabelReplace, MetricExpr, RangeOp};
    use fenrir_common::MatchOp;

    fn lr(dst: &str, replacement: &str, src: &str, regex: &str) -> MetricExpr {
        MetricExpr::LabelReplace(Box::new(LabelReplace {
            inner: range_agg(
                RangeOp::CountOverTime,
                sel(&[("app", MatchOp::Re, ".+")]),
                60.0,
                false,
            ),
            dst: dst.into(),
            replacement: replacement.into(),
            src: src.into(),
            regex: regex.into(),
        }))
    }

    fn run(e: &MetricExpr) -> Vec<Row> {
        let mut src =
            FakeSource::new().stream(&[("app", "api"), ("pod", "api-7f9-x1y2")], &[(30.0, 1.0)]);
        instant(e, 60.0, &mut src).unwrap()
    }

    #[test]
    fn replaces_with_go_expand_semantics() {
        assert_eq!(
            run(&lr("short", "$1", "pod", "api-[a-z0-9]+-(.*)")),
            rows(&[(r#"{app="api", pod="api-7f9-x1y2", short="x1y2"}"#, "1")])
        );
        assert_eq!(
            run(&lr("short", "${id}-$$", "pod", "api-[a-z0-9]+-(?P<id>.*)")),
            rows(&[(r#"{app="api", pod="api-7f9-x1y2", short="x1y2-$"}"#, "1")])
        );
        // `$1x` is the group named "1x", which does not exist: empty
        assert_eq!(
            run(&lr("short", "$1x", "pod", "api-[a-z0-9]+-(.*)")),
            rows(&[(r#"{app="api", pod="api-7f9-x1y2"}"#, "1")])
        );
        assert_eq!(
            run(&lr("short", "${1}x", "pod", "api-[a-z0-9]+-(.*)")),
            rows(&[(r#"{app="api", pod="api-7f9-x1y2", short="x1y2x"}"#, "1")])
        );
    }

    #[test]
    fn regex_is_anchored_and_misses_leave_labels_alone() {
        assert_eq!(
            run(&lr("short", "$1", "pod", "7f9-(.*)")),
            rows(&[(r#"{app="api", pod="api-7f9-x1y2"}"#, "1")])
        );
        // a missing source reads as "", which `(.*)` matches
        assert_eq!(
            run(&lr("x", "v$1", "nope", "(.*)")),
            rows(&[(r#"{app="api", pod="api-7f9-x1y2", x="v"}"#, "1")])
        );
    }

    #[test]
    fn empty_expansion_deletes_the_label() {
        assert_eq!(
            run(&lr("pod", "", "app", "api")),
            rows(&[(r#"{app="api"}"#, "1")])
        );
    }

    #[test]
    fn bad_regex_is_an_error() {
        let mut src = FakeSource::new();
        let err = instant(&lr("a", "b", "c", "("), 60.0, &mut src).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid regex in label_replace: "),
            "{err}"
        );
    }
}
