//! Property tests: the parser never panics, and printed trees parse back to themselves.

use fenrir_common::{MatchOp, Matcher};
use fenrir_logql::ast::*;
use fenrir_logql::parse_expr;
use proptest::prelude::*;
use proptest::sample::select;

const NAMES: &[&str] = &[
    "app",
    "env",
    "pod",
    "level",
    "status",
    "latency",
    "__error__",
    "bytes",
    "x_1",
    "Ünï",
];
const REGEXES: &[&str] = &[".+", "api|web", "a.*", r"\d+", "(?i)err", "[a-z]{2,4}", ""];
const TEMPLATES: &[&str] = &[
    "{{.app}}",
    "{{ .status | upper }} x",
    "plain",
    "{{ if .a }}y{{ end }}",
];
const JSON_PATHS: &[&str] = &["a", "a.b", "a[0]", "a[\"b c\"]", "[1].x"];
const IPS: &[&str] = &["10.0.0.0/8", "192.168.1.7", "::1", "10.0.0.1-10.0.0.9"];
const REGEXP_PARSERS: &[&str] = &["(?P<m>\\w+)", "a(?P<x>.)b(?P<y>.)"];
const PATTERNS: &[&str] = &["<ip> - <_>", "<a> <b>"];
const LINE_PATTERNS: &[&str] = &["<_> done", "GET <_>", ""];

fn name() -> impl Strategy<Value = String> {
    select(NAMES).prop_map(String::from)
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z ]{0,8}",
        any::<String>().prop_map(|s| s.chars().take(12).collect()),
    ]
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1000i32..1000).prop_map(f64::from),
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
    ]
}

fn match_op() -> impl Strategy<Value = MatchOp> {
    select(&[MatchOp::Eq, MatchOp::Neq, MatchOp::Re, MatchOp::Nre][..])
}

fn cmp_op() -> impl Strategy<Value = CmpOp> {
    select(
        &[
            CmpOp::Eq,
            CmpOp::Neq,
            CmpOp::Gt,
            CmpOp::Gte,
            CmpOp::Lt,
            CmpOp::Lte,
        ][..],
    )
}

fn matcher_value(op: MatchOp) -> BoxedStrategy<String> {
    match op {
        MatchOp::Re | MatchOp::Nre => select(REGEXES).prop_map(String::from).boxed(),
        _ => text().boxed(),
    }
}

fn selector() -> impl Strategy<Value = Vec<Matcher>> {
    let first = (name(), "[a-z]{1,5}").prop_map(|(n, v)| Matcher::new(MatchOp::Eq, n, v).unwrap());
    let other = (name(), match_op()).prop_flat_map(|(n, op)| {
        matcher_value(op).prop_map(move |v| Matcher::new(op, n.clone(), v).unwrap())
    });
    (first, prop::collection::vec(other, 0..3)).prop_map(|(f, mut rest)| {
        rest.insert(0, f);
        rest
    })
}

fn label_filter_leaf() -> impl Strategy<Value = LabelFilter> {
    prop_oneof![
        (name(), match_op()).prop_flat_map(|(name, op)| {
            matcher_value(op).prop_map(move |value| LabelFilter::String {
                name: name.clone(),
                op,
                value,
            })
        }),
        (name(), cmp_op(), finite()).prop_map(|(name, op, value)| LabelFilter::Number {
            name,
            op,
            value
        }),
        (
            name(),
            cmp_op(),
            -1_000_000_000_000_000i64..1_000_000_000_000_000
        )
            .prop_map(|(name, op, value)| LabelFilter::Duration { name, op, value }),
        (name(), cmp_op(), 0u64..(1 << 53)).prop_map(|(name, op, value)| LabelFilter::Bytes {
            name,
            op,
            value
        }),
        (name(), any::<bool>(), select(IPS)).prop_map(|(name, negated, p)| LabelFilter::Ip {
            name,
            negated,
            pattern: p.to_string()
        }),
    ]
}

/// Label filters in the shapes the parser builds: `or` of left-nested `and` chains of
/// primaries, primaries being leaves or parenthesised filters.
fn label_filter() -> impl Strategy<Value = LabelFilter> {
    label_filter_leaf().prop_recursive(3, 16, 3, |inner| {
        let primary = prop_oneof![
            label_filter_leaf(),
            inner.prop_map(|f| LabelFilter::Parens(Box::new(f))),
        ];
        let chain = prop::collection::vec(primary, 1..3).prop_map(|fs| {
            fs.into_iter()
                .reduce(|l, r| LabelFilter::And(Box::new(l), Box::new(r)))
                .unwrap()
        });
        prop::collection::vec(chain, 1..3).prop_map(|cs| {
            cs.into_iter()
                .reduce(|l, r| LabelFilter::Or(Box::new(l), Box::new(r)))
                .unwrap()
        })
    })
}

