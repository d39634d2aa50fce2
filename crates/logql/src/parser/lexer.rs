//! The LogQL lexer. It mirrors Loki's scanner (Go `text/scanner` plus Loki's rules): the
//! same tokens, the same context-sensitive function names, and the same error positions,
//! including the quirk that tokens read ahead character by character report line 0.

use super::literals::{parse_humanized_bytes, parse_loki_duration, parse_prometheus_duration};
use crate::ast::{RangeOp, VectorOp};

/// A token kind, with its value where it has one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Eof,
    Ident(String),
    Str(String),
    Number(String),
    Duration(i64),
    Range(i64),
    Bytes(u64),
    Flag(String),
    Comma,
    Dot,
    LBrace,
    RBrace,
    LParen,
    RParen,
    RBracket,
    Eq,
    Neq,
    Re,
    Nre,
    Npa,
    PipeExact,
    PipeMatch,
    PipePattern,
    Pipe,
    Or,
    And,
    Unless,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    CmpEq,
    Gt,
    Gte,
    Lt,
    Lte,
    By,
    Without,
    Bool,
    Offset,
    On,
    Ignoring,
    GroupLeft,
    GroupRight,
    Json,
    Regexp,
    Logfmt,
    Unpack,
    Pattern,
    LabelFmt,
    LineFmt,
    Decolorize,
    Drop,
    Keep,
    Unwrap,
    Ip,
    LabelReplace,
    Vector,
    ApproxTopk,
    BytesConv,
    DurationConv,
    DurationSecondsConv,
    RangeFn(RangeOp),
    VectorFn(VectorOp),
}

impl Tok {
    /// The name yacc prints for the token in `unexpected X` messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Tok::Eof => "$end",
            Tok::Ident(_) => "IDENTIFIER",
            Tok::Str(_) => "STRING",
            Tok::Number(_) => "NUMBER",
            Tok::Duration(_) => "DURATION",
            Tok::Range(_) => "RANGE",
            Tok::Bytes(_) => "BYTES",
            Tok::Flag(_) => "PARSER_FLAG",
            Tok::Comma => ",",
            Tok::Dot => ".",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::RBracket => "]",
            Tok::Eq => "=",
            Tok::Neq => "!=",
            Tok::Re => "=~",
            Tok::Nre => "!~",
            Tok::Npa => "!>",
            Tok::PipeExact => "|=",
            Tok::PipeMatch => "|~",
            Tok::PipePattern => "|>",
            Tok::Pipe => "|",
            Tok::Or => "or",
            Tok::And => "and",
            Tok::Unless => "unless",
            Tok::Add => "+",
            Tok::Sub => "-",
            Tok::Mul => "*",
            Tok::Div => "/",
            Tok::Mod => "%",
            Tok::Pow => "^",
            Tok::CmpEq => "==",
            Tok::Gt => ">",
            Tok::Gte => ">=",
            Tok::Lt => "<",
            Tok::Lte => "<=",
            Tok::By => "by",
            Tok::Without => "without",
            Tok::Bool => "bool",
            Tok::Offset => "offset",
            Tok::On => "on",
            Tok::Ignoring => "ignoring",
            Tok::GroupLeft => "group_left",
            Tok::GroupRight => "group_right",
            Tok::Json => "json",
            Tok::Regexp => "regexp",
            Tok::Logfmt => "logfmt",
            Tok::Unpack => "unpack",
            Tok::Pattern => "pattern",
            Tok::LabelFmt => "label_format",
            Tok::LineFmt => "line_format",
            Tok::Decolorize => "decolorize",
            Tok::Drop => "drop",
            Tok::Keep => "keep",
            Tok::Unwrap => "unwrap",
            Tok::Ip => "ip",
            Tok::LabelReplace => "label_replace",
            Tok::Vector => "VECTOR",
            Tok::ApproxTopk => "APPROX_TOPK",
            Tok::BytesConv => "BYTES_CONV",
            Tok::DurationConv => "DURATION_CONV",
            Tok::DurationSecondsConv => "DURATION_SECONDS_CONV",
            Tok::RangeFn(op) => match op {
                RangeOp::CountOverTime => "COUNT_OVER_TIME",
                RangeOp::Rate => "RATE",
                RangeOp::RateCounter => "RATE_COUNTER",
                RangeOp::BytesOverTime => "BYTES_OVER_TIME",
                RangeOp::BytesRate => "BYTES_RATE",
                RangeOp::AbsentOverTime => "ABSENT_OVER_TIME",
                RangeOp::SumOverTime => "SUM_OVER_TIME",
                RangeOp::AvgOverTime => "AVG_OVER_TIME",
                RangeOp::MaxOverTime => "MAX_OVER_TIME",
                RangeOp::MinOverTime => "MIN_OVER_TIME",
                RangeOp::StddevOverTime => "STDDEV_OVER_TIME",
                RangeOp::StdvarOverTime => "STDVAR_OVER_TIME",
                RangeOp::QuantileOverTime => "QUANTILE_OVER_TIME",
                RangeOp::FirstOverTime => "FIRST_OVER_TIME",
                RangeOp::LastOverTime => "LAST_OVER_TIME",
            },
            Tok::VectorFn(op) => match op {
                VectorOp::Sum => "SUM",
                VectorOp::Avg => "AVG",
                VectorOp::Min => "MIN",
                VectorOp::Max => "MAX",
                VectorOp::Count => "COUNT",
                VectorOp::Stddev => "STDDEV",
                VectorOp::Stdvar => "STDVAR",
                VectorOp::Topk => "TOPK",
                VectorOp::Bottomk => "BOTTOMK",
                VectorOp::Sort => "SORT",
                VectorOp::SortDesc => "SORT_DESC",
            },
        }
    }
}

