//! `Display` for the syntax tree: prints LogQL that parses back to the same tree, close to
//! Loki's own `String()` (`{app="api"} |= "x" | json`,
//! `sum by (level) (count_over_time({app="api"}[1m]))`).
//!
//! Parentheses are printed only where the tree has a `Parens` node, so the tree must have
//! the shape the parser gives (it does when it came from the parser).

use std::fmt::{self, Display, Formatter, Write};

use fenrir_common::go_quote;

use crate::ast::*;
use crate::parser::{binop_str, range_op_str, vector_op_str};

/// A float as the shortest text that parses back to it; never in exponent form.
pub(crate) fn fmt_number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v == 0.0 && v.is_sign_negative() {
        // `-0` would lex as a Go duration.
        "-0.0".to_string()
    } else {
        format!("{v}")
    }
}

/// Prometheus `model.Duration` text (`5m`, `1h30m`, `1d`), for whole positive milliseconds.
fn prometheus_duration(ns: i64) -> Option<String> {
    if ns < 0 || ns % 1_000_000 != 0 {
        return None;
    }
    let mut ms = ns / 1_000_000;
    if ms == 0 {
        return Some("0s".to_string());
    }
    let mut out = String::new();
    let units: [(&str, i64, bool); 7] = [
        ("y", 365 * 24 * 3_600_000, true),
        ("w", 7 * 24 * 3_600_000, true),
        ("d", 24 * 3_600_000, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1000, false),
        ("ms", 1, false),
    ];
    for (unit, mult, exact) in units {
        if exact && ms % mult != 0 {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            let _ = write!(out, "{v}{unit}");
            ms -= v * mult;
        }
    }
    Some(out)
}

/// Go `time.Duration.String()` (`1h0m0s`, `1.5s`, `-5m0s`, `250µs`).
fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let frac = |value: u64, scale: u64| -> String {
        let int = value / scale;
        let rest = value % scale;
        if rest == 0 {
            return int.to_string();
        }
        let width = scale.to_string().len() - 1;
        let digits = format!("{rest:0width$}");
        format!("{int}.{}", digits.trim_end_matches('0'))
    };
    if u < 1_000 {
        let _ = write!(out, "{u}ns");
    } else if u < 1_000_000 {
        let _ = write!(out, "{}µs", frac(u, 1_000));
    } else if u < 1_000_000_000 {
        let _ = write!(out, "{}ms", frac(u, 1_000_000));
    } else {
        let hours = u / 3_600_000_000_000;
        let minutes = (u / 60_000_000_000) % 60;
        let secs = u % 60_000_000_000;
        if hours > 0 {
            let _ = write!(out, "{hours}h");
        }
        if hours > 0 || minutes > 0 {
            let _ = write!(out, "{minutes}m");
        }
        let _ = write!(out, "{}s", frac(secs, 1_000_000_000));
    }
    out
}

/// A duration literal that LogQL's lexer reads back to the same value.
pub(crate) fn fmt_duration(ns: i64) -> String {
    prometheus_duration(ns).unwrap_or_else(|| go_duration(ns))
}

fn cmp_str(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "==",
        CmpOp::Neq => "!=",
        CmpOp::Gt => ">",
        CmpOp::Gte => ">=",
        CmpOp::Lt => "<",
        CmpOp::Lte => "<=",
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Log(l) => l.fmt(f),
            Expr::Metric(m) => m.fmt(f),
        }
    }
}

impl Display for LogExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.selector.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")?;
        for stage in &self.stages {
            write!(f, " {stage}")?;
        }
        Ok(())
    }
}

impl Display for LineFilterOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LineFilterOp::Contains => "|=",
            LineFilterOp::NotContains => "!=",
            LineFilterOp::Regex => "|~",
            LineFilterOp::NotRegex => "!~",
            LineFilterOp::Pattern => "|>",
            LineFilterOp::NotPattern => "!>",
        })
    }
}

impl Display for LineFilterValue {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LineFilterValue::Str(s) => f.write_str(&go_quote(s)),
            LineFilterValue::Ip(s) => write!(f, "ip({})", go_quote(s)),
        }
    }
}

impl Display for LineFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.op)?;
        for (i, v) in self.values.iter().enumerate() {
            if i > 0 {
                f.write_str(" or")?;
            }
            write!(f, " {v}")?;
        }
        Ok(())
    }
}

fn write_extractions(f: &mut Formatter<'_>, params: &[LabelExtraction]) -> fmt::Result {
    for (i, p) in params.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{}={}", p.label, go_quote(&p.expression))?;
    }
    Ok(())
}

impl Display for Parser {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Parser::Json(params) => {
                f.write_str("| json")?;
                if !params.is_empty() {
                    f.write_str(" ")?;
                    write_extractions(f, params)?;
                }
                Ok(())
            }
            Parser::Logfmt {
                strict,
                keep_empty,
                params,
            } => {
                f.write_str("| logfmt")?;
                if *strict {
                    f.write_str(" --strict")?;
                }
                if *keep_empty {
                    f.write_str(" --keep-empty")?;
                }
                if !params.is_empty() {
                    f.write_str(" ")?;
                    write_extractions(f, params)?;
                }
                Ok(())
            }
            Parser::Regexp(re) => write!(f, "| regexp {}", go_quote(re)),
            Parser::Pattern(p) => write!(f, "| pattern {}", go_quote(p)),
            Parser::Unpack => f.write_str("| unpack"),
        }
    }
}

