//! The LogQL syntax tree (Loki 3.x grammar). Shared by the parser, the printer, the log
//! pipeline and the metric evaluator.
//!
//! Durations are `i64` nanoseconds. Regexes in the tree are kept as source text; the stage
//! that runs them compiles them (stream selectors are the exception: they hold compiled
//! [`Matcher`]s because the index resolves them).

use fenrir_common::{MatchOp, Matcher};

/// A whole query: a log query or a metric (sample) query.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `{selector} | stages…`
    Log(LogExpr),
    /// Anything that yields samples, vectors or scalars.
    Metric(MetricExpr),
}

/// A stream selector followed by pipeline stages.
#[derive(Debug, Clone, PartialEq)]
pub struct LogExpr {
    /// The matchers of `{…}`; at least one does not match the empty string.
    pub selector: Vec<Matcher>,
    /// Stages in the order written (the pipeline may reorder line filters, as Loki does).
    pub stages: Vec<Stage>,
}

/// One pipeline stage.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// `|= "a" or "b"`, `!~ "re"`, `|> "<_> pattern"`, `|= ip("10.0.0.0/8")`.
    LineFilter(LineFilter),
    /// `| json`, `| logfmt`, `| regexp`, `| pattern`, `| unpack`.
    Parser(Parser),
    /// `| label op value`, combined with `and`/`or`/`,`/parentheses.
    LabelFilter(LabelFilter),
    /// `| line_format "template"`.
    LineFormat(String),
    /// `| label_format a=b, c="template"`.
    LabelFormat(Vec<LabelFormat>),
    /// `| drop a, b="v", c=~"re"`.
    Drop(Vec<LabelSelection>),
    /// `| keep a, b="v"`.
    Keep(Vec<LabelSelection>),
    /// `| decolorize`.
    Decolorize,
}

/// The operator of a line filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFilterOp {
    /// `|=`
    Contains,
    /// `!=`
    NotContains,
    /// `|~`
    Regex,
    /// `!~`
    NotRegex,
    /// `|>`
    Pattern,
    /// `!>`
    NotPattern,
}

/// One operand of a line filter.
#[derive(Debug, Clone, PartialEq)]
pub enum LineFilterValue {
    /// A string (substring, regex or pattern source, by the operator).
    Str(String),
    /// `ip("…")`: only with `|=` and `!=`.
    Ip(String),
}

/// A line filter: the first operand and any `or` operands, all with one operator.
#[derive(Debug, Clone, PartialEq)]
pub struct LineFilter {
    /// The operator, shared by every operand of the `or` chain.
    pub op: LineFilterOp,
    /// At least one operand; more than one means `a or b or …`.
    pub values: Vec<LineFilterValue>,
}

/// A parser stage.
#[derive(Debug, Clone, PartialEq)]
pub enum Parser {
    /// `| json` with optional `label="path"` parameters (empty: extract everything).
    Json(Vec<LabelExtraction>),
    /// `| logfmt [--strict] [--keep-empty] [params]`.
    Logfmt {
        /// `--strict`
        strict: bool,
        /// `--keep-empty`
        keep_empty: bool,
        /// Optional `label="key"` parameters (empty: extract everything).
        params: Vec<LabelExtraction>,
    },
    /// `| regexp "re"` (source text, named groups become labels).
    Regexp(String),
    /// `| pattern "<a> <_> b"`.
    Pattern(String),
    /// `| unpack`.
    Unpack,
}

/// `label="expression"` of `json`/`logfmt` parameters; a bare `label` has `expression == label`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelExtraction {
    /// The label to create.
    pub label: String,
    /// The JSON path or logfmt key to read.
    pub expression: String,
}

/// Comparison operators of numeric, duration and bytes label filters and binary expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==` (also written `=` in numeric label filters)
    Eq,
    /// `!=`
    Neq,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
}