/// A token and the position Loki reports for it: `(line, col)`, 1-based; `(0, 0)` means none.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) pos: (u32, u32),
}

/// A lexing error with Loki's position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LexError {
    pub(crate) pos: (u32, u32),
    pub(crate) message: String,
}

pub(crate) struct Lexer {
    chars: Vec<char>,
    /// `(line, col)` of every char, as Go's scanner counts them.
    positions: Vec<(u32, u32)>,
    i: usize,
}

fn is_go_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_duration_rune(c: char) -> bool {
    matches!(c, 'n' | 'u' | 'µ' | 'm' | 's' | 'h' | 'd' | 'w' | 'y')
}

fn is_bytes_rune(c: char) -> bool {
    matches!(c, 'B' | 'i' | 'k' | 'K' | 'M' | 'G' | 'T' | 'P')
}

fn function_token(lower: &str) -> Option<Tok> {
    Some(match lower {
        "rate" => Tok::RangeFn(RangeOp::Rate),
        "rate_counter" => Tok::RangeFn(RangeOp::RateCounter),
        "count_over_time" => Tok::RangeFn(RangeOp::CountOverTime),
        "bytes_rate" => Tok::RangeFn(RangeOp::BytesRate),
        "bytes_over_time" => Tok::RangeFn(RangeOp::BytesOverTime),
        "avg_over_time" => Tok::RangeFn(RangeOp::AvgOverTime),
        "sum_over_time" => Tok::RangeFn(RangeOp::SumOverTime),
        "min_over_time" => Tok::RangeFn(RangeOp::MinOverTime),
        "max_over_time" => Tok::RangeFn(RangeOp::MaxOverTime),
        "stdvar_over_time" => Tok::RangeFn(RangeOp::StdvarOverTime),
        "stddev_over_time" => Tok::RangeFn(RangeOp::StddevOverTime),
        "quantile_over_time" => Tok::RangeFn(RangeOp::QuantileOverTime),
        "first_over_time" => Tok::RangeFn(RangeOp::FirstOverTime),
        "last_over_time" => Tok::RangeFn(RangeOp::LastOverTime),
        "absent_over_time" => Tok::RangeFn(RangeOp::AbsentOverTime),
        "vector" => Tok::Vector,
        "sum" => Tok::VectorFn(VectorOp::Sum),
        "avg" => Tok::VectorFn(VectorOp::Avg),
        "max" => Tok::VectorFn(VectorOp::Max),
        "min" => Tok::VectorFn(VectorOp::Min),
        "count" => Tok::VectorFn(VectorOp::Count),
        "stddev" => Tok::VectorFn(VectorOp::Stddev),
        "stdvar" => Tok::VectorFn(VectorOp::Stdvar),
        "bottomk" => Tok::VectorFn(VectorOp::Bottomk),
        "topk" => Tok::VectorFn(VectorOp::Topk),
        "sort" => Tok::VectorFn(VectorOp::Sort),
        "sort_desc" => Tok::VectorFn(VectorOp::SortDesc),
        "label_replace" => Tok::LabelReplace,
        "approx_topk" => Tok::ApproxTopk,
        "bytes" => Tok::BytesConv,
        "duration" => Tok::DurationConv,
        "duration_seconds" => Tok::DurationSecondsConv,
        "ip" => Tok::Ip,
        _ => return None,
    })
}

