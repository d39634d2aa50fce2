//! Lexer and parser for Go `text/template` syntax, with Go's error texts.

use std::collections::HashMap;
use std::fmt;

use super::funcs::is_function;
use super::value::Value;

/// A parsed template: the main list and the `define`d ones.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    pub(crate) root: Vec<Node>,
    pub(crate) defines: HashMap<String, Vec<Node>>,
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    With(Branch),
    Range(Branch),
    Template {
        name: String,
        pipe: Option<Pipe>,
        pos: usize,
    },
    Break,
    Continue,
}

#[derive(Debug, Clone)]
pub(crate) struct Branch {
    pub(crate) pipe: Pipe,
    pub(crate) list: Vec<Node>,
    pub(crate) else_list: Vec<Node>,
}

#[derive(Debug, Clone)]
pub(crate) struct Pipe {
    pub(crate) pos: usize,
    pub(crate) decl: Vec<String>,
    pub(crate) is_assign: bool,
    pub(crate) cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
pub(crate) struct Cmd {
    pub(crate) pos: usize,
    pub(crate) args: Vec<Arg>,
}

#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Ident(String),
    Dot,
    Nil,
    Bool(bool),
    Number(Value, String),
    Str(String),
    Field(Vec<String>),
    Var(String, Vec<String>),
    Chain(Box<Pipe>, Vec<String>),
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields = |f: &mut fmt::Formatter<'_>, fields: &[String]| {
            fields.iter().try_for_each(|x| write!(f, ".{x}"))
        };
        match self {
            Arg::Ident(n) => f.write_str(n),
            Arg::Dot => f.write_str("."),
            Arg::Nil => f.write_str("nil"),
            Arg::Bool(b) => write!(f, "{b}"),
            Arg::Number(_, text) => f.write_str(text),
            Arg::Str(s) => f.write_str(&fenrir_common::go_quote(s)),
            Arg::Field(fs) => fields(f, fs),
            Arg::Var(v, fs) => {
                f.write_str(v)?;
                fields(f, fs)
            }
            Arg::Chain(p, fs) => {
                write!(f, "({p})")?;
                fields(f, fs)
            }
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            write!(
                f,
                "{} {} ",
                self.decl.join(", "),
                if self.is_assign { "=" } else { ":=" }
            )?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Text(String),
    LeftDelim,
    RightDelim,
    Space,
    Ident(String),
    Field(String),
    Variable(String),
    Dot,
    Str(String),
    Char(i64),
    Number(String),
    Bool(bool),
    Nil,
    Keyword(&'static str),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
    /// Any other printable ASCII character (Go's `itemChar`).
    Punct(char),
    Eof,
}

impl Item {
    /// How Go's parser names the item in `unexpected X` messages.
    fn describe(&self) -> String {
        match self {
            Item::Text(t) => fenrir_common::go_quote(t),
            Item::LeftDelim => "\"{{\"".to_string(),
            Item::RightDelim => "\"}}\"".to_string(),
            Item::Space => "space".to_string(),
            Item::Ident(s) | Item::Field(s) | Item::Variable(s) | Item::Number(s) => {
                format!("{s:?}").replace('\\', "")
            }
            Item::Dot => "\".\"".to_string(),
            Item::Str(s) => fenrir_common::go_quote(&fenrir_common::go_quote(s)),
            Item::Char(c) => format!("{c}"),
            Item::Bool(b) => format!("\"{b}\""),
            Item::Nil => "\"nil\"".to_string(),
            Item::Keyword(k) => format!("<{k}>"),
            Item::Pipe => "\"|\"".to_string(),
            Item::LParen => "\"(\"".to_string(),
            Item::RParen => "\")\"".to_string(),
            Item::Declare => "\":=\"".to_string(),
            Item::Assign => "\"=\"".to_string(),
            Item::Comma => "\",\"".to_string(),
            Item::Punct(c) => format!("\"{c}\""),
            Item::Eof => "EOF".to_string(),
        }
    }
}

struct Lexed {
    items: Vec<(Item, usize)>,
    /// A lexing error, reported when the parser reaches it (Go lexes lazily).
    error: Option<(usize, usize, String)>,
}

const KEYWORDS: [&str; 10] = [
    "block", "break", "continue", "define", "else", "end", "if", "range", "template", "with",
];

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Go's lexer: text and actions, trim markers, comments.
fn lex(src: &str) -> Lexed {
    let mut items = Vec::new();
    match lex_items(src, &mut items) {
        Ok(()) => Lexed { items, error: None },
        Err((pos, message)) => {
            let index = items.len();
            items.push((Item::Eof, pos));
            Lexed {
                items,
                error: Some((index, pos, message)),
            }
        }
    }
}

fn lex_items(src: &str, items: &mut Vec<(Item, usize)>) -> Result<(), (usize, String)> {
    let mut pos = 0;
    let mut trim_next_text = false;
    while pos < src.len() {
        let rest = &src[pos..];
        let Some(open) = rest.find("{{") else {
            let mut text = rest;
            if trim_next_text {
                text = text.trim_start_matches(is_space);
            }
            if !text.is_empty() {
                items.push((Item::Text(text.to_string()), pos));
            }
            break;
        };
        let after = &rest[open + 2..];
        let left_trim = after.starts_with('-') && after[1..].starts_with(is_space);
        let mut text = &rest[..open];
        if trim_next_text {
            text = text.trim_start_matches(is_space);
        }
        if left_trim {
            text = text.trim_end_matches(is_space);
        }
        if !text.is_empty() {
            items.push((Item::Text(text.to_string()), pos));
        }
        pos += open + 2;
        if left_trim {
            pos += 2;
        }
        // Comments: `{{/* … */}}`, optionally with trim markers.
        let inner = &src[pos..];
        let inner_trimmed = inner.trim_start_matches(is_space);
        let comment_start = if left_trim { inner_trimmed } else { inner };
        if comment_start.starts_with("/*") {
            let start = src.len() - comment_start.len();
            let Some(end) = comment_start.find("*/") else {
                return Err((start, "unclosed comment".to_string()));
            };
            pos = start + end + 2;
            let tail = &src[pos..];
            if let Some(t) = tail.strip_prefix(" -}}") {
                trim_next_text = true;
                pos = src.len() - t.len();
            } else if let Some(t) = tail.strip_prefix("}}") {
                trim_next_text = false;
                pos = src.len() - t.len();
            } else {
                return Err((pos, "comment ends before closing delimiter".to_string()));
            }
            continue;
        }
        items.push((Item::LeftDelim, pos - 2));
        trim_next_text = lex_action(src, &mut pos, items)?;
    }
    items.push((Item::Eof, src.len()));
    Ok(())
}

/// Lexes inside `{{ … }}`; returns whether the action ended with a trim marker.
fn lex_action(
    src: &str,
    pos: &mut usize,
    items: &mut Vec<(Item, usize)>,
) -> Result<bool, (usize, String)> {
    let mut paren_depth = 0i32;
    loop {
        let rest = &src[*pos..];
        if rest.starts_with(" -}}")
            || rest.starts_with("\t-}}")
            || rest.starts_with("\n-}}")
            || rest.starts_with("\r-}}")
        {
            if paren_depth > 0 {
                return Err((*pos, "unclosed left paren".to_string()));
            }
            items.push((Item::RightDelim, *pos + 2));
            *pos += 4;
            return Ok(true);
        }
        if rest.starts_with("}}") {
            if paren_depth > 0 {
                return Err((*pos, "unclosed left paren".to_string()));
            }
            items.push((Item::RightDelim, *pos));
            *pos += 2;
            return Ok(false);
        }
        let Some(c) = rest.chars().next() else {
            return Err((*pos, "unclosed action".to_string()));
        };
        let start = *pos;
        match c {
            c if is_space(c) => {
                let n = rest
                    .char_indices()
                    .find(|(i, c)| !is_space(*c) || rest[*i..].starts_with(" -}}"))
                    .map_or(rest.len(), |(i, _)| i);
                // A run of spaces before ` -}}` leaves the last space for the marker.
                let n = if n == 0 { 1 } else { n };
                *pos += n;
                items.push((Item::Space, start));
            }
            '=' => {
                *pos += 1;
                items.push((Item::Assign, start));
            }
            ':' => {
                if !rest.starts_with(":=") {
                    return Err((start, "expected :=".to_string()));
                }
                *pos += 2;
                items.push((Item::Declare, start));
            }
            '|' => {
                *pos += 1;
                items.push((Item::Pipe, start));
            }
            ',' => {
                *pos += 1;
                items.push((Item::Comma, start));
            }
            '(' => {
                paren_depth += 1;
                *pos += 1;
                items.push((Item::LParen, start));
            }
            ')' => {
                paren_depth -= 1;
                if paren_depth < 0 {
                    return Err((start, "unexpected right paren".to_string()));
                }
                *pos += 1;
                items.push((Item::RParen, start));
            }
            '"' => {
                let (s, len) = lex_quoted(rest).map_err(|e| (start, e))?;
                *pos += len;
                items.push((Item::Str(s), start));
            }
            '`' => {
                let Some(end) = rest[1..].find('`') else {
                    return Err((start, "unterminated raw quoted string".to_string()));
                };
                items.push((Item::Str(rest[1..1 + end].to_string()), start));
                *pos += end + 2;
            }
            '\'' => {
                let (c, len) = lex_char(rest).map_err(|e| (start, e))?;
                *pos += len;
                items.push((Item::Char(c), start));
            }
            '$' => {
                let n = 1 + rest[1..]
                    .char_indices()
                    .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
                    .map_or(rest.len() - 1, |(i, _)| i);
                items.push((Item::Variable(rest[..n].to_string()), start));
                *pos += n;
            }
            '.' if rest[1..].starts_with(|c: char| c.is_ascii_digit()) => {
                let n = lex_number(rest).map_err(|e| (start, e))?;
                items.push((Item::Number(rest[..n].to_string()), start));
                *pos += n;
            }
            '.' => {
                let n = 1 + rest[1..]
                    .char_indices()
                    .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
                    .map_or(rest.len() - 1, |(i, _)| i);
                if n == 1 {
                    items.push((Item::Dot, start));
                } else {
                    items.push((Item::Field(rest[1..n].to_string()), start));
                }
                *pos += n;
            }
            '+' | '-' | '0'..='9' => {
                let n = lex_number(rest).map_err(|e| (start, e))?;
                items.push((Item::Number(rest[..n].to_string()), start));
                *pos += n;
            }
            c if c.is_alphabetic() || c == '_' => {
                let n = rest
                    .char_indices()
                    .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
                    .map_or(rest.len(), |(i, _)| i);
                let word = &rest[..n];
                let next = rest[n..].chars().next();
                if let Some(nc) = next {
                    if !(is_space(nc)
                        || matches!(nc, '.' | ',' | '|' | ':' | ')' | '(' | '}' | '='))
                    {
                        return Err((start, format!("bad character {}", go_char_repr(nc))));
                    }
                }
                let item = match word {
                    "true" => Item::Bool(true),
                    "false" => Item::Bool(false),
                    "nil" => Item::Nil,
                    w => match KEYWORDS.iter().find(|k| **k == w) {
                        Some(k) => Item::Keyword(k),
                        None => Item::Ident(w.to_string()),
                    },
                };
                items.push((item, start));
                *pos += n;
            }
            c if c.is_ascii_graphic() => {
                *pos += 1;
                items.push((Item::Punct(c), start));
            }
            c => return Err((start, format!("bad character {}", go_char_repr(c)))),
        }
    }
}

/// Go's `%#U`: `U+0040 '@'`.
fn go_char_repr(c: char) -> String {
    format!("U+{:04X} '{c}'", c as u32)
}

fn lex_number(s: &str) -> Result<usize, String> {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let mut digits: &[u8] = b"0123456789_";
    let mut exp: &[u8] = b"eE";
    if b.get(i) == Some(&b'0') && matches!(b.get(i + 1), Some(b'x' | b'X')) {
        i += 2;
        digits = b"0123456789abcdefABCDEF_";
        exp = b"pP";
    } else if b.get(i) == Some(&b'0') && matches!(b.get(i + 1), Some(b'o' | b'O' | b'b' | b'B')) {
        i += 2;
    }
    while i < b.len() && digits.contains(&b[i]) {
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && digits.contains(&b[i]) {
            i += 1;
        }
    }
    if i < b.len() && exp.contains(&b[i]) {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
        let end = s[i..]
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '.'))
            .map_or(s.len(), |(j, _)| i + j);
        return Err(format!(
            "bad number syntax: {}",
            fenrir_common::go_quote(&s[..end])
        ));
    }
    if i == 0 || (i == 1 && (b[0] == b'+' || b[0] == b'-')) {
        return Err(format!(
            "bad number syntax: {}",
            fenrir_common::go_quote(&s[..i.max(1)])
        ));
    }
    Ok(i)
}

