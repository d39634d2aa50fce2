//! Table-driven checks of logql.md §1.3–§1.7 and §2.11, written as LogQL text so that
//! the parser and the pipeline are tested together. Each case runs one line through
//! `{app="api"} <stages>` for the stream `{app="api", level="info", pod="api-1"}` and
//! compares the kept line and its full label set (the log query's stream key).

use fenrir_common::LabelSet;

use super::LogPipeline;
use crate::{parse_expr, Expr};

const STREAM: &str = r#"{app="api", level="info", pod="api-1"}"#;

/// `None` when the line is dropped; otherwise the line and the label string.
fn run(stages: &str, line: &str, metadata: &[(&str, &str)]) -> Option<(String, String)> {
    let query = format!(r#"{{app="api"}} {stages}"#);
    let Expr::Log(log) = parse_expr(&query).unwrap_or_else(|e| panic!("{query}: {e}")) else {
        panic!("{query}: not a log query");
    };
    let pipeline = LogPipeline::new(&log.stages).unwrap_or_else(|e| panic!("{query}: {e}"));
    let stream = LabelSet::from_pairs([("app", "api"), ("level", "info"), ("pod", "api-1")]);
    let mut sp = pipeline.for_stream(&stream);
    sp.process(1_700_000_000_000_000_000, line, metadata)
        .map(|p| (p.line.into_owned(), p.labels.all.to_string()))
}

/// What a case expects: dropped, or the output line (`=` for unchanged) and labels
/// (`=` for the stream labels unchanged).
type Want<'a> = Option<(&'a str, &'a str)>;

fn check(cases: &[(&str, &str, Want<'_>)]) {
    let mut failures = Vec::new();
    for (stages, line, want) in cases {
        let got = run(stages, line, &[]);
        let want = want.map(|(l, ls)| {
            (
                if l == "=" {
                    line.to_string()
                } else {
                    l.to_string()
                },
                if ls == "=" {
                    STREAM.to_string()
                } else {
                    ls.to_string()
                },
            )
        });
        if got != want {
            failures.push(format!(
                "{stages}  on {line:?}\n  got:  {got:?}\n  want: {want:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn line_filters_t1_t2() {
    check(&[
        // §1.3: substring tests, empty needles.
        (r#"|= "rror""#, "an error", Some(("=", "="))),
        (r#"|= "Error""#, "an error", None),
        (r#"|= """#, "anything", Some(("=", "="))),
        (r#"!= """#, "anything", None),
        // Regexes are unanchored; `.` does not match a newline unless `(?s)` (§2.11 #8).
        (r#"|~ "rr.r""#, "an error", Some(("=", "="))),
        (r#"|~ "^err""#, "an error", None),
        (r#"|~ "a.c""#, "a\nc", None),
        (r#"|~ "(?s)a.c""#, "a\nc", Some(("=", "="))),
        (r#"|~ "a\nc""#, "a\nc", Some(("=", "="))),
        (r#"|~ "(?i)ERROR""#, "an error", Some(("=", "="))),
        (r#"!~ "err|warn""#, "a warning", None),
        // Chains are ANDs; `or` takes the first operator; negative `or` is De Morgan.
        (r#"|= "a" != "b" |~ "c""#, "a c", Some(("=", "="))),
        (r#"|= "a" != "b" |~ "c""#, "a b c", None),
        (r#"|= "x" or "an""#, "an error", Some(("=", "="))),
        (r#"!= "x" or "an""#, "an error", None),
        (r#"!= "x" or "y""#, "an error", Some(("=", "="))),
        // Pattern filters match the whole structure; the leading literal is not
        // anchored (§2.11 #6).
        (
            r#"|> "GET <_> done""#,
            "prefix GET /x done",
            Some(("=", "=")),
        ),
        (r#"|> "GET /api""#, "GET /api 200", None),
        (r#"!> "GET /api""#, "GET /api 200", Some(("=", "="))),
        // ip() filters: any IP token in the set; `!=` keeps lines without an IP.
        (
            r#"|= ip("10.0.0.0/8")"#,
            "client 10.1.2.3 ok",
            Some(("=", "=")),
        ),
        (r#"|= ip("10.0.0.0/8")"#, "client 192.168.0.1 ok", None),
        (
            r#"!= ip("10.0.0.0/8")"#,
            "no address here",
            Some(("=", "=")),
        ),
        (
            r#"|= ip("10.0.0.0/8") or "special""#,
            "a special line",
            Some(("=", "=")),
        ),
    ]);
}

#[test]
fn parsers_t1_t2() {
    let json_example =
        r#"{"lvl":"warn","obj":{"x":1,"y":{"z":2}},"ok":true,"nil":null,"arr":[1,2],"f":1.5}"#;
    check(&[
        // §1.4 json: flattening, arrays and null skipped, raw numbers, booleans.
        (
            "| json",
            json_example,
            Some((
                "=",
                r#"{app="api", f="1.5", level="info", lvl="warn", obj_x="1", obj_y_z="2", ok="true", pod="api-1"}"#,
            )),
        ),
        (
            "| json",
            r#"{"n":1.50,"e":1e3,"s":"a\"b"}"#,
            Some((
                "=",
                r#"{app="api", e="1e3", level="info", n="1.50", pod="api-1", s="a\"b"}"#,
            )),
        ),
        // A name taken by a stream label goes to `_extracted`, on the last path part.
        (
            "| json",
            r#"{"pod":"x","level":{"x":1}}"#,
            Some((
                "=",
                r#"{app="api", level="info", level_x="1", pod="api-1", pod_extracted="x"}"#,
            )),
        ),
        // Within a line the first duplicate key wins.
        (
            "| json",
            r#"{"a":"1","a":"2"}"#,
            Some(("=", r#"{a="1", app="api", level="info", pod="api-1"}"#)),
        ),
        // json without parameters on an empty line: JSONParserErr (§2.11 #9).
        (
            "| json",
            "",
            Some((
                "=",
                r#"{__error__="JSONParserErr", __error_details__="Value looks like object, but can't find closing '}' symbol", app="api", level="info", pod="api-1"}"#,
            )),
        ),
        // json with parameters: paths, objects as raw text, null and missing as "",
        // an empty line gives nothing, a non-JSON line an error without details.
        (
            r#"| json first="servers[0]", ua="request.headers[\"User-Agent\"]", obj="o", n="nil", m="missing""#,
            r#"{"servers":["s1","s2"],"request":{"headers":{"User-Agent":"curl"}},"o":{"k":[1]},"nil":null}"#,
            Some((
                "=",
                r#"{app="api", first="s1", level="info", m="", n="", obj="{\"k\":[1]}", pod="api-1", ua="curl"}"#,
            )),
        ),
        (r#"| json a="a""#, "", Some(("=", "="))),
        (
            r#"| json a="a""#,
            "plain text",
            Some((
                "=",
                r#"{__error__="JSONParserErr", app="api", level="info", pod="api-1"}"#,
            )),
        ),
        // logfmt: bare words and `k=` dropped, bad pairs skipped without error.
        (
            "| logfmt",
            r#"a=1 bare b= c="x y" =v d=e=f g=2"#,
            Some((
                "=",
                r#"{a="1", app="api", c="x y", g="2", level="info", pod="api-1"}"#,
            )),
        ),
        // --strict stops at the first bad pair, keeps what it read, and sets the error.
        (
            "| logfmt --strict",
            "a=1 =v b=2",
            Some((
                "=",
                r#"{__error__="LogfmtParserErr", __error_details__="logfmt syntax error at pos 5 : unexpected '='", a="1", app="api", level="info", pod="api-1"}"#,
            )),
        ),
        // --keep-empty keeps bare keys and `k=` as "".
        (
            "| logfmt --keep-empty",
            "a=1 bare b=",
            Some((
                "=",
                r#"{a="1", app="api", b="", bare="", level="info", pod="api-1"}"#,
            )),
        ),
        // logfmt with parameters: renamed, "" when missing, never shadowing a stream
        // label.
        (
            r#"| logfmt x="a", b, pod"#,
            "a=1 c=3",
            Some((
                "=",
                r#"{app="api", b="", level="info", pod="api-1", x="1"}"#,
            )),
        ),
        // regexp: unanchored, first match; a group that does not take part gives "";
        // no match keeps the line with no labels.
        (
            r#"| regexp "(?P<verb>GET|POST) (?P<path>/\\S+)(?: (?P<code>\\d+))?""#,
            "x GET /a",
            Some((
                "=",
                r#"{app="api", code="", level="info", path="/a", pod="api-1", verb="GET"}"#,
            )),
        ),
        (
            r#"| regexp "(?P<verb>GET|POST) ""#,
            "PUT /a",
            Some(("=", "=")),
        ),
        // pattern: anchored at the start; a short line fills the leading captures.
        (
            r#"| pattern "<ip> - <user> [<ts>]""#,
            "1.2.3.4 - bob",
            Some((
                "=",
                r#"{app="api", ip="1.2.3.4", level="info", pod="api-1", user="bob"}"#,
            )),
        ),
        // unpack: strings only, `_entry` replaces the line; no `_entry`, no labels
        // (§2.11 #4); a non-object is an error.
        (
            "| unpack",
            r#"{"_entry":"inner line","k":"v","n":1}"#,
            Some((
                "inner line",
                r#"{app="api", k="v", level="info", pod="api-1"}"#,
            )),
        ),
        ("| unpack", r#"{"k":"v"}"#, Some(("=", "="))),
        (
            "| unpack",
            "text",
            Some((
                "=",
                r#"{__error__="JSONParserErr", __error_details__="expecting json object(6), but it is not", app="api", level="info", pod="api-1"}"#,
            )),
        ),
        // A later parser neither overwrites nor makes `_extracted` (§2.11 #3).
        (
            r#"| logfmt | regexp "x(?P<a>\\d)""#,
            "a=1 b=x2",
            Some((
                "=",
                r#"{a="1", app="api", b="x2", level="info", pod="api-1"}"#,
            )),
        ),
        (
            r#"| label_format a="x" | logfmt"#,
            "a=1 b=2",
            Some((
                "=",
                r#"{a="x", app="api", b="2", level="info", pod="api-1"}"#,
            )),
        ),
    ]);
}

#[test]
fn label_filters_t1_t2() {
    check(&[
        // §1.5 string filters: an absent label is "".
        (r#"| x="""#, "l", Some(("=", "="))),
        (r#"| x!="""#, "l", None),
        (r#"| pod=~"api-.*""#, "l", Some(("=", "="))),
        (r#"| pod=~".+""#, "l", Some(("=", "="))),
        (r#"| x=~".+""#, "l", None),
        // Loki's unanchored label regexes (§2.11 #1): one-sided and folded shapes.
        (
            r#"| logfmt | n=~"al.*""#,
            "n=prealpha",
            Some((
                "=",
                r#"{app="api", level="info", n="prealpha", pod="api-1"}"#,
            )),
        ),
        (
            r#"| logfmt | n=~"warn|warning""#,
            "n=prewarn",
            Some((
                "=",
                r#"{app="api", level="info", n="prewarn", pod="api-1"}"#,
            )),
        ),
        (r#"| logfmt | n=~"al[a-z]*""#, "n=prealpha", None),
        (r#"| logfmt | n=~"foo|bar""#, "n=xfoo", None),
        // Numeric: missing drops silently; a bad value passes with LabelFilterErr.
        (
            "| logfmt | s > 200",
            "s=500",
            Some(("=", r#"{app="api", level="info", pod="api-1", s="500"}"#)),
        ),
        ("| logfmt | s > 200", "t=1", None),
        (
            "| logfmt | s > 200",
            "s=abc",
            Some((
                "=",
                r#"{__error__="LabelFilterErr", __error_details__="strconv.ParseFloat: parsing \"abc\": invalid syntax", app="api", level="info", pod="api-1", s="abc"}"#,
            )),
        ),
        (
            "| logfmt | s == 500",
            "s=500",
            Some(("=", r#"{app="api", level="info", pod="api-1", s="500"}"#)),
        ),
        ("| logfmt | s != 500", "s=500", None),
        // A logfmt `k=` is dropped, so the filter sees no label (§2.11 #8).
        ("| logfmt | s > 1", "s=", None),
        // Durations and bytes.
        (
            "| logfmt | d > 1s",
            "d=1500ms",
            Some(("=", r#"{app="api", d="1500ms", level="info", pod="api-1"}"#)),
        ),
        ("| logfmt | d <= 1s", "d=1500ms", None),
        (
            "| logfmt | b >= 1KB",
            "b=1000B",
            Some(("=", r#"{app="api", b="1000B", level="info", pod="api-1"}"#)),
        ),
        ("| logfmt | b > 1KiB", "b=1000B", None),
        // `or` does not evaluate its right side when the left matches; `and` does.
        (
            "| logfmt | a=\"1\" or s > 2",
            "a=1 s=x",
            Some((
                "=",
                r#"{a="1", app="api", level="info", pod="api-1", s="x"}"#,
            )),
        ),
        (
            "| logfmt | a=\"1\" and s > 2",
            "a=1 s=x",
            Some((
                "=",
                r#"{__error__="LabelFilterErr", __error_details__="strconv.ParseFloat: parsing \"x\": invalid syntax", a="1", app="api", level="info", pod="api-1", s="x"}"#,
            )),
        ),
        // Errors: `__error__` filters; a filter before the failing stage cannot remove it.
        (r#"| json | __error__="""#, "text", None),
        (r#"| json | __error__!="JSONParserErr""#, "text", None),
        (
            r#"| __error__="" | json"#,
            "text",
            Some((
                "=",
                r#"{__error__="JSONParserErr", __error_details__="Value looks like object, but can't find closing '}' symbol", app="api", level="info", pod="api-1"}"#,
            )),
        ),
        // An ip() label filter passes lines that already have an error (§2.11 #5).
        (
            r#"| json | addr = ip("10.0.0.0/8")"#,
            "text",
            Some((
                "=",
                r#"{__error__="JSONParserErr", __error_details__="Value looks like object, but can't find closing '}' symbol", app="api", level="info", pod="api-1"}"#,
            )),
        ),
        (
            r#"| logfmt | addr = ip("10.0.0.0/8")"#,
            "addr=10.9.9.9:80",
            Some((
                "=",
                r#"{addr="10.9.9.9:80", app="api", level="info", pod="api-1"}"#,
            )),
        ),
        (r#"| logfmt | addr = ip("10.0.0.0/8")"#, "x=1", None),
    ]);
}

#[test]
fn formatting_t1_t2() {
    check(&[
        // §1.6 line_format: labels, missing keys as "", `__line__`, errors in the data.
        (
            r#"| logfmt | line_format "{{.a}}-{{.missing}}-{{.pod}}""#,
            "a=1",
            Some((
                "1--api-1",
                r#"{a="1", app="api", level="info", pod="api-1"}"#,
            )),
        ),
        (r#"| line_format "{{.x}}""#, "old", Some(("", "="))),
        (
            r#"| line_format "[{{ __line__ }}]""#,
            "old",
            Some(("[old]", "=")),
        ),
        (
            r#"| json | line_format "{{.__error__}}""#,
            "text",
            Some((
                "JSONParserErr",
                r#"{__error__="JSONParserErr", __error_details__="Value looks like object, but can't find closing '}' symbol", app="api", level="info", pod="api-1"}"#,
            )),
        ),
        // label_format: rename deletes the source (even a stream label); a missing source
        // does nothing; templates overwrite in place and may give "".
        (
            "| label_format p=pod",
            "l",
            Some(("=", r#"{app="api", level="info", p="api-1"}"#)),
        ),
        ("| label_format p=missing", "l", Some(("=", "="))),
        (
            r#"| label_format level="{{.level | upper}}", e="{{.missing}}""#,
            "l",
            Some(("=", r#"{app="api", e="", level="INFO", pod="api-1"}"#)),
        ),
        // drop: by name, by name and value; dropping __error__ clears the error.
        ("| drop pod, level", "l", Some(("=", r#"{app="api"}"#))),
        (
            r#"| drop pod="x", level="info""#,
            "l",
            Some(("=", r#"{app="api", pod="api-1"}"#)),
        ),
        (
            r#"| drop pod=~"api-.*""#,
            "l",
            Some(("=", r#"{app="api", level="info"}"#)),
        ),
        (
            "| json | drop __error__, __error_details__",
            "text",
            Some(("=", "=")),
        ),
        // keep: everything else goes, stream labels included; a `name="v"` that does not
        // match removes even that label; errors are never removed.
        ("| keep app", "l", Some(("=", r#"{app="api"}"#))),
        (r#"| keep pod="x""#, "l", Some(("=", "{}"))),
        (
            "| json | keep app",
            "text",
            Some((
                "=",
                r#"{__error__="JSONParserErr", __error_details__="Value looks like object, but can't find closing '}' symbol", app="api"}"#,
            )),
        ),
        // decolorize removes ANSI codes; a later line filter still sees the coloured
        // line (§2.11 #2).
        ("| decolorize", "\u{1b}[31mred\u{1b}[0m", Some(("red", "="))),
        (
            r#"| decolorize |= "\u001b[31mred""#,
            "\u{1b}[31mred\u{1b}[0m",
            Some(("red", "=")),
        ),
        (
            r#"| decolorize != "\u001b""#,
            "\u{1b}[31mred\u{1b}[0m",
            None,
        ),
    ]);
}

#[test]
fn structured_metadata_joins_from_the_start() {
    // §1.8: metadata is a label for filters and templates; a parsed clash goes to
    // `_extracted`; a metadata name equal to a stream label goes to `_extracted`.
    let got = run(
        r#"| trace="t1" | logfmt | line_format "{{.trace}}""#,
        "trace=t2",
        &[("trace", "t1"), ("pod", "meta-pod")],
    );
    assert_eq!(
        got,
        Some((
            "t1".to_string(),
            r#"{app="api", level="info", pod="api-1", pod_extracted="meta-pod", trace="t1", trace_extracted="t2"}"#
                .to_string()
        ))
    );
}
