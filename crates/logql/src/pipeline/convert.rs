//! Go-compatible value conversions used by label filters and `unwrap`: `strconv.ParseFloat`,
//! `time.ParseDuration` and go-humanize `ParseBytes`. Error texts are Go's, because Loki
//! shows them as `__error_details__`.

use fenrir_common::go_quote;

/// Go `strconv.ParseFloat(s, 64)`: decimal and hex floats, `inf`/`infinity`/`nan` in any
/// case with an optional sign, `_` separators only after a base prefix.
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
    let (negative, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let special = match lower.as_str() {
        "inf" | "infinity" => Some(f64::INFINITY),
        "nan" => Some(f64::NAN),
        _ => None,
    };
    if let Some(v) = special {
        return Ok(if negative { -v } else { v });
    }
    let magnitude = if let Some(hex) = lower.strip_prefix("0x") {
        parse_hex_float(hex).ok_or_else(syntax)?
    } else {
        // Rust accepts the same decimal grammar as Go except for the words handled above
        // (and Rust also takes "infinity"/"nan" only as whole words, already handled).
        if body.is_empty()
            || !body
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            return Err(syntax());
        }
        body.parse::<f64>().map_err(|_| syntax())?
    };
    if magnitude.is_infinite() {
        return Err(range());
    }
    Ok(if negative { -magnitude } else { magnitude })
}

/// The part of a hex float after `0x`: hex mantissa with an optional point, then a
/// mandatory `p` exponent. Underscores may separate digits.
fn parse_hex_float(s: &str) -> Option<f64> {
    let (mantissa, exponent) = s.split_once('p')?;
    let mut value = 0f64;
    let mut scale = 0i64;
    let mut seen_point = false;
    let mut digits = 0;
    for c in mantissa.chars() {
        match c {
            '_' => continue,
            '.' if !seen_point => seen_point = true,
            c => {
                let d = c.to_digit(16)?;
                value = value * 16.0 + f64::from(d);
                digits += 1;
                if seen_point {
                    scale -= 4;
                }
            }
        }
    }
    if digits == 0 {
        return None;
    }
    let exponent = exponent.replace('_', "");
    let exp: i64 = match exponent.as_bytes().first() {
        Some(b'+') => exponent[1..].parse().ok()?,
        _ => exponent.parse().ok()?,
    };
    if exponent.is_empty() || exponent == "+" || exponent == "-" {
        return None;
    }
    let total = exp.saturating_add(scale).clamp(-4000, 4000) as i32;
    Some(value * 2f64.powi(total))
}

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// Go `time.ParseDuration`, in nanoseconds.
pub(crate) fn parse_go_duration(s: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(s));
    let mut rest = s;
    let mut negative = false;
    if let Some(r) = rest.strip_prefix('-') {
        negative = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        // The leading integer part.
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_digits = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_digits = "";
        if let Some(r) = rest.strip_prefix('.') {
            let frac_len = r.bytes().take_while(u8::is_ascii_digit).count();
            frac_digits = &r[..frac_len];
            rest = &r[frac_len..];
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            // "." alone or no digits at all.
            return Err(invalid());
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {}", go_quote(s)));
        }
        let unit_nanos: u64 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(unit),
                    go_quote(s)
                ))
            }
        };
        let int: u64 = if int_digits.is_empty() {
            0
        } else {
            int_digits.parse().map_err(|_| invalid())?
        };
        let mut v = int.checked_mul(unit_nanos).ok_or_else(invalid)?;
        if !frac_digits.is_empty() {
            // Go accumulates the fraction as a float scaled by the unit.
            let mut scale = 1f64;
            let mut frac = 0u64;
            for d in frac_digits.bytes() {
                if frac > (1 << 62) / 10 {
                    break;
                }
                frac = frac * 10 + u64::from(d - b'0');
                scale *= 10.0;
            }
            let add = (frac as f64 * (unit_nanos as f64 / scale)) as u64;
            v = v.checked_add(add).ok_or_else(invalid)?;
        }
        total = total.checked_add(v).ok_or_else(invalid)?;
        if total > i64::MAX as u64 + u64::from(negative) {
            return Err(invalid());
        }
    }
    if negative {
        Ok((total as i128).wrapping_neg() as i64)
    } else {
        Ok(total as i64)
    }
}

/// A Go duration as float seconds, as `time.Duration.Seconds()` computes it.
pub(crate) fn duration_seconds(nanos: i64) -> f64 {
    let secs = nanos / NANOS_PER_SECOND;
    let rem = nanos % NANOS_PER_SECOND;
    secs as f64 + rem as f64 / 1e9
}