fn unescape(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    quote: char,
) -> Result<char, String> {
    let Some((_, e)) = chars.next() else {
        return Err("unterminated quoted string".to_string());
    };
    let hex = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>, n: usize| {
        let mut v = 0u32;
        for _ in 0..n {
            let d = chars
                .next()
                .and_then(|(_, c)| c.to_digit(16))
                .ok_or_else(|| "invalid syntax".to_string())?;
            v = v * 16 + d;
        }
        char::from_u32(v).ok_or_else(|| "invalid syntax".to_string())
    };
    Ok(match e {
        'a' => '\u{7}',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\u{b}',
        '\\' => '\\',
        c if c == quote => c,
        'x' => hex(chars, 2)?,
        'u' => hex(chars, 4)?,
        'U' => hex(chars, 8)?,
        '0'..='7' => {
            let mut v = e.to_digit(8).unwrap_or(0);
            for _ in 0..2 {
                let d = chars
                    .next()
                    .and_then(|(_, c)| c.to_digit(8))
                    .ok_or_else(|| "invalid syntax".to_string())?;
                v = v * 8 + d;
            }
            char::from_u32(v).ok_or_else(|| "invalid syntax".to_string())?
        }
        _ => return Err("invalid syntax".to_string()),
    })
}

fn lex_quoted(s: &str) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut chars = s.char_indices().peekable();
    chars.next();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\n' => return Err("unterminated quoted string".to_string()),
            '\\' => out.push(unescape(&mut chars, '"')?),
            c => out.push(c),
        }
    }
    Err("unterminated quoted string".to_string())
}

