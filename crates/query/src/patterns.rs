//! Log patterns (Logs Drilldown "Patterns"): lines are clustered the way the Drain
//! algorithm does — split into space-separated tokens, grouped by level, token count and
//! first token, and merged into the most similar cluster, differing positions becoming
//! the `<_>` wildcard — and each cluster counts its lines per step.
//!
//! Every pattern is valid in LogQL's pattern filter (`|> "…"`) and matches every line
//! that was counted for it: templates only ever generalise.

use std::collections::{BTreeMap, HashMap};

use fenrir_common::{Tenant, Timestamp};
use fenrir_logql::ast::LogExpr;

/// The wildcard token.
const WILDCARD: &str = "<_>";
/// Lines with more tokens keep the first ones and end in one wildcard.
const MAX_TOKENS: usize = 64;
/// A line joins a cluster when at least this share of its tokens match the template.
const SIMILARITY: f64 = 0.5;
/// Clusters kept per query; lines that fit no cluster once it is full are not counted.
const MAX_CLUSTERS: usize = 2_000;
/// Patterns returned.
pub(crate) const MAX_PATTERNS: usize = 500;

/// A patterns request over `[start, end)`.
#[derive(Debug, Clone)]
pub struct PatternQuery {
    /// Whose data.
    pub tenant: Tenant,
    /// Selector and optional pipeline (line filters narrow the lines clustered).
    pub expr: LogExpr,
    /// Inclusive start, ns.
    pub start: Timestamp,
    /// Exclusive end, ns.
    pub end: Timestamp,
    /// Sample bucket width, ns.
    pub step: i64,
}

/// One pattern and its counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternResult {
    /// The pattern, literal text with `<_>` wildcards.
    pub pattern: String,
    /// The lines' `detected_level` (or `level` label), if any.
    pub level: Option<String>,
    /// `(step start in unix seconds, lines)`, ascending.
    pub samples: Vec<(i64, u64)>,
}

struct Cluster {
    tokens: Vec<String>,
    samples: BTreeMap<i64, u64>,
    total: u64,
}

/// Clusters lines into patterns.
pub(crate) struct Miner {
    step: i64,
    groups: HashMap<(Option<String>, usize, String), Vec<usize>>,
    clusters: Vec<Cluster>,
    levels: Vec<Option<String>>,
}

/// A token as templates see it: values with digits and anything that looks like a
/// pattern capture are masked up front, keeping a `key=` prefix.
fn mask(token: &str) -> String {
    let looks_like_capture = token.contains('<') && token.contains('>');
    if looks_like_capture {
        return WILDCARD.to_string();
    }
    if !token.bytes().any(|b| b.is_ascii_digit()) {
        return token.to_string();
    }
    match token.split_once('=') {
        Some((key, _)) if !key.is_empty() && !key.bytes().any(|b| b.is_ascii_digit()) => {
            format!("{key}={WILDCARD}")
        }
        _ => WILDCARD.to_string(),
    }
}

fn tokenize(line: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    let mut parts = line.split(' ');
    for part in parts.by_ref().take(MAX_TOKENS - 1) {
        tokens.push(mask(part));
    }
    if parts.next().is_some() {
        tokens.push(WILDCARD.to_string());
    }
    tokens
}

/// Whether template token `t` accepts line token `l`.
fn accepts(t: &str, l: &str) -> bool {
    if t == l || t == WILDCARD {
        return true;
    }
    match t.strip_suffix(WILDCARD) {
        Some(prefix) if prefix.ends_with('=') => l.starts_with(prefix),
        _ => false,
    }
}

/// The most specific template token accepting both.
fn generalise(t: &str, l: &str) -> String {
    if accepts(t, l) {
        return t.to_string();
    }
    match (t.split_once('='), l.split_once('=')) {
        (Some((a, _)), Some((b, _))) if a == b && !a.is_empty() => format!("{a}={WILDCARD}"),
        _ => WILDCARD.to_string(),
    }
}

impl Miner {
    pub(crate) fn new(step: i64) -> Self {
        Miner {
            step: step.max(1),
            groups: HashMap::new(),
            clusters: Vec::new(),
            levels: Vec::new(),
        }
    }

