//! The `| json` walker as it was before the byte-level rewrite, kept only so that the
//! differential tests can check the new one gives the same labels and errors. Two fixes
//! were made to it as to the new one (they change no valid input): a multi-byte
//! character after a backslash panicked, and `\u+123` was taken for `\u0123`.

#![allow(dead_code)]

use crate::ast::LabelExtraction;
use crate::pipeline::labels::{is_valid_label_key, sanitize_label_key, LineLabels, ERR_JSON};

pub(crate) const MALFORMED_OBJECT: &str =
    "Value looks like object, but can't find closing '}' symbol";
pub(crate) const MALFORMED_ARRAY: &str = "Value is array, but can't find closing ']' symbol";
pub(crate) const MALFORMED_STRING: &str = "Value is string, but can't find closing '\"' symbol";
pub(crate) const MALFORMED_JSON: &str = "Malformed JSON error";
pub(crate) const MALFORMED_ESCAPE: &str = "Encountered an invalid escape sequence in a string";
pub(crate) const UNKNOWN_VALUE_TYPE: &str = "Unknown value type";

/// Nesting deeper than this is treated as malformed, so hostile input cannot exhaust the
/// stack.
const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueType {
    String,
    Number,
    Boolean,
    Null,
    Object,
    Array,
}

/// Index of the first non-whitespace byte at or after `i`.
fn skip_ws(data: &[u8], mut i: usize) -> Option<usize> {
    while i < data.len() {
        match data[i] {
            b' ' | b'\n' | b'\r' | b'\t' => i += 1,
            _ => return Some(i),
        }
    }
    None
}

/// `data[start]` is just after an opening quote: returns the index of the closing quote
/// and whether the string has escapes.
fn string_end(data: &[u8], start: usize) -> Option<(usize, bool)> {
    // Keys and most values are short: a plain loop finds their end before a vectorised
    // search would have started.
    let short = data.len().min(start.saturating_add(24)).max(start);
    for (off, &b) in data[start..short].iter().enumerate() {
        match b {
            b'"' => return Some((start + off, false)),
            b'\\' => return string_end_slow(data, start),
            _ => {}
        }
    }
    // Neither a quote nor a backslash so far: go on from there.
    string_end_slow(data, short)
}

fn string_end_slow(data: &[u8], start: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    let mut i = start;
    while let Some(off) = memchr::memchr2(b'"', b'\\', &data[i..]) {
        let at = i + off;
        if data[at] == b'\\' {
            escaped = true;
            i = at + 2;
            if i > data.len() {
                return None;
            }
            continue;
        }
        return Some((at, escaped));
    }
    None
}

/// `data[start]` is `open`: index just past the matching close, skipping strings.
fn block_end(data: &[u8], start: usize, open: u8, close: u8) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i < data.len() {
        match data[i] {
            b'"' => {
                let (end, _) = string_end(data, i + 1)?;
                i = end + 1;
                continue;
            }
            b if b == open => depth += 1,
            b if b == close => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn token_end(data: &[u8], start: usize) -> usize {
    data[start..]
        .iter()
        .position(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t' | b',' | b'}' | b']'))
        .map_or(data.len(), |p| start + p)
}

/// One value at `start` (no leading whitespace): its raw bytes (strings without quotes),
/// its type, whether a string has escapes, and the index just past it.
fn value_at(
    data: &[u8],
    start: usize,
) -> Result<(usize, usize, ValueType, bool, usize), &'static str> {
    match data[start] {
        b'"' => {
            let (end, esc) = string_end(data, start + 1).ok_or(MALFORMED_STRING)?;
            Ok((start + 1, end, ValueType::String, esc, end + 1))
        }
        b'[' => {
            let end = block_end(data, start, b'[', b']').ok_or(MALFORMED_ARRAY)?;
            Ok((start, end, ValueType::Array, false, end))
        }
        b'{' => {
            let end = block_end(data, start, b'{', b'}').ok_or(MALFORMED_OBJECT)?;
            Ok((start, end, ValueType::Object, false, end))
        }
        first => {
            let end = token_end(data, start);
            let raw = &data[start..end];
            let ty = match first {
                b't' | b'f' if raw == b"true" || raw == b"false" => ValueType::Boolean,
                b'n' if raw == b"null" => ValueType::Null,
                b'0'..=b'9' | b'-' => ValueType::Number,
                _ => return Err(UNKNOWN_VALUE_TYPE),
            };
            Ok((start, end, ty, false, end))
        }
    }
}

