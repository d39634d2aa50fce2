//! Loki's label-set strings: the Prometheus metric grammar (`promql` `ParseMetric`), as
//! Loki parses the `labels` of a protobuf or legacy-JSON stream.
//!
//! Grammar: `[metric_name] "{" [item {"," item} [","]] "}"`, a bare metric name, or empty
//! input. An item is `name = string`, `"quoted name" = string`, or a bare quoted string
//! (which sets `__name__`). Strings are `"…"`, `'…'` (Go escapes) or `` `…` `` (raw).

use std::fmt;

use fenrir_common::{go_quote, write_go_quoted, LabelSet};

use crate::{PushError, Result};

/// The label that a metric name sets.
const METRIC_NAME: &str = "__name__";

/// A parse error with Prometheus' `<line>:<col>: parse error: <msg>` rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LabelParseError {
    line: usize,
    col: usize,
    msg: String,
}

impl fmt::Display for LabelParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: parse error: {}", self.line, self.col, self.msg)
    }
}

impl From<LabelParseError> for PushError {
    fn from(e: LabelParseError) -> Self {
        PushError::InvalidLabels(e.to_string())
    }
}

/// Parses a label-set string into a canonical [`LabelSet`] (sorted, empty values dropped).
///
/// Errors are Loki's 400 `couldn't parse labels: <line>:<col>: parse error: <msg>`.
/// When a name repeats, the last value wins here; [`crate::validate`] reports duplicates.
pub fn parse_label_set(s: &str) -> Result<LabelSet> {
    Ok(LabelSet::from_pairs(parse_label_pairs(s)?))
}

/// Parses a label-set string into its pairs in input order, keeping duplicates and empty
/// values, so that validation can report them as Loki does.
pub(crate) fn parse_label_pairs(s: &str) -> Result<Vec<(String, String)>, LabelParseError> {
    Parser { src: s, pos: 0 }.parse()
}

/// Renders sorted pairs as Loki prints a label set: `{a="1", "b.c"="2"}`. Unlike
/// `LabelSet`'s `Display` it keeps duplicate names, which appear in error messages.
pub(crate) fn render_pairs(pairs: &[(String, String)]) -> String {
    let mut out = String::with_capacity(pairs.iter().map(|(k, v)| k.len() + v.len() + 6).sum());
    out.push('{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if is_legacy_label_name(k) {
            out.push_str(k);
        } else {
            write_go_quoted(&mut out, k);
        }
        out.push('=');
        write_go_quoted(&mut out, v);
    }
    out.push('}');
    out
}

/// Whether `name` matches the classic label-name syntax `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn is_legacy_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

/// What the parser saw where it expected something else, for error messages.
enum Seen {
    End,
    Char(char),
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seen::End => f.write_str("end of input"),
            Seen::Char(c) => f.write_str(&go_quote(c.encode_utf8(&mut [0u8; 4]))),
        }
    }
}

impl<'a> Parser<'a> {
    fn parse(mut self) -> Result<Vec<(String, String)>, LabelParseError> {
        let mut pairs = Vec::new();
        self.skip_ws();
        if self.peek().is_none() {
            return Ok(pairs);
        }
        let mut has_metric_name = false;
        if self.peek().is_some_and(is_metric_start) {
            let name = self.take_while(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
            pairs.push((METRIC_NAME.to_string(), name.to_string()));
            has_metric_name = true;
            self.skip_ws();
            if self.peek().is_none() {
                return Ok(pairs);
            }
        }
        match self.peek() {
            Some('{') => self.pos += 1,
            _ => return Err(self.unexpected("label set", "\"{\"")),
        }
        loop {
            self.skip_ws();
            match self.peek() {
                Some('}') => {
                    self.pos += 1;
                    break;
                }
                None => return Err(self.error_here("unexpected end of input inside braces")),
                _ => {}
            }
            self.item(&mut pairs, &mut has_metric_name)?;
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some('}') => {
                    self.pos += 1;
                    break;
                }
                None => return Err(self.error_here("unexpected end of input inside braces")),
                Some(_) => return Err(self.unexpected("label set", "\",\" or \"}\"")),
            }
        }
        self.skip_ws();
        if self.peek().is_some() {
            return Err(self.unexpected("label set", "end of input"));
        }
        Ok(pairs)
    }