fn lex_char(s: &str) -> Result<(i64, usize), String> {
    let mut chars = s.char_indices().peekable();
    chars.next();
    let c = match chars.next() {
        Some((_, '\\')) => unescape(&mut chars, '\'')?,
        Some((_, '\n')) | None => return Err("unterminated character constant".to_string()),
        Some((_, c)) => c,
    };
    match chars.next() {
        Some((i, '\'')) => Ok((i64::from(c as u32), i + 1)),
        _ => Err("unterminated character constant".to_string()),
    }
}

/// A parse error: byte offset and Go's message.
pub(crate) type ParseFailure = (usize, String);

struct Parser {
    items: Vec<(Item, usize)>,
    lex_error: Option<(usize, usize, String)>,
    i: usize,
    vars: Vec<String>,
    defines: HashMap<String, Vec<Node>>,
    range_depth: usize,
    depth: usize,
}

enum ListEnd {
    End,
    Else(usize),
    Eof,
}

const MAX_PARSE_DEPTH: usize = 100;

impl Parser {
    fn next(&mut self) -> (Item, usize) {
        let item = self.items.get(self.i).cloned().unwrap_or((Item::Eof, 0));
        if self.i < self.items.len() {
            self.i += 1;
        }
        item
    }

    fn peek(&self) -> &Item {
        self.items.get(self.i).map_or(&Item::Eof, |(it, _)| it)
    }

