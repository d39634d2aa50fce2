use std::fmt;

use regex::Regex;

use crate::{write_go_quoted, Error, LabelSet, Result};

/// The four label-matching operators of a stream selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `=~`, fully anchored
    Re,
    /// `!~`, fully anchored
    Nre,
}

impl MatchOp {
    /// The operator as written in LogQL.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Eq => "=",
            MatchOp::Neq => "!=",
            MatchOp::Re => "=~",
            MatchOp::Nre => "!~",
        }
    }
}

/// A label matcher such as `app=~"api|web"`. A missing label matches as the empty string.
#[derive(Debug, Clone)]
pub struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    regex: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher; regex values are compiled anchored at both ends (`.` does not
    /// match a newline, as in Loki), with Go's ASCII Perl classes.
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        let regex = match op {
            MatchOp::Re | MatchOp::Nre => Some(
                Regex::new(&format!("^(?:{})$", crate::go_regex_syntax(&value)))
                    .map_err(|e| Error::InvalidRegex(e.to_string()))?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.into(),
            op,
            value,
            regex,
        })
    }

    /// The label name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operator.
    pub fn op(&self) -> MatchOp {
        self.op
    }

    /// The value or regex source, as written.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether `value` (the empty string for a missing label) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Eq => value == self.value,
            MatchOp::Neq => value != self.value,
            MatchOp::Re => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::Nre => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether the label set satisfies the matcher.
    pub fn matches_labels(&self, labels: &LabelSet) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }

    /// Whether the empty string satisfies the matcher, i.e. streams without the label
    /// match too.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        out.push_str(&self.name);
        out.push_str(self.op.as_str());
        write_go_quoted(&mut out, &self.value);
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_are_fully_anchored() {
        let m = Matcher::new(MatchOp::Re, "app", "ap").unwrap();
        assert!(!m.matches("api"));
        assert!(m.matches("ap"));
        let m = Matcher::new(MatchOp::Re, "app", "api|worker").unwrap();
        assert!(m.matches("worker"));
        assert!(!m.matches("workers"));
    }

    #[test]
    fn missing_label_is_empty() {
        let l = LabelSet::from_pairs([("app", "x")]);
        assert!(Matcher::new(MatchOp::Eq, "env", "")
            .unwrap()
            .matches_labels(&l));
        assert!(Matcher::new(MatchOp::Re, "env", ".*")
            .unwrap()
            .matches_labels(&l));
        assert!(!Matcher::new(MatchOp::Re, "env", ".+")
            .unwrap()
            .matches_labels(&l));
    }

    #[test]
    fn bad_regex_is_an_error() {
        assert!(Matcher::new(MatchOp::Re, "a", "(").is_err());
    }
}
