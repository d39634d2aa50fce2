//! Number formatting for Loki's JSON answers.

/// Formats a sample value as Go's `strconv.FormatFloat(v, 'f', -1, 64)` does: the shortest
/// decimal that round-trips, never in exponent form, with `NaN`, `+Inf` and `-Inf`.
pub fn format_sample_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        // Rust's `Display` for f64 is already shortest-round-trip without an exponent.
        v.to_string()
    }
}

/// Formats a millisecond timestamp as seconds the way Loki writes JSON sample timestamps:
/// Go `FormatFloat(ms/1000, 'f', -1, 64)`, so up to 3 decimals and no trailing zeros.
pub fn format_timestamp_seconds(ts_ms: i64) -> String {
    format_sample_value(ts_ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_values_match_go_format_float() {
        assert_eq!(format_sample_value(1.0), "1");
        assert_eq!(format_sample_value(0.1), "0.1");
        assert_eq!(format_sample_value(2.0 / 3.0), "0.6666666666666666");
        assert_eq!(format_sample_value(1e21), "1000000000000000000000");
        assert_eq!(format_sample_value(1e-7), "0.0000001");
        assert_eq!(format_sample_value(-2.5), "-2.5");
        assert_eq!(format_sample_value(-0.0), "-0");
        assert_eq!(format_sample_value(f64::NAN), "NaN");
        assert_eq!(format_sample_value(f64::INFINITY), "+Inf");
        assert_eq!(format_sample_value(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn timestamps_are_seconds_with_up_to_three_decimals() {
        assert_eq!(format_timestamp_seconds(1_700_000_000_000), "1700000000");
        assert_eq!(format_timestamp_seconds(1_700_000_000_500), "1700000000.5");
        assert_eq!(
            format_timestamp_seconds(1_700_000_000_123),
            "1700000000.123"
        );
        assert_eq!(format_timestamp_seconds(4_000_000_000_000), "4000000000");
        assert_eq!(format_timestamp_seconds(1), "0.001");
    }
}
