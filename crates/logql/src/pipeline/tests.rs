//! End-to-end tests of whole pipelines built from syntax trees (the parser is written in
//! parallel, so the trees are built by hand).

use fenrir_common::{LabelSet, MatchOp};
use proptest::prelude::*;

use super::*;
use crate::ast::{
    CmpOp, Grouping, LabelExtraction, LabelFilter, LabelFormat, LabelSelection, LineFilter,
    LineFilterOp, LineFilterValue, LogExpr, LogRange, RangeAgg, RangeOp, Unwrap, UnwrapConversion,
};

fn contains(s: &str) -> Stage {
    Stage::LineFilter(LineFilter {
        op: LineFilterOp::Contains,
        values: vec![LineFilterValue::Str(s.into())],
    })
}

fn json() -> Stage {
    Stage::Parser(Parser::Json(vec![]))
}

fn logfmt() -> Stage {
    Stage::Parser(Parser::Logfmt {
        strict: false,
        keep_empty: false,
        params: vec![],
    })
}

fn label_eq(name: &str, value: &str) -> Stage {
    Stage::LabelFilter(LabelFilter::String {
        name: name.into(),
        op: MatchOp::Eq,
        value: value.into(),
    })
}

fn num_filter(name: &str, op: CmpOp, value: f64) -> LabelFilter {
    LabelFilter::Number {
        name: name.into(),
        op,
        value,
    }
}

fn api_stream() -> LabelSet {
    LabelSet::from_pairs([("app", "api"), ("level", "info"), ("pod", "api-1")])
}

fn run(stages: Vec<Stage>, line: &str, meta: &[(&str, &str)]) -> Option<(String, ResultLabels)> {
    let pipeline = LogPipeline::new(&stages).unwrap();
    let stream = api_stream();
    let mut sp = pipeline.for_stream(&stream);
    sp.process(1, line, meta)
        .map(|p| (p.line.into_owned(), p.labels.clone()))
}

#[test]
fn noop_and_line_filter_fast_path_share_the_stream_labels() {
    let pipeline = LogPipeline::new(&[]).unwrap();
    assert!(pipeline.is_noop());
    let pipeline = LogPipeline::new(&[contains("ERROR")]).unwrap();
    assert!(!pipeline.is_noop());
    assert_eq!(pipeline.required_substrings(), vec!["ERROR"]);
    let stream = api_stream();
    let mut sp = pipeline.for_stream(&stream);
    let first = sp.process(1, "an ERROR here", &[]).unwrap();
    assert!(matches!(first.line, Cow::Borrowed(_)));
    let first_labels = first.labels as *const ResultLabels;
    assert_eq!(first.labels.all, stream);
    assert!(sp.process(2, "fine", &[]).is_none());
    let second = sp.process(3, "ERROR again", &[]).unwrap();
    assert_eq!(second.labels as *const ResultLabels, first_labels);
}

