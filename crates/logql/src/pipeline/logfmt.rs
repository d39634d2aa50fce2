//! The `| logfmt` parser: a go-logfmt style scanner over the borrowed line.

use super::json::unescape_into;
use super::labels::{sanitize_label_key, LineLabels, ERR_LOGFMT};
use crate::ast::LabelExtraction;

/// One scanned pair. `value` is `None` for a bare key or `k=`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Pair<'l> {
    pub(crate) key: &'l str,
    pub(crate) value: Option<PairValue<'l>>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PairValue<'l> {
    Raw(&'l str),
    /// A quoted value with escapes, still to unescape (already checked to be valid).
    Escaped(&'l str),
}

/// A syntax error: 1-based byte position and message, printed as Loki does.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pos: usize,
    msg: String,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "logfmt syntax error at pos {} : {}", self.pos, self.msg)
    }
}

/// Go's `%q` of a byte.
fn quote_byte(b: u8) -> String {
    match b {
        b'\'' => "'\\''".to_string(),
        b'\\' => "'\\\\'".to_string(),
        0x20..=0x7e => format!("'{}'", b as char),
        _ => format!("'\\x{b:02x}'"),
    }
}

pub(crate) struct Scanner<'l> {
    line: &'l str,
    pos: usize,
    scratch: String,
}

impl<'l> Scanner<'l> {
    pub(crate) fn new(line: &'l str) -> Self {
        Scanner {
            line,
            pos: 0,
            scratch: String::new(),
        }
    }

    fn unexpected(&mut self, at: usize) -> SyntaxError {
        let b = self.line.as_bytes()[at];
        self.recover(at);
        SyntaxError {
            pos: at + 1,
            msg: format!("unexpected {}", quote_byte(b)),
        }
    }

    /// After an error, skips to the next whitespace so that scanning can go on with the
    /// next pair (non-strict mode skips bad pairs).
    fn recover(&mut self, at: usize) {
        let bytes = self.line.as_bytes();
        let mut i = at + 1;
        while i < bytes.len() && bytes[i] > b' ' {
            i += 1;
        }
        self.pos = i;
    }

    /// The next pair, `None` at the end of the line.
    pub(crate) fn next_pair(&mut self) -> Option<Result<Pair<'l>, SyntaxError>> {
        let bytes = self.line.as_bytes();
        while self.pos < bytes.len() && bytes[self.pos] <= b' ' {
            self.pos += 1;
        }
        if self.pos >= bytes.len() {
            return None;
        }
        let start = self.pos;
        let mut i = start;
        // Key.
        loop {
            if i >= bytes.len() {
                self.pos = i;
                return Some(Ok(Pair {
                    key: &self.line[start..i],
                    value: None,
                }));
            }
            match bytes[i] {
                b'=' => break,
                b'"' => return Some(Err(self.unexpected(i))),
                c if c <= b' ' => {
                    self.pos = i;
                    return Some(Ok(Pair {
                        key: &self.line[start..i],
                        value: None,
                    }));
                }
                _ => i += 1,
            }
        }
        if i == start {
            return Some(Err(self.unexpected(i)));
        }
        let key = &self.line[start..i];
        // Value.
        i += 1;
        if i >= bytes.len() || bytes[i] <= b' ' {
            self.pos = i;
            return Some(Ok(Pair { key, value: None }));
        }
        if bytes[i] == b'"' {
            let qstart = i + 1;
            let mut j = qstart;
            let mut has_escape = false;
            while j < bytes.len() {
                match bytes[j] {
                    b'\\' => {
                        has_escape = true;
                        j += 2;
                    }
                    b'"' => {
                        self.pos = j + 1;
                        let raw = &self.line[qstart..j];
                        if !has_escape {
                            return Some(Ok(Pair {
                                key,
                                value: (!raw.is_empty()).then_some(PairValue::Raw(raw)),
                            }));
                        }
                        self.scratch.clear();
                        if !unescape_into(raw, &mut self.scratch) || raw.bytes().any(|b| b < b' ') {
                            return Some(Err(SyntaxError {
                                pos: self.pos + 1,
                                msg: "invalid quoted value".to_string(),
                            }));
                        }
                        return Some(Ok(Pair {
                            key,
                            value: Some(PairValue::Escaped(raw)),
                        }));
                    }
                    _ => j += 1,
                }
            }
            self.pos = bytes.len();
            return Some(Err(SyntaxError {
                pos: bytes.len() + 1,
                msg: "unterminated quoted value".to_string(),
            }));
        }
        let vstart = i;
        while i < bytes.len() {
            match bytes[i] {
                b'=' | b'"' => return Some(Err(self.unexpected(i))),
                c if c <= b' ' => break,
                _ => i += 1,
            }
        }
        self.pos = i;
        Some(Ok(Pair {
            key,
            value: Some(PairValue::Raw(&self.line[vstart..i])),
        }))
    }
}

/// `| logfmt [--strict] [--keep-empty] [params]`.
#[derive(Debug, Clone)]
pub(crate) struct LogfmtParser {
    strict: bool,
    keep_empty: bool,
    /// `(label, key)` pairs; empty means every key.
    params: Vec<(String, String)>,
    name: String,
    value: String,
    found: Vec<bool>,
}