    fn pos(&self) -> usize {
        self.items.get(self.i).map_or(0, |(_, p)| *p)
    }

    fn next_non_space(&mut self) -> (Item, usize) {
        loop {
            let item = self.next();
            if item.0 != Item::Space {
                return item;
            }
        }
    }

    fn peek_non_space(&mut self) -> &Item {
        while *self.peek() == Item::Space {
            self.i += 1;
        }
        self.peek()
    }

    fn err<T>(&self, pos: usize, msg: impl Into<String>) -> Result<T, ParseFailure> {
        if let Some((index, lex_pos, message)) = &self.lex_error {
            if self.i >= *index {
                return Err((*lex_pos, message.clone()));
            }
        }
        Err((pos, msg.into()))
    }

    /// Nodes up to `{{end}}`, `{{else}}` or the end of input.
    fn list(&mut self) -> Result<(Vec<Node>, ListEnd), ParseFailure> {
        self.depth += 1;
        if self.depth > MAX_PARSE_DEPTH {
            return self.err(self.pos(), "template nesting too deep");
        }
        let mut nodes = Vec::new();
        let end = loop {
            let (item, pos) = self.next();
            match item {
                Item::Eof => break ListEnd::Eof,
                Item::Text(t) => nodes.push(Node::Text(t)),
                Item::LeftDelim => {
                    let (kw, kw_pos) = {
                        let save = self.i;
                        let it = self.next_non_space();
                        self.i = save;
                        it
                    };
                    match kw {
                        Item::Keyword("end") => {
                            self.next_non_space();
                            self.expect_right_delim("end")?;
                            break ListEnd::End;
                        }
                        Item::Keyword("else") => {
                            self.next_non_space();
                            break ListEnd::Else(kw_pos);
                        }
                        Item::Keyword("define") => {
                            self.next_non_space();
                            self.define(pos)?;
                        }
                        _ => nodes.push(self.action()?),
                    }
                }
                other => return self.err(pos, format!("unexpected {}", other.describe())),
            }
        };
        self.depth -= 1;
        Ok((nodes, end))
    }

