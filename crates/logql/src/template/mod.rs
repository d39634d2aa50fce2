//! Go `text/template` as `line_format` and `label_format` use it, with Loki's and sprig's
//! function list (logql.md §1.13). The data is the current label map, with Go's option
//! `missingkey=zero`: a missing label reads as `""`.

// The log pipeline renders with this module; until it is merged, only the parser's
// validation and the tests call into it.
#![cfg_attr(not(test), allow(dead_code))]

mod exec;
mod funcs;
mod gotime;
mod parse;
mod printf;
mod value;

use std::sync::Arc;

/// What a template can read while it renders one line.
#[allow(dead_code)] // Read by the template engine, which lands next.
pub(crate) trait TemplateContext {
    /// The value of label `name` (`.name` in the template); `None` when absent.
    fn label(&self, name: &str) -> Option<&str>;
    /// Every label, for `range` over the data map; sorted by name.
    fn labels(&self) -> Vec<(&str, &str)>;
    /// The current line (`__line__`).
    fn line(&self) -> &str;
    /// The entry's timestamp in nanoseconds (`__timestamp__`).
    fn timestamp(&self) -> i64;
    /// The wall clock for `now` and `date`, in nanoseconds since the epoch. The default
    /// reads the system clock; override it for deterministic output.
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }
}

/// A parsed template.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    name: String,
    source: Arc<str>,
    tree: Arc<parse::Tree>,
}