    /// Counts one line.
    pub(crate) fn add(&mut self, ts: Timestamp, line: &str, level: Option<&str>) {
        let tokens = tokenize(line);
        let key = (
            level.map(str::to_string),
            tokens.len(),
            tokens.first().cloned().unwrap_or_default(),
        );
        let members = self.groups.entry(key).or_default();
        let mut best: Option<(usize, f64)> = None;
        for &id in members.iter() {
            let c = &self.clusters[id];
            let same = c
                .tokens
                .iter()
                .zip(&tokens)
                .filter(|(t, l)| accepts(t, l))
                .count();
            let sim = same as f64 / tokens.len().max(1) as f64;
            if sim >= SIMILARITY && best.is_none_or(|(_, s)| sim > s) {
                best = Some((id, sim));
            }
        }
        let id = match best {
            Some((id, _)) => {
                let c = &mut self.clusters[id];
                for (t, l) in c.tokens.iter_mut().zip(&tokens) {
                    if !accepts(t, l) {
                        *t = generalise(t, l);
                    }
                }
                id
            }
            None if self.clusters.len() < MAX_CLUSTERS => {
                self.clusters.push(Cluster {
                    tokens,
                    samples: BTreeMap::new(),
                    total: 0,
                });
                self.levels.push(level.map(str::to_string));
                let id = self.clusters.len() - 1;
                members.push(id);
                id
            }
            None => return,
        };
        let bucket = ts.div_euclid(self.step) * self.step / 1_000_000_000;
        let c = &mut self.clusters[id];
        *c.samples.entry(bucket).or_default() += 1;
        c.total += 1;
    }

    /// The patterns, most lines first; templates without any literal are left out.
    pub(crate) fn finish(self) -> Vec<PatternResult> {
        type Counts = (u64, BTreeMap<i64, u64>);
        let mut merged: HashMap<(String, Option<String>), Counts> = HashMap::new();
        for (c, level) in self.clusters.into_iter().zip(self.levels) {
            let Some(pattern) = render(&c.tokens) else {
                continue;
            };
            // Different clusters can render alike once wildcards are collapsed.
            let slot = merged.entry((pattern, level)).or_default();
            slot.0 += c.total;
            for (ts, n) in c.samples {
                *slot.1.entry(ts).or_default() += n;
            }
        }
        let mut out: Vec<(u64, PatternResult)> = merged
            .into_iter()
            .map(|((pattern, level), (total, samples))| {
                (
                    total,
                    PatternResult {
                        pattern,
                        level,
                        samples: samples.into_iter().collect(),
                    },
                )
            })
            .collect();
        out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.pattern.cmp(&b.1.pattern)));
        out.truncate(MAX_PATTERNS);
        out.into_iter().map(|(_, p)| p).collect()
    }
}

/// Joins tokens, collapsing wildcard runs (`<_>` matches spaces too); `None` when nothing
/// literal is left.
fn render(tokens: &[String]) -> Option<String> {
    let mut out: Vec<&str> = Vec::with_capacity(tokens.len());
    for t in tokens {
        if t == WILDCARD && out.last() == Some(&WILDCARD) {
            continue;
        }
        out.push(t);
    }
    let text = out.join(" ");
    let has_literal = out.iter().any(|t| *t != WILDCARD && !t.trim().is_empty());
    has_literal.then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn clusters_lines_into_patterns_with_counts() {
        let mut m = Miner::new(10 * S);
        for i in 0..20 {
            let line = format!("GET /api/users/{i} took {}ms status=200", i * 3);
            m.add(i * S, &line, Some("info"));
        }
        for i in 0..5 {
            m.add(
                i * S,
                &format!("connection from 10.0.0.{i} refused"),
                Some("error"),
            );
        }
        let out = m.finish();
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].pattern, "GET <_> took <_> status=<_>");
        assert_eq!(out[0].level.as_deref(), Some("info"));
        assert_eq!(out[0].samples, [(0, 10), (10, 10)]);
        assert_eq!(out[1].pattern, "connection from <_> refused");
        assert_eq!(out[1].samples, [(0, 5)]);
    }

    #[test]
    fn differing_words_merge_into_wildcards() {
        let mut m = Miner::new(S);
        m.add(0, "user alice logged in from web", None);
        m.add(0, "user bob logged in from mobile", None);
        m.add(0, "user carol logged out", None);
        let out = m.finish();
        let patterns: Vec<&str> = out.iter().map(|p| p.pattern.as_str()).collect();
        assert_eq!(
            patterns,
            ["user <_> logged in from <_>", "user carol logged out"]
        );
    }

    #[test]
    fn long_lines_and_captures_stay_valid() {
        let long: Vec<String> = (0..100).map(|i| format!("w{i}x")).collect();
        let mut m = Miner::new(S);
        m.add(0, &format!("start {}", long.join(" ")), None);
        m.add(0, "<html> page", None);
        for p in m.finish() {
            assert!(!p.pattern.contains("<_><_>"));
            assert!(!p.pattern.contains("<html>"));
        }
    }
}