impl LogfmtParser {
    pub(crate) fn new(strict: bool, keep_empty: bool, params: &[LabelExtraction]) -> Self {
        LogfmtParser {
            strict,
            keep_empty,
            params: params
                .iter()
                .map(|p| (p.label.clone(), p.expression.clone()))
                .collect(),
            name: String::new(),
            value: String::new(),
            found: vec![false; params.len()],
        }
    }

    pub(crate) fn process(&mut self, line: &str, labels: &mut LineLabels) {
        let mut scanner = Scanner::new(line);
        self.found.iter_mut().for_each(|f| *f = false);
        let mut error = None;
        while let Some(next) = scanner.next_pair() {
            let pair = match next {
                Ok(p) => p,
                Err(e) => {
                    if self.strict {
                        error = Some(e);
                        break;
                    }
                    continue;
                }
            };
            self.value.clear();
            match pair.value {
                Some(PairValue::Raw(v)) => self.value.push_str(v),
                Some(PairValue::Escaped(v)) => {
                    unescape_into(v, &mut self.value);
                }
                None => {}
            }
            if self.value.is_empty() && !self.keep_empty && self.params.is_empty() {
                continue;
            }
            if self.params.is_empty() {
                sanitize_label_key(pair.key, &mut self.name);
                labels.set_from_parser(&self.name, &self.value);
                // Parser hints: stop once the line has every required label.
                if labels.all_required_extracted() {
                    break;
                }
            } else {
                for (i, (label, key)) in self.params.iter().enumerate() {
                    if key == pair.key && !self.found[i] {
                        self.found[i] = true;
                        labels.set_requested(label, &self.value);
                    }
                }
            }
        }
        // Every requested label exists afterwards, as "" when its key was missing,
        // unless the name is a stream or metadata label.
        for (i, (label, _)) in self.params.iter().enumerate() {
            if !self.found[i] && !labels.is_stream_or_metadata(label) {
                labels.set_requested(label, "");
            }
        }
        if let Some(e) = error {
            labels.set_parser_err(ERR_LOGFMT, Some(&e.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fenrir_common::LabelSet;

    fn run(parser: &mut LogfmtParser, line: &str) -> (Vec<(String, String)>, Option<String>) {
        let mut labels = LineLabels::new(LabelSet::from_pairs([("app", "w"), ("level", "info")]));
        labels.reset(&[]);
        parser.process(line, &mut labels);
        let mut out: Vec<_> = labels
            .parsed
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        out.sort();
        (out, labels.err_details().map(str::to_string))
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn extracts_and_drops_bare_and_empty() {
        let mut p = LogfmtParser::new(false, false, &[]);
        let (got, err) = run(
            &mut p,
            r#"level=info msg="job \"done\"" job=resize duration=1.2s flag empty= q="" a.b=1 a.b=2"#,
        );
        assert_eq!(err, None);
        assert_eq!(
            got,
            pairs(&[
                ("a_b", "1"),
                ("duration", "1.2s"),
                ("job", "resize"),
                ("level_extracted", "info"),
                ("msg", "job \"done\""),
            ])
        );
    }

    #[test]
    fn bad_pairs_are_skipped_silently() {
        let mut p = LogfmtParser::new(false, false, &[]);
        let (got, err) = run(&mut p, r#"a=b=c =v fo"o=x ok=1 bad="unterminated"#);
        assert_eq!(err, None);
        assert_eq!(got, pairs(&[("ok", "1")]));
    }

    #[test]
    fn strict_stops_with_an_error() {
        let mut p = LogfmtParser::new(true, false, &[]);
        let (got, err) = run(&mut p, "x=1 a=b=c y=2");
        assert_eq!(got, pairs(&[("x", "1")]));
        assert_eq!(
            err.as_deref(),
            Some("logfmt syntax error at pos 8 : unexpected '='")
        );
        let (_, err) = run(&mut p, r#"x="open"#);
        assert_eq!(
            err.as_deref(),
            Some("logfmt syntax error at pos 8 : unterminated quoted value")
        );
        let (_, err) = run(&mut p, r#"fo"o=x"#);
        assert_eq!(
            err.as_deref(),
            Some("logfmt syntax error at pos 3 : unexpected '\"'")
        );
    }

    #[test]
    fn keep_empty_keeps_bare_keys() {
        let mut p = LogfmtParser::new(false, true, &[]);
        let (got, _) = run(&mut p, "flag k= v=1");
        assert_eq!(got, pairs(&[("flag", ""), ("k", ""), ("v", "1")]));
    }

    #[test]
    fn params_rename_and_create_empty_labels() {
        let params = vec![
            LabelExtraction {
                label: "msg".into(),
                expression: "msg".into(),
            },
            LabelExtraction {
                label: "dur".into(),
                expression: "duration".into(),
            },
            LabelExtraction {
                label: "level".into(),
                expression: "nope".into(),
            },
        ];
        let mut p = LogfmtParser::new(false, false, &params);
        let (got, _) = run(&mut p, r#"msg="job done" duration=45s other=1"#);
        assert_eq!(got, pairs(&[("dur", "45s"), ("msg", "job done")]));
        let (got, _) = run(&mut p, "a=b=c level=warn");
        assert_eq!(got, pairs(&[("dur", ""), ("msg", "")]));
    }
}
