//! The per-line label state (Loki's labels builder) and the interning of result label sets.

use std::hash::Hasher;

use fenrir_common::LabelSet;

use crate::fxhash::{mix64, FxHashMap, FxHasher};

/// The `__error__` label.
pub(crate) const ERROR_LABEL: &str = "__error__";
/// The `__error_details__` label.
pub(crate) const ERROR_DETAILS_LABEL: &str = "__error_details__";
/// Suffix of a parsed (or metadata) label whose name is already taken.
pub(crate) const EXTRACTED_SUFFIX: &str = "_extracted";

/// `__error__` values, as Loki names them.
pub(crate) const ERR_JSON: &str = "JSONParserErr";
pub(crate) const ERR_LOGFMT: &str = "LogfmtParserErr";
pub(crate) const ERR_LABEL_FILTER: &str = "LabelFilterErr";
pub(crate) const ERR_SAMPLE_EXTRACTION: &str = "SampleExtractionErr";
pub(crate) const ERR_TEMPLATE_FORMAT: &str = "TemplateFormatErr";

/// Where a label comes from; the categorize-labels response encoding shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    Stream = 0,
    Metadata = 1,
    Parsed = 2,
}

/// A small name→value list that keeps its strings' capacity across lines, so that
/// steady-state processing does not allocate.
#[derive(Debug, Default)]
pub(crate) struct PairBuf {
    slots: Vec<(String, String)>,
    len: usize,
}

impl PairBuf {
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.slots[..self.len]
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.slots[..self.len].iter().position(|(k, _)| k == name)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.position(name).map(|i| self.slots[i].1.as_str())
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Sets `name` to `value`, replacing an existing value; `true` when `name` is new.
    pub(crate) fn set(&mut self, name: &str, value: &str) -> bool {
        if let Some(i) = self.position(name) {
            let slot = &mut self.slots[i].1;
            slot.clear();
            slot.push_str(value);
            return false;
        }
        if self.len == self.slots.len() {
            self.slots.push((String::new(), String::new()));
        }
        let (k, v) = &mut self.slots[self.len];
        k.clear();
        k.push_str(name);
        v.clear();
        v.push_str(value);
        self.len += 1;
        true
    }

    /// Removes `name`; order does not matter because results are sorted later.
    pub(crate) fn remove(&mut self, name: &str) -> bool {
        match self.position(name) {
            Some(i) => {
                self.len -= 1;
                self.slots.swap(i, self.len);
                true
            }
            None => false,
        }
    }
}

/// The `__preserve_error__` label: a parser error on a series the query groups or
/// filters by `__error__` does not fail a metric query.
pub(crate) const PRESERVE_ERROR_LABEL: &str = "__preserve_error__";

/// What the parsers of a metric query must extract (Loki's parser hints).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum HintMode {
    /// Everything: log queries, and metric queries grouped `without`, or not at all.
    #[default]
    All,
    /// Nothing: the output has no labels and no stage reads one. `json`, `logfmt`,
    /// `pattern` and `unpack` do not run, so they raise no errors.
    NoLabels,
    /// Only the listed labels; a parser stops once a line has all of them, so a line
    /// that breaks after them raises no error.
    Required,
}

/// Loki's parser hints: the labels later stages, the unwrap and the grouping read.
#[derive(Debug, Clone, Default)]
pub(crate) struct ParserHints {
    mode: HintMode,
    /// Target names (after `_extracted` renaming); a name ending in `_extracted` also
    /// brings its base name, because hints are checked before a clash is known in Loki.
    required: Vec<String>,
    /// `__error__` is required: a parser error also sets `__preserve_error__="true"`.
    preserve_error: bool,
}