/// Receives each member of an object: key, raw value, type, whether a string has escapes.
pub(crate) type MemberFn<'f, 'd> =
    dyn FnMut(&str, &'d str, ValueType, bool) -> Result<(), &'static str> + 'f;

/// Walks the object at `data[start..]` (after optional whitespace), calling `f(key, raw,
/// type, escaped)` for each member in order; stops at the first error, after the members
/// already seen were reported (partial extraction).
pub(crate) fn object_each<'d>(
    data: &'d str,
    start: usize,
    key_buf: &mut String,
    f: &mut MemberFn<'_, 'd>,
) -> Result<(), &'static str> {
    let bytes = data.as_bytes();
    let mut i = skip_ws(bytes, start).ok_or(MALFORMED_OBJECT)?;
    if bytes[i] != b'{' {
        return Err(MALFORMED_OBJECT);
    }
    i = skip_ws(bytes, i + 1).ok_or(MALFORMED_JSON)?;
    if bytes[i] == b'}' {
        return Ok(());
    }
    loop {
        match bytes[i] {
            b'"' => i += 1,
            b'}' => return Ok(()),
            _ => return Err(MALFORMED_OBJECT),
        }
        let (key_end, key_escaped) = string_end(bytes, i).ok_or(MALFORMED_JSON)?;
        let raw_key = &data[i..key_end];
        let key: &str = if key_escaped {
            key_buf.clear();
            if !unescape_into(raw_key, key_buf) {
                return Err(MALFORMED_ESCAPE);
            }
            key_buf
        } else {
            raw_key
        };
        i = skip_ws(bytes, key_end + 1).ok_or(MALFORMED_JSON)?;
        if bytes[i] != b':' {
            return Err(MALFORMED_JSON);
        }
        i = skip_ws(bytes, i + 1).ok_or(MALFORMED_JSON)?;
        let (vs, ve, ty, esc, next) = value_at(bytes, i)?;
        f(key, &data[vs..ve], ty, esc)?;
        i = skip_ws(bytes, next).ok_or(MALFORMED_ARRAY)?;
        match bytes[i] {
            b'}' => return Ok(()),
            b',' => i += 1,
            _ => return Err(MALFORMED_OBJECT),
        }
        i = skip_ws(bytes, i).ok_or(MALFORMED_ARRAY)?;
    }
}

/// Unescapes the inside of a JSON string into `out`; `false` on a bad escape. Lone
/// surrogates become U+FFFD.
pub(crate) fn unescape_into(raw: &str, out: &mut String) -> bool {
    let mut rest = raw;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let esc = &rest[i + 1..];
        // Every valid escape is ASCII: anything else (a multi-byte character too) is
        // invalid, as in jsonparser.
        let Some(&c) = esc.as_bytes().first() else {
            return false;
        };
        if !c.is_ascii() {
            return false;
        }
        rest = &esc[1..];
        match c {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let Some(hi) = hex4(rest) else {
                    return false;
                };
                rest = &rest[4..];
                if (0xD800..0xDC00).contains(&hi) {
                    let lo = rest
                        .strip_prefix("\\u")
                        .and_then(hex4)
                        .filter(|lo| (0xDC00..0xE000).contains(lo));
                    match lo {
                        Some(lo) => {
                            rest = &rest[6..];
                            let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                            out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                        }
                        None => out.push('\u{fffd}'),
                    }
                } else {
                    out.push(char::from_u32(hi).unwrap_or('\u{fffd}'));
                }
            }
            _ => return false,
        }
    }
    out.push_str(rest);
    true
}

/// The four hex digits `s` starts with (only digits: `from_str_radix` alone would take a
/// sign).
fn hex4(s: &str) -> Option<u32> {
    let h = s.get(..4)?;
    if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(h, 16).ok()
}

