//! `${VAR}` expansion of the raw configuration text (Loki's `-config.expand-env=true`).

/// Expands environment references in `text` before it is parsed, as Loki does with
/// `-config.expand-env=true` (Loki uses `drone/envsubst`):
///
/// - `${VAR}` becomes the value of `VAR`; a variable that is not set becomes empty.
/// - `${VAR:-default}` (or `${VAR:=default}`) uses `default` when `VAR` is unset or
///   empty; `${VAR-default}` (or `${VAR=default}`) only when it is unset. The default
///   may itself contain references: `${A:-${B:-x}}`.
/// - `$$` is an escaped `$`, so `$${VAR}` leaves the literal text `${VAR}`.
/// - A bare `$VAR` is not a reference and is left alone, as in Loki.
///
/// Differences from Loki, on purpose: bash string functions (`${VAR:0:3}`, `${VAR^^}`,
/// `${VAR/a/b}`) and unterminated `${` are left as literal text instead of failing the
/// whole file, and backslashes are never consumed (envsubst turns `\\` into `\`).
///
/// `lookup` returns a variable's value; pass `|name| std::env::var(name).ok()` for the
/// process environment, or a map lookup in tests.
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let tail = &rest[dollar..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some((value, used)) = expand_reference(tail, &lookup) {
            out.push_str(&value);
            rest = &tail[used..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Expands the `${...}` reference at the start of `text`, returning its value and how
/// many bytes it spans, or `None` when `text` does not start with a supported reference.
fn expand_reference(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Option<(String, usize)> {
    let body = text.strip_prefix("${")?;
    let name_len = body
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    if name_len == 0 {
        return None;
    }
    let name = &body[..name_len];
    let after_name = &body[name_len..];
    let value = lookup(name);
    if after_name.starts_with('}') {
        return Some((value.unwrap_or_default(), 2 + name_len + 1));
    }
    let (operator_len, use_default_when_empty) =
        if after_name.starts_with(":-") || after_name.starts_with(":=") {
            (2, true)
        } else if after_name.starts_with('-') || after_name.starts_with('=') {
            (1, false)
        } else {
            return None;
        };
    let (default, default_len) = expand_default(&after_name[operator_len..], lookup)?;
    let consumed = 2 + name_len + operator_len + default_len;
    let value = match value {
        Some(value) if !(use_default_when_empty && value.is_empty()) => value,
        _ => default,
    };
    Some((value, consumed))
}

/// Reads a default value up to and including its closing `}`, expanding references
/// and `$$` inside it. Returns the expanded text and the bytes consumed.
fn expand_default(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut position = 0;
    while position < text.len() {
        let tail = &text[position..];
        if tail.starts_with('}') {
            return Some((out, position + 1));
        }
        if tail.starts_with("$$") {
            out.push('$');
            position += 2;
        } else if tail.starts_with("${") {
            let (value, used) = expand_reference(tail, lookup)?;
            out.push_str(&value);
            position += used;
        } else {
            let ch = tail.chars().next()?;
            out.push(ch);
            position += ch.len_utf8();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn expand(text: &str) -> String {
        let vars: HashMap<&str, &str> = [
            ("HOST", "10.0.0.1"),
            ("PORT", "3100"),
            ("EMPTY", ""),
            ("UNICODE", "é✓"),
        ]
        .into_iter()
        .collect();
        expand_env(text, |name| vars.get(name).map(|v| v.to_string()))
    }

    #[test]
    fn set_variables_are_substituted() {
        assert_eq!(expand("addr: ${HOST}:${PORT}\n"), "addr: 10.0.0.1:3100\n");
        assert_eq!(expand("${UNICODE}-ü"), "é✓-ü");
    }

    #[test]
    fn unset_variables_become_empty() {
        assert_eq!(expand("key: ${NOPE}\n"), "key: \n");
        assert_eq!(expand("key: '${EMPTY}'"), "key: ''");
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        assert_eq!(expand("${NOPE:-127.0.0.1}"), "127.0.0.1");
        assert_eq!(expand("${EMPTY:-fallback}"), "fallback");
        assert_eq!(expand("${PORT:-9999}"), "3100");
        assert_eq!(expand("${NOPE:=x}"), "x");
        // Without the colon the default is for unset variables only.
        assert_eq!(expand("[${EMPTY-fallback}]"), "[]");
        assert_eq!(expand("${NOPE-fallback}"), "fallback");
        assert_eq!(expand("${NOPE:-}"), "");
        assert_eq!(expand("${NOPE:-http://a:b@c/d}"), "http://a:b@c/d");
    }

    #[test]
    fn defaults_may_nest_references() {
        assert_eq!(expand("${NOPE:-${HOST}}"), "10.0.0.1");
        assert_eq!(expand("${NOPE:-${ALSO_NOPE:-deep}}"), "deep");
        assert_eq!(expand("${NOPE:-a$$b}"), "a$b");
    }

    #[test]
    fn double_dollar_escapes() {
        assert_eq!(expand("price: $$5"), "price: $5");
        assert_eq!(expand("literal: $${HOST}"), "literal: ${HOST}");
        assert_eq!(expand("$$$$"), "$$");
    }

    #[test]
    fn non_references_are_left_alone() {
        assert_eq!(expand("regex: ^a$"), "regex: ^a$");
        assert_eq!(expand("bare: $HOST"), "bare: $HOST");
        assert_eq!(expand("open: ${HOST"), "open: ${HOST");
        assert_eq!(expand("open: ${NOPE:-x"), "open: ${NOPE:-x");
        assert_eq!(expand("func: ${HOST^^}"), "func: ${HOST^^}");
        assert_eq!(expand("empty: ${}"), "empty: ${}");
        assert_eq!(expand(r"back: \\d"), r"back: \\d");
    }
}