    fn expect_right_delim(&mut self, context: &str) -> Result<(), ParseFailure> {
        let (item, pos) = self.next_non_space();
        if item != Item::RightDelim {
            return self.err(pos, format!("unexpected {} in {context}", item.describe()));
        }
        Ok(())
    }

    fn define(&mut self, pos: usize) -> Result<(), ParseFailure> {
        let (name, npos) = self.next_non_space();
        let Item::Str(name) = name else {
            return self.err(
                npos,
                format!("unexpected {} in define clause", name.describe()),
            );
        };
        self.expect_right_delim("define clause")?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let (list, end) = self.list()?;
        self.vars = saved;
        match end {
            ListEnd::End => {}
            ListEnd::Else(p) => return self.err(p, "unexpected {{else}}"),
            ListEnd::Eof => return self.err(pos, "unexpected EOF"),
        }
        self.defines.insert(name, list);
        Ok(())
    }

    fn action(&mut self) -> Result<Node, ParseFailure> {
        let (item, pos) = self.next_non_space();
        match item {
            Item::Keyword("if") => Ok(Node::If(self.control("if", true)?)),
            Item::Keyword("with") => Ok(Node::With(self.control("with", true)?)),
            Item::Keyword("range") => {
                self.range_depth += 1;
                let b = self.control("range", false);
                self.range_depth -= 1;
                Ok(Node::Range(b?))
            }
            Item::Keyword("template") => self.template_call(pos),
            Item::Keyword("block") => {
                let (name, npos) = self.next_non_space();
                let Item::Str(name) = name else {
                    return self.err(
                        npos,
                        format!("unexpected {} in block clause", name.describe()),
                    );
                };
                let pipe = self.pipeline("block", Item::RightDelim)?;
                let saved = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
                let (list, end) = self.list()?;
                self.vars = saved;
                if !matches!(end, ListEnd::End) {
                    return self.err(pos, "unexpected EOF");
                }
                self.defines.insert(name.clone(), list);
                Ok(Node::Template {
                    name,
                    pipe: Some(pipe),
                    pos,
                })
            }
            Item::Keyword(k @ ("break" | "continue")) => {
                if self.range_depth == 0 {
                    return self.err(pos, format!("{{{{{k}}}}} outside {{{{range}}}}"));
                }
                self.expect_right_delim(k)?;
                Ok(if k == "break" {
                    Node::Break
                } else {
                    Node::Continue
                })
            }
            Item::Keyword(k) => self.err(pos, format!("unexpected <{k}> in command")),
            _ => {
                self.i -= 1;
                while self.i > 0 && self.items[self.i - 1].0 == Item::Space {
                    self.i -= 1;
                }
                Ok(Node::Action(self.pipeline("command", Item::RightDelim)?))
            }
        }
    }

    fn template_call(&mut self, pos: usize) -> Result<Node, ParseFailure> {
        let (name, npos) = self.next_non_space();
        let Item::Str(name) = name else {
            return self.err(
                npos,
                format!("unexpected {} in template clause", name.describe()),
            );
        };
        let pipe = if *self.peek_non_space() == Item::RightDelim {
            self.next_non_space();
            None
        } else {
            Some(self.pipeline("template", Item::RightDelim)?)
        };
        Ok(Node::Template { name, pipe, pos })
    }

