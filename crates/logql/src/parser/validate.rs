//! Parse-time checks of the strings inside a query: regexes, patterns, JSON paths, logfmt
//! keys and IP patterns, with Loki's (Go's) error texts.

use std::collections::HashSet;
use std::net::IpAddr;

use fenrir_common::go_regex_syntax;
use regex_syntax::ast::ErrorKind;

/// Compiles `pattern` as Go would; the error reads like Go's
/// (`error parsing regexp: missing closing ): `(``).
pub(crate) fn check_regex(pattern: &str) -> Result<(), String> {
    let translated = go_regex_syntax(pattern);
    match regex::Regex::new(&translated) {
        Ok(_) => Ok(()),
        Err(err) => Err(go_regex_error(pattern, &err)),
    }
}

/// Go's `regexp/syntax` message for a pattern the `regex` crate rejected.
pub(crate) fn go_regex_error(pattern: &str, err: &regex::Error) -> String {
    let parsed = regex_syntax::ast::parse::Parser::new().parse(pattern);
    let Err(ast_err) = parsed else {
        let detail = err.to_string();
        let last = detail.lines().last().unwrap_or("invalid regexp").trim();
        let last = last.strip_prefix("error: ").unwrap_or(last);
        return format!("error parsing regexp: {last}: `{pattern}`");
    };
    let span = ast_err.span();
    let fragment = pattern
        .get(span.start.offset..span.end.offset)
        .unwrap_or(pattern);
    let to_end = pattern.get(span.start.offset..).unwrap_or(pattern);
    let (code, expr) = match ast_err.kind() {
        ErrorKind::GroupUnclosed => ("missing closing )", pattern),
        ErrorKind::GroupUnopened => ("unexpected )", pattern),
        ErrorKind::ClassUnclosed => ("missing closing ]", to_end),
        ErrorKind::ClassRangeInvalid => ("invalid character class range", fragment),
        ErrorKind::ClassEscapeInvalid
        | ErrorKind::EscapeUnrecognized
        | ErrorKind::EscapeUnexpectedEof
        | ErrorKind::EscapeHexEmpty
        | ErrorKind::EscapeHexInvalid
        | ErrorKind::EscapeHexInvalidDigit => ("invalid escape sequence", fragment),
        ErrorKind::RepetitionMissing => ("missing argument to repetition operator", fragment),
        ErrorKind::RepetitionCountInvalid
        | ErrorKind::RepetitionCountUnclosed
        | ErrorKind::RepetitionCountDecimalEmpty => ("invalid repeat count", fragment),
        ErrorKind::GroupNameInvalid
        | ErrorKind::GroupNameEmpty
        | ErrorKind::GroupNameUnexpectedEof => ("invalid named capture", fragment),
        ErrorKind::GroupNameDuplicate { .. } => ("duplicate capture group name", fragment),
        ErrorKind::FlagUnrecognized
        | ErrorKind::FlagDanglingNegation
        | ErrorKind::FlagDuplicate { .. }
        | ErrorKind::FlagRepeatedNegation { .. }
        | ErrorKind::FlagUnexpectedEof
        | ErrorKind::UnsupportedLookAround
        | ErrorKind::UnsupportedBackreference => ("invalid or unsupported Perl syntax", fragment),
        _ => ("invalid regexp", pattern),
    };
    format!("error parsing regexp: {code}: `{expr}`")
}

