//! Lexer and recursive-descent parser for the whole LogQL grammar.

mod grammar;
mod lexer;
mod literals;
mod validate;

use std::fmt;

use crate::ast::Expr;

pub(crate) use grammar::{binop_str, range_op_str, vector_op_str};
pub(crate) use literals::{parse_go_duration, parse_go_float, parse_humanized_bytes};
pub(crate) use validate::go_regex_error;

/// Loki refuses queries of this many bytes or more before parsing them.
pub(crate) const MAX_INPUT_SIZE: usize = 128 * 1024;

/// A parse error, printed as Loki prints it: `parse error at line L, col C: msg`, or
/// `parse error : msg` when no position applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// `Some((line, col))` when the error has a position (1-based; line 0 inside `[…]`).
    pub position: Option<(u32, u32)>,
    /// The message after the position.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => {
                write!(f, "parse error at line {line}, col {col}: {}", self.message)
            }
            None => write!(f, "parse error : {}", self.message),
        }
    }
}

impl std::error::Error for ParseError {}

impl ParseError {
    /// An error at a position as Loki reports it; `(0, 0)` means no position.
    pub(crate) fn at(pos: (u32, u32), message: impl Into<String>) -> ParseError {
        ParseError {
            position: (pos != (0, 0)).then_some(pos),
            message: message.into(),
        }
    }

    /// An error found after parsing (`parse error : msg`).
    pub(crate) fn without_position(message: impl Into<String>) -> ParseError {
        ParseError {
            position: None,
            message: message.into(),
        }
    }
}

/// Parses a LogQL query (log or metric) as Loki does: same grammar, same validation,
/// same error texts.
pub fn parse_expr(input: &str) -> Result<Expr, ParseError> {
    if input.len() >= MAX_INPUT_SIZE {
        return Err(ParseError::without_position(format!(
            "input size too long ({} > {MAX_INPUT_SIZE})",
            input.len()
        )));
    }
    grammar::QueryParser::new(input)?.parse_query()
}
