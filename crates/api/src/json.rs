//! JSON output the way Go's encoding/json writes it (HTML-safe escapes), built directly
//! into a string: response bodies can be large and their shape is fixed.

use std::fmt::Write;

/// Bytes that `push_str` must look at: the ASCII ones Go escapes, and 0xE2, the first byte
/// of U+2028 and U+2029.
const ATTENTION: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b'&' as usize] = true;
    t[0xE2] = true;
    t
};

/// Appends `s` as a JSON string with Go's escaping (`<`, `>`, `&`, U+2028, U+2029).
/// Works on bytes: every byte it stops at is ASCII or a character's first byte, so the
/// runs copied between escapes are whole characters.
pub(crate) fn push_str(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push('"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !ATTENTION[usize::from(b)] {
            i += 1;
            continue;
        }
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            b'<' => "\\u003c",
            b'>' => "\\u003e",
            b'&' => "\\u0026",
            0xE2 => match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(0x80), Some(0xA8)) => "\\u2028",
                (Some(0x80), Some(0xA9)) => "\\u2029",
                _ => {
                    i += 1;
                    continue;
                }
            },
            _ => "",
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(esc);
        }
        i += if b == 0xE2 { 3 } else { 1 };
        start = i;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends `{"k":"v",…}` from sorted pairs.
pub(crate) fn push_map<'a>(out: &mut String, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) {
    out.push('{');
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, k);
        out.push(':');
        push_str(out, v);
    }
    out.push('}');
}

/// Appends `["a","b"]`.
pub(crate) fn push_str_array<'a>(out: &mut String, items: impl IntoIterator<Item = &'a str>) {
    out.push('[');
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, s);
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        let mut s = String::new();
        push_str(&mut s, "a\"b\\<c>&\u{1}\n결제");
        assert_eq!(s, r#""a\"b\\\u003cc\u003e\u0026\u0001\n결제""#);
    }

    /// The escaping as first written, char by char: the byte-wise version must agree.
    fn push_str_by_chars(out: &mut String, s: &str) {
        out.push('"');
        let mut start = 0;
        for (i, c) in s.char_indices() {
            let esc: Option<&str> = match c {
                '"' => Some("\\\""),
                '\\' => Some("\\\\"),
                '\n' => Some("\\n"),
                '\r' => Some("\\r"),
                '\t' => Some("\\t"),
                '<' => Some("\\u003c"),
                '>' => Some("\\u003e"),
                '&' => Some("\\u0026"),
                '\u{2028}' => Some("\\u2028"),
                '\u{2029}' => Some("\\u2029"),
                c if (c as u32) < 0x20 => None,
                _ => continue,
            };
            out.push_str(&s[start..i]);
            match esc {
                Some(e) => out.push_str(e),
                None => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
            }
            start = i + c.len_utf8();
        }
        out.push_str(&s[start..]);
        out.push('"');
    }

    #[test]
    fn byte_wise_escaping_matches_char_wise() {
        let samples = [
            "",
            "plain",
            "\u{2028}\u{2029}\u{2027}\u{202a}⁂–—\u{e000}",
            "\u{0}\u{1f}\u{7f}\u{80}\u{ff}",
            "tail\u{2028}",
            "{\"a\":\"<b>&</b>\"}\r\n\t",
            "日本語\\テキスト\u{1F600}",
        ];
        for sample in samples {
            let (mut fast, mut slow) = (String::new(), String::new());
            push_str(&mut fast, sample);
            push_str_by_chars(&mut slow, sample);
            assert_eq!(fast, slow, "{sample:?}");
        }
        // Every char from a spread of code points, alone and between ASCII.
        for cp in (0u32..0x3000).chain(0xFFF0..0x10100) {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            let sample = format!("a{c}b{c}");
            let (mut fast, mut slow) = (String::new(), String::new());
            push_str(&mut fast, &sample);
            push_str_by_chars(&mut slow, &sample);
            assert_eq!(fast, slow, "U+{cp:04X}");
        }
    }
}
