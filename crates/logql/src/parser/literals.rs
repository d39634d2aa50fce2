//! Go and Prometheus literal syntax: `strconv.ParseFloat`, `time.ParseDuration`,
//! Prometheus `model.ParseDuration` and go-humanize `ParseBytes`, with their error texts.

use fenrir_common::go_quote;

/// Go `strconv.ParseFloat(s, 64)`; the error is Go's text
/// (`strconv.ParseFloat: parsing "0x10": invalid syntax`).
pub(crate) fn parse_go_float(s: &str) -> Result<f64, String> {
    let syntax = || {
        format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            go_quote(s)
        )
    };
    let range = || {
        format!(
            "strconv.ParseFloat: parsing {}: value out of range",
            go_quote(s)
        )
    };
    let (neg, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    // Plain integers (status codes, sizes) are most label values: no lowercase copy, and
    // up to 15 digits the integer is an exact f64, as the general parse would give.
    if (1..=15).contains(&body.len()) && body.bytes().all(|b| b.is_ascii_digit()) {
        let v = body
            .bytes()
            .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0')) as f64;
        return Ok(if neg { -v } else { v });
    }
    let lower = body.to_ascii_lowercase();
    let value = match lower.as_str() {
        "inf" | "infinity" => f64::INFINITY,
        "nan" => f64::NAN,
        _ if lower.starts_with("0x") => parse_hex_float(&lower[2..]).ok_or_else(syntax)?,
        _ => {
            if !is_decimal_float(body) {
                return Err(syntax());
            }
            let v: f64 = body.parse().map_err(|_| syntax())?;
            if v.is_infinite() {
                return Err(range());
            }
            v
        }
    };
    if value.is_infinite() && !lower.starts_with("inf") {
        return Err(range());
    }
    Ok(if neg { -value } else { value })
}

/// `digits [. digits] [e [+-] digits]` with at least one mantissa digit.
fn is_decimal_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let mut mantissa_digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        mantissa_digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            mantissa_digits += 1;
        }
    }
    if mantissa_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    i == b.len()
}

/// The part of a Go hex float after `0x`: hex mantissa with optional fraction, a mandatory
/// `p` exponent; underscores may separate digits.
fn parse_hex_float(s: &str) -> Option<f64> {
    let s: String = s.chars().filter(|c| *c != '_').collect();
    let (mantissa, exp) = s.split_once('p')?;
    let exp: i32 = exp.parse().ok()?;
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let mut value = 0f64;
    for c in int_part.chars() {
        value = value * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac_part.chars() {
        value += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    Some(value * 2f64.powi(exp))
}

/// Prometheus `model.ParseDuration`, in nanoseconds (units y w d h m s ms, biggest first).
pub(crate) fn parse_prometheus_duration(s: &str) -> Result<i64, String> {
    match s {
        "0" => return Ok(0),
        "" => return Err("empty duration string".to_string()),
        _ => {}
    }
    let invalid = || format!("not a valid duration string: {}", go_quote(s));
    let mut rest = s;
    let mut total_ms: u64 = 0;
    let mut last_unit_pos = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        if unit_len == 0 {
            return Err(invalid());
        }
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let (pos, mult_ms): (u32, u64) = match unit {
            "y" => (1, 365 * 24 * 3_600_000),
            "w" => (2, 7 * 24 * 3_600_000),
            "d" => (3, 24 * 3_600_000),
            "h" => (4, 3_600_000),
            "m" => (5, 60_000),
            "s" => (6, 1000),
            "ms" => (7, 1),
            _ => {
                return Err(format!(
                    "unknown unit {} in duration {}",
                    go_quote(unit),
                    go_quote(s)
                ))
            }
        };
        if pos <= last_unit_pos {
            return Err(invalid());
        }
        last_unit_pos = pos;
        let add = value
            .checked_mul(mult_ms)
            .ok_or_else(|| "duration out of range".to_string())?;
        total_ms = total_ms
            .checked_add(add)
            .ok_or_else(|| "duration out of range".to_string())?;
    }
    let ns = total_ms
        .checked_mul(1_000_000)
        .filter(|ns| *ns <= i64::MAX as u64)
        .ok_or_else(|| "duration out of range".to_string())?;
    Ok(ns as i64)
}

/// Go `time.ParseDuration`, in nanoseconds; the error is Go's text.
pub(crate) fn parse_go_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(orig));
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next() {
        if c == '-' || c == '+' {
            neg = c == '-';
            s = &s[1..];
        }
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let first = s.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if s.starts_with('.') {
            s = &s[1..];
            let frac_len = s.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &s[..frac_len];
            s = &s[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {}", go_quote(orig)));
        }
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let unit_ns: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(unit),
                    go_quote(orig)
                ))
            }
        };
        let int_value: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut value = int_value.checked_mul(unit_ns).ok_or_else(invalid)?;
        if !frac_part.is_empty() {
            // Go keeps the fraction exactly up to the unit's resolution, truncating the rest,
            // and stops reading digits before they overflow 63 bits: 18 digits keep
            // `frac * unit_ns` (≤ 10^18 × 3.6·10^12) within u128.
            let mut scale: u128 = 1;
            let mut frac: u128 = 0;
            for d in frac_part.bytes().take(18) {
                frac = frac * 10 + u128::from(d - b'0');
                scale *= 10;
            }
            value += frac * unit_ns / scale;
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > i64::MAX as u128 + u128::from(neg) {
            return Err(invalid());
        }
    }
    let total = total as i128;
    Ok(if neg { (-total) as i64 } else { total as i64 })
}