/// Writes a label value for a raw JSON value: strings unescaped (U+FFFD, Go's invalid
/// UTF-8 marker, becomes a space as in Loki), everything else as raw text.
fn write_value(raw: &str, ty: ValueType, escaped: bool, out: &mut String) {
    out.clear();
    match ty {
        ValueType::String if escaped => {
            if !unescape_into(raw, out) {
                out.clear();
            } else if out.contains('\u{fffd}') {
                *out = out.replace('\u{fffd}', " ");
            }
        }
        ValueType::Null => {}
        _ => out.push_str(raw),
    }
}

/// Not an error: the walk stops because the line has every label the parser hints
/// require (Loki's `errFoundAllLabels`).
const FOUND_ALL_LABELS: &str = "found all required labels";

/// `| json` without parameters: every scalar leaf, nested keys joined by `_`. Under
/// parser hints, only the required leaves, and the walk stops once it has them all.
#[derive(Debug, Default, Clone)]
pub(crate) struct JsonParser {
    prefix: String,
    key_buf: String,
    name: String,
    value: String,
}

impl JsonParser {
    pub(crate) fn process(&mut self, line: &str, labels: &mut LineLabels) {
        self.prefix.clear();
        let JsonParser {
            prefix,
            key_buf,
            name,
            value,
        } = self;
        let mut state = Walk {
            prefix,
            name,
            value,
            labels,
            depth: 0,
        };
        let result = object_each(line, 0, key_buf, &mut |k, raw, ty, esc| {
            state.member(k, raw, ty, esc)
        });
        match result {
            Ok(()) => {}
            Err(e) if e == FOUND_ALL_LABELS => {}
            Err(e) => state.labels.set_parser_err(ERR_JSON, Some(e)),
        }
    }
}

struct Walk<'a> {
    prefix: &'a mut String,
    name: &'a mut String,
    value: &'a mut String,
    labels: &'a mut LineLabels,
    depth: usize,
}

impl Walk<'_> {
    fn member(
        &mut self,
        key: &str,
        raw: &str,
        ty: ValueType,
        escaped: bool,
    ) -> Result<(), &'static str> {
        match ty {
            ValueType::String | ValueType::Number | ValueType::Boolean => {
                let name: &str = if self.prefix.is_empty() && is_valid_label_key(key) {
                    // A top-level key that needs no sanitising: no copy.
                    key
                } else {
                    let plen = self.prefix.len();
                    self.prefix.push_str(key);
                    sanitize_label_key(self.prefix, self.name);
                    self.prefix.truncate(plen);
                    self.name
                };
                if !name.is_empty()
                    && self.labels.may_extract(name)
                    && !self.labels.parser_target_taken(name)
                {
                    write_value(raw, ty, escaped, self.value);
                    self.labels.set_from_parser(name, self.value);
                }
            }
            ValueType::Object => {
                if self.depth >= MAX_DEPTH {
                    return Err(MALFORMED_OBJECT);
                }
                let plen = self.prefix.len();
                self.prefix.push_str(key);
                // Hints: an object no required label starts with is not walked (so
                // it raises no error either).
                sanitize_label_key(self.prefix, self.name);
                if !self.labels.may_extract_prefix(self.name) {
                    self.prefix.truncate(plen);
                    return Ok(());
                }
                self.prefix.push('_');
                self.depth += 1;
                let mut key_buf = String::new();
                let result = object_each(raw, 0, &mut key_buf, &mut |k, r, t, e| {
                    self.member(k, r, t, e)
                });
                self.depth -= 1;
                self.prefix.truncate(plen);
                return result;
            }
            ValueType::Array | ValueType::Null => {}
        }
        if self.labels.all_required_extracted() {
            return Err(FOUND_ALL_LABELS);
        }
        Ok(())
    }
}

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathPart {
    Field(String),
    Index(usize),
}

