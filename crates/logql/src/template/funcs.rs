//! The template functions: Go's built-ins, Loki's own, and the sprig subset Loki exposes
//! (logql.md §1.13), with their Go semantics.

use super::gotime::GoTime;
use super::printf::sprintf;
use super::value::{format_value, from_json, truth, Value};
use super::TemplateContext;
use crate::parser::{parse_go_duration, parse_go_float, parse_humanized_bytes};

/// Largest string a template function may build, so one line cannot exhaust memory.
pub(crate) const MAX_OUTPUT: usize = 1 << 20;

const FUNCTIONS: &[&str] = &[
    // Go built-ins
    "and",
    "or",
    "not",
    "len",
    "index",
    "slice",
    "print",
    "printf",
    "println",
    "html",
    "js",
    "urlquery",
    "call",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    // Loki
    "__line__",
    "__timestamp__",
    "ToLower",
    "ToUpper",
    "Replace",
    "Trim",
    "TrimLeft",
    "TrimRight",
    "TrimPrefix",
    "TrimSuffix",
    "TrimSpace",
    "regexReplaceAll",
    "regexReplaceAllLiteral",
    "count",
    "urldecode",
    "urlencode",
    "bytes",
    "duration",
    "duration_seconds",
    "unixEpochMillis",
    "unixEpochNanos",
    "toDateInZone",
    "unixToTime",
    "alignLeft",
    "alignRight",
    "b64dec",
    // sprig
    "b64enc",
    "lower",
    "upper",
    "title",
    "trunc",
    "substr",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "indent",
    "nindent",
    "replace",
    "repeat",
    "trim",
    "trimAll",
    "trimSuffix",
    "trimPrefix",
    "int",
    "float64",
    "add",
    "sub",
    "mul",
    "div",
    "mod",
    "addf",
    "subf",
    "mulf",
    "divf",
    "max",
    "min",
    "maxf",
    "minf",
    "ceil",
    "floor",
    "round",
    "fromJson",
    "date",
    "toDate",
    "now",
    "unixEpoch",
    "default",
];

pub(crate) fn is_function(name: &str) -> bool {
    FUNCTIONS.contains(&name)
}

type FResult = Result<Value, String>;

fn want(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn want_at_least(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() < n {
        return Err(format!(
            "wrong number of args for {name}: want at least {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn wrong_type(v: &Value, expected: &str) -> String {
    format!(
        "wrong type for value; expected {expected}; got {}",
        v.type_name()
    )
}

fn s(v: &Value) -> Result<&str, String> {
    match v {
        Value::Str(s) => Ok(s),
        other => Err(wrong_type(other, "string")),
    }
}

fn int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(wrong_type(other, "int")),
    }
}

fn time(v: &Value) -> Result<&GoTime, String> {
    match v {
        Value::Time(t) => Ok(t),
        other => Err(wrong_type(other, "time.Time")),
    }
}

/// spf13/cast `ToInt64`, as sprig uses it: bad input gives 0.
fn to_int64(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => {
            let t = s.trim();
            let t = t.strip_suffix(".0").unwrap_or(t);
            parse_go_int(t).unwrap_or(0)
        }
        _ => 0,
    }
}

/// Go `strconv.ParseInt(s, 0, 64)`.
fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let lower = body.to_ascii_lowercase();
    let v = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()?
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()?
    } else if lower.len() > 1 && lower.starts_with('0') {
        i64::from_str_radix(&lower[1..], 8).ok()?
    } else {
        if !lower.bytes().all(|b| b.is_ascii_digit()) || lower.is_empty() {
            return None;
        }
        lower.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

/// spf13/cast `ToFloat64`: bad input gives 0.
fn to_float64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => parse_go_float(s.trim()).unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Exact decimal arithmetic on the shortest decimal forms of two floats, as sprig's
/// `addf`/`subf`/`mulf` do through shopspring/decimal; falls back to float arithmetic.
fn decimal_op(a: f64, b: f64, op: char) -> f64 {
    fn parts(v: f64) -> Option<(i128, u32)> {
        let text = format!("{v}");
        let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
        if int.len() + frac.len() > 30 {
            return None;
        }
        let mantissa: i128 = format!("{int}{frac}").parse().ok()?;
        Some((mantissa, frac.len() as u32))
    }
    let fallback = match op {
        '+' => a + b,
        '-' => a - b,
        _ => a * b,
    };
    let (Some((ma, sa)), Some((mb, sb))) = (parts(a), parts(b)) else {
        return fallback;
    };
    let result = match op {
        '+' | '-' => {
            let scale = sa.max(sb);
            let ma = ma.checked_mul(10i128.pow(scale - sa));
            let mb = mb.checked_mul(10i128.pow(scale - sb));
            match (ma, mb) {
                (Some(x), Some(y)) => {
                    let m = if op == '+' {
                        x.checked_add(y)
                    } else {
                        x.checked_sub(y)
                    };
                    m.map(|m| (m, scale))
                }
                _ => None,
            }
        }
        _ => ma.checked_mul(mb).map(|m| (m, sa + sb)),
    };
    match result {
        Some((m, scale)) => format!("{m}e-{scale}").parse().unwrap_or(fallback),
        None => fallback,
    }
}

/// Go `strings.Title`: upper-cases the first letter of each word.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            c.is_whitespace()
        };
    }
    out
}

