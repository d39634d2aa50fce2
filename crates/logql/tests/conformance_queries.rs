//! Every query of the Loki conformance corpus either parses and survives a print/parse
//! round trip, or fails with the error Loki answered.

use fenrir_logql::parse_expr;

#[test]
fn conformance_queries_parse_or_fail_like_loki() {
    let data = include_str!("data/conformance_queries.jsonl");
    let mut checked = 0;
    for line in data.lines() {
        let case: serde_json::Value = serde_json::from_str(line).expect("valid json");
        let id = case["id"].as_str().expect("id");
        let query = case["query"].as_str().expect("query");
        match case["parse_error"].as_str() {
            Some(want) => {
                let got = parse_expr(query).expect_err(id).to_string();
                assert_eq!(got, want, "{id}: {query}");
            }
            None => {
                let expr = parse_expr(query).unwrap_or_else(|e| panic!("{id}: {query}: {e}"));
                let printed = expr.to_string();
                let reparsed = parse_expr(&printed)
                    .unwrap_or_else(|e| panic!("{id}: printed {printed:?} fails: {e}"));
                assert_eq!(reparsed, expr, "{id}: {query} printed as {printed}");
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 73);
}