impl ParserHints {
    /// Loki's rules: `groups`/`without` are the output grouping (with the unwrapped
    /// label already added for unwraps), `no_labels` says the output has no labels,
    /// `stage_labels` are the labels the stages read.
    pub(crate) fn new(
        stage_labels: &[String],
        groups: &[String],
        without: bool,
        no_labels: bool,
        metric_label: Option<&str>,
    ) -> ParserHints {
        let mut required: Vec<String> = Vec::new();
        let names = stage_labels
            .iter()
            .chain(groups)
            .map(String::as_str)
            .chain(metric_label);
        for name in names {
            let stripped = name.strip_suffix(EXTRACTED_SUFFIX);
            for n in std::iter::once(name).chain(stripped) {
                if !required.iter().any(|r| r == n) {
                    required.push(n.to_string());
                }
            }
        }
        let mode = if no_labels {
            if required.is_empty() {
                HintMode::NoLabels
            } else {
                HintMode::Required
            }
        } else if without || groups.is_empty() {
            HintMode::All
        } else {
            HintMode::Required
        };
        if mode != HintMode::Required {
            required.clear();
        }
        let preserve_error = required.iter().any(|r| r == ERROR_LABEL);
        ParserHints {
            mode,
            required,
            preserve_error,
        }
    }

    fn required_index(&self, name: &str) -> Option<usize> {
        self.required.iter().position(|r| r == name)
    }
}

/// The labels of the line being processed: the stream labels, structured metadata and
/// parsed labels, each in its own category, plus the error state.
#[derive(Debug)]
pub(crate) struct LineLabels {
    base: LabelSet,
    base_deleted: Vec<bool>,
    any_base_deleted: bool,
    pub(crate) metadata: PairBuf,
    pub(crate) parsed: PairBuf,
    err: Option<&'static str>,
    err_details: Option<String>,
    /// Reused buffer for `<name>_extracted`.
    extracted_name: String,
    hints: ParserHints,
    /// Per required label: extracted on this line (Loki records every new parsed label).
    found: Vec<bool>,
    found_count: usize,
    /// The previous line's metadata names and whether each is a stream label: a
    /// stream's lines usually carry the same names, so the lookup runs once.
    metadata_names: Vec<(String, bool)>,
}

impl LineLabels {
    pub(crate) fn new(base: LabelSet) -> Self {
        Self::with_hints(base, ParserHints::default())
    }

    pub(crate) fn with_hints(base: LabelSet, hints: ParserHints) -> Self {
        LineLabels {
            base_deleted: vec![false; base.len()],
            base,
            any_base_deleted: false,
            metadata: PairBuf::default(),
            parsed: PairBuf::default(),
            err: None,
            err_details: None,
            extracted_name: String::new(),
            found: vec![false; hints.required.len()],
            found_count: 0,
            hints,
            metadata_names: Vec::new(),
        }
    }

    /// Starts a new line: stream labels plus this entry's structured metadata. Metadata
    /// whose name is a stream label goes to `<name>_extracted`.
    pub(crate) fn reset(&mut self, structured_metadata: &[(&str, &str)]) {
        if self.any_base_deleted {
            self.base_deleted.iter_mut().for_each(|d| *d = false);
            self.any_base_deleted = false;
        }
        if self.found_count > 0 {
            self.found.iter_mut().for_each(|f| *f = false);
            self.found_count = 0;
        }
        self.metadata.clear();
        self.parsed.clear();
        self.err = None;
        self.err_details = None;
        if structured_metadata.is_empty() {
            return;
        }
        if self.metadata_names.len() < structured_metadata.len() {
            self.metadata_names
                .resize(structured_metadata.len(), (String::new(), false));
        }
        for (i, (name, value)) in structured_metadata.iter().enumerate() {
            let cached = &mut self.metadata_names[i];
            if cached.0 != *name {
                cached.0.clear();
                cached.0.push_str(name);
                cached.1 = self.base.position(name).is_some();
            }
            if cached.1 {
                self.extracted_name.clear();
                self.extracted_name.push_str(name);
                self.extracted_name.push_str(EXTRACTED_SUFFIX);
                self.metadata.set(&self.extracted_name, value);
            } else {
                self.metadata.set(name, value);
            }
        }
    }