fn line_filter() -> impl Strategy<Value = Stage> {
    let op = select(
        &[
            LineFilterOp::Contains,
            LineFilterOp::NotContains,
            LineFilterOp::Regex,
            LineFilterOp::NotRegex,
            LineFilterOp::Pattern,
            LineFilterOp::NotPattern,
        ][..],
    );
    op.prop_flat_map(|op| {
        let value: BoxedStrategy<LineFilterValue> = match op {
            LineFilterOp::Contains | LineFilterOp::NotContains => prop_oneof![
                text().prop_map(LineFilterValue::Str),
                select(IPS).prop_map(|s| LineFilterValue::Ip(s.to_string())),
            ]
            .boxed(),
            LineFilterOp::Regex | LineFilterOp::NotRegex => select(REGEXES)
                .prop_map(|s| LineFilterValue::Str(s.to_string()))
                .boxed(),
            _ => select(LINE_PATTERNS)
                .prop_map(|s| LineFilterValue::Str(s.to_string()))
                .boxed(),
        };
        prop::collection::vec(value, 1..3)
            .prop_map(move |values| Stage::LineFilter(LineFilter { op, values }))
    })
}

fn extraction(paths: &'static [&'static str]) -> impl Strategy<Value = LabelExtraction> {
    (name(), select(paths)).prop_map(|(label, e)| LabelExtraction {
        label,
        expression: e.to_string(),
    })
}

fn selection() -> impl Strategy<Value = LabelSelection> {
    (name(), prop::option::of(match_op())).prop_flat_map(|(name, op)| match op {
        None => Just(LabelSelection {
            name: name.clone(),
            matcher: None,
        })
        .boxed(),
        Some(op) => matcher_value(op)
            .prop_map(move |v| LabelSelection {
                name: name.clone(),
                matcher: Some((op, v)),
            })
            .boxed(),
    })
}

fn stage() -> impl Strategy<Value = Stage> {
    prop_oneof![
        line_filter(),
        prop::collection::vec(extraction(JSON_PATHS), 0..3)
            .prop_map(|p| Stage::Parser(Parser::Json(p))),
        (
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(extraction(&["k", "key_2"]), 0..3)
        )
            .prop_map(
                |(strict, keep_empty, params)| Stage::Parser(Parser::Logfmt {
                    strict,
                    keep_empty,
                    params
                })
            ),
        select(REGEXP_PARSERS).prop_map(|s| Stage::Parser(Parser::Regexp(s.to_string()))),
        select(PATTERNS).prop_map(|s| Stage::Parser(Parser::Pattern(s.to_string()))),
        Just(Stage::Parser(Parser::Unpack)),
        label_filter().prop_map(Stage::LabelFilter),
        select(TEMPLATES).prop_map(|t| Stage::LineFormat(t.to_string())),
        (any::<bool>(), name(), name(), select(TEMPLATES)).prop_map(|(rename, a, b, t)| {
            let dst = if a == "__error__" {
                "dst".to_string()
            } else {
                a
            };
            Stage::LabelFormat(vec![if rename {
                LabelFormat::Rename { dst, src: b }
            } else {
                LabelFormat::Template {
                    dst,
                    template: t.to_string(),
                }
            }])
        }),
        prop::collection::vec(selection(), 1..3).prop_map(Stage::Drop),
        prop::collection::vec(selection(), 1..3).prop_map(Stage::Keep),
        Just(Stage::Decolorize),
    ]
}

fn log_expr() -> impl Strategy<Value = LogExpr> {
    (selector(), prop::collection::vec(stage(), 0..4)).prop_map(|(selector, mut stages)| {
        // `| keep a != "x"` reads as a keep matcher, in Loki too: a bare name that ends
        // drop/keep cannot be followed by a `!=`/`!~` line filter.
        for i in 1..stages.len() {
            let bare_end = matches!(&stages[i - 1], Stage::Drop(s) | Stage::Keep(s)
                if s.last().is_some_and(|l| l.matcher.is_none()));
            if let (true, Stage::LineFilter(f)) = (bare_end, &mut stages[i]) {
                if matches!(f.op, LineFilterOp::NotContains | LineFilterOp::NotRegex) {
                    f.op = LineFilterOp::Pattern;
                    f.values = vec![LineFilterValue::Str(String::new())];
                }
            }
        }
        LogExpr { selector, stages }
    })
}

