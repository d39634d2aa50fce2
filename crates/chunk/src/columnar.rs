//! Columnar line text for blocks whose lines share a few shapes (JSON objects, logfmt).
//!
//! Each line is split, in one pass and without a JSON parser, into literal text and values:
//! a value is the content of a quoted string that follows `:` or `=`, or a bare token
//! (`[A-Za-z0-9._+\-/:]+`) that follows them. The literal text with a mark where each value
//! was is the line's **template**; a block stores each template once and each value slot as
//! its own column. Any split rebuilds the line byte for byte (the split only decides how well
//! it compresses), so key order, spacing, escapes and odd JSON need no special care; lines
//! that do not split (an unterminated string, too many values, too many templates) are kept
//! whole as exceptions.
//!
//! Columns are coded by what their values turn out to be:
//! - integers (canonical decimal `i64`): frame of reference, deltas, or a dictionary, all
//!   bit-packed at the smallest width;
//! - strings: fixed-width lowercase hex packed to bytes, a dictionary (≤ 256 values),
//!   `prefix | decimal number | suffix` as three columns, or raw bytes with their lengths.
//!
//! Bit-packed values are close to their entropy, so zstd gets little more out of them; what
//! it still compresses (raw strings, timestamps) sits beside them in the same frame.
//!
//! Section layout (all counts are implied by the block's entry count and the template ids):
//! ```text
//! lines     uvarint total bytes of all lines
//!           uvarint template count T, per template: uvarint length, literal bytes with
//!             0xff where a value goes (0xff never occurs in UTF-8)
//!           int column: template id per entry, T for an exception (kept whole in the text)
//!           int column: length of each exception line
//!           per template, per slot: the slot's column over the template's lines
//! metadata  int column: pair count per entry; string columns: every name, every value
//! column    u8 mode, then per mode (see the `MODE_*` constants)
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::chunk::BlockParts;
use crate::codec::{put_uvarint, zigzag, Cursor};
use crate::{Error, Result};

const WHAT: &str = "columnar block";
/// Marks a value's place in a template.
const SLOT: u8 = 0xff;
const MAX_TEMPLATES: usize = 256;
const MAX_SLOTS: usize = 128;
const MAX_TEMPLATE_LEN: usize = 4096;
/// Longer lines are kept whole: their template would be as unique as they are.
const MAX_SPLIT_LINE: usize = 16 << 10;
const MAX_DICT: usize = 256;
/// Shortest value packed as hex; shorter ones are better off in a dictionary.
const MIN_HEX_LEN: usize = 8;
/// Digits of the largest decimal that certainly fits in an `i64`.
const MAX_DIGITS: usize = 18;

// Int columns.
const MODE_FOR: u8 = 0; // zigzag varint base, u8 width, packed (value - base)
const MODE_DELTA: u8 = 1; // zigzag first, zigzag base delta, u8 width, packed (delta - base)
const MODE_INT_DICT: u8 = 2; // uvarint d, d zigzag varints, u8 width, packed codes
                             // String columns.
const MODE_RAW: u8 = 3; // int column of lengths, uvarint total, bytes
const MODE_DICT: u8 = 4; // uvarint d, d × (uvarint len, bytes), u8 width, packed codes
const MODE_HEX: u8 = 5; // uvarint bytes per value, bytes (printed as lowercase hex)
const MODE_NUM: u8 = 6; // string column of prefixes, int column of numbers, string column of suffixes

/// Largest decoded text a block may claim (the raw block cap: a row-wise block of the same
/// lines could not be larger).
pub(crate) const MAX_TEXT: usize = crate::chunk::MAX_BLOCK_RAW_LEN;

// ---------------------------------------------------------------------------------------------
// Encoding

/// A line split into its template and value spans.
#[derive(Default)]
struct Splitter {
    key: Vec<u8>,
    spans: Vec<(u32, u32)>,
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-' | b'/' | b':')
}

impl Splitter {
    /// Splits `line` (at offset `base` of the block text); false if it must be kept whole.
    fn split(&mut self, line: &[u8], base: usize) -> bool {
        self.key.clear();
        self.spans.clear();
        if line.len() > MAX_SPLIT_LINE {
            return false;
        }
        let n = line.len();
        let mut last = 0u8; // last non-space byte of literal text
        let mut i = 0;
        while i < n {
            let b = line[i];
            let value_here = last == b':' || last == b'=';
            if b == b'"' {
                let mut j = i + 1;
                let close = loop {
                    match memchr::memchr2(b'"', b'\\', &line[j.min(n)..]) {
                        None => return false,
                        Some(k) if line[j + k] == b'\\' => j += k + 2,
                        Some(k) => break j + k,
                    }
                };
                if value_here {
                    self.key.extend_from_slice(&[b'"', SLOT, b'"']);
                    self.spans
                        .push(((base + i + 1) as u32, (close - i - 1) as u32));
                } else {
                    self.key.extend_from_slice(&line[i..=close]);
                }
                last = b'"';
                i = close + 1;
            } else if value_here && is_token_byte(b) {
                let start = i;
                while i < n && is_token_byte(line[i]) {
                    i += 1;
                }
                self.key.push(SLOT);
                self.spans.push(((base + start) as u32, (i - start) as u32));
                last = line[i - 1];
            } else {
                self.key.push(b);
                if !b.is_ascii_whitespace() {
                    last = b;
                }
                i += 1;
            }
            if self.spans.len() > MAX_SLOTS {
                return false;
            }
        }
        self.key.len() <= MAX_TEMPLATE_LEN
    }
}