    /// Whether any label beyond the stream labels exists, or any was removed.
    pub(crate) fn is_plain_stream(&self) -> bool {
        self.metadata.len() == 0
            && self.parsed.len() == 0
            && self.err.is_none()
            && self.err_details.is_none()
            && !self.any_base_deleted
    }

    /// The current value of `name` (parsed, then metadata, then stream), without the
    /// error labels.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        if let Some(v) = self.parsed.get(name) {
            return Some(v);
        }
        if let Some(v) = self.metadata.get(name) {
            return Some(v);
        }
        self.base_get(name)
    }

    /// Like [`LineLabels::get`], and `__error__`/`__error_details__` when set (the data a
    /// template sees).
    #[allow(dead_code)] // for templates; the template stub does not read labels yet
    pub(crate) fn get_with_errors(&self, name: &str) -> Option<&str> {
        match name {
            ERROR_LABEL => self.err,
            ERROR_DETAILS_LABEL => self.err_details.as_deref(),
            _ => self.get(name),
        }
    }

    fn base_get(&self, name: &str) -> Option<&str> {
        let i = self.base.position(name)?;
        if self.base_deleted[i] {
            None
        } else {
            Some(self.base.as_slice()[i].1.as_str())
        }
    }

    /// Sets a parsed label exactly as named (label_format, params).
    pub(crate) fn set_parsed(&mut self, name: &str, value: &str) {
        if self.parsed.set(name, value) {
            self.record_extracted(name);
        }
    }

    /// Loki records every new parsed label, whichever stage sets it.
    fn record_extracted(&mut self, name: &str) {
        if self.hints.mode != HintMode::Required {
            return;
        }
        if let Some(i) = self.hints.required_index(name) {
            if !self.found[i] {
                self.found[i] = true;
                self.found_count += 1;
            }
        }
    }

    /// Whether this line has every required label (never outside [`HintMode::Required`]).
    #[inline]
    pub(crate) fn all_required_extracted(&self) -> bool {
        self.hints.mode == HintMode::Required && self.found_count == self.hints.required.len()
    }

    /// Loki's `NoLabels()`: the parsers that honour it (`json`, `logfmt`, `pattern`,
    /// `unpack`) have nothing to do on this line.
    pub(crate) fn parsers_done(&self) -> bool {
        self.hints.mode == HintMode::NoLabels || self.all_required_extracted()
    }

    /// A quick test before any work on a parsed key: `false` when neither `name` nor
    /// `<name>_extracted` is required.
    #[inline]
    pub(crate) fn may_extract(&self, name: &str) -> bool {
        if self.hints.mode != HintMode::Required {
            return true;
        }
        // First bytes before the compare: parsers call this for every key, and most
        // keys differ from the required names right away.
        let first = name.as_bytes().first();
        self.hints.required.iter().any(|r| {
            (r.len() == name.len() && r.as_bytes().first() == first && r == name)
                || (r.len() == name.len() + EXTRACTED_SUFFIX.len()
                    && r.starts_with(name)
                    && r.ends_with(EXTRACTED_SUFFIX))
        })
    }

    /// Whether some required label starts with `prefix` (nested JSON keys).
    pub(crate) fn may_extract_prefix(&self, prefix: &str) -> bool {
        self.hints.mode != HintMode::Required
            || self.hints.required.iter().any(|r| r.starts_with(prefix))
    }

    /// Sets a parser error; with `__error__` among the hints also `__preserve_error__`.
    pub(crate) fn set_parser_err(&mut self, err: &'static str, details: Option<&str>) {
        self.set_err(err, details);
        if self.hints.preserve_error {
            self.set_parsed(PRESERVE_ERROR_LABEL, "true");
        }
    }

    /// Sets a label found by a parser: a name taken by a stream label or by structured
    /// metadata goes to `<name>_extracted`, and a name an earlier stage already set (or
    /// an earlier key of the same line) is left alone: first wins. Under
    /// [`HintMode::Required`], a target nobody reads is skipped.
    pub(crate) fn set_from_parser(&mut self, name: &str, value: &str) {
        self.set_from_parser_hinted(name, value, true);
    }

    /// Like [`LineLabels::set_from_parser`] but ignores the hints: the labels a parser's
    /// parameters ask for are always set (`json a="x"`, `logfmt a`).
    pub(crate) fn set_requested(&mut self, name: &str, value: &str) {
        self.set_from_parser_hinted(name, value, false);
    }

    fn set_from_parser_hinted(&mut self, name: &str, value: &str, hinted: bool) {
        if name.is_empty() {
            return;
        }
        let required = hinted && self.hints.mode == HintMode::Required;
        if self.base.position(name).is_some() || self.metadata.contains(name) {
            let mut target = std::mem::take(&mut self.extracted_name);
            target.clear();
            target.push_str(name);
            target.push_str(EXTRACTED_SUFFIX);
            let wanted = !required || self.hints.required_index(&target).is_some();
            if wanted && !self.parsed.contains(&target) {
                self.parsed.set(&target, value);
                self.record_extracted(&target);
            }
            self.extracted_name = target;
        } else if !self.parsed.contains(name)
            && (!required || self.hints.required_index(name).is_some())
        {
            self.parsed.set(name, value);
            self.record_extracted(name);
        }
    }

    /// Whether a parser would skip `name` (its target is already set).
    pub(crate) fn parser_target_taken(&self, name: &str) -> bool {
        if self.base.position(name).is_some() || self.metadata.contains(name) {
            // Checked without allocating: the target is `name` + suffix.
            self.parsed.iter().any(|(k, _)| {
                k.len() == name.len() + EXTRACTED_SUFFIX.len()
                    && k.starts_with(name)
                    && k.ends_with(EXTRACTED_SUFFIX)
            })
        } else {
            self.parsed.contains(name)
        }
    }

    /// Whether `name` is an original stream label or a metadata name.
    pub(crate) fn is_stream_or_metadata(&self, name: &str) -> bool {
        self.base.position(name).is_some() || self.metadata.contains(name)
    }

    /// Removes `name` from every category.
    pub(crate) fn delete(&mut self, name: &str) {
        self.parsed.remove(name);
        self.metadata.remove(name);
        if let Some(i) = self.base.position(name) {
            self.base_deleted[i] = true;
            self.any_base_deleted = true;
        }
    }

    pub(crate) fn err(&self) -> Option<&'static str> {
        self.err
    }

    pub(crate) fn has_err(&self) -> bool {
        self.err.is_some()
    }

    pub(crate) fn err_details(&self) -> Option<&str> {
        self.err_details.as_deref()
    }

    /// Sets the error and its details (replacing earlier ones, as Loki does).
    pub(crate) fn set_err(&mut self, err: &'static str, details: Option<&str>) {
        self.err = Some(err);
        match details {
            Some(d) => {
                let buf = self.err_details.get_or_insert_with(String::new);
                buf.clear();
                buf.push_str(d);
            }
            None => self.err_details = None,
        }
    }

    pub(crate) fn clear_err(&mut self) {
        self.err = None;
    }

    pub(crate) fn clear_err_details(&mut self) {
        self.err_details = None;
    }

    /// Calls `f` for every label of the result, each name once: stream labels not
    /// removed and not overridden, metadata not overridden by parsed labels, parsed
    /// labels, then the error labels (as parsed labels).
    pub(crate) fn for_each_effective<'s>(&'s self, mut f: impl FnMut(Category, &'s str, &'s str)) {
        for (i, (k, v)) in self.base.as_slice().iter().enumerate() {
            if self.base_deleted[i] || self.metadata.contains(k) || self.parsed.contains(k) {
                continue;
            }
            f(Category::Stream, k, v);
        }
        for (k, v) in self.metadata.iter() {
            if !self.parsed.contains(k) {
                f(Category::Metadata, k, v);
            }
        }
        for (k, v) in self.parsed.iter() {
            f(Category::Parsed, k, v);
        }
        if let Some(e) = self.err {
            f(Category::Parsed, ERROR_LABEL, e);
        }
        if let Some(d) = &self.err_details {
            f(Category::Parsed, ERROR_DETAILS_LABEL, d);
        }
    }

    /// Every current label with the error labels, sorted by name (the template's data).
    #[allow(dead_code)] // for templates; the template stub does not read labels yet
    pub(crate) fn sorted_with_errors(&self) -> Vec<(&str, &str)> {
        let mut out = Vec::with_capacity(self.base.len() + self.metadata.len() + self.parsed.len());
        self.for_each_effective(|_, k, v| out.push((k, v)));
        out.sort_unstable_by(|a, b| a.0.cmp(b.0));
        out
    }
}

