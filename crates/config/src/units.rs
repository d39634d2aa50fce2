//! Human-readable durations and byte sizes, as Loki writes them in YAML.

use std::fmt;
use std::time::Duration;

use crate::{Error, Result};

const NANOS_PER_MILLI: u128 = 1_000_000;
const NANOS_PER_SEC: u128 = 1_000_000_000;
const NANOS_PER_MIN: u128 = 60 * NANOS_PER_SEC;
const NANOS_PER_HOUR: u128 = 60 * NANOS_PER_MIN;
const NANOS_PER_DAY: u128 = 24 * NANOS_PER_HOUR;
const NANOS_PER_WEEK: u128 = 7 * NANOS_PER_DAY;
const NANOS_PER_YEAR: u128 = 365 * NANOS_PER_DAY;

/// Duration units, longest spelling first where one is a prefix of another (`ms` before `m`).
const DURATION_UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", NANOS_PER_MILLI),
    ("s", NANOS_PER_SEC),
    ("m", NANOS_PER_MIN),
    ("h", NANOS_PER_HOUR),
    ("d", NANOS_PER_DAY),
    ("w", NANOS_PER_WEEK),
    ("y", NANOS_PER_YEAR),
];

/// More fraction digits than this cannot change a nanosecond count.
const MAX_FRACTION_DIGITS: usize = 18;

/// Parses a duration the way Loki's YAML accepts them: Prometheus' `model.Duration`
/// (`1h30m`, `168h`, `7d`, `2w`, `1y`, `500ms`, a bare `0`) and Go's `time.Duration`
/// (`1.5h`, `300us`, `10ns`). Both spellings are accepted everywhere because Loki
/// mixes the two types across its keys. A year is 365 days, as in Prometheus.
/// Negative durations are refused: no Fenrir setting means anything by them.
pub fn parse_duration(input: &str) -> Result<Duration> {
    let invalid = |reason| Error::InvalidDuration {
        input: input.to_string(),
        reason,
    };
    let text = input.trim();
    if text.is_empty() {
        return Err(invalid("empty duration"));
    }
    if text.starts_with('-') {
        return Err(invalid("negative durations are not allowed"));
    }
    let text = text.strip_prefix('+').unwrap_or(text);
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (number, after_number) =
            split_number(rest).ok_or_else(|| invalid("expected a number"))?;
        let Some(&(unit, unit_nanos)) = DURATION_UNITS
            .iter()
            .find(|(unit, _)| after_number.starts_with(unit))
        else {
            return Err(invalid(if after_number.is_empty() {
                "missing unit (use ns, us, ms, s, m, h, d, w or y)"
            } else {
                "unknown unit (use ns, us, ms, s, m, h, d, w or y)"
            }));
        };
        let nanos = number
            .scale(unit_nanos)
            .ok_or_else(|| invalid("duration too large"))?;
        total = total
            .checked_add(nanos)
            .ok_or_else(|| invalid("duration too large"))?;
        rest = &after_number[unit.len()..];
    }
    let total = u64::try_from(total).map_err(|_| invalid("duration too large"))?;
    Ok(Duration::from_nanos(total))
}

/// A decimal number as written (`12`, `1.5`, `.5`), kept as digits until its unit is known.
struct Number<'a> {
    whole: &'a str,
    fraction: &'a str,
}

impl Number<'_> {
    /// The number times `unit`, rounded down; `None` on overflow.
    fn scale(&self, unit: u128) -> Option<u128> {
        let whole: u128 = if self.whole.is_empty() {
            0
        } else {
            self.whole.parse().ok()?
        };
        let mut value = whole.checked_mul(unit)?;
        if !self.fraction.is_empty() {
            let digits = &self.fraction[..self.fraction.len().min(MAX_FRACTION_DIGITS)];
            let numerator: u128 = digits.parse().ok()?;
            value = value
                .checked_add(numerator.checked_mul(unit)? / 10u128.pow(digits.len() as u32))?;
        }
        Some(value)
    }
}

/// Splits a leading decimal number off `text`; `None` when there is no digit.
fn split_number(text: &str) -> Option<(Number<'_>, &str)> {
    let whole_len = text.bytes().take_while(u8::is_ascii_digit).count();
    let (whole, after_whole) = text.split_at(whole_len);
    let (fraction, rest) = match after_whole.strip_prefix('.') {
        Some(after_dot) => {
            let fraction_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            after_dot.split_at(fraction_len)
        }
        None => ("", after_whole),
    };
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    Some((Number { whole, fraction }, rest))
}