/// FxHash: the keys are our own bytes, so a fast non-keyed hash is fine.
#[derive(Default, Clone, Copy)]
struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap_or_default()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }

    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Fx {
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// Up to this many distinct values a dictionary is searched linearly: faster than hashing.
const SMALL_DICT: usize = 8;
/// Past this many distinct values, a dictionary gives up once most values are new: such a
/// column (ids, counters) is better split or packed, and hashing it is wasted work.
const DICT_SAMPLE: usize = 64;

/// Codes values in order of first appearance, giving up past [`MAX_DICT`] distinct ones.
struct Dict<K> {
    values: Vec<K>,
    index: FxMap<K, u32>,
}

impl<K: Copy + Eq + std::hash::Hash> Dict<K> {
    fn new() -> Self {
        Dict {
            values: Vec::new(),
            index: FxMap::default(),
        }
    }

    /// The code of the value at position `i` of its column, or `None` once there are too
    /// many distinct values.
    #[inline]
    fn code(&mut self, i: usize, v: K) -> Option<u32> {
        if self.values.len() <= SMALL_DICT {
            if let Some(p) = self.values.iter().position(|e| *e == v) {
                return Some(p as u32);
            }
        } else if let Some(&c) = self.index.get(&v) {
            return Some(c);
        }
        let code = self.values.len() as u32;
        self.values.push(v);
        let distinct = self.values.len();
        if distinct > MAX_DICT || (distinct > DICT_SAMPLE && distinct * 2 > i + 1) {
            return None;
        }
        if self.values.len() > SMALL_DICT {
            if self.index.is_empty() {
                self.index
                    .extend(self.values.iter().enumerate().map(|(i, &v)| (v, i as u32)));
            } else {
                self.index.insert(v, code);
            }
        }
        Some(code)
    }

    /// The codes of a whole column, or `None` once there are too many distinct values.
    fn code_all(&mut self, column: impl ExactSizeIterator<Item = K>) -> Option<Vec<u32>> {
        let mut codes = Vec::with_capacity(column.len());
        for (i, v) in column.enumerate() {
            codes.push(self.code(i, v)?);
        }
        Some(codes)
    }
}

struct Template {
    key: Vec<u8>,
    /// The literal pieces around the slots, as (start, end) in `key`.
    pieces: Vec<(usize, usize)>,
    /// Per slot: whether it is a quoted string (else a bare token).
    quoted: Vec<bool>,
    columns: Vec<Vec<(u32, u32)>>,
}

impl Template {
    fn new(key: &[u8]) -> Self {
        let mut pieces = Vec::new();
        let mut at = 0;
        for (i, &b) in key.iter().enumerate() {
            if b == SLOT {
                pieces.push((at, i));
                at = i + 1;
            }
        }
        pieces.push((at, key.len()));
        let quoted = pieces
            .windows(2)
            .map(|w| key[..w[0].1].ends_with(b"\"") && key[w[1].0..].starts_with(b"\""))
            .collect();
        Template {
            key: key.to_vec(),
            columns: vec![Vec::new(); pieces.len() - 1],
            pieces,
            quoted,
        }
    }

    /// Matches `line` against this template, filling `spans` with its values: much cheaper
    /// than splitting and hashing, and most lines have the previous line's template. Any
    /// match rebuilds the line exactly, whether or not `Splitter` would split it the same way.
    fn matches(&self, line: &[u8], base: usize, spans: &mut Vec<(u32, u32)>) -> bool {
        spans.clear();
        let piece = |k: usize| &self.key[self.pieces[k].0..self.pieces[k].1];
        let Some(mut pos) = line.starts_with(piece(0)).then(|| piece(0).len()) else {
            return false;
        };
        for (k, &quoted) in self.quoted.iter().enumerate() {
            let start = pos;
            if quoted {
                loop {
                    match memchr::memchr2(b'"', b'\\', line.get(pos..).unwrap_or_default()) {
                        None => return false,
                        Some(i) if line[pos + i] == b'\\' => pos += i + 2,
                        Some(i) => {
                            pos += i;
                            break;
                        }
                    }
                }
            } else {
                while pos < line.len() && is_token_byte(line[pos]) {
                    pos += 1;
                }
                if pos == start {
                    return false;
                }
            }
            spans.push(((base + start) as u32, (pos - start) as u32));
            let next = piece(k + 1);
            if !line[pos..].starts_with(next) {
                return false;
            }
            pos += next.len();
        }
        pos == line.len()
    }
}

/// The line section of a columnar block and the lines it keeps whole.
pub(crate) struct Lines {
    pub(crate) section: Vec<u8>,
    pub(crate) exceptions: Vec<u8>,
}

/// Splits the block's lines (`text`, ending at `ends`) into templates and columns, or says
/// the block is better stored row-wise (mostly unsplittable or all-different lines).
pub(crate) fn encode_lines(text: &[u8], ends: &[u32]) -> Option<Lines> {
    let n = ends.len();
    let mut splitter = Splitter::default();
    let mut ids: FxMap<Vec<u8>, u32> = FxMap::default();
    let mut templates: Vec<Template> = Vec::new();
    let mut line_templates: Vec<i64> = Vec::with_capacity(n);
    let mut exceptions = Vec::new();
    let mut exception_lens = Vec::new();
    let mut start = 0usize;
    let mut last = None;
    for (i, &end) in ends.iter().enumerate() {
        let end = end as usize;
        let line = &text[start..end];
        let mut id = None;
        if line.len() > MAX_SPLIT_LINE {
        } else if last
            .is_some_and(|t: u32| templates[t as usize].matches(line, start, &mut splitter.spans))
        {
            id = last;
        } else if splitter.split(line, start) {
            id = match ids.get(splitter.key.as_slice()) {
                Some(&t) => Some(t),
                None if templates.len() < MAX_TEMPLATES => {
                    let t = templates.len() as u32;
                    ids.insert(splitter.key.clone(), t);
                    templates.push(Template::new(&splitter.key));
                    Some(t)
                }
                None => None,
            };
        }
        if id.is_some() {
            last = id;
        }
        match id {
            Some(t) => {
                let template = &mut templates[t as usize];
                for (column, span) in template.columns.iter_mut().zip(&splitter.spans) {
                    column.push(*span);
                }
                line_templates.push(i64::from(t));
            }
            None => {
                line_templates.push(-1);
                exceptions.extend_from_slice(line);
                exception_lens.push(line.len() as i64);
            }
        }
        // Lines of (almost) all different shapes: templates would cost more than they save.
        if i >= 63 && templates.len() * 4 > i + 1 {
            return None;
        }
        start = end;
    }
    if exception_lens.len() * 2 > n {
        return None;
    }
    let t = templates.len() as i64;
    for id in &mut line_templates {
        if *id < 0 {
            *id = t;
        }
    }
    let mut section = Vec::with_capacity(n * 32);
    put_uvarint(&mut section, text.len() as u64);
    put_uvarint(&mut section, templates.len() as u64);
    for template in &templates {
        put_uvarint(&mut section, template.key.len() as u64);
        section.extend_from_slice(&template.key);
    }
    put_int_column(&mut section, &line_templates);
    put_int_column(&mut section, &exception_lens);
    let mut ints = Vec::new();
    for template in &templates {
        for column in &template.columns {
            put_value_column(&mut section, text, column, &mut ints);
        }
    }
    Some(Lines {
        section,
        exceptions,
    })
}

/// Structured metadata as columns: the pair count per entry, then every name and every value.
/// `pairs` holds, per entry, its pairs as (name, value) spans of `text`.
pub(crate) fn encode_metadata(
    out: &mut Vec<u8>,
    text: &[u8],
    counts: &[i64],
    names: &[(u32, u32)],
    values: &[(u32, u32)],
) {
    put_int_column(out, counts);
    put_str_column(out, text, names, false);
    put_str_column(out, text, values, false);
}

/// A slot's column: integers if every value is a canonical decimal, else strings.
fn put_value_column(out: &mut Vec<u8>, text: &[u8], spans: &[(u32, u32)], ints: &mut Vec<i64>) {
    ints.clear();
    for &(s, l) in spans {
        match parse_int(&text[s as usize..(s + l) as usize]) {
            Some(v) => ints.push(v),
            None => return put_str_column(out, text, spans, true),
        }
    }
    put_int_column(out, ints);
}

/// `-?(0|[1-9][0-9]*)` with at most 18 digits: the spelling `i64` formatting gives back.
fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let v = parse_digits(digits)?;
    if neg && v == 0 {
        return None;
    }
    Some(if neg { -(v as i64) } else { v as i64 })
}