fn go_trim_set<'a>(s: &'a str, cutset: &str, left: bool, right: bool) -> &'a str {
    let f = |c: char| cutset.contains(c);
    match (left, right) {
        (true, true) => s.trim_matches(f),
        (true, false) => s.trim_start_matches(f),
        _ => s.trim_end_matches(f),
    }
}

fn go_trim_space(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace())
}

/// Go `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go `url.QueryUnescape`.
fn query_unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
                let Some(hex) = hex else {
                    let bad = s.get(i..(i + 3).min(s.len())).unwrap_or("%");
                    return Err(format!(
                        "invalid URL escape {}",
                        fenrir_common::go_quote(bad)
                    ));
                };
                out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64enc(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                out.push(B64[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Go `base64.StdEncoding.DecodeString`, after Loki pads the input.
fn b64dec(s: &str) -> Result<Vec<u8>, String> {
    let mut padded = s.to_string();
    while !padded.len().is_multiple_of(4) {
        padded.push('=');
    }
    let bytes = padded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (ci, chunk) in bytes.chunks(4).enumerate() {
        let mut v = 0u32;
        let mut pad = 0;
        for (j, &c) in chunk.iter().enumerate() {
            let d = if c == b'=' && j >= 2 {
                pad += 1;
                0
            } else if pad > 0 {
                return Err(format!("illegal base64 data at input byte {}", ci * 4 + j));
            } else {
                match B64.iter().position(|b| *b == c) {
                    Some(d) => d as u32,
                    None => {
                        return Err(format!("illegal base64 data at input byte {}", ci * 4 + j))
                    }
                }
            };
            v = (v << 6) | d;
        }
        let decoded = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
        if pad > 0 && (ci + 1) * 4 < bytes.len() {
            return Err(format!(
                "illegal base64 data at input byte {}",
                (ci + 1) * 4
            ));
        }
    }
    Ok(out)
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
fn sprint(args: &[Value], labels: &dyn Fn() -> Vec<(String, String)>) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = |v: &Value| matches!(v, Value::Str(_));
        if i > 0 && !is_str(a) && !is_str(&args[i - 1]) {
            out.push(' ');
        }
        out.push_str(&format_value(a, labels));
    }
    out
}

/// `html`, `js` and `urlquery` take the single string argument, or `fmt.Sprint` of all.
fn escaper_input(args: &[Value], labels: &dyn Fn() -> Vec<(String, String)>) -> String {
    match args {
        [Value::Str(s)] => s.clone(),
        _ => sprint(args, labels),
    }
}

#[derive(PartialEq)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
}

fn basic_kind(v: &Value) -> Result<Kind, String> {
    Ok(match v {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        _ => return Err("invalid type for comparison".to_string()),
    })
}

fn go_eq(a: &Value, b: &Value) -> Result<bool, String> {
    let (ka, kb) = (basic_kind(a)?, basic_kind(b)?);
    if ka != kb {
        return Err("incompatible types for comparison".to_string());
    }
    Ok(match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        _ => false,
    })
}