/// Formats a duration the way Loki prints a `model.Duration` (`1w`, `30d1h`, `1h30m`,
/// `500ms`, `0s`): years and weeks only when exact, then days down to milliseconds.
/// Sub-millisecond remainders, which Prometheus cannot express, are appended as `us`
/// and `ns` so that [`parse_duration`] reads the text back to the same value.
pub fn format_duration(duration: Duration) -> String {
    let mut nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut take = |unit: &str, size: u128, only_if_exact: bool| {
        let remainder = nanos % size;
        if only_if_exact && remainder != 0 {
            return;
        }
        let count = nanos / size;
        if count > 0 {
            out.push_str(&format!("{count}{unit}"));
            nanos -= count * size;
        }
    };
    take("y", NANOS_PER_YEAR, true);
    take("w", NANOS_PER_WEEK, true);
    take("d", NANOS_PER_DAY, false);
    take("h", NANOS_PER_HOUR, false);
    take("m", NANOS_PER_MIN, false);
    take("s", NANOS_PER_SEC, false);
    take("ms", NANOS_PER_MILLI, false);
    take("us", 1_000, false);
    take("ns", 1, false);
    out
}

/// Byte units. Loki's `flagext.ByteSize` (via `c2h5oh/datasize`) is base 2 for every
/// spelling: `KB`, `KiB` and `K` all mean 1024 bytes, `MB` 1024², and so on.
const BYTE_UNITS: &[(&[&str], u32)] = &[
    (&["", "b", "byte", "bytes"], 0),
    (&["k", "kb", "kib", "kilo", "kilobyte", "kilobytes"], 10),
    (&["m", "mb", "mib", "mega", "megabyte", "megabytes"], 20),
    (&["g", "gb", "gib", "giga", "gigabyte", "gigabytes"], 30),
    (&["t", "tb", "tib", "tera", "terabyte", "terabytes"], 40),
    (&["p", "pb", "pib", "peta", "petabyte", "petabytes"], 50),
    (&["e", "eb", "eib", "exa", "exabyte", "exabytes"], 60),
];

/// Parses a byte size as Loki does (`256KB`, `3MB`, `1GiB`, `128`, case-insensitive,
/// base 2: `1KB` is 1024 bytes). As a Fenrir extension a decimal fraction is also
/// accepted (`1.5MiB`); the result is rounded down to whole bytes.
pub fn parse_byte_size(input: &str) -> Result<u64> {
    let invalid = |reason| Error::InvalidByteSize {
        input: input.to_string(),
        reason,
    };
    let text = input.trim();
    if text.starts_with('-') {
        return Err(invalid("negative sizes are not allowed"));
    }
    let (number, unit_text) = split_number(text).ok_or_else(|| invalid("expected a number"))?;
    let unit = unit_text.trim().to_ascii_lowercase();
    let Some(&(_, shift)) = BYTE_UNITS
        .iter()
        .find(|(spellings, _)| spellings.contains(&unit.as_str()))
    else {
        return Err(invalid("unknown unit (use B, KB, MB, GB, TB, PB or EB)"));
    };
    let bytes = number
        .scale(1u128 << shift)
        .ok_or_else(|| invalid("size too large"))?;
    u64::try_from(bytes).map_err(|_| invalid("size too large"))
}

/// Formats a byte size as Loki prints one: the largest base-2 unit that divides it
/// exactly (`256KB`, `3MB`, `1000B`, `0B`).
pub fn format_byte_size(bytes: u64) -> String {
    const NAMES: [&str; 7] = ["B", "KB", "MB", "GB", "TB", "PB", "EB"];
    if bytes == 0 {
        return "0B".to_string();
    }
    let mut unit = 0;
    let mut value = bytes;
    while unit + 1 < NAMES.len() && value & 1023 == 0 {
        value /= 1024;
        unit += 1;
    }
    format!("{value}{}", NAMES[unit])
}

