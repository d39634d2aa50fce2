//! `label_replace(v, dst, replacement, src, regex)` with Go's `Regexp.Expand` rules.

use std::collections::HashMap;

use fenrir_common::{go_regex_syntax, LabelSet};
use regex::{Captures, Regex};

use super::{Elem, StepVec};
use crate::ast::LabelReplace;
use crate::{Error, Result};

pub(crate) fn eval_label_replace(lr: &LabelReplace, input: Vec<StepVec>) -> Result<Vec<StepVec>> {
    let re = Regex::new(&format!("^(?:{})$", go_regex_syntax(&lr.regex)))
        .map_err(|e| Error::Query(format!("invalid regex in label_replace: {e}")))?;
    let mut memo: HashMap<LabelSet, LabelSet> = HashMap::new();
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
    b.build()
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
