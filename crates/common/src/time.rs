//! Calendar conversions for the time formats Loki reads and writes (RFC3339 and Go's
//! `time.Time.String()`), in UTC, without a date-time dependency.

use crate::Timestamp;

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day) to days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

struct Parts {
    y: i64,
    mo: u32,
    d: u32,
    h: i64,
    mi: i64,
    s: i64,
    nanos: i64,
}

fn parts(ts: Timestamp) -> Parts {
    let secs = ts.div_euclid(NANOS_PER_SEC);
    let nanos = ts.rem_euclid(NANOS_PER_SEC);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    Parts {
        y,
        mo,
        d,
        h: sod / 3600,
        mi: sod % 3600 / 60,
        s: sod % 60,
        nanos,
    }
}

fn frac_trimmed(nanos: i64) -> String {
    if nanos == 0 {
        return String::new();
    }
    let s = format!(".{nanos:09}");
    s.trim_end_matches('0').to_string()
}

/// Go's `time.RFC3339` in UTC: `2024-07-07T08:00:00Z`.
pub fn format_rfc3339(ts: Timestamp) -> String {
    let p = parts(ts);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        p.y, p.mo, p.d, p.h, p.mi, p.s
    )
}

/// Go's `time.RFC3339Nano` in UTC: fraction with trailing zeros trimmed.
pub fn format_rfc3339_nano(ts: Timestamp) -> String {
    let p = parts(ts);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}Z",
        p.y,
        p.mo,
        p.d,
        p.h,
        p.mi,
        p.s,
        frac_trimmed(p.nanos)
    )
}

/// Go's `time.Time.String()` for a UTC time: `2024-07-07 08:00:00.5 +0000 UTC`.
pub fn format_go_time(ts: Timestamp) -> String {
    let p = parts(ts);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}{} +0000 UTC",
        p.y,
        p.mo,
        p.d,
        p.h,
        p.mi,
        p.s,
        frac_trimmed(p.nanos)
    )
}

/// Parses RFC3339 with an optional fraction (`2024-01-02T03:04:05.123456789+02:00`) to
/// nanoseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo)
        || d < 1
        || d > days_in_month(y, mo as u32)
        || h > 23
        || mi > 59
        || sec > 59
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i];
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        nanos = digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32);
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    secs.checked_mul(NANOS_PER_SEC)?.checked_add(nanos)
}

fn days_in_month(y: i64, m: u32) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let t = parse_rfc3339("2024-07-07T08:00:00Z").unwrap();
        assert_eq!(t, 1_720_339_200_000_000_000);
        assert_eq!(format_rfc3339(t), "2024-07-07T08:00:00Z");
        assert_eq!(
            format_go_time(t + 500_000_000),
            "2024-07-07 08:00:00.5 +0000 UTC"
        );
        assert_eq!(
            parse_rfc3339("2019-11-01T10:00:00.123456+00:00").unwrap(),
            parse_rfc3339("2019-11-01T10:00:00.123456Z").unwrap()
        );
        assert_eq!(
            parse_rfc3339("2024-01-02T05:04:05.123456789+02:00").unwrap(),
            parse_rfc3339("2024-01-02T03:04:05.123456789Z").unwrap()
        );
        assert_eq!(
            format_rfc3339_nano(t + 120_000_000),
            "2024-07-07T08:00:00.12Z"
        );
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn rejects_bad_times() {
        for s in [
            "",
            "2024-07-07",
            "2024-13-01T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "2024-07-07T08:00:00",
            "2024-07-07T08:00:00.Z",
            "2024-07-07 08:00:00Z",
        ] {
            assert!(parse_rfc3339(s).is_none(), "{s}");
        }
    }

    #[test]
    fn civil_round_trip() {
        for d in [-1_000_000, -1, 0, 19_911, 2_932_896] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }
}