/// Replaces what Prometheus does not allow in a label name, as Loki's parsers do: trims
/// spaces, prefixes a leading digit with `_`, and turns every rune other than an ASCII
/// letter, digit or `_` into one `_`. Writes into `out` (cleared first).
pub(crate) fn sanitize_label_key(key: &str, out: &mut String) {
    out.clear();
    if is_valid_label_key(key) {
        // The usual case, copied at once instead of rune by rune.
        out.push_str(key);
        return;
    }
    let key = key.trim();
    if key.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        out.push('_');
    }
    for c in key.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else {
            out.push('_');
        }
    }
}

/// Whether `key` is already a valid label name, which [`sanitize_label_key`] leaves as is.
#[inline]
pub(crate) fn is_valid_label_key(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && !b[0].is_ascii_digit()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// The labels of one processed line, in the shapes the API needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultLabels {
    /// Stream labels, metadata, parsed labels and the error labels after every stage:
    /// the stream key of a plain log query. Empty parsed values are kept.
    pub all: LabelSet,
    /// Categorize-labels `stream`: the original stream labels minus names that metadata or
    /// parsing also set, minus dropped ones.
    pub stream: LabelSet,
    /// Categorize-labels `structuredMetadata`, sorted by name.
    pub structured_metadata: Vec<(String, String)>,
    /// Categorize-labels `parsed` (errors included), sorted by name; empty values are kept.
    pub parsed: Vec<(String, String)>,
}