#[test]
fn repeated_parsed_label_sets_are_interned() {
    let pipeline = LogPipeline::new(&[logfmt()]).unwrap();
    let stream = api_stream();
    let mut sp = pipeline.for_stream(&stream);
    let a = sp.process(1, "status=200 method=GET", &[]).unwrap().labels as *const _;
    let b = sp.process(2, "method=GET status=200", &[]).unwrap().labels as *const _;
    let c = sp.process(3, "method=GET status=500", &[]).unwrap().labels as *const _;
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn line_filters_move_before_parsers_but_not_past_barriers() {
    let line_filter = |s: &str| contains(s);
    let stages = vec![
        json(),
        line_filter("a"),
        Stage::LineFormat("{{.x}}".into()),
        Stage::Decolorize,
        line_filter("b"),
        label_eq("x", "1"),
        logfmt(),
        line_filter("c"),
    ];
    let order: Vec<String> = reorder(&stages)
        .iter()
        .map(|s| match s {
            Stage::LineFilter(f) => match &f.values[0] {
                LineFilterValue::Str(s) => format!("|= {s}"),
                LineFilterValue::Ip(_) => "ip".into(),
            },
            Stage::Parser(Parser::Json(_)) => "json".into(),
            Stage::Parser(_) => "logfmt".into(),
            Stage::LineFormat(_) => "line_format".into(),
            Stage::Decolorize => "decolorize".into(),
            Stage::LabelFilter(_) => "label_filter".into(),
            _ => "other".into(),
        })
        .collect();
    assert_eq!(
        order,
        [
            "|= a",
            "json",
            "line_format",
            "|= b",
            "decolorize",
            "label_filter",
            "|= c",
            "logfmt"
        ]
    );
}

#[test]
fn decolorize_quirk_filters_the_coloured_line() {
    let line = "\u{1b}[31mERROR\u{1b}[0m GET /x 500";
    assert!(run(vec![Stage::Decolorize, contains("ERROR GET")], line, &[]).is_none());
    let (out, _) = run(vec![Stage::Decolorize, contains("ERROR")], line, &[]).unwrap();
    assert_eq!(out, "ERROR GET /x 500");
}

#[test]
fn json_error_lines_keep_partial_labels_and_error_labels() {
    let (_, labels) = run(
        vec![json()],
        r#"{"level":"ERROR","message":"truncated payload"#,
        &[],
    )
    .unwrap();
    assert_eq!(
        labels.all.to_string(),
        r#"{__error__="JSONParserErr", __error_details__="Value is string, but can't find closing '\"' symbol", app="api", level="info", level_extracted="ERROR", pod="api-1"}"#
    );
}

#[test]
fn error_filters_and_drop() {
    let bad = "panic: boom";
    assert!(run(vec![json(), label_eq("__error__", "")], bad, &[]).is_none());
    let (_, labels) = run(
        vec![
            json(),
            Stage::LabelFilter(LabelFilter::String {
                name: "__error__".into(),
                op: MatchOp::Neq,
                value: "".into(),
            }),
        ],
        bad,
        &[],
    )
    .unwrap();
    assert_eq!(labels.all.get("__error__"), Some("JSONParserErr"));
    let drop = Stage::Drop(vec![
        LabelSelection {
            name: "__error__".into(),
            matcher: None,
        },
        LabelSelection {
            name: "__error_details__".into(),
            matcher: None,
        },
    ]);
    let (_, labels) = run(vec![json(), drop], bad, &[]).unwrap();
    assert_eq!(labels.all, api_stream());
    // A filter before the failing stage cannot remove the error.
    let (_, labels) = run(vec![label_eq("__error__", ""), json()], bad, &[]).unwrap();
    assert_eq!(labels.all.get("__error__"), Some("JSONParserErr"));
}

#[test]
fn numeric_filter_drops_error_lines_without_the_label() {
    let stages = || {
        vec![
            json(),
            Stage::LabelFilter(num_filter("status", CmpOp::Gte, 500.0)),
        ]
    };
    assert!(run(stages(), "panic: boom", &[]).is_none());
    assert!(run(stages(), r#"{"status":503}"#, &[]).is_some());
    assert!(run(stages(), r#"{"status":200}"#, &[]).is_none());
}

#[test]
fn structured_metadata_is_a_label_from_the_start() {
    let meta = [("trace_id", "abc"), ("pod", "meta-pod")];
    assert!(run(vec![label_eq("trace_id", "abc")], "x", &meta).is_some());
    assert!(run(vec![label_eq("trace_id", "zzz")], "x", &meta).is_none());
    let (_, labels) = run(vec![], "x", &meta).unwrap();
    assert_eq!(
        labels.all.to_string(),
        r#"{app="api", level="info", pod="api-1", pod_extracted="meta-pod", trace_id="abc"}"#
    );
    assert_eq!(labels.stream, api_stream());
    assert_eq!(
        labels.structured_metadata,
        vec![
            ("pod_extracted".to_string(), "meta-pod".to_string()),
            ("trace_id".to_string(), "abc".to_string())
        ]
    );
}

#[test]
fn categorize_labels_split() {
    let (_, labels) = run(
        vec![json()],
        r#"{"level":"error","status":503,"trace_id":"t2"}"#,
        &[("trace_id", "t1")],
    )
    .unwrap();
    assert_eq!(labels.stream, api_stream());
    assert_eq!(
        labels.structured_metadata,
        vec![("trace_id".to_string(), "t1".to_string())]
    );
    assert_eq!(
        labels.parsed,
        vec![
            ("level_extracted".to_string(), "error".to_string()),
            ("status".to_string(), "503".to_string()),
            ("trace_id_extracted".to_string(), "t2".to_string()),
        ]
    );
    // A stream label replaced by a parsed one leaves the categorized stream labels.
    let (_, labels) = run(
        vec![
            json(),
            Stage::LabelFormat(vec![LabelFormat::Rename {
                dst: "pod".into(),
                src: "status".into(),
            }]),
        ],
        r#"{"status":503}"#,
        &[],
    )
    .unwrap();
    assert_eq!(labels.stream.to_string(), r#"{app="api", level="info"}"#);
    assert_eq!(labels.all.get("pod"), Some("503"));
}

#[test]
fn first_parser_wins_across_stages() {
    let (_, labels) = run(vec![json(), logfmt()], r#"{"a":"from-json"}"#, &[]).unwrap();
    assert_eq!(labels.all.get("a"), Some("from-json"));
    let stages = vec![
        Stage::LabelFormat(vec![LabelFormat::Rename {
            dst: "a".into(),
            src: "app".into(),
        }]),
        logfmt(),
    ];
    let (_, labels) = run(stages, "a=from-logfmt level=warn", &[]).unwrap();
    assert_eq!(
        labels.all.get("a"),
        Some("api"),
        "label_format set it first"
    );
    assert_eq!(labels.all.get("a_extracted"), None);
    assert_eq!(labels.all.get("level_extracted"), Some("warn"));
}

#[test]
fn keep_and_drop_change_stream_keys() {
    let keep = Stage::Keep(vec![
        LabelSelection {
            name: "app".into(),
            matcher: None,
        },
        LabelSelection {
            name: "status".into(),
            matcher: None,
        },
    ]);
    let (_, labels) = run(vec![json(), keep], r#"{"status":503,"x":1}"#, &[]).unwrap();
    assert_eq!(labels.all.to_string(), r#"{app="api", status="503"}"#);
    let keep_matching = Stage::Keep(vec![LabelSelection {
        name: "status".into(),
        matcher: Some((MatchOp::Eq, "200".into())),
    }]);
    let (_, labels) = run(vec![json(), keep_matching], r#"{"status":503}"#, &[]).unwrap();
    assert!(labels.all.is_empty(), "no label kept: {}", labels.all);
}

#[test]
fn unpack_replaces_the_line_for_later_stages() {
    let (line, labels) = run(
        vec![Stage::Parser(Parser::Unpack), logfmt()],
        r#"{"_entry":"code=42","tenant":"t1"}"#,
        &[],
    )
    .unwrap();
    assert_eq!(line, "code=42");
    assert_eq!(labels.all.get("code"), Some("42"));
    assert_eq!(labels.all.get("tenant"), Some("t1"));
    // Line filters are not moved past unpack.
    assert!(run(
        vec![Stage::Parser(Parser::Unpack), contains("tenant")],
        r#"{"_entry":"code=42","tenant":"t1"}"#,
        &[]
    )
    .is_none());
}

#[test]
fn json_and_logfmt_params_create_empty_labels() {
    let (_, labels) = run(
        vec![Stage::Parser(Parser::Json(vec![
            LabelExtraction {
                label: "status".into(),
                expression: "status".into(),
            },
            LabelExtraction {
                label: "missing".into(),
                expression: "no.such.path".into(),
            },
        ]))],
        r#"{"status":403}"#,
        &[],
    )
    .unwrap();
    assert!(labels
        .parsed
        .contains(&("missing".to_string(), String::new())));
    assert_eq!(labels.all.get("status"), Some("403"));
    // The stream key of a log query shows the empty label, as Loki does.
    assert_eq!(labels.all.get("missing"), Some(""));
    assert_eq!(
        labels.all.to_string(),
        r#"{app="api", level="info", missing="", pod="api-1", status="403"}"#
    );

    // logfmt with parameters: every requested label, "" when missing, but never one
    // that shadows a stream label.
    let logfmt_params = |keep_empty: bool, params: &[(&str, &str)]| {
        Stage::Parser(Parser::Logfmt {
            strict: false,
            keep_empty,
            params: params
                .iter()
                .map(|(label, key)| LabelExtraction {
                    label: (*label).into(),
                    expression: (*key).into(),
                })
                .collect(),
        })
    };
    let (_, labels) = run(
        vec![logfmt_params(
            false,
            &[("msg", "msg"), ("dur", "duration"), ("pod", "pod")],
        )],
        "a=b=c level=warn",
        &[],
    )
    .unwrap();
    assert_eq!(
        labels.all.to_string(),
        r#"{app="api", dur="", level="info", msg="", pod="api-1"}"#
    );

    // --keep-empty: bare keys and `k=` become "" labels; without it they are dropped.
    let (_, labels) = run(vec![logfmt_params(true, &[])], "flag empty= x=1", &[]).unwrap();
    assert_eq!(
        labels.all.to_string(),
        r#"{app="api", empty="", flag="", level="info", pod="api-1", x="1"}"#
    );
    let (_, labels) = run(vec![logfmt()], "flag empty= x=1", &[]).unwrap();
    assert_eq!(
        labels.all.to_string(),
        r#"{app="api", level="info", pod="api-1", x="1"}"#
    );
}

#[test]
fn stage_compile_errors_use_parse_error() {
    let bad = |stage: Stage| match LogPipeline::new(&[stage]) {
        Err(Error::Parse(e)) => e.to_string(),
        other => panic!("expected a parse error, got {other:?}"),
    };
    assert!(bad(Stage::Parser(Parser::Regexp("(a)".into())))
        .starts_with("parse error : invalid regexp parser"));
    assert!(bad(Stage::LineFilter(LineFilter {
        op: LineFilterOp::Regex,
        values: vec![LineFilterValue::Str("(".into())]
    }))
    .contains("error parsing regexp"));
    assert!(bad(Stage::Parser(Parser::Pattern("<_>".into())))
        .contains("at least one capture is required"));
    assert!(bad(Stage::Parser(Parser::Json(vec![LabelExtraction {
        label: "a".into(),
        expression: "a[".into()
    }])))
    .contains("cannot parse expression"));
}

fn range_agg(
    op: RangeOp,
    stages: Vec<Stage>,
    unwrap: Option<Unwrap>,
    grouping: Option<Grouping>,
) -> RangeAgg {
    RangeAgg {
        op,
        range: LogRange {
            log: LogExpr {
                selector: vec![],
                stages,
            },
            range: 60_000_000_000,
            offset: 0,
            unwrap,
        },
        param: None,
        grouping,
    }
}

fn unwrap(
    label: &str,
    conversion: UnwrapConversion,
    post_filters: Vec<LabelFilter>,
) -> Option<Unwrap> {
    Some(Unwrap {
        label: label.into(),
        conversion,
        post_filters,
    })
}

fn samples(agg: &RangeAgg, lines: &[&str]) -> Vec<(String, f64)> {
    let ex = SampleExtractor::new(agg).unwrap();
    let stream = api_stream();
    let mut s = ex.for_stream(&stream);
    lines
        .iter()
        .filter_map(|l| s.process(1, l, &[]).map(|(ls, v)| (ls.to_string(), v)))
        .collect()
}

#[test]
fn label_free_counts_ignore_metadata_and_others_read_it() {
    let by_nothing = Some(Grouping {
        without: false,
        labels: vec![],
    });
    for op in [RangeOp::CountOverTime, RangeOp::BytesOverTime] {
        let agg = range_agg(op, vec![contains("x")], None, by_nothing.clone());
        let ex = SampleExtractor::new(&agg).unwrap();
        assert!(!ex.reads_metadata());
        let mut s = ex.for_stream(&api_stream());
        let md = [("trace_id", "t1")];
        let with: Vec<_> = ["x1", "no", "x22"]
            .iter()
            .filter_map(|l| s.process(1, l, &md).map(|(ls, v)| (ls.to_string(), v)))
            .collect();
        let want = match op {
            RangeOp::CountOverTime => [1.0, 1.0],
            _ => [2.0, 3.0],
        };
        let want: Vec<_> = want.iter().map(|&v| ("{}".to_string(), v)).collect();
        assert_eq!(with, want);
    }
    // A grouping, a label stage or no grouping at all: metadata matters.
    let by_level = Some(Grouping {
        without: false,
        labels: vec!["level".into()],
    });
    for (stages, grouping) in [
        (vec![contains("x")], by_level),
        (
            vec![contains("x"), Stage::Parser(Parser::Unpack)],
            by_nothing,
        ),
        (vec![contains("x")], None),
    ] {
        let agg = range_agg(RangeOp::CountOverTime, stages, None, grouping);
        assert!(SampleExtractor::new(&agg).unwrap().reads_metadata());
    }
}

#[test]
fn count_and_bytes_samples() {
    let agg = range_agg(RangeOp::CountOverTime, vec![contains("x")], None, None);
    assert_eq!(
        samples(&agg, &["x1", "no", "x2"]),
        vec![
            (api_stream().to_string(), 1.0),
            (api_stream().to_string(), 1.0)
        ]
    );
    let agg = range_agg(
        RangeOp::BytesOverTime,
        vec![Stage::Parser(Parser::Unpack)],
        None,
        None,
    );
    let got = samples(&agg, &[r#"{"_entry":"héllo"}"#]);
    assert_eq!(got[0].1, 6.0, "bytes of the line after the pipeline");
}

#[test]
fn unwrap_conversions_and_label_removal() {
    let agg = range_agg(
        RangeOp::SumOverTime,
        vec![logfmt()],
        unwrap("attempts", UnwrapConversion::Float, vec![]),
        None,
    );
    let got = samples(
        &agg,
        &[
            "attempts=3 job=a",
            "job=b",
            "attempts= job=c",
            "attempts=0x1p3 job=d",
        ],
    );
    assert_eq!(
        got,
        vec![
            (
                r#"{app="api", job="a", level="info", pod="api-1"}"#.to_string(),
                3.0
            ),
            (
                r#"{app="api", job="d", level="info", pod="api-1"}"#.to_string(),
                8.0
            ),
        ]
    );
    let agg = range_agg(
        RangeOp::MaxOverTime,
        vec![logfmt()],
        unwrap("bytes", UnwrapConversion::Bytes, vec![]),
        Some(Grouping {
            without: false,
            labels: vec!["app".into()],
        }),
    );
    let got = samples(&agg, &["bytes=2MiB", "bytes=1.5KB", "bytes=2,048"]);
    let values: Vec<f64> = got.iter().map(|(_, v)| *v).collect();
    assert_eq!(values, vec![2097152.0, 1500.0, 2048.0]);
    assert!(got.iter().all(|(l, _)| l == r#"{app="api"}"#));
    let agg = range_agg(
        RangeOp::AvgOverTime,
        vec![logfmt()],
        unwrap("d", UnwrapConversion::Duration, vec![]),
        Some(Grouping {
            without: true,
            labels: vec!["pod".into()],
        }),
    );
    let got = samples(&agg, &["d=1.5s", "d=-5s"]);
    assert_eq!(got[0], (r#"{app="api", level="info"}"#.to_string(), 1.5));
    assert_eq!(got[1].1, -5.0);
}

#[test]
fn unwrap_errors_are_labels_and_post_filters_can_drop_them() {
    let agg = range_agg(
        RangeOp::SumOverTime,
        vec![logfmt()],
        unwrap("latency", UnwrapConversion::Duration, vec![]),
        Some(Grouping {
            without: false,
            labels: vec!["app".into()],
        }),
    );
    let got = samples(&agg, &["latency=n/a", "latency=1d"]);
    // An errored sample keeps every label, the grouping and the unwrap notwithstanding
    // (Loki's grouped labels return the full set when there is an error).
    assert_eq!(
        got[0],
        (
            r#"{__error__="SampleExtractionErr", __error_details__="time: invalid duration \"n/a\"", app="api", latency="n/a", level="info", pod="api-1"}"#.to_string(),
            0.0
        )
    );
    let post = vec![LabelFilter::String {
        name: "__error__".into(),
        op: MatchOp::Eq,
        value: "".into(),
    }];
    let agg = range_agg(
        RangeOp::SumOverTime,
        vec![logfmt()],
        unwrap("latency", UnwrapConversion::Duration, post),
        None,
    );
    assert_eq!(samples(&agg, &["latency=n/a", "latency=2s"]).len(), 1);
    // Parser errors before the unwrap also stay on the sample.
    let agg = range_agg(RangeOp::CountOverTime, vec![json()], None, None);
    let got = samples(&agg, &["panic: boom"]);
    assert!(got[0].0.contains(r#"__error__="JSONParserErr""#));
}

#[test]
fn unwrap_validity_errors() {
    let err = SampleExtractor::new(&range_agg(
        RangeOp::CountOverTime,
        vec![],
        unwrap("x", UnwrapConversion::Float, vec![]),
        None,
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "parse error : invalid aggregation count_over_time with unwrap"
    );
    let err =
        SampleExtractor::new(&range_agg(RangeOp::SumOverTime, vec![], None, None)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "parse error : invalid aggregation sum_over_time without unwrap"
    );
}

fn parser_stages() -> Vec<Stage> {
    vec![
        json(),
        Stage::Parser(Parser::Json(vec![LabelExtraction {
            label: "p".into(),
            expression: r#"a.b[0]["c"]"#.into(),
        }])),
        logfmt(),
        Stage::Parser(Parser::Logfmt {
            strict: true,
            keep_empty: true,
            params: vec![LabelExtraction {
                label: "k".into(),
                expression: "k".into(),
            }],
        }),
        Stage::Parser(Parser::Regexp("(?P<w>\\w+)".into())),
        Stage::Parser(Parser::Pattern("<a> <_> \"<b>\"".into())),
        Stage::Parser(Parser::Unpack),
        Stage::Decolorize,
        Stage::LabelFilter(num_filter("a", CmpOp::Gt, 1.0)),
    ]
}

proptest! {
    #[test]
    fn arbitrary_lines_never_panic(line in any::<String>()) {
        for stage in parser_stages() {
            let pipeline = LogPipeline::new(std::slice::from_ref(&stage)).unwrap();
            let stream = api_stream();
            let mut sp = pipeline.for_stream(&stream);
            let _ = sp.process(0, &line, &[("m", "v")]);
        }
    }

    #[test]
    fn jsonish_lines_never_panic(line in r#"[{}\[\]":, a-z0-9\\.nultrfe-]{0,60}"#) {
        for stage in parser_stages() {
            let pipeline = LogPipeline::new(std::slice::from_ref(&stage)).unwrap();
            let stream = api_stream();
            let mut sp = pipeline.for_stream(&stream);
            let _ = sp.process(0, &line, &[]);
        }
    }

    #[test]
    fn logfmtish_lines_never_panic(line in r#"[a-z="\\ \t.]{0,60}"#) {
        let pipeline = LogPipeline::new(&parser_stages()[2..4]).unwrap();
        let stream = api_stream();
        let mut sp = pipeline.for_stream(&stream);
        let _ = sp.process(0, &line, &[]);
    }
}

/// Oracles: label sets real Loki 3.4.6 returned for conformance cases p024, p027, p028
/// and p037 (`/work/shared/conformance/expected`).
#[test]
fn loki_oracles() {
    let auth = LabelSet::from_pairs([
        ("app", "auth"),
        ("env", "prod"),
        ("level", "info"),
        ("namespace", "prod"),
        ("pod", "auth-1"),
        ("service_name", "auth"),
    ]);
    let meta = [("detected_level", "info")];
    let pipeline = LogPipeline::new(&[json()]).unwrap();
    let mut sp = pipeline.for_stream(&auth);
    let line = r#"{"level":"info","msg":"GET /login 201","method":"GET","path":"/token","status":201,"latency":"1.9s","size":"512B","user":{"id":"u5","geo":{"country":"KR"}},"tags":["a","b"],"client_ip":"10.3.90.218","ok":true,"trace":null}"#;
    let got = sp.process(1, line, &meta).unwrap();
    assert_eq!(
        got.labels.all.to_string(),
        r#"{app="auth", client_ip="10.3.90.218", detected_level="info", env="prod", latency="1.9s", level="info", level_extracted="info", method="GET", msg="GET /login 201", namespace="prod", ok="true", path="/token", pod="auth-1", service_name="auth", size="512B", status="201", user_geo_country="KR", user_id="u5"}"#
    );

    let jobs = LabelSet::from_pairs([("app", "jobs"), ("pod", "jobs-1")]);
    let params = vec![
        LabelExtraction {
            label: "msg".into(),
            expression: "msg".into(),
        },
        LabelExtraction {
            label: "dur".into(),
            expression: "duration".into(),
        },
    ];
    let pipeline = LogPipeline::new(&[Stage::Parser(Parser::Logfmt {
        strict: false,
        keep_empty: false,
        params,
    })])
    .unwrap();
    let mut sp = pipeline.for_stream(&jobs);
    let got = sp.process(1, "a=b=c level=warn", &[]).unwrap();
    assert_eq!(
        got.labels.parsed,
        vec![
            ("dur".to_string(), String::new()),
            ("msg".to_string(), String::new())
        ]
    );
    let got = sp
        .process(2, r#"level=info msg="job done" job=email duration=45s bytes=2MiB attempts=2 ip=10.2.18.28 flag"#, &[])
        .unwrap();
    assert_eq!(
        got.labels.all.to_string(),
        r#"{app="jobs", dur="45s", msg="job done", pod="jobs-1"}"#
    );

    let web = LabelSet::from_pairs([("app", "web"), ("container", "access")]);
    let pipeline = LogPipeline::new(&[Stage::Parser(Parser::Pattern(
        r#"<ip> - - [<_>] "<method> <path> <_>" <status> <size> <_>"#.into(),
    ))])
    .unwrap();
    let mut sp = pipeline.for_stream(&web);
    let got = sp
        .process(1, r#"10.3.186.229 - - [07/Jul/2024:09:58:43 +0000] "PUT /api/orders HTTP/1.1" 204 9388 "-" "curl/8.0""#, &[])
        .unwrap();
    assert_eq!(
        got.labels.all.to_string(),
        r#"{app="web", container="access", ip="10.3.186.229", method="PUT", path="/api/orders", size="9388", status="204"}"#
    );

    let pipeline = LogPipeline::new(&[Stage::Decolorize]).unwrap();
    let mut sp = pipeline.for_stream(&web);
    let got = sp
        .process(
            1,
            "\u{1b}[31mERROR\u{1b}[0m job=cleanup id=1805 took 799ms err=\"connection refused\"",
            &[],
        )
        .unwrap();
    assert_eq!(
        got.line,
        "ERROR job=cleanup id=1805 took 799ms err=\"connection refused\""
    );
}

#[test]
fn unique_label_sets_stay_correct_past_the_cache_limit() {
    let pipeline = LogPipeline::new(&[logfmt()]).unwrap();
    let stream = api_stream();
    let mut sp = pipeline.for_stream(&stream);
    for i in 0..2000 {
        let line = format!("id={i} kind=x");
        let got = sp.process(i, &line, &[]).unwrap();
        assert_eq!(got.labels.all.get("id"), Some(i.to_string().as_str()));
    }
    let got = sp.process(0, "id=7 kind=x", &[]).unwrap();
    assert_eq!(got.labels.all.get("id"), Some("7"));
}

/// The range aggregation of `q`, with `grouping` set as a parent `sum` pushes it down.
fn pushed_range_agg(q: &str, grouping: Option<Grouping>) -> RangeAgg {
    match crate::parse_expr(q).unwrap() {
        crate::Expr::Metric(crate::ast::MetricExpr::RangeAgg(mut agg)) => {
            if grouping.is_some() {
                agg.grouping = grouping;
            }
            agg
        }
        other => panic!("not a range aggregation: {other:?}"),
    }
}

fn by(labels: &[&str]) -> Option<Grouping> {
    Some(Grouping {
        without: false,
        labels: labels.iter().map(|l| l.to_string()).collect(),
    })
}

#[test]
fn no_labels_hint_skips_parsers_nobody_reads() {
    let lines = [
        r#"{"_entry":"packed","k":"v"}"#,
        r#"{"a":"1"}"#,
        "not json",
        r#"{"a":"2" broken"#,
    ];
    let has_error = |got: &[(String, f64)]| got.iter().any(|(l, _)| l.contains("__error__"));

    // `sum(count_over_time(… | json [5m]))`: one label-free series, every line counted,
    // no parse error.
    for q in [
        r#"count_over_time({app="api"} | json [1m])"#,
        r#"count_over_time({app="api"} | logfmt --strict [1m])"#,
        r#"count_over_time({app="api"} | json x="a" | line_format "static" [1m])"#,
        r#"count_over_time({app="api"} | json | drop a | keep b | label_format c="{{ __line__ }}" [1m])"#,
    ] {
        let got = samples(&pushed_range_agg(q, by(&[])), &lines);
        assert_eq!(got.len(), 4, "{q}");
        assert!(got.iter().all(|(l, _)| l == "{}"), "{q}: {got:?}");
    }
    // `unpack` does not replace the line either: bytes are those of the packed line.
    let got = samples(
        &pushed_range_agg(r#"bytes_over_time({app="api"} | unpack [1m])"#, by(&[])),
        &lines[..1],
    );
    assert_eq!(got, vec![("{}".to_string(), lines[0].len() as f64)]);
    // absent_over_time never needs labels.
    let got = samples(
        &pushed_range_agg(r#"absent_over_time({app="api"} | json [1m])"#, None),
        &lines,
    );
    assert_eq!(got.len(), 4);
    assert!(!has_error(&got), "{got:?}");

    // Anything that reads a label keeps the parsers running, and their errors.
    for (q, grouping) in [
        (r#"count_over_time({app="api"} | json [1m])"#, by(&["pod"])),
        (r#"count_over_time({app="api"} | json [1m])"#, None),
        (
            r#"count_over_time({app="api"} | json [1m])"#,
            Some(Grouping {
                without: true,
                labels: vec![],
            }),
        ),
        (
            r#"count_over_time({app="api"} | json | a!="x" [1m])"#,
            by(&[]),
        ),
        (
            r#"count_over_time({app="api"} | json | line_format "{{.a}}" [1m])"#,
            by(&[]),
        ),
        (
            r#"count_over_time({app="api"} | json | label_format b=a [1m])"#,
            by(&[]),
        ),
        (
            r#"count_over_time({app="api"} | json | label_format b="{{ .a }}" [1m])"#,
            by(&[]),
        ),
    ] {
        let got = samples(&pushed_range_agg(q, grouping.clone()), &lines);
        assert!(has_error(&got), "{q} {grouping:?}: {got:?}");
    }
    // An unwrap needs its label; once a line has it the parser stops, so the broken
    // tail of `{"a":"2" broken` raises nothing, and "not json" has no value to unwrap.
    let got = samples(
        &pushed_range_agg(
            r#"sum_over_time({app="api"} | json | unwrap a [1m])"#,
            by(&[]),
        ),
        &lines,
    );
    assert_eq!(got, vec![("{}".to_string(), 1.0), ("{}".to_string(), 2.0)]);
}

#[test]
fn required_label_hints_extract_only_what_is_read_and_stop_early() {
    let q = r#"count_over_time({app="api"} | json | status >= 500 [1m])"#;
    let agg = pushed_range_agg(q, by(&["status"]));
    let ex = SampleExtractor::new(&agg).unwrap();
    let mut s = ex.for_stream(&api_stream());
    let mut run = |line: &str| s.process(1, line, &[]).map(|(l, v)| (l.to_string(), v));
    assert_eq!(
        run(r#"{"method":"GET","status":503,"url":"/x"}"#),
        Some((r#"{status="503"}"#.to_string(), 1.0))
    );
    assert_eq!(run(r#"{"status":200}"#), None);
    // Broken after `status`: the walk stopped before the break, no error.
    assert_eq!(
        run(r#"{"status":500,"url":"/x" oops"#),
        Some((r#"{status="500"}"#.to_string(), 1.0))
    );
    // Broken before it: the error keeps every label there is, and the keys walked on
    // the way were not extracted because nothing reads them.
    let q = r#"count_over_time({app="api"} | json [1m])"#;
    let ex = SampleExtractor::new(&pushed_range_agg(q, by(&["status"]))).unwrap();
    let mut s = ex.for_stream(&api_stream());
    let (labels, _) = s.process(1, r#"{"method":"GET" oops"#, &[]).unwrap();
    assert_eq!(labels.get("__error__"), Some("JSONParserErr"));
    assert_eq!(labels.get("method"), None);
    assert_eq!(labels.get("pod"), Some("api-1"));

    // Nested keys: only objects a required label starts with are walked.
    let ex = SampleExtractor::new(&pushed_range_agg(q, by(&["user_id"]))).unwrap();
    let mut s = ex.for_stream(&api_stream());
    let (labels, _) = s
        .process(1, r#"{"req":{"x":1 broken},"user":{"id":"u1"},"z":[}"#, &[])
        .unwrap();
    assert_eq!(labels.to_string(), r#"{user_id="u1"}"#);

    // A required `<name>_extracted` also asks for `<name>`: a clash with the stream
    // label `pod` is found after the hint check.
    let ex = SampleExtractor::new(&pushed_range_agg(q, by(&["pod_extracted"]))).unwrap();
    let mut s = ex.for_stream(&api_stream());
    let (labels, _) = s.process(1, r#"{"pod":"p9","x":1}"#, &[]).unwrap();
    assert_eq!(labels.to_string(), r#"{pod_extracted="p9"}"#);

    // logfmt --strict stops at the last required key; a bad pair later is not seen.
    let q = r#"count_over_time({app="api"} | logfmt --strict [1m])"#;
    let ex = SampleExtractor::new(&pushed_range_agg(q, by(&["lvl"]))).unwrap();
    let mut s = ex.for_stream(&api_stream());
    let (labels, _) = s.process(1, "a=1 lvl=warn b=c=d", &[]).unwrap();
    assert_eq!(labels.to_string(), r#"{lvl="warn"}"#);
    let (labels, _) = s.process(1, "a=1 b=c=d lvl=warn", &[]).unwrap();
    assert_eq!(labels.get("__error__"), Some("LogfmtParserErr"));
    assert_eq!(labels.get("a"), None);
}

#[test]
fn required_error_label_preserves_parser_errors() {
    // `__error__` among the hints: a parser error marks the sample so that it does
    // not fail the query (Loki's `__preserve_error__`).
    let q = r#"count_over_time({app="api"} | json [1m])"#;
    let ex = SampleExtractor::new(&pushed_range_agg(q, by(&["__error__"]))).unwrap();
    let mut s = ex.for_stream(&api_stream());
    let (labels, _) = s.process(1, "not json", &[]).unwrap();
    let labels = labels.clone();
    assert_eq!(labels.get("__preserve_error__"), Some("true"));
    assert_eq!(labels.get("__error__"), Some("JSONParserErr"));
    let (ok, _) = s.process(1, r#"{"a":1}"#, &[]).unwrap();
    assert_eq!(ok.to_string(), "{}");
    // Without `__error__` in the hints, no mark.
    let ex = SampleExtractor::new(&pushed_range_agg(q, by(&["a"]))).unwrap();
    let mut s = ex.for_stream(&api_stream());
    let (labels, _) = s.process(1, "not json", &[]).unwrap();
    assert_eq!(labels.get("__preserve_error__"), None);
}
