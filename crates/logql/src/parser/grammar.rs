//! Recursive-descent parser accepting the language of Loki's yacc grammar, reporting
//! syntax errors at the same token with the same yacc-style text.

use fenrir_common::{MatchOp, Matcher};

use super::lexer::{LexError, Lexer, Tok, Token};
use super::literals::parse_go_float;
use super::validate::{
    check_ip_pattern, check_json_path, check_line_pattern, check_logfmt_key, check_pattern_parser,
    check_regex, check_regexp_parser, go_regex_error,
};
use super::ParseError;
use crate::ast::*;
use crate::template::Template;

/// Deeper nesting is refused so that hostile input cannot overflow the stack.
pub(crate) const MAX_DEPTH: usize = 128;

/// At most this many binary operators and `and`/`or` label-filter combinators per query:
/// long chains build deep trees, and dropping or printing a tree recurses through it.
pub(crate) const MAX_COMBINATORS: usize = 1000;

type PResult<T> = Result<T, ParseError>;

/// An operand of a binary expression: Loki's grammar lets log selectors appear there and
/// rejects them afterwards with a type error.
enum Node {
    Log(LogExpr),
    Metric(MetricExpr),
}

pub(crate) struct QueryParser {
    lexer: Lexer,
    tok: Token,
    peeked: Option<Token>,
    depth: usize,
    combinators: usize,
    /// First error raised while building a node (Loki's constructor errors).
    semantic: Option<String>,
    /// First error raised while checking pipeline stages (Loki builds stages later).
    stage: Option<String>,
}

fn lex_error(e: LexError) -> ParseError {
    ParseError::at(e.pos, e.message)
}

fn cmp_of(tok: &Tok) -> Option<CmpOp> {
    Some(match tok {
        Tok::Eq | Tok::CmpEq => CmpOp::Eq,
        Tok::Neq => CmpOp::Neq,
        Tok::Gt => CmpOp::Gt,
        Tok::Gte => CmpOp::Gte,
        Tok::Lt => CmpOp::Lt,
        Tok::Lte => CmpOp::Lte,
        _ => return None,
    })
}

fn binop_of(tok: &Tok) -> Option<(BinOp, u8)> {
    Some(match tok {
        Tok::Or => (BinOp::Or, 1),
        Tok::And => (BinOp::And, 2),
        Tok::Unless => (BinOp::Unless, 2),
        Tok::CmpEq => (BinOp::Eq, 3),
        Tok::Neq => (BinOp::Neq, 3),
        Tok::Gt => (BinOp::Gt, 3),
        Tok::Gte => (BinOp::Gte, 3),
        Tok::Lt => (BinOp::Lt, 3),
        Tok::Lte => (BinOp::Lte, 3),
        Tok::Add => (BinOp::Add, 4),
        Tok::Sub => (BinOp::Sub, 4),
        Tok::Mul => (BinOp::Mul, 5),
        Tok::Div => (BinOp::Div, 5),
        Tok::Mod => (BinOp::Mod, 5),
        Tok::Pow => (BinOp::Pow, 6),
        _ => return None,
    })
}

pub(crate) fn binop_str(op: BinOp) -> &'static str {
    match op {
        BinOp::Or => "or",
        BinOp::And => "and",
        BinOp::Unless => "unless",
        BinOp::Eq => "==",
        BinOp::Neq => "!=",
        BinOp::Gt => ">",
        BinOp::Gte => ">=",
        BinOp::Lt => "<",
        BinOp::Lte => "<=",
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Mod => "%",
        BinOp::Pow => "^",
    }
}

pub(crate) fn range_op_str(op: RangeOp) -> &'static str {
    match op {
        RangeOp::CountOverTime => "count_over_time",
        RangeOp::Rate => "rate",
        RangeOp::RateCounter => "rate_counter",
        RangeOp::BytesOverTime => "bytes_over_time",
        RangeOp::BytesRate => "bytes_rate",
        RangeOp::AbsentOverTime => "absent_over_time",
        RangeOp::SumOverTime => "sum_over_time",
        RangeOp::AvgOverTime => "avg_over_time",
        RangeOp::MaxOverTime => "max_over_time",
        RangeOp::MinOverTime => "min_over_time",
        RangeOp::StddevOverTime => "stddev_over_time",
        RangeOp::StdvarOverTime => "stdvar_over_time",
        RangeOp::QuantileOverTime => "quantile_over_time",
        RangeOp::FirstOverTime => "first_over_time",
        RangeOp::LastOverTime => "last_over_time",
    }
}

pub(crate) fn vector_op_str(op: VectorOp) -> &'static str {
    match op {
        VectorOp::Sum => "sum",
        VectorOp::Avg => "avg",
        VectorOp::Min => "min",
        VectorOp::Max => "max",
        VectorOp::Count => "count",
        VectorOp::Stddev => "stddev",
        VectorOp::Stdvar => "stdvar",
        VectorOp::Topk => "topk",
        VectorOp::Bottomk => "bottomk",
        VectorOp::Sort => "sort",
        VectorOp::SortDesc => "sort_desc",
    }
}

/// Strips `( … )` around a scalar literal.
fn literal_value(m: &MetricExpr) -> Option<f64> {
    match m {
        MetricExpr::Literal(v) => Some(*v),
        MetricExpr::Parens(inner) => literal_value(inner),
        _ => None,
    }
}

