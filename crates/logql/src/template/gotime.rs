//! Go's `time.Time` as templates use it: printing, layout formatting and parsing. Only UTC
//! and fixed offsets exist here (the crate does no I/O, so there is no zone database);
//! the server's local zone is taken to be UTC.

use std::fmt;

/// An instant plus the zone it is shown in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GoTime {
    /// Seconds since the Unix epoch.
    pub(crate) secs: i64,
    /// Nanoseconds within the second.
    pub(crate) nanos: u32,
    /// Offset east of UTC, in seconds.
    pub(crate) offset: i32,
    /// Zone abbreviation (`UTC`, or empty for a numeric offset).
    pub(crate) zone: String,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    weekday: usize,
    yday: u32,
}

impl GoTime {
    pub(crate) fn from_unix_nanos(ns: i64) -> GoTime {
        GoTime {
            secs: ns.div_euclid(1_000_000_000),
            nanos: ns.rem_euclid(1_000_000_000) as u32,
            offset: 0,
            zone: "UTC".to_string(),
        }
    }

    pub(crate) fn from_unix(secs: i64, nanos: i64) -> GoTime {
        let total = i128::from(secs) * 1_000_000_000 + i128::from(nanos);
        GoTime {
            secs: total.div_euclid(1_000_000_000) as i64,
            nanos: total.rem_euclid(1_000_000_000) as u32,
            offset: 0,
            zone: "UTC".to_string(),
        }
    }

    /// Go's zero `time.Time` (January 1, year 1, 00:00:00 UTC).
    pub(crate) fn zero() -> GoTime {
        GoTime {
            secs: -62_135_596_800,
            nanos: 0,
            offset: 0,
            zone: "UTC".to_string(),
        }
    }

