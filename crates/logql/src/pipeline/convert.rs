//! Go-compatible value conversions used by label filters and `unwrap`: `strconv.ParseFloat`,
//! `time.ParseDuration` and go-humanize `ParseBytes`. Error texts are Go's, because Loki
//! shows them as `__error_details__`. The parsers live with the LogQL lexer, which needs
//! the same Go rules for literals; this module adds what only evaluation needs.

pub(crate) use crate::parser::{
    parse_go_duration, parse_go_float, parse_humanized_bytes as parse_humanize_bytes,
};

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// A Go duration as float seconds, as `time.Duration.Seconds()` computes it.
pub(crate) fn duration_seconds(nanos: i64) -> f64 {
    let secs = nanos / NANOS_PER_SECOND;
    let rem = nanos % NANOS_PER_SECOND;
    secs as f64 + rem as f64 / 1e9
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