fn go_lt(a: &Value, b: &Value) -> Result<bool, String> {
    let (ka, kb) = (basic_kind(a)?, basic_kind(b)?);
    if ka != kb {
        return Err("incompatible types for comparison".to_string());
    }
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x < y),
        (Value::Float(x), Value::Float(y)) => Ok(x < y),
        (Value::Str(x), Value::Str(y)) => Ok(x < y),
        _ => Err("invalid type for comparison".to_string()),
    }
}

fn labels_of(ctx: &dyn TemplateContext) -> Vec<(String, String)> {
    ctx.labels()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `index x 1 2`: map keys and list positions.
fn index(ctx: &dyn TemplateContext, item: &Value, keys: &[Value]) -> FResult {
    let mut cur = item.clone();
    for key in keys {
        cur = match (&cur, key) {
            (Value::Labels, Value::Str(k)) => Value::Str(ctx.label(k).unwrap_or("").to_string()),
            (Value::Map(m), Value::Str(k)) => m.get(k).cloned().unwrap_or(Value::Nil),
            (Value::List(l), Value::Int(i)) => {
                let i = *i;
                if i < 0 || i as usize >= l.len() {
                    return Err(format!("error calling index: index out of range: {i}"));
                }
                l[i as usize].clone()
            }
            (Value::Str(s), Value::Int(i)) => {
                let i = *i;
                if i < 0 || i as usize >= s.len() {
                    return Err(format!("error calling index: index out of range: {i}"));
                }
                Value::Int(i64::from(s.as_bytes()[i as usize]))
            }
            (Value::Nil, _) => return Err("error calling index: index of untyped nil".to_string()),
            (Value::Labels | Value::Map(_), k) => {
                return Err(format!(
                    "error calling index: value has type {}; should be string",
                    k.type_name()
                ))
            }
            (other, _) => {
                return Err(format!(
                    "error calling index: can't index item of type {}",
                    other.type_name()
                ))
            }
        };
    }
    Ok(cur)
}

/// Calls a function other than `and`/`or` (which the executor evaluates lazily).
pub(crate) fn call(name: &str, args: Vec<Value>, ctx: &dyn TemplateContext) -> FResult {
    let labels = || labels_of(ctx);
    let a = &args;
    let str_result = |s: String| -> FResult {
        if s.len() > MAX_OUTPUT {
            return Err(format!("error calling {name}: result too large"));
        }
        Ok(Value::Str(s))
    };
    match name {
        "not" => {
            want(name, a, 1)?;
            Ok(Value::Bool(!truth(&a[0], ctx.labels().is_empty())))
        }
        "len" => {
            want(name, a, 1)?;
            Ok(Value::Int(match &a[0] {
                Value::Str(s) => s.len() as i64,
                Value::List(l) => l.len() as i64,
                Value::Map(m) => m.len() as i64,
                Value::Labels => ctx.labels().len() as i64,
                other => {
                    return Err(format!(
                        "error calling len: len of type {}",
                        other.type_name()
                    ))
                }
            }))
        }
        "index" => {
            want_at_least(name, a, 1)?;
            index(ctx, &a[0], &a[1..])
        }
        "slice" => {
            want_at_least(name, a, 1)?;
            let idx: Vec<i64> = a[1..].iter().map(int).collect::<Result<_, _>>()?;
            let len = match &a[0] {
                Value::Str(s) => s.len(),
                Value::List(l) => l.len(),
                other => {
                    return Err(format!(
                        "error calling slice: can't slice item of type {}",
                        other.type_name()
                    ))
                }
            } as i64;
            let from = idx.first().copied().unwrap_or(0);
            let to = idx.get(1).copied().unwrap_or(len);
            if from < 0 || to < from || to > len {
                return Err(format!("error calling slice: index out of range: {to}"));
            }
            match &a[0] {
                Value::Str(s) => match s.get(from as usize..to as usize) {
                    Some(sub) => Ok(Value::Str(sub.to_string())),
                    None => Ok(Value::Str(
                        String::from_utf8_lossy(&s.as_bytes()[from as usize..to as usize])
                            .into_owned(),
                    )),
                },
                Value::List(l) => Ok(Value::List(l[from as usize..to as usize].to_vec())),
                _ => Ok(Value::Nil),
            }
        }
        "print" => str_result(sprint(a, &labels)),
        "println" => {
            let parts: Vec<String> = a.iter().map(|v| format_value(v, &labels)).collect();
            str_result(format!("{}\n", parts.join(" ")))
        }
        "printf" => {
            want_at_least(name, a, 1)?;
            str_result(sprintf(s(&a[0])?, &a[1..], &labels))
        }
        "html" => str_result(html_escape(&escaper_input(a, &labels))),
        "js" => str_result(js_escape(&escaper_input(a, &labels))),
        "urlquery" => str_result(query_escape(&escaper_input(a, &labels))),
        "call" => Err("error calling call: call of nil".to_string()),
        "eq" => {
            want_at_least(name, a, 2)?;
            for other in &a[1..] {
                if go_eq(&a[0], other).map_err(|e| format!("error calling eq: {e}"))? {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" => {
            want(name, a, 2)?;
            Ok(Value::Bool(
                !go_eq(&a[0], &a[1]).map_err(|e| format!("error calling ne: {e}"))?,
            ))
        }
        "lt" | "le" | "gt" | "ge" => {
            want(name, a, 2)?;
            let err = |e: String| format!("error calling {name}: {e}");
            let lt = go_lt(&a[0], &a[1]).map_err(err)?;
            let eq = go_eq(&a[0], &a[1]).map_err(err)?;
            Ok(Value::Bool(match name {
                "lt" => lt,
                "le" => lt || eq,
                "gt" => !lt && !eq,
                _ => !lt,
            }))
        }
        "__line__" => {
            want(name, a, 0)?;
            Ok(Value::Str(ctx.line().to_string()))
        }
        "__timestamp__" => {
            want(name, a, 0)?;
            Ok(Value::Time(GoTime::from_unix_nanos(ctx.timestamp())))
        }
        "ToLower" | "lower" => {
            want(name, a, 1)?;
            str_result(s(&a[0])?.to_lowercase())
        }
        "ToUpper" | "upper" => {
            want(name, a, 1)?;
            str_result(s(&a[0])?.to_uppercase())
        }
        "Replace" => {
            want(name, a, 4)?;
            let (src, old, new, n) = (s(&a[0])?, s(&a[1])?, s(&a[2])?, int(&a[3])?);
            let out = if n < 0 {
                src.replace(old, new)
            } else {
                src.replacen(old, new, n as usize)
            };
            str_result(out)
        }
        "Trim" => {
            want(name, a, 2)?;
            str_result(go_trim_set(s(&a[0])?, s(&a[1])?, true, true).to_string())
        }
        "TrimLeft" => {
            want(name, a, 2)?;
            str_result(go_trim_set(s(&a[0])?, s(&a[1])?, true, false).to_string())
        }
        "TrimRight" => {
            want(name, a, 2)?;
            str_result(go_trim_set(s(&a[0])?, s(&a[1])?, false, true).to_string())
        }
        "TrimPrefix" => {
            want(name, a, 2)?;
            let (x, p) = (s(&a[0])?, s(&a[1])?);
            str_result(x.strip_prefix(p).unwrap_or(x).to_string())
        }
        "TrimSuffix" => {
            want(name, a, 2)?;
            let (x, p) = (s(&a[0])?, s(&a[1])?);
            str_result(x.strip_suffix(p).unwrap_or(x).to_string())
        }
        "TrimSpace" | "trim" => {
            want(name, a, 1)?;
            str_result(go_trim_space(s(&a[0])?).to_string())
        }
        "regexReplaceAll" | "regexReplaceAllLiteral" => {
            want(name, a, 3)?;
            let re = compile(name, s(&a[0])?)?;
            let (src, repl) = (s(&a[1])?, s(&a[2])?);
            let out = if name == "regexReplaceAll" {
                re.replace_all(src, repl).into_owned()
            } else {
                re.replace_all(src, regex::NoExpand(repl)).into_owned()
            };
            str_result(out)
        }
        "count" => {
            want(name, a, 2)?;
            let re = compile(name, s(&a[0])?)?;
            Ok(Value::Int(re.find_iter(s(&a[1])?).count() as i64))
        }
        "urlencode" => {
            want(name, a, 1)?;
            str_result(query_escape(s(&a[0])?))
        }
        "urldecode" => {
            want(name, a, 1)?;
            query_unescape(s(&a[0])?)
                .map(Value::Str)
                .map_err(|e| format!("error calling urldecode: {e}"))
        }
        "bytes" => {
            want(name, a, 1)?;
            parse_humanized_bytes(s(&a[0])?)
                .map(|b| Value::Float(b as f64))
                .map_err(|e| format!("error calling bytes: {e}"))
        }
        "duration" | "duration_seconds" => {
            want(name, a, 1)?;
            parse_go_duration(s(&a[0])?)
                .map(|ns| Value::Float(ns as f64 / 1e9))
                .map_err(|e| format!("error calling {name}: {e}"))
        }
        "unixEpochMillis" => {
            want(name, a, 1)?;
            Ok(Value::Str(
                (time(&a[0])?.unix_nanos().div_euclid(1_000_000)).to_string(),
            ))
        }
        "unixEpochNanos" => {
            want(name, a, 1)?;
            Ok(Value::Str(time(&a[0])?.unix_nanos().to_string()))
        }
        "unixEpoch" => {
            want(name, a, 1)?;
            Ok(Value::Str(time(&a[0])?.secs.to_string()))
        }
        "toDateInZone" => {
            want(name, a, 3)?;
            // Without a zone database every zone reads as UTC, which is also what Loki
            // falls back to for a zone it cannot load.
            let (layout, value) = (s(&a[0])?, s(&a[2])?);
            s(&a[1])?;
            Ok(Value::Time(
                GoTime::parse(layout, value).unwrap_or_else(|_| GoTime::zero()),
            ))
        }
        "toDate" => {
            want(name, a, 2)?;
            let (layout, value) = (s(&a[0])?, s(&a[1])?);
            Ok(Value::Time(
                GoTime::parse(layout, value).unwrap_or_else(|_| GoTime::zero()),
            ))
        }
        "date" => {
            want(name, a, 2)?;
            let layout = s(&a[0])?;
            let t = match &a[1] {
                Value::Time(t) => t.clone(),
                Value::Int(secs) => GoTime::from_unix(*secs, 0),
                _ => GoTime::from_unix_nanos(ctx.now()),
            };
            str_result(t.format(layout))
        }
        "now" => {
            want(name, a, 0)?;
            Ok(Value::Time(GoTime::from_unix_nanos(ctx.now())))
        }
        "unixToTime" => {
            want(name, a, 1)?;
            let epoch = s(&a[0])?;
            let err = |e: String| format!("error calling unixToTime: {e}");
            let i: i64 = epoch.parse().map_err(|_| {
                err(format!(
                    "unable to parse time '{epoch}': strconv.ParseInt: parsing {}: invalid syntax",
                    fenrir_common::go_quote(epoch)
                ))
            })?;
            let t = match epoch.len() {
                5 => GoTime::from_unix(i.saturating_mul(86_400), 0),
                10 => GoTime::from_unix(i, 0),
                13 => GoTime::from_unix(0, i.saturating_mul(1_000_000)),
                16 => GoTime::from_unix(0, i.saturating_mul(1_000)),
                19 => GoTime::from_unix(0, i),
                l => return Err(err(format!("unable to parse time '{epoch}' length {l}"))),
            };
            Ok(Value::Time(t))
        }
        "alignLeft" | "alignRight" => {
            want(name, a, 2)?;
            let (count, src) = (int(&a[0])?, s(&a[1])?);
            let runes: Vec<char> = src.chars().collect();
            let l = runes.len() as i64;
            if count < 0 || count == l {
                return Ok(Value::Str(src.to_string()));
            }
            if count as usize > MAX_OUTPUT {
                return Err(format!("error calling {name}: result too large"));
            }
            let pad = count - l;
            let out = match (name, pad > 0) {
                ("alignLeft", true) => format!("{src}{}", " ".repeat(pad as usize)),
                ("alignLeft", false) => runes[..count as usize].iter().collect(),
                (_, true) => format!("{}{src}", " ".repeat(pad as usize)),
                (_, false) => runes[(l - count) as usize..].iter().collect(),
            };
            Ok(Value::Str(out))
        }
        "b64enc" => {
            want(name, a, 1)?;
            str_result(b64enc(s(&a[0])?.as_bytes()))
        }
        "b64dec" => {
            want(name, a, 1)?;
            Ok(Value::Str(match b64dec(s(&a[0])?) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) => e,
            }))
        }
        "title" => {
            want(name, a, 1)?;
            str_result(title(s(&a[0])?))
        }
        "trunc" => {
            want(name, a, 2)?;
            let (c, src) = (int(&a[0])?, s(&a[1])?);
            let runes: Vec<char> = src.chars().collect();
            let l = runes.len() as i64;
            Ok(Value::Str(if c < 0 && l + c > 0 {
                runes[(l + c) as usize..].iter().collect()
            } else if c >= 0 && l > c {
                runes[..c as usize].iter().collect()
            } else {
                src.to_string()
            }))
        }
        "substr" => {
            want(name, a, 3)?;
            let (start, end, src) = (int(&a[0])?, int(&a[1])?, s(&a[2])?);
            let runes: Vec<char> = src.chars().collect();
            let l = runes.len() as i64;
            let (start, end) = (start.min(l), end.min(l));
            Ok(Value::Str(if start < 0 {
                if end < 0 {
                    String::new()
                } else {
                    runes[..end as usize].iter().collect()
                }
            } else if end < 0 {
                runes[start as usize..].iter().collect()
            } else if start > end {
                String::new()
            } else {
                runes[start as usize..end as usize].iter().collect()
            }))
        }
        "contains" => {
            want(name, a, 2)?;
            Ok(Value::Bool(s(&a[1])?.contains(s(&a[0])?)))
        }
        "hasPrefix" => {
            want(name, a, 2)?;
            Ok(Value::Bool(s(&a[1])?.starts_with(s(&a[0])?)))
        }
        "hasSuffix" => {
            want(name, a, 2)?;
            Ok(Value::Bool(s(&a[1])?.ends_with(s(&a[0])?)))
        }
        "indent" | "nindent" => {
            want(name, a, 2)?;
            let (n, src) = (int(&a[0])?, s(&a[1])?);
            let n = n.max(0) as usize;
            let lines = src.matches('\n').count() + 1;
            if n.saturating_mul(lines).saturating_add(src.len()) > MAX_OUTPUT {
                return Err(format!("error calling {name}: result too large"));
            }
            let pad = " ".repeat(n);
            let body = format!("{pad}{}", src.replace('\n', &format!("\n{pad}")));
            Ok(Value::Str(if name == "nindent" {
                format!("\n{body}")
            } else {
                body
            }))
        }
        "replace" => {
            want(name, a, 3)?;
            str_result(s(&a[2])?.replace(s(&a[0])?, s(&a[1])?))
        }
        "repeat" => {
            want(name, a, 2)?;
            let (n, src) = (int(&a[0])?, s(&a[1])?);
            if n < 0 {
                return Err("error calling repeat: strings: negative Repeat count".to_string());
            }
            if (n as usize).saturating_mul(src.len()) > MAX_OUTPUT {
                return Err("error calling repeat: result too large".to_string());
            }
            Ok(Value::Str(src.repeat(n as usize)))
        }
        "trimAll" => {
            want(name, a, 2)?;
            str_result(go_trim_set(s(&a[1])?, s(&a[0])?, true, true).to_string())
        }
        "trimSuffix" => {
            want(name, a, 2)?;
            let (suffix, x) = (s(&a[0])?, s(&a[1])?);
            str_result(x.strip_suffix(suffix).unwrap_or(x).to_string())
        }
        "trimPrefix" => {
            want(name, a, 2)?;
            let (prefix, x) = (s(&a[0])?, s(&a[1])?);
            str_result(x.strip_prefix(prefix).unwrap_or(x).to_string())
        }
        "int" => {
            want(name, a, 1)?;
            Ok(Value::Int(to_int64(&a[0])))
        }
        "float64" => {
            want(name, a, 1)?;
            Ok(Value::Float(to_float64(&a[0])))
        }
        "add" => Ok(Value::Int(
            a.iter().map(to_int64).fold(0i64, i64::wrapping_add),
        )),
        "sub" => {
            want(name, a, 2)?;
            Ok(Value::Int(to_int64(&a[0]).wrapping_sub(to_int64(&a[1]))))
        }
        "mul" => {
            want_at_least(name, a, 1)?;
            Ok(Value::Int(
                a.iter().map(to_int64).fold(1i64, i64::wrapping_mul),
            ))
        }
        "div" | "mod" => {
            want(name, a, 2)?;
            let (x, y) = (to_int64(&a[0]), to_int64(&a[1]));
            if y == 0 {
                return Err(format!(
                    "error calling {name}: runtime error: integer divide by zero"
                ));
            }
            Ok(Value::Int(if name == "div" {
                x.wrapping_div(y)
            } else {
                x.wrapping_rem(y)
            }))
        }
        "addf" => {
            let vals: Vec<f64> = a.iter().map(to_float64).collect();
            Ok(Value::Float(
                vals.into_iter().fold(0.0, |acc, v| decimal_op(acc, v, '+')),
            ))
        }
        "subf" | "mulf" | "divf" => {
            want_at_least(name, a, 1)?;
            let mut acc = to_float64(&a[0]);
            for v in &a[1..] {
                let v = to_float64(v);
                acc = match name {
                    "subf" => decimal_op(acc, v, '-'),
                    "mulf" => decimal_op(acc, v, '*'),
                    _ => {
                        if v == 0.0 {
                            return Err("error calling divf: decimal division by 0".to_string());
                        }
                        let q = acc / v;
                        format!("{q:.16}").parse().unwrap_or(q)
                    }
                };
            }
            Ok(Value::Float(acc))
        }
        "max" | "min" => {
            want_at_least(name, a, 1)?;
            let vals = a.iter().map(to_int64);
            Ok(Value::Int(if name == "max" {
                vals.max().unwrap_or(0)
            } else {
                vals.min().unwrap_or(0)
            }))
        }
        "maxf" | "minf" => {
            want_at_least(name, a, 1)?;
            let mut acc = to_float64(&a[0]);
            for v in &a[1..] {
                let v = to_float64(v);
                acc = if name == "maxf" {
                    acc.max(v)
                } else {
                    acc.min(v)
                };
            }
            Ok(Value::Float(acc))
        }
        "ceil" => {
            want(name, a, 1)?;
            Ok(Value::Float(to_float64(&a[0]).ceil()))
        }
        "floor" => {
            want(name, a, 1)?;
            Ok(Value::Float(to_float64(&a[0]).floor()))
        }
        "round" => {
            want_at_least(name, a, 2)?;
            let val = to_float64(&a[0]);
            let places = int(&a[1])? as f64;
            let round_on = a.get(2).map_or(0.5, to_float64);
            let pow = 10f64.powf(places);
            let digit = pow * val;
            let frac = digit - digit.trunc();
            let r = if frac >= round_on {
                digit.ceil()
            } else {
                digit.floor()
            };
            Ok(Value::Float(r / pow))
        }
        "fromJson" => {
            want(name, a, 1)?;
            Ok(serde_json::from_str::<serde_json::Value>(s(&a[0])?)
                .map(|v| from_json(&v))
                .unwrap_or(Value::Nil))
        }
        "default" => {
            want_at_least(name, a, 1)?;
            let given = a.get(1);
            let empty = match given {
                None => true,
                Some(v) => !truth(v, ctx.labels().is_empty()),
            };
            Ok(if empty { a[0].clone() } else { a[1].clone() })
        }
        _ => Err(format!(
            "function {} not defined",
            fenrir_common::go_quote(name)
        )),
    }
}

fn compile(name: &str, pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&fenrir_common::go_regex_syntax(pattern)).map_err(|e| {
        format!(
            "error calling {name}: {}",
            crate::parser::go_regex_error(pattern, &e)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        assert_eq!(b64enc(b"hello"), "aGVsbG8=");
        assert_eq!(b64dec("aGVsbG8").unwrap(), b"hello");
        assert_eq!(b64dec("aGVsbG8=").unwrap(), b"hello");
        assert!(b64dec("!!!!").is_err());
    }

    #[test]
    fn helpers() {
        assert_eq!(title("hello wORLD-foo"), "Hello WORLD-Foo");
        assert_eq!(query_escape("a b&c/d"), "a+b%26c%2Fd");
        assert_eq!(query_unescape("a+b%26c").unwrap(), "a b&c");
        assert!(query_unescape("%zz").is_err());
        assert_eq!(decimal_op(0.1, 0.2, '+'), 0.3);
        assert_eq!(to_int64(&Value::Str("0x10".into())), 16);
        assert_eq!(to_int64(&Value::Str("nope".into())), 0);
    }

    struct Empty;

    impl TemplateContext for Empty {
        fn label(&self, _: &str) -> Option<&str> {
            None
        }
        fn labels(&self) -> Vec<(&str, &str)> {
            Vec::new()
        }
        fn line(&self) -> &str {
            "line"
        }
        fn timestamp(&self) -> i64 {
            0
        }
        fn now(&self) -> i64 {
            0
        }
    }

    fn value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Value::Nil),
            any::<bool>().prop_map(Value::Bool),
            prop_oneof![any::<i64>(), -5i64..40].prop_map(Value::Int),
            any::<f64>().prop_map(Value::Float),
            prop_oneof!["\\PC{0,12}", "[0-9a-f%+=./-]{0,10}"].prop_map(Value::Str),
            Just(Value::List(vec![Value::Int(1), Value::Str("a".into())])),
            Just(Value::Labels),
            Just(Value::Time(GoTime::zero())),
        ]
    }

    proptest::proptest! {
        #[test]
        fn functions_never_panic(
            name in proptest::sample::select(FUNCTIONS),
            args in proptest::collection::vec(value(), 0..5),
        ) {
            if name != "and" && name != "or" {
                let _ = call(name, args, &Empty);
            }
        }
    }
}