    pub(crate) fn unix_nanos(&self) -> i128 {
        i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos)
    }

    fn civil(&self) -> Civil {
        let local = self.secs + i64::from(self.offset);
        let days = local.div_euclid(86_400);
        let rem = local.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        let yday = (days - days_from_civil(year, 1, 1)) as u32 + 1;
        Civil {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            weekday: (days + 4).rem_euclid(7) as usize,
            yday,
        }
    }

    /// Go's `Time.Format(layout)`.
    pub(crate) fn format(&self, layout: &str) -> String {
        let c = self.civil();
        let mut out = String::new();
        let mut rest = layout;
        while !rest.is_empty() {
            let (token, len) = next_layout_token(rest);
            match token {
                Token::Literal => out.push_str(&rest[..len]),
                Token::LongMonth => out.push_str(MONTHS[(c.month - 1) as usize]),
                Token::Month => out.push_str(&MONTHS[(c.month - 1) as usize][..3]),
                Token::NumMonth => out.push_str(&c.month.to_string()),
                Token::ZeroMonth => out.push_str(&format!("{:02}", c.month)),
                Token::LongWeekDay => out.push_str(DAYS[c.weekday]),
                Token::WeekDay => out.push_str(&DAYS[c.weekday][..3]),
                Token::Day => out.push_str(&c.day.to_string()),
                Token::UnderDay => out.push_str(&format!("{:>2}", c.day)),
                Token::ZeroDay => out.push_str(&format!("{:02}", c.day)),
                Token::YearDay => out.push_str(&format!("{:03}", c.yday)),
                Token::UnderYearDay => out.push_str(&format!("{:>3}", c.yday)),
                Token::Hour => out.push_str(&format!("{:02}", c.hour)),
                Token::Hour12 => out.push_str(&hour12(c.hour).to_string()),
                Token::ZeroHour12 => out.push_str(&format!("{:02}", hour12(c.hour))),
                Token::Minute => out.push_str(&c.minute.to_string()),
                Token::ZeroMinute => out.push_str(&format!("{:02}", c.minute)),
                Token::Second => out.push_str(&c.second.to_string()),
                Token::ZeroSecond => out.push_str(&format!("{:02}", c.second)),
                Token::LongYear => out.push_str(&format!("{:04}", c.year)),
                Token::Year => out.push_str(&format!("{:02}", c.year.rem_euclid(100))),
                Token::PM => out.push_str(if c.hour >= 12 { "PM" } else { "AM" }),
                Token::Pm => out.push_str(if c.hour >= 12 { "pm" } else { "am" }),
                Token::TZ => {
                    if self.zone.is_empty() {
                        out.push_str(&offset_text(self.offset, false, false, true));
                    } else {
                        out.push_str(&self.zone);
                    }
                }
                Token::Offset {
                    z,
                    colon,
                    seconds,
                    hours_only,
                } => {
                    if z && self.offset == 0 {
                        out.push('Z');
                    } else if hours_only {
                        let sign = if self.offset < 0 { '-' } else { '+' };
                        out.push_str(&format!("{sign}{:02}", self.offset.abs() / 3600));
                    } else {
                        out.push_str(&offset_text(self.offset, colon, seconds, false));
                    }
                }
                Token::Fraction { digits, trim } => {
                    let frac = format!("{:09}", self.nanos);
                    let mut part = frac[..digits.min(9)].to_string();
                    if trim {
                        part = part.trim_end_matches('0').to_string();
                        if !part.is_empty() {
                            out.push('.');
                            out.push_str(&part);
                        }
                    } else {
                        out.push('.');
                        out.push_str(&part);
                    }
                }
            }
            rest = &rest[len..];
        }
        out
    }

    /// Go's `time.ParseInLocation(layout, value, UTC)`; zones other than UTC and numeric
    /// offsets are read as UTC.
    pub(crate) fn parse(layout: &str, value: &str) -> Result<GoTime, String> {
        let err = || {
            format!(
                "parsing time {} as {}: cannot parse",
                fenrir_common::go_quote(value),
                fenrir_common::go_quote(layout)
            )
        };
        let (mut year, mut month, mut day) = (1i64, 1u32, 1u32);
        let (mut hour, mut minute, mut second, mut nanos) = (0u32, 0u32, 0u32, 0u32);
        let mut pm: Option<bool> = None;
        let mut offset = 0i32;
        let mut has_offset = false;
        let mut rest_layout = layout;
        let mut v = value;
        let take_digits = |v: &mut &str, min: usize, max: usize| -> Option<u32> {
            let n = v.bytes().take(max).take_while(u8::is_ascii_digit).count();
            if n < min {
                return None;
            }
            let (d, r) = v.split_at(n);
            *v = r;
            d.parse().ok()
        };
        while !rest_layout.is_empty() {
            let (token, len) = next_layout_token(rest_layout);
            match token {
                Token::Literal => {
                    let lit = &rest_layout[..len];
                    v = v.strip_prefix(lit).ok_or_else(err)?;
                }
                Token::LongYear => year = i64::from(take_digits(&mut v, 4, 4).ok_or_else(err)?),
                Token::Year => {
                    let y = i64::from(take_digits(&mut v, 2, 2).ok_or_else(err)?);
                    year = if y >= 69 { 1900 + y } else { 2000 + y };
                }
                Token::ZeroMonth | Token::NumMonth => {
                    month = take_digits(&mut v, 1, 2).ok_or_else(err)?
                }
                Token::LongMonth | Token::Month => {
                    let found = MONTHS.iter().position(|m| {
                        let name = if token == Token::Month { &m[..3] } else { m };
                        v.get(..name.len())
                            .is_some_and(|p| p.eq_ignore_ascii_case(name))
                    });
                    let idx = found.ok_or_else(err)?;
                    let name_len = if token == Token::Month {
                        3
                    } else {
                        MONTHS[idx].len()
                    };
                    v = &v[name_len..];
                    month = idx as u32 + 1;
                }
                Token::LongWeekDay | Token::WeekDay => {
                    let n = v.bytes().take_while(u8::is_ascii_alphabetic).count();
                    v = &v[n..];
                }
                Token::ZeroDay | Token::Day => day = take_digits(&mut v, 1, 2).ok_or_else(err)?,
                Token::UnderDay => {
                    v = v.trim_start_matches(' ');
                    day = take_digits(&mut v, 1, 2).ok_or_else(err)?;
                }
                Token::YearDay | Token::UnderYearDay => {
                    v = v.trim_start_matches(' ');
                    take_digits(&mut v, 1, 3).ok_or_else(err)?;
                }
                Token::Hour => hour = take_digits(&mut v, 1, 2).ok_or_else(err)?,
                Token::Hour12 | Token::ZeroHour12 => {
                    hour = take_digits(&mut v, 1, 2).ok_or_else(err)?
                }
                Token::Minute | Token::ZeroMinute => {
                    minute = take_digits(&mut v, 1, 2).ok_or_else(err)?
                }
                Token::Second | Token::ZeroSecond => {
                    second = take_digits(&mut v, 1, 2).ok_or_else(err)?;
                    // Go accepts a fraction after the seconds even if the layout has none.
                    if v.starts_with('.') && !rest_layout[len..].starts_with('.') {
                        let n = v[1..].bytes().take_while(u8::is_ascii_digit).count();
                        if n > 0 {
                            let digits = &v[1..1 + n];
                            nanos = format!("{:0<9}", &digits[..n.min(9)]).parse().unwrap_or(0);
                            v = &v[1 + n..];
                        }
                    }
                }
                Token::Fraction { .. } => {
                    let stripped = v.strip_prefix(['.', ',']);
                    if let Some(s) = stripped {
                        let n = s.bytes().take_while(u8::is_ascii_digit).count();
                        let digits = &s[..n];
                        nanos = format!("{:0<9}", &digits[..n.min(9)]).parse().unwrap_or(0);
                        v = &s[n..];
                    }
                }
                Token::PM | Token::Pm => {
                    let p = v.get(..2).ok_or_else(err)?.to_ascii_uppercase();
                    pm = Some(match p.as_str() {
                        "PM" => true,
                        "AM" => false,
                        _ => return Err(err()),
                    });
                    v = &v[2..];
                }
                Token::TZ => {
                    let n = v
                        .bytes()
                        .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                        .count();
                    v = &v[n..];
                }
                Token::Offset { z, .. } => {
                    if z && v.starts_with('Z') {
                        v = &v[1..];
                    } else {
                        let sign = match v.as_bytes().first() {
                            Some(b'+') => 1,
                            Some(b'-') => -1,
                            _ => return Err(err()),
                        };
                        v = &v[1..];
                        let h = take_digits(&mut v, 2, 2).ok_or_else(err)?;
                        if v.starts_with(':') {
                            v = &v[1..];
                        }
                        let m = take_digits(&mut v, 0, 2).unwrap_or(0);
                        offset = sign * (h as i32 * 3600 + m as i32 * 60);
                        has_offset = true;
                    }
                }
            }
            rest_layout = &rest_layout[len..];
        }
        if !v.is_empty() {
            return Err(format!(
                "parsing time {}: extra text: {}",
                fenrir_common::go_quote(value),
                fenrir_common::go_quote(v)
            ));
        }
        if let Some(pm) = pm {
            if hour > 12 {
                return Err(err());
            }
            hour = match (pm, hour) {
                (true, 12) => 12,
                (true, h) => h + 12,
                (false, 12) => 0,
                (false, h) => h,
            };
        }
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return Err(format!(
                "parsing time {}: day out of range",
                fenrir_common::go_quote(value)
            ));
        }
        let days = days_from_civil(year, month, day);
        let local =
            days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
        Ok(GoTime {
            secs: local - i64::from(offset),
            nanos,
            offset,
            zone: if has_offset && offset != 0 {
                String::new()
            } else {
                "UTC".to_string()
            },
        })
    }
}