impl ResultLabels {
    pub(crate) fn stream_only(base: &LabelSet) -> ResultLabels {
        ResultLabels {
            all: base.clone(),
            stream: base.clone(),
            structured_metadata: Vec::new(),
            parsed: Vec::new(),
        }
    }

    fn from_line(labels: &LineLabels) -> ResultLabels {
        let mut stream_count = 0;
        let mut metadata = Vec::new();
        let mut parsed = Vec::new();
        labels.for_each_effective(|cat, k, v| match cat {
            Category::Stream => stream_count += 1,
            Category::Metadata => metadata.push((k.to_string(), v.to_string())),
            Category::Parsed => parsed.push((k.to_string(), v.to_string())),
        });
        metadata.sort_unstable();
        parsed.sort_unstable();
        // Most lines keep every stream label: share the stream's set then.
        let stream = if stream_count == labels.base.len() {
            labels.base.clone()
        } else {
            let mut pairs = Vec::with_capacity(stream_count);
            labels.for_each_effective(|cat, k, v| {
                if cat == Category::Stream {
                    pairs.push((k, v));
                }
            });
            LabelSet::from_pairs(pairs)
        };
        let all = if metadata.is_empty() && parsed.is_empty() {
            stream.clone()
        } else {
            // Parsed labels keep empty values: `| json x="missing"` makes `x=""`, and
            // Loki shows it in the stream key.
            let mut builder = LabelSet::empty().to_builder();
            labels.for_each_effective(|_, k, v| {
                builder.set(k.to_string(), v.to_string());
            });
            builder.build_keep_empty()
        };
        ResultLabels {
            all,
            stream,
            structured_metadata: metadata,
            parsed,
        }
    }