/// Canonical unsigned decimal of at most 18 digits.
fn parse_digits(d: &[u8]) -> Option<u64> {
    if d.is_empty() || d.len() > MAX_DIGITS || (d[0] == b'0' && d.len() > 1) {
        return None;
    }
    let mut v = 0u64;
    for &b in d {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    Some(v)
}

fn width(range: u64) -> u32 {
    64 - range.leading_zeros()
}

fn put_int_column(out: &mut Vec<u8>, vals: &[i64]) {
    let n = vals.len();
    let (min, max) = vals
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let (min, max) = if n == 0 { (0, 0) } else { (min, max) };
    let w_for = width(max.wrapping_sub(min) as u64);
    let mut best = (n as u64 * u64::from(w_for), MODE_FOR);
    let (mut dmin, mut dmax) = (i64::MAX, i64::MIN);
    for pair in vals.windows(2) {
        let d = pair[1].wrapping_sub(pair[0]);
        dmin = dmin.min(d);
        dmax = dmax.max(d);
    }
    let w_delta = if n >= 2 {
        width(dmax.wrapping_sub(dmin) as u64)
    } else {
        64
    };
    if n >= 2 {
        let cost = (n as u64 - 1) * u64::from(w_delta) + 64;
        if cost < best.0 {
            best = (cost, MODE_DELTA);
        }
    }
    let mut dict = Dict::new();
    let mut codes = Vec::new();
    if w_for.min(w_delta) > 2 && n >= 16 {
        if let Some(all) = dict.code_all(vals.iter().copied()) {
            codes = all;
            let w = width(dict.values.len() as u64 - 1);
            let cost = n as u64 * u64::from(w) + dict.values.len() as u64 * 24;
            if cost < best.0 {
                best = (cost, MODE_INT_DICT);
            }
        }
    }
    out.push(best.1);
    match best.1 {
        MODE_FOR => {
            put_uvarint(out, zigzag(min));
            out.push(w_for as u8);
            pack(out, w_for, vals.iter().map(|&v| v.wrapping_sub(min) as u64));
        }
        MODE_DELTA => {
            put_uvarint(out, zigzag(vals[0]));
            put_uvarint(out, zigzag(dmin));
            out.push(w_delta as u8);
            let deltas = vals
                .windows(2)
                .map(|p| p[1].wrapping_sub(p[0]).wrapping_sub(dmin) as u64);
            pack(out, w_delta, deltas);
        }
        _ => {
            put_uvarint(out, dict.values.len() as u64);
            for &v in &dict.values {
                put_uvarint(out, zigzag(v));
            }
            let w = width(dict.values.len() as u64 - 1);
            out.push(w as u8);
            pack(out, w, codes.iter().map(|&c| u64::from(c)));
        }
    }
}

/// A string column; `top` allows the hex and number splits (not inside a number split).
fn put_str_column(out: &mut Vec<u8>, text: &[u8], spans: &[(u32, u32)], top: bool) {
    let value = |&(s, l): &(u32, u32)| &text[s as usize..(s + l) as usize];
    if top && is_hex_column(text, spans) {
        out.push(MODE_HEX);
        let len = spans[0].1 as usize;
        put_uvarint(out, (len / 2) as u64);
        out.reserve(spans.len() * len / 2);
        for span in spans {
            for pair in value(span).chunks_exact(2) {
                out.push((hex_value(pair[0]) << 4) | hex_value(pair[1]));
            }
        }
        return;
    }
    let mut dict = Dict::new();
    if let Some(codes) = dict.code_all(spans.iter().map(value)) {
        let entries = &dict.values;
        out.push(MODE_DICT);
        put_uvarint(out, entries.len() as u64);
        for e in entries {
            put_uvarint(out, e.len() as u64);
            out.extend_from_slice(e);
        }
        let w = width((entries.len() as u64).saturating_sub(1));
        out.push(w as u8);
        pack(out, w, codes.iter().map(|&c| u64::from(c)));
        return;
    }
    if top {
        if let Some((prefixes, numbers, suffixes)) = split_numbers(text, spans) {
            out.push(MODE_NUM);
            put_str_column(out, text, &prefixes, false);
            put_int_column(out, &numbers);
            put_str_column(out, text, &suffixes, false);
            return;
        }
    }
    out.push(MODE_RAW);
    let lens: Vec<i64> = spans.iter().map(|&(_, l)| i64::from(l)).collect();
    put_int_column(out, &lens);
    let total: usize = spans.iter().map(|&(_, l)| l as usize).sum();
    put_uvarint(out, total as u64);
    out.reserve(total);
    for span in spans {
        out.extend_from_slice(value(span));
    }
}

fn is_hex_column(text: &[u8], spans: &[(u32, u32)]) -> bool {
    let Some(&(_, len)) = spans.first() else {
        return false;
    };
    let len = len as usize;
    len >= MIN_HEX_LEN
        && len.is_multiple_of(2)
        && spans.iter().all(|&(s, l)| {
            l as usize == len
                && text[s as usize..s as usize + len]
                    .iter()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
}

fn hex_value(b: u8) -> u8 {
    if b <= b'9' {
        b - b'0'
    } else {
        b - b'a' + 10
    }
}

type NumberSplit = (Vec<(u32, u32)>, Vec<i64>, Vec<(u32, u32)>);

/// Splits every value around its last run of digits, if each has one in canonical form.
fn split_numbers(text: &[u8], spans: &[(u32, u32)]) -> Option<NumberSplit> {
    let mut prefixes = Vec::with_capacity(spans.len());
    let mut numbers = Vec::with_capacity(spans.len());
    let mut suffixes = Vec::with_capacity(spans.len());
    for &(s, l) in spans {
        let v = &text[s as usize..(s + l) as usize];
        let end = v.iter().rposition(u8::is_ascii_digit)? + 1;
        let begin = v[..end]
            .iter()
            .rposition(|b| !b.is_ascii_digit())
            .map_or(0, |p| p + 1);
        numbers.push(parse_digits(&v[begin..end])? as i64);
        prefixes.push((s, begin as u32));
        suffixes.push((s + end as u32, l - end as u32));
    }
    Some((prefixes, numbers, suffixes))
}

/// Appends `vals` (each below 2^w) as a little-endian bit stream of ⌈n·w/8⌉ bytes.
fn pack(out: &mut Vec<u8>, w: u32, vals: impl Iterator<Item = u64>) {
    if w == 0 {
        return;
    }
    let mut acc = 0u128;
    let mut bits = 0u32;
    for v in vals {
        acc |= u128::from(v) << bits;
        bits += w;
        if bits >= 64 {
            out.extend_from_slice(&(acc as u64).to_le_bytes());
            acc >>= 64;
            bits -= 64;
        }
    }
    out.extend_from_slice(&(acc as u64).to_le_bytes()[..bits.div_ceil(8) as usize]);
}

// ---------------------------------------------------------------------------------------------
// Decoding
//
// Lines are rebuilt a batch at a time, a column at a time. Each column turns the batch's values
// into spans (start, length) of one arena that holds their text: templates and dictionaries
// are copied there once per block, raw strings once per block, integers and hex formatted there
// per batch. A template's literal text, with its constant columns folded in, sits between its
// value spans; each line is then written by copying its literals and its row of value spans
// in turn. So each column kind has its own tight loop, and the copy loop has no per-value
// dispatch or error check: every count and length is checked before any text is written.

/// Lines (or metadata pairs) per batch: bounds the spans and the per-batch arena, whatever a
/// block claims.
const BATCH: usize = 1024;
/// Room after the arena's text and after the text being written, so that every copy moves a
/// fixed 16 bytes (a constant-size copy is two moves, a variable one a libc call).
const SLACK: usize = 16;
/// Room one integer takes in the arena while it is printed (the longest, `i64::MIN`, has 20
/// characters; the digits are stored eight at a time).
const INT_ROOM: usize = 24;
/// Scratch a thread keeps between blocks; more (hostile or odd blocks) is freed.
const SCRATCH_KEEP: usize = 2 << 20;
/// The place of a value part that has none: it is constant, folded into the literal text.
const FOLDED: usize = usize::MAX;

/// A string in the arena: start, length.
type Span = (u32, u32);

/// A bit-packed array of `n` values of `w` bits.
#[derive(Clone, Copy)]
struct Bits<'a> {
    data: &'a [u8],
    w: u32,
    mask: u64,
}

impl<'a> Bits<'a> {
    fn read(c: &mut Cursor<'a>, n: usize) -> Result<Self> {
        let w = u32::from(c.u8()?);
        if w > 64 {
            return Err(Error::corrupt(WHAT, format!("bit width {w}")));
        }
        let bytes = n
            .checked_mul(w as usize)
            .map(|b| b.div_ceil(8))
            .ok_or_else(|| Error::corrupt(WHAT, "bit-packed column too long"))?;
        Ok(Bits {
            data: c.bytes(bytes)?,
            w,
            mask: if w == 64 { u64::MAX } else { (1u64 << w) - 1 },
        })
    }

    /// Value `i`, through a zero-padded copy near the end of the data.
    #[inline(never)]
    fn get(&self, i: usize) -> u64 {
        if self.w == 0 {
            return 0;
        }
        let bit = i * self.w as usize;
        let (byte, shift) = (bit / 8, bit % 8);
        let word = match self.data.get(byte..byte + 16) {
            Some(b) => u128::from_le_bytes(b.try_into().unwrap_or_default()),
            None => {
                let mut b = [0u8; 16];
                let rest = self.data.get(byte..).unwrap_or_default();
                b[..rest.len().min(16)].copy_from_slice(&rest[..rest.len().min(16)]);
                u128::from_le_bytes(b)
            }
        };
        (word >> shift) as u64 & self.mask
    }

    /// Appends values `start..start + count` (within the `n` read) to `out`, as bit patterns.
    #[inline(always)]
    fn unpack(&self, start: usize, count: usize, out: &mut Vec<i64>) {
        let w = self.w as usize;
        if w == 0 {
            out.resize(out.len() + count, 0);
            return;
        }
        // A value of at most 56 bits lies within the 8 bytes from its first byte: one load
        // each while 8 bytes remain.
        let fast_end = match self.data.len().checked_sub(8) {
            Some(last) if w <= 56 => last * 8 / w + 1,
            _ => 0,
        };
        let end = start + count;
        let mid = fast_end.clamp(start, end);
        let (data, mask) = (self.data, self.mask);
        out.extend((start..mid).map(|i| {
            let bit = i * w;
            let at = bit / 8;
            let word = u64::from_le_bytes(data[at..at + 8].try_into().unwrap_or_default());
            ((word >> (bit % 8)) & mask) as i64
        }));
        if mid == end {
            return;
        }
        if w > 56 {
            out.extend((mid..end).map(|i| self.get(i) as i64));
            return;
        }
        // The rest start in the last 8 bytes: read them from a zero-padded copy.
        let tail = data.len().saturating_sub(8);
        let mut padded = [0u8; 16];
        padded[..data.len() - tail].copy_from_slice(&data[tail..]);
        out.extend((mid..end).map(|i| {
            let bit = i * w;
            let at = bit / 8 - tail;
            let word = u64::from_le_bytes(padded[at..at + 8].try_into().unwrap_or_default());
            ((word >> (bit % 8)) & mask) as i64
        }));
    }
}

enum IntKind<'a> {
    For {
        base: i64,
        bits: Bits<'a>,
    },
    /// `prev` is the last value read; before the first, the first minus `base`.
    Delta {
        prev: i64,
        base: i64,
        bits: Bits<'a>,
    },
    Dict {
        values: Vec<i64>,
        bits: Bits<'a>,
    },
}

/// Reads an int column's `n` values in order, a run at a time.
struct Ints<'a> {
    kind: IntKind<'a>,
    i: usize,
    n: usize,
}

