//! The `| regexp` and `| pattern` parsers.

use regex::Regex;

use super::labels::{sanitize_label_key, LineLabels};
use super::pattern::Pattern;

/// `| regexp "re"`: the first match's named groups become labels (`""` for a group that
/// does not take part); no match extracts nothing and keeps the line.
#[derive(Debug, Clone)]
pub(crate) struct RegexpParser {
    regex: Regex,
    /// `(group index, sanitised label name)`.
    names: Vec<(usize, String)>,
    locations: regex::CaptureLocations,
}

impl RegexpParser {
    pub(crate) fn new(src: &str) -> Result<RegexpParser, String> {
        let regex = Regex::new(&fenrir_common::go_regex_syntax(src))
            .map_err(|e| format!("invalid regexp parser: error parsing regexp: {e}"))?;
        let mut names: Vec<(usize, String)> = Vec::new();
        for (i, name) in regex.capture_names().enumerate() {
            let Some(name) = name else { continue };
            if names.iter().any(|(_, n)| n == name) {
                return Err(format!(
                    "invalid regexp parser: duplicate extracted label name '{name}'"
                ));
            }
            let mut sanitised = String::new();
            sanitize_label_key(name, &mut sanitised);
            names.push((i, sanitised));
        }
        if names.is_empty() {
            return Err(
                "invalid regexp parser: at least one named capture must be supplied".to_string(),
            );
        }
        let locations = regex.capture_locations();
        Ok(RegexpParser {
            regex,
            names,
            locations,
        })
    }

    pub(crate) fn process(&mut self, line: &str, labels: &mut LineLabels) {
        if self
            .regex
            .captures_read(&mut self.locations, line)
            .is_none()
        {
            return;
        }
        for (i, name) in &self.names {
            let value = self.locations.get(*i).map_or("", |(s, e)| &line[s..e]);
            labels.set_from_parser(name, value);
        }
    }
}

/// `| pattern "<a> <_> b"`.
#[derive(Debug, Clone)]
pub(crate) struct PatternParser {
    pattern: Pattern,
}

impl PatternParser {
    pub(crate) fn new(src: &str) -> Result<PatternParser, String> {
        let pattern = Pattern::parse(src).map_err(|e| format!("invalid pattern parser: {e}"))?;
        if !pattern.has_named_capture() {
            return Err("invalid pattern parser: at least one capture is required".to_string());
        }
        Ok(PatternParser { pattern })
    }

    pub(crate) fn process(&self, line: &str, labels: &mut LineLabels) {
        self.pattern
            .extract(line, |name, value| labels.set_from_parser(name, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fenrir_common::LabelSet;

    #[test]
    fn named_groups_become_labels() {
        let mut p = RegexpParser::new(r#""(?P<method>\w+) (?P<path>\S+)(?P<opt>X)?"#).unwrap();
        let mut labels = LineLabels::new(LabelSet::from_pairs([("method", "m")]));
        labels.reset(&[]);
        p.process(r#"1.2.3.4 "GET /api/x HTTP/1.1""#, &mut labels);
        assert_eq!(labels.get("method_extracted"), Some("GET"));
        assert_eq!(labels.get("path"), Some("/api/x"));
        assert_eq!(
            labels.get("opt"),
            Some(""),
            "non-participating group gives \"\""
        );
        labels.reset(&[]);
        p.process("no match here", &mut labels);
        assert_eq!(labels.parsed.len(), 0);
        assert!(!labels.has_err());
    }

    #[test]
    fn regexp_parse_errors() {
        assert!(RegexpParser::new("(a)")
            .unwrap_err()
            .contains("at least one named capture must be supplied"));
        assert!(RegexpParser::new("(?P<a>x)(?P<a>y)").is_err());
        assert!(RegexpParser::new("(?P<a>")
            .unwrap_err()
            .starts_with("invalid regexp parser: error parsing regexp"));
    }

    #[test]
    fn pattern_parser() {
        let p = PatternParser::new(r#"level=<lvl> msg="<msg>" <_>"#).unwrap();
        let mut labels = LineLabels::new(LabelSet::from_pairs([("app", "w")]));
        labels.reset(&[]);
        p.process(r#"level=info msg="job done" job=resize"#, &mut labels);
        assert_eq!(labels.get("lvl"), Some("info"));
        assert_eq!(labels.get("msg"), Some("job done"));
        assert!(PatternParser::new("<_> x")
            .unwrap_err()
            .ends_with("at least one capture is required"));
    }
}
