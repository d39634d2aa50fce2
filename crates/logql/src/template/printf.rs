//! Go's `fmt.Sprintf` for template values: the common verbs, flags, width and precision,
//! and Go's `%!verb(type=value)` texts for mismatches.

use super::value::{format_float_g, format_value, Value};

struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    sharp: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

fn pad(s: String, spec: &Spec, numeric: bool) -> String {
    let Some(width) = spec.width else { return s };
    let len = s.chars().count();
    if len >= width {
        return s;
    }
    let fill = width - len;
    if spec.minus {
        format!("{s}{}", " ".repeat(fill))
    } else if spec.zero && numeric {
        let (sign, digits) = match s.strip_prefix(['-', '+']) {
            Some(d) => (&s[..1], d),
            None => ("", s.as_str()),
        };
        format!("{sign}{}{digits}", "0".repeat(fill))
    } else {
        format!("{}{s}", " ".repeat(fill))
    }
}

fn bad_verb(verb: char, v: &Value, labels: &dyn Fn() -> Vec<(String, String)>) -> String {
    match v {
        Value::Nil => format!("%!{verb}(<nil>)"),
        _ => format!("%!{verb}({}={})", v.type_name(), format_value(v, labels)),
    }
}

/// Go `%e` text: `1.500000e+00`.
fn go_exp(v: f64, prec: usize, upper: bool) -> String {
    let s = format!("{v:.prec$e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    let out = format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    if upper {
        out.to_uppercase()
    } else {
        out
    }
}