fn keyword(lower: &str) -> Option<Tok> {
    Some(match lower {
        "by" => Tok::By,
        "without" => Tok::Without,
        "bool" => Tok::Bool,
        "offset" => Tok::Offset,
        "on" => Tok::On,
        "ignoring" => Tok::Ignoring,
        "group_left" => Tok::GroupLeft,
        "group_right" => Tok::GroupRight,
        "or" => Tok::Or,
        "and" => Tok::And,
        "unless" => Tok::Unless,
        "json" => Tok::Json,
        "regexp" => Tok::Regexp,
        "logfmt" => Tok::Logfmt,
        "unpack" => Tok::Unpack,
        "pattern" => Tok::Pattern,
        "label_format" => Tok::LabelFmt,
        "line_format" => Tok::LineFmt,
        "decolorize" => Tok::Decolorize,
        "drop" => Tok::Drop,
        "keep" => Tok::Keep,
        "unwrap" => Tok::Unwrap,
        _ => return None,
    })
}

impl Lexer {
    pub(crate) fn new(input: &str) -> Lexer {
        let chars: Vec<char> = input.chars().collect();
        let mut positions = Vec::with_capacity(chars.len());
        let (mut line, mut col) = (1u32, 0u32);
        for &c in &chars {
            col += 1;
            positions.push((line, col));
            if c == '\n' {
                line += 1;
                col = 0;
            }
        }
        Lexer {
            chars,
            positions,
            i: 0,
        }
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.i + offset).copied()
    }

    /// Where Go's scanner says a token starting at char `i` is; at the end, the position
    /// just past the last char (none for empty input).
    fn pos_of(&self, i: usize) -> (u32, u32) {
        if let Some(p) = self.positions.get(i) {
            return *p;
        }
        match (self.chars.last(), self.positions.last()) {
            (Some('\n'), Some((line, _))) => (line + 1, 1),
            (Some(_), Some((line, col))) => (*line, col + 1),
            _ => (0, 0),
        }
    }

    fn error(&self, pos: (u32, u32), message: impl Into<String>) -> LexError {
        LexError {
            pos,
            message: message.into(),
        }
    }

    fn skip_space_and_comments(&mut self) -> Result<(), LexError> {
        loop {
            match self.peek_at(0) {
                Some(c) if is_go_whitespace(c) => self.i += 1,
                Some('#') => {
                    while let Some(c) = self.peek_at(0) {
                        if c == '\n' {
                            break;
                        }
                        self.i += 1;
                    }
                }
                Some('/') if self.peek_at(1) == Some('/') => {
                    while let Some(c) = self.peek_at(0) {
                        if c == '\n' {
                            break;
                        }
                        self.i += 1;
                    }
                }
                Some('/') if self.peek_at(1) == Some('*') => {
                    let start = self.pos_of(self.i);
                    self.i += 2;
                    loop {
                        match self.peek_at(0) {
                            None => return Err(self.error(start, "comment not terminated")),
                            Some('*') if self.peek_at(1) == Some('/') => {
                                self.i += 2;
                                break;
                            }
                            Some(_) => self.i += 1,
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    pub(crate) fn next_token(&mut self) -> Result<Token, LexError> {
        self.skip_space_and_comments()?;
        let start = self.i;
        let pos = self.pos_of(start);
        // Tokens the Go lexer completes with `Next()` lose their line number.
        let read_ahead = (0, pos.1);
        let Some(c) = self.peek_at(0) else {
            return Ok(Token { tok: Tok::Eof, pos });
        };
        if c.is_alphabetic() || c == '_' {
            return Ok(self.identifier(pos));
        }
        if c.is_ascii_digit() || (c == '.' && self.peek_at(1).is_some_and(|d| d.is_ascii_digit())) {
            return self.number(pos, read_ahead);
        }
        match c {
            '"' => return self.string(pos),
            '`' => return self.raw_string(pos),
            '\'' => return self.char_literal(pos),
            '[' => return self.range(read_ahead),
            '-' => {
                if self.peek_at(1) == Some('-') {
                    if let Some(flag) = self.try_flag() {
                        return Ok(Token {
                            tok: Tok::Flag(flag),
                            pos: read_ahead,
                        });
                    }
                }
                self.i += 1;
                if let Some(d) = self.try_suffix(
                    "-",
                    |c| c.is_numeric() || is_duration_rune(c),
                    |s| parse_loki_duration(s).ok(),
                ) {
                    return Ok(Token {
                        tok: Tok::Duration(d),
                        pos: read_ahead,
                    });
                }
                return Ok(Token { tok: Tok::Sub, pos });
            }
            _ => {}
        }
        let two = match (c, self.peek_at(1)) {
            ('!', Some('=')) => Some(Tok::Neq),
            ('=', Some('~')) => Some(Tok::Re),
            ('!', Some('~')) => Some(Tok::Nre),
            ('!', Some('>')) => Some(Tok::Npa),
            ('|', Some('=')) => Some(Tok::PipeExact),
            ('|', Some('~')) => Some(Tok::PipeMatch),
            ('|', Some('>')) => Some(Tok::PipePattern),
            ('=', Some('=')) => Some(Tok::CmpEq),
            ('>', Some('=')) => Some(Tok::Gte),
            ('<', Some('=')) => Some(Tok::Lte),
            _ => None,
        };
        if let Some(tok) = two {
            self.i += 2;
            return Ok(Token {
                tok,
                pos: read_ahead,
            });
        }
        self.i += 1;
        let tok = match c {
            ',' => Tok::Comma,
            '.' => Tok::Dot,
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ']' => Tok::RBracket,
            '=' => Tok::Eq,
            '|' => Tok::Pipe,
            '+' => Tok::Add,
            '*' => Tok::Mul,
            '/' => Tok::Div,
            '%' => Tok::Mod,
            '^' => Tok::Pow,
            '>' => Tok::Gt,
            '<' => Tok::Lt,
            // Go's scanner returns any other char as itself; Loki then calls it an identifier.
            other => Tok::Ident(other.to_string()),
        };
        Ok(Token { tok, pos })
    }

    fn identifier(&mut self, pos: (u32, u32)) -> Token {
        let start = self.i;
        while let Some(c) = self.peek_at(0) {
            if c.is_alphanumeric() || c == '_' {
                self.i += 1;
            } else {
                break;
            }
        }
        let text: String = self.chars[start..self.i].iter().collect();
        let lower = text.to_lowercase();
        if let Some(tok) = function_token(&lower) {
            if self.is_function_call() {
                return Token { tok, pos };
            }
            return Token {
                tok: Tok::Ident(text),
                pos,
            };
        }
        if let Some(tok) = keyword(&lower) {
            return Token { tok, pos };
        }
        Token {
            tok: Tok::Ident(text),
            pos,
        }
    }

    /// Loki's `isFunction`: the rest starts (after spaces) with `(`, or with `by`/`without`
    /// and then `(`.
    fn is_function_call(&self) -> bool {
        let mut j = self.i;
        let skip_space = |mut j: usize| {
            while self.chars.get(j).is_some_and(|c| c.is_whitespace()) {
                j += 1;
            }
            j
        };
        j = skip_space(j);
        if self.chars.get(j) == Some(&'(') {
            return true;
        }
        for word in ["by", "without"] {
            let n = word.len();
            if j + n <= self.chars.len() {
                let candidate: String = self.chars[j..j + n].iter().collect();
                if candidate.to_lowercase() == word {
                    let k = skip_space(j + n);
                    return self.chars.get(k) == Some(&'(');
                }
            }
        }
        false
    }

    fn number(&mut self, pos: (u32, u32), read_ahead: (u32, u32)) -> Result<Token, LexError> {
        let start = self.i;
        let c0 = self.chars[start];
        let c1 = self.peek_at(1).map(|c| c.to_ascii_lowercase());
        if c0 == '0' && c1 == Some('x') {
            self.i += 2;
            let mut has_dot = false;
            let mut has_exp = false;
            while let Some(c) = self.peek_at(0) {
                if c.is_ascii_hexdigit() || c == '_' {
                    self.i += 1;
                } else if c == '.' && !has_dot && !has_exp {
                    has_dot = true;
                    self.i += 1;
                } else if (c == 'p' || c == 'P') && !has_exp {
                    has_exp = true;
                    self.i += 1;
                    if matches!(self.peek_at(0), Some('+' | '-')) {
                        self.i += 1;
                    }
                    if !self.peek_at(0).is_some_and(|c| c.is_ascii_digit()) {
                        return Err(self.error(pos, "exponent has no digits"));
                    }
                } else {
                    break;
                }
            }
            if has_dot && !has_exp {
                return Err(self.error(pos, "hexadecimal mantissa requires a 'p' exponent"));
            }
        } else if c0 == '0' && matches!(c1, Some('b' | 'o')) {
            self.i += 2;
            while self
                .peek_at(0)
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                self.i += 1;
            }
        } else {
            while self
                .peek_at(0)
                .is_some_and(|c| c.is_ascii_digit() || c == '_')
            {
                self.i += 1;
            }
            if self.peek_at(0) == Some('.') {
                self.i += 1;
                while self
                    .peek_at(0)
                    .is_some_and(|c| c.is_ascii_digit() || c == '_')
                {
                    self.i += 1;
                }
            }
            if matches!(self.peek_at(0), Some('e' | 'E')) {
                self.i += 1;
                if matches!(self.peek_at(0), Some('+' | '-')) {
                    self.i += 1;
                }
                if !self.peek_at(0).is_some_and(|c| c.is_ascii_digit()) {
                    return Err(self.error(pos, "exponent has no digits"));
                }
                while self
                    .peek_at(0)
                    .is_some_and(|c| c.is_ascii_digit() || c == '_')
                {
                    self.i += 1;
                }
            }
        }
        let text: String = self.chars[start..self.i].iter().collect();
        if let Some(d) = self.try_suffix(
            &text,
            |c| c.is_numeric() || is_duration_rune(c),
            |s| parse_loki_duration(s).ok(),
        ) {
            return Ok(Token {
                tok: Tok::Duration(d),
                pos: read_ahead,
            });
        }
        if let Some(b) = self.try_suffix(
            &text,
            |c| c.is_numeric() || is_bytes_rune(c),
            |s| parse_humanized_bytes(s).ok(),
        ) {
            return Ok(Token {
                tok: Tok::Bytes(b),
                pos: read_ahead,
            });
        }
        Ok(Token {
            tok: Tok::Number(text),
            pos,
        })
    }

    /// Loki's `tryScanDuration`/`tryScanBytes`: read the following run of accepted runes
    /// (and dots) up to a space, and keep it only if `prefix + run` parses.
    fn try_suffix<T>(
        &mut self,
        prefix: &str,
        accept: impl Fn(char) -> bool,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let mut j = self.i;
        while let Some(&c) = self.chars.get(j) {
            if c.is_whitespace() || !(accept(c) || c == '.') {
                break;
            }
            j += 1;
        }
        if j == self.i {
            return None;
        }
        let mut candidate = prefix.to_string();
        candidate.extend(&self.chars[self.i..j]);
        let value = parse(&candidate)?;
        self.i = j;
        Some(value)
    }

    fn try_flag(&mut self) -> Option<String> {
        let mut j = self.i + 1;
        while self
            .chars
            .get(j)
            .is_some_and(|c| c.is_alphabetic() || *c == '-')
        {
            j += 1;
        }
        let flag: String = self.chars[self.i..j].iter().collect();
        if flag == "--strict" || flag == "--keep-empty" {
            self.i = j;
            Some(flag)
        } else {
            None
        }
    }

    fn range(&mut self, pos: (u32, u32)) -> Result<Token, LexError> {
        self.i += 1;
        let start = self.i;
        while let Some(c) = self.peek_at(0) {
            self.i += 1;
            if c == ']' {
                let text: String = self.chars[start..self.i - 1].iter().collect();
                return match parse_prometheus_duration(&text) {
                    Ok(d) => Ok(Token {
                        tok: Tok::Range(d),
                        pos,
                    }),
                    Err(e) => Err(self.error(pos, e)),
                };
            }
        }
        Err(self.error(pos, "missing closing ']' in duration"))
    }

    fn string(&mut self, pos: (u32, u32)) -> Result<Token, LexError> {
        self.i += 1;
        let mut bytes: Vec<u8> = Vec::new();
        let mut utf8 = [0u8; 4];
        loop {
            let Some(c) = self.peek_at(0) else {
                return Err(self.error(pos, "literal not terminated"));
            };
            self.i += 1;
            match c {
                '"' => break,
                '\n' => return Err(self.error(pos, "literal not terminated")),
                '\\' => {
                    let Some(e) = self.peek_at(0) else {
                        return Err(self.error(pos, "literal not terminated"));
                    };
                    self.i += 1;
                    let simple = match e {
                        'a' => Some(b'\x07'),
                        'b' => Some(b'\x08'),
                        'f' => Some(b'\x0c'),
                        'n' => Some(b'\n'),
                        'r' => Some(b'\r'),
                        't' => Some(b'\t'),
                        'v' => Some(b'\x0b'),
                        '\\' => Some(b'\\'),
                        '"' => Some(b'"'),
                        _ => None,
                    };
                    if let Some(b) = simple {
                        bytes.push(b);
                        continue;
                    }
                    let (digits, radix, is_byte) = match e {
                        '0'..='7' => (3, 8, true),
                        'x' => (2, 16, true),
                        'u' => (4, 16, false),
                        'U' => (8, 16, false),
                        _ => return Err(self.error(pos, "invalid char escape")),
                    };
                    let mut value: u32 = 0;
                    let mut text = String::new();
                    if e.is_digit(8) {
                        text.push(e);
                    }
                    while text.len() < digits {
                        match self.peek_at(0) {
                            Some(d) if d.is_digit(radix) => {
                                text.push(d);
                                self.i += 1;
                            }
                            Some(_) => return Err(self.error(pos, "invalid char escape")),
                            None => return Err(self.error(pos, "literal not terminated")),
                        }
                    }
                    for d in text.chars() {
                        value = value * radix + d.to_digit(radix).unwrap_or(0);
                    }
                    if is_byte {
                        if value > 255 {
                            return Err(
                                self.error(pos, "escape sequence is invalid Unicode code point")
                            );
                        }
                        bytes.push(value as u8);
                    } else {
                        let Some(ch) = char::from_u32(value) else {
                            return Err(
                                self.error(pos, "escape sequence is invalid Unicode code point")
                            );
                        };
                        bytes.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
                    }
                }
                c => bytes.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes()),
            }
        }
        match String::from_utf8(bytes) {
            Ok(s) => Ok(Token {
                tok: Tok::Str(s),
                pos,
            }),
            Err(_) => Err(self.error(pos, "invalid UTF-8 rune")),
        }
    }

    fn raw_string(&mut self, pos: (u32, u32)) -> Result<Token, LexError> {
        self.i += 1;
        let start = self.i;
        while let Some(c) = self.peek_at(0) {
            self.i += 1;
            if c == '`' {
                let s: String = self.chars[start..self.i - 1].iter().collect();
                return Ok(Token {
                    tok: Tok::Str(s),
                    pos,
                });
            }
        }
        Err(self.error(pos, "literal not terminated"))
    }

    /// Go char literals (`'a'`) are not LogQL strings; Loki reads them as identifiers.
    fn char_literal(&mut self, pos: (u32, u32)) -> Result<Token, LexError> {
        let start = self.i;
        self.i += 1;
        loop {
            match self.peek_at(0) {
                None | Some('\n') => return Err(self.error(pos, "literal not terminated")),
                Some('\\') => self.i += 2,
                Some('\'') => {
                    self.i += 1;
                    break;
                }
                Some(_) => self.i += 1,
            }
        }
        let end = self.i.min(self.chars.len());
        Ok(Token {
            tok: Tok::Ident(self.chars[start..end].iter().collect()),
            pos,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex_all(input: &str) -> Vec<Tok> {
        let mut lexer = Lexer::new(input);
        let mut out = Vec::new();
        loop {
            let t = lexer.next_token().expect("lexes");
            if t.tok == Tok::Eof {
                return out;
            }
            out.push(t.tok);
        }
    }

    #[test]
    fn function_names_are_context_sensitive() {
        assert_eq!(
            lex_all("bytes > 20MB"),
            vec![Tok::Ident("bytes".into()), Tok::Gt, Tok::Bytes(20_000_000)]
        );
        assert_eq!(
            lex_all("bytes(bytes)"),
            vec![
                Tok::BytesConv,
                Tok::LParen,
                Tok::Ident("bytes".into()),
                Tok::RParen
            ]
        );
        assert_eq!(
            lex_all("SUM by (a)"),
            vec![
                Tok::VectorFn(VectorOp::Sum),
                Tok::By,
                Tok::LParen,
                Tok::Ident("a".into()),
                Tok::RParen
            ]
        );
    }

    #[test]
    fn numbers_durations_and_bytes() {
        assert_eq!(lex_all("1mb")[0], Tok::Duration(60_000_000_000));
        assert_eq!(lex_all("1mb")[1], Tok::Ident("b".into()));
        assert_eq!(lex_all("1.5s"), vec![Tok::Duration(1_500_000_000)]);
        assert_eq!(lex_all("-5m"), vec![Tok::Duration(-300_000_000_000)]);
        assert_eq!(lex_all("-2"), vec![Tok::Sub, Tok::Number("2".into())]);
        assert_eq!(lex_all("0x1p3"), vec![Tok::Number("0x1p3".into())]);
        assert_eq!(lex_all("1KiB"), vec![Tok::Bytes(1024)]);
        assert_eq!(lex_all("[5m]"), vec![Tok::Range(300_000_000_000)]);
        assert_eq!(lex_all("--strict"), vec![Tok::Flag("--strict".into())]);
    }

    #[test]
    fn strings_and_comments() {
        assert_eq!(
            lex_all("\"a\\tb\\u00e9\" `raw\\n` # comment"),
            vec![Tok::Str("a\tbé".into()), Tok::Str("raw\\n".into())]
        );
        let err = Lexer::new("{foo=\"bar}").next_token().map(|_| ());
        assert!(err.is_ok());
    }
}