/// The names of the capture groups of a regex source, in order (`(?P<n>…)` and `(?<n>…)`).
fn capture_names(pattern: &str) -> Vec<String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '(' if !in_class && chars.get(i + 1) == Some(&'?') => {
                let open = match (chars.get(i + 2), chars.get(i + 3)) {
                    (Some('P'), Some('<')) => Some(i + 4),
                    (Some('<'), _) => Some(i + 3),
                    _ => None,
                };
                if let Some(start) = open {
                    if let Some(len) = chars[start..].iter().position(|c| *c == '>') {
                        names.push(chars[start..start + len].iter().collect());
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    names
}

/// Loki's `regexp` parser stage: a valid regex with at least one named capture and no
/// repeated name.
pub(crate) fn check_regexp_parser(pattern: &str) -> Result<(), String> {
    let names = capture_names(pattern);
    let mut seen = HashSet::new();
    for name in &names {
        if !seen.insert(name.as_str()) {
            return Err(format!("duplicate extracted label name '{name}'"));
        }
    }
    check_regex(pattern)?;
    if names.is_empty() {
        return Err("at least one named capture must be supplied".to_string());
    }
    Ok(())
}

/// A piece of a Loki pattern: a literal, `<_>` or `<name>`.
#[derive(Debug, PartialEq)]
enum PatternNode {
    Literal,
    Capture(Option<String>),
}

fn is_capture_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn pattern_nodes(pattern: &str) -> Vec<PatternNode> {
    let mut nodes = Vec::new();
    let mut rest = pattern;
    let mut literal_open = false;
    while !rest.is_empty() {
        if rest.starts_with('<') {
            if let Some(end) = rest.find('>') {
                let name = &rest[1..end];
                if name == "_" || is_capture_name(name) {
                    let capture = (name != "_").then(|| name.to_string());
                    nodes.push(PatternNode::Capture(capture));
                    rest = &rest[end + 1..];
                    literal_open = false;
                    continue;
                }
            }
        }
        if !literal_open {
            nodes.push(PatternNode::Literal);
            literal_open = true;
        }
        let step = rest.chars().next().map_or(1, char::len_utf8);
        rest = &rest[step..];
    }
    nodes
}

fn capture_text(name: &Option<String>) -> String {
    format!("<{}>", name.as_deref().unwrap_or("_"))
}

/// Loki's `pattern` parser stage.
pub(crate) fn check_pattern_parser(pattern: &str) -> Result<(), String> {
    let nodes = pattern_nodes(pattern);
    if nodes.is_empty() {
        return Err("parse error at line 1, col 1: syntax error: unexpected $end, expecting IDENTIFIER or LITERAL".to_string());
    }
    if !nodes
        .iter()
        .any(|n| matches!(n, PatternNode::Capture(Some(_))))
    {
        return Err("at least one capture is required".to_string());
    }
    for pair in nodes.windows(2) {
        if let [PatternNode::Capture(a), PatternNode::Capture(b)] = pair {
            return Err(format!(
                "found consecutive capture '{}{}': invalid expression",
                capture_text(a),
                capture_text(b)
            ));
        }
    }
    let mut seen = HashSet::new();
    for node in &nodes {
        if let PatternNode::Capture(Some(name)) = node {
            if !seen.insert(name.as_str()) {
                return Err(format!(
                    "duplicate capture name ({name}): invalid expression"
                ));
            }
        }
    }
    Ok(())
}

/// A `|>`/`!>` line-filter pattern: only `<_>` captures.
pub(crate) fn check_line_pattern(pattern: &str) -> Result<(), String> {
    if pattern_nodes(pattern)
        .iter()
        .any(|n| matches!(n, PatternNode::Capture(Some(_))))
    {
        return Err("named captures are not allowed".to_string());
    }
    Ok(())
}

/// An `ip("…")` pattern: an address, a CIDR block or a range `a-b`.
pub(crate) fn check_ip_pattern(pattern: &str) -> Result<(), String> {
    let invalid = || "ip: invalid pattern".to_string();
    let pattern = pattern.trim();
    if let Some((addr, bits)) = pattern.split_once('/') {
        let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
        let bits: u8 = bits.parse().map_err(|_| invalid())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        return if bits <= max { Ok(()) } else { Err(invalid()) };
    }
    if let Some((from, to)) = pattern.split_once('-') {
        let from: IpAddr = from.trim().parse().map_err(|_| invalid())?;
        let to: IpAddr = to.trim().parse().map_err(|_| invalid())?;
        return if from.is_ipv4() == to.is_ipv4() && from <= to {
            Ok(())
        } else {
            Err(invalid())
        };
    }
    pattern.parse::<IpAddr>().map(|_| ()).map_err(|_| invalid())
}

#[derive(Debug, PartialEq)]
enum PathTok {
    Field,
    Dot,
    Lsb,
    Rsb,
    Str,
    Index,
    End,
}

impl PathTok {
    fn name(&self) -> &'static str {
        match self {
            PathTok::Field => "FIELD",
            PathTok::Dot => "DOT",
            PathTok::Lsb => "LSB",
            PathTok::Rsb => "RSB",
            PathTok::Str => "STRING",
            PathTok::Index => "INDEX",
            PathTok::End => "$end",
        }
    }
}

fn path_tokens(expr: &str) -> Result<Vec<PathTok>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut in_brackets = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '.' => {
                out.push(PathTok::Dot);
                i += 1;
            }
            '[' => {
                out.push(PathTok::Lsb);
                in_brackets = true;
                i += 1;
            }
            ']' => {
                out.push(PathTok::Rsb);
                in_brackets = false;
                i += 1;
            }
            '"' => {
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unexpected EOF in string".to_string()),
                        Some('\\') => i += 2,
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                out.push(PathTok::Str);
            }
            c if in_brackets && c.is_ascii_digit() => {
                while chars.get(i).is_some_and(|c| c.is_ascii_digit()) {
                    i += 1;
                }
                out.push(PathTok::Index);
            }
            c if c.is_alphanumeric() || c == '_' => {
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                {
                    i += 1;
                }
                out.push(PathTok::Field);
            }
            other => return Err(format!("unexpected char {other}")),
        }
    }
    out.push(PathTok::End);
    Ok(out)
}

