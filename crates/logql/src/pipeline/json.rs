//! The `| json` parser: a hand-written scanner that walks the line once, borrows raw
//! values, and unescapes only strings that contain escapes. Its error texts are those of
//! the Go `jsonparser` library Loki uses, because they show up in `__error_details__`.

use super::labels::{sanitize_label_key, LineLabels, ERR_JSON};
use crate::ast::LabelExtraction;

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

/// Why a walk ends before the object does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Malformed input, with jsonparser's text.
    Malformed(&'static str),
    /// Not an error: the visitor has what it wants (Loki's `errFoundAllLabels`, a path's
    /// field).
    Done,
}

impl From<&'static str> for Stop {
    fn from(text: &'static str) -> Stop {
        Stop::Malformed(text)
    }
}

/// Byte classes for the scanner: JSON whitespace, the bytes that end a bare token
/// (number, `true`, `false`, `null`, or garbage), and those of label names.
const WS: u8 = 1;
const TOKEN_END: u8 = 2;
const LABEL: u8 = 4;
const DIGIT: u8 = 8;
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b' ' as usize] = WS | TOKEN_END;
    t[b'\n' as usize] = WS | TOKEN_END;
    t[b'\r' as usize] = WS | TOKEN_END;
    t[b'\t' as usize] = WS | TOKEN_END;
    t[b',' as usize] = TOKEN_END;
    t[b'}' as usize] = TOKEN_END;
    t[b']' as usize] = TOKEN_END;
    t[b'_' as usize] = LABEL;
    let mut c = 0;
    while c < 26 {
        t[(b'a' + c) as usize] = LABEL;
        t[(b'A' + c) as usize] = LABEL;
        if c < 10 {
            t[(b'0' + c) as usize] = LABEL | DIGIT;
        }
        c += 1;
    }
    t
};