fn unwrap() -> impl Strategy<Value = Unwrap> {
    let conv = select(
        &[
            UnwrapConversion::Float,
            UnwrapConversion::Bytes,
            UnwrapConversion::Duration,
            UnwrapConversion::DurationSeconds,
        ][..],
    );
    (name(), conv, prop::collection::vec(label_filter(), 0..2)).prop_map(
        |(label, conversion, post_filters)| Unwrap {
            label,
            conversion,
            post_filters,
        },
    )
}

fn grouping() -> impl Strategy<Value = Grouping> {
    (any::<bool>(), prop::collection::vec(name(), 0..3))
        .prop_map(|(without, labels)| Grouping { without, labels })
}

fn range_agg() -> impl Strategy<Value = MetricExpr> {
    use RangeOp::*;
    let ops = select(
        &[
            CountOverTime,
            Rate,
            RateCounter,
            BytesOverTime,
            BytesRate,
            AbsentOverTime,
            SumOverTime,
            AvgOverTime,
            MaxOverTime,
            MinOverTime,
            StddevOverTime,
            StdvarOverTime,
            QuantileOverTime,
            FirstOverTime,
            LastOverTime,
        ][..],
    );
    (
        ops,
        log_expr(),
        1i64..10_000_000,
        -10_000_000i64..10_000_000,
        unwrap(),
        grouping(),
        0f64..2.0,
    )
        .prop_map(|(op, log, range_ms, offset, unwrap, grouping, param)| {
            let needs_unwrap = !matches!(
                op,
                CountOverTime | Rate | BytesOverTime | BytesRate | AbsentOverTime
            );
            let has_unwrap =
                needs_unwrap || matches!(op, Rate | AbsentOverTime) && range_ms % 2 == 0;
            let grouping_ok = matches!(
                op,
                AvgOverTime
                    | StddevOverTime
                    | StdvarOverTime
                    | QuantileOverTime
                    | MaxOverTime
                    | MinOverTime
                    | FirstOverTime
                    | LastOverTime
            );
            MetricExpr::RangeAgg(RangeAgg {
                op,
                range: LogRange {
                    log,
                    range: range_ms * 1_000_000,
                    offset: if offset % 3 == 0 {
                        offset * 1_000_000
                    } else {
                        offset
                    },
                    unwrap: has_unwrap.then_some(unwrap),
                },
                param: (op == QuantileOverTime).then_some(param),
                grouping: if grouping_ok { Some(grouping) } else { None },
            })
        })
}

fn prec(op: BinOp) -> u8 {
    match op {
        BinOp::Or => 1,
        BinOp::And | BinOp::Unless => 2,
        BinOp::Eq | BinOp::Neq | BinOp::Gt | BinOp::Gte | BinOp::Lt | BinOp::Lte => 3,
        BinOp::Add | BinOp::Sub => 4,
        BinOp::Mul | BinOp::Div | BinOp::Mod => 5,
        BinOp::Pow => 6,
    }
}

fn is_literal(m: &MetricExpr) -> bool {
    match m {
        MetricExpr::Literal(_) => true,
        MetricExpr::Parens(inner) => is_literal(inner),
        _ => false,
    }
}

/// Wraps operands in parentheses where precedence would otherwise regroup them, and keeps
/// the shapes Loki refuses or folds (literal op literal, literals in set operations) out.
fn binary(
    op: BinOp,
    lhs: MetricExpr,
    rhs: MetricExpr,
    return_bool: bool,
    matching: Option<VectorMatching>,
) -> MetricExpr {
    let p = prec(op);
    let wrap = |m: MetricExpr, right: bool| match &m {
        MetricExpr::Binary(b)
            if prec(b.op) < p || (prec(b.op) == p && (right != (op == BinOp::Pow))) =>
        {
            MetricExpr::Parens(Box::new(m))
        }
        _ => m,
    };
    let set_op = matches!(op, BinOp::And | BinOp::Or | BinOp::Unless);
    let lhs = if (set_op && is_literal(&lhs)) || (is_literal(&lhs) && is_literal(&rhs)) {
        MetricExpr::Vector(1.0)
    } else {
        lhs
    };
    let rhs = if set_op && is_literal(&rhs) {
        MetricExpr::Vector(2.0)
    } else {
        rhs
    };
    MetricExpr::Binary(Box::new(Binary {
        op,
        lhs: wrap(lhs, false),
        rhs: wrap(rhs, true),
        return_bool,
        matching,
    }))
}

