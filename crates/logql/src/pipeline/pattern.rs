//! Loki's pattern language (`<name>` captures, `<_>` wildcards, literals) for the
//! `| pattern` parser and the `|>`/`!>` line filters.

use memchr::memmem;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Literal(String),
    /// A capture; `None` is the `<_>` wildcard.
    Capture(Option<String>),
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    nodes: Vec<Node>,
}

fn is_capture_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl Pattern {
    /// Parses a pattern. Errors: two captures in a row, a repeated name.
    pub(crate) fn parse(src: &str) -> Result<Pattern, String> {
        let mut nodes: Vec<Node> = Vec::new();
        let mut rest = src;
        let mut literal = String::new();
        while !rest.is_empty() {
            if rest.starts_with('<') {
                if let Some(end) = rest.find('>') {
                    let name = &rest[1..end];
                    if is_capture_name(name) {
                        if !literal.is_empty() {
                            nodes.push(Node::Literal(std::mem::take(&mut literal)));
                        }
                        if let Some(Node::Capture(_)) = nodes.last() {
                            return Err(format!("found consecutive capture '<{name}>'"));
                        }
                        let capture = (name != "_").then(|| name.to_string());
                        if let Some(n) = &capture {
                            if nodes.iter().any(|x| x == &Node::Capture(Some(n.clone()))) {
                                return Err(format!("duplicate capture name ({n})"));
                            }
                        }
                        nodes.push(Node::Capture(capture));
                        rest = &rest[end + 1..];
                        continue;
                    }
                }
            }
            let c = rest.chars().next().unwrap_or_default();
            literal.push(c);
            rest = &rest[c.len_utf8()..];
        }
        if !literal.is_empty() {
            nodes.push(Node::Literal(literal));
        }
        Ok(Pattern { nodes })
    }

    /// Names of the named captures, in order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Capture(Some(name)) => Some(name.as_str()),
            _ => None,
        })
    }

    pub(crate) fn has_named_capture(&self) -> bool {
        self.names().next().is_some()
    }

    /// The parser's extraction: the leading literal must start the line; each capture
    /// runs to the next occurrence of the following literal; when a literal is missing,
    /// the current capture takes the rest and extraction stops. Calls `emit` for each
    /// named capture found.
    pub(crate) fn extract<'l>(&self, line: &'l str, mut emit: impl FnMut(&str, &'l str)) {
        if line.is_empty() || self.nodes.is_empty() {
            return;
        }
        let mut input = line;
        let mut nodes = &self.nodes[..];
        if let Some(Node::Literal(lit)) = nodes.first() {
            if !input.starts_with(lit.as_str()) {
                return;
            }
            input = &input[lit.len()..];
            nodes = &nodes[1..];
        }
        while let Some(Node::Capture(name)) = nodes.first() {
            let Some(Node::Literal(lit)) = nodes.get(1) else {
                // The pattern ends on this capture: it takes the rest.
                if let Some(n) = name {
                    emit(n, input);
                }
                return;
            };
            nodes = &nodes[2..];
            match memmem::find(input.as_bytes(), lit.as_bytes()) {
                Some(i) => {
                    if let Some(n) = name {
                        emit(n, &input[..i]);
                    }
                    input = &input[i + lit.len()..];
                }
                None => {
                    if let Some(n) = name {
                        emit(n, input);
                    }
                    return;
                }
            }
        }
    }

    /// The line filter's test: every literal must occur in order, captures may not be
    /// empty, a pattern ending in a literal must end the line there, one ending in a
    /// capture needs text left. The leading literal is searched, not anchored (as Loki).
    pub(crate) fn test(&self, line: &str) -> bool {
        if line.is_empty() || self.nodes.is_empty() {
            return line.is_empty() && self.nodes.is_empty();
        }
        let bytes = line.as_bytes();
        let mut offset = 0;
        for (i, node) in self.nodes.iter().enumerate() {
            let Node::Literal(lit) = node else { continue };
            match memmem::find(&bytes[offset..], lit.as_bytes()) {
                None => return false,
                Some(0) if i != 0 => return false,
                Some(j) => offset += j + lit.len(),
            }
        }
        let ends_on_literal = matches!(self.nodes.last(), Some(Node::Literal(_)));
        ends_on_literal != (offset < bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extract(p: &str, line: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        Pattern::parse(p)
            .unwrap()
            .extract(line, |k, v| out.push((k.to_string(), v.to_string())));
        out
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn captures_run_to_next_literal() {
        assert_eq!(
            extract(
                r#"<ip> - - [<_>] "<method> <path> <_>" <status>"#,
                r#"10.0.0.1 - - [07/Jul/2024:09:58:43 +0000] "PUT /api/orders HTTP/1.1" 204"#
            ),
            pairs(&[
                ("ip", "10.0.0.1"),
                ("method", "PUT"),
                ("path", "/api/orders"),
                ("status", "204")
            ])
        );
    }

    #[test]
    fn short_line_fills_leading_captures() {
        assert_eq!(
            extract("<a> <b> <c>", "one two"),
            pairs(&[("a", "one"), ("b", "two")])
        );
        assert_eq!(extract("<a> <b> <c>", "one"), pairs(&[("a", "one")]));
    }

    #[test]
    fn leading_literal_is_anchored_for_the_parser() {
        assert_eq!(
            extract("level=<lvl> msg", "level=info msg=x"),
            pairs(&[("lvl", "info")])
        );
        assert!(extract("level=<lvl> ", "xlevel=info ").is_empty());
    }

    #[test]
    fn parse_errors() {
        assert!(Pattern::parse("<a><b>")
            .unwrap_err()
            .contains("consecutive capture"));
        assert!(Pattern::parse("<a> <a>")
            .unwrap_err()
            .contains("duplicate capture name"));
        let p = Pattern::parse("<not a capture> <_>").unwrap();
        assert!(!p.has_named_capture());
        assert_eq!(p.nodes[0], Node::Literal("<not a capture> ".to_string()));
    }

    #[test]
    fn filter_test_rules() {
        let p = Pattern::parse("GET /api").unwrap();
        assert!(p.test("GET /api"));
        assert!(!p.test("GET /api 200"), "ending literal must end the line");
        let p = Pattern::parse("<_> bar").unwrap();
        assert!(!p.test("foo bar baz"));
        let p = Pattern::parse("<_> baz").unwrap();
        assert!(p.test("foo bar baz"));
        let p = Pattern::parse("foo <_>").unwrap();
        assert!(p.test("foo bar baz"));
        assert!(!p.test("foo "), "a trailing capture needs text");
        let p = Pattern::parse("<_> bar <_>").unwrap();
        assert!(!p.test(" bar "), "empty captures do not match");
        let p = Pattern::parse("GET <_> done").unwrap();
        assert!(
            p.test("prefix GET /x done"),
            "leading literal is not anchored"
        );
        let p = Pattern::parse("").unwrap();
        assert!(p.test(""));
        assert!(!p.test("x"));
        assert!(!Pattern::parse("x").unwrap().test(""));
    }
}