/// Loki's duration literals: Prometheus syntax first, then Go syntax.
pub(crate) fn parse_loki_duration(s: &str) -> Result<i64, String> {
    parse_prometheus_duration(s).or_else(|_| parse_go_duration(s))
}

/// go-humanize `ParseBytes`: a number (commas allowed) and an optional SI or IEC unit,
/// case-insensitive; the fraction of the result is truncated.
pub(crate) fn parse_humanized_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let num_len = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.' || *c == ','))
        .map_or(s.len(), |(i, _)| i);
    let number: String = s[..num_len].chars().filter(|c| *c != ',').collect();
    let value: f64 = number.parse().map_err(|_| {
        format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            go_quote(&number)
        )
    })?;
    let unit = s[num_len..].trim().to_ascii_lowercase();
    let mult: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "p" | "pb" => 1e15,
        "e" | "eb" => 1e18,
        "ki" | "kib" => 1024.0,
        "mi" | "mib" => 1024f64.powi(2),
        "gi" | "gib" => 1024f64.powi(3),
        "ti" | "tib" => 1024f64.powi(4),
        "pi" | "pib" => 1024f64.powi(5),
        "ei" | "eib" => 1024f64.powi(6),
        _ => return Err(format!("unhandled size name: {unit}")),
    };
    let bytes = value * mult;
    if bytes >= 18_446_744_073_709_551_616.0 {
        return Err(format!("too large: {s}"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_floats() {
        assert_eq!(parse_go_float("5"), Ok(5.0));
        assert_eq!(parse_go_float(".5"), Ok(0.5));
        assert_eq!(parse_go_float("1e3"), Ok(1000.0));
        assert_eq!(parse_go_float("010"), Ok(10.0));
        assert_eq!(
            parse_go_float("-0").map(f64::to_bits),
            Ok((-0.0f64).to_bits())
        );
        assert_eq!(parse_go_float("+200"), Ok(200.0));
        // The integer fast path and the general parse agree on either side of its limit.
        for digits in [
            "999999999999999",
            "9999999999999999",
            "000000000000001",
            "12345678901234567890",
        ] {
            assert_eq!(
                parse_go_float(digits),
                Ok(digits.parse::<f64>().unwrap()),
                "{digits}"
            );
        }
        assert_eq!(parse_go_float("0x1p3"), Ok(8.0));
        assert_eq!(parse_go_float("0x1.8p1"), Ok(3.0));
        assert_eq!(
            parse_go_float("0x10"),
            Err(r#"strconv.ParseFloat: parsing "0x10": invalid syntax"#.to_string())
        );
        assert!(parse_go_float("0b1").is_err());
        assert!(parse_go_float("1_000").is_err());
        assert_eq!(
            parse_go_float("1e400"),
            Err(r#"strconv.ParseFloat: parsing "1e400": value out of range"#.to_string())
        );
    }

    #[test]
    fn go_duration_long_fractions_do_not_overflow() {
        // Found by the logql_parse fuzz target: 30 fraction digits times the minute's
        // nanoseconds overflowed u128.
        let ns = parse_go_duration("5.66666666666666666666666666666666633m").unwrap();
        assert!((339_999_999_999..=340_000_000_000).contains(&ns), "{ns}");
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(
            parse_go_duration("0.000000000000000000000000000001h"),
            Ok(0)
        );
    }

    #[test]
    fn prometheus_durations() {
        assert_eq!(parse_prometheus_duration("5m"), Ok(300_000_000_000));
        assert_eq!(parse_prometheus_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_prometheus_duration("500ms"), Ok(500_000_000));
        assert_eq!(parse_prometheus_duration("1d"), Ok(86_400_000_000_000));
        assert_eq!(
            parse_prometheus_duration("5m:1m"),
            Err(r#"unknown unit "m:" in duration "5m:1m""#.to_string())
        );
        assert_eq!(
            parse_prometheus_duration("5minutes"),
            Err(r#"unknown unit "minutes" in duration "5minutes""#.to_string())
        );
        assert_eq!(
            parse_prometheus_duration("30s5m"),
            Err(r#"not a valid duration string: "30s5m""#.to_string())
        );
        assert!(parse_prometheus_duration("1.5m").is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration("-5m"), Ok(-300_000_000_000));
        assert_eq!(parse_go_duration("1h1m1s"), Ok(3_661_000_000_000));
        assert_eq!(parse_go_duration("10µs"), Ok(10_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration(".5ms"), Ok(500_000));
        assert!(parse_go_duration("1d").is_err());
        assert_eq!(
            parse_go_duration("90"),
            Err(r#"time: missing unit in duration "90""#.to_string())
        );
        assert_eq!(parse_loki_duration("1d"), Ok(86_400_000_000_000));
        assert_eq!(parse_loki_duration("1.5s"), Ok(1_500_000_000));
    }

    #[test]
    fn humanized_bytes() {
        assert_eq!(parse_humanized_bytes("20MB"), Ok(20_000_000));
        assert_eq!(parse_humanized_bytes("1KiB"), Ok(1024));
        assert_eq!(parse_humanized_bytes("2Kb"), Ok(2000));
        assert_eq!(parse_humanized_bytes("3mb"), Ok(3_000_000));
        assert_eq!(parse_humanized_bytes("1.5B"), Ok(1));
        assert_eq!(parse_humanized_bytes("2,048"), Ok(2048));
        assert_eq!(parse_humanized_bytes("2MiB"), Ok(2 * 1024 * 1024));
        assert!(parse_humanized_bytes("x").is_err());
    }
}
