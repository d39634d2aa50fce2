//! The `| unpack` parser: reverses Promtail's `pack` stage. Top-level string values become
//! labels and `_entry` replaces the line, but only when `_entry` is present.

use super::json::{object_each, unescape_into, ValueType};
use super::labels::{sanitize_label_key, LineLabels, ERR_JSON};

const PACKED_ENTRY_KEY: &str = "_entry";
const NOT_AN_OBJECT: &str = "expecting json object(6), but it is not";

#[derive(Debug, Default, Clone)]
pub(crate) struct UnpackParser {
    pending: Vec<(String, String)>,
    key_buf: String,
    name: String,
}

impl UnpackParser {
    /// Returns the new line when the object had an `_entry` string.
    pub(crate) fn process(&mut self, line: &str, labels: &mut LineLabels) -> Option<String> {
        let first = line
            .trim_start_matches([' ', '\t', '\n', '\r'])
            .bytes()
            .next();
        if first != Some(b'{') {
            labels.set_parser_err(ERR_JSON, Some(NOT_AN_OBJECT));
            return None;
        }
        let mut entry: Option<String> = None;
        let mut count = 0usize;
        let UnpackParser {
            pending,
            key_buf,
            name,
        } = self;
        let result = object_each(line, 0, key_buf, &mut |key, raw, ty, escaped| {
            if ty != ValueType::String {
                return Ok(());
            }
            let mut value = String::new();
            if escaped {
                if !unescape_into(raw, &mut value) {
                    return Err(super::json::MALFORMED_ESCAPE);
                }
            } else {
                value.push_str(raw);
            }
            if key == PACKED_ENTRY_KEY {
                entry = Some(value);
                return Ok(());
            }
            sanitize_label_key(key, name);
            if count == pending.len() {
                pending.push((String::new(), String::new()));
            }
            pending[count] = (name.clone(), value);
            count += 1;
            Ok(())
        });
        if let Err(e) = result {
            labels.set_parser_err(ERR_JSON, Some(e));
            return None;
        }
        let entry = entry?;
        for (k, v) in &pending[..count] {
            labels.set_from_parser(k, v);
        }
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fenrir_common::LabelSet;

    fn labels() -> LineLabels {
        let mut l = LineLabels::new(LabelSet::from_pairs([("app", "web")]));
        l.reset(&[]);
        l
    }

    #[test]
    fn entry_replaces_line_and_strings_become_labels() {
        let mut p = UnpackParser::default();
        let mut l = labels();
        let line = p.process(
            r#"{"_entry":"code=42","tenant":"t1","n":5,"app":"x","o":{"a":"b"}}"#,
            &mut l,
        );
        assert_eq!(line.as_deref(), Some("code=42"));
        assert_eq!(l.get("tenant"), Some("t1"));
        assert_eq!(l.get("app_extracted"), Some("x"));
        assert_eq!(l.get("n"), None, "only string values");
        assert_eq!(l.get("o"), None);
    }

    #[test]
    fn no_entry_no_labels() {
        let mut p = UnpackParser::default();
        let mut l = labels();
        assert_eq!(p.process(r#"{"tenant":"t2"}"#, &mut l), None);
        assert_eq!(l.parsed.len(), 0);
        assert!(!l.has_err());
    }

    #[test]
    fn non_object_is_an_error() {
        let mut p = UnpackParser::default();
        let mut l = labels();
        assert_eq!(p.process("plain text", &mut l), None);
        assert_eq!(l.err(), Some(ERR_JSON));
        assert_eq!(l.err_details(), Some(NOT_AN_OBJECT));
    }
}