/// go-humanize `ParseBytes`: a number (commas allowed, fraction truncated) and an optional
/// SI or IEC unit, case-insensitive.
pub(crate) fn parse_humanize_bytes(s: &str) -> Result<u64, String> {
    let num_len = s
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.' || *b == b',')
        .count();
    let num: String = s[..num_len].chars().filter(|c| *c != ',').collect();
    let f = parse_go_float(&num)?;
    let unit = s[num_len..].trim().to_ascii_lowercase();
    let multiplier: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mi" | "mib" => 1024f64.powi(2),
        "g" | "gb" => 1e9,
        "gi" | "gib" => 1024f64.powi(3),
        "t" | "tb" => 1e12,
        "ti" | "tib" => 1024f64.powi(4),
        "p" | "pb" => 1e15,
        "pi" | "pib" => 1024f64.powi(5),
        "e" | "eb" => 1e18,
        "ei" | "eib" => 1024f64.powi(6),
        _ => return Err(format!("unhandled size name: {unit}")),
    };
    let v = f * multiplier;
    if v >= u64::MAX as f64 {
        return Err(format!("too large: {s}"));
    }
    Ok(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_float_like_go() {
        assert_eq!(parse_go_float("1.50"), Ok(1.5));
        assert_eq!(parse_go_float("1e3"), Ok(1000.0));
        assert_eq!(parse_go_float("-.5"), Ok(-0.5));
        assert_eq!(parse_go_float("+Inf"), Ok(f64::INFINITY));
        assert_eq!(parse_go_float("-infinity"), Ok(f64::NEG_INFINITY));
        assert!(parse_go_float("NaN").unwrap().is_nan());
        assert_eq!(parse_go_float("0x1p3"), Ok(8.0));
        assert_eq!(parse_go_float("0x1.8p1"), Ok(3.0));
        assert_eq!(parse_go_float("0x_1p-2"), Ok(0.25));
        assert_eq!(
            parse_go_float(""),
            Err(r#"strconv.ParseFloat: parsing "": invalid syntax"#.to_string())
        );
        assert_eq!(
            parse_go_float("n/a"),
            Err(r#"strconv.ParseFloat: parsing "n/a": invalid syntax"#.to_string())
        );
        assert!(parse_go_float("0x10").is_err(), "hex needs a p exponent");
        assert!(parse_go_float("1_000").is_err());
        assert!(parse_go_float("12ms").is_err());
        assert_eq!(
            parse_go_float("1e400"),
            Err(r#"strconv.ParseFloat: parsing "1e400": value out of range"#.to_string())
        );
    }

    #[test]
    fn parse_duration_like_go() {
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("-5s"), Ok(-5_000_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("350ms"), Ok(350_000_000));
        assert_eq!(parse_go_duration("2\u{b5}s"), Ok(2_000));
        assert_eq!(parse_go_duration("2\u{3bc}s"), Ok(2_000));
        assert_eq!(parse_go_duration(".5m"), Ok(30_000_000_000));
        assert_eq!(
            parse_go_duration("1d"),
            Err(r#"time: unknown unit "d" in duration "1d""#.to_string())
        );
        assert_eq!(
            parse_go_duration("90"),
            Err(r#"time: missing unit in duration "90""#.to_string())
        );
        assert_eq!(
            parse_go_duration("n/a"),
            Err(r#"time: invalid duration "n/a""#.to_string())
        );
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("9999999999h").is_err());
        assert_eq!(duration_seconds(1_500_000_000), 1.5);
    }

    #[test]
    fn parse_bytes_like_humanize() {
        assert_eq!(parse_humanize_bytes("2MiB"), Ok(2 * 1024 * 1024));
        assert_eq!(parse_humanize_bytes("1MB"), Ok(1_000_000));
        assert_eq!(parse_humanize_bytes("3mb"), Ok(3_000_000));
        assert_eq!(parse_humanize_bytes("2Kb"), Ok(2000));
        assert_eq!(parse_humanize_bytes("1.5B"), Ok(1));
        assert_eq!(parse_humanize_bytes("1.5KB"), Ok(1500));
        assert_eq!(parse_humanize_bytes("2,048"), Ok(2048));
        assert_eq!(parse_humanize_bytes("42"), Ok(42));
        assert_eq!(parse_humanize_bytes("5 GiB"), Ok(5 * 1024 * 1024 * 1024));
        assert_eq!(
            parse_humanize_bytes("12parsecs"),
            Err("unhandled size name: parsecs".to_string())
        );
        assert!(parse_humanize_bytes("-1KB").is_err());
        assert!(parse_humanize_bytes("").is_err());
    }
}