fn path_syntax_error(found: &PathTok, expecting: &[&str]) -> String {
    if expecting.is_empty() {
        format!("syntax error: unexpected {}", found.name())
    } else {
        format!(
            "syntax error: unexpected {}, expecting {}",
            found.name(),
            expecting.join(" or ")
        )
    }
}

/// A `json` parameter path: `a.b`, `a["key"]`, `a[0]`, `[0].b`.
pub(crate) fn check_json_path(expr: &str) -> Result<(), String> {
    let wrap = |e: String| format!("cannot parse expression [{expr}]: {e}");
    let toks = path_tokens(expr).map_err(wrap)?;
    let mut i = 0;
    let mut first = true;
    loop {
        let tok = &toks[i];
        match tok {
            PathTok::Field if first => i += 1,
            PathTok::Lsb => {
                i += 1;
                match &toks[i] {
                    PathTok::Str | PathTok::Index => i += 1,
                    t => return Err(wrap(path_syntax_error(t, &["STRING", "INDEX"]))),
                }
                match &toks[i] {
                    PathTok::Rsb => i += 1,
                    t => return Err(wrap(path_syntax_error(t, &["RSB"]))),
                }
            }
            PathTok::Dot if !first => {
                i += 1;
                match &toks[i] {
                    PathTok::Field => i += 1,
                    t => return Err(wrap(path_syntax_error(t, &["FIELD"]))),
                }
            }
            PathTok::End if !first => return Ok(()),
            t if first => return Err(wrap(path_syntax_error(t, &["LSB", "FIELD"]))),
            t => return Err(wrap(path_syntax_error(t, &[]))),
        }
        first = false;
    }
}

