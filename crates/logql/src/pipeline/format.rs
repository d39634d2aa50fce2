//! Stages that rewrite the line or the labels: `line_format`, `label_format`, `drop`,
//! `keep` and `decolorize`.

use fenrir_common::Matcher;
use regex::Regex;

use super::labels::{LineLabels, ERROR_DETAILS_LABEL, ERROR_LABEL, ERR_TEMPLATE_FORMAT};
use crate::ast::{LabelFormat, LabelSelection};
use crate::template::{Template, TemplateContext};

/// What a template sees: the current labels (with errors), the line and the timestamp.
// Read only through `TemplateContext`, which the template stub does not call yet.
#[allow(dead_code)]
struct Context<'a> {
    labels: &'a LineLabels,
    line: &'a str,
    ts: i64,
}

impl TemplateContext for Context<'_> {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels.get_with_errors(name)
    }

    fn labels(&self) -> Vec<(&str, &str)> {
        self.labels.sorted_with_errors()
    }

    fn line(&self) -> &str {
        self.line
    }

    fn timestamp(&self) -> i64 {
        self.ts
    }
}

/// `| line_format "tmpl"`.
#[derive(Debug, Clone)]
pub(crate) struct LineFormat {
    template: Template,
}

impl LineFormat {
    pub(crate) fn new(src: &str) -> Result<LineFormat, String> {
        Ok(LineFormat {
            template: Template::parse(src)?,
        })
    }

    /// The labels the template reads as fields (Loki's required label names).
    pub(crate) fn label_names(&self, out: &mut Vec<String>) {
        out.extend(self.template.field_names());
    }