/// Scalar op scalar, as Loki folds it at parse time.
fn fold(op: BinOp, l: f64, r: f64) -> f64 {
    let truth = |b: bool| if b { 1.0 } else { 0.0 };
    match op {
        BinOp::Add => l + r,
        BinOp::Sub => l - r,
        BinOp::Mul => l * r,
        BinOp::Div if r == 0.0 => f64::NAN,
        BinOp::Div => l / r,
        BinOp::Mod if r == 0.0 => f64::NAN,
        BinOp::Mod => l % r,
        BinOp::Pow => l.powf(r),
        BinOp::Eq => truth(l == r),
        BinOp::Neq => truth(l != r),
        BinOp::Gt => truth(l > r),
        BinOp::Gte => truth(l >= r),
        BinOp::Lt => truth(l < r),
        BinOp::Lte => truth(l <= r),
        BinOp::Or | BinOp::And | BinOp::Unless => f64::NAN,
    }
}

/// Go's `%f`.
fn go_percent_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v:.6}")
    }
}

impl QueryParser {
    pub(crate) fn new(input: &str) -> PResult<QueryParser> {
        let mut lexer = Lexer::new(input);
        let tok = lexer.next_token().map_err(lex_error)?;
        Ok(QueryParser {
            lexer,
            tok,
            peeked: None,
            depth: 0,
            combinators: 0,
            semantic: None,
            stage: None,
        })
    }

    fn advance(&mut self) -> PResult<Token> {
        let next = match self.peeked.take() {
            Some(t) => t,
            None => self.lexer.next_token().map_err(lex_error)?,
        };
        Ok(std::mem::replace(&mut self.tok, next))
    }

