use std::fmt;
use std::sync::Arc;

use crate::{write_go_quoted, Fingerprint};

/// Up to this many labels, [`LabelSet::position`] scans instead of bisecting.
const LINEAR_SCAN_MAX: usize = 16;

/// A label set: pairs sorted by name, names unique, no empty values (except in sets made
/// by [`LabelsBuilder::build_keep_empty`], which only LogQL results use).
///
/// Cheap to clone. Its `Display` is Loki's canonical form, `{a="1", b="2"}`, which is
/// the stream's identity; [`LabelSet::fingerprint`] hashes exactly that identity.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LabelSet(Arc<[(String, String)]>);

impl LabelSet {
    /// Builds a set from pairs in any order. Later duplicates of a name win; pairs with
    /// an empty value are dropped (Loki drops them too).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut b = LabelsBuilder::default();
        for (k, v) in pairs {
            b.set(k.into(), v.into());
        }
        b.build()
    }

    /// The empty set.
    pub fn empty() -> Self {
        LabelSet::default()
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).map(|i| self.0[i].1.as_str())
    }

    /// The index of label `name` in [`LabelSet::as_slice`], if present.
    pub fn position(&self, name: &str) -> Option<usize> {
        // Stream label sets are small: a scan that compares lengths first skips most
        // byte comparisons, where a binary search compares bytes at every step.
        if self.0.len() <= LINEAR_SCAN_MAX {
            self.0.iter().position(|(k, _)| k.as_str() == name)
        } else {
            self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)).ok()
        }
    }

    /// The pairs, sorted by name.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The pairs as a slice, sorted by name.
    pub fn as_slice(&self) -> &[(String, String)] {
        &self.0
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set has no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A 64-bit hash of the canonical form: equal sets have equal fingerprints.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for (k, v) in self.0.iter() {
            h.update(k.as_bytes());
            h.update(&[0xff]);
            h.update(v.as_bytes());
            h.update(&[0xff]);
        }
        h.digest()
    }

    /// A builder starting from these labels, for adding or removing some.
    pub fn to_builder(&self) -> LabelsBuilder {
        LabelsBuilder {
            pairs: self.0.to_vec(),
        }
    }
}

impl fmt::Display for LabelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(16 * self.0.len() + 2);
        out.push('{');
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            if is_legacy_label_name(k) {
                out.push_str(k);
            } else {
                write_go_quoted(&mut out, k);
            }
            out.push('=');
            write_go_quoted(&mut out, v);
        }
        out.push('}');
        f.write_str(&out)
    }
}

impl fmt::Debug for LabelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Whether `name` matches Prometheus' classic label-name syntax `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn is_legacy_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Collects labels in any order and produces a canonical [`LabelSet`].
#[derive(Debug, Clone, Default)]
pub struct LabelsBuilder {
    pairs: Vec<(String, String)>,
}

impl LabelsBuilder {
    /// Sets `name` to `value`, replacing an earlier value. [`LabelsBuilder::build`] drops
    /// empty values.
    pub fn set(&mut self, name: String, value: String) -> &mut Self {
        match self.pairs.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.pairs.push((name, value)),
        }
        self
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &str) -> &mut Self {
        self.pairs.retain(|(k, _)| k != name);
        self
    }

    /// The current value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The canonical set: sorted by name, empty values dropped.
    pub fn build(mut self) -> LabelSet {
        self.pairs.retain(|(_, v)| !v.is_empty());
        self.build_keep_empty()
    }

    /// Like [`LabelsBuilder::build`] but keeps empty values. Only for LogQL results (log
    /// streams and metric series), where a parsed `x=""` differs from a missing `x`
    /// (Loki shows it); stream labels are always built with [`LabelsBuilder::build`], so an empty
    /// stream label is never stored.
    pub fn build_keep_empty(mut self) -> LabelSet {
        self.pairs.sort_by(|a, b| a.0.cmp(&b.0));
        LabelSet(Arc::from(self.pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_is_sorted_and_quoted() {
        let l = LabelSet::from_pairs([("job", "a\"b"), ("app", "x"), ("empty", "")]);
        assert_eq!(l.to_string(), r#"{app="x", job="a\"b"}"#);
        assert_eq!(l.get("job"), Some("a\"b"));
        assert_eq!(l.get("empty"), None);
    }

    #[test]
    fn lookups_agree_for_small_and_large_sets() {
        for n in [0usize, 1, 5, 16, 17, 40] {
            let l = LabelSet::from_pairs((0..n).map(|i| (format!("k{i:02}"), format!("v{i}"))));
            for i in 0..n {
                let name = format!("k{i:02}");
                assert_eq!(l.get(&name), Some(format!("v{i}").as_str()), "{n} {name}");
                assert_eq!(l.as_slice()[l.position(&name).unwrap()].0, name);
            }
            assert_eq!(l.get("k"), None);
            assert_eq!(l.get("zz"), None);
            assert_eq!(l.position(""), None);
        }
    }

    #[test]
    fn fingerprint_ignores_input_order() {
        let a = LabelSet::from_pairs([("a", "1"), ("b", "2")]);
        let b = LabelSet::from_pairs([("b", "2"), ("a", "1")]);
        assert_eq!(a.fingerprint(), b.fingerprint());
        let c = LabelSet::from_pairs([("a", "12")]);
        let d = LabelSet::from_pairs([("a", "1"), ("2", "")]);
        assert_ne!(c.fingerprint(), d.fingerprint());
    }

    #[test]
    fn keep_empty_builder_keeps_empty_values_only_when_asked() {
        let mut b = LabelsBuilder::default();
        b.set("b".into(), String::new()).set("a".into(), "1".into());
        let kept = b.clone().build_keep_empty();
        assert_eq!(kept.to_string(), r#"{a="1", b=""}"#);
        assert_eq!(kept.get("b"), Some(""));
        assert_eq!(b.build().to_string(), r#"{a="1"}"#);
        assert_ne!(
            kept.fingerprint(),
            LabelSet::from_pairs([("a", "1")]).fingerprint()
        );
    }

    #[test]
    fn odd_names_are_quoted() {
        let l = LabelSet::from_pairs([("service.name", "x")]);
        assert_eq!(l.to_string(), r#"{"service.name"="x"}"#);
    }
}