impl Display for LabelFormat {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LabelFormat::Rename { dst, src } => write!(f, "{dst}={src}"),
            LabelFormat::Template { dst, template } => write!(f, "{dst}={}", go_quote(template)),
        }
    }
}

impl Display for LabelSelection {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some((op, value)) = &self.matcher {
            write!(f, "{}{}", op.as_str(), go_quote(value))?;
        }
        Ok(())
    }
}

fn write_list<T: Display>(f: &mut Formatter<'_>, items: &[T], sep: &str) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stage::LineFilter(l) => l.fmt(f),
            Stage::Parser(p) => p.fmt(f),
            Stage::LabelFilter(l) => write!(f, "| {l}"),
            Stage::LineFormat(t) => write!(f, "| line_format {}", go_quote(t)),
            Stage::LabelFormat(formats) => {
                f.write_str("| label_format ")?;
                write_list(f, formats, ",")
            }
            Stage::Drop(items) => {
                f.write_str("| drop ")?;
                write_list(f, items, ",")
            }
            Stage::Keep(items) => {
                f.write_str("| keep ")?;
                write_list(f, items, ",")
            }
            Stage::Decolorize => f.write_str("| decolorize"),
        }
    }
}

fn is_primary(f: &LabelFilter) -> bool {
    !matches!(f, LabelFilter::And(..) | LabelFilter::Or(..))
}

/// The label-filter grammar: `or` loosest, left-associative; `and` next, left-associative;
/// a `,` takes a single filter on its left and everything on its right. These functions
/// choose `and`/`,` so that parsing the text rebuilds the same tree. `tail` says whether
/// the text may extend to the end of the enclosing expression.
fn write_filter_or(out: &mut String, f: &LabelFilter, tail: bool) {
    match f {
        LabelFilter::Or(l, r) => {
            write_filter_or(out, l, false);
            out.push_str(" or ");
            write_filter_and(out, r, tail);
        }
        _ => write_filter_and(out, f, tail),
    }
}

fn write_filter_and(out: &mut String, f: &LabelFilter, tail: bool) {
    match f {
        LabelFilter::And(l, r) if is_primary(r) => {
            write_filter_and(out, l, false);
            out.push_str(" and ");
            write_filter_primary(out, r);
        }
        LabelFilter::And(l, r) if is_primary(l) && tail => {
            write_filter_primary(out, l);
            out.push_str(", ");
            write_filter_or(out, r, true);
        }
        LabelFilter::And(l, r) => {
            // Only reached for trees the parser cannot build; parenthesise the right side
            // so the text stays valid.
            write_filter_and(out, l, false);
            out.push_str(" and (");
            write_filter_or(out, r, true);
            out.push(')');
        }
        LabelFilter::Or(..) => {
            out.push('(');
            write_filter_or(out, f, true);
            out.push(')');
        }
        _ => write_filter_primary(out, f),
    }
}

fn write_filter_primary(out: &mut String, f: &LabelFilter) {
    match f {
        LabelFilter::Parens(inner) => {
            out.push('(');
            write_filter_or(out, inner, true);
            out.push(')');
        }
        LabelFilter::String { name, op, value } => {
            let _ = write!(out, "{name}{}{}", op.as_str(), go_quote(value));
        }
        LabelFilter::Number { name, op, value } => {
            let _ = write!(out, "{name} {} {}", cmp_str(*op), fmt_number(*value));
        }
        LabelFilter::Duration { name, op, value } => {
            let _ = write!(out, "{name} {} {}", cmp_str(*op), fmt_duration(*value));
        }
        LabelFilter::Bytes { name, op, value } => {
            // `0B` lexes as Go's binary-literal prefix, as in Loki: zero needs another unit.
            let unit = if *value == 0 { "KB" } else { "B" };
            let _ = write!(out, "{name} {} {value}{unit}", cmp_str(*op));
        }
        LabelFilter::Ip {
            name,
            negated,
            pattern,
        } => {
            let op = if *negated { "!=" } else { "=" };
            let _ = write!(out, "{name}{op}ip({})", go_quote(pattern));
        }
        LabelFilter::And(..) | LabelFilter::Or(..) => {
            out.push('(');
            write_filter_or(out, f, true);
            out.push(')');
        }
    }
}

impl Display for LabelFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        write_filter_or(&mut out, self, true);
        f.write_str(&out)
    }
}

impl Display for Grouping {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(if self.without { "without (" } else { "by (" })?;
        write_list(f, &self.labels, ", ")?;
        f.write_str(")")
    }
}