    /// One `name = "value"` item, or a bare quoted metric name.
    fn item(
        &mut self,
        pairs: &mut Vec<(String, String)>,
        has_metric_name: &mut bool,
    ) -> Result<(), LabelParseError> {
        let name = match self.peek() {
            Some(c) if c.is_ascii_alphabetic() || c == '_' => self
                .take_while(|c| c.is_ascii_alphanumeric() || c == '_')
                .to_string(),
            Some('"' | '\'' | '`') => {
                let start = self.pos;
                let name = self.string()?;
                self.skip_ws();
                if matches!(self.peek(), Some(',' | '}')) {
                    if *has_metric_name {
                        return Err(self.error_at(start, "metric name must not be set twice"));
                    }
                    *has_metric_name = true;
                    pairs.push((METRIC_NAME.to_string(), name));
                    return Ok(());
                }
                name
            }
            Some(c) if is_label_char_inside_braces(c) => {
                return Err(self.unexpected("label set", "identifier or \"}\""))
            }
            Some(c) => {
                let msg = format!("unexpected character inside braces: {}", go_quote_rune(c));
                return Err(self.error_here(msg));
            }
            None => return Err(self.error_here("unexpected end of input inside braces")),
        };
        self.skip_ws();
        match self.peek() {
            Some('=') => {
                self.pos += 1;
                if self.peek() == Some('~') {
                    self.pos -= 1;
                    return Err(self.unexpected_token("\"=~\"", "label set", "\"=\""));
                }
            }
            Some('!') => return Err(self.unexpected_token("\"!\"", "label set", "\"=\"")),
            None => return Err(self.error_here("unexpected end of input inside braces")),
            Some(_) => return Err(self.unexpected("label set", "\"=\"")),
        }
        self.skip_ws();
        match self.peek() {
            Some('"' | '\'' | '`') => {
                let value = self.string()?;
                pairs.push((name, value));
                Ok(())
            }
            None => Err(self.error_here("unexpected end of input inside braces")),
            Some(_) => Err(self.unexpected("label set", "string")),
        }
    }