/// Index of the first non-whitespace byte at or after `i`.
#[inline(always)]
fn skip_ws(data: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let b = *data.get(i)?;
        // Every whitespace byte is at most a space: one compare settles most bytes.
        if b > b' ' || CLASS[b as usize] & WS == 0 {
            return Some(i);
        }
        i += 1;
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bit set in the bytes of `word` equal to `byte`; the lowest set bit is exact (the
/// borrow of the zero-byte test can only mark bytes above a true match).
#[inline(always)]
fn bytes_equal(word: u64, byte: u8) -> u64 {
    let x = word ^ (LO * u64::from(byte));
    x.wrapping_sub(LO) & !x & HI
}

/// How far a string is scanned eight bytes at a time before handing over to `memchr2`:
/// keys and most values end within a few words, before a vectorised search would have
/// paid for its setup.
const SWAR_SPAN: usize = 64;

/// `data[start]` is just after an opening quote: returns the index of the closing quote
/// and whether the string has escapes.
#[inline(always)]
fn string_end(data: &[u8], start: usize) -> Option<(usize, bool)> {
    let limit = data.len().min(start.saturating_add(SWAR_SPAN));
    let mut i = start;
    while let Some(word) = data.get(i..limit).and_then(<[u8]>::first_chunk::<8>) {
        let word = u64::from_le_bytes(*word);
        let quotes = bytes_equal(word, b'"');
        let hits = quotes | bytes_equal(word, b'\\');
        if hits != 0 {
            // The first hit is exact, so it is a quote exactly when `quotes` has its bit.
            let first = hits & hits.wrapping_neg();
            let at = i + (first.trailing_zeros() / 8) as usize;
            return if quotes & first != 0 {
                Some((at, false))
            } else {
                string_end_escaped(data, at)
            };
        }
        i += 8;
    }
    while i < limit {
        match data[i] {
            b'"' => return Some((i, false)),
            b'\\' => return string_end_escaped(data, i),
            _ => i += 1,
        }
    }
    string_end_from(data, i, false)
}

/// High bit set in the bytes of `word` that may be in a label name (`[A-Za-z0-9_]`),
/// exactly: each byte is tested on its low seven bits, so no carry crosses bytes.
#[inline(always)]
fn label_bytes(word: u64) -> u64 {
    let low = word & !HI;
    // Set where the byte is at least `c`.
    let at_least = |x: u64, c: u8| (x + LO * u64::from(0x80 - c)) & HI;
    // Setting 0x20 folds upper case onto lower case and moves nothing else into a-z.
    let folded = low | (LO * 0x20);
    let alpha = at_least(folded, b'a') & !at_least(folded, b'z' + 1);
    let digit = at_least(low, b'0') & !at_least(low, b'9' + 1);
    let underscore = at_least(low, b'_') & !at_least(low, b'_' + 1);
    (alpha | digit | underscore) & !word & HI
}

/// `data[start]` is just after a key's opening quote: returns the index of the closing
/// quote, whether the key has escapes, and whether it is a label name as it stands
/// (needs no sanitising). Keys are mostly short label names: one pass over their bytes
/// answers both.
#[inline(always)]
fn key_end(data: &[u8], start: usize) -> Option<(usize, bool, bool)> {
    let mut i = start;
    // Eight bytes at once cover most keys.
    if let Some(word) = data.get(start..).and_then(<[u8]>::first_chunk::<8>) {
        let word = u64::from_le_bytes(*word);
        let others = !label_bytes(word) & HI;
        if others != 0 {
            let at = start + (others.trailing_zeros() / 8) as usize;
            if data[at] == b'"' {
                let label = at > start && CLASS[data[start] as usize] & DIGIT == 0;
                return Some((at, false, label));
            }
            let (end, escaped) = string_end(data, at)?;
            return Some((end, escaped, false));
        }
        i += 8;
    }
    while let Some(&b) = data.get(i) {
        if CLASS[b as usize] & LABEL != 0 {
            i += 1;
            continue;
        }
        if b == b'"' {
            let label = i > start && CLASS[data[start] as usize] & DIGIT == 0;
            return Some((i, false, label));
        }
        // Anything else (an escape, a byte to sanitise): the general scan from here.
        let (end, escaped) = string_end(data, i)?;
        return Some((end, escaped, false));
    }
    None
}

/// `data[at]` is a backslash inside a string.
#[cold]
fn string_end_escaped(data: &[u8], at: usize) -> Option<(usize, bool)> {
    string_end_from(data, at, true)
}

fn string_end_from(data: &[u8], mut i: usize, mut escaped: bool) -> Option<(usize, bool)> {
    while let Some(off) = memchr::memchr2(b'"', b'\\', data.get(i..)?) {
        let at = i + off;
        if data[at] == b'\\' {
            escaped = true;
            i = at + 2;
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
    while let Some(off) = memchr::memchr3(b'"', open, close, &data[i..]) {
        let at = i + off;
        match data[at] {
            b'"' => {
                let (end, _) = string_end(data, at + 1)?;
                i = end + 1;
                continue;
            }
            b if b == open => depth += 1,
            _ => {
                depth -= 1;
                if depth == 0 {
                    return Some(at + 1);
                }
            }
        }
        i = at + 1;
    }
    None
}

/// Index of the first byte at or after `start` that ends a bare token.
#[inline(always)]
fn token_end(data: &[u8], mut i: usize) -> usize {
    while let Some(&b) = data.get(i) {
        if CLASS[b as usize] & TOKEN_END != 0 {
            return i;
        }
        i += 1;
    }
    data.len()
}

/// One value: its raw bytes `data[start..end]` (strings without quotes), its type,
/// whether a string has escapes, and the index just past it.
#[derive(Debug, Clone, Copy)]
struct Value {
    start: usize,
    end: usize,
    ty: ValueType,
    escaped: bool,
    next: usize,
}

/// The value at `start` (no leading whitespace).
#[inline(always)]
fn value_at(data: &[u8], start: usize) -> Result<Value, &'static str> {
    let first = data[start];
    match first {
        b'"' => {
            let (end, escaped) = string_end(data, start + 1).ok_or(MALFORMED_STRING)?;
            Ok(Value {
                start: start + 1,
                end,
                ty: ValueType::String,
                escaped,
                next: end + 1,
            })
        }
        b'[' | b'{' => {
            let (close, ty, err) = if first == b'[' {
                (b']', ValueType::Array, MALFORMED_ARRAY)
            } else {
                (b'}', ValueType::Object, MALFORMED_OBJECT)
            };
            let end = block_end(data, start, first, close).ok_or(err)?;
            Ok(Value {
                start,
                end,
                ty,
                escaped: false,
                next: end,
            })
        }
        _ => {
            let end = token_end(data, start);
            let ty = match first {
                b'0'..=b'9' | b'-' => ValueType::Number,
                b't' if &data[start..end] == b"true" => ValueType::Boolean,
                b'f' if &data[start..end] == b"false" => ValueType::Boolean,
                b'n' if &data[start..end] == b"null" => ValueType::Null,
                _ => return Err(UNKNOWN_VALUE_TYPE),
            };
            Ok(Value {
                start,
                end,
                ty,
                escaped: false,
                next: end,
            })
        }
    }
}

/// Receives each member of an object: key, raw value, type, whether a string has escapes.
pub(crate) type MemberFn<'f, 'd> =
    dyn FnMut(&str, &'d str, ValueType, bool) -> Result<(), &'static str> + 'f;

/// [`walk_object`] for callers that only stop on errors (`| unpack`).
pub(crate) fn object_each<'d>(
    data: &'d str,
    start: usize,
    key_buf: &mut String,
    f: &mut MemberFn<'_, 'd>,
) -> Result<(), &'static str> {
    let result = walk_object(data, start, key_buf, &mut |k, _, v| {
        f(k, &data[v.start..v.end], v.ty, v.escaped).map_err(Stop::Malformed)
    });
    match result {
        Err(Stop::Malformed(e)) => Err(e),
        Ok(()) | Err(Stop::Done) => Ok(()),
    }
}

/// Walks the object at `data[start..]` (after optional whitespace), calling `f(key,
/// key_is_label, value)` for each member in order (`key_is_label`: the key needs no
/// sanitising; the raw value is `data[value.start..value.end]`); stops at the first
/// error or [`Stop::Done`], after the members already seen were reported (partial
/// extraction). The error texts and which of them comes first are jsonparser's
/// `ObjectEach`.
#[inline(always)]
fn walk_object<F>(data: &str, start: usize, key_buf: &mut String, f: &mut F) -> Result<(), Stop>
where
    F: FnMut(&str, bool, Value) -> Result<(), Stop>,
{
    let bytes = data.as_bytes();
    let mut i = skip_ws(bytes, start).ok_or(MALFORMED_OBJECT)?;
    if bytes[i] != b'{' {
        return Err(MALFORMED_OBJECT.into());
    }
    i = skip_ws(bytes, i + 1).ok_or(MALFORMED_JSON)?;
    loop {
        // `{}`, and a trailing comma, end the object.
        match bytes[i] {
            b'"' => i += 1,
            b'}' => return Ok(()),
            _ => return Err(MALFORMED_OBJECT.into()),
        }
        let (key_end, key_escaped, key_is_label) = key_end(bytes, i).ok_or(MALFORMED_JSON)?;
        let raw_key = &data[i..key_end];
        let key: &str = if key_escaped {
            key_buf.clear();
            if !unescape_into(raw_key, key_buf) {
                return Err(MALFORMED_ESCAPE.into());
            }
            key_buf
        } else {
            raw_key
        };
        // Compact JSON has no whitespace: test for the expected byte first.
        i = key_end + 1;
        if bytes.get(i) != Some(&b':') {
            i = skip_ws(bytes, i).ok_or(MALFORMED_JSON)?;
            if bytes[i] != b':' {
                return Err(MALFORMED_JSON.into());
            }
        }
        i = skip_ws(bytes, i + 1).ok_or(MALFORMED_JSON)?;
        let v = value_at(bytes, i)?;
        f(key, key_is_label, v)?;
        i = v.next;
        let sep = match bytes.get(i) {
            Some(&b) if b > b' ' => b,
            _ => {
                i = skip_ws(bytes, i).ok_or(MALFORMED_ARRAY)?;
                bytes[i]
            }
        };
        match sep {
            b',' => {
                i += 1;
                if bytes.get(i) != Some(&b'"') {
                    i = skip_ws(bytes, i).ok_or(MALFORMED_ARRAY)?;
                }
            }
            b'}' => return Ok(()),
            _ => return Err(MALFORMED_OBJECT.into()),
        }
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
        let mut walk = Walk {
            prefix,
            name,
            value,
            labels,
            depth: 0,
            check_done: true,
        };
        let result = walk_object(line, 0, key_buf, &mut |k, label, v| {
            walk.member(line, k, label, v)
        });
        // `Done` is not an error: the line has every label the hints require.
        if let Err(Stop::Malformed(e)) = result {
            walk.labels.set_parser_err(ERR_JSON, Some(e));
        }
    }
}

struct Walk<'a> {
    prefix: &'a mut String,
    name: &'a mut String,
    value: &'a mut String,
    labels: &'a mut LineLabels,
    depth: usize,
    /// Whether the next member ends with a test for [`Stop::Done`].
    check_done: bool,
}

impl Walk<'_> {
    /// One member of the object in `data`.
    #[inline(always)]
    fn member(&mut self, data: &str, key: &str, key_is_label: bool, v: Value) -> Result<(), Stop> {
        match v.ty {
            ValueType::String | ValueType::Number | ValueType::Boolean => {
                let name: &str = if self.prefix.is_empty() && key_is_label {
                    // A top-level key that needs no sanitising: no copy.
                    key
                } else {
                    let plen = self.prefix.len();
                    self.prefix.push_str(key);
                    sanitize_label_key(self.prefix, self.name);
                    self.prefix.truncate(plen);
                    self.name
                };
                if !name.is_empty() && self.labels.may_extract(name) {
                    let raw = &data[v.start..v.end];
                    if !v.escaped {
                        // The raw text is the value; `set_from_parser` itself keeps a
                        // target's first value.
                        self.labels.set_from_parser(name, raw);
                    } else if !self.labels.parser_target_taken(name) {
                        write_value(raw, v.ty, v.escaped, self.value);
                        self.labels.set_from_parser(name, self.value);
                    }
                    self.check_done = true;
                }
            }
            ValueType::Object => return self.object(key, &data[v.start..v.end]),
            ValueType::Array | ValueType::Null => {}
        }
        // Only a label set can complete the line, so the test runs after the first
        // member (the line may be complete already) and after each set.
        if self.check_done {
            if self.labels.all_required_extracted() {
                return Err(Stop::Done);
            }
            self.check_done = false;
        }
        Ok(())
    }

    /// A nested object: its members get `<key>_` in front of their names.
    fn object(&mut self, key: &str, raw: &str) -> Result<(), Stop> {
        if self.depth >= MAX_DEPTH {
            return Err(MALFORMED_OBJECT.into());
        }
        let plen = self.prefix.len();
        self.prefix.push_str(key);
        // Hints: an object no required label starts with is not walked (so it raises no
        // error either).
        sanitize_label_key(self.prefix, self.name);
        if !self.labels.may_extract_prefix(self.name) {
            self.prefix.truncate(plen);
            return Ok(());
        }
        self.prefix.push('_');
        self.depth += 1;
        let mut key_buf = String::new();
        let result = walk_object(raw, 0, &mut key_buf, &mut |k, label, v| {
            self.member(raw, k, label, v)
        });
        self.depth -= 1;
        self.prefix.truncate(plen);
        result
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
    let Value {
        start: mut vs,
        end: mut ve,
        mut ty,
        escaped: mut esc,
        ..
    } = value_at(bytes, start).ok()?;
    for part in path {
        match (part, ty) {
            (PathPart::Field(name), ValueType::Object) => {
                let mut found = None;
                let mut key_buf = String::new();
                let _ = walk_object(&data[..ve], vs, &mut key_buf, &mut |k, _, v| {
                    if found.is_none() && k == name {
                        found = Some(v);
                        return Err(Stop::Done);
                    }
                    Ok(())
                });
                let v = found?;
                vs = v.start;
                ve = v.end;
                ty = v.ty;
                esc = v.escaped;
            }
            (PathPart::Index(n), ValueType::Array) => {
                start = skip_ws(bytes, vs + 1)?;
                let mut index = 0;
                loop {
                    if bytes[start] == b']' {
                        return None;
                    }
                    let v = value_at(bytes, start).ok()?;
                    if index == *n {
                        vs = v.start;
                        ve = v.end;
                        ty = v.ty;
                        esc = v.escaped;
                        break;
                    }
                    index += 1;
                    start = skip_ws(bytes, v.next)?;
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

#[cfg(test)]
mod reference;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::labels::ParserHints;
    use fenrir_common::LabelSet;
    use proptest::prelude::*;

    fn run(line: &str, stream: &[(&str, &str)]) -> (Vec<(String, String)>, Option<String>) {
        let mut labels = LineLabels::new(LabelSet::from_pairs(stream.iter().copied()));
        labels.reset(&[]);
        JsonParser::default().process(line, &mut labels);
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
    fn flattens_skips_arrays_and_nulls_keeps_raw_numbers() {
        let (got, err) = run(
            r#"{"lvl":"warn","obj":{"x":1,"y":{"z":2}},"ok":true,"nil":null,"arr":[1,2],"f":1.50,"e":1e3}"#,
            &[],
        );
        assert_eq!(err, None);
        assert_eq!(
            got,
            pairs(&[
                ("e", "1e3"),
                ("f", "1.50"),
                ("lvl", "warn"),
                ("obj_x", "1"),
                ("obj_y_z", "2"),
                ("ok", "true"),
            ])
        );
    }

    #[test]
    fn clashes_sanitising_and_unescaping() {
        let (got, _) = run(
            r#"{"level":"info","user":{"id":"u1"},"a.b":"x","9k":"y","s":"tab\there \u00e9","dup":1,"dup":2}"#,
            &[("level", "info"), ("user_id", "7")],
        );
        assert_eq!(
            got,
            pairs(&[
                ("_9k", "y"),
                ("a_b", "x"),
                ("dup", "1"),
                ("level_extracted", "info"),
                ("s", "tab\there é"),
                ("user_id_extracted", "u1"),
            ])
        );
    }

    #[test]
    fn error_texts_and_partial_extraction() {
        let (got, err) = run(r#"{"level":"ERROR","message":"truncated payload"#, &[]);
        assert_eq!(got, pairs(&[("level", "ERROR")]));
        assert_eq!(err.as_deref(), Some(MALFORMED_STRING));
        let (got, err) = run("panic: boom", &[]);
        assert!(got.is_empty());
        assert_eq!(err.as_deref(), Some(MALFORMED_OBJECT));
        let (_, err) = run("", &[]);
        assert_eq!(
            err.as_deref(),
            Some(MALFORMED_OBJECT),
            "empty line is an error"
        );
        let (got, err) = run(r#"{"a":1} trailing garbage"#, &[]);
        assert_eq!((got, err), (pairs(&[("a", "1")]), None), "lenient trailing");
        let (_, err) = run(r#"{"a":[1,2"#, &[]);
        assert_eq!(err.as_deref(), Some(MALFORMED_ARRAY));
        let (_, err) = run(r#"{"a":tru}"#, &[]);
        assert_eq!(err.as_deref(), Some(UNKNOWN_VALUE_TYPE));
        let (_, err) = run(r#"{"a" 1}"#, &[]);
        assert_eq!(err.as_deref(), Some(MALFORMED_JSON));
    }

    #[test]
    fn string_ends_short_and_long_with_escapes_anywhere() {
        for (text, end, escaped) in [
            (r#"ab" x"#, 2, false),
            (r#"a\"b" x"#, 4, true),
            (r#"0123456789012345678901234567890123" x"#, 34, false),
            (r#"01234567890123456789012345678\"9" x"#, 32, true),
            (r#"012345678901234567890123\\" x"#, 26, true),
            ("\"", 0, false),
        ] {
            assert_eq!(
                string_end(text.as_bytes(), 0),
                Some((end, escaped)),
                "{text}"
            );
        }
        assert_eq!(string_end(b"0123456789012345678901234567890", 0), None);
        assert_eq!(string_end(br#"abc\"#, 0), None);
    }

    #[test]
    fn label_bytes_match_the_byte_test() {
        for b in 0..=255u8 {
            let bytes = [b'"', b, b'a', b, 0xff, b, b'_', b];
            let got = label_bytes(u64::from_le_bytes(bytes));
            for (k, &x) in bytes.iter().enumerate() {
                let want = x.is_ascii_alphanumeric() || x == b'_';
                assert_eq!(
                    (got >> (8 * k + 7)) & 1 == 1,
                    want,
                    "{x:#x} at {k} of {bytes:?}"
                );
                assert_eq!(got & !(0x80 << (8 * k)) & (0xff << (8 * k)), 0);
            }
        }
    }

    #[test]
    fn key_ends_say_whether_the_key_is_a_label_name() {
        for (text, want) in [
            (r#"status":1"#, Some((6, false, true))),
            (r#"_9":1"#, Some((2, false, true))),
            (r#"9k":1"#, Some((2, false, false))),
            (r#"":1"#, Some((0, false, false))),
            (r#"a.b":1"#, Some((3, false, false))),
            (r#"a\"b":1"#, Some((4, true, false))),
            (r#"é":1"#, Some((2, false, false))),
            ("abc", None),
            (r"ab\", None),
        ] {
            assert_eq!(key_end(text.as_bytes(), 0), want, "{text}");
        }
    }

    #[test]
    fn bad_escapes_are_errors_not_crashes() {
        let mut out = String::new();
        for bad in [r"\é", r"\u+123", r"\u12", r"\ud800\u+c00", r"x\"] {
            out.clear();
            assert!(!unescape_into(bad, &mut out), "{bad}");
        }
        out.clear();
        assert!(unescape_into(r"\u0041\ud83d\ude00\u00E9", &mut out));
        assert_eq!(out, "A\u{1f600}é");
        let (got, err) = run(r#"{"a":"\é","b":1}"#, &[]);
        assert_eq!((got, err), (pairs(&[("a", ""), ("b", "1")]), None));
        let (_, err) = run(r#"{"k\é":1}"#, &[]);
        assert_eq!(err.as_deref(), Some(MALFORMED_ESCAPE));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let line = format!("{}{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
        let (_, err) = run(&line, &[]);
        assert!(err.is_some());
    }

    #[test]
    fn paths() {
        assert_eq!(
            parse_path(r#"a.b[0]["c d"]"#).unwrap(),
            vec![
                PathPart::Field("a".into()),
                PathPart::Field("b".into()),
                PathPart::Index(0),
                PathPart::Field("c d".into())
            ]
        );
        assert!(parse_path("a..b").is_err());
        assert!(parse_path("a[").is_err());
        assert!(parse_path("").is_err());
        let line = r#"{"user":{"id":"u1","geo":{"country":"DE"}},"tags":["a","b"],"n":null,"request":{"headers":{"User-Agent":"curl"}}}"#;
        let get = |p: &str| {
            let mut out = String::new();
            if let Some((raw, ty, esc)) = get_path(line, &parse_path(p).unwrap()) {
                write_value(raw, ty, esc, &mut out);
            }
            out
        };
        assert_eq!(get("user.id"), "u1");
        assert_eq!(get("user.geo.country"), "DE");
        assert_eq!(get("tags[0]"), "a");
        assert_eq!(get("tags[1]"), "b");
        assert_eq!(get("tags[2]"), "");
        assert_eq!(get("tags"), r#"["a","b"]"#);
        assert_eq!(get("user.geo"), r#"{"country":"DE"}"#);
        assert_eq!(get("n"), "");
        assert_eq!(get(r#"request.headers["User-Agent"]"#), "curl");
        assert_eq!(get("no.such.path"), "");
    }

    #[test]
    fn expression_parser_rules() {
        let params = vec![
            LabelExtraction {
                label: "status".into(),
                expression: "status".into(),
            },
            LabelExtraction {
                label: "missing".into(),
                expression: "no.such.path".into(),
            },
        ];
        let mut p = JsonExpressionParser::new(&params).unwrap();
        let mut labels = LineLabels::new(LabelSet::from_pairs([("app", "a")]));
        labels.reset(&[]);
        p.process(r#"{"status":403}"#, &mut labels);
        assert_eq!(labels.get("status"), Some("403"));
        assert_eq!(labels.get("missing"), Some(""));
        assert!(!labels.has_err());
        labels.reset(&[]);
        p.process("", &mut labels);
        assert!(
            !labels.has_err() && labels.parsed.len() == 0,
            "empty line: nothing"
        );
        labels.reset(&[]);
        p.process("panic: boom", &mut labels);
        assert_eq!(labels.err(), Some(ERR_JSON));
        assert_eq!(
            labels.err_details(),
            None,
            "no details for a non-JSON start"
        );
    }

    /// Everything a `| json` run leaves on a line: parsed labels in order, the error and
    /// its details.
    type Outcome = (Vec<(String, String)>, Option<&'static str>, Option<String>);

    fn outcome(labels: &LineLabels) -> Outcome {
        let parsed = labels
            .parsed
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (
            parsed,
            labels.err(),
            labels.err_details().map(str::to_string),
        )
    }

    /// The hint sets the differential tests run under: none, then `Required` ones with
    /// top-level, nested, `_extracted` and `__error__` names.
    fn hint_sets() -> Vec<ParserHints> {
        let mut sets = vec![ParserHints::default()];
        for groups in [
            &["status"][..],
            &["a", "b_c"],
            &["level_extracted"],
            &["a_b_c", "x"],
            &["__error__", "k"],
            &["b", "b_extracted", "_9"],
        ] {
            let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
            sets.push(ParserHints::new(&[], &groups, false, false, None));
        }
        sets
    }

    /// Runs the new and the old walker on `line` under every hint set (with a parser
    /// and its buffers reused across lines, as a stream does) and compares.
    fn same_as_reference(line: &str) -> std::result::Result<(), TestCaseError> {
        let stream = LabelSet::from_pairs([("app", "a"), ("level", "info")]);
        for hints in hint_sets() {
            let mut new_labels = LineLabels::with_hints(stream.clone(), hints.clone());
            let mut old_labels = LineLabels::with_hints(stream.clone(), hints);
            let mut new = JsonParser::default();
            let mut old = reference::JsonParser::default();
            // Twice: the second run sees buffers the first one left behind.
            for meta in [&[][..], &[("b", "m")][..]] {
                new_labels.reset(meta);
                old_labels.reset(meta);
                new.process(line, &mut new_labels);
                old.process(line, &mut old_labels);
                prop_assert_eq!(
                    outcome(&new_labels),
                    outcome(&old_labels),
                    "line {:?}",
                    line
                );
            }
        }
        // The member walk itself (as `| unpack` uses it): same members, same stop.
        prop_assert_eq!(
            members(line),
            reference_members(line),
            "members, line {:?}",
            line
        );
        let paths = [
            "a", "b", "a.b", "a.b.c", "a[0]", "b[1]", "a[0].b", "c d", "x", "b_c",
        ];
        let params: Vec<LabelExtraction> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| LabelExtraction {
                label: format!("l{i}"),
                expression: (*p).to_string(),
            })
            .collect();
        let mut new = JsonExpressionParser::new(&params).expect("paths parse");
        let mut old = reference::JsonExpressionParser::new(&params).expect("paths parse");
        let mut new_labels = LineLabels::new(stream.clone());
        let mut old_labels = LineLabels::new(stream);
        new_labels.reset(&[]);
        old_labels.reset(&[]);
        new.process(line, &mut new_labels);
        old.process(line, &mut old_labels);
        prop_assert_eq!(
            outcome(&new_labels),
            outcome(&old_labels),
            "paths, line {:?}",
            line
        );
        Ok(())
    }

    /// Members a walk reports, `(key, raw, type, escaped)`, and how it ends.
    type Members = (
        Vec<(String, String, String, bool)>,
        std::result::Result<(), &'static str>,
    );

    /// A visitor may stop the walk: this one does at a key `c`.
    fn visit(
        seen: &mut Members,
        k: &str,
        raw: &str,
        ty: String,
        esc: bool,
    ) -> std::result::Result<(), &'static str> {
        seen.0.push((k.to_string(), raw.to_string(), ty, esc));
        if k == "c" {
            Err("stop")
        } else {
            Ok(())
        }
    }

    fn members(line: &str) -> Members {
        let mut seen = (Vec::new(), Ok(()));
        seen.1 = object_each(line, 0, &mut String::new(), &mut |k, raw, ty, esc| {
            visit(&mut seen, k, raw, format!("{ty:?}"), esc)
        });
        seen
    }

    fn reference_members(line: &str) -> Members {
        let mut seen = (Vec::new(), Ok(()));
        seen.1 = reference::object_each(line, 0, &mut String::new(), &mut |k, raw, ty, esc| {
            visit(&mut seen, k, raw, format!("{ty:?}"), esc)
        });
        seen
    }

    /// JSON-like values, nested up to a few levels, with the keys and escapes the hint
    /// sets care about.
    fn json_value() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just("c".to_string()),
            Just("status".to_string()),
            Just("level".to_string()),
            Just("a.b".to_string()),
            Just("9k".to_string()),
            Just(" x ".to_string()),
            Just("c d".to_string()),
            Just("b\\u005fc".to_string()),
            Just("k\\x".to_string()),
            Just("é".to_string()),
            "[a-z_]{0,12}",
            r#"[a-z"\\{}\[\]:, ]{0,6}"#,
        ];
        let leaf = prop_oneof![
            "-?[0-9]{1,4}(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?".prop_map(|s| s.to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            Just("null".to_string()),
            Just("tru".to_string()),
            Just("nul".to_string()),
            Just("1x".to_string()),
            r#"[a-zA-Z0-9 /.:é_-]{0,40}"#.prop_map(|s| format!("\"{s}\"")),
            r#"([a-z ]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4}|\\u[dD][89abAB][0-9a-f]{2}|\\u\+[0-9]{3}|\\é|\\x|\\){0,12}"#
                .prop_map(|s| format!("\"{s}\"")),
            "[0-9a-f]{20,80}".prop_map(|s| format!("\"{s}\"")),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                prop::collection::vec((key.clone(), inner, "[ \t\n]{0,2}"), 0..7).prop_map(
                    |members| {
                        let body: Vec<String> = members
                            .iter()
                            .map(|(k, v, ws)| format!("{ws}\"{k}\"{ws}:{ws}{v}{ws}"))
                            .collect();
                        format!("{{{}}}", body.join(","))
                    }
                ),
            ]
        })
    }

    /// A JSON-like line, sometimes broken: cut short, a byte changed, or garbage added.
    fn json_line() -> impl Strategy<Value = String> {
        (
            json_value(),
            0usize..4,
            any::<prop::sample::Index>(),
            prop::sample::select(
                &[
                    "", "\"", "\\", "{", "}", "[", "]", ",", ":", " ", "x", "0", "é",
                ][..],
            ),
        )
            .prop_map(|(value, how, at, junk)| {
                let mut line = value;
                let cut = |line: &String| {
                    let mut i = at.index(line.len() + 1);
                    while !line.is_char_boundary(i) {
                        i -= 1;
                    }
                    i
                };
                match how {
                    0 => {}
                    1 => {
                        let i = cut(&line);
                        line.truncate(i);
                    }
                    2 => {
                        let i = cut(&line);
                        line.insert_str(i, junk);
                    }
                    _ => {
                        let i = cut(&line);
                        let j = line[i..].chars().next().map_or(i, |c| i + c.len_utf8());
                        line.replace_range(i..j, junk);
                    }
                }
                line
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn walk_matches_reference_on_json_like_lines(line in json_line()) {
            same_as_reference(&line)?;
        }

        #[test]
        fn walk_matches_reference_on_json_alphabet(
            line in r#"[{}\[\]":, \ta-c0-9\\.ulnrtfe_-]{0,80}"#,
        ) {
            same_as_reference(&line)?;
        }

        #[test]
        fn walk_matches_reference_on_any_string(line in any::<String>()) {
            same_as_reference(&line)?;
            same_as_reference(&format!("{{\"a\":{line}"))?;
        }
    }

    #[test]
    fn walk_matches_reference_on_known_lines() {
        let workload = r#"{"ts":12,"level":"INFO","logger":"com.example.http.AccessLog","msg":"cache miss","method":"GET","url":"/api/users/123","status":200,"duration_ms":17,"bytes":100,"user":"u12","request_id":"0123456789abcdef0123456789abcdef"}"#;
        let mut lines = vec![
            workload.to_string(),
            String::new(),
            "{".into(),
            "{}".into(),
            "{,}".into(),
            r#"{"a":1,}"#.into(),
            r#"{"a":{"b":{"c":[1,{"d":"}"}]}},"x":"\"}"}"#.into(),
            r#"{"a":"\ud83d\ude00 \ud800 x","b\u005fc":"\u00e9"}"#.into(),
            r#"{"a":"\q"}"#.into(),
            r#"{"k\q":1}"#.into(),
            r#"{"a" : 1 , "b" :"x" }  "#.into(),
            "{\"a\":\"0123456789012345678901234567890123456789\\\"0123456789012345678901234\"}"
                .into(),
        ];
        // Every prefix of the workload line: each way it can be cut short.
        for i in 0..workload.len() {
            lines.push(workload[..i].to_string());
        }
        for line in lines {
            if let Err(e) = same_as_reference(&line) {
                panic!("{e}");
            }
        }
    }
}