impl Display for Unwrap {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.conversion {
            UnwrapConversion::Float => write!(f, "| unwrap {}", self.label)?,
            UnwrapConversion::Bytes => write!(f, "| unwrap bytes({})", self.label)?,
            UnwrapConversion::Duration => write!(f, "| unwrap duration({})", self.label)?,
            UnwrapConversion::DurationSeconds => {
                write!(f, "| unwrap duration_seconds({})", self.label)?
            }
        }
        for filter in &self.post_filters {
            write!(f, " | {filter}")?;
        }
        Ok(())
    }
}

impl Display for LogRange {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.log)?;
        if let Some(unwrap) = &self.unwrap {
            write!(f, " {unwrap}")?;
        }
        if !self.log.stages.is_empty() || self.unwrap.is_some() {
            f.write_str(" ")?;
        }
        let range = prometheus_duration(self.range).unwrap_or_else(|| go_duration(self.range));
        write!(f, "[{range}]")?;
        if self.offset != 0 {
            write!(f, " offset {}", fmt_duration(self.offset))?;
        }
        Ok(())
    }
}

impl Display for RangeAgg {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", range_op_str(self.op))?;
        if let Some(p) = self.param {
            write!(f, "{}, ", fmt_number(p))?;
        }
        write!(f, "{})", self.range)?;
        if let Some(g) = &self.grouping {
            write!(f, " {g}")?;
        }
        Ok(())
    }
}

impl Display for VectorAgg {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(vector_op_str(self.op))?;
        match &self.grouping {
            Some(g) => write!(f, " {g} (")?,
            None => f.write_str("(")?,
        }
        if let Some(k) = self.param {
            write!(f, "{k}, ")?;
        }
        write!(f, "{})", self.inner)
    }
}

impl Display for Binary {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.lhs, binop_str(self.op))?;
        if self.return_bool {
            f.write_str(" bool")?;
        }
        if let Some(m) = &self.matching {
            f.write_str(if m.on { " on (" } else { " ignoring (" })?;
            write_list(f, &m.labels, ", ")?;
            f.write_str(")")?;
            // Always print the include list: a bare `group_left` before a parenthesised
            // right operand would read that operand as the list.
            match &m.card {
                Cardinality::OneToOne => {}
                Cardinality::ManyToOne(include) => {
                    f.write_str(" group_left (")?;
                    write_list(f, include, ", ")?;
                    f.write_str(")")?;
                }
                Cardinality::OneToMany(include) => {
                    f.write_str(" group_right (")?;
                    write_list(f, include, ", ")?;
                    f.write_str(")")?;
                }
            }
        }
        write!(f, " {}", self.rhs)
    }
}

impl Display for LabelReplace {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "label_replace({}, {}, {}, {}, {})",
            self.inner,
            go_quote(&self.dst),
            go_quote(&self.replacement),
            go_quote(&self.src),
            go_quote(&self.regex)
        )
    }
}

impl Display for MetricExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            MetricExpr::RangeAgg(r) => r.fmt(f),
            MetricExpr::VectorAgg(v) => v.fmt(f),
            MetricExpr::Binary(b) => b.fmt(f),
            MetricExpr::Literal(v) => f.write_str(&fmt_number(*v)),
            MetricExpr::Vector(v) => write!(f, "vector({})", fmt_number(*v)),
            MetricExpr::LabelReplace(l) => l.fmt(f),
            MetricExpr::Parens(inner) => write!(f, "({inner})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_in_lexable_forms() {
        assert_eq!(fmt_duration(300_000_000_000), "5m");
        assert_eq!(fmt_duration(5_400_000_000_000), "1h30m");
        assert_eq!(fmt_duration(86_400_000_000_000), "1d");
        assert_eq!(fmt_duration(1_500_000_000), "1s500ms");
        assert_eq!(fmt_duration(-300_000_000_000), "-5m0s");
        assert_eq!(fmt_duration(1_500), "1.5µs");
        assert_eq!(fmt_duration(0), "0s");
        assert_eq!(go_duration(3_661_000_000_000), "1h1m1s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
    }

    #[test]
    fn zero_bytes_print_in_a_lexable_form() {
        // Found by the logql_parse fuzz target: `0MB` printed as `0B`, which does not lex.
        let expr = crate::parse_expr(r#"{app="jobs"} | logfmt | bytes >= 0MB"#).unwrap();
        let printed = expr.to_string();
        assert_eq!(printed, r#"{app="jobs"} | logfmt | bytes >= 0KB"#);
        assert_eq!(crate::parse_expr(&printed).unwrap(), expr);
        let expr = crate::parse_expr(r#"{app="jobs"} | bytes < 1KiB"#).unwrap();
        assert_eq!(crate::parse_expr(&expr.to_string()).unwrap(), expr);
    }

    #[test]
    fn numbers_print_shortest() {
        assert_eq!(fmt_number(0.95), "0.95");
        assert_eq!(fmt_number(100.0), "100");
        assert_eq!(fmt_number(1e21), "1000000000000000000000");
        assert_eq!(fmt_number(-0.0), "-0.0");
    }
}