fn hour12(hour: u32) -> u32 {
    if hour.is_multiple_of(12) {
        12
    } else {
        hour % 12
    }
}

fn offset_text(offset: i32, colon: bool, seconds: bool, tz_style: bool) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.abs();
    let (h, m, s) = (a / 3600, a / 60 % 60, a % 60);
    if tz_style {
        return if m == 0 {
            format!("{sign}{h:02}")
        } else {
            format!("{sign}{h:02}{m:02}")
        };
    }
    let sep = if colon { ":" } else { "" };
    let mut out = format!("{sign}{h:02}{sep}{m:02}");
    if seconds {
        out.push_str(&format!("{sep}{s:02}"));
    }
    out
}

impl fmt::Display for GoTime {
    /// Go's `Time.String()`: `2006-01-02 15:04:05.999999999 -0700 MST`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format("2006-01-02 15:04:05.999999999 -0700 MST"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    Literal,
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    YearDay,
    UnderYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    TZ,
    Offset {
        z: bool,
        colon: bool,
        seconds: bool,
        hours_only: bool,
    },
    Fraction {
        digits: usize,
        trim: bool,
    },
}

/// The next element of a Go layout and its length in bytes (Go's `nextStdChunk`).
fn next_layout_token(s: &str) -> (Token, usize) {
    const TABLE: &[(&str, Token)] = &[
        ("January", Token::LongMonth),
        ("Jan", Token::Month),
        ("Monday", Token::LongWeekDay),
        ("Mon", Token::WeekDay),
        ("MST", Token::TZ),
        ("2006", Token::LongYear),
        ("002", Token::YearDay),
        ("01", Token::ZeroMonth),
        ("02", Token::ZeroDay),
        ("03", Token::ZeroHour12),
        ("04", Token::ZeroMinute),
        ("05", Token::ZeroSecond),
        ("06", Token::Year),
        ("15", Token::Hour),
        ("__2", Token::UnderYearDay),
        ("_2", Token::UnderDay),
        ("PM", Token::PM),
        ("pm", Token::Pm),
        (
            "Z070000",
            Token::Offset {
                z: true,
                colon: false,
                seconds: true,
                hours_only: false,
            },
        ),
        (
            "Z07:00:00",
            Token::Offset {
                z: true,
                colon: true,
                seconds: true,
                hours_only: false,
            },
        ),
        (
            "Z0700",
            Token::Offset {
                z: true,
                colon: false,
                seconds: false,
                hours_only: false,
            },
        ),
        (
            "Z07:00",
            Token::Offset {
                z: true,
                colon: true,
                seconds: false,
                hours_only: false,
            },
        ),
        (
            "Z07",
            Token::Offset {
                z: true,
                colon: false,
                seconds: false,
                hours_only: true,
            },
        ),
        (
            "-070000",
            Token::Offset {
                z: false,
                colon: false,
                seconds: true,
                hours_only: false,
            },
        ),
        (
            "-07:00:00",
            Token::Offset {
                z: false,
                colon: true,
                seconds: true,
                hours_only: false,
            },
        ),
        (
            "-0700",
            Token::Offset {
                z: false,
                colon: false,
                seconds: false,
                hours_only: false,
            },
        ),
        (
            "-07:00",
            Token::Offset {
                z: false,
                colon: true,
                seconds: false,
                hours_only: false,
            },
        ),
        (
            "-07",
            Token::Offset {
                z: false,
                colon: false,
                seconds: false,
                hours_only: true,
            },
        ),
        ("1", Token::NumMonth),
        ("2", Token::Day),
        ("3", Token::Hour12),
        ("4", Token::Minute),
        ("5", Token::Second),
    ];
    let bytes = s.as_bytes();
    for i in 0..bytes.len() {
        if !s.is_char_boundary(i) {
            continue;
        }
        let rest = &s[i..];
        // Fractional seconds: `.000`/`,000` or `.999` right after a seconds field.
        if (bytes[i] == b'.' || bytes[i] == b',') && i + 1 < bytes.len() {
            let c = bytes[i + 1];
            if c == b'0' || c == b'9' {
                let n = bytes[i + 1..].iter().take_while(|b| **b == c).count();
                let after = bytes.get(i + 1 + n);
                if !after.is_some_and(u8::is_ascii_digit) {
                    if i > 0 {
                        return (Token::Literal, i);
                    }
                    return (
                        Token::Fraction {
                            digits: n,
                            trim: c == b'9',
                        },
                        1 + n,
                    );
                }
            }
        }
        for (pat, tok) in TABLE {
            if rest.starts_with(pat) {
                // `Jan`/`Mon` only when not followed by a lower-case letter (Go's rule).
                let next = rest.as_bytes().get(pat.len());
                if matches!(tok, Token::Month | Token::WeekDay)
                    && next.is_some_and(u8::is_ascii_lowercase)
                {
                    continue;
                }
                if i > 0 {
                    return (Token::Literal, i);
                }
                return (*tok, pat.len());
            }
        }
    }
    (Token::Literal, s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_go() {
        let t = GoTime::from_unix_nanos(1_720_339_200_000_000_000);
        assert_eq!(t.to_string(), "2024-07-07 08:00:00 +0000 UTC");
        let t = GoTime::from_unix_nanos(1_720_339_200_123_000_000);
        assert_eq!(t.to_string(), "2024-07-07 08:00:00.123 +0000 UTC");
        assert_eq!(GoTime::zero().to_string(), "0001-01-01 00:00:00 +0000 UTC");
    }

    #[test]
    fn formats_layouts() {
        let t = GoTime::from_unix_nanos(1_720_339_200_000_000_000);
        assert_eq!(
            t.format("2006-01-02T15:04:05Z07:00"),
            "2024-07-07T08:00:00Z"
        );
        assert_eq!(t.format("Mon Jan _2 3:04PM"), "Sun Jul  7 8:00AM");
        assert_eq!(t.format("02/01/06 15h"), "07/07/24 08h");
        assert_eq!(t.format("January 2, 2006"), "July 7, 2024");
    }

    #[test]
    fn parses_layouts() {
        let t = GoTime::parse("2006-01-02", "2024-07-07").unwrap();
        assert_eq!(t.secs, 1_720_310_400);
        let t = GoTime::parse("2006-01-02T15:04:05Z07:00", "2024-07-07T10:00:00+02:00").unwrap();
        assert_eq!(t.secs, 1_720_339_200);
        let t = GoTime::parse("2006-01-02 15:04:05", "2024-07-07 08:00:00.5").unwrap();
        assert_eq!(t.nanos, 500_000_000);
        assert!(GoTime::parse("2006-01-02", "nope").is_err());
    }

    proptest::proptest! {
        #[test]
        fn layouts_never_panic(layout in "\\PC{0,20}", value in "\\PC{0,20}", ns in proptest::prelude::any::<i64>()) {
            let _ = GoTime::from_unix_nanos(ns).format(&layout);
            let _ = GoTime::parse(&layout, &value);
            let _ = GoTime::parse("Jan January Mon 2006 .000 PM Z07:00", &value);
        }
    }
}