/// A label filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelFilter {
    /// `a and b` (also `a , b` and `a | b` juxtaposition inside one stage).
    And(Box<LabelFilter>, Box<LabelFilter>),
    /// `a or b`
    Or(Box<LabelFilter>, Box<LabelFilter>),
    /// `( … )`, kept so the printer reproduces the grouping.
    Parens(Box<LabelFilter>),
    /// `name = "v"`, `name != "v"`, `name =~ "re"`, `name !~ "re"` (regex source text).
    String {
        /// Label name.
        name: String,
        /// Operator.
        op: MatchOp,
        /// Value or regex source.
        value: String,
    },
    /// `name > 5`, `name == 2.5`: the label value is parsed as a float.
    Number {
        /// Label name.
        name: String,
        /// Operator.
        op: CmpOp,
        /// The literal.
        value: f64,
    },
    /// `name > 1s`: the label value is parsed as a Go duration.
    Duration {
        /// Label name.
        name: String,
        /// Operator.
        op: CmpOp,
        /// The literal, in nanoseconds.
        value: i64,
    },
    /// `name >= 1MB`: the label value is parsed as a humanized byte size.
    Bytes {
        /// Label name.
        name: String,
        /// Operator.
        op: CmpOp,
        /// The literal, in bytes.
        value: u64,
    },
    /// `name = ip("…")` or `name != ip("…")`.
    Ip {
        /// Label name.
        name: String,
        /// `true` for `!=`.
        negated: bool,
        /// The address, range or CIDR source.
        pattern: String,
    },
}

/// One `label_format` assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelFormat {
    /// `dst=src`: rename (the source label is removed).
    Rename {
        /// Destination label.
        dst: String,
        /// Source label.
        src: String,
    },
    /// `dst="template"`.
    Template {
        /// Destination label.
        dst: String,
        /// Go template source.
        template: String,
    },
}

/// A `drop`/`keep` element: a bare name, or a name with a matcher on its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelection {
    /// Label name.
    pub name: String,
    /// `None` for a bare name; otherwise the operator and value (regex source text).
    pub matcher: Option<(MatchOp, String)>,
}

/// Metric expressions.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricExpr {
    /// `rate({…}[5m])`, `quantile_over_time(0.9, … | unwrap x [5m]) by (a)`.
    RangeAgg(RangeAgg),
    /// `sum by (a) (…)`, `topk(3, …)`.
    VectorAgg(VectorAgg),
    /// `a + b`, `a > bool 1`, `a and on(x) b`.
    Binary(Box<Binary>),
    /// A number literal (scalar).
    Literal(f64),
    /// `vector(n)`.
    Vector(f64),
    /// `label_replace(v, "dst", "replacement", "src", "regex")`.
    LabelReplace(Box<LabelReplace>),
    /// `( … )` around a metric expression, kept for faithful printing.
    Parens(Box<MetricExpr>),
}

/// The operators of range aggregations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOp {
    /// `count_over_time`
    CountOverTime,
    /// `rate`
    Rate,
    /// `rate_counter`
    RateCounter,
    /// `bytes_over_time`
    BytesOverTime,
    /// `bytes_rate`
    BytesRate,
    /// `absent_over_time`
    AbsentOverTime,
    /// `sum_over_time`
    SumOverTime,
    /// `avg_over_time`
    AvgOverTime,
    /// `max_over_time`
    MaxOverTime,
    /// `min_over_time`
    MinOverTime,
    /// `stddev_over_time`
    StddevOverTime,
    /// `stdvar_over_time`
    StdvarOverTime,
    /// `quantile_over_time` (has a parameter)
    QuantileOverTime,
    /// `first_over_time`
    FirstOverTime,
    /// `last_over_time`
    LastOverTime,
}

/// A log expression read over a time window: `{…} | stages [range] offset o` with an
/// optional `unwrap`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRange {
    /// The selector and the stages before `unwrap`.
    pub log: LogExpr,
    /// Window length in nanoseconds.
    pub range: i64,
    /// `offset`, in nanoseconds (0 when absent; may be negative).
    pub offset: i64,
    /// `| unwrap …` and the label filters after it.
    pub unwrap: Option<Unwrap>,
}