    /// The new line, or `None` when rendering failed (the error is recorded).
    pub(crate) fn process(&self, ts: i64, line: &str, labels: &mut LineLabels) -> Option<String> {
        let mut out = String::with_capacity(line.len());
        let ctx = Context { labels, line, ts };
        match self.template.render(&ctx, &mut out) {
            Ok(()) => Some(out),
            Err(e) => {
                labels.set_err(ERR_TEMPLATE_FORMAT, Some(&e));
                None
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Assignment {
    Rename { dst: String, src: String },
    Template { dst: String, template: Template },
}

/// `| label_format a=b, c="tmpl"`.
#[derive(Debug, Clone)]
pub(crate) struct LabelFormatStage {
    assignments: Vec<Assignment>,
    pending: Vec<(usize, String)>,
}

impl LabelFormatStage {
    pub(crate) fn new(formats: &[LabelFormat]) -> Result<LabelFormatStage, String> {
        let mut assignments = Vec::with_capacity(formats.len());
        for f in formats {
            let dst = match f {
                LabelFormat::Rename { dst, .. } | LabelFormat::Template { dst, .. } => dst,
            };
            if assignments.iter().any(|a: &Assignment| match a {
                Assignment::Rename { dst: d, .. } | Assignment::Template { dst: d, .. } => d == dst,
            }) {
                return Err(format!(
                    "multiple label name '{dst}' not allowed in a single format operation"
                ));
            }
            assignments.push(match f {
                LabelFormat::Rename { dst, src } => Assignment::Rename {
                    dst: dst.clone(),
                    src: src.clone(),
                },
                LabelFormat::Template { dst, template } => Assignment::Template {
                    dst: dst.clone(),
                    template: Template::parse(template)?,
                },
            });
        }
        Ok(LabelFormatStage {
            assignments,
            pending: Vec::new(),
        })
    }

    /// The labels the assignments read: a rename its source, a template the fields it
    /// names (Loki's required label names).
    pub(crate) fn label_names(&self, out: &mut Vec<String>) {
        for a in &self.assignments {
            match a {
                Assignment::Rename { src, .. } => out.push(src.clone()),
                Assignment::Template { template, .. } => out.extend(template.field_names()),
            }
        }
    }

    /// Renames apply at once; template results are applied together before the next
    /// rename or at the end, so every template of a group sees the same labels, as Loki
    /// renders them all from one snapshot.
    pub(crate) fn process(&mut self, ts: i64, line: &str, labels: &mut LineLabels) {
        self.pending.clear();
        for (i, a) in self.assignments.iter().enumerate() {
            match a {
                Assignment::Rename { dst, src } => {
                    flush(&self.assignments, &mut self.pending, labels);
                    if dst == ERROR_LABEL || dst == ERROR_DETAILS_LABEL {
                        continue;
                    }
                    if let Some(v) = labels.get(src) {
                        let v = v.to_string();
                        labels.delete(src);
                        labels.set_parsed(dst, &v);
                    }
                }
                Assignment::Template { dst, template } => {
                    if dst == ERROR_LABEL || dst == ERROR_DETAILS_LABEL {
                        continue;
                    }
                    let mut out = String::new();
                    let ctx = Context { labels, line, ts };
                    match template.render(&ctx, &mut out) {
                        Ok(()) => self.pending.push((i, out)),
                        Err(e) => labels.set_err(ERR_TEMPLATE_FORMAT, Some(&e)),
                    }
                }
            }
        }
        flush(&self.assignments, &mut self.pending, labels);
    }
}

fn flush(assignments: &[Assignment], pending: &mut Vec<(usize, String)>, labels: &mut LineLabels) {
    for (i, value) in pending.drain(..) {
        if let Assignment::Template { dst, .. } = &assignments[i] {
            labels.set_parsed(dst, &value);
        }
    }
}

/// One `drop`/`keep` element.
#[derive(Debug, Clone)]
pub(crate) struct Selection {
    name: String,
    matcher: Option<Matcher>,
}

pub(crate) fn compile_selections(items: &[LabelSelection]) -> Result<Vec<Selection>, String> {
    items
        .iter()
        .map(|s| {
            Ok(Selection {
                name: s.name.clone(),
                matcher: match &s.matcher {
                    None => None,
                    Some((op, value)) => Some(
                        Matcher::new(*op, s.name.clone(), value.clone())
                            .map_err(|e| e.to_string())?,
                    ),
                },
            })
        })
        .collect()
}

/// `| drop …`: removes labels; dropping an error label clears the error.
pub(crate) fn drop_labels(selections: &[Selection], labels: &mut LineLabels) {
    for s in selections {
        let matches = |value: Option<&str>| match (&s.matcher, value) {
            (None, _) => true,
            (Some(m), Some(v)) => m.matches(v),
            (Some(_), None) => false,
        };
        match s.name.as_str() {
            ERROR_LABEL => {
                if matches(labels.err()) {
                    labels.clear_err();
                }
            }
            ERROR_DETAILS_LABEL => {
                if matches(labels.err_details()) {
                    labels.clear_err_details();
                }
            }
            name => {
                if matches(labels.get(name)) {
                    labels.delete(name);
                }
            }
        }
    }
}

/// `| keep …`: removes every label not listed (or listed with a value that does not
/// match); the error labels are never removed.
pub(crate) fn keep_labels(
    selections: &[Selection],
    labels: &mut LineLabels,
    names: &mut Vec<String>,
) {
    names.clear();
    labels.for_each_effective(|_, name, value| {
        if name == ERROR_LABEL || name == ERROR_DETAILS_LABEL {
            return;
        }
        let kept = selections
            .iter()
            .any(|s| s.name == name && s.matcher.as_ref().is_none_or(|m| m.matches(value)));
        if !kept {
            names.push(name.to_string());
        }
    });
    for name in names.iter() {
        labels.delete(name);
    }
}

/// ANSI escape sequences (the expression of the `stripansi` package Loki uses), with
/// ASCII digits as in Go.
const ANSI_PATTERN: &str = "[\u{1b}\u{9b}][\\[\\]()#;?]*(?:(?:(?:[a-zA-Z0-9]*(?:;[a-zA-Z0-9]*)*)?\u{7})|(?:(?:[0-9]{1,4}(?:;[0-9]{0,4})*)?[0-9A-PRZcf-ntqry=><~]))";

/// `| decolorize`.
#[derive(Debug, Clone)]
pub(crate) struct Decolorize {
    regex: Regex,
}

impl Decolorize {
    pub(crate) fn new() -> Decolorize {
        Decolorize {
            regex: Regex::new(ANSI_PATTERN).expect("the ANSI pattern is a valid regex"),
        }
    }

    /// The line without escape sequences; `None` when it has none.
    pub(crate) fn process(&self, line: &str) -> Option<String> {
        if !line.contains(['\u{1b}', '\u{9b}']) {
            return None;
        }
        Some(self.regex.replace_all(line, "").into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::labels::ERR_JSON;
    use fenrir_common::{LabelSet, MatchOp};

    fn labels() -> LineLabels {
        let mut l = LineLabels::new(LabelSet::from_pairs([("app", "api"), ("pod", "p1")]));
        l.reset(&[("trace_id", "t")]);
        l.set_from_parser("status", "200");
        l.set_from_parser("method", "GET");
        l
    }

    fn sel(name: &str, m: Option<(MatchOp, &str)>) -> LabelSelection {
        LabelSelection {
            name: name.into(),
            matcher: m.map(|(op, v)| (op, v.to_string())),
        }
    }

    #[test]
    fn drop_by_name_and_value_and_errors() {
        let mut l = labels();
        l.set_err(ERR_JSON, Some("d"));
        let s = compile_selections(&[
            sel("method", Some((MatchOp::Eq, "POST"))),
            sel("pod", None),
            sel("__error__", None),
        ])
        .unwrap();
        drop_labels(&s, &mut l);
        assert_eq!(l.get("method"), Some("GET"), "value did not match");
        assert_eq!(l.get("pod"), None);
        assert!(!l.has_err());
        assert_eq!(l.err_details(), Some("d"), "details are a separate label");
        let s = compile_selections(&[sel("method", Some((MatchOp::Re, "G.*")))]).unwrap();
        drop_labels(&s, &mut l);
        assert_eq!(l.get("method"), None);
    }

    #[test]
    fn keep_removes_everything_else_but_errors() {
        let mut l = labels();
        l.set_err(ERR_JSON, Some("d"));
        let s = compile_selections(&[sel("app", None), sel("status", Some((MatchOp::Eq, "500")))])
            .unwrap();
        keep_labels(&s, &mut l, &mut Vec::new());
        let mut left = Vec::new();
        l.for_each_effective(|_, k, v| left.push(format!("{k}={v}")));
        left.sort();
        assert_eq!(
            left,
            ["__error__=JSONParserErr", "__error_details__=d", "app=api"]
        );
    }

    #[test]
    fn rename_moves_any_category_to_parsed() {
        let mut l = labels();
        let mut f = LabelFormatStage::new(&[
            LabelFormat::Rename {
                dst: "code".into(),
                src: "status".into(),
            },
            LabelFormat::Rename {
                dst: "p".into(),
                src: "pod".into(),
            },
            LabelFormat::Rename {
                dst: "x".into(),
                src: "missing".into(),
            },
        ])
        .unwrap();
        f.process(0, "line", &mut l);
        assert_eq!(l.get("code"), Some("200"));
        assert_eq!(l.get("status"), None);
        assert_eq!(l.get("p"), Some("p1"));
        assert_eq!(l.get("pod"), None);
        assert_eq!(l.get("x"), None);
        assert!(l.parsed.contains("p"));
    }

    #[test]
    fn duplicate_targets_are_rejected() {
        let err = LabelFormatStage::new(&[
            LabelFormat::Rename {
                dst: "a".into(),
                src: "b".into(),
            },
            LabelFormat::Rename {
                dst: "a".into(),
                src: "c".into(),
            },
        ])
        .unwrap_err();
        assert_eq!(
            err,
            "multiple label name 'a' not allowed in a single format operation"
        );
    }

    #[test]
    #[ignore = "needs template engine"]
    fn templates_render_labels() {
        let mut l = labels();
        let mut f = LabelFormatStage::new(&[LabelFormat::Template {
            dst: "route".into(),
            template: "{{.method}} {{.status}}".into(),
        }])
        .unwrap();
        f.process(0, "line", &mut l);
        assert_eq!(l.get("route"), Some("GET 200"));
        assert_eq!(l.get("method"), Some("GET"), "sources are kept");
        let lf = LineFormat::new("{{.method}} {{.missing}}!").unwrap();
        assert_eq!(lf.process(0, "x", &mut l).as_deref(), Some("GET !"));
    }

    #[test]
    fn decolorize_strips_ansi() {
        let d = Decolorize::new();
        assert_eq!(
            d.process("\u{1b}[31mERROR\u{1b}[0m GET /x 500").as_deref(),
            Some("ERROR GET /x 500")
        );
        assert_eq!(d.process("plain"), None);
    }
}