impl<'a> Ints<'a> {
    fn read(c: &mut Cursor<'a>, n: usize) -> Result<Self> {
        let kind = match c.u8()? {
            MODE_FOR => {
                let base = c.ivarint()?;
                IntKind::For {
                    base,
                    bits: Bits::read(c, n)?,
                }
            }
            MODE_DELTA => {
                let first = c.ivarint()?;
                let base = c.ivarint()?;
                IntKind::Delta {
                    prev: first.wrapping_sub(base),
                    base,
                    bits: Bits::read(c, n.saturating_sub(1))?,
                }
            }
            MODE_INT_DICT => {
                let d = c.uvarint_len(MAX_DICT)?;
                let values = (0..d).map(|_| c.ivarint()).collect::<Result<Vec<_>>>()?;
                let bits = Bits::read(c, n)?;
                if d == 0 && n > 0 {
                    return Err(Error::corrupt(WHAT, "empty dictionary"));
                }
                IntKind::Dict { values, bits }
            }
            m => return Err(Error::corrupt(WHAT, format!("int column mode {m}"))),
        };
        Ok(Ints { kind, i: 0, n })
    }

    /// Appends the next `count` values to `out`.
    fn take(&mut self, count: usize, out: &mut Vec<i64>) -> Result<()> {
        if count > self.n - self.i {
            return Err(Error::corrupt(WHAT, "int column too short"));
        }
        let start = self.i;
        self.i += count;
        let at = out.len();
        match &mut self.kind {
            IntKind::For { base, bits } => {
                bits.unpack(start, count, out);
                for v in &mut out[at..] {
                    *v = base.wrapping_add(*v);
                }
            }
            IntKind::Delta { prev, base, bits } => {
                if count > 0 {
                    if start == 0 {
                        // The first value has no delta: its packed slot is skipped.
                        out.push(0);
                        bits.unpack(0, count - 1, out);
                    } else {
                        bits.unpack(start - 1, count, out);
                    }
                }
                let base = *base;
                let mut p = *prev;
                for v in &mut out[at..] {
                    p = p.wrapping_add(base.wrapping_add(*v));
                    *v = p;
                }
                *prev = p;
            }
            IntKind::Dict { values, bits } => {
                bits.unpack(start, count, out);
                // Non-empty whenever there are values (checked on reading).
                let last = values.len().saturating_sub(1);
                let mut bad = false;
                for v in &mut out[at..] {
                    let code = *v as u64;
                    bad |= code > last as u64;
                    *v = values[(code as usize).min(last)];
                }
                if bad {
                    return Err(Error::corrupt(WHAT, "dictionary code out of range"));
                }
            }
        }
        Ok(())
    }
}

/// Where a block's value text lives while it is rebuilt.
#[derive(Default)]
struct Arena {
    /// The text is `bytes[..len]`; at least [`SLACK`] bytes of room (zeroed, or left from
    /// earlier text) follow it. Kept from block to block, so room is zeroed once.
    bytes: Vec<u8>,
    len: usize,
    /// Dictionary entries of every column, as spans of the text.
    table: Vec<Span>,
    /// Most text a section may put here before its batches (see `Arena::reset`).
    limit: usize,
}

impl Arena {
    /// Empties the arena for a section of `section_len` bytes.
    fn reset(&mut self, section_len: usize) {
        self.len = 0;
        self.table.clear();
        // What a section copies here (templates, dictionaries, raw strings) lies in its own
        // bytes, and a valid block's integer dictionaries print no more than its text.
        self.limit = section_len.saturating_add(MAX_TEXT);
    }

    fn check(&self) -> Result<()> {
        if self.len > self.limit {
            return Err(Error::TooLarge {
                what: "decoded block columns",
                len: self.len as u64,
                limit: self.limit as u64,
            });
        }
        Ok(())
    }

    /// `n` bytes of room at the end of the text, with [`SLACK`] more after them.
    #[inline]
    fn room(&mut self, n: usize) -> &mut [u8] {
        let need = self.len + n + SLACK;
        if self.bytes.len() < need {
            self.bytes.resize(need.max(2 * self.bytes.len()), 0);
        }
        &mut self.bytes[self.len..self.len + n]
    }

    /// Appends `s`; returns its span (below 4 GiB: `limit` is, and a batch adds a few MiB).
    fn push(&mut self, s: &[u8]) -> Span {
        let at = self.len;
        self.room(s.len()).copy_from_slice(s);
        self.len += s.len();
        (at as u32, s.len() as u32)
    }

    /// Appends a copy of the text at `span`.
    fn push_span(&mut self, (start, len): Span) {
        let (start, len) = (start as usize, len as usize);
        self.room(len);
        self.bytes.copy_within(start..start + len, self.len);
        self.len += len;
    }
}

/// A column whose values are written out as text, other than hex and number splits.
enum Leaf<'a> {
    Int(Ints<'a>),
    /// Entries `first..first + d` of the arena's table.
    Dict {
        first: usize,
        d: usize,
        bits: Bits<'a>,
        i: usize,
        n: usize,
    },
    /// Consecutive strings in the arena, from `pos` up to `end`.
    Raw {
        lens: Ints<'a>,
        pos: usize,
        end: usize,
    },
}

