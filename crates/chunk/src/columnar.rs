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

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

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
        codes.reserve(n);
        let mut complete = true;
        for (i, &v) in vals.iter().enumerate() {
            match dict.code(i, v) {
                Some(c) => codes.push(c),
                None => {
                    complete = false;
                    break;
                }
            }
        }
        let dict_values = &dict.values;
        if complete {
            let w = width(dict_values.len() as u64 - 1);
            let cost = n as u64 * u64::from(w) + dict_values.len() as u64 * 24;
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
    let mut codes: Vec<u32> = Vec::with_capacity(spans.len());
    let mut complete = true;
    for (i, span) in spans.iter().enumerate() {
        match dict.code(i, value(span)) {
            Some(c) => codes.push(c),
            None => {
                complete = false;
                break;
            }
        }
    }
    let entries = &dict.values;
    if complete {
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

    #[inline(always)]
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
}

enum IntCol<'a> {
    For {
        base: i64,
        bits: Bits<'a>,
    },
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

/// Reads an int column's values in order.
struct Ints<'a> {
    col: IntCol<'a>,
    i: usize,
}

impl<'a> Ints<'a> {
    fn read(c: &mut Cursor<'a>, n: usize) -> Result<Self> {
        let col = match c.u8()? {
            MODE_FOR => {
                let base = c.ivarint()?;
                IntCol::For {
                    base,
                    bits: Bits::read(c, n)?,
                }
            }
            MODE_DELTA => {
                let first = c.ivarint()?;
                let base = c.ivarint()?;
                IntCol::Delta {
                    // The first value comes out of `next` as `first`.
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
                IntCol::Dict { values, bits }
            }
            m => return Err(Error::corrupt(WHAT, format!("int column mode {m}"))),
        };
        Ok(Ints { col, i: 0 })
    }

    #[inline(always)]
    fn next(&mut self) -> Result<i64> {
        let i = self.i;
        self.i += 1;
        match &mut self.col {
            IntCol::For { base, bits } => Ok(base.wrapping_add(bits.get(i) as i64)),
            IntCol::Delta { prev, base, bits } => {
                // The first value has no delta: its packed slot is skipped.
                let d = if i == 0 { 0 } else { bits.get(i - 1) as i64 };
                *prev = prev.wrapping_add(base.wrapping_add(d));
                Ok(*prev)
            }
            IntCol::Dict { values, bits } => values
                .get(bits.get(i) as usize)
                .copied()
                .ok_or_else(|| Error::corrupt(WHAT, "dictionary code out of range")),
        }
    }
}

/// A column whose values are written out as text, other than hex and number splits.
enum Leaf<'a> {
    Int(Ints<'a>),
    /// Strings (or formatted integers) at `(start, len)` of `arena`.
    Dict {
        arena: Vec<u8>,
        entries: Vec<(u32, u32)>,
        bits: Bits<'a>,
        i: usize,
    },
    Raw {
        lens: Ints<'a>,
        data: &'a [u8],
        pos: usize,
    },
}

impl<'a> Leaf<'a> {
    fn read(c: &mut Cursor<'a>, n: usize) -> Result<Self> {
        let mode = c.peek_u8()?;
        if mode == MODE_FOR || mode == MODE_DELTA {
            return Ok(Leaf::Int(Ints::read(c, n)?));
        }
        c.u8()?;
        match mode {
            MODE_INT_DICT | MODE_DICT => {
                let d = c.uvarint_len(MAX_DICT)?;
                let mut arena = Vec::new();
                let mut entries = Vec::with_capacity(d);
                for _ in 0..d {
                    let start = arena.len() as u32;
                    if mode == MODE_INT_DICT {
                        // Formatted once here, copied for every value.
                        arena.extend_from_slice(c.ivarint()?.to_string().as_bytes());
                    } else {
                        let len = c.uvarint_len(c.remaining())?;
                        arena.extend_from_slice(c.bytes(len)?);
                    }
                    entries.push((start, arena.len() as u32 - start));
                }
                let bits = Bits::read(c, n)?;
                arena.resize(arena.len() + SLACK, 0);
                if entries.is_empty() && n > 0 {
                    return Err(Error::corrupt(WHAT, "empty dictionary"));
                }
                Ok(Leaf::Dict {
                    arena,
                    entries,
                    bits,
                    i: 0,
                })
            }
            MODE_RAW => {
                let lens = Ints::read(c, n)?;
                let total = c.uvarint_len(c.remaining())?;
                Ok(Leaf::Raw {
                    lens,
                    data: c.bytes(total)?,
                    pos: 0,
                })
            }
            m => Err(Error::corrupt(WHAT, format!("column mode {m}"))),
        }
    }