/// A `logfmt` parameter key: one bare key or one quoted key.
pub(crate) fn check_logfmt_key(expr: &str) -> Result<(), String> {
    let wrap = |e: String| format!("cannot parse expression [{expr}]: {e}");
    let mut tokens = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            tokens.push("STRING");
        } else if c.is_alphanumeric() || c == '_' || c == '-' {
            while chars
                .get(i)
                .is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
            {
                i += 1;
            }
            tokens.push("KEY");
        } else {
            return Err(wrap(format!("unexpected char {c}")));
        }
    }
    match tokens.as_slice() {
        [] => Err(wrap(
            "syntax error: unexpected $end, expecting STRING or KEY".to_string(),
        )),
        [_] => Ok(()),
        [_, second, ..] => Err(wrap(format!("syntax error: unexpected {second}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_errors_read_like_go() {
        assert_eq!(
            check_regex("("),
            Err("error parsing regexp: missing closing ): `(`".to_string())
        );
        assert_eq!(
            check_regex("(["),
            Err("error parsing regexp: missing closing ]: `[`".to_string())
        );
        assert_eq!(check_regex(r"\d+"), Ok(()));
    }

    #[test]
    fn regexp_parser_rules() {
        assert_eq!(check_regexp_parser("(?P<a>x)(y)"), Ok(()));
        assert_eq!(
            check_regexp_parser("abc"),
            Err("at least one named capture must be supplied".to_string())
        );
        assert_eq!(
            check_regexp_parser("(?P<a>x)(?P<a>y)"),
            Err("duplicate extracted label name 'a'".to_string())
        );
    }

    #[test]
    fn pattern_parser_rules() {
        assert_eq!(check_pattern_parser("<_> <a> <_>"), Ok(()));
        assert_eq!(
            check_pattern_parser("<_><_>"),
            Err("at least one capture is required".to_string())
        );
        assert_eq!(
            check_pattern_parser("<a><b>"),
            Err("found consecutive capture '<a><b>': invalid expression".to_string())
        );
        assert_eq!(
            check_pattern_parser("<a> <a>"),
            Err("duplicate capture name (a): invalid expression".to_string())
        );
        assert!(check_line_pattern("<_> done").is_ok());
        assert!(check_line_pattern("<x> done").is_err());
    }

    #[test]
    fn json_paths() {
        for ok in ["a.b[0]", "a[\"b\"]", "[0]", "servers[0].name", "a"] {
            assert_eq!(check_json_path(ok), Ok(()), "{ok}");
        }
        let cases = [
            ("bar[", "cannot parse expression [bar[]: syntax error: unexpected $end, expecting STRING or INDEX"),
            ("a..b", "cannot parse expression [a..b]: syntax error: unexpected DOT, expecting FIELD"),
            ("", "cannot parse expression []: syntax error: unexpected $end, expecting LSB or FIELD"),
            ("a.b-c", "cannot parse expression [a.b-c]: unexpected char -"),
            ("a b", "cannot parse expression [a b]: syntax error: unexpected FIELD"),
            ("a.[0]", "cannot parse expression [a.[0]]: syntax error: unexpected LSB, expecting FIELD"),
            ("a[x]", "cannot parse expression [a[x]]: syntax error: unexpected FIELD, expecting STRING or INDEX"),
            ("a]", "cannot parse expression [a]]: syntax error: unexpected RSB"),
        ];
        for (path, want) in cases {
            assert_eq!(check_json_path(path), Err(want.to_string()), "{path}");
        }
    }

    #[test]
    fn logfmt_keys() {
        assert_eq!(check_logfmt_key("duration"), Ok(()));
        assert_eq!(
            check_logfmt_key("a.b"),
            Err("cannot parse expression [a.b]: unexpected char .".to_string())
        );
        assert_eq!(
            check_logfmt_key("a b"),
            Err("cannot parse expression [a b]: syntax error: unexpected KEY".to_string())
        );
    }

    #[test]
    fn ip_patterns() {
        for ok in ["10.0.0.0/8", "192.168.1.7", "::1", "10.0.0.1-10.0.0.9"] {
            assert_eq!(check_ip_pattern(ok), Ok(()), "{ok}");
        }
        for bad in ["x", "10.0.0.0/40", "10.0.0.9-10.0.0.1"] {
            assert!(check_ip_pattern(bad).is_err(), "{bad}");
        }
    }
}
