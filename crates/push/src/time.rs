//! RFC 3339 timestamps: parsing legacy-JSON `ts` values and formatting times in error
//! messages the way Go's `time.Format(time.RFC3339)` does (UTC, whole seconds).
//!
//! Written here rather than pulling in `time`/`chrono`: we need one strict parser and one
//! formatter over i64 nanoseconds, which is a page of civil-calendar arithmetic.

use std::fmt::Write;

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` into Unix nanoseconds, as Go's
/// `time.Time` JSON decoding accepts it. `None` when malformed or out of the i64 range.
pub(crate) fn parse_rfc3339_nanos(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos: i64 = 0;
    if let Some((b'.', frac)) = rest.split_first() {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        nanos = digits(&frac[..n])? * 10_i64.pow(9 - n as u32);
        rest = &frac[n..];
    }
    let offset_secs = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = digits(&[*h1, *h2])?;
            let m = digits(&[*m1, *m2])?;
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    secs.checked_mul(NANOS_PER_SEC)?.checked_add(nanos)
}

/// Formats Unix nanoseconds as Go's `time.RFC3339` in UTC: `2024-07-07T08:00:00Z`.
pub(crate) fn format_rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(NANOS_PER_SEC);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let mut out = String::with_capacity(20);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    out
}

fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_variants() {
        let cases: &[(&str, i64)] = &[
            ("1970-01-01T00:00:00Z", 0),
            ("2024-07-07T08:00:00Z", 1_720_339_200_000_000_000),
            ("2024-07-07T08:00:00.5Z", 1_720_339_200_500_000_000),
            ("2024-07-07T08:00:00.123456789Z", 1_720_339_200_123_456_789),
            (
                "2019-11-01T10:00:00.123456+00:00",
                1_572_602_400_123_456_000,
            ),
            ("2024-07-07T10:00:00+02:00", 1_720_339_200_000_000_000),
            ("2024-07-07T05:30:00-02:30", 1_720_339_200_000_000_000),
            ("2024-02-29T00:00:00Z", 1_709_164_800_000_000_000),
            ("1969-12-31T23:59:59Z", -1_000_000_000),
        ];
        for (s, want) in cases {
            assert_eq!(parse_rfc3339_nanos(s), Some(*want), "{s}");
        }
    }

    #[test]
    fn rejects_malformed_times() {
        for s in [
            "",
            "2024-07-07",
            "2024-07-07 08:00:00Z",
            "2024-07-07T08:00:00",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-07-07T24:00:00Z",
            "2024-07-07T08:00:00.Z",
            "2024-07-07T08:00:00.1234567890Z",
            "2024-07-07T08:00:00+0200",
            "2024-07-07T08:00:00Zjunk",
            "9999-12-31T23:59:59Z",
            "+024-07-07T08:00:00Z",
        ] {
            assert_eq!(parse_rfc3339_nanos(s), None, "{s}");
        }
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(
            format_rfc3339(1_720_339_200_999_999_999),
            "2024-07-07T08:00:00Z"
        );
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
    }
}
