//! Table-driven parser tests per grammar element: the query, and the canonical text the
//! printer gives for the tree (which must parse back to the same tree).

use fenrir_common::{MatchOp, Matcher};
use fenrir_logql::ast::*;
use fenrir_logql::parse_expr;

fn parse(q: &str) -> Expr {
    parse_expr(q).unwrap_or_else(|e| panic!("{q:?}: {e}"))
}

fn check_printed(cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (q, want) in cases {
        let expr = match parse_expr(q) {
            Ok(e) => e,
            Err(e) => {
                failures.push(format!("{q}\n  error: {e}"));
                continue;
            }
        };
        let printed = expr.to_string();
        if printed != *want {
            failures.push(format!("{q}\n  got:  {printed}\n  want: {want}"));
        }
        match parse_expr(&printed) {
            Ok(again) if again == expr => {}
            Ok(again) => failures.push(format!("{q}\n  reparsed differently: {again:?}")),
            Err(e) => failures.push(format!("{q}\n  printed text fails: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn check_errors(cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (q, want) in cases {
        match parse_expr(q) {
            Ok(e) => failures.push(format!("{q}\n  parsed as {e}")),
            Err(e) if e.to_string() == *want => {}
            Err(e) => failures.push(format!("{q}\n  got:  {e}\n  want: {want}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn selectors() {
    check_printed(&[
        (r#"{app="api"}"#, r#"{app="api"}"#),
        (
            r#"{ app = "api" , env!="dev" }"#,
            r#"{app="api", env!="dev"}"#,
        ),
        (
            r#"{app=~"api|web", pod!~"x.*"}"#,
            r#"{app=~"api|web", pod!~"x.*"}"#,
        ),
        ("{app=`a\\b`}", r#"{app="a\\b"}"#),
        (r#"{team="결제"}"#, r#"{team="결제"}"#),
        (r#"{a=~".+", a!="x"}"#, r#"{a=~".+", a!="x"}"#),
        ("{app=\"api\"} # a comment", r#"{app="api"}"#),
        ("{app=\"a\\tb\\u00e9\"}", r#"{app="a\tbé"}"#),
    ]);
    check_errors(&[
        ("{}", r#"parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~".*" does not meet this requirement, but app=~".+" will"#),
        (r#"{a!="x"}"#, r#"parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~".*" does not meet this requirement, but app=~".+" will"#),
        (r#"{a!~"x|y"}"#, r#"parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~".*" does not meet this requirement, but app=~".+" will"#),
        (r#"{a=~"("}"#, "parse error : error parsing regexp: missing closing ): `(`"),
        (r#"{a='x'}"#, "parse error at line 1, col 4: syntax error: unexpected IDENTIFIER, expecting STRING"),
        (r#"{a "x"}"#, "parse error at line 1, col 4: syntax error: unexpected STRING, expecting = or =~ or !~ or !="),
        (r#"{a="x",}"#, "parse error at line 1, col 8: syntax error: unexpected }, expecting IDENTIFIER"),
        ("", "parse error : syntax error: unexpected $end"),
    ]);
    let Expr::Log(log) = parse(r#"{App="api"}"#) else {
        panic!("log query expected")
    };
    assert_eq!(
        log.selector,
        vec![Matcher::new(MatchOp::Eq, "App", "api").unwrap()]
    );
}

#[test]
fn keywords_are_case_insensitive() {
    check_printed(&[
        (
            r#"SUM BY (level) (COUNT_OVER_TIME({app="api"} | JSON [1m]))"#,
            r#"sum by (level) (count_over_time({app="api"} | json [1m]))"#,
        ),
        (
            r#"{app="api"} |= "a" OR "b""#,
            r#"{app="api"} |= "a" or "b""#,
        ),
        (
            r#"count_over_time({app="api"}[5m] OFFSET 1h)"#,
            r#"count_over_time({app="api"}[5m] offset 1h)"#,
        ),
    ]);
}

#[test]
fn line_filters() {
    check_printed(&[
        (
            r#"{app="api"} |= "GET" != "x" |~ "a.c" !~ `\d+`"#,
            r#"{app="api"} |= "GET" != "x" |~ "a.c" !~ "\\d+""#,
        ),
        (
            r#"{app="api"} |= "a" or "b" or "c""#,
            r#"{app="api"} |= "a" or "b" or "c""#,
        ),
        (
            r#"{app="api"} != "a" or "b""#,
            r#"{app="api"} != "a" or "b""#,
        ),
        (
            r#"{app="api"} |= ip("10.0.0.0/8") or "special""#,
            r#"{app="api"} |= ip("10.0.0.0/8") or "special""#,
        ),
        (
            r#"{app="api"} != ip("10.0.0.1-10.0.0.9")"#,
            r#"{app="api"} != ip("10.0.0.1-10.0.0.9")"#,
        ),
        (
            r#"{app="api"} |> "<_> done" !> "x <_>""#,
            r#"{app="api"} |> "<_> done" !> "x <_>""#,
        ),
    ]);
    let Expr::Log(log) = parse(r#"{a="b"} |= "x" or "y" != "z""#) else {
        panic!()
    };
    assert_eq!(
        log.stages,
        vec![
            Stage::LineFilter(LineFilter {
                op: LineFilterOp::Contains,
                values: vec![
                    LineFilterValue::Str("x".into()),
                    LineFilterValue::Str("y".into())
                ],
            }),
            Stage::LineFilter(LineFilter {
                op: LineFilterOp::NotContains,
                values: vec![LineFilterValue::Str("z".into())],
            }),
        ]
    );
    check_errors(&[
        (r#"{a="b"} |~ ip("1.2.3.4")"#, r#"parse error : stage '|~ ip("1.2.3.4")' : ip: invalid operation"#),
        (r#"{a="b"} |= ip("nope")"#, r#"parse error : stage '|= ip("nope")' : ip: invalid pattern"#),
        (r#"{a="b"} |~ "(""#, r#"parse error : stage '|~ "("' : error parsing regexp: missing closing ): `(`"#),
        (r#"{a="b"} != 5"#, "parse error at line 1, col 12: syntax error: unexpected NUMBER, expecting STRING or ip"),
        (r#"{a="b"} |= "x" or vector(0)"#, "parse error at line 1, col 19: syntax error: unexpected VECTOR, expecting STRING or ip"),
    ]);
}

#[test]
fn parsers() {
    check_printed(&[
        (r#"{a="b"} | json"#, r#"{a="b"} | json"#),
        (
            r#"{a="b"} | json user_id="user.id", first="tags[0]", status"#,
            r#"{a="b"} | json user_id="user.id",first="tags[0]",status="status""#,
        ),
        (
            r#"{a="b"} | json h="request.headers[\"User-Agent\"]""#,
            r#"{a="b"} | json h="request.headers[\"User-Agent\"]""#,
        ),
        (r#"{a="b"} | logfmt"#, r#"{a="b"} | logfmt"#),
        (
            r#"{a="b"} | logfmt --strict --keep-empty msg, dur="duration""#,
            r#"{a="b"} | logfmt --strict --keep-empty msg="msg",dur="duration""#,
        ),
        (
            r#"{a="b"} | regexp `(?P<m>\w+) (?P<p>\S+)`"#,
            r#"{a="b"} | regexp "(?P<m>\\w+) (?P<p>\\S+)""#,
        ),
        (
            r#"{a="b"} | pattern `<ip> - <_> "<method>"`"#,
            r#"{a="b"} | pattern "<ip> - <_> \"<method>\"""#,
        ),
        (
            r#"{a="b"} | unpack | decolorize"#,
            r#"{a="b"} | unpack | decolorize"#,
        ),
    ]);
    check_errors(&[
        (r#"{app="a"} | regexp "([""#, "parse error : invalid regexp parser: error parsing regexp: missing closing ]: `[`"),
        (r#"{app="a"} | regexp "abc""#, "parse error : invalid regexp parser: at least one named capture must be supplied"),
        (r#"{app="a"} | regexp "(?P<a>x)(?P<a>y)""#, "parse error : invalid regexp parser: duplicate extracted label name 'a'"),
        (r#"{app="a"} | pattern "<_><_>""#, "parse error : invalid pattern parser: at least one capture is required"),
        (r#"{app="a"} | pattern "<a> <a>""#, "parse error : invalid pattern parser: duplicate capture name (a): invalid expression"),
        (r#"{app="a"} | pattern "<a><b>""#, "parse error : invalid pattern parser: found consecutive capture '<a><b>': invalid expression"),
        (r#"{app="a"} | pattern """#, "parse error : invalid pattern parser: parse error at line 1, col 1: syntax error: unexpected $end, expecting IDENTIFIER or LITERAL"),
        (r#"{app="a"} | json foo="bar[""#, r#"parse error : stage '| json foo="bar["' : cannot parse expression [bar[]: syntax error: unexpected $end, expecting STRING or INDEX"#),
        (r#"{app="a"} | json foo="a..b""#, r#"parse error : stage '| json foo="a..b"' : cannot parse expression [a..b]: syntax error: unexpected DOT, expecting FIELD"#),
        (r#"{app="a"} | json foo="""#, r#"parse error : stage '| json foo=""' : cannot parse expression []: syntax error: unexpected $end, expecting LSB or FIELD"#),
        (r#"{app="a"} | json foo="#, "parse error at line 1, col 22: syntax error: unexpected $end, expecting STRING"),
        (r#"{app="a"} | logfmt foo="a.b""#, r#"parse error : stage '| logfmt foo="a.b"' : cannot parse expression [a.b]: unexpected char ."#),
        (r#"{app="a"} | json --strict"#, "parse error at line 0, col 18: syntax error: unexpected PARSER_FLAG"),
    ]);
}

#[test]
fn label_filters() {
    check_printed(&[
        (r#"{a="b"} | status >= 500"#, r#"{a="b"} | status >= 500"#),
        (
            r#"{a="b"} | status == 200 | status = 200"#,
            r#"{a="b"} | status == 200 | status == 200"#,
        ),
        (r#"{a="b"} | status = "200""#, r#"{a="b"} | status="200""#),
        (r#"{a="b"} | x > -2.5"#, r#"{a="b"} | x > -2.5"#),
        (
            r#"{a="b"} | latency > 250ms"#,
            r#"{a="b"} | latency > 250ms"#,
        ),
        (
            r#"{a="b"} | latency <= 1.5s"#,
            r#"{a="b"} | latency <= 1s500ms"#,
        ),
        (r#"{a="b"} | size > 20MB"#, r#"{a="b"} | size > 20000000B"#),
        (r#"{a="b"} | bytes > 1KiB"#, r#"{a="b"} | bytes > 1024B"#),
        (
            r#"{a="b"} | addr = ip("10.0.0.0/8")"#,
            r#"{a="b"} | addr=ip("10.0.0.0/8")"#,
        ),
        (
            r#"{a="b"} | addr != ip("::1")"#,
            r#"{a="b"} | addr!=ip("::1")"#,
        ),
        (
            r#"{a="b"} | name=~"al.*", name!~"x""#,
            r#"{a="b"} | name=~"al.*" and name!~"x""#,
        ),
        (
            r#"{a="b"} | a="1", b="2", c="3""#,
            r#"{a="b"} | a="1", b="2" and c="3""#,
        ),
        (
            r#"{a="b"} | x="1" and y="2" or z="3""#,
            r#"{a="b"} | x="1" and y="2" or z="3""#,
        ),
        (
            r#"{a="b"} | x="1" or y="2" and z="3""#,
            r#"{a="b"} | x="1" or y="2" and z="3""#,
        ),
        (
            r#"{a="b"} | x="1", y="2" or z="3""#,
            r#"{a="b"} | x="1", y="2" or z="3""#,
        ),
        (r#"{a="b"} | x="1" y="2""#, r#"{a="b"} | x="1" and y="2""#),
        (
            r#"{a="b"} | (status >= 500 or latency > 500ms) and method!="POST""#,
            r#"{a="b"} | (status >= 500 or latency > 500ms) and method!="POST""#,
        ),
        (r#"{a="b"} | __error__="""#, r#"{a="b"} | __error__="""#),
    ]);
    // `and` binds tighter than `or`; a comma takes everything to its right.
    let filter = |q: &str| match parse(q) {
        Expr::Log(mut log) => match log.stages.remove(0) {
            Stage::LabelFilter(f) => f,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    let s = |n: &str| LabelFilter::String {
        name: n.into(),
        op: MatchOp::Eq,
        value: "v".into(),
    };
    let and = |l, r| LabelFilter::And(Box::new(l), Box::new(r));
    let or = |l, r| LabelFilter::Or(Box::new(l), Box::new(r));
    assert_eq!(
        filter(r#"{a="b"} | x="v" or y="v" and z="v""#),
        or(s("x"), and(s("y"), s("z")))
    );
    assert_eq!(
        filter(r#"{a="b"} | x="v" and y="v" or z="v""#),
        or(and(s("x"), s("y")), s("z"))
    );
    assert_eq!(
        filter(r#"{a="b"} | x="v", y="v" or z="v""#),
        and(s("x"), or(s("y"), s("z")))
    );
    check_errors(&[
        (
            r#"{a="b"} | status == "200""#,
            "parse error at line 1, col 21: syntax error: unexpected STRING",
        ),
        (
            r#"{a="b"} | x > ip("1.2.3.4")"#,
            "parse error at line 1, col 15: syntax error: unexpected ip",
        ),
        (
            r#"{a="b"} | x=~"(""#,
            "parse error : error parsing regexp: missing closing ): `(`",
        ),
        (
            r#"{a="b"} | x > 1mb"#,
            "parse error at line 1, col 18: syntax error: unexpected $end",
        ),
    ]);
}

#[test]
fn formatting_stages() {
    check_printed(&[
        (
            r#"{a="b"} | line_format "{{.method}} {{.path}}""#,
            r#"{a="b"} | line_format "{{.method}} {{.path}}""#,
        ),
        (
            r#"{a="b"} | label_format code=status, route="{{.method}}""#,
            r#"{a="b"} | label_format code=status,route="{{.method}}""#,
        ),
        (
            r#"{a="b"} | drop __error__, __error_details__"#,
            r#"{a="b"} | drop __error__,__error_details__"#,
        ),
        (
            r#"{a="b"} | drop method="GET", pod, x=~"a.*""#,
            r#"{a="b"} | drop method="GET",pod,x=~"a.*""#,
        ),
        (
            r#"{a="b"} | keep app, status="200""#,
            r#"{a="b"} | keep app,status="200""#,
        ),
    ]);
    check_errors(&[
        (
            r#"{app="a"} | label_format x="a", x="b""#,
            r#"parse error : stage '| label_format x="a",x="b"' : multiple label name 'x' not allowed in a single format operation"#,
        ),
        (
            r#"{app="a"} | label_format __error__="a""#,
            r#"parse error : stage '| label_format __error__="a"' : __error__ cannot be formatted"#,
        ),
        (
            r#"{app="a"} | label_format x="a","#,
            "parse error at line 1, col 32: syntax error: unexpected $end, expecting IDENTIFIER",
        ),
        (
            r#"{app="a"} | label_format x"#,
            "parse error at line 1, col 27: syntax error: unexpected $end, expecting =",
        ),
        (
            r#"{app="a"} | drop"#,
            "parse error at line 1, col 17: syntax error: unexpected $end, expecting IDENTIFIER",
        ),
    ]);
}

#[test]
fn range_aggregations() {
    check_printed(&[
        (
            r#"count_over_time({app="api"}[1m])"#,
            r#"count_over_time({app="api"}[1m])"#,
        ),
        (
            r#"rate({a="b"}[5m] |= "x")"#,
            r#"rate({a="b"} |= "x" [5m])"#,
        ),
        (
            r#"rate(({a="b"} |= "x")[5m])"#,
            r#"rate({a="b"} |= "x" [5m])"#,
        ),
        (
            r#"rate({a="b"} |= "x" [5m])"#,
            r#"rate({a="b"} |= "x" [5m])"#,
        ),
        (
            r#"rate((({a="b"} |= "x" [5m])))"#,
            r#"rate({a="b"} |= "x" [5m])"#,
        ),
        (
            r#"bytes_over_time({a="b"}[5m] offset 10m)"#,
            r#"bytes_over_time({a="b"}[5m] offset 10m)"#,
        ),
        (
            r#"count_over_time({a="b"}[5m] offset -5m)"#,
            r#"count_over_time({a="b"}[5m] offset -5m0s)"#,
        ),
        (
            r#"sum_over_time({a="b"} | logfmt | unwrap attempts [5m])"#,
            r#"sum_over_time({a="b"} | logfmt | unwrap attempts [5m])"#,
        ),
        (
            r#"avg_over_time({a="b"} | json | unwrap duration(latency) | __error__="" [5m]) by (pod)"#,
            r#"avg_over_time({a="b"} | json | unwrap duration(latency) | __error__="" [5m]) by (pod)"#,
        ),
        (
            r#"max_over_time({a="b"} | logfmt | unwrap bytes(bytes) [5m]) without (app)"#,
            r#"max_over_time({a="b"} | logfmt | unwrap bytes(bytes) [5m]) without (app)"#,
        ),
        (
            r#"quantile_over_time(0.95, {a="b"} | json | unwrap latency [5m]) by (env)"#,
            r#"quantile_over_time(0.95, {a="b"} | json | unwrap latency [5m]) by (env)"#,
        ),
        (
            r#"rate({a="b"}[1m] | unwrap x)"#,
            r#"rate({a="b"} | unwrap x [1m])"#,
        ),
        (
            r#"rate_counter({a="b"} | unwrap duration_seconds(x) [1m])"#,
            r#"rate_counter({a="b"} | unwrap duration_seconds(x) [1m])"#,
        ),
        (
            r#"absent_over_time({a="b"}[1h30m])"#,
            r#"absent_over_time({a="b"}[1h30m])"#,
        ),
        (
            r#"first_over_time({a="b"} | unwrap x [500ms]) by ()"#,
            r#"first_over_time({a="b"} | unwrap x [500ms]) by ()"#,
        ),
    ]);
    check_errors(&[
        (r#"sum_over_time({a="b"}[5m])"#, "parse error : invalid aggregation sum_over_time without unwrap"),
        (r#"count_over_time({a="b"} | unwrap x [5m])"#, "parse error : invalid aggregation count_over_time with unwrap"),
        (r#"count_over_time({a="b"}[5m]) by (x)"#, "parse error : grouping not allowed for count_over_time aggregation"),
        (r#"quantile_over_time({a="b"} | unwrap x [5m])"#, "parse error : parameter required for operation quantile_over_time"),
        (r#"sum_over_time(50, {a="b"} | unwrap x [5m])"#, "parse error : parameter 50 not supported for operation sum_over_time"),
        (r#"quantile_over_time(-0.5, {a="b"} | unwrap x [5m])"#, "parse error at line 1, col 20: syntax error: unexpected -, expecting NUMBER or { or ("),
        (r#"rate({a="b"}[1.5m])"#, r#"parse error at line 0, col 13: unknown unit "." in duration "1.5m""#),
        (r#"max_over_time(rate({app="a"}[1m])[30m:5m])"#, "parse error at line 1, col 15: syntax error: unexpected RATE, expecting NUMBER or { or ("),
        (r#"quantile_over_time(0.5, rate({app="a"}[1m])[30m:5m])"#, "parse error at line 1, col 25: syntax error: unexpected RATE, expecting { or ("),
        (r#"{a="b"} | unwrap x"#, "parse error at line 1, col 11: syntax error: unexpected unwrap"),
        (r#"count_over_time({a="b"}[5m] offset 5)"#, "parse error at line 1, col 36: syntax error: unexpected NUMBER, expecting DURATION"),
    ]);
}

#[test]
fn vector_aggregations() {
    check_printed(&[
        (
            r#"sum(rate({a="b"}[1m])) by (pod)"#,
            r#"sum by (pod) (rate({a="b"}[1m]))"#,
        ),
        (
            r#"sum by (pod) (rate({a="b"}[1m]))"#,
            r#"sum by (pod) (rate({a="b"}[1m]))"#,
        ),
        (
            r#"sum without (pod) (rate({a="b"}[1m]))"#,
            r#"sum without (pod) (rate({a="b"}[1m]))"#,
        ),
        (
            r#"topk(2, sum by (pod) (rate({a="b"}[5m])))"#,
            r#"topk(2, sum by (pod) (rate({a="b"}[5m])))"#,
        ),
        (
            r#"topk by (app) (2, rate({a="b"}[5m]))"#,
            r#"topk by (app) (2, rate({a="b"}[5m]))"#,
        ),
        (
            r#"bottomk(1, rate({a="b"}[5m])) by (app)"#,
            r#"bottomk by (app) (1, rate({a="b"}[5m]))"#,
        ),
        (
            r#"sort_desc(sum by (pod) (count_over_time({a="b"}[5m])))"#,
            r#"sort_desc(sum by (pod) (count_over_time({a="b"}[5m])))"#,
        ),
        (
            r#"count(avg(min(max(stddev(stdvar(rate({a="b"}[1m])))))))"#,
            r#"count(avg(min(max(stddev(stdvar(rate({a="b"}[1m])))))))"#,
        ),
        (
            r#"sum by () (rate({a="b"}[1m]))"#,
            r#"sum by () (rate({a="b"}[1m]))"#,
        ),
    ]);
    check_errors(&[
        (
            r#"topk(0, count_over_time({app="a"}[5m]))"#,
            "parse error : invalid parameter (must be greater than 0) topk(0",
        ),
        (
            r#"topk(1.5, count_over_time({app="a"}[5m]))"#,
            "parse error : invalid parameter topk(1.5,",
        ),
        (
            r#"bottomk(1.2, count_over_time({app="a"}[5m]))"#,
            "parse error : invalid parameter bottomk(1.2,",
        ),
        (
            r#"sum(5, count_over_time({app="a"}[5m]))"#,
            "parse error : unsupported parameter for operation sum(5,",
        ),
        (
            r#"sort by (a) (count_over_time({app="a"}[5m]))"#,
            "parse error : sort and sort_desc doesn't allow grouping by ",
        ),
        (
            r#"sum({a="b"})"#,
            "parse error at line 1, col 12: syntax error: unexpected )",
        ),
        (
            r#"sum by (a,) (count_over_time({app="a"}[5m]))"#,
            "parse error at line 1, col 11: syntax error: unexpected ), expecting IDENTIFIER",
        ),
    ]);
}

#[test]
fn binary_operations() {
    check_printed(&[
        ("1 + 2 * 3 ^ 2", "19"),
        ("-2^2", "4"),
        ("2^3^2", "512"),
        ("(1 + 2) * 3", "9"),
        ("1 > 2", "0"),
        ("2 >= bool 2", "1"),
        (
            r#"sum(count_over_time({a="b"} |= "e" [5m])) / sum(count_over_time({a="b"}[5m])) * 100"#,
            r#"sum(count_over_time({a="b"} |= "e" [5m])) / sum(count_over_time({a="b"}[5m])) * 100"#,
        ),
        (
            r#"count_over_time({a="b"}[1m]) > bool 3"#,
            r#"count_over_time({a="b"}[1m]) > bool 3"#,
        ),
        (
            r#"sum(rate({a="b"}[1m])) or vector(0)"#,
            r#"sum(rate({a="b"}[1m])) or vector(0)"#,
        ),
        (
            r#"rate({a="b"}[1m]) / on (pod) rate({a="c"}[1m])"#,
            r#"rate({a="b"}[1m]) / on (pod) rate({a="c"}[1m])"#,
        ),
        (
            r#"rate({a="b"}[1m]) / ignoring (pod) group_left rate({a="c"}[1m])"#,
            r#"rate({a="b"}[1m]) / ignoring (pod) group_left () rate({a="c"}[1m])"#,
        ),
        (
            r#"rate({a="b"}[1m]) * on () group_right (x, y) rate({a="c"}[1m])"#,
            r#"rate({a="b"}[1m]) * on () group_right (x, y) rate({a="c"}[1m])"#,
        ),
        (
            r#"(rate({a="b"}[1m]) + 1) * 2"#,
            r#"(rate({a="b"}[1m]) + 1) * 2"#,
        ),
        (r#"rate({a="b"}[1m]) - -1"#, r#"rate({a="b"}[1m]) - -1"#),
        ("vector(1)+vector(1)", "vector(1) + vector(1)"),
        (
            r#"label_replace(rate({a="b"}[5m]), "dst", "$1", "pod", "api-(.*)")"#,
            r#"label_replace(rate({a="b"}[5m]), "dst", "$1", "pod", "api-(.*)")"#,
        ),
    ]);
    for q in ["1 / 0", "5 % 0", "-1 / 0"] {
        assert!(
            matches!(parse(q), Expr::Metric(MetricExpr::Literal(v)) if v.is_nan()),
            "{q}"
        );
    }
    // Precedence and associativity in the tree.
    let Expr::Metric(MetricExpr::Binary(b)) = parse(r#"vector(1) - vector(2) - vector(3)"#) else {
        panic!()
    };
    assert_eq!(b.op, BinOp::Sub);
    assert_eq!(b.rhs, MetricExpr::Vector(3.0));
    let Expr::Metric(MetricExpr::Binary(b)) = parse(r#"vector(2) ^ vector(3) ^ vector(2)"#) else {
        panic!()
    };
    assert_eq!(b.lhs, MetricExpr::Vector(2.0));
    assert!(matches!(&b.rhs, MetricExpr::Binary(inner) if inner.op == BinOp::Pow));
    let Expr::Metric(MetricExpr::Binary(b)) =
        parse(r#"vector(1) or vector(2) and vector(3) > vector(4) + vector(5) * vector(6)"#)
    else {
        panic!()
    };
    assert_eq!(b.op, BinOp::Or);
    check_errors(&[
        (r#"{a="b"} + 1"#, "parse error : unexpected type for left leg of binary operation (+): *syntax.MatchersExpr"),
        (r#"1 + {a="b"} |= "x""#, "parse error : unexpected type for right leg of binary operation (+): *syntax.PipelineExpr"),
        (r#"1 and vector(1)"#, "parse error : unexpected literal for left leg of logical/set binary operation (and): 1.000000"),
        (r#"vector(1) or 2"#, "parse error : unexpected literal for right leg of logical/set binary operation (or): 2.000000"),
        (r#"-count_over_time({a="b"}[1m])"#, "parse error at line 1, col 2: syntax error: unexpected COUNT_OVER_TIME, expecting NUMBER"),
        ("vector(-1)", "parse error at line 1, col 8: syntax error: unexpected -, expecting NUMBER"),
        (r#"label_replace(rate({a="b"}[5m]), "d", "$1", "s", "(")"#, "parse error : invalid regex in label_replace: error parsing regexp: missing closing ): `^(?:()$`"),
        ("0b101", r#"parse error : unable to parse literal as a float: strconv.ParseFloat: parsing "0b101": invalid syntax"#),
    ]);
}

#[test]
fn limits() {
    let big = format!(r#"{{app="{}"}}"#, "x".repeat(128 * 1024));
    assert_eq!(
        parse_expr(&big).unwrap_err().to_string(),
        "parse error : input size too long (131080 > 131072)"
    );
    let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(parse_expr(&deep)
        .unwrap_err()
        .to_string()
        .contains("nesting too deep"));
    let deep = format!(
        r#"{{a="b"}} | {}x="1"{}"#,
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    assert!(parse_expr(&deep).is_err());
    assert_eq!(parse("((((1))))").to_string(), "((((1))))");
    // Long chains up to the limit parse, print and drop without exhausting the stack.
    let filters = vec![r#"x="1""#; 1000].join(" and ");
    let long = parse(&format!(r#"{{a="b"}} | {filters}"#));
    assert_eq!(parse_expr(&long.to_string()), Ok(long));
    let sum = vec!["vector(1)"; 1001].join(" + ");
    let long = parse(&sum);
    assert_eq!(parse_expr(&long.to_string()), Ok(long));
    let too_long = vec!["vector(1)"; 1002].join(" + ");
    assert!(parse_expr(&too_long)
        .unwrap_err()
        .to_string()
        .contains("too complex"));
}
