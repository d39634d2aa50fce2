//! Parse errors: Loki's exact texts and positions.

use fenrir_logql::parse_expr;

fn err(q: &str) -> String {
    match parse_expr(q) {
        Ok(e) => panic!("{q:?} parsed unexpectedly as {e}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn spec_examples() {
    let cases: &[(&str, &str)] = &[
        (r#"{foo="bar"} foo"#, "parse error at line 1, col 13: syntax error: unexpected IDENTIFIER"),
        (r#"{foo="bar""#, "parse error at line 1, col 11: syntax error: unexpected $end, expecting } or ,"),
        (r#"{foo="bar"} |~"#, "parse error at line 1, col 15: syntax error: unexpected $end, expecting STRING or ip"),
        (r#"{foo="bar}"#, "parse error at line 1, col 6: literal not terminated"),
        (r#"{foo="bar"} "foo""#, "parse error at line 1, col 13: syntax error: unexpected STRING"),
        (r#"unk({ foo = "bar" }[5m])"#, "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER"),
        (r#"rate({ foo = "bar" }[5minutes])"#, r#"parse error at line 0, col 21: unknown unit "minutes" in duration "5minutes""#),
        (r#"rate({ foo = "bar" }[5)"#, "parse error at line 0, col 21: missing closing ']' in duration"),
        (r#"min({ foo = "bar" }[5m])"#, "parse error at line 0, col 20: syntax error: unexpected RANGE"),
        (r#"stddev({ foo = "bar" })"#, "parse error at line 1, col 23: syntax error: unexpected )"),
        (r#"bottomk(he,count_over_time({ foo = "bar" }[5m]))"#, "parse error at line 1, col 9: syntax error: unexpected IDENTIFIER"),
        (r#"label_replace(rate({ foo = "bar" }[5m]),"")"#, "parse error at line 1, col 43: syntax error: unexpected ), expecting ,"),
        (r#"{ foo = "bar" }|logfmt|addr>=ip("1.2.3.4")"#, "parse error at line 1, col 30: syntax error: unexpected ip"),
        (r#"count without (rate({ foo = "bar" }[5m]))"#, "parse error at line 1, col 16: syntax error: unexpected RATE, expecting IDENTIFIER or )"),
        (r#"sum_over_time({foo="bar"}[5m])"#, "parse error : invalid aggregation sum_over_time without unwrap"),
        (r#"rate({foo="bar"} | unwrap x [5m]) by (a)"#, "parse error : grouping not allowed for rate aggregation"),
        (r#"topk(count_over_time({foo="bar"}[5m]))"#, "parse error : parameter required for operation topk"),
        ("0x10", r#"parse error : unable to parse literal as a float: strconv.ParseFloat: parsing "0x10": invalid syntax"#),
        (r#"{env=~".*"}"#, r#"parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~".*" does not meet this requirement, but app=~".+" will"#),
        (r#"{app="api"} |= "#, "parse error at line 1, col 16: syntax error: unexpected $end, expecting STRING or ip"),
        (r#"rate({app="api"}[5m:1m])"#, r#"parse error at line 0, col 17: unknown unit "m:" in duration "5m:1m""#),
        (r#"count_over_time({app="jobs"} | logfmt | unwrap attempts [1m])"#, "parse error : invalid aggregation count_over_time with unwrap"),
    ];
    let mut failures = Vec::new();
    for (q, want) in cases {
        let got = err(q);
        if got != *want {
            failures.push(format!("{q}\n  got:  {got}\n  want: {want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