    /// Whether these are exactly the labels of `line` (same names, values, categories).
    fn matches(&self, line: &LineLabels) -> bool {
        let mut counts = [0usize; 3];
        let mut equal = true;
        line.for_each_effective(|cat, k, v| {
            if !equal {
                return;
            }
            counts[cat as usize] += 1;
            equal = match cat {
                Category::Stream => self.stream.get(k) == Some(v),
                Category::Metadata => sorted_get(&self.structured_metadata, k) == Some(v),
                Category::Parsed => sorted_get(&self.parsed, k) == Some(v),
            };
        });
        equal
            && counts[0] == self.stream.len()
            && counts[1] == self.structured_metadata.len()
            && counts[2] == self.parsed.len()
    }
}

fn sorted_get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .binary_search_by(|(k, _)| k.as_str().cmp(name))
        .ok()
        .map(|i| pairs[i].1.as_str())
}

/// An order-independent hash of one label: lines that set the same labels in a different
/// order still share one interned result.
pub(crate) fn pair_hash(cat: u64, name: &str, value: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write_u64(cat);
    h.write(name.as_bytes());
    h.write_u8(0xff);
    h.write(value.as_bytes());
    // Sums of plain Fx hashes would cancel out; finalise each pair first.
    mix64(h.finish())
}

/// Past this many distinct label sets per stream the cache starts over, so that a
/// high-cardinality parsed label cannot grow memory without bound.
const MAX_INTERNED: usize = 512;

/// Distinct [`ResultLabels`] of one stream, found by a hash of the line's labels.
#[derive(Debug, Default)]
pub(crate) struct ResultInterner {
    by_hash: FxHashMap<u64, Vec<usize>>,
    entries: Vec<ResultLabels>,
    /// Where a new set goes once the cache is full and mostly missing (unique label
    /// values such as timestamps): replaced each time, so memory stays bounded and
    /// allocations are freed in LIFO order.
    overflow: Option<ResultLabels>,
    hits: usize,
    misses: usize,
}

impl ResultInterner {
    /// The interned labels equal to `line`'s, adding them if new.
    pub(crate) fn intern(&mut self, line: &LineLabels) -> &ResultLabels {
        let mut hash = 0u64;
        line.for_each_effective(|cat, k, v| {
            hash = hash.wrapping_add(pair_hash(cat as u64, k, v));
        });
        if let Some(ids) = self.by_hash.get(&hash) {
            if let Some(&id) = ids.iter().find(|&&id| self.entries[id].matches(line)) {
                self.hits += 1;
                return &self.entries[id];
            }
        }
        self.misses += 1;
        if self.entries.len() >= MAX_INTERNED {
            if self.misses > self.hits {
                return self.overflow.insert(ResultLabels::from_line(line));
            }
            // The cache was useful but the label sets moved on: start over.
            self.entries.clear();
            self.by_hash.clear();
            self.hits = 0;
            self.misses = 0;
        }
        let id = self.entries.len();
        self.entries.push(ResultLabels::from_line(line));
        self.by_hash.entry(hash).or_default().push(id);
        &self.entries[id]
    }
}

/// Distinct output label sets of a sample extractor, found by a hash of their pairs.
#[derive(Debug, Default)]
pub(crate) struct LabelSetInterner {
    by_hash: FxHashMap<u64, Vec<usize>>,
    entries: Vec<LabelSet>,
}

impl LabelSetInterner {
    /// Interns the set made of the pairs `for_each` yields (each name at most once).
    /// Empty values are kept: a parsed `x=""` is part of a sample's series in Loki.
    pub(crate) fn intern(&mut self, for_each: impl Fn(&mut dyn FnMut(&str, &str))) -> &LabelSet {
        let mut hash = 0u64;
        let mut count = 0usize;
        for_each(&mut |k, v| {
            hash = hash.wrapping_add(pair_hash(0, k, v));
            count += 1;
        });
        if let Some(ids) = self.by_hash.get(&hash) {
            for &id in ids {
                let set = &self.entries[id];
                if set.len() != count {
                    continue;
                }
                let mut equal = true;
                for_each(&mut |k, v| {
                    if equal {
                        equal = set.get(k) == Some(v);
                    }
                });
                if equal {
                    return &self.entries[id];
                }
            }
        }
        if self.entries.len() >= MAX_INTERNED {
            self.entries.clear();
            self.by_hash.clear();
        }
        let mut builder = LabelSet::empty().to_builder();
        for_each(&mut |k, v| {
            builder.set(k.to_string(), v.to_string());
        });
        let set = builder.build_keep_empty();
        let id = self.entries.len();
        self.entries.push(set);
        self.by_hash.entry(hash).or_default().push(id);
        &self.entries[id]
    }
}

