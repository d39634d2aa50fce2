//! LogQL text: parsing never panics, and a parsed tree prints as LogQL that parses back to
//! the same tree.
#![no_main]

use fenrir_logql::parse_expr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = parse_expr(query) else {
        return;
    };
    let printed = expr.to_string();
    let reparsed = parse_expr(&printed)
        .unwrap_or_else(|e| panic!("{query:?} printed as {printed:?}, which fails: {e}"));
    // Debug output compares floats by their text, so NaN literals compare equal to themselves.
    if reparsed != expr {
        assert_eq!(
            format!("{reparsed:?}"),
            format!("{expr:?}"),
            "{query:?} printed as {printed:?} parses to another tree"
        );
    }
});