    /// A quoted string starting at the current position, unescaped with Go's rules.
    /// `\x` and octal escapes may produce bytes that are not UTF-8: they are decoded
    /// lossily, so such values are stored with U+FFFD.
    fn string(&mut self) -> Result<String, LabelParseError> {
        let start = self.pos;
        let quote = self.bump().unwrap_or('"');
        if quote == '`' {
            let rest = &self.src[self.pos..];
            return match rest.find('`') {
                Some(end) => {
                    self.pos += end + 1;
                    Ok(rest[..end].to_string())
                }
                None => Err(self.error_at(start, "unterminated raw string")),
            };
        }
        let mut out: Vec<u8> = Vec::new();
        loop {
            match self.bump() {
                None | Some('\n') => return Err(self.error_at(start, "unterminated quoted string")),
                Some('\\') => self.escape(quote, start, &mut out)?,
                Some(c) if c == quote => break,
                Some(c) => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        Ok(match String::from_utf8(out) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    fn escape(
        &mut self,
        quote: char,
        start: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), LabelParseError> {
        let simple = |c: char| -> Option<u8> {
            Some(match c {
                'a' => 0x07,
                'b' => 0x08,
                'f' => 0x0c,
                'n' => b'\n',
                'r' => b'\r',
                't' => b'\t',
                'v' => 0x0b,
                '\\' => b'\\',
                _ => return None,
            })
        };
        let c = match self.bump() {
            Some(c) => c,
            None => return Err(self.error_at(start, "escape sequence not terminated")),
        };
        if c == quote {
            out.push(c as u8);
            return Ok(());
        }
        if let Some(b) = simple(c) {
            out.push(b);
            return Ok(());
        }
        let (digits, base, max, first) = match c {
            '0'..='7' => (2, 8, 255, c.to_digit(8)),
            'x' => (2, 16, 255, None),
            'u' => (4, 16, 0x10_FFFF, None),
            'U' => (8, 16, 0x10_FFFF, None),
            _ => {
                let msg = format!("unknown escape sequence {}", go_unicode_sharp(c));
                return Err(self.error_at(start, msg));
            }
        };
        let mut value: u32 = first.unwrap_or(0);
        for _ in 0..digits {
            let d = match self.bump() {
                None => return Err(self.error_at(start, "escape sequence not terminated")),
                Some(d) => d,
            };
            match d.to_digit(base) {
                Some(v) => value = value * base + v,
                None => {
                    let msg = format!(
                        "illegal character {} in escape sequence",
                        go_unicode_sharp(d)
                    );
                    return Err(self.error_at(start, msg));
                }
            }
        }
        if value > max || (0xD800..0xE000).contains(&value) {
            return Err(self.error_at(start, "escape sequence is an invalid Unicode code point"));
        }
        if max == 255 {
            out.push(value as u8);
        } else if let Some(ch) = char::from_u32(value) {
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
        Ok(())
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        self.take_while(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    }

    fn take_while(&mut self, pred: impl Fn(char) -> bool) -> &'a str {
        let rest = &self.src[self.pos..];
        let len = rest.find(|c: char| !pred(c)).unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    fn unexpected(&self, context: &str, expected: &str) -> LabelParseError {
        let seen = match self.peek() {
            None => Seen::End,
            Some(c) => Seen::Char(c),
        };
        self.unexpected_token(&seen.to_string(), context, expected)
    }

    fn unexpected_token(&self, seen: &str, context: &str, expected: &str) -> LabelParseError {
        self.error_here(format!(
            "unexpected {seen} in {context}, expected {expected}"
        ))
    }

    fn error_here(&self, msg: impl Into<String>) -> LabelParseError {
        self.error_at(self.pos, msg)
    }

    /// An error at byte offset `pos`, located as Prometheus does: 1-based line, and the
    /// 1-based byte column within that line.
    fn error_at(&self, pos: usize, msg: impl Into<String>) -> LabelParseError {
        let before = &self.src[..pos.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let col = match before.rfind('\n') {
            Some(nl) => pos - nl,
            None => pos + 1,
        };
        LabelParseError {
            line,
            col,
            msg: msg.into(),
        }
    }
}

fn is_metric_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

/// Characters the Prometheus lexer turns into a token inside braces (so the parser, not
/// the lexer, complains about them).
fn is_label_char_inside_braces(c: char) -> bool {
    matches!(c, ',' | '=' | '{' | '(' | ')' | '[' | ']' | '0'..='9')
}

/// Go's `%q` for a rune: `'x'`.
fn go_quote_rune(c: char) -> String {
    match c {
        '\'' => "'\\''".to_string(),
        '\\' => "'\\\\'".to_string(),
        '\n' => "'\\n'".to_string(),
        '\t' => "'\\t'".to_string(),
        '\r' => "'\\r'".to_string(),
        c if c.is_control() => format!("'\\x{:02x}'", c as u32),
        c => format!("'{c}'"),
    }
}

/// Go's `%#U` for a rune: `U+0071 'q'` (without the quoted form when not printable).
fn go_unicode_sharp(c: char) -> String {
    if c.is_control() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("U+{:04X} '{c}'", c as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &str) -> Vec<(String, String)> {
        parse_label_pairs(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn p(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn valid_label_strings() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("   ", &[]),
            ("{}", &[]),
            (r#"{a="b"}"#, &[("a", "b")]),
            (r#"{a="b",}"#, &[("a", "b")]),
            (r#"{ b = "2" , a="1" , }"#, &[("b", "2"), ("a", "1")]),
            ("{a='x'}", &[("a", "x")]),
            ("{a=`x\\n\ny`}", &[("a", "x\\n\ny")]),
            (r#"foo{a="b"}"#, &[("__name__", "foo"), ("a", "b")]),
            ("foo:bar_1", &[("__name__", "foo:bar_1")]),
            (r#"{"service.name"="x"}"#, &[("service.name", "x")]),
            (
                r#"{"my_metric", a="b"}"#,
                &[("__name__", "my_metric"), ("a", "b")],
            ),
            (r#"{a="", b="c"}"#, &[("a", ""), ("b", "c")]),
            (r#"{a="1", a="2"}"#, &[("a", "1"), ("a", "2")]),
            ("{\n  a=\"b\"\n}\n", &[("a", "b")]),
            (r#"{sum="x", by="y"}"#, &[("sum", "x"), ("by", "y")]),
            (r#"{a="결제"}"#, &[("a", "결제")]),
        ];
        for (input, want) in cases {
            assert_eq!(pairs(input), p(want), "{input:?}");
        }
    }

    #[test]
    fn go_escapes() {
        let cases: &[(&str, &str)] = &[
            (r#"{a="\a\b\f\n\r\t\v\\\""}"#, "\x07\x08\x0c\n\r\t\x0b\\\""),
            (r"{a='\''}", "'"),
            (r#"{a="\x41\101\u00e9\U0001F600"}"#, "AAé😀"),
            (r#"{a="\xc3\xa9"}"#, "é"),
            (r#"{a="\xff"}"#, "\u{fffd}"),
            (r#"{a="\000"}"#, "\0"),
        ];
        for (input, want) in cases {
            assert_eq!(pairs(input), p(&[("a", want)]), "{input:?}");
        }
    }

    #[test]
    fn errors_are_prometheus_style() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{a="b""#,
                "1:7: parse error: unexpected end of input inside braces",
            ),
            (r#"{a="b"#, "1:4: parse error: unterminated quoted string"),
            (
                "{a=\"b\nc\"}",
                "1:4: parse error: unterminated quoted string",
            ),
            ("{a=`b}", "1:4: parse error: unterminated raw string"),
            (
                r#"{a="\q"}"#,
                "1:4: parse error: unknown escape sequence U+0071 'q'",
            ),
            (
                r#"{a="\'"}"#,
                "1:4: parse error: unknown escape sequence U+0027 '''",
            ),
            (
                r#"{a='\"'}"#,
                "1:4: parse error: unknown escape sequence U+0022 '\"'",
            ),
            (
                r#"{a="\xZZ"}"#,
                "1:4: parse error: illegal character U+005A 'Z' in escape sequence",
            ),
            (
                r#"{a="\400"}"#,
                "1:4: parse error: escape sequence is an invalid Unicode code point",
            ),
            (
                r#"{a="\uD800"}"#,
                "1:4: parse error: escape sequence is an invalid Unicode code point",
            ),
            (
                r#"{a="\x4"#,
                "1:4: parse error: escape sequence not terminated",
            ),
            (
                r#"{a!="b"}"#,
                "1:3: parse error: unexpected \"!\" in label set, expected \"=\"",
            ),
            (
                r#"{a=~"b"}"#,
                "1:3: parse error: unexpected \"=~\" in label set, expected \"=\"",
            ),
            (
                r#"{a}"#,
                "1:3: parse error: unexpected \"}\" in label set, expected \"=\"",
            ),
            (
                r#"{a=b}"#,
                "1:4: parse error: unexpected \"b\" in label set, expected string",
            ),
            (
                r#"{a="b" c="d"}"#,
                "1:8: parse error: unexpected \"c\" in label set, expected \",\" or \"}\"",
            ),
            (
                r#"{,}"#,
                "1:2: parse error: unexpected \",\" in label set, expected identifier or \"}\"",
            ),
            (
                r#"{service.name="x"}"#,
                "1:9: parse error: unexpected \".\" in label set, expected \"=\"",
            ),
            (
                r#"{1abc="x"}"#,
                "1:2: parse error: unexpected \"1\" in label set, expected identifier or \"}\"",
            ),
            (
                r#"{a="b"} x"#,
                "1:9: parse error: unexpected \"x\" in label set, expected end of input",
            ),
            (
                "foo bar",
                "1:5: parse error: unexpected \"b\" in label set, expected \"{\"",
            ),
            (
                "{@}",
                "1:2: parse error: unexpected character inside braces: '@'",
            ),
            (
                "{\n a=\"\\q\"}",
                "2:4: parse error: unknown escape sequence U+0071 'q'",
            ),
            (
                r#"x{"y"}"#,
                "1:3: parse error: metric name must not be set twice",
            ),
        ];
        for (input, want) in cases {
            let err = parse_label_pairs(input).expect_err(input);
            assert_eq!(err.to_string(), *want, "{input:?}");
            assert_eq!(
                PushError::from(err).to_string(),
                format!("couldn't parse labels: {want}")
            );
        }
    }

    #[test]
    fn label_set_is_canonical() {
        let set = parse_label_set(r#"{z="1", a="2", e=""}"#).unwrap();
        assert_eq!(set.to_string(), r#"{a="2", z="1"}"#);
    }

    #[test]
    fn render_keeps_duplicates_and_quotes_odd_names() {
        let pairs = p(&[("a", "1"), ("a", "2"), ("b.c", "x\"y")]);
        assert_eq!(render_pairs(&pairs), r#"{a="1", a="2", "b.c"="x\"y"}"#);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Loki's canonical rendering parses back to the same set, whatever the names
            /// and values hold (quotes, escapes, control characters, non-ASCII).
            #[test]
            fn canonical_form_round_trips(
                pairs in prop::collection::vec(("\\PC{0,8}|[a-z_]{1,8}", "\\PC{0,12}|[\\x00-\\x7f]{0,12}"), 0..6)
            ) {
                let set = LabelSet::from_pairs(pairs);
                let text = set.to_string();
                prop_assert_eq!(parse_label_set(&text).unwrap(), set, "{}", text);
            }
        }
    }
}