/// Parses `a.b[0]["c d"]`.
pub(crate) fn parse_path(expr: &str) -> Result<Vec<PathPart>, String> {
    let err = || format!("cannot parse expression: {expr}");
    let bytes = expr.as_bytes();
    let mut parts = Vec::new();
    let mut i = 0;
    let mut expect_field = true;
    while i < bytes.len() {
        match bytes[i] {
            b'.' if !expect_field && i + 1 < bytes.len() => {
                i += 1;
                expect_field = true;
            }
            b'[' => {
                let close_search = &expr[i + 1..];
                if let Some(quoted) = close_search.strip_prefix('"') {
                    let end = quoted.find("\"]").ok_or_else(err)?;
                    let mut key = String::new();
                    if !unescape_into(&quoted[..end], &mut key) {
                        return Err(err());
                    }
                    parts.push(PathPart::Field(key));
                    i += 1 + 1 + end + 2;
                } else {
                    let end = close_search.find(']').ok_or_else(err)?;
                    let index: usize = close_search[..end].trim().parse().map_err(|_| err())?;
                    parts.push(PathPart::Index(index));
                    i += 1 + end + 1;
                }
                expect_field = false;
            }
            _ if expect_field => {
                let end = expr[i..].find(['.', '[']).map_or(expr.len(), |p| i + p);
                if end == i {
                    return Err(err());
                }
                parts.push(PathPart::Field(expr[i..end].to_string()));
                i = end;
                expect_field = false;
            }
            _ => return Err(err()),
        }
    }
    if parts.is_empty() || expect_field {
        return Err(err());
    }
    Ok(parts)
}

/// Finds the value at `path`; `None` when absent or the JSON is malformed on the way.
fn get_path<'d>(data: &'d str, path: &[PathPart]) -> Option<(&'d str, ValueType, bool)> {
    let bytes = data.as_bytes();
    let mut start = skip_ws(bytes, 0)?;
    let (mut vs, mut ve, mut ty, mut esc, _) = value_at(bytes, start).ok()?;
    for part in path {
        match (part, ty) {
            (PathPart::Field(name), ValueType::Object) => {
                let mut found = None;
                let mut key_buf = String::new();
                let _ = object_each(&data[..ve], vs, &mut key_buf, &mut |k, raw, t, e| {
                    if found.is_none() && k == name {
                        found = Some((raw, t, e));
                        return Err("found");
                    }
                    Ok(())
                });
                let (raw, t, e) = found?;
                // Offsets of `raw` inside `data`.
                vs = raw.as_ptr() as usize - data.as_ptr() as usize;
                ve = vs + raw.len();
                ty = t;
                esc = e;
            }
            (PathPart::Index(n), ValueType::Array) => {
                start = skip_ws(bytes, vs + 1)?;
                let mut index = 0;
                loop {
                    if bytes[start] == b']' {
                        return None;
                    }
                    let (s, e, t, es, next) = value_at(bytes, start).ok()?;
                    if index == *n {
                        vs = s;
                        ve = e;
                        ty = t;
                        esc = es;
                        break;
                    }
                    index += 1;
                    start = skip_ws(bytes, next)?;
                    match bytes[start] {
                        b',' => start = skip_ws(bytes, start + 1)?,
                        _ => return None,
                    }
                }
            }
            _ => return None,
        }
    }
    Some((&data[vs..ve], ty, esc))
}

/// `| json a="path", b`: only the listed labels, each created even when its path is
/// missing (as `""`).
#[derive(Debug, Clone)]
pub(crate) struct JsonExpressionParser {
    exprs: Vec<(String, Vec<PathPart>)>,
    value: String,
}

impl JsonExpressionParser {
    pub(crate) fn new(params: &[LabelExtraction]) -> Result<Self, String> {
        let mut exprs = Vec::with_capacity(params.len());
        for p in params {
            exprs.push((p.label.clone(), parse_path(&p.expression)?));
        }
        Ok(JsonExpressionParser {
            exprs,
            value: String::new(),
        })
    }

    pub(crate) fn process(&mut self, line: &str, labels: &mut LineLabels) {
        if line.is_empty() {
            return;
        }
        let first = line
            .trim_start_matches([' ', '\t', '\n', '\r'])
            .bytes()
            .next();
        if !matches!(first, Some(b'{' | b'[' | b'"')) {
            labels.set_parser_err(ERR_JSON, None);
            return;
        }
        for (label, path) in &self.exprs {
            self.value.clear();
            if let Some((raw, ty, esc)) = get_path(line, path) {
                write_value(raw, ty, esc, &mut self.value);
            }
            labels.set_requested(label, &self.value);
        }
    }
}