fn matching() -> impl Strategy<Value = Option<VectorMatching>> {
    let card = prop_oneof![
        Just(Cardinality::OneToOne),
        prop::collection::vec(name(), 0..2).prop_map(Cardinality::ManyToOne),
        prop::collection::vec(name(), 0..2).prop_map(Cardinality::OneToMany),
    ];
    prop::option::of(
        (any::<bool>(), prop::collection::vec(name(), 0..3), card)
            .prop_map(|(on, labels, card)| VectorMatching { on, labels, card }),
    )
}

fn metric_expr() -> impl Strategy<Value = MetricExpr> {
    let leaf = prop_oneof![
        range_agg(),
        finite().prop_map(MetricExpr::Literal),
        (0f64..1e6).prop_map(MetricExpr::Vector),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        use VectorOp::*;
        let vop = select(
            &[
                Sum, Avg, Min, Max, Count, Stddev, Stdvar, Topk, Bottomk, Sort, SortDesc,
            ][..],
        );
        let bop = select(
            &[
                BinOp::Or,
                BinOp::And,
                BinOp::Unless,
                BinOp::Eq,
                BinOp::Neq,
                BinOp::Gt,
                BinOp::Gte,
                BinOp::Lt,
                BinOp::Lte,
                BinOp::Add,
                BinOp::Sub,
                BinOp::Mul,
                BinOp::Div,
                BinOp::Mod,
                BinOp::Pow,
            ][..],
        );
        prop_oneof![
            (vop, inner.clone(), 1i64..100, prop::option::of(grouping())).prop_map(
                |(op, inner, k, grouping)| {
                    let grouping = if matches!(op, Sort | SortDesc) {
                        grouping.map(|g| Grouping {
                            labels: vec![],
                            ..g
                        })
                    } else {
                        grouping
                    };
                    MetricExpr::VectorAgg(VectorAgg {
                        op,
                        inner: Box::new(inner),
                        param: matches!(op, Topk | Bottomk).then_some(k),
                        grouping,
                    })
                }
            ),
            (bop, inner.clone(), inner.clone(), any::<bool>(), matching())
                .prop_map(|(op, l, r, b, m)| binary(op, l, r, b, m)),
            inner.clone().prop_map(|m| MetricExpr::Parens(Box::new(m))),
            (inner, name(), text(), name(), select(REGEXES)).prop_map(
                |(inner, dst, replacement, src, regex)| {
                    MetricExpr::LabelReplace(Box::new(LabelReplace {
                        inner,
                        dst,
                        replacement,
                        src,
                        regex: regex.to_string(),
                    }))
                }
            ),
        ]
    })
}

const SOUP: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[5m]",
    "[",
    "]",
    ",",
    "=",
    "!=",
    "=~",
    "!~",
    "|=",
    "|~",
    "|>",
    "!>",
    "|",
    "\"a\"",
    "`b`",
    "app",
    "x",
    "5",
    "-",
    "+",
    "*",
    "/",
    "^",
    "%",
    "==",
    ">",
    ">=",
    "<",
    "<=",
    "or",
    "and",
    "unless",
    "by",
    "without",
    "bool",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "5m",
    "1KB",
    "json",
    "logfmt",
    "--strict",
    "regexp",
    "pattern",
    "unpack",
    "line_format",
    "label_format",
    "drop",
    "keep",
    "decolorize",
    "unwrap",
    "ip",
    "rate",
    "count_over_time",
    "quantile_over_time",
    "sum",
    "topk",
    "sort",
    "vector",
    "label_replace",
    "bytes",
    "duration",
    "#",
    "\n",
    "0x1p3",
    ".5",
    "\"\\u00e9\"",
    "'c'",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(input in any::<String>()) {
        let _ = parse_expr(&input);
    }

    #[test]
    fn token_soup_never_panics(tokens in prop::collection::vec(select(SOUP), 0..40), spaced in any::<bool>()) {
        let input = tokens.join(if spaced { " " } else { "" });
        let _ = parse_expr(&input);
    }

    #[test]
    fn printed_log_queries_parse_back(log in log_expr()) {
        let expr = Expr::Log(log);
        let printed = expr.to_string();
        let parsed = parse_expr(&printed);
        prop_assert_eq!(parsed, Ok(expr), "{}", printed);
    }

    #[test]
    fn printed_metric_queries_parse_back(metric in metric_expr()) {
        let expr = Expr::Metric(metric);
        let printed = expr.to_string();
        let parsed = parse_expr(&printed);
        prop_assert_eq!(parsed, Ok(expr), "{}", printed);
    }
}