    /// Appends the next value to `out`.
    #[inline(always)]
    fn write_next(&mut self, out: &mut Out) -> Result<()> {
        match self {
            Leaf::Int(ints) => out.int(ints.next()?),
            Leaf::Dict {
                arena,
                entries,
                bits,
                i,
            } => {
                let code = bits.get(*i) as usize;
                *i += 1;
                let &(start, len) = entries
                    .get(code)
                    .ok_or_else(|| Error::corrupt(WHAT, "dictionary code out of range"))?;
                out.copy(arena, start as usize, len as usize)
            }
            Leaf::Raw { lens, data, pos } => {
                let len = usize::try_from(lens.next()?).unwrap_or(usize::MAX);
                let start = *pos;
                *pos = pos.saturating_add(len);
                out.copy(data, start, len)
            }
        }
    }
}

/// A slot's column.
enum Col<'a> {
    Leaf(Leaf<'a>),
    Hex {
        data: &'a [u8],
        len: usize,
        pos: usize,
    },
    /// Prefix, number, suffix.
    Num(Box<[Leaf<'a>; 3]>),
}

impl<'a> Col<'a> {
    fn read(c: &mut Cursor<'a>, n: usize) -> Result<Self> {
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
                    pos: 0,
                })
            }
            MODE_NUM => {
                c.u8()?;
                let prefix = Leaf::read(c, n)?;
                let number = Leaf::read(c, n)?;
                let suffix = Leaf::read(c, n)?;
                Ok(Col::Num(Box::new([prefix, number, suffix])))
            }
            _ => Ok(Col::Leaf(Leaf::read(c, n)?)),
        }
    }

    /// Appends the next value to `out`.
    #[inline(always)]
    fn write_next(&mut self, out: &mut Out) -> Result<()> {
        match self {
            Col::Leaf(leaf) => leaf.write_next(out),
            Col::Hex { data, len, pos } => {
                let bytes = data
                    .get(*pos..*pos + *len)
                    .ok_or_else(|| Error::corrupt(WHAT, "hex column too short"))?;
                *pos += *len;
                out.hex(bytes)
            }
            Col::Num(parts) => {
                let [prefix, number, suffix] = &mut **parts;
                prefix.write_next(out)?;
                number.write_next(out)?;
                suffix.write_next(out)
            }
        }
    }
}

/// Slack after dictionary and template arenas, so that short copies from them can read a
/// fixed 16 bytes.
const SLACK: usize = 16;

/// The decoded text under construction. Short pieces are appended as fixed 16-byte chunks
/// when the source has that many bytes left, then the overrun is cut off again: a
/// constant-size copy is two moves, a variable one a libc call (which cost a quarter of
/// decoding).
pub(crate) struct Out {
    buf: Vec<u8>,
}