impl<'a> Leaf<'a> {
    /// Reads a leaf of `n` values, copying its strings into the arena (`arena` `None`: only
    /// moves past it).
    fn read(c: &mut Cursor<'a>, n: usize, mut arena: Option<&mut Arena>) -> Result<Self> {
        let mode = c.peek_u8()?;
        if mode == MODE_FOR || mode == MODE_DELTA || (mode == MODE_INT_DICT && arena.is_none()) {
            return Ok(Leaf::Int(Ints::read(c, n)?));
        }
        c.u8()?;
        match mode {
            MODE_INT_DICT | MODE_DICT => {
                let d = c.uvarint_len(MAX_DICT)?;
                let first = arena.as_ref().map_or(0, |a| a.table.len());
                for _ in 0..d {
                    if mode == MODE_INT_DICT {
                        let v = c.ivarint()?;
                        if let Some(a) = arena.as_deref_mut() {
                            // Printed once here, copied for every value.
                            let at = a.len;
                            let len = put_int(a.room(INT_ROOM), v);
                            a.len += len;
                            a.table.push((at as u32, len as u32));
                        }
                    } else {
                        let len = c.uvarint_len(c.remaining())?;
                        let s = c.bytes(len)?;
                        if let Some(a) = arena.as_deref_mut() {
                            let span = a.push(s);
                            a.table.push(span);
                        }
                    }
                }
                let bits = Bits::read(c, n)?;
                if d == 0 && n > 0 {
                    return Err(Error::corrupt(WHAT, "empty dictionary"));
                }
                if let Some(a) = arena {
                    a.check()?;
                }
                Ok(Leaf::Dict {
                    first,
                    d,
                    bits,
                    i: 0,
                    n,
                })
            }
            MODE_RAW => {
                let lens = Ints::read(c, n)?;
                let total = c.uvarint_len(c.remaining())?;
                let data = c.bytes(total)?;
                let (pos, end) = match arena {
                    Some(a) => {
                        let (pos, len) = a.push(data);
                        a.check()?;
                        (pos as usize, (pos + len) as usize)
                    }
                    None => (0, 0),
                };
                Ok(Leaf::Raw { lens, pos, end })
            }
            m => Err(Error::corrupt(WHAT, format!("column mode {m}"))),
        }
    }

    /// Every value, if all are the same: a dictionary of width 0.
    fn constant(&self, table: &[Span]) -> Option<Span> {
        match self {
            Leaf::Dict { first, d, bits, .. } if *d > 0 && bits.w == 0 => {
                table.get(*first).copied()
            }
            _ => None,
        }
    }

    /// Writes the spans of the next `count` values to `out[k * stride + at]` for the k-th
    /// (`ints`: scratch); returns their total length. Does nothing for a folded constant.
    #[inline(always)]
    fn emit(
        &mut self,
        count: usize,
        arena: &mut Arena,
        ints: &mut Vec<i64>,
        out: &mut [Span],
        (stride, at): (usize, usize),
    ) -> Result<u64> {
        if count == 0 || at == FOLDED {
            return Ok(0);
        }
        let out = out[at..].iter_mut().step_by(stride);
        let mut total = 0u64;
        ints.clear();
        match self {
            Leaf::Int(column) => {
                column.take(count, ints)?;
                let base = arena.len;
                let room = arena.room(count * INT_ROOM);
                // Each at a fixed place: packed, each place would wait for the length before.
                for ((o, &v), (k, dst)) in out
                    .zip(ints.iter())
                    .zip(room.chunks_exact_mut(INT_ROOM).enumerate())
                {
                    let len = put_int(dst, v);
                    *o = ((base + k * INT_ROOM) as u32, len as u32);
                    total += len as u64;
                }
                arena.len += count * INT_ROOM;
            }
            Leaf::Dict {
                first,
                d,
                bits,
                i,
                n,
            } => {
                if count > *n - *i {
                    return Err(Error::corrupt(WHAT, "dictionary column too short"));
                }
                bits.unpack(*i, count, ints);
                *i += count;
                // `d` > 0 here: reading refused an empty dictionary with values.
                let table = &arena.table[*first..*first + *d];
                let last = *d - 1;
                let mut bad = false;
                for (o, &code) in out.zip(ints.iter()) {
                    let code = code as u64;
                    bad |= code > last as u64;
                    let span = table[(code as usize).min(last)];
                    *o = span;
                    total += u64::from(span.1);
                }
                if bad {
                    return Err(Error::corrupt(WHAT, "dictionary code out of range"));
                }
            }
            Leaf::Raw { lens, pos, end } => {
                lens.take(count, ints)?;
                let mut p = *pos;
                for (o, &len) in out.zip(ints.iter()) {
                    let len = match usize::try_from(len) {
                        Ok(len) if len <= *end - p => len,
                        _ => return Err(Error::corrupt(WHAT, "string past its column")),
                    };
                    *o = (p as u32, len as u32);
                    p += len;
                    total += len as u64;
                }
                *pos = p;
            }
        }
        Ok(total)
    }
}

