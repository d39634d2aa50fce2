//! Template values: Go's dynamic types as `text/template` sees them, with Go's printing.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::gotime::GoTime;

/// A value flowing through a template pipeline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// `nil` (also a missing key of a decoded JSON map).
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Time(GoTime),
    Map(BTreeMap<String, Value>),
    List(Vec<Value>),
    /// The template's data: the current labels (a `map[string]string`).
    Labels,
}

impl Value {
    /// Go's type name, for error texts.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Time(_) => "time.Time",
            Value::Map(_) => "map[string]interface {}",
            Value::List(_) => "[]interface {}",
            Value::Labels => "map[string]string",
        }
    }
}

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)`, which `%v` and `print` use for floats.
pub(crate) fn format_float_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Shortest digits and decimal exponent from Rust's round-trip exponent form.
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if v < 0.0 { "-" } else { "" };
    // With shortest precision Go uses the exponent form below 1e-4 and from 1e6 on.
    if !(-4..6).contains(&exp) {
        return format!("{sign}{}", exponent_form(&digits, exp));
    }
    format!("{sign}{}", plain_form(&digits, exp))
}

fn exponent_form(digits: &str, exp: i32) -> String {
    let mut out = String::new();
    out.push_str(&digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    out
}

fn plain_form(digits: &str, exp: i32) -> String {
    let n = digits.len() as i32;
    if exp < 0 {
        format!("0.{}{}", "0".repeat((-exp - 1) as usize), digits)
    } else if exp + 1 >= n {
        format!("{}{}", digits, "0".repeat((exp + 1 - n) as usize))
    } else {
        let (int, frac) = digits.split_at((exp + 1) as usize);
        format!("{int}.{frac}")
    }
}

/// Go's `%v` formatting of a value (what `{{ x }}` prints).
pub(crate) fn format_value(v: &Value, labels: &dyn Fn() -> Vec<(String, String)>) -> String {
    match v {
        Value::Nil => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format_float_g(*f),
        Value::Str(s) => s.clone(),
        Value::Time(t) => t.to_string(),
        Value::Map(m) => {
            let inner: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}:{}", format_value(v, labels)))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
        Value::List(items) => {
            let inner: Vec<String> = items.iter().map(|v| format_value(v, labels)).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Labels => {
            let inner: Vec<String> = labels()
                .into_iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
    }
}

/// Go template truth: false, 0, nil, and empty strings and collections are false.
pub(crate) fn truth(v: &Value, labels_empty: bool) -> bool {
    match v {
        Value::Nil => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::Time(_) => true,
        Value::Map(m) => !m.is_empty(),
        Value::List(l) => !l.is_empty(),
        Value::Labels => !labels_empty,
    }
}

/// A decoded JSON document as a template value (`fromJson`).
pub(crate) fn from_json(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::Str(s.clone()),
        serde_json::Value::Array(a) => Value::List(a.iter().map(from_json).collect()),
        serde_json::Value::Object(o) => {
            Value::Map(o.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go() {
        assert_eq!(format_float_g(1.5), "1.5");
        assert_eq!(format_float_g(3.0), "3");
        assert_eq!(format_float_g(1e6), "1e+06");
        assert_eq!(format_float_g(123456.0), "123456");
        assert_eq!(format_float_g(1234567.0), "1.234567e+06");
        assert_eq!(format_float_g(0.0001), "0.0001");
        assert_eq!(format_float_g(0.00001), "1e-05");
        assert_eq!(format_float_g(2097152.0), "2.097152e+06");
        assert_eq!(format_float_g(-2.5), "-2.5");
        assert_eq!(format_float_g(100.0), "100");
    }
}