/// The 1-based line of a byte offset.
fn line_of(src: &str, pos: usize) -> usize {
    1 + src.as_bytes()[..pos.min(src.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

impl Template {
    /// Parses a template; the error text is Go's (e.g. `template: line:1: unclosed action`).
    pub(crate) fn parse(source: &str) -> Result<Template, String> {
        Template::parse_named("line", source)
    }

    /// Parses a template under a name (`line` for `line_format`, `label` for
    /// `label_format`), which Go prints in its error texts.
    pub(crate) fn parse_named(name: &str, source: &str) -> Result<Template, String> {
        match parse::parse(source) {
            Ok(tree) => Ok(Template {
                name: name.to_string(),
                source: source.into(),
                tree: Arc::new(tree),
            }),
            Err((pos, message)) => Err(format!(
                "template: {name}:{}: {message}",
                line_of(source, pos)
            )),
        }
    }

    /// The label names the template reads as fields (`.name`, also inside `if`, `with`,
    /// `range` and parenthesised pipelines), listed as Loki lists them to decide whether
    /// a metric query needs any label: like Loki, it ignores `define`d templates,
    /// variables, and fields chained after a parenthesised pipeline.
    pub(crate) fn field_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        fields_of_nodes(&self.tree.root, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Renders into `out`; on an execution error returns Go's error text and leaves `out`
    /// as it was.
    pub(crate) fn render(&self, ctx: &dyn TemplateContext, out: &mut String) -> Result<(), String> {
        let start = out.len();
        let result = exec::execute(&self.tree, &self.name, &self.source, ctx, out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }
}

fn fields_of_nodes(nodes: &[parse::Node], out: &mut Vec<String>) {
    for node in nodes {
        match node {
            parse::Node::Action(pipe) => fields_of_pipe(pipe, out),
            parse::Node::If(b) | parse::Node::With(b) | parse::Node::Range(b) => {
                fields_of_pipe(&b.pipe, out);
                fields_of_nodes(&b.list, out);
                fields_of_nodes(&b.else_list, out);
            }
            parse::Node::Text(_)
            | parse::Node::Template { .. }
            | parse::Node::Break
            | parse::Node::Continue => {}
        }
    }
}

fn fields_of_pipe(pipe: &parse::Pipe, out: &mut Vec<String>) {
    for cmd in &pipe.cmds {
        for arg in &cmd.args {
            match arg {
                parse::Arg::Field(names) => out.extend(names.iter().cloned()),
                parse::Arg::Chain(inner, fields) if fields.is_empty() => fields_of_pipe(inner, out),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Ctx {
        labels: Vec<(&'static str, &'static str)>,
        line: &'static str,
        ts: i64,
    }

    impl TemplateContext for Ctx {
        fn label(&self, name: &str) -> Option<&str> {
            self.labels
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| *v)
        }
        fn labels(&self) -> Vec<(&str, &str)> {
            self.labels.clone()
        }
        fn line(&self) -> &str {
            self.line
        }
        fn timestamp(&self) -> i64 {
            self.ts
        }
        fn now(&self) -> i64 {
            1_800_000_000_000_000_000
        }
    }

    fn ctx() -> Ctx {
        Ctx {
            labels: vec![
                ("lat", "1.25"),
                ("method", "GET"),
                ("path", "/users"),
                ("status", "200"),
            ],
            line: "hello",
            ts: 1_720_339_200_000_000_000,
        }
    }

    fn render(src: &str) -> Result<String, String> {
        let t = Template::parse(src)?;
        let mut out = String::new();
        t.render(&ctx(), &mut out)?;
        Ok(out)
    }

    fn check(cases: &[(&str, &str)]) {
        let mut failures = Vec::new();
        for (src, want) in cases {
            match render(src) {
                Ok(got) if got == *want => {}
                Ok(got) => failures.push(format!("{src}\n  got:  {got:?}\n  want: {want:?}")),
                Err(e) => failures.push(format!("{src}\n  error: {e}")),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    fn check_errors(cases: &[(&str, &str)]) {
        let mut failures = Vec::new();
        for (src, want) in cases {
            match render(src) {
                Err(e) if e == *want => {}
                other => failures.push(format!("{src}\n  got:  {other:?}\n  want: {want}")),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn fields_and_literals() {
        check(&[
            ("{{.method}} {{.path}} {{.status}}", "GET /users 200"),
            ("[{{.missing}}]", "[]"),
            ("{{ . }}", "map[lat:1.25 method:GET path:/users status:200]"),
            (
                "{{ 1.5 }} {{ 3 }} {{ 1e6 }} {{ -2 }} {{ 0x10 }} {{ 'a' }}",
                "1.5 3 1e+06 -2 16 97",
            ),
            (
                "{{ true }} {{ \"q\\tx\" }} {{ `raw\\n` }}",
                "true q\tx raw\\n",
            ),
            (
                "{{ $x := .method }}{{ $x }}{{ $x = \"P\" }}{{ $x }}",
                "GETP",
            ),
            ("{{ $ }}", "map[lat:1.25 method:GET path:/users status:200]"),
            ("{{ (fromJson \"{\\\"a\\\":{\\\"b\\\":1}}\").a.b }}", "1"),
            ("{{ (fromJson \"{}\").x }}", "<no value>"),
        ]);
    }

    #[test]
    fn field_names_lists_what_loki_counts_as_required_labels() {
        let names = |src: &str| Template::parse(src).unwrap().field_names();
        assert_eq!(names("plain text"), Vec::<String>::new());
        assert_eq!(
            names("{{ __line__ }} {{ . }} {{ $ }}"),
            Vec::<String>::new()
        );
        assert_eq!(names("{{.b}} {{ .a }} {{.b}}"), ["a", "b"]);
        assert_eq!(
            names("{{ if eq .x \"1\" }}{{ .y }}{{ else }}{{ .z | upper }}{{ end }}"),
            ["x", "y", "z"]
        );
        assert_eq!(
            names("{{ range $k, $v := . }}{{ $k }}{{ end }}"),
            Vec::<String>::new()
        );
        assert_eq!(
            names("{{ with .w }}{{ (printf \"%s\" .q) }}{{ end }}"),
            ["q", "w"]
        );
        assert_eq!(names("{{ .user.id }}"), ["id", "user"]);
    }

    #[test]
    fn trim_markers_and_comments() {
        check(&[
            ("a  {{- .method -}}  b", "aGETb"),
            ("a {{- /* comment */ -}} b", "ab"),
            ("a{{/* c */}}b", "ab"),
            ("x {{- 3}}", "x3"),
            ("{{-3}}", "-3"),
        ]);
    }

    #[test]
    fn control_structures() {
        check(&[
            ("{{ if eq .status \"200\" }}ok{{ else }}bad{{ end }}", "ok"),
            ("{{ if .missing }}a{{ else if .method }}b{{ else }}c{{ end }}", "b"),
            ("{{ if and .method .missing }}a{{ else }}c{{ end }}", "c"),
            ("{{ with .method }}[{{ . }}]{{ end }}", "[GET]"),
            ("{{ with .missing }}[{{ . }}]{{ else }}none{{ end }}", "none"),
            ("{{ range $k, $v := . }}{{ $k }}={{ $v }};{{ end }}", "lat=1.25;method=GET;path=/users;status=200;"),
            ("{{ range fromJson \"[]\" }}x{{ else }}empty{{ end }}", "empty"),
            ("{{ range $i, $e := fromJson \"[1,2,3]\" }}{{ if eq $e 2.0 }}{{ continue }}{{ end }}{{ $i }}:{{ $e }} {{ end }}", "0:1 2:3 "),
            ("{{ range fromJson \"[1,2,3]\" }}{{ if eq . 2.0 }}{{ break }}{{ end }}{{ . }}{{ end }}", "1"),
            ("{{ define \"t\" }}[{{ . }}]{{ end }}{{ template \"t\" .method }}", "[GET]"),
            ("{{ block \"b\" .path }}<{{ . }}>{{ end }}", "</users>"),
        ]);
    }

    #[test]
    fn go_builtins() {
        check(&[
            ("{{ and 1 0 }} {{ and 1 2 }} {{ or 0 \"x\" }} {{ or 0 \"\" }} {{ not true }}", "0 2 x  false"),
            ("{{ len .path }} {{ __line__ | len }} {{ len . }}", "6 5 4"),
            ("{{ index . \"method\" }} {{ index (fromJson \"[5,6]\") 1 }}", "GET 6"),
            ("{{ slice .path 1 3 }}", "us"),
            ("{{ print 1 2 \"a\" 3 }}|{{ println \"a\" 1 }}|", "1 2a3|a 1\n|"),
            ("{{ printf \"%s-%05d-%.2f-%q-%x-%5s|%-4s|\" .method 42 3.14159 .path 255 \"ab\" \"c\" }}", "GET-00042-3.14-\"/users\"-ff-   ab|c   |"),
            ("{{ printf \"%d\" .status }} {{ printf \"%v %v\" 1.5 true }}", "%!d(string=200) 1.5 true"),
            ("{{ html \"<a href='x'>&\" }}", "&lt;a href=&#39;x&#39;&gt;&amp;"),
            ("{{ js \"a'b<\" }}", "a\\'b\\u003C"),
            ("{{ urlquery \"a b/c\" }}", "a+b%2Fc"),
            ("{{ eq 1 2 1 }} {{ ne .method \"POST\" }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt 1.5 2.5 }} {{ ge \"b\" \"a\" }}", "true true true true false true"),
            ("{{ .method | printf \"%s!\" }}", "GET!"),
        ]);
    }

    #[test]
    fn loki_functions() {
        check(&[
            ("{{ __line__ }}", "hello"),
            ("{{ __timestamp__ }}", "2024-07-07 08:00:00 +0000 UTC"),
            ("{{ __timestamp__ | unixEpoch }} {{ __timestamp__ | unixEpochMillis }} {{ __timestamp__ | unixEpochNanos }}", "1720339200 1720339200000 1720339200000000000"),
            ("{{ ToLower \"AbC\" }} {{ ToUpper \"aBc\" }} {{ Replace \"aaa\" \"a\" \"b\" 2 }}", "abc ABC bba"),
            ("{{ Trim \"xxaxx\" \"x\" }} {{ TrimLeft \"xxa\" \"x\" }} {{ TrimRight \"axx\" \"x\" }}", "a a a"),
            ("{{ TrimPrefix \"prefix\" \"pre\" }} {{ TrimSuffix \"prefix\" \"fix\" }} [{{ TrimSpace \"  a \" }}]", "fix pre [a]"),
            ("{{ regexReplaceAll \"(\\\\w+)/(\\\\w+)\" \"a/b\" \"${2}-${1}\" }}", "b-a"),
            ("{{ regexReplaceAllLiteral \"a\" \"aa\" \"$1\" }}", "$1$1"),
            ("{{ count \"a\" \"banana\" }}", "3"),
            ("{{ urlencode \"a b&c\" }} {{ urldecode \"a+b%26c\" }}", "a+b%26c a b&c"),
            ("{{ bytes \"2MiB\" }} {{ bytes \"1KB\" }} {{ duration \"1m30s\" }} {{ duration_seconds \"1.5s\" }}", "2.097152e+06 1000 90 1.5"),
            ("{{ unixToTime \"1720339200\" }}|{{ unixToTime \"1720339200123\" }}|{{ unixToTime \"19911\" }}", "2024-07-07 08:00:00 +0000 UTC|2024-07-07 08:00:00.123 +0000 UTC|2024-07-07 00:00:00 +0000 UTC"),
            ("{{ alignLeft 5 \"ab\" }}|{{ alignRight 5 \"ab\" }}|{{ alignLeft 1 \"ab\" }}|{{ alignRight 1 \"ab\" }}", "ab   |   ab|a|b"),
            ("{{ b64dec \"aGVsbG8\" }} {{ b64dec \"!!\" }}", "hello illegal base64 data at input byte 0"),
            ("{{ toDateInZone \"2006-01-02\" \"UTC\" \"2024-07-07\" | unixEpoch }}", "1720310400"),
        ]);
    }

    #[test]
    fn sprig_functions() {
        check(&[
            ("{{ b64enc \"hello\" }} {{ lower \"AB\" }} {{ upper \"ab\" }} {{ title \"hello world\" }}", "aGVsbG8= ab AB Hello World"),
            ("{{ trunc 3 .path }} {{ trunc -3 .path }} {{ substr 1 3 .path }}", "/us ers us"),
            ("{{ contains \"us\" .path }} {{ hasPrefix \"/u\" .path }} {{ hasSuffix \"x\" .path }}", "true true false"),
            ("{{ indent 2 \"a\\nb\" }}|{{ nindent 2 \"a\" }}", "  a\n  b|\n  a"),
            ("{{ replace \"/\" \"_\" .path }} {{ repeat 3 \"ab\" }}", "_users ababab"),
            ("[{{ trim \"  x \" }}] {{ trimAll \"/\" \"/a/\" }} {{ trimPrefix \"/\" .path }} {{ trimSuffix \"s\" .path }}", "[x] a users /user"),
            ("{{ .status | int | add 1 }} {{ int \"0x10\" }} {{ int \"nope\" }} {{ float64 \"1.5\" }}", "201 16 0 1.5"),
            ("{{ add 1 2 }} {{ sub 5 7 }} {{ mul 2 3 4 }} {{ div 7 2 }} {{ mod 7 2 }}", "3 -2 24 3 1"),
            ("{{ addf 0.1 0.2 }} {{ subf 1 0.9 }} {{ mulf 1.1 3 }} {{ divf 1 4 }} {{ .lat | float64 | mulf 2 }}", "0.3 0.1 3.3 0.25 2.5"),
            ("{{ max 1 5 3 }} {{ min 4 2 }} {{ maxf 1.5 2 }} {{ minf 1.5 0.5 }}", "5 2 2 0.5"),
            ("{{ ceil 1.2 }} {{ floor 1.8 }} {{ round 3.7 0 }} {{ round 1.255 1 }}", "2 1 4 1.3"),
            ("{{ default \"none\" .missing }} {{ .method | default \"none\" }} {{ default \"d\" 0 }}", "none GET d"),
            ("{{ (fromJson \"{\\\"a\\\":[1,\\\"x\\\"]}\").a }}", "[1 x]"),
            ("{{ __timestamp__ | date \"2006-01-02 15:04\" }} {{ date \"Jan 2\" 0 }}", "2024-07-07 08:00 Jan 1"),
            ("{{ toDate \"2006-01-02\" \"2024-07-07\" }}", "2024-07-07 00:00:00 +0000 UTC"),
            ("{{ now | unixEpoch }}", "1800000000"),
        ]);
    }

    #[test]
    fn parse_errors_read_like_go() {
        check_errors(&[
            ("{{ .pod", "template: line:1: unclosed action"),
            (
                "{{ nofunc .pod }}",
                "template: line:1: function \"nofunc\" not defined",
            ),
            ("{{ end }}", "template: line:1: unexpected {{end}}"),
            ("{{ .pod }", "template: line:1: unexpected \"}\" in operand"),
            ("{{ if .a }}x", "template: line:1: unexpected EOF"),
            ("{{/* x", "template: line:1: unclosed comment"),
            (
                "{{ \"abc }}",
                "template: line:1: unterminated quoted string",
            ),
            ("{{ $x }}", "template: line:1: undefined variable \"$x\""),
            ("{{ }}", "template: line:1: missing value for command"),
            ("{{ else }}", "template: line:1: unexpected {{else}}"),
            (
                "{{ break }}",
                "template: line:1: {{break}} outside {{range}}",
            ),
            ("a\n{{ end }}", "template: line:2: unexpected {{end}}"),
            ("{{ (1 }}", "template: line:1: unclosed left paren"),
            (
                "{{ if }}{{ end }}",
                "template: line:1: missing value for if",
            ),
        ]);
        assert_eq!(
            Template::parse_named("label", "{{ .pod").unwrap_err(),
            "template: label:1: unclosed action"
        );
    }

    #[test]
    fn execution_errors_read_like_go() {
        check_errors(&[
            ("{{ .method.x }}", "template: line:1:3: executing \"line\" at <.method.x>: can't evaluate field x in type string"),
            ("{{ div 1 0 }}", "template: line:1:3: executing \"line\" at <div 1 0>: error calling div: runtime error: integer divide by zero"),
            ("{{ if gt .status 300 }}x{{ end }}", "template: line:1:6: executing \"line\" at <gt .status 300>: error calling gt: incompatible types for comparison"),
            ("{{ nil }}", "template: line:1:3: executing \"line\" at <nil>: nil is not a command"),
            ("{{ .method 1 }}", "template: line:1:3: executing \"line\" at <.method 1>: can't give argument to non-function .method"),
            ("{{ template \"nope\" }}", "template: line:1:3: executing \"line\" at <{{template \"nope\"}}>: template \"nope\" not defined"),
        ]);
        // A failed render leaves the output as it was.
        let t = Template::parse("abc{{ div 1 0 }}").unwrap();
        let mut out = String::from("keep");
        assert!(t.render(&ctx(), &mut out).is_err());
        assert_eq!(out, "keep");
    }

    #[test]
    fn hostile_templates_are_bounded() {
        assert!(render("{{ repeat 100000000 \"abc\" }}").is_err());
        assert!(
            render("{{ define \"a\" }}{{ template \"a\" }}{{ end }}{{ template \"a\" }}").is_err()
        );
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(500), ")".repeat(500));
        assert!(render(&deep).is_err());
    }

    const SOUP: &[&str] = &[
        "{{",
        "}}",
        "{{-",
        "-}}",
        " ",
        ".a",
        ".",
        "$x",
        "$",
        ":=",
        "=",
        "|",
        "(",
        ")",
        "\"s\"",
        "`r`",
        "'c'",
        "1",
        "-2.5",
        "0x1F",
        "if",
        "else",
        "end",
        "range",
        "with",
        "define",
        "template",
        "block",
        "break",
        "continue",
        "nil",
        "true",
        "printf",
        "\"%d %s %5.2f %q\"",
        "len",
        "index",
        "slice",
        "eq",
        "lt",
        "and",
        "or",
        "not",
        "add",
        "div",
        "repeat",
        "trunc",
        "substr",
        "fromJson",
        "\"[1,{}]\"",
        "date",
        "toDate",
        "unixToTime",
        "__line__",
        "__timestamp__",
        "/*",
        "*/",
        "\n",
        "é",
        ",",
        "$i",
        "default",
        "regexReplaceAll",
        "\"(\"",
    ];

    proptest::proptest! {
        #[test]
        fn arbitrary_templates_never_panic(src in proptest::prelude::any::<String>()) {
            if let Ok(t) = Template::parse(&src) {
                let _ = t.render(&ctx(), &mut String::new());
            }
        }

        #[test]
        fn template_token_soup_never_panics(
            parts in proptest::collection::vec(proptest::sample::select(SOUP), 0..30),
            spaced in proptest::prelude::any::<bool>(),
        ) {
            let src = parts.join(if spaced { " " } else { "" });
            if let Ok(t) = Template::parse(&src) {
                let _ = t.render(&ctx(), &mut String::new());
            }
        }
    }
}
