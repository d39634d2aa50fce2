//! Go RE2 and Rust `regex` agree on almost all syntax; the Perl classes differ: Go's
//! `\d \w \s \b` are ASCII-only, Rust's are Unicode. Loki answers with Go's meaning.

/// Rewrites a Go regex so that Rust's `regex` crate gives Go's answers: `\d`, `\w`, `\s`
/// become ASCII classes and `\b`/`\B` ASCII word boundaries.
pub fn go_regex_syntax(pattern: &str) -> String {
    if !pattern.contains('\\') {
        return pattern.to_string();
    }
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut in_class = false;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) => {
                    let ascii = match e {
                        'd' => Some(("[0-9]", "0-9")),
                        'w' => Some(("[0-9A-Za-z_]", "0-9A-Za-z_")),
                        's' => Some(("[\\t\\n\\f\\r ]", "\\t\\n\\f\\r ")),
                        _ => None,
                    };
                    match (ascii, e) {
                        (Some((outside, inside)), _) => {
                            out.push_str(if in_class { inside } else { outside })
                        }
                        (None, 'b') if !in_class => out.push_str("(?-u:\\b)"),
                        (None, 'B') if !in_class => out.push_str("(?-u:\\B)"),
                        (None, e) => {
                            out.push('\\');
                            out.push(e);
                        }
                    }
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // A leading `^` and a leading `]` are literal parts of the class syntax.
                if chars.peek() == Some(&'^') {
                    out.push(chars.next().unwrap_or('^'));
                }
                if chars.peek() == Some(&']') {
                    out.push(chars.next().unwrap_or(']'));
                }
            }
            '[' if in_class && chars.peek() == Some(&':') => {
                // POSIX class such as [:alpha:] inside a bracket expression.
                out.push('[');
                for p in chars.by_ref() {
                    out.push(p);
                    if p == ']' {
                        break;
                    }
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::go_regex_syntax;

    #[test]
    fn perl_classes_become_ascii() {
        assert_eq!(go_regex_syntax(r"\d+"), "[0-9]+");
        assert_eq!(go_regex_syntax(r"[\d.]"), "[0-9.]");
        assert_eq!(go_regex_syntax(r"\w\s"), r"[0-9A-Za-z_][\t\n\f\r ]");
        assert_eq!(go_regex_syntax(r"\\d"), r"\\d");
        assert_eq!(go_regex_syntax(r"[[:alpha:]\d]"), "[[:alpha:]0-9]");
        assert_eq!(go_regex_syntax(r"\bx"), r"(?-u:\b)x");
    }

    #[test]
    fn unicode_digits_do_not_match() {
        let re = regex::Regex::new(&go_regex_syntax(r"^\d$")).unwrap();
        assert!(re.is_match("7"));
        assert!(!re.is_match("٣"));
        let re = regex::Regex::new(&go_regex_syntax(r"^\w+$")).unwrap();
        assert!(!re.is_match("é"));
    }
}