impl Out {
    pub(crate) fn new() -> Self {
        Out { buf: Vec::new() }
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Fails if `len` more bytes would pass the text limit.
    #[inline(always)]
    fn check(&self, len: usize) -> Result<()> {
        if len > MAX_TEXT - self.buf.len() {
            return Err(Error::TooLarge {
                what: "decoded block text",
                len: self.buf.len().saturating_add(len) as u64,
                limit: MAX_TEXT as u64,
            });
        }
        Ok(())
    }

    /// Appends `src[start..start + len]`.
    #[inline(always)]
    fn copy(&mut self, src: &[u8], start: usize, len: usize) -> Result<()> {
        self.check(len)?;
        if len <= 16 {
            if let Some(chunk) = src.get(start..start.saturating_add(16)) {
                let at = self.buf.len();
                self.buf.extend_from_slice(chunk);
                self.buf.truncate(at + len);
                return Ok(());
            }
        }
        let piece = start
            .checked_add(len)
            .and_then(|end| src.get(start..end))
            .ok_or_else(|| Error::corrupt(WHAT, "string past its column"))?;
        self.buf.extend_from_slice(piece);
        Ok(())
    }

    /// Decimal `v`, as `i64`'s `Display` prints it.
    #[inline(always)]
    fn int(&mut self, v: i64) -> Result<()> {
        const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
            2021222324252627282930313233343536373839\
            4041424344454647484950515253545556575859\
            6061626364656667686970717273747576777879\
            8081828384858687888990919293949596979899";
        // Digits end at 24 and the buffer runs 16 bytes further, for the fixed-size copy.
        let mut buf = [0u8; 40];
        let mut start = 24;
        let mut u = v.unsigned_abs();
        while u >= 100 {
            let r = (u % 100) as usize * 2;
            u /= 100;
            start -= 2;
            buf[start..start + 2].copy_from_slice(&PAIRS[r..r + 2]);
        }
        if u >= 10 {
            let r = u as usize * 2;
            start -= 2;
            buf[start..start + 2].copy_from_slice(&PAIRS[r..r + 2]);
        } else {
            start -= 1;
            buf[start] = b'0' + u as u8;
        }
        if v < 0 {
            start -= 1;
            buf[start] = b'-';
        }
        self.copy(&buf, start, 24 - start)
    }

    /// `bytes` as lowercase hex.
    #[inline(always)]
    fn hex(&mut self, bytes: &[u8]) -> Result<()> {
        const HEX: [[u8; 2]; 256] = {
            let digits = b"0123456789abcdef";
            let mut t = [[0u8; 2]; 256];
            let mut b = 0;
            while b < 256 {
                t[b] = [digits[b >> 4], digits[b & 15]];
                b += 1;
            }
            t
        };
        self.check(bytes.len() * 2)?;
        // Eight bytes at a time through a fixed-size buffer: one append per 16 digits.
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut digits = [0u8; 16];
            for (d, &b) in digits.chunks_exact_mut(2).zip(chunk) {
                d.copy_from_slice(&HEX[usize::from(b)]);
            }
            self.buf.extend_from_slice(&digits);
        }
        for &b in chunks.remainder() {
            self.buf.extend_from_slice(&HEX[usize::from(b)]);
        }
        Ok(())
    }

    /// The text, checked to be UTF-8.
    pub(crate) fn into_string(self) -> Result<String> {
        String::from_utf8(self.buf)
            .map_err(|e| Error::corrupt(WHAT, format!("text is not utf-8: {}", e.utf8_error())))
    }
}