/// Go `%g` with an explicit precision (significant digits), trailing zeros removed.
fn go_g(v: f64, prec: usize) -> String {
    let p = prec.max(1);
    let sci = format!("{:.*e}", p - 1, v);
    let exp: i32 = sci
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        let s = go_exp(v, p - 1, false);
        let (m, e) = s.split_once('e').unwrap_or((&s, ""));
        let m = if m.contains('.') {
            m.trim_end_matches('0').trim_end_matches('.')
        } else {
            m
        };
        format!("{m}e{e}")
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

fn format_one(
    verb: char,
    spec: &Spec,
    v: &Value,
    labels: &dyn Fn() -> Vec<(String, String)>,
) -> String {
    let sign = |s: String, negative: bool| {
        if negative {
            s
        } else if spec.plus {
            format!("+{s}")
        } else if spec.space {
            format!(" {s}")
        } else {
            s
        }
    };
    match (verb, v) {
        ('v', Value::Float(f)) => pad(sign(format_float_g(*f), *f < 0.0), spec, true),
        ('v', Value::Int(i)) => pad(sign(i.to_string(), *i < 0), spec, true),
        ('v', _)
        | ('s', Value::Str(_) | Value::Time(_) | Value::Map(_) | Value::List(_) | Value::Labels) => {
            let mut s = format_value(v, labels);
            if let Some(p) = spec.precision {
                s = s.chars().take(p).collect();
            }
            pad(s, spec, false)
        }
        ('q', Value::Str(s)) => pad(fenrir_common::go_quote(s), spec, false),
        ('q', Value::Int(i)) => {
            let c = char::from_u32(*i as u32).unwrap_or('\u{fffd}');
            pad(format!("'{c}'"), spec, false)
        }
        ('d', Value::Int(i)) => pad(sign(i.to_string(), *i < 0), spec, true),
        ('b', Value::Int(i)) => pad(format!("{i:b}"), spec, true),
        ('o', Value::Int(i)) => pad(format!("{i:o}"), spec, true),
        ('x', Value::Int(i)) => {
            let s = if *i < 0 {
                format!("-{:x}", i.unsigned_abs())
            } else {
                format!("{i:x}")
            };
            pad(if spec.sharp { format!("0x{s}") } else { s }, spec, true)
        }
        ('X', Value::Int(i)) => {
            let s = if *i < 0 {
                format!("-{:X}", i.unsigned_abs())
            } else {
                format!("{i:X}")
            };
            pad(if spec.sharp { format!("0X{s}") } else { s }, spec, true)
        }
        ('x', Value::Str(s)) => pad(s.bytes().map(|b| format!("{b:02x}")).collect(), spec, false),
        ('X', Value::Str(s)) => pad(s.bytes().map(|b| format!("{b:02X}")).collect(), spec, false),
        ('c', Value::Int(i)) => pad(
            char::from_u32(*i as u32).unwrap_or('\u{fffd}').to_string(),
            spec,
            false,
        ),
        ('U', Value::Int(i)) => pad(format!("U+{i:04X}"), spec, false),
        ('t', Value::Bool(b)) => pad(b.to_string(), spec, false),
        ('f' | 'F', Value::Float(f)) => {
            let p = spec.precision.unwrap_or(6);
            pad(sign(format!("{f:.p$}"), *f < 0.0), spec, true)
        }
        ('e' | 'E', Value::Float(f)) => {
            let p = spec.precision.unwrap_or(6);
            pad(sign(go_exp(*f, p, verb == 'E'), *f < 0.0), spec, true)
        }
        ('g' | 'G', Value::Float(f)) => {
            let s = match spec.precision {
                Some(p) => go_g(*f, p),
                None => format_float_g(*f),
            };
            pad(sign(s, *f < 0.0), spec, true)
        }
        ('T', _) => pad(v.type_name().to_string(), spec, false),
        _ => bad_verb(verb, v, labels),
    }
}

/// Go's `fmt.Sprintf(format, args...)`.
pub(crate) fn sprintf(
    format: &str,
    args: &[Value],
    labels: &dyn Fn() -> Vec<(String, String)>,
) -> String {
    let mut out = String::new();
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    let mut arg = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let mut spec = Spec {
            minus: false,
            plus: false,
            zero: false,
            space: false,
            sharp: false,
            width: None,
            precision: None,
        };
        while i < chars.len() {
            match chars[i] {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                '#' => spec.sharp = true,
                _ => break,
            }
            i += 1;
        }
        let number = |i: &mut usize, arg: &mut usize| -> Option<usize> {
            if chars.get(*i) == Some(&'*') {
                *i += 1;
                let v = match args.get(*arg) {
                    Some(Value::Int(n)) => Some((*n).clamp(0, 10_000) as usize),
                    _ => None,
                };
                *arg += 1;
                return v;
            }
            let start = *i;
            while chars.get(*i).is_some_and(|c| c.is_ascii_digit()) {
                *i += 1;
            }
            if *i == start {
                return None;
            }
            chars[start..*i]
                .iter()
                .collect::<String>()
                .parse::<usize>()
                .ok()
                .map(|n| n.min(10_000))
        };
        spec.width = number(&mut i, &mut arg);
        if chars.get(i) == Some(&'.') {
            i += 1;
            spec.precision = Some(number(&mut i, &mut arg).unwrap_or(0));
        }
        let Some(&verb) = chars.get(i) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(arg) {
            Some(v) => out.push_str(&format_one(verb, &spec, v, labels)),
            None => out.push_str(&format!("%!{verb}(MISSING)")),
        }
        arg += 1;
    }
    if arg < args.len() {
        let extra: Vec<String> = args[arg..]
            .iter()
            .map(|v| match v {
                Value::Nil => "<nil>".to_string(),
                _ => format!("{}={}", v.type_name(), format_value(v, labels)),
            })
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(format: &str, args: &[Value]) -> String {
        sprintf(format, args, &Vec::new)
    }

    #[test]
    fn verbs() {
        let s = |x: &str| Value::Str(x.to_string());
        assert_eq!(f("%s-%d", &[s("a"), Value::Int(5)]), "a-5");
        assert_eq!(f("%.2f", &[Value::Float(1.23456)]), "1.23");
        assert_eq!(f("%f", &[Value::Float(1.5)]), "1.500000");
        assert_eq!(f("%5s|%-5s|", &[s("ab"), s("cd")]), "   ab|cd   |");
        assert_eq!(f("%05d", &[Value::Int(42)]), "00042");
        assert_eq!(f("%q", &[s("a\"b")]), r#""a\"b""#);
        assert_eq!(f("%x %X", &[Value::Int(255), s("hi")]), "ff 6869");
        assert_eq!(
            f("%v %v", &[Value::Float(1e6), Value::Bool(true)]),
            "1e+06 true"
        );
        assert_eq!(f("%d", &[s("abc")]), "%!d(string=abc)");
        assert_eq!(f("%s %s", &[s("a")]), "a %!s(MISSING)");
        assert_eq!(f("%s", &[s("a"), Value::Int(1)]), "a%!(EXTRA int=1)");
        assert_eq!(f("%e", &[Value::Float(1234.5)]), "1.234500e+03");
        assert_eq!(f("%.3g", &[Value::Float(1.0)]), "1");
        assert_eq!(f("100%%", &[]), "100%");
        assert_eq!(f("%+d", &[Value::Int(3)]), "+3");
    }
}