/// The conversion `unwrap` applies to a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwrapConversion {
    /// Go `ParseFloat`.
    Float,
    /// `bytes(x)`: humanized byte sizes.
    Bytes,
    /// `duration(x)`: Go durations, in seconds.
    Duration,
    /// `duration_seconds(x)`: same as `duration`.
    DurationSeconds,
}

/// `| unwrap [conv(]label[)]` followed by label filters.
#[derive(Debug, Clone, PartialEq)]
pub struct Unwrap {
    /// The label whose value becomes the sample value.
    pub label: String,
    /// How the value is converted.
    pub conversion: UnwrapConversion,
    /// Label filters written after the unwrap; they see conversion errors.
    pub post_filters: Vec<LabelFilter>,
}

/// `by (…)` or `without (…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    /// `true` for `without`.
    pub without: bool,
    /// The label names (may be empty: `by ()`).
    pub labels: Vec<String>,
}

/// A range aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeAgg {
    /// The function.
    pub op: RangeOp,
    /// The windowed log expression.
    pub range: LogRange,
    /// `quantile_over_time`'s φ.
    pub param: Option<f64>,
    /// `by`/`without` (only for the unwrap aggregations that allow it).
    pub grouping: Option<Grouping>,
}

/// The operators of vector aggregations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorOp {
    /// `sum`
    Sum,
    /// `avg`
    Avg,
    /// `min`
    Min,
    /// `max`
    Max,
    /// `count`
    Count,
    /// `stddev`
    Stddev,
    /// `stdvar`
    Stdvar,
    /// `topk` (has a parameter)
    Topk,
    /// `bottomk` (has a parameter)
    Bottomk,
    /// `sort`
    Sort,
    /// `sort_desc`
    SortDesc,
}

/// A vector aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorAgg {
    /// The operator.
    pub op: VectorOp,
    /// The aggregated expression.
    pub inner: Box<MetricExpr>,
    /// `topk`/`bottomk`'s k.
    pub param: Option<i64>,
    /// `by`/`without`; `None` aggregates everything into one group.
    pub grouping: Option<Grouping>,
}

/// Binary operators, in LogQL's precedence classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `or`
    Or,
    /// `and`
    And,
    /// `unless`
    Unless,
    /// `==`
    Eq,
    /// `!=`
    Neq,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^` (right-associative)
    Pow,
}

/// Which side of a many-to-one match has the "many".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cardinality {
    /// Default one-to-one.
    OneToOne,
    /// `group_left(include…)`
    ManyToOne(Vec<String>),
    /// `group_right(include…)`
    OneToMany(Vec<String>),
}

/// `on(…)`/`ignoring(…)` plus `group_left`/`group_right`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorMatching {
    /// `true` for `on(…)`, `false` for `ignoring(…)`.
    pub on: bool,
    /// The listed labels.
    pub labels: Vec<String>,
    /// The cardinality.
    pub card: Cardinality,
}

/// A binary expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Binary {
    /// The operator.
    pub op: BinOp,
    /// Left operand.
    pub lhs: MetricExpr,
    /// Right operand.
    pub rhs: MetricExpr,
    /// `bool` modifier of comparisons.
    pub return_bool: bool,
    /// `on`/`ignoring`/`group_*`, when written.
    pub matching: Option<VectorMatching>,
}

/// `label_replace(inner, dst, replacement, src, regex)`.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelReplace {
    /// The vector expression.
    pub inner: MetricExpr,
    /// Destination label.
    pub dst: String,
    /// Replacement template (`$1`, `${name}`).
    pub replacement: String,
    /// Source label.
    pub src: String,
    /// Regex source (anchored when evaluated).
    pub regex: String,
}