    fn control(
        &mut self,
        context: &'static str,
        allow_else_chain: bool,
    ) -> Result<Branch, ParseFailure> {
        let vars_len = self.vars.len();
        let pipe = self.pipeline(context, Item::RightDelim)?;
        let (list, end) = self.list()?;
        let else_list = match end {
            ListEnd::End => Vec::new(),
            ListEnd::Eof => return self.err(self.pos(), "unexpected EOF"),
            ListEnd::Else(_) => {
                let next = self.peek_non_space().clone();
                let chained = matches!(next, Item::Keyword(k) if allow_else_chain && k == context);
                if chained {
                    // `{{else if …}}` is an `if` nested in the else branch that shares `{{end}}`.
                    let (_, pos) = self.next_non_space();
                    let inner = self.control(context, true)?;
                    let _ = pos;
                    vec![if context == "if" {
                        Node::If(inner)
                    } else {
                        Node::With(inner)
                    }]
                } else {
                    self.expect_right_delim("else")?;
                    let (else_list, end) = self.list()?;
                    match end {
                        ListEnd::End => else_list,
                        ListEnd::Else(p) => return self.err(p, "expected end; found {{else}}"),
                        ListEnd::Eof => return self.err(self.pos(), "unexpected EOF"),
                    }
                }
            }
        };
        self.vars.truncate(vars_len);
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    fn pipeline(&mut self, context: &str, end: Item) -> Result<Pipe, ParseFailure> {
        let pos = self.pos();
        let mut decl = Vec::new();
        let mut is_assign = false;
        // Declarations: `$x :=`, `$x =`, `$i, $e :=` (range).
        if let Item::Variable(v) = self.peek_non_space().clone() {
            let save = self.i;
            self.next_non_space();
            match self.peek_non_space().clone() {
                Item::Declare | Item::Assign => {
                    is_assign = *self.peek() == Item::Assign;
                    self.next_non_space();
                    if is_assign && !self.vars.contains(&v) {
                        return self.err(
                            pos,
                            format!("undefined variable {}", fenrir_common::go_quote(&v)),
                        );
                    }
                    decl.push(v);
                }
                Item::Comma if context == "range" => {
                    self.next_non_space();
                    let (second, spos) = self.next_non_space();
                    let Item::Variable(second) = second else {
                        return self
                            .err(spos, format!("unexpected {} in range", second.describe()));
                    };
                    let (op, opos) = self.next_non_space();
                    if !matches!(op, Item::Declare | Item::Assign) {
                        return self.err(opos, format!("unexpected {} in range", op.describe()));
                    }
                    decl.push(v);
                    decl.push(second);
                }
                _ => self.i = save,
            }
        }
        let mut cmds = Vec::new();
        loop {
            let (item, ipos) = self.next_non_space();
            if item == end {
                if cmds.is_empty() {
                    return self.err(ipos, format!("missing value for {context}"));
                }
                break;
            }
            match item {
                Item::Eof => return self.err(ipos, "unclosed action"),
                Item::RightDelim | Item::RParen => {
                    return self.err(ipos, format!("unexpected {} in {context}", item.describe()))
                }
                _ => {
                    self.i -= 1;
                    cmds.push(self.command(&end)?);
                }
            }
        }
        if !is_assign {
            for d in &decl {
                self.vars.push(d.clone());
            }
        }
        Ok(Pipe {
            pos,
            decl,
            is_assign,
            cmds,
        })
    }

    fn command(&mut self, end: &Item) -> Result<Cmd, ParseFailure> {
        let pos = {
            self.peek_non_space();
            self.pos()
        };
        let mut args = Vec::new();
        loop {
            self.peek_non_space();
            let (item, ipos) = (self.peek().clone(), self.pos());
            match self.operand()? {
                Some(arg) => args.push(arg),
                None => {
                    return self.err(ipos, format!("unexpected {} in operand", item.describe()))
                }
            }
            let (next, npos) = self.next();
            match next {
                Item::Space => {
                    let after = self.peek().clone();
                    if after == *end
                        || after == Item::Pipe
                        || after == Item::RightDelim
                        || after == Item::RParen
                    {
                        if after == Item::Pipe {
                            self.next();
                            break;
                        }
                        break;
                    }
                }
                Item::Pipe => break,
                ref n if n == end => {
                    self.i -= 1;
                    break;
                }
                Item::RightDelim | Item::RParen => {
                    self.i -= 1;
                    break;
                }
                other => {
                    return self.err(npos, format!("unexpected {} in operand", other.describe()))
                }
            }
        }
        if args.is_empty() {
            return self.err(pos, "empty command");
        }
        Ok(Cmd { pos, args })
    }

    fn operand(&mut self) -> Result<Option<Arg>, ParseFailure> {
        let Some(term) = self.term()? else {
            return Ok(None);
        };
        let mut fields = Vec::new();
        while let Item::Field(f) = self.peek().clone() {
            self.next();
            fields.push(f);
        }
        if fields.is_empty() {
            return Ok(Some(term));
        }
        Ok(Some(match term {
            Arg::Field(mut f) => {
                f.extend(fields);
                Arg::Field(f)
            }
            Arg::Var(v, mut f) => {
                f.extend(fields);
                Arg::Var(v, f)
            }
            Arg::Chain(p, mut f) => {
                f.extend(fields);
                Arg::Chain(p, f)
            }
            Arg::Dot => Arg::Field(fields),
            other => {
                let pos = self.pos();
                return self.err(
                    pos,
                    format!(
                        "unexpected . after term {}",
                        fenrir_common::go_quote(&other.to_string())
                    ),
                );
            }
        }))
    }

    fn term(&mut self) -> Result<Option<Arg>, ParseFailure> {
        let (item, pos) = self.next_non_space();
        Ok(Some(match item {
            Item::Ident(name) => {
                if !is_function(&name) {
                    return self.err(
                        pos,
                        format!("function {} not defined", fenrir_common::go_quote(&name)),
                    );
                }
                Arg::Ident(name)
            }
            Item::Dot => Arg::Dot,
            Item::Nil => Arg::Nil,
            Item::Variable(v) => {
                if !self.vars.contains(&v) {
                    return self.err(
                        pos,
                        format!("undefined variable {}", fenrir_common::go_quote(&v)),
                    );
                }
                Arg::Var(v, Vec::new())
            }
            Item::Field(f) => Arg::Field(vec![f]),
            Item::Bool(b) => Arg::Bool(b),
            Item::Char(c) => Arg::Number(Value::Int(c), format!("{c}")),
            Item::Number(text) => Arg::Number(parse_number(&text).map_err(|e| (pos, e))?, text),
            Item::Str(s) => Arg::Str(s),
            Item::LParen => {
                self.depth += 1;
                if self.depth > MAX_PARSE_DEPTH {
                    return self.err(pos, "template nesting too deep");
                }
                let pipe = self.pipeline("parenthesized pipeline", Item::RParen)?;
                self.depth -= 1;
                Arg::Chain(Box::new(pipe), Vec::new())
            }
            _ => {
                self.i -= 1;
                return Ok(None);
            }
        }))
    }
}

/// A number constant: an integer when it has integer syntax, else a float.
fn parse_number(text: &str) -> Result<Value, String> {
    let bad = || format!("illegal number syntax: {}", fenrir_common::go_quote(text));
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b.to_string()),
        None => (false, clean.trim_start_matches('+').to_string()),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        if h.contains(['.', 'p']) {
            None
        } else {
            i64::from_str_radix(h, 16).ok()
        }
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()
    } else if lower.contains(['.', 'e']) {
        None
    } else if lower.len() > 1 && lower.starts_with('0') {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else {
        lower.parse().ok()
    };
    if let Some(i) = int {
        return Ok(Value::Int(if neg { -i } else { i }));
    }
    let f = crate::parser::parse_go_float(&body).map_err(|_| bad())?;
    Ok(Value::Float(if neg { -f } else { f }))
}

/// Parses template source; the error is `(byte offset, message)`.
pub(crate) fn parse(src: &str) -> Result<Tree, ParseFailure> {
    let lexed = lex(src);
    let mut p = Parser {
        items: lexed.items,
        lex_error: lexed.error,
        i: 0,
        vars: vec!["$".to_string()],
        defines: HashMap::new(),
        range_depth: 0,
        depth: 0,
    };
    let (root, end) = p.list()?;
    match end {
        ListEnd::Eof => {
            if let Some((_, pos, message)) = p.lex_error {
                return Err((pos, message));
            }
        }
        ListEnd::End => {
            let pos = p
                .items
                .get(p.i.saturating_sub(1))
                .map_or(0, |(_, pos)| *pos);
            return Err((pos, "unexpected {{end}}".to_string()));
        }
        ListEnd::Else(pos) => return Err((pos, "unexpected {{else}}".to_string())),
    }
    Ok(Tree {
        root,
        defines: p.defines,
    })
}