/// A slot's column.
enum Col<'a> {
    Leaf(Leaf<'a>),
    Hex {
        data: &'a [u8],
        len: usize,
        i: usize,
    },
    /// Prefix, number, suffix.
    Num(Box<[Leaf<'a>; 3]>),
}

impl<'a> Col<'a> {
    fn read(c: &mut Cursor<'a>, n: usize, mut arena: Option<&mut Arena>) -> Result<Self> {
        match c.peek_u8()? {
            MODE_HEX => {
                c.u8()?;
                let len = c.uvarint_len(MAX_SPLIT_LINE)?;
                let total = len
                    .checked_mul(n)
                    .ok_or_else(|| Error::corrupt(WHAT, "hex column too long"))?;
                Ok(Col::Hex {
                    data: c.bytes(total)?,
                    len,
                    i: 0,
                })
            }
            MODE_NUM => {
                c.u8()?;
                let prefix = Leaf::read(c, n, arena.as_deref_mut())?;
                let number = Leaf::read(c, n, arena.as_deref_mut())?;
                let suffix = Leaf::read(c, n, arena)?;
                Ok(Col::Num(Box::new([prefix, number, suffix])))
            }
            _ => Ok(Col::Leaf(Leaf::read(c, n, arena)?)),
        }
    }

    /// Pieces each value is written as.
    fn parts(&self) -> usize {
        match self {
            Col::Num(_) => 3,
            _ => 1,
        }
    }

    /// Piece `part` of every value, if all are the same.
    fn constant(&self, part: usize, table: &[Span]) -> Option<Span> {
        match self {
            Col::Leaf(leaf) => leaf.constant(table),
            Col::Num(parts) => parts.get(part)?.constant(table),
            Col::Hex { .. } => None,
        }
    }

    /// Writes the spans of the next `count` values to `out[k * stride + at[part]]` for the
    /// k-th value's parts (`ints`: scratch); returns their total length.
    #[inline(always)]
    fn emit(
        &mut self,
        count: usize,
        arena: &mut Arena,
        ints: &mut Vec<i64>,
        out: &mut [Span],
        stride: usize,
        at: [usize; 3],
    ) -> Result<u64> {
        match self {
            Col::Leaf(leaf) => leaf.emit(count, arena, ints, out, (stride, at[0])),
            Col::Hex { data, len, i } => {
                let len = *len;
                let values = data
                    .get(*i * len..(*i + count) * len)
                    .ok_or_else(|| Error::corrupt(WHAT, "hex column too short"))?;
                *i += count;
                if count == 0 {
                    return Ok(0);
                }
                let base = arena.len;
                let out = out[at[0]..].iter_mut().step_by(stride);
                if len == 0 {
                    out.take(count).for_each(|o| *o = (base as u32, 0));
                    return Ok(0);
                }
                let room = arena.room(2 * values.len());
                let mut end = 0;
                for (o, value) in out.zip(values.chunks_exact(len)) {
                    put_hex(&mut room[end..end + 2 * len], value);
                    *o = ((base + end) as u32, 2 * len as u32);
                    end += 2 * len;
                }
                arena.len += end;
                Ok(end as u64)
            }
            Col::Num(parts) => {
                let [prefix, number, suffix] = &mut **parts;
                let a = prefix.emit(count, arena, ints, out, (stride, at[0]))?;
                let b = number.emit(count, arena, ints, out, (stride, at[1]))?;
                let c = suffix.emit(count, arena, ints, out, (stride, at[2]))?;
                Ok(a + b + c)
            }
        }
    }
}

/// Writes `v` in decimal, as `i64`'s `Display` prints it, at the start of `dst` (at least
/// [`INT_ROOM`] bytes, the ones past the digits scratch); returns its length. Digits are
/// computed eight at a time in a word and go straight to their place (built in a buffer and
/// copied, they would be read back before their stores complete).
#[inline(always)]
fn put_int(dst: &mut [u8], v: i64) -> usize {
    const E8: u64 = 100_000_000;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    let dst = &mut dst[..INT_ROOM];
    let u = v.unsigned_abs();
    dst[0] = b'-';
    let at = usize::from(v < 0);
    // The first word loses its leading zeros, from its low end (its first digit is lowest):
    // all but the last digit for 0.
    let lead = |digits: u64| ((digits.trailing_zeros() / 8) as usize).min(7);
    if u < E8 {
        let d = eight_digits(u);
        let skip = lead(d);
        dst[at..at + 8].copy_from_slice(&((d + ZEROS) >> (8 * skip)).to_le_bytes());
        at + 8 - skip
    } else if u < E8 * E8 {
        let d = eight_digits(u / E8);
        let len = 8 - lead(d);
        dst[at..at + 8].copy_from_slice(&((d + ZEROS) >> (64 - 8 * len)).to_le_bytes());
        let at = at + len;
        dst[at..at + 8].copy_from_slice(&(eight_digits(u % E8) + ZEROS).to_le_bytes());
        at + 8
    } else {
        // At most 19 digits: 3 lead.
        let d = eight_digits(u / (E8 * E8));
        let len = 8 - lead(d);
        let rest = u % (E8 * E8);
        dst[at..at + 8].copy_from_slice(&((d + ZEROS) >> (64 - 8 * len)).to_le_bytes());
        let at = at + len;
        dst[at..at + 8].copy_from_slice(&(eight_digits(rest / E8) + ZEROS).to_le_bytes());
        dst[at + 8..at + 16].copy_from_slice(&(eight_digits(rest % E8) + ZEROS).to_le_bytes());
        at + 16
    }
}

/// The eight decimal digits of `u` (below 10^8, leading zeros included), one per byte, the
/// first in the lowest: split in 16-bit then 8-bit lanes by multiplying with reciprocals that
/// are exact in range (x / 100 = x·5243 >> 19 for x < 10^4, x / 10 = x·103 >> 10 for x < 100).
#[inline(always)]
fn eight_digits(u: u64) -> u64 {
    let x = (u / 10_000) | ((u % 10_000) << 32);
    let hundreds = ((x * 5243) >> 19) & 0x0000_007f_0000_007f;
    let y = hundreds | ((x - hundreds * 100) << 16);
    let tens = ((y * 103) >> 10) & 0x000f_000f_000f_000f;
    tens | ((y - tens * 10) << 8)
}

/// Writes `bytes` as lowercase hex to `dst` (exactly twice as long).
#[inline(always)]
fn put_hex(dst: &mut [u8], bytes: &[u8]) {
    let mut out = dst.chunks_exact_mut(8);
    let mut chunks = bytes.chunks_exact(4);
    for (o, chunk) in (&mut out).zip(&mut chunks) {
        // Each nibble to its own byte (first nibble highest), then to its digit, in one word.
        let mut x = u64::from(u32::from_be_bytes(chunk.try_into().unwrap_or_default()));
        x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
        x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
        x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
        let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
        x += 0x3030_3030_3030_3030 + letters * u64::from(b'a' - b'0' - 10);
        o.copy_from_slice(&x.to_be_bytes());
    }
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (d, &b) in out
        .into_remainder()
        .chunks_exact_mut(2)
        .zip(chunks.remainder())
    {
        d[0] = DIGITS[usize::from(b >> 4)];
        d[1] = DIGITS[usize::from(b & 15)];
    }
}

/// Copies `span` of `arena` to `out[pos..]`, 16 bytes at a time: up to 15 bytes past the span
/// are read (the arena's room) and written (the text's room, or what is written next).
#[inline(always)]
fn copy_span(out: &mut [u8], pos: usize, arena: &[u8], (start, len): Span) {
    let (s, l) = (start as usize, len as usize);
    out[pos..pos + 16].copy_from_slice(&arena[s..s + 16]);
    let mut k = 16;
    while k < l {
        out[pos + k..pos + k + 16].copy_from_slice(&arena[s + k..s + k + 16]);
        k += 16;
    }
}

/// Writes a line at `out[pos..]`: its literals and `values` in turn (`lits` has one more);
/// returns where it ends. Its own function: inlined, its loop would share registers with
/// the batch loop around it and spill.
#[inline(never)]
fn write_line(out: &mut [u8], mut pos: usize, src: &[u8], lits: &[Span], values: &[Span]) -> usize {
    let Some((&first, lits)) = lits.split_first() else {
        return pos;
    };
    copy_span(out, pos, src, first);
    pos += first.1 as usize;
    for (&value, &lit) in values.iter().zip(lits) {
        copy_span(out, pos, src, value);
        pos += value.1 as usize;
        copy_span(out, pos, src, lit);
        pos += lit.1 as usize;
    }
    pos
}

/// Buffers a thread reuses from block to block.
#[derive(Default)]
struct Scratch {
    arena: Arena,
    spans: Vec<Span>,
    ids: Vec<u16>,
    ints: Vec<i64>,
    meta_text: Vec<u8>,
}

impl Scratch {
    fn bytes(&self) -> usize {
        self.arena.bytes.capacity()
            + 8 * (self.arena.table.capacity() + self.spans.capacity() + self.ints.capacity())
            + 2 * self.ids.capacity()
            + self.meta_text.capacity()
    }
}

/// A columnar block's text and string bounds, as `DecodedBlock` holds them.
pub(crate) struct Decoded {
    /// Lines, then metadata names and values.
    pub(crate) text: String,
    /// Entry i's line is `text[line_bounds[i]..line_bounds[i + 1]]`.
    pub(crate) line_bounds: Vec<u32>,
    /// Empty without metadata; else entry i's pairs are `metadata_pairs[i]..[i + 1]`.
    pub(crate) metadata_pairs: Vec<u32>,
    /// Pair p is name `text[b[2p]..b[2p + 1]]`, value `text[b[2p + 1]..b[2p + 2]]`.
    pub(crate) metadata_bounds: Vec<u32>,
}

/// Decodes the line and metadata sections of a columnar block of `count` entries, the cursor
/// being past the timestamps; `exceptions` is the block's text region (the lines kept whole).
/// Lines are rebuilt only if `parts.lines` (else every line is empty, and the line section is
/// only parsed, without per-value work, when the metadata section behind it is wanted);
/// metadata only if the block has it and `parts.metadata`. Also returns whether the cursor
/// went through every section, so that the caller can check that nothing trails.
pub(crate) fn decode(
    c: &mut Cursor<'_>,
    count: usize,
    exceptions: &[u8],
    max_pairs: usize,
    has_metadata: bool,
    parts: BlockParts,
) -> Result<(Decoded, bool)> {
    thread_local! {
        static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
    }
    SCRATCH.with(|cell| {
        let mut fresh = Scratch::default();
        let mut borrowed = cell.try_borrow_mut();
        let s = match borrowed.as_deref_mut() {
            Ok(s) => s,
            Err(_) => &mut fresh,
        };
        let result = decode_with(c, count, exceptions, max_pairs, has_metadata, parts, s);
        if s.bytes() > SCRATCH_KEEP {
            *s = Scratch::default();
        }
        result
    })
}

fn decode_with(
    c: &mut Cursor<'_>,
    count: usize,
    exceptions: &[u8],
    max_pairs: usize,
    has_metadata: bool,
    parts: BlockParts,
    s: &mut Scratch,
) -> Result<(Decoded, bool)> {
    let metadata = has_metadata && parts.metadata;
    let mut text = Vec::new();
    let mut line_bounds = Vec::with_capacity(count + 1);
    let mut metadata_pairs = Vec::new();
    let mut metadata_bounds = Vec::new();
    s.meta_text.clear();
    if parts.lines || metadata {
        let head = read_lines_head(c, count, s)?;
        if metadata {
            // The metadata section follows the columns: find it, decode it into scratch,
            // then write the lines into a text sized for both (growing it would copy it).
            let mut mc = c.clone();
            for (&slots, &n) in head.slots.iter().zip(&head.per_template) {
                for _ in 0..slots {
                    Col::read(&mut mc, n, None)?;
                }
            }
            let base = if parts.lines { head.total } else { 0 };
            decode_metadata(
                &mut mc,
                count,
                max_pairs,
                base,
                s,
                &mut metadata_pairs,
                &mut metadata_bounds,
            )?;
            if parts.lines {
                decode_lines(
                    &mut c.clone(),
                    &head,
                    exceptions,
                    s,
                    &mut text,
                    &mut line_bounds,
                )?;
            }
            *c = mc;
        } else {
            decode_lines(c, &head, exceptions, s, &mut text, &mut line_bounds)?;
        }
    }
    if !parts.lines {
        line_bounds.resize(count + 1, 0);
    }
    text.extend_from_slice(&s.meta_text);
    let text = String::from_utf8(text)
        .map_err(|e| Error::corrupt(WHAT, format!("text is not utf-8: {}", e.utf8_error())))?;
    let whole = metadata || (parts.lines && !has_metadata);
    Ok((
        Decoded {
            text,
            line_bounds,
            metadata_pairs,
            metadata_bounds,
        },
        whole,
    ))
}

/// The start of the line section, up to its columns.
struct LinesHead<'a> {
    /// Declared bytes of all lines.
    total: usize,
    /// Per template: its literal text with [`SLOT`] where values go.
    keys: Vec<&'a [u8]>,
    slots: Vec<usize>,
    /// Lines per template; the last count is of lines kept whole.
    per_template: Vec<usize>,
    /// Length of each line kept whole.
    exception_lens: Vec<i64>,
}

/// Reads the line section up to its columns; the template id of every line goes to `s.ids`.
fn read_lines_head<'a>(c: &mut Cursor<'a>, count: usize, s: &mut Scratch) -> Result<LinesHead<'a>> {
    let total = c.uvarint_len(MAX_TEXT)?;
    let t = c.uvarint_len(MAX_TEMPLATES)?;
    let mut keys = Vec::with_capacity(t);
    let mut slots = Vec::with_capacity(t);
    for _ in 0..t {
        let len = c.uvarint_len(MAX_TEMPLATE_LEN)?;
        let key = c.bytes(len)?;
        let n = memchr::memchr_iter(SLOT, key).count();
        if n > MAX_SLOTS {
            return Err(Error::corrupt(WHAT, "too many slots"));
        }
        keys.push(key);
        slots.push(n);
    }
    s.ints.clear();
    Ints::read(c, count)?.take(count, &mut s.ints)?;
    if s.ints.iter().any(|&id| !(0..=t as i64).contains(&id)) {
        return Err(Error::corrupt(WHAT, "template id out of range"));
    }
    s.ids.clear();
    // T ≤ 256: ids fit in u16.
    s.ids.extend(s.ints.iter().map(|&id| id as u16));
    let mut per_template = vec![0usize; t + 1];
    count_ids(&s.ids, &mut per_template);
    let mut exception_lens = Vec::new();
    Ints::read(c, per_template[t])?.take(per_template[t], &mut exception_lens)?;
    Ok(LinesHead {
        total,
        keys,
        slots,
        per_template,
        exception_lens,
    })
}