/// Serde for `std::time::Duration` fields written as `1h30m` (a bare integer must be 0).
pub(crate) mod duration_serde {
    use super::*;
    use serde::{de, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(*value))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 1h30m, 10s or 500ms")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
                parse_duration(text).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, number: u64) -> Result<Duration, E> {
                self.visit_str(&number.to_string())
            }
            fn visit_i64<E: de::Error>(self, number: i64) -> Result<Duration, E> {
                self.visit_str(&number.to_string())
            }
            fn visit_f64<E: de::Error>(self, number: f64) -> Result<Duration, E> {
                self.visit_str(&number.to_string())
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Serde for byte counts written as `256KB` or a plain integer.
pub(crate) mod bytes_serde {
    use super::*;
    use serde::{de, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_byte_size(*value))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = u64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte size such as 256KB, 3MB or 1024")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
                parse_byte_size(text).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, number: u64) -> Result<u64, E> {
                Ok(number)
            }
            fn visit_i64<E: de::Error>(self, number: i64) -> Result<u64, E> {
                u64::try_from(number).map_err(|_| E::custom("negative sizes are not allowed"))
            }
            fn visit_f64<E: de::Error>(self, number: f64) -> Result<u64, E> {
                self.visit_str(&number.to_string())
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn durations_parse_like_loki() {
        let cases: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("10s", secs(10)),
            ("500ms", Duration::from_millis(500)),
            ("1h30m", secs(5400)),
            ("168h", secs(168 * 3600)),
            ("721h", secs(721 * 3600)),
            ("7d", secs(7 * 86400)),
            ("2w", secs(14 * 86400)),
            ("1y", secs(365 * 86400)),
            (
                "1y2w3d4h5m6s7ms",
                secs(365 * 86400 + 14 * 86400 + 3 * 86400 + 4 * 3600 + 5 * 60 + 6)
                    + Duration::from_millis(7),
            ),
            ("1.5h", secs(5400)),
            (".5s", Duration::from_millis(500)),
            ("300us", Duration::from_micros(300)),
            ("300µs", Duration::from_micros(300)),
            ("10ns", Duration::from_nanos(10)),
            (" 2m ", secs(120)),
            ("1m1m", secs(120)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text).unwrap(), *want, "parsing {text:?}");
        }
    }

    #[test]
    fn bad_durations_are_refused_with_a_reason() {
        let cases: &[(&str, &str)] = &[
            ("", "empty duration"),
            ("10", "missing unit"),
            ("1x", "unknown unit"),
            ("h", "expected a number"),
            ("-1h", "negative durations"),
            ("1h-", "expected a number"),
            ("99999999999999999999y", "duration too large"),
            ("1000y", "duration too large"),
        ];
        for (text, want) in cases {
            let err = parse_duration(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(err.starts_with("invalid duration"), "{err}");
        }
    }

    #[test]
    fn durations_format_like_prometheus_and_read_back() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (secs(168 * 3600), "1w"),
            (secs(721 * 3600), "30d1h"),
            (secs(5400), "1h30m"),
            (secs(365 * 86400), "1y"),
            (secs(90 * 86400), "90d"),
            (Duration::from_millis(1500), "1s500ms"),
            (Duration::from_nanos(1_001), "1us1ns"),
        ];
        for (duration, want) in cases {
            assert_eq!(format_duration(*duration), *want);
            assert_eq!(
                parse_duration(want).unwrap(),
                *duration,
                "round trip of {want}"
            );
        }
    }

    #[test]
    fn byte_sizes_parse_base_2_like_loki() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("128", 128),
            ("128B", 128),
            ("256KB", 262_144),
            ("256kb", 262_144),
            ("256KiB", 262_144),
            ("256k", 262_144),
            ("3MB", 3 << 20),
            ("15MB", 15 << 20),
            ("1.5MiB", 1_572_864),
            ("64kb", 65_536),
            ("4GB", 4 << 30),
            ("1 MB", 1 << 20),
            ("2megabytes", 2 << 20),
            ("1EB", 1 << 60),
        ];
        for (text, want) in cases {
            assert_eq!(parse_byte_size(text).unwrap(), *want, "parsing {text:?}");
        }
    }

    #[test]
    fn bad_byte_sizes_are_refused_with_a_reason() {
        let cases: &[(&str, &str)] = &[
            ("", "expected a number"),
            ("MB", "expected a number"),
            ("-1MB", "negative sizes"),
            ("12XB", "unknown unit"),
            ("16EB", "size too large"),
            (
                "99999999999999999999999999999999999999999",
                "size too large",
            ),
        ];
        for (text, want) in cases {
            let err = parse_byte_size(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(err.starts_with("invalid byte size"), "{err}");
        }
    }

    #[test]
    fn byte_sizes_format_with_the_largest_exact_unit() {
        let cases: &[(u64, &str)] = &[
            (0, "0B"),
            (1000, "1000B"),
            (262_144, "256KB"),
            (3 << 20, "3MB"),
            (1_572_864, "1536KB"),
            (4 << 30, "4GB"),
        ];
        for (bytes, want) in cases {
            assert_eq!(format_byte_size(*bytes), *want);
            assert_eq!(parse_byte_size(want).unwrap(), *bytes);
        }
    }
}