    fn peek(&mut self) -> PResult<&Tok> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next_token().map_err(lex_error)?);
        }
        Ok(&self.peeked.as_ref().map_or(&self.tok, |t| t).tok)
    }

    fn unexpected(&self, expected: &[&str]) -> ParseError {
        let mut message = format!("syntax error: unexpected {}", self.tok.tok.name());
        if !expected.is_empty() && expected.len() <= 4 {
            message.push_str(", expecting ");
            message.push_str(&expected.join(" or "));
        }
        ParseError::at(self.tok.pos, message)
    }

    fn expect(&mut self, want: Tok, expected: &[&str]) -> PResult<Token> {
        if self.tok.tok == want {
            self.advance()
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn expect_ident(&mut self, expected: &[&str]) -> PResult<String> {
        if let Tok::Ident(name) = &self.tok.tok {
            let name = name.clone();
            self.advance()?;
            Ok(name)
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn expect_string(&mut self, expected: &[&str]) -> PResult<String> {
        if let Tok::Str(s) = &self.tok.tok {
            let s = s.clone();
            self.advance()?;
            Ok(s)
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn semantic_error(&mut self, message: impl Into<String>) {
        if self.semantic.is_none() {
            self.semantic = Some(message.into());
        }
    }

    fn stage_error(&mut self, stage: &Stage, message: impl std::fmt::Display) {
        if self.stage.is_none() {
            self.stage = Some(format!("stage '{stage}' : {message}"));
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::at(
                self.tok.pos,
                format!("expression nesting too deep (more than {MAX_DEPTH} levels)"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Counts one more binary or `and`/`or` node.
    fn combine(&mut self) -> PResult<()> {
        self.combinators += 1;
        if self.combinators > MAX_COMBINATORS {
            return Err(ParseError::at(
                self.tok.pos,
                format!("query too complex (more than {MAX_COMBINATORS} operators)"),
            ));
        }
        Ok(())
    }

    /// The whole query.
    pub(crate) fn parse_query(mut self) -> PResult<Expr> {
        let node = self.parse_binary(0)?;
        if self.tok.tok != Tok::Eof {
            return Err(self.unexpected(&[]));
        }
        if let Some(message) = self.semantic.take() {
            return Err(ParseError::without_position(message));
        }
        let expr = match node {
            Node::Log(log) => Expr::Log(log),
            Node::Metric(m) => Expr::Metric(m),
        };
        match &expr {
            Expr::Log(log) => validate_selector(&log.selector)?,
            Expr::Metric(m) => validate_metric(m)?,
        }
        if let Some(message) = self.stage.take() {
            return Err(ParseError::without_position(message));
        }
        Ok(expr)
    }

    fn parse_binary(&mut self, min_prec: u8) -> PResult<Node> {
        self.enter()?;
        let mut lhs = self.parse_operand()?;
        while let Some((op, prec)) = binop_of(&self.tok.tok) {
            if prec < min_prec {
                break;
            }
            self.combine()?;
            self.advance()?;
            let (return_bool, matching) = self.parse_bin_modifier()?;
            let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.parse_binary(next_min)?;
            lhs = self.make_binary(op, lhs, rhs, return_bool, matching);
        }
        self.leave();
        Ok(lhs)
    }

    fn make_binary(
        &mut self,
        op: BinOp,
        lhs: Node,
        rhs: Node,
        return_bool: bool,
        matching: Option<VectorMatching>,
    ) -> Node {
        let type_name = |log: &LogExpr| {
            if log.stages.is_empty() {
                "*syntax.MatchersExpr"
            } else {
                "*syntax.PipelineExpr"
            }
        };
        let lhs = match lhs {
            Node::Log(log) => {
                self.semantic_error(format!(
                    "unexpected type for left leg of binary operation ({}): {}",
                    binop_str(op),
                    type_name(&log)
                ));
                return Node::Metric(MetricExpr::Literal(0.0));
            }
            Node::Metric(m) => m,
        };
        let rhs = match rhs {
            Node::Log(log) => {
                self.semantic_error(format!(
                    "unexpected type for right leg of binary operation ({}): {}",
                    binop_str(op),
                    type_name(&log)
                ));
                return Node::Metric(MetricExpr::Literal(0.0));
            }
            Node::Metric(m) => m,
        };
        let (l, r) = (literal_value(&lhs), literal_value(&rhs));
        if matches!(op, BinOp::And | BinOp::Or | BinOp::Unless) {
            if let Some(v) = l {
                self.semantic_error(format!(
                    "unexpected literal for left leg of logical/set binary operation ({}): {}",
                    binop_str(op),
                    go_percent_f(v)
                ));
            } else if let Some(v) = r {
                self.semantic_error(format!(
                    "unexpected literal for right leg of logical/set binary operation ({}): {}",
                    binop_str(op),
                    go_percent_f(v)
                ));
            }
        }
        if let (Some(l), Some(r)) = (l, r) {
            return Node::Metric(MetricExpr::Literal(fold(op, l, r)));
        }
        Node::Metric(MetricExpr::Binary(Box::new(Binary {
            op,
            lhs,
            rhs,
            return_bool,
            matching,
        })))
    }

    fn parse_bin_modifier(&mut self) -> PResult<(bool, Option<VectorMatching>)> {
        let return_bool = self.tok.tok == Tok::Bool;
        if return_bool {
            self.advance()?;
        }
        let on = match self.tok.tok {
            Tok::On => true,
            Tok::Ignoring => false,
            _ => return Ok((return_bool, None)),
        };
        self.advance()?;
        self.expect(Tok::LParen, &["("])?;
        let labels = self.parse_label_list()?;
        let card = match self.tok.tok {
            Tok::GroupLeft | Tok::GroupRight => {
                let left = self.tok.tok == Tok::GroupLeft;
                self.advance()?;
                let include = if self.tok.tok == Tok::LParen {
                    self.advance()?;
                    self.parse_label_list()?
                } else {
                    Vec::new()
                };
                if left {
                    Cardinality::ManyToOne(include)
                } else {
                    Cardinality::OneToMany(include)
                }
            }
            _ => Cardinality::OneToOne,
        };
        Ok((return_bool, Some(VectorMatching { on, labels, card })))
    }

    /// Labels after `(` up to and including `)`: `a, b)` or `)`.
    fn parse_label_list(&mut self) -> PResult<Vec<String>> {
        let mut labels = Vec::new();
        if self.tok.tok == Tok::RParen {
            self.advance()?;
            return Ok(labels);
        }
        labels.push(self.expect_ident(&["IDENTIFIER", ")"])?);
        loop {
            match self.tok.tok {
                Tok::Comma => {
                    self.advance()?;
                    labels.push(self.expect_ident(&["IDENTIFIER"])?);
                }
                Tok::RParen => {
                    self.advance()?;
                    return Ok(labels);
                }
                _ => return Err(self.unexpected(&[",", ")"])),
            }
        }
    }

    fn parse_grouping(&mut self) -> PResult<Grouping> {
        let without = self.tok.tok == Tok::Without;
        self.advance()?;
        self.expect(Tok::LParen, &["("])?;
        let labels = self.parse_label_list()?;
        Ok(Grouping { without, labels })
    }

    fn parse_operand(&mut self) -> PResult<Node> {
        match self.tok.tok.clone() {
            Tok::LBrace => {
                let selector = self.parse_selector()?;
                let (stages, _) = self.parse_pipeline(false)?;
                Ok(Node::Log(LogExpr { selector, stages }))
            }
            Tok::LParen => {
                self.advance()?;
                let inner = self.parse_binary(0)?;
                self.expect(Tok::RParen, &[])?;
                Ok(match inner {
                    Node::Log(log) => Node::Log(log),
                    Node::Metric(m) => Node::Metric(MetricExpr::Parens(Box::new(m))),
                })
            }
            Tok::Number(_) | Tok::Add | Tok::Sub => {
                Ok(Node::Metric(MetricExpr::Literal(self.parse_literal()?)))
            }
            Tok::RangeFn(op) => self.parse_range_agg(op),
            Tok::VectorFn(op) => self.parse_vector_agg(op),
            Tok::LabelReplace => self.parse_label_replace(),
            Tok::Vector => {
                self.advance()?;
                self.expect(Tok::LParen, &["("])?;
                let Tok::Number(text) = self.tok.tok.clone() else {
                    return Err(self.unexpected(&["NUMBER"]));
                };
                self.advance()?;
                self.expect(Tok::RParen, &[")"])?;
                let value = match parse_go_float(&text) {
                    Ok(v) => v,
                    Err(e) => {
                        self.semantic_error(format!("unable to parse vectorExpr as a float: {e}"));
                        0.0
                    }
                };
                Ok(Node::Metric(MetricExpr::Vector(value)))
            }
            _ => Err(self.unexpected(&[])),
        }
    }

    /// `NUMBER`, `+NUMBER` or `-NUMBER`.
    fn parse_literal(&mut self) -> PResult<f64> {
        let negate = match self.tok.tok {
            Tok::Add => {
                self.advance()?;
                false
            }
            Tok::Sub => {
                self.advance()?;
                true
            }
            _ => false,
        };
        let Tok::Number(text) = self.tok.tok.clone() else {
            return Err(self.unexpected(&["NUMBER"]));
        };
        self.advance()?;
        let value = match parse_go_float(&text) {
            Ok(v) => v,
            Err(e) => {
                self.semantic_error(format!("unable to parse literal as a float: {e}"));
                0.0
            }
        };
        Ok(if negate { -value } else { value })
    }

    fn parse_metric_operand(&mut self) -> PResult<MetricExpr> {
        match self.parse_binary(0)? {
            Node::Metric(m) => Ok(m),
            // A log selector may only be a binary operand: what follows it is unexpected.
            Node::Log(_) => Err(self.unexpected(&[])),
        }
    }

    fn parse_selector(&mut self) -> PResult<Vec<Matcher>> {
        self.expect(Tok::LBrace, &["{"])?;
        let mut matchers = Vec::new();
        if self.tok.tok == Tok::RBrace {
            self.advance()?;
            return Ok(matchers);
        }
        let mut first = true;
        loop {
            let expected: &[&str] = if first {
                &["IDENTIFIER", "}"]
            } else {
                &["IDENTIFIER"]
            };
            first = false;
            let name = self.expect_ident(expected)?;
            let op = self.parse_match_op()?;
            let value = self.expect_string(&["STRING"])?;
            if let Some(m) = self.make_matcher(op, &name, &value) {
                matchers.push(m);
            }
            match self.tok.tok {
                Tok::Comma => {
                    self.advance()?;
                }
                Tok::RBrace => {
                    self.advance()?;
                    return Ok(matchers);
                }
                _ => return Err(self.unexpected(&["}", ","])),
            }
        }
    }

    fn parse_match_op(&mut self) -> PResult<MatchOp> {
        let op = match self.tok.tok {
            Tok::Eq => MatchOp::Eq,
            Tok::Neq => MatchOp::Neq,
            Tok::Re => MatchOp::Re,
            Tok::Nre => MatchOp::Nre,
            _ => return Err(self.unexpected(&["=", "=~", "!~", "!="])),
        };
        self.advance()?;
        Ok(op)
    }

    fn make_matcher(&mut self, op: MatchOp, name: &str, value: &str) -> Option<Matcher> {
        if matches!(op, MatchOp::Re | MatchOp::Nre) {
            if let Err(e) = check_regex(value) {
                self.semantic_error(e);
                return None;
            }
        }
        match Matcher::new(op, name, value) {
            Ok(m) => Some(m),
            Err(e) => {
                self.semantic_error(e.to_string());
                None
            }
        }
    }

    /// Stages after a selector. In a range aggregation (`in_range`) the pipeline may end in
    /// `| unwrap …`, which is returned separately.
    fn parse_pipeline(&mut self, in_range: bool) -> PResult<(Vec<Stage>, Option<Unwrap>)> {
        let mut stages = Vec::new();
        loop {
            match self.tok.tok {
                Tok::PipeExact
                | Tok::PipeMatch
                | Tok::PipePattern
                | Tok::Neq
                | Tok::Nre
                | Tok::Npa => stages.push(self.parse_line_filter()?),
                Tok::Pipe => {
                    if in_range && *self.peek()? == Tok::Unwrap {
                        let unwrap = self.parse_unwrap()?;
                        return Ok((stages, Some(unwrap)));
                    }
                    self.advance()?;
                    stages.push(self.parse_stage()?);
                }
                _ => return Ok((stages, None)),
            }
        }
    }

    fn parse_line_filter(&mut self) -> PResult<Stage> {
        let op = match self.tok.tok {
            Tok::PipeExact => LineFilterOp::Contains,
            Tok::Neq => LineFilterOp::NotContains,
            Tok::PipeMatch => LineFilterOp::Regex,
            Tok::Nre => LineFilterOp::NotRegex,
            Tok::PipePattern => LineFilterOp::Pattern,
            _ => LineFilterOp::NotPattern,
        };
        self.advance()?;
        let mut values = vec![self.parse_line_filter_value()?];
        while self.tok.tok == Tok::Or {
            self.advance()?;
            values.push(self.parse_line_filter_value()?);
        }
        let stage = Stage::LineFilter(LineFilter { op, values });
        if let Stage::LineFilter(filter) = &stage {
            for value in &filter.values {
                let check = match (value, op) {
                    (LineFilterValue::Ip(_), LineFilterOp::Regex | LineFilterOp::NotRegex)
                    | (LineFilterValue::Ip(_), LineFilterOp::Pattern | LineFilterOp::NotPattern) => {
                        Err("ip: invalid operation".to_string())
                    }
                    (LineFilterValue::Ip(p), _) => check_ip_pattern(p),
                    (LineFilterValue::Str(s), LineFilterOp::Regex | LineFilterOp::NotRegex) => {
                        check_regex(s)
                    }
                    (LineFilterValue::Str(s), LineFilterOp::Pattern | LineFilterOp::NotPattern) => {
                        check_line_pattern(s)
                    }
                    _ => Ok(()),
                };
                if let Err(e) = check {
                    self.stage_error(&stage, e);
                }
            }
        }
        Ok(stage)
    }

    fn parse_line_filter_value(&mut self) -> PResult<LineFilterValue> {
        match self.tok.tok.clone() {
            Tok::Str(s) => {
                self.advance()?;
                Ok(LineFilterValue::Str(s))
            }
            Tok::Ip => {
                self.advance()?;
                self.expect(Tok::LParen, &["("])?;
                let s = self.expect_string(&["STRING"])?;
                self.expect(Tok::RParen, &[")"])?;
                Ok(LineFilterValue::Ip(s))
            }
            _ => Err(self.unexpected(&["STRING", "ip"])),
        }
    }

    /// A stage after `|`.
    fn parse_stage(&mut self) -> PResult<Stage> {
        match self.tok.tok.clone() {
            Tok::Json => {
                self.advance()?;
                let params = if matches!(self.tok.tok, Tok::Ident(_)) {
                    self.parse_extractions()?
                } else {
                    Vec::new()
                };
                let checks: Vec<String> = params
                    .iter()
                    .filter_map(|p| check_json_path(&p.expression).err())
                    .collect();
                let stage = Stage::Parser(Parser::Json(params));
                if let Some(e) = checks.first() {
                    self.stage_error(&stage, e);
                }
                Ok(stage)
            }
            Tok::Logfmt => {
                self.advance()?;
                let (mut strict, mut keep_empty) = (false, false);
                while let Tok::Flag(flag) = &self.tok.tok {
                    if flag == "--strict" {
                        strict = true;
                    } else {
                        keep_empty = true;
                    }
                    self.advance()?;
                }
                let params = if matches!(self.tok.tok, Tok::Ident(_)) {
                    self.parse_extractions()?
                } else {
                    Vec::new()
                };
                let checks: Vec<String> = params
                    .iter()
                    .filter_map(|p| check_logfmt_key(&p.expression).err())
                    .collect();
                let stage = Stage::Parser(Parser::Logfmt {
                    strict,
                    keep_empty,
                    params,
                });
                if let Some(e) = checks.first() {
                    self.stage_error(&stage, e);
                }
                Ok(stage)
            }
            Tok::Regexp => {
                self.advance()?;
                let re = self.expect_string(&["STRING"])?;
                if let Err(e) = check_regexp_parser(&re) {
                    self.semantic_error(format!("invalid regexp parser: {e}"));
                }
                Ok(Stage::Parser(Parser::Regexp(re)))
            }
            Tok::Pattern => {
                self.advance()?;
                let p = self.expect_string(&["STRING"])?;
                if let Err(e) = check_pattern_parser(&p) {
                    self.semantic_error(format!("invalid pattern parser: {e}"));
                }
                Ok(Stage::Parser(Parser::Pattern(p)))
            }
            Tok::Unpack => {
                self.advance()?;
                Ok(Stage::Parser(Parser::Unpack))
            }
            Tok::LineFmt => {
                self.advance()?;
                let t = self.expect_string(&["STRING"])?;
                let check = Template::parse_named("line", &t).err();
                let stage = Stage::LineFormat(t);
                if let Some(e) = check {
                    self.stage_error(&stage, format!("invalid line template: {e}"));
                }
                Ok(stage)
            }
            Tok::LabelFmt => {
                self.advance()?;
                self.parse_label_format()
            }
            Tok::Decolorize => {
                self.advance()?;
                Ok(Stage::Decolorize)
            }
            Tok::Drop | Tok::Keep => {
                let drop = self.tok.tok == Tok::Drop;
                self.advance()?;
                let selections = self.parse_label_selections()?;
                Ok(if drop {
                    Stage::Drop(selections)
                } else {
                    Stage::Keep(selections)
                })
            }
            Tok::Ident(_) | Tok::LParen => Ok(Stage::LabelFilter(self.parse_label_filter()?)),
            _ => Err(self.unexpected(&[])),
        }
    }

    /// `a="path", b` parameters of `json` and `logfmt`.
    fn parse_extractions(&mut self) -> PResult<Vec<LabelExtraction>> {
        let mut out = Vec::new();
        loop {
            let label = self.expect_ident(&["IDENTIFIER"])?;
            let expression = if self.tok.tok == Tok::Eq {
                self.advance()?;
                self.expect_string(&["STRING"])?
            } else {
                label.clone()
            };
            out.push(LabelExtraction { label, expression });
            if self.tok.tok != Tok::Comma {
                return Ok(out);
            }
            self.advance()?;
        }
    }

    fn parse_label_format(&mut self) -> PResult<Stage> {
        let mut formats = Vec::new();
        loop {
            let dst = self.expect_ident(&["IDENTIFIER"])?;
            self.expect(Tok::Eq, &["="])?;
            let format = match self.tok.tok.clone() {
                Tok::Ident(src) => LabelFormat::Rename { dst, src },
                Tok::Str(template) => LabelFormat::Template { dst, template },
                _ => return Err(self.unexpected(&["IDENTIFIER", "STRING"])),
            };
            self.advance()?;
            formats.push(format);
            if self.tok.tok != Tok::Comma {
                break;
            }
            self.advance()?;
        }
        let mut problem = None;
        let mut seen = std::collections::HashSet::new();
        for f in &formats {
            let dst = match f {
                LabelFormat::Rename { dst, .. } | LabelFormat::Template { dst, .. } => dst,
            };
            if dst == "__error__" {
                problem = Some("__error__ cannot be formatted".to_string());
                break;
            }
            if !seen.insert(dst.clone()) {
                problem = Some(format!(
                    "multiple label name '{dst}' not allowed in a single format operation"
                ));
                break;
            }
        }
        if problem.is_none() {
            for f in &formats {
                if let LabelFormat::Template { dst, template } = f {
                    if let Err(e) = Template::parse_named("label", template) {
                        problem = Some(format!("invalid template for label '{dst}': {e}"));
                        break;
                    }
                }
            }
        }
        let stage = Stage::LabelFormat(formats);
        if let Some(p) = problem {
            self.stage_error(&stage, p);
        }
        Ok(stage)
    }

    fn parse_label_selections(&mut self) -> PResult<Vec<LabelSelection>> {
        let mut out = Vec::new();
        loop {
            let name = self.expect_ident(&["IDENTIFIER"])?;
            let matcher = match self.tok.tok {
                Tok::Eq | Tok::Neq | Tok::Re | Tok::Nre => {
                    let op = self.parse_match_op()?;
                    let value = self.expect_string(&["STRING"])?;
                    if matches!(op, MatchOp::Re | MatchOp::Nre) {
                        if let Err(e) = check_regex(&value) {
                            self.semantic_error(e);
                        }
                    }
                    Some((op, value))
                }
                _ => None,
            };
            out.push(LabelSelection { name, matcher });
            if self.tok.tok != Tok::Comma {
                return Ok(out);
            }
            self.advance()?;
        }
    }

    /// A label filter expression. `or` is loosest, then `and`; a `,` or a juxtaposed filter
    /// takes everything to its right (Loki's grammar shifts on them).
    fn parse_label_filter(&mut self) -> PResult<LabelFilter> {
        self.enter()?;
        let mut left = self.parse_label_filter_and()?;
        while self.tok.tok == Tok::Or {
            self.combine()?;
            self.advance()?;
            let right = self.parse_label_filter_and()?;
            left = LabelFilter::Or(Box::new(left), Box::new(right));
        }
        self.leave();
        Ok(left)
    }

    fn parse_label_filter_and(&mut self) -> PResult<LabelFilter> {
        let mut left = self.parse_label_filter_unit()?;
        while self.tok.tok == Tok::And {
            self.combine()?;
            self.advance()?;
            let right = self.parse_label_filter_unit()?;
            left = LabelFilter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_label_filter_unit(&mut self) -> PResult<LabelFilter> {
        let primary = self.parse_label_filter_primary()?;
        match self.tok.tok {
            Tok::Comma => {
                self.advance()?;
                let rest = self.parse_label_filter()?;
                Ok(LabelFilter::And(Box::new(primary), Box::new(rest)))
            }
            Tok::Ident(_) | Tok::LParen => {
                let rest = self.parse_label_filter()?;
                Ok(LabelFilter::And(Box::new(primary), Box::new(rest)))
            }
            _ => Ok(primary),
        }
    }

    fn parse_label_filter_primary(&mut self) -> PResult<LabelFilter> {
        if self.tok.tok == Tok::LParen {
            self.advance()?;
            let inner = self.parse_label_filter()?;
            self.expect(Tok::RParen, &[])?;
            return Ok(LabelFilter::Parens(Box::new(inner)));
        }
        let name = self.expect_ident(&["IDENTIFIER", "("])?;
        let op_tok = self.tok.tok.clone();
        match op_tok {
            Tok::Re | Tok::Nre => {
                let op = self.parse_match_op()?;
                let value = self.expect_string(&["STRING"])?;
                if let Err(e) = check_regex(&value) {
                    self.semantic_error(e);
                }
                Ok(LabelFilter::String { name, op, value })
            }
            Tok::Eq | Tok::Neq | Tok::CmpEq | Tok::Gt | Tok::Gte | Tok::Lt | Tok::Lte => {
                self.advance()?;
                let cmp = cmp_of(&op_tok).unwrap_or(CmpOp::Eq);
                let equality = matches!(op_tok, Tok::Eq | Tok::Neq);
                match self.tok.tok.clone() {
                    Tok::Str(value) if equality => {
                        self.advance()?;
                        let op = if op_tok == Tok::Eq {
                            MatchOp::Eq
                        } else {
                            MatchOp::Neq
                        };
                        Ok(LabelFilter::String { name, op, value })
                    }
                    Tok::Ip if equality => {
                        self.advance()?;
                        self.expect(Tok::LParen, &["("])?;
                        let pattern = self.expect_string(&["STRING"])?;
                        self.expect(Tok::RParen, &[")"])?;
                        let filter = LabelFilter::Ip {
                            name,
                            negated: op_tok == Tok::Neq,
                            pattern,
                        };
                        if let LabelFilter::Ip { pattern, .. } = &filter {
                            if let Err(e) = check_ip_pattern(pattern) {
                                let stage = Stage::LabelFilter(filter.clone());
                                self.stage_error(&stage, e);
                            }
                        }
                        Ok(filter)
                    }
                    Tok::Duration(value) => {
                        self.advance()?;
                        Ok(LabelFilter::Duration {
                            name,
                            op: cmp,
                            value,
                        })
                    }
                    Tok::Bytes(value) => {
                        self.advance()?;
                        Ok(LabelFilter::Bytes {
                            name,
                            op: cmp,
                            value,
                        })
                    }
                    Tok::Number(_) | Tok::Add | Tok::Sub => {
                        let value = self.parse_literal()?;
                        Ok(LabelFilter::Number {
                            name,
                            op: cmp,
                            value,
                        })
                    }
                    _ => Err(self.unexpected(&[])),
                }
            }
            _ => Err(self.unexpected(&[])),
        }
    }

    fn parse_unwrap(&mut self) -> PResult<Unwrap> {
        self.expect(Tok::Pipe, &["|"])?;
        self.expect(Tok::Unwrap, &["unwrap"])?;
        let conversion = match self.tok.tok {
            Tok::BytesConv => Some(UnwrapConversion::Bytes),
            Tok::DurationConv => Some(UnwrapConversion::Duration),
            Tok::DurationSecondsConv => Some(UnwrapConversion::DurationSeconds),
            Tok::Ident(_) => None,
            _ => {
                return Err(self.unexpected(&[
                    "IDENTIFIER",
                    "BYTES_CONV",
                    "DURATION_CONV",
                    "DURATION_SECONDS_CONV",
                ]))
            }
        };
        let (label, conversion) = match conversion {
            Some(conversion) => {
                self.advance()?;
                self.expect(Tok::LParen, &["("])?;
                let label = self.expect_ident(&["IDENTIFIER"])?;
                self.expect(Tok::RParen, &[")"])?;
                (label, conversion)
            }
            None => (self.expect_ident(&["IDENTIFIER"])?, UnwrapConversion::Float),
        };
        let mut post_filters = Vec::new();
        while self.tok.tok == Tok::Pipe {
            self.advance()?;
            post_filters.push(self.parse_label_filter()?);
        }
        Ok(Unwrap {
            label,
            conversion,
            post_filters,
        })
    }

    fn parse_offset(&mut self) -> PResult<i64> {
        if self.tok.tok != Tok::Offset {
            return Ok(0);
        }
        self.advance()?;
        match self.tok.tok {
            Tok::Duration(d) => {
                self.advance()?;
                Ok(d)
            }
            _ => Err(self.unexpected(&["DURATION"])),
        }
    }

    /// The argument of a range aggregation, in any of Loki's placements of `[range]`.
    fn parse_log_range(&mut self, expected: &[&str]) -> PResult<LogRange> {
        self.enter()?;
        let result = match self.tok.tok {
            Tok::LBrace => {
                let selector = self.parse_selector()?;
                self.parse_log_range_after_selector(selector, false)
            }
            Tok::LParen => {
                self.advance()?;
                if self.tok.tok == Tok::LParen {
                    let inner = self.parse_log_range(&["{", "("])?;
                    self.expect(Tok::RParen, &[])?;
                    Ok(inner)
                } else if self.tok.tok == Tok::LBrace {
                    let selector = self.parse_selector()?;
                    self.parse_log_range_after_selector(selector, true)
                } else {
                    Err(self.unexpected(&["{", "("]))
                }
            }
            _ => Err(self.unexpected(expected)),
        };
        self.leave();
        result
    }

    /// After `{…}`; `in_parens` when an opening `(` came right before the selector.
    fn parse_log_range_after_selector(
        &mut self,
        selector: Vec<Matcher>,
        in_parens: bool,
    ) -> PResult<LogRange> {
        if let Tok::Range(range) = self.tok.tok {
            // `{…}[r] offset o | stages | unwrap`
            self.advance()?;
            let offset = self.parse_offset()?;
            let (stages, unwrap) = self.parse_pipeline(true)?;
            if in_parens {
                self.expect(Tok::RParen, &[])?;
            }
            return Ok(LogRange {
                log: LogExpr { selector, stages },
                range,
                offset,
                unwrap,
            });
        }
        let (stages, unwrap) = self.parse_pipeline(true)?;
        let closed_early = in_parens && self.tok.tok == Tok::RParen;
        if closed_early {
            // `({…} | stages)[r] offset o`
            self.advance()?;
        }
        let Tok::Range(range) = self.tok.tok else {
            return Err(self.unexpected(if closed_early { &["RANGE"] } else { &[] }));
        };
        self.advance()?;
        let offset = self.parse_offset()?;
        if in_parens && !closed_early {
            self.expect(Tok::RParen, &[])?;
        }
        Ok(LogRange {
            log: LogExpr { selector, stages },
            range,
            offset,
            unwrap,
        })
    }

    fn parse_range_agg(&mut self, op: RangeOp) -> PResult<Node> {
        self.advance()?;
        self.expect(Tok::LParen, &["("])?;
        let param = if let Tok::Number(text) = &self.tok.tok {
            let text = text.clone();
            self.advance()?;
            self.expect(Tok::Comma, &[","])?;
            Some(text)
        } else {
            None
        };
        let expected: &[&str] = if param.is_some() {
            &["{", "("]
        } else {
            &["NUMBER", "{", "("]
        };
        let range = self.parse_log_range(expected)?;
        self.expect(Tok::RParen, &[])?;
        let grouping = match self.tok.tok {
            Tok::By | Tok::Without => Some(self.parse_grouping()?),
            _ => None,
        };
        let name = range_op_str(op);
        let mut param_value = None;
        if let Some(text) = &param {
            if op != RangeOp::QuantileOverTime {
                self.semantic_error(format!(
                    "parameter {text} not supported for operation {name}"
                ));
            } else {
                match parse_go_float(text) {
                    Ok(v) => param_value = Some(v),
                    Err(e) => {
                        self.semantic_error(format!("invalid parameter for operation {name}: {e}"))
                    }
                }
            }
        } else if op == RangeOp::QuantileOverTime {
            self.semantic_error(format!("parameter required for operation {name}"));
        }
        use RangeOp::*;
        if grouping.is_some()
            && !matches!(
                op,
                AvgOverTime
                    | StddevOverTime
                    | StdvarOverTime
                    | QuantileOverTime
                    | MaxOverTime
                    | MinOverTime
                    | FirstOverTime
                    | LastOverTime
            )
        {
            self.semantic_error(format!("grouping not allowed for {name} aggregation"));
        }
        if range.unwrap.is_some() {
            if matches!(op, CountOverTime | BytesOverTime | BytesRate) {
                self.semantic_error(format!("invalid aggregation {name} with unwrap"));
            }
        } else if !matches!(
            op,
            BytesOverTime | BytesRate | CountOverTime | Rate | AbsentOverTime
        ) {
            self.semantic_error(format!("invalid aggregation {name} without unwrap"));
        }
        Ok(Node::Metric(MetricExpr::RangeAgg(RangeAgg {
            op,
            range,
            param: param_value,
            grouping,
        })))
    }

    fn parse_vector_agg(&mut self, op: VectorOp) -> PResult<Node> {
        self.advance()?;
        let before = match self.tok.tok {
            Tok::By | Tok::Without => Some(self.parse_grouping()?),
            _ => None,
        };
        self.expect(Tok::LParen, &["("])?;
        let mut param = None;
        if let Tok::Number(text) = &self.tok.tok {
            let text = text.clone();
            if *self.peek()? == Tok::Comma {
                self.advance()?;
                self.advance()?;
                param = Some(text);
            }
        }
        let inner = self.parse_metric_operand()?;
        self.expect(Tok::RParen, &[])?;
        let grouping = match (&before, &self.tok.tok) {
            (None, Tok::By | Tok::Without) => Some(self.parse_grouping()?),
            _ => before,
        };
        let name = vector_op_str(op);
        let mut k = None;
        match (op, &param) {
            (VectorOp::Topk | VectorOp::Bottomk, None) => {
                self.semantic_error(format!("parameter required for operation {name}"));
            }
            (VectorOp::Topk | VectorOp::Bottomk, Some(text)) => match text.parse::<i64>() {
                Ok(v) if v > 0 => k = Some(v),
                Ok(_) => self.semantic_error(format!(
                    "invalid parameter (must be greater than 0) {name}({text}"
                )),
                Err(_) => self.semantic_error(format!("invalid parameter {name}({text},")),
            },
            (_, Some(text)) => self.semantic_error(format!(
                "unsupported parameter for operation {name}({text},"
            )),
            (_, None) => {}
        }
        Ok(Node::Metric(MetricExpr::VectorAgg(VectorAgg {
            op,
            inner: Box::new(inner),
            param: k,
            grouping,
        })))
    }

    fn parse_label_replace(&mut self) -> PResult<Node> {
        self.advance()?;
        self.expect(Tok::LParen, &["("])?;
        let inner = self.parse_metric_operand()?;
        self.expect(Tok::Comma, &[","])?;
        let dst = self.expect_string(&["STRING"])?;
        self.expect(Tok::Comma, &[","])?;
        let replacement = self.expect_string(&["STRING"])?;
        self.expect(Tok::Comma, &[","])?;
        let src = self.expect_string(&["STRING"])?;
        self.expect(Tok::Comma, &[","])?;
        let regex = self.expect_string(&["STRING"])?;
        self.expect(Tok::RParen, &[")"])?;
        let anchored = format!("^(?:{})$", fenrir_common::go_regex_syntax(&regex));
        if let Err(e) = regex::Regex::new(&anchored) {
            let message = go_regex_error(&format!("^(?:{regex})$"), &e);
            self.semantic_error(format!("invalid regex in label_replace: {message}"));
        }
        Ok(Node::Metric(MetricExpr::LabelReplace(Box::new(
            LabelReplace {
                inner,
                dst,
                replacement,
                src,
                regex,
            },
        ))))
    }
}

const EMPTY_COMPATIBLE: &str = "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will";

fn validate_selector(selector: &[Matcher]) -> Result<(), ParseError> {
    if selector.iter().any(|m| !m.matches_empty()) {
        Ok(())
    } else {
        Err(ParseError::without_position(EMPTY_COMPATIBLE))
    }
}

/// Loki's post-parse validation: every selector, and no grouping on `sort`.
fn validate_metric(m: &MetricExpr) -> Result<(), ParseError> {
    match m {
        MetricExpr::Binary(b) => {
            validate_metric(&b.lhs)?;
            validate_metric(&b.rhs)
        }
        MetricExpr::Literal(_) | MetricExpr::Vector(_) => Ok(()),
        MetricExpr::VectorAgg(v) => {
            if matches!(v.op, VectorOp::Sort | VectorOp::SortDesc)
                && v.grouping.as_ref().is_some_and(|g| !g.labels.is_empty())
            {
                return Err(ParseError::without_position(
                    "sort and sort_desc doesn't allow grouping by ",
                ));
            }
            validate_metric(&v.inner)
        }
        MetricExpr::RangeAgg(r) => validate_selector(&r.range.log.selector),
        MetricExpr::LabelReplace(l) => validate_metric(&l.inner),
        MetricExpr::Parens(inner) => validate_metric(inner),
    }
}