/// Adds the number of each id in `ids` to `counts` (long enough for every id). Counted in
/// runs: most lines have the template of the line before, and adding one to the same counter
/// in memory line after line would wait for each store.
fn count_ids(ids: &[u16], counts: &mut [usize]) {
    let Some(&first) = ids.first() else {
        return;
    };
    let (mut id, mut run) = (first, 0);
    for &next in ids {
        if next == id {
            run += 1;
        } else {
            counts[usize::from(id)] += run;
            (id, run) = (next, 1);
        }
    }
    counts[usize::from(id)] += run;
}

/// A template as decoding lays it out: per line, its literal text (with its constant columns
/// folded in) alternates with its value spans, literal first and last.
struct Shape {
    /// Its literal spans, one more than its value spans.
    lits: std::ops::Range<usize>,
    /// Value spans per line.
    width: usize,
    first_col: usize,
    slots: usize,
    /// Literal bytes per line.
    literal: u64,
}

/// Rebuilds the lines of a columnar block into `text` (with room reserved for `s.meta_text`
/// after them), pushing each line's start and end to `bounds`. The cursor is at the columns.
fn decode_lines(
    c: &mut Cursor<'_>,
    head: &LinesHead<'_>,
    exceptions: &[u8],
    s: &mut Scratch,
    text: &mut Vec<u8>,
    bounds: &mut Vec<u32>,
) -> Result<()> {
    let Scratch {
        arena,
        spans,
        ids,
        ints,
        meta_text,
    } = s;
    let mut sum = 0u64;
    for &len in &head.exception_lens {
        sum = sum.saturating_add(u64::try_from(len).unwrap_or(u64::MAX));
    }
    if sum != exceptions.len() as u64 {
        return Err(Error::corrupt(WHAT, "lines do not add up"));
    }
    let total = head.total;
    // A hint only: `total` is checked against the lines before any is written.
    text.reserve(total + meta_text.len() + SLACK);
    arena.reset(c.remaining());
    let t = head.keys.len();
    let mut cols = Vec::new();
    let mut col_at: Vec<[usize; 3]> = Vec::new(); // each column's places in its rows
    let mut lits: Vec<Span> = Vec::new();
    let mut shapes: Vec<Shape> = Vec::with_capacity(t);
    for (k, key) in head.keys.iter().enumerate() {
        let first_col = cols.len();
        let slots = head.slots[k];
        for _ in 0..slots {
            cols.push(Col::read(c, head.per_template[k], Some(arena))?);
        }
        let first_lit = lits.len();
        let mut lit_start = arena.len;
        let mut width = 0;
        let mut literal = 0u64;
        for (j, piece) in key.split(|&b| b == SLOT).enumerate() {
            arena.push(piece);
            let Some(col) = cols[first_col..].get(j) else {
                continue;
            };
            let mut at = [FOLDED; 3];
            for (p, place) in at.iter_mut().enumerate().take(col.parts()) {
                match col.constant(p, &arena.table) {
                    Some(span) => arena.push_span(span),
                    None => {
                        let lit = arena.len - lit_start;
                        lits.push((lit_start as u32, lit as u32));
                        literal += lit as u64;
                        lit_start = arena.len;
                        *place = width;
                        width += 1;
                    }
                }
            }
            col_at.push(at);
        }
        let lit = arena.len - lit_start;
        lits.push((lit_start as u32, lit as u32));
        literal += lit as u64;
        shapes.push(Shape {
            lits: first_lit..lits.len(),
            width,
            first_col,
            slots,
            literal,
        });
    }
    arena.check()?;

    let block_part = arena.len;
    let mut in_batch = vec![0usize; t + 1];
    let mut next_row = vec![0usize; t];
    let mut exception = 0; // index into `exception_lens`
    let mut exception_pos = 0;
    let mut pos = 0usize;
    bounds.push(0);
    for batch in ids.chunks(BATCH) {
        in_batch.fill(0);
        count_ids(batch, &mut in_batch);
        let mut rows = 0;
        for (k, shape) in shapes.iter().enumerate() {
            next_row[k] = rows;
            rows += in_batch[k] * shape.width;
        }
        spans.clear();
        spans.resize(rows, (0, 0));
        arena.len = block_part;
        let mut len = 0u64;
        for (k, shape) in shapes.iter().enumerate() {
            let m = in_batch[k];
            len += shape.literal * m as u64;
            let w = shape.width;
            if m == 0 || w == 0 {
                continue;
            }
            let rows = &mut spans[next_row[k]..next_row[k] + m * w];
            for j in shape.first_col..shape.first_col + shape.slots {
                len += cols[j].emit(m, arena, ints, rows, w, col_at[j])?;
            }
        }
        for &l in &head.exception_lens[exception..exception + in_batch[t]] {
            len += l as u64;
        }
        let end = pos as u64 + len;
        if end > total as u64 {
            return Err(Error::corrupt(WHAT, "lines do not add up"));
        }
        text.resize(end as usize + SLACK, 0);
        arena.room(0);
        let out = text.as_mut_slice();
        let src = arena.bytes.as_slice();
        for &id in batch {
            let id = usize::from(id);
            if id == t {
                let l = head.exception_lens[exception] as usize;
                exception += 1;
                out[pos..pos + l].copy_from_slice(&exceptions[exception_pos..exception_pos + l]);
                exception_pos += l;
                pos += l;
            } else {
                let shape = &shapes[id];
                let r = next_row[id];
                next_row[id] = r + shape.width;
                let lits = &lits[shape.lits.clone()];
                pos = write_line(out, pos, src, lits, &spans[r..r + shape.width]);
            }
            bounds.push(pos as u32);
        }
        text.truncate(pos);
    }
    if pos != total {
        return Err(Error::corrupt(WHAT, "lines do not add up"));
    }
    Ok(())
}