/// Rebuilds the lines of a columnar block into `out`, pushing each line's end to `bounds`.
/// `exceptions` is the block's text region: the lines kept whole.
pub(crate) fn decode_lines(
    c: &mut Cursor<'_>,
    count: usize,
    exceptions: &[u8],
    out: &mut Out,
    bounds: &mut Vec<u32>,
) -> Result<()> {
    let total = c.uvarint_len(MAX_TEXT)?;
    // A hint only: `total` is checked against the lines at the end.
    out.buf.reserve(total + SLACK);
    let t = c.uvarint_len(MAX_TEMPLATES)?;
    // All literal pieces in one arena with slack, so that they take the fast copy.
    let mut arena = Vec::new();
    let mut pieces: Vec<(usize, usize)> = Vec::new();
    let mut templates: Vec<(usize, usize)> = Vec::with_capacity(t); // first piece, slots
    for _ in 0..t {
        let len = c.uvarint_len(MAX_TEMPLATE_LEN)?;
        let key = c.bytes(len)?;
        let first = pieces.len();
        let mut at = arena.len();
        for &b in key {
            if b == SLOT {
                pieces.push((at, arena.len() - at));
                at = arena.len();
            } else {
                arena.push(b);
            }
        }
        pieces.push((at, arena.len() - at));
        let slots = pieces.len() - first - 1;
        if slots > MAX_SLOTS {
            return Err(Error::corrupt(WHAT, "too many slots"));
        }
        templates.push((first, slots));
    }
    arena.resize(arena.len() + SLACK, 0);
    let mut ids = Ints::read(c, count)?;
    let mut line_ids = Vec::with_capacity(count);
    let mut per_template = vec![0usize; t + 1];
    for _ in 0..count {
        let id = usize::try_from(ids.next()?)
            .ok()
            .filter(|&id| id <= t)
            .ok_or_else(|| Error::corrupt(WHAT, "template id out of range"))?;
        per_template[id] += 1;
        line_ids.push(id as u16);
    }
    let mut exception_lens = Ints::read(c, per_template[t])?;
    let mut columns = Vec::new();
    let mut first_column = Vec::with_capacity(t);
    for (k, &(_, slots)) in templates.iter().enumerate() {
        first_column.push(columns.len());
        for _ in 0..slots {
            columns.push(Col::read(c, per_template[k])?);
        }
    }
    let mut exception_pos = 0usize;
    for &id in &line_ids {
        let id = usize::from(id);
        if id == t {
            let len = usize::try_from(exception_lens.next()?).unwrap_or(usize::MAX);
            out.copy(exceptions, exception_pos, len)?;
            exception_pos += len;
        } else {
            let (first, slots) = templates[id];
            let cols = &mut columns[first_column[id]..first_column[id] + slots];
            let (s, l) = pieces[first];
            out.copy(&arena, s, l)?;
            for (col, &(s, l)) in cols.iter_mut().zip(&pieces[first + 1..]) {
                col.write_next(out)?;
                out.copy(&arena, s, l)?;
            }
        }
        bounds.push(out.len() as u32);
    }
    if exception_pos != exceptions.len() || out.len() != total {
        return Err(Error::corrupt(WHAT, "lines do not add up"));
    }
    Ok(())
}

/// Decodes the metadata columns: per entry its pair count goes to `pairs` (as running
/// totals); the names and values are appended to `out` (name, value, name, value, …) with
/// each string's end pushed to `bounds`.
pub(crate) fn decode_metadata(
    c: &mut Cursor<'_>,
    count: usize,
    max_pairs: usize,
    out: &mut Out,
    pairs: &mut Vec<u32>,
    bounds: &mut Vec<u32>,
) -> Result<()> {
    let mut counts = Ints::read(c, count)?;
    pairs.reserve(count + 1);
    pairs.push(0);
    let mut total = 0usize;
    for _ in 0..count {
        let n = usize::try_from(counts.next()?)
            .ok()
            .filter(|&n| n <= max_pairs - total)
            .ok_or_else(|| Error::corrupt(WHAT, "too many metadata pairs"))?;
        total += n;
        pairs.push(total as u32);
    }
    let mut names = Leaf::read(c, total)?;
    let mut values = Leaf::read(c, total)?;
    bounds.reserve(2 * total + 1);
    bounds.push(out.len() as u32);
    for _ in 0..total {
        names.write_next(out)?;
        bounds.push(out.len() as u32);
        values.write_next(out)?;
        bounds.push(out.len() as u32);
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
        let mut out = Out::new();
        let mut expected = String::new();
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
        ] {
            out.int(v).unwrap();
            expected += &v.to_string();
        }
        assert_eq!(out.into_string().unwrap(), expected);
    }

    fn round_trip_ints(vals: &[i64]) {
        let mut out = Vec::new();
        put_int_column(&mut out, vals);
        let mut c = Cursor::new(&out, "t");
        let mut ints = Ints::read(&mut c, vals.len()).unwrap();
        c.finish().unwrap();
        for &v in vals {
            assert_eq!(ints.next().unwrap(), v);
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
        }
    }
}