/// Output label sets of a `by (…)` grouping, found by a hash of the grouped values: no
/// per-pair hashing, and the check compares only the grouped names.
#[derive(Debug, Default)]
pub(crate) struct GroupInterner {
    by_hash: FxHashMap<u64, Vec<usize>>,
    entries: Vec<LabelSet>,
    empty: LabelSet,
}

impl GroupInterner {
    /// The set of `names` (distinct) with the values `labels` has for them; empty
    /// values are kept, as in [`LabelSetInterner::intern`].
    pub(crate) fn intern(&mut self, names: &[String], labels: &LineLabels) -> &LabelSet {
        if names.is_empty() {
            return &self.empty;
        }
        // Each value is looked up once, for the hash and the check.
        const INLINE: usize = 8;
        let mut inline: [Option<&str>; INLINE] = [None; INLINE];
        let spilled: Vec<Option<&str>>;
        let values: &[Option<&str>] = if names.len() <= INLINE {
            for (slot, n) in inline.iter_mut().zip(names) {
                *slot = labels.get(n);
            }
            &inline[..names.len()]
        } else {
            spilled = names.iter().map(|n| labels.get(n)).collect();
            &spilled
        };
        let mut h = FxHasher::default();
        for v in values {
            match v {
                Some(v) => {
                    h.write(v.as_bytes());
                    h.write_u8(0xff);
                }
                None => h.write_u8(0xfe),
            }
        }
        let hash = h.finish();
        let found = self.by_hash.get(&hash).and_then(|ids| {
            ids.iter().copied().find(|&id| {
                let set = &self.entries[id];
                names.iter().zip(values).all(|(n, v)| set.get(n) == *v)
            })
        });
        if let Some(id) = found {
            return &self.entries[id];
        }
        if self.entries.len() >= MAX_INTERNED {
            self.entries.clear();
            self.by_hash.clear();
        }
        let mut builder = LabelSet::empty().to_builder();
        for n in names {
            if let Some(v) = labels.get(n) {
                builder.set(n.clone(), v.to_string());
            }
        }
        let id = self.entries.len();
        self.entries.push(builder.build_keep_empty());
        self.by_hash.entry(hash).or_default().push(id);
        &self.entries[id]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_interner_keys_on_values_and_keeps_empty_ones() {
        let names = vec!["level".to_string(), "status".to_string()];
        let mut interner = GroupInterner::default();
        let mut l = LineLabels::new(stream());
        l.reset(&[]);
        l.set_from_parser("status", "500");
        let first = interner.intern(&names, &l).clone();
        assert_eq!(first.to_string(), r#"{level="info", status="500"}"#);
        l.reset(&[("trace_id", "t")]);
        l.set_from_parser("status", "500");
        assert!(std::ptr::eq(
            interner.intern(&names, &l).as_slice(),
            first.as_slice()
        ));
        l.reset(&[]);
        l.set_from_parser("status", "");
        assert_eq!(
            interner.intern(&names, &l).to_string(),
            r#"{level="info", status=""}"#
        );
        l.reset(&[]);
        assert_eq!(interner.intern(&names, &l).to_string(), r#"{level="info"}"#);
        assert_eq!(interner.intern(&[], &l).to_string(), "{}");
        assert_eq!(interner.entries.len(), 3);
    }

    fn stream() -> LabelSet {
        LabelSet::from_pairs([("app", "api"), ("level", "info"), ("pod", "p1")])
    }

    #[test]
    fn sanitize_keys_like_loki() {
        let mut out = String::new();
        for (input, want) in [
            ("a.b", "a_b"),
            ("a-b", "a_b"),
            ("9x", "_9x"),
            ("ключ", "____"),
            ("  spaced ", "spaced"),
            ("a:b", "a_b"),
            ("", ""),
            ("   ", ""),
        ] {
            sanitize_label_key(input, &mut out);
            assert_eq!(out, want, "{input:?}");
        }
    }

    #[test]
    fn metadata_clash_with_stream_goes_to_extracted() {
        let mut l = LineLabels::new(stream());
        l.reset(&[("pod", "meta-pod"), ("trace_id", "t1")]);
        assert_eq!(l.get("pod"), Some("p1"));
        assert_eq!(l.get("pod_extracted"), Some("meta-pod"));
        assert_eq!(l.get("trace_id"), Some("t1"));
    }

    #[test]
    fn three_way_clash_keeps_stream_and_parsed() {
        let mut l = LineLabels::new(stream());
        l.reset(&[("level", "meta")]);
        l.set_from_parser("level", "parsed");
        let mut interner = ResultInterner::default();
        let r = interner.intern(&l);
        assert_eq!(r.all.get("level"), Some("info"));
        assert_eq!(r.all.get("level_extracted"), Some("parsed"));
        assert!(r.structured_metadata.is_empty(), "metadata value is lost");
        assert_eq!(
            r.parsed,
            vec![("level_extracted".to_string(), "parsed".to_string())]
        );
    }

    #[test]
    fn parsers_first_wins() {
        let mut l = LineLabels::new(stream());
        l.reset(&[("trace_id", "t1")]);
        l.set_from_parser("status", "200");
        l.set_from_parser("status", "500");
        l.set_from_parser("trace_id", "x");
        l.set_from_parser("trace_id", "y");
        assert_eq!(l.get("status"), Some("200"));
        assert_eq!(l.get("trace_id"), Some("t1"));
        assert_eq!(l.get("trace_id_extracted"), Some("x"));
        assert!(l.parser_target_taken("trace_id"));
        assert!(l.parser_target_taken("status"));
        assert!(!l.parser_target_taken("other"));
    }

    #[test]
    fn interning_reuses_equal_sets_in_any_order() {
        let mut l = LineLabels::new(stream());
        let mut interner = ResultInterner::default();
        l.reset(&[]);
        l.set_from_parser("a", "1");
        l.set_from_parser("b", "2");
        let first = interner.intern(&l) as *const ResultLabels;
        l.reset(&[]);
        l.set_from_parser("b", "2");
        l.set_from_parser("a", "1");
        let second = interner.intern(&l) as *const ResultLabels;
        assert_eq!(first, second);
        l.reset(&[]);
        l.set_from_parser("a", "1");
        l.set_from_parser("b", "3");
        let third = interner.intern(&l);
        assert_eq!(third.all.get("b"), Some("3"));
        assert_eq!(interner.entries.len(), 2);
    }

    #[test]
    fn categories_split_and_deleted_stream_labels_vanish() {
        let mut l = LineLabels::new(stream());
        l.reset(&[("trace_id", "t")]);
        l.set_from_parser("status", "");
        l.delete("pod");
        l.set_err(ERR_JSON, Some("boom"));
        let mut interner = ResultInterner::default();
        let r = interner.intern(&l).clone();
        assert_eq!(r.stream.to_string(), r#"{app="api", level="info"}"#);
        assert_eq!(
            r.structured_metadata,
            vec![("trace_id".to_string(), "t".to_string())]
        );
        assert_eq!(
            r.parsed,
            vec![
                ("__error__".to_string(), "JSONParserErr".to_string()),
                ("__error_details__".to_string(), "boom".to_string()),
                ("status".to_string(), String::new()),
            ]
        );
        assert_eq!(
            r.all.to_string(),
            r#"{__error__="JSONParserErr", __error_details__="boom", app="api", level="info", status="", trace_id="t"}"#
        );
        // The next line starts clean.
        l.reset(&[]);
        assert!(l.is_plain_stream());
        assert_eq!(l.get("pod"), Some("p1"));
    }
}