/// Decodes the metadata columns into `s.meta_text`: per entry its pair count goes to `pairs`
/// (as running totals); the names and values (name, value, name, value, …) have their bounds
/// pushed to `bounds`, offset by `base` (where the metadata text will start).
fn decode_metadata(
    c: &mut Cursor<'_>,
    count: usize,
    max_pairs: usize,
    base: usize,
    s: &mut Scratch,
    pairs: &mut Vec<u32>,
    bounds: &mut Vec<u32>,
) -> Result<()> {
    let Scratch {
        arena,
        spans,
        ints,
        meta_text: text,
        ..
    } = s;
    arena.reset(c.remaining());
    pairs.reserve(count + 1);
    pairs.push(0);
    let mut total = 0usize;
    ints.clear();
    Ints::read(c, count)?.take(count, ints)?;
    for &n in ints.iter() {
        match usize::try_from(n) {
            Ok(n) if n <= max_pairs - total => total += n,
            _ => return Err(Error::corrupt(WHAT, "too many metadata pairs")),
        }
        pairs.push(total as u32);
    }
    let mut names = Leaf::read(c, total, Some(arena))?;
    let mut values = Leaf::read(c, total, Some(arena))?;
    let block_part = arena.len;
    bounds.reserve(2 * total + 1);
    bounds.push(base as u32);
    let mut done = 0;
    while done < total {
        let m = (total - done).min(BATCH);
        spans.clear();
        spans.resize(2 * m, (0, 0));
        arena.len = block_part;
        let mut len = names.emit(m, arena, ints, spans, (2, 0))?;
        len += values.emit(m, arena, ints, spans, (2, 1))?;
        let pos = text.len();
        let end = pos as u64 + len;
        if end > MAX_TEXT as u64 {
            return Err(Error::TooLarge {
                what: "decoded block metadata",
                len: end,
                limit: MAX_TEXT as u64,
            });
        }
        text.resize(end as usize + SLACK, 0);
        arena.room(0);
        let mut p = pos;
        let (out, src) = (text.as_mut_slice(), arena.bytes.as_slice());
        bounds.extend(spans.iter().map(|&span| {
            copy_span(out, p, src, span);
            p += span.1 as usize;
            (base + p) as u32
        }));
        text.truncate(p);
        done += m;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Option<(String, Vec<String>)> {
        let mut s = Splitter::default();
        if !s.split(line.as_bytes(), 0) {
            return None;
        }
        let key = String::from_utf8_lossy(&s.key).replace('\u{fffd}', "·");
        let values = s
            .spans
            .iter()
            .map(|&(a, l)| line[a as usize..(a + l) as usize].to_owned())
            .collect();
        Some((key, values))
    }

    #[test]
    fn json_and_logfmt_lines_split_into_templates_and_values() {
        let (key, values) =
            split(r#"{"ts":12,"msg":"a \"quoted\" \\","ok":true, "n": -1.5e3}"#).unwrap();
        assert_eq!(key, r#"{"ts":·,"msg":"·","ok":·, "n": ·}"#);
        assert_eq!(values, ["12", r#"a \"quoted\" \\"#, "true", "-1.5e3"]);
        let (key, values) = split(r#"level=info msg="hi there" took=12ms"#).unwrap();
        assert_eq!(key, r#"level=· msg="·" took=·"#);
        assert_eq!(values, ["info", "hi there", "12ms"]);
        assert!(split(r#"{"open":"never closed}"#).is_none());
        assert!(split(r#"{"a":"ends in escape\"#).is_none());
        assert_eq!(split("").unwrap(), (String::new(), vec![]));
    }

    #[test]
    fn canonical_ints_only() {
        for (s, v) in [("0", Some(0)), ("-7", Some(-7)), ("123", Some(123))] {
            assert_eq!(parse_int(s.as_bytes()), v);
        }
        for s in [
            "",
            "-",
            "-0",
            "007",
            "1e3",
            "+1",
            "1234567890123456789",
            " 1",
        ] {
            assert_eq!(parse_int(s.as_bytes()), None, "{s}");
        }
        let mut expected = String::new();
        let mut got = Vec::new();
        for v in [
            0,
            9,
            10,
            99,
            100,
            -1,
            -10,
            i64::MIN,
            i64::MAX,
            1_000_000_007,
        ]
        .into_iter()
        .chain((0..19).flat_map(|k| {
            let p = 10i64.pow(k);
            [p - 1, p, p + 1, -p, 1 - p, p.wrapping_mul(7) + 3]
        })) {
            let mut room = [0u8; INT_ROOM];
            let len = put_int(&mut room, v);
            got.extend_from_slice(&room[..len]);
            expected += &v.to_string();
        }
        assert_eq!(String::from_utf8(got).unwrap(), expected);
    }

    fn round_trip_ints(vals: &[i64]) {
        let mut out = Vec::new();
        put_int_column(&mut out, vals);
        let mut c = Cursor::new(&out, "t");
        let mut ints = Ints::read(&mut c, vals.len()).unwrap();
        c.finish().unwrap();
        // In uneven runs, as batches read them.
        let mut got = Vec::new();
        let mut run = 1;
        while got.len() < vals.len() {
            let n = run.min(vals.len() - got.len());
            ints.take(n, &mut got).unwrap();
            run = run * 3 + 1;
        }
        assert_eq!(got, vals);
        assert!(ints.take(1, &mut got).is_err());
    }

    #[test]
    fn hex_digits_for_every_byte_and_length() {
        let bytes: Vec<u8> = (0..=255u8).chain([0xab, 0x01, 0xf0]).collect();
        for len in [0, 1, 3, 4, 5, 8, 13, bytes.len()] {
            let mut out = vec![0u8; 2 * len];
            put_hex(&mut out, &bytes[..len]);
            let expected: String = bytes[..len].iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }

    #[test]
    fn int_columns_round_trip_in_every_mode() {
        round_trip_ints(&[]);
        round_trip_ints(&[5]);
        round_trip_ints(&(0..100).collect::<Vec<_>>());
        round_trip_ints(&(0..100).map(|i| [200, 404, 500][i % 3]).collect::<Vec<_>>());
        round_trip_ints(&[i64::MIN, i64::MAX, 0, -1, i64::MAX]);
        round_trip_ints(&(0..300).map(|i| i * i * 7919 % 100_003).collect::<Vec<_>>());
    }

    #[test]
    fn bit_packing_round_trips_at_every_width() {
        for w in 0..=64u32 {
            let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
            let vals: Vec<u64> = (0..37u64)
                .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) & mask)
                .collect();
            let mut out = vec![w as u8];
            pack(&mut out, w, vals.iter().copied());
            assert_eq!(out.len(), 1 + (37 * w as usize).div_ceil(8));
            let mut c = Cursor::new(&out, "t");
            let bits = Bits::read(&mut c, vals.len()).unwrap();
            for (i, &v) in vals.iter().enumerate() {
                assert_eq!(bits.get(i), v, "w {w} i {i}");
            }
            for start in [0, 1, 5, 30] {
                let mut got = Vec::new();
                bits.unpack(start, 37 - start, &mut got);
                let got: Vec<u64> = got.into_iter().map(|v| v as u64).collect();
                assert_eq!(got, vals[start..], "w {w} from {start}");
            }
        }
    }
}
