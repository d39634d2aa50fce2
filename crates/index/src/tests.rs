//! Tests of the public API, and a property test against an in-memory model.

use std::collections::{BTreeMap, BTreeSet};

use fenrir_common::{Fingerprint, LabelSet, MatchOp, Matcher, Tenant};
use proptest::prelude::*;

use crate::{ChunkRef, Error, Index, IndexStats};

fn tenant(id: &str) -> Tenant {
    Tenant::new(id).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    LabelSet::from_pairs(pairs.iter().copied())
}

fn m(op: MatchOp, name: &str, value: &str) -> Matcher {
    Matcher::new(op, name, value).unwrap()
}

fn chunk(chunk_id: u64, min_ts: i64, max_ts: i64) -> ChunkRef {
    ChunkRef {
        chunk_id,
        object_key: format!("seg/{chunk_id}.seg"),
        offset: chunk_id * 100,
        len: 100,
        min_ts,
        max_ts,
        entries: 10,
        raw_bytes: 1000,
    }
}

/// The canonical label strings of `series(...)`, sorted, for readable assertions.
fn selected(index: &Index, t: &Tenant, matchers: &[Matcher], start: i64, end: i64) -> Vec<String> {
    let found = index.series(t, matchers, start, end).unwrap();
    let fps: Vec<Fingerprint> = found.iter().map(|(fp, _)| *fp).collect();
    assert!(fps.windows(2).all(|w| w[0] < w[1]), "sorted by fingerprint");
    for (fp, l) in &found {
        assert_eq!(*fp, l.fingerprint());
    }
    let mut out: Vec<String> = found.iter().map(|(_, l)| l.to_string()).collect();
    out.sort();
    out
}

fn strings(items: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    out.sort();
    out
}

/// Series used by the matcher tests, each with one chunk over [10, 20].
fn matcher_fixture() -> (Index, Tenant) {
    let index = Index::temporary().unwrap();
    let t = tenant("fake");
    let sets = [
        labels(&[("app", "api"), ("env", "prod")]),
        labels(&[("app", "web"), ("env", "dev")]),
        labels(&[("app", "api")]),
        labels(&[("app", "결제"), ("env", "prod")]),
        labels(&[("app", "x\u{0}y")]),
        labels(&[("app", "x")]),
        labels(&[("app", "\u{ff}\u{ffff}")]),
    ];
    let batch: Vec<_> = sets
        .iter()
        .enumerate()
        .map(|(i, l)| (l.clone(), chunk(i as u64, 10, 20)))
        .collect();
    index.add_chunks(&t, &batch).unwrap();
    (index, t)
}

const API_PROD: &str = r#"{app="api", env="prod"}"#;
const WEB_DEV: &str = r#"{app="web", env="dev"}"#;
const API: &str = r#"{app="api"}"#;
const PAY_PROD: &str = r#"{app="결제", env="prod"}"#;
const PAY: &str = r#"{app="결제"}"#;
const X_NUL_Y: &str = r#"{app="x\x00y"}"#;
const X: &str = r#"{app="x"}"#;
const ODD: &str = r#"{app="ÿ\uffff"}"#;

#[test]
fn equality_matchers() {
    let (index, t) = matcher_fixture();
    let sel = |ms: &[Matcher]| selected(&index, &t, ms, 0, 100);
    assert_eq!(
        sel(&[m(MatchOp::Eq, "app", "api")]),
        strings(&[API_PROD, API])
    );
    assert_eq!(sel(&[m(MatchOp::Eq, "app", "결제")]), strings(&[PAY_PROD]));
    assert_eq!(sel(&[m(MatchOp::Eq, "app", "x")]), strings(&[X]));
    assert_eq!(
        sel(&[m(MatchOp::Eq, "app", "x\u{0}y")]),
        strings(&[X_NUL_Y])
    );
    assert_eq!(
        sel(&[m(MatchOp::Eq, "app", "\u{ff}\u{ffff}")]),
        strings(&[ODD])
    );
    assert_eq!(
        sel(&[m(MatchOp::Eq, "app", "api"), m(MatchOp::Eq, "env", "prod")]),
        strings(&[API_PROD])
    );
    assert!(sel(&[m(MatchOp::Eq, "app", "nope")]).is_empty());
    assert!(sel(&[m(MatchOp::Eq, "nope", "api")]).is_empty());
    // `env=""` selects the series without the label.
    assert_eq!(
        sel(&[m(MatchOp::Eq, "env", "")]),
        strings(&[API, X_NUL_Y, X, ODD])
    );
}

#[test]
fn inequality_matchers_include_series_lacking_the_label() {
    let (index, t) = matcher_fixture();
    let sel = |ms: &[Matcher]| selected(&index, &t, ms, 0, 100);
    assert_eq!(
        sel(&[m(MatchOp::Neq, "env", "prod")]),
        strings(&[WEB_DEV, API, X_NUL_Y, X, ODD])
    );
    assert_eq!(
        sel(&[m(MatchOp::Neq, "env", "")]),
        strings(&[API_PROD, WEB_DEV, PAY_PROD])
    );
    assert_eq!(
        sel(&[m(MatchOp::Eq, "app", "api"), m(MatchOp::Neq, "env", "prod")]),
        strings(&[API])
    );
    assert_eq!(sel(&[m(MatchOp::Neq, "env", "x")]).len(), 7);
}

#[test]
fn regex_matchers() {
    let (index, t) = matcher_fixture();
    let sel = |ms: &[Matcher]| selected(&index, &t, ms, 0, 100);
    assert_eq!(
        sel(&[m(MatchOp::Re, "app", "a.*")]),
        strings(&[API_PROD, API])
    );
    assert_eq!(sel(&[m(MatchOp::Re, "app", "결.*")]), strings(&[PAY_PROD]));
    assert_eq!(sel(&[m(MatchOp::Re, "app", "x.*")]), strings(&[X_NUL_Y, X]));
    assert_eq!(sel(&[m(MatchOp::Re, "app", "x.")]), Vec::<String>::new());
    assert_eq!(
        sel(&[m(MatchOp::Re, "env", ".+")]),
        strings(&[API_PROD, WEB_DEV, PAY_PROD])
    );
    assert_eq!(sel(&[m(MatchOp::Re, "env", ".*")]).len(), 7);
    assert_eq!(
        sel(&[
            m(MatchOp::Re, "app", "api|web"),
            m(MatchOp::Re, "env", "prod|")
        ]),
        strings(&[API_PROD, API])
    );
    assert_eq!(
        sel(&[m(MatchOp::Nre, "app", "a.*|x.*")]),
        strings(&[WEB_DEV, PAY_PROD, ODD])
    );
    // `env!~".+"` rejects every value, so only series without `env` remain.
    assert_eq!(
        sel(&[m(MatchOp::Nre, "env", ".+")]),
        strings(&[API, X_NUL_Y, X, ODD])
    );
    assert_eq!(
        sel(&[m(MatchOp::Nre, "env", "")]),
        strings(&[API_PROD, WEB_DEV, PAY_PROD])
    );
    assert_eq!(
        sel(&[m(MatchOp::Eq, "app", "api"), m(MatchOp::Re, "env", ".*")]),
        strings(&[API_PROD, API])
    );
    assert_eq!(
        sel(&[m(MatchOp::Eq, "app", "api"), m(MatchOp::Re, "env", ".+")]),
        strings(&[API_PROD])
    );
}

#[test]
fn regex_over_values_with_many_postings() {
    let index = Index::temporary().unwrap();
    let t = tenant("fake");
    let mut batch: Vec<_> = (0..30u64)
        .map(|i| {
            let l = labels(&[("app", "big"), ("pod", &format!("p{i}"))]);
            (l, chunk(i, 0, 10))
        })
        .collect();
    for (i, app) in ["a", "small", "zzzzzzzzzz"].into_iter().enumerate() {
        batch.push((labels(&[("app", app)]), chunk(100 + i as u64, 0, 10)));
    }
    index.add_chunks(&t, &batch).unwrap();
    let count = |op, re| index.series(&t, &[m(op, "app", re)], 0, 10).unwrap().len();
    assert_eq!(count(MatchOp::Re, "small|z+|a"), 3);
    assert_eq!(count(MatchOp::Re, "z+"), 1);
    assert_eq!(count(MatchOp::Re, "b.*"), 30);
    assert_eq!(count(MatchOp::Nre, "b.*"), 3);
    assert_eq!(count(MatchOp::Re, "b.*|small"), 31);
    assert_eq!(count(MatchOp::Re, "nothing"), 0);
}

#[test]
fn no_matchers_or_only_empty_matching_ones_scan_the_tenant() {
    let (index, t) = matcher_fixture();
    assert_eq!(selected(&index, &t, &[], 0, 100).len(), 7);
    let all_empty_matching = [m(MatchOp::Neq, "env", "dev"), m(MatchOp::Re, "app", ".*")];
    assert_eq!(
        selected(&index, &t, &all_empty_matching, 0, 100),
        strings(&[API_PROD, API, PAY_PROD, X_NUL_Y, X, ODD])
    );
}

#[test]
fn series_respect_inclusive_time_bounds() {
    let (index, t) = matcher_fixture();
    let api = [m(MatchOp::Eq, "app", "api")];
    assert_eq!(selected(&index, &t, &api, 20, 30).len(), 2);
    assert_eq!(selected(&index, &t, &api, 0, 10).len(), 2);
    assert_eq!(selected(&index, &t, &api, 15, 15).len(), 2);
    assert!(selected(&index, &t, &api, 21, 30).is_empty());
    assert!(selected(&index, &t, &api, 0, 9).is_empty());
    assert!(
        selected(&index, &t, &api, 20, 10).is_empty(),
        "start after end"
    );
}

#[test]
fn series_with_a_gap_between_chunks_does_not_match_inside_the_gap() {
    let index = Index::temporary().unwrap();
    let t = tenant("fake");
    let l = labels(&[("app", "api")]);
    index
        .add_chunks(&t, &[(l.clone(), chunk(1, 0, 10)), (l, chunk(2, 100, 110))])
        .unwrap();
    let api = [m(MatchOp::Eq, "app", "api")];
    assert!(selected(&index, &t, &api, 11, 99).is_empty());
    assert_eq!(selected(&index, &t, &api, 11, 100).len(), 1);
    assert_eq!(selected(&index, &t, &api, 10, 99).len(), 1);
    assert!(index.label_names(&t, 11, 99).unwrap().is_empty());
    assert!(index
        .label_values(&t, "app", &[], 11, 99)
        .unwrap()
        .is_empty());
    assert_eq!(index.stats(&t, &[], 11, 99).unwrap(), IndexStats::default());
}

#[test]
fn chunks_overlapping_a_range_sorted_by_min_ts() {
    let index = Index::temporary().unwrap();
    let t = tenant("fake");
    let l = labels(&[("app", "api")]);
    let fp = l.fingerprint();
    let long = chunk(1, 0, 1000);
    let early = chunk(2, 500, 510);
    let late = chunk(3, 2000, 2010);
    let negative = chunk(4, -50, -10);
    index
        .add_chunks(
            &t,
            &[
                (l.clone(), late.clone()),
                (l.clone(), early.clone()),
                (l.clone(), long.clone()),
                (l.clone(), negative.clone()),
            ],
        )
        .unwrap();
    let ids = |start, end| -> Vec<u64> {
        index
            .chunks(&t, fp, start, end)
            .unwrap()
            .iter()
            .map(|c| c.chunk_id)
            .collect()
    };
    assert_eq!(ids(i64::MIN, i64::MAX), vec![4, 1, 2, 3]);
    assert_eq!(ids(505, 505), vec![1, 2]);
    // Only the long chunk spans this range although its max_ts is far past it.
    assert_eq!(ids(900, 950), vec![1]);
    assert_eq!(ids(1500, 1600), Vec::<u64>::new());
    assert_eq!(ids(1000, 2000), vec![1, 3]);
    assert_eq!(ids(2010, i64::MAX), vec![3]);
    assert_eq!(ids(2011, i64::MAX), Vec::<u64>::new());
    assert_eq!(ids(-10, -10), vec![4]);
    assert_eq!(ids(10, 5), Vec::<u64>::new());
    let all = index.chunks(&t, fp, i64::MIN, i64::MAX).unwrap();
    assert_eq!(all[0], negative);
    assert_eq!(all[1], long);
    assert!(index
        .chunks(&t, fp ^ 1, i64::MIN, i64::MAX)
        .unwrap()
        .is_empty());
}

#[test]
fn adding_the_same_chunks_again_is_a_no_op() {
    let index = Index::temporary().unwrap();
    let t = tenant("fake");
    let l = labels(&[("app", "api")]);
    let batch = vec![(l.clone(), chunk(1, 0, 10)), (l.clone(), chunk(1, 0, 10))];
    index.add_chunks(&t, &batch).unwrap();
    let before = index.stats(&t, &[], i64::MIN, i64::MAX).unwrap();
    assert_eq!(before.chunks, 1, "duplicate inside one call");
    index.add_chunks(&t, &batch).unwrap();
    // Same id with other contents is still the same chunk: the first record stays.
    index
        .add_chunks(&t, &[(l.clone(), chunk(1, 50, 60))])
        .unwrap();
    assert_eq!(index.stats(&t, &[], i64::MIN, i64::MAX).unwrap(), before);
    assert_eq!(
        index
            .chunks(&t, l.fingerprint(), i64::MIN, i64::MAX)
            .unwrap(),
        vec![chunk(1, 0, 10)]
    );
    assert!(selected(&index, &t, &[], 50, 60).is_empty());
    index.add_chunks(&t, &[]).unwrap();
}

#[test]
fn label_names_and_values() {
    let index = Index::temporary().unwrap();
    let t = tenant("fake");
    index
        .add_chunks(
            &t,
            &[
                (labels(&[("app", "api"), ("env", "prod")]), chunk(1, 0, 10)),
                (
                    labels(&[("app", "web"), ("zone", "결제")]),
                    chunk(2, 20, 30),
                ),
                (labels(&[("app", "db"), ("env", "dev")]), chunk(3, 0, 30)),
            ],
        )
        .unwrap();
    assert_eq!(
        index.label_names(&t, 0, 100).unwrap(),
        strings(&["app", "env", "zone"])
    );
    assert_eq!(
        index.label_names(&t, 0, 10).unwrap(),
        strings(&["app", "env"])
    );
    assert!(index.label_names(&t, 31, 100).unwrap().is_empty());
    assert_eq!(
        index.label_values(&t, "app", &[], 0, 100).unwrap(),
        strings(&["api", "db", "web"])
    );
    assert_eq!(
        index.label_values(&t, "app", &[], 11, 19).unwrap(),
        strings(&["db"])
    );
    assert_eq!(
        index
            .label_values(&t, "app", &[m(MatchOp::Eq, "env", "prod")], 0, 100)
            .unwrap(),
        strings(&["api"])
    );
    assert_eq!(
        index
            .label_values(&t, "app", &[m(MatchOp::Neq, "env", "prod")], 0, 100)
            .unwrap(),
        strings(&["db", "web"])
    );
    assert_eq!(
        index.label_values(&t, "zone", &[], 0, 100).unwrap(),
        strings(&["결제"])
    );
    assert!(index
        .label_values(&t, "zone", &[m(MatchOp::Re, "app", "a.*")], 0, 100)
        .unwrap()
        .is_empty());
    assert!(index
        .label_values(&t, "nope", &[], 0, 100)
        .unwrap()
        .is_empty());
}

#[test]
fn stats_count_overlapping_chunks() {
    let index = Index::temporary().unwrap();
    let t = tenant("fake");
    let api = labels(&[("app", "api")]);
    let web = labels(&[("app", "web")]);
    index
        .add_chunks(
            &t,
            &[
                (api.clone(), chunk(1, 0, 10)),
                (api.clone(), chunk(2, 11, 20)),
                (web.clone(), chunk(3, 15, 30)),
            ],
        )
        .unwrap();
    assert_eq!(
        index.stats(&t, &[], 0, 100).unwrap(),
        IndexStats {
            streams: 2,
            chunks: 3,
            entries: 30,
            bytes: 3000
        }
    );
    assert_eq!(
        index
            .stats(&t, &[m(MatchOp::Eq, "app", "api")], 10, 15)
            .unwrap(),
        IndexStats {
            streams: 1,
            chunks: 2,
            entries: 20,
            bytes: 2000
        }
    );
    assert_eq!(
        index.stats(&t, &[], 21, 100).unwrap(),
        IndexStats {
            streams: 1,
            chunks: 1,
            entries: 10,
            bytes: 1000
        }
    );
}

#[test]
fn tenants_are_isolated() {
    let index = Index::temporary().unwrap();
    let a = tenant("a");
    let b = tenant("ab");
    let l = labels(&[("app", "api")]);
    let fp = l.fingerprint();
    index
        .add_chunks(&a, &[(l.clone(), chunk(1, 0, 10))])
        .unwrap();
    index
        .add_chunks(
            &b,
            &[
                (l.clone(), chunk(1, 100, 110)),
                (labels(&[("only", "b")]), chunk(2, 100, 110)),
            ],
        )
        .unwrap();
    assert_eq!(index.tenants().unwrap(), vec![a.clone(), b.clone()]);

    let api = [m(MatchOp::Eq, "app", "api")];
    assert_eq!(index.series(&a, &api, 0, 10).unwrap().len(), 1);
    assert!(index.series(&a, &api, 100, 110).unwrap().is_empty());
    assert!(index.series(&b, &api, 0, 10).unwrap().is_empty());
    assert_eq!(selected(&index, &a, &[], 0, 1000), strings(&[API]));
    assert_eq!(index.series(&b, &[], 0, 1000).unwrap().len(), 2);
    assert!(index
        .series(&a, &[m(MatchOp::Re, "only", ".+")], 0, 1000)
        .unwrap()
        .is_empty());

    assert_eq!(
        index.chunks(&a, fp, 0, 1000).unwrap(),
        vec![chunk(1, 0, 10)]
    );
    assert_eq!(
        index.chunks(&b, fp, 0, 1000).unwrap(),
        vec![chunk(1, 100, 110)]
    );
    assert_eq!(index.label_names(&a, 0, 1000).unwrap(), strings(&["app"]));
    assert_eq!(
        index.label_names(&b, 0, 1000).unwrap(),
        strings(&["app", "only"])
    );
    assert!(index
        .label_values(&a, "only", &[], 0, 1000)
        .unwrap()
        .is_empty());
    assert_eq!(index.stats(&a, &[], 0, 1000).unwrap().chunks, 1);
    assert_eq!(index.stats(&b, &[], 0, 1000).unwrap().chunks, 2);

    index.delete_chunks(&b, fp, &[1]).unwrap();
    assert_eq!(
        index.chunks(&a, fp, 0, 1000).unwrap(),
        vec![chunk(1, 0, 10)]
    );
    assert!(index.chunks(&b, fp, 0, 1000).unwrap().is_empty());
    index
        .delete_chunks(&b, labels(&[("only", "b")]).fingerprint(), &[2])
        .unwrap();
    assert_eq!(index.tenants().unwrap(), vec![a.clone()]);
    assert_eq!(index.series(&a, &api, 0, 10).unwrap().len(), 1);
}

#[test]
fn deleting_chunks_shrinks_then_removes_the_series() {
    let index = Index::temporary().unwrap();
    let t = tenant("fake");
    let l = labels(&[("app", "api"), ("env", "prod")]);
    let fp = l.fingerprint();
    index
        .add_chunks(
            &t,
            &[(l.clone(), chunk(1, 0, 10)), (l.clone(), chunk(2, 50, 60))],
        )
        .unwrap();
    index.delete_chunks(&t, fp, &[2, 99]).unwrap();
    assert_eq!(index.chunks(&t, fp, 0, 100).unwrap(), vec![chunk(1, 0, 10)]);
    assert!(selected(&index, &t, &[], 50, 60).is_empty());
    assert_eq!(selected(&index, &t, &[], 0, 5), strings(&[API_PROD]));
    // A deleted id can be added again.
    index
        .add_chunks(&t, &[(l.clone(), chunk(2, 50, 60))])
        .unwrap();
    assert_eq!(selected(&index, &t, &[], 50, 60), strings(&[API_PROD]));

    index.delete_chunks(&t, fp, &[1, 2]).unwrap();
    assert!(index.chunks(&t, fp, i64::MIN, i64::MAX).unwrap().is_empty());
    assert!(index
        .series(&t, &[m(MatchOp::Eq, "app", "api")], i64::MIN, i64::MAX)
        .unwrap()
        .is_empty());
    assert!(index
        .label_names(&t, i64::MIN, i64::MAX)
        .unwrap()
        .is_empty());
    assert!(index.tenants().unwrap().is_empty());
    assert!(index.postings.is_empty(), "postings of the series are gone");
    // Deleting from an unknown series or with no ids does nothing.
    index.delete_chunks(&t, fp, &[1]).unwrap();
    index.delete_chunks(&t, fp, &[]).unwrap();
}

#[test]
fn clear_drops_everything_but_keeps_the_index_usable() {
    let (index, t) = matcher_fixture();
    index.clear().unwrap();
    assert!(index.tenants().unwrap().is_empty());
    assert!(index
        .series(&t, &[], i64::MIN, i64::MAX)
        .unwrap()
        .is_empty());
    assert!(index
        .label_names(&t, i64::MIN, i64::MAX)
        .unwrap()
        .is_empty());
    let l = labels(&[("app", "api")]);
    // The chunk id index was cleared too, so re-adding works.
    index
        .add_chunks(&t, &[(l.clone(), chunk(0, 10, 20))])
        .unwrap();
    assert_eq!(selected(&index, &t, &[], 0, 100), strings(&[API]));
}

#[test]
fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("fake");
    let l = labels(&[("app", "결제")]);
    {
        let index = Index::open(dir.path()).unwrap();
        index
            .add_chunks(&t, &[(l.clone(), chunk(7, 1, 2))])
            .unwrap();
        index.flush().unwrap();
    }
    let index = Index::open(dir.path()).unwrap();
    assert_eq!(index.tenants().unwrap(), vec![t.clone()]);
    assert_eq!(
        selected(&index, &t, &[m(MatchOp::Eq, "app", "결제")], 0, 5),
        strings(&[PAY])
    );
    assert_eq!(
        index.chunks(&t, l.fingerprint(), 0, 5).unwrap(),
        vec![chunk(7, 1, 2)]
    );
}

#[test]
fn unknown_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Index::open(dir.path()).unwrap());
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("format_version", &99u32.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    match Index::open(dir.path()) {
        Err(Error::IncompatibleVersion { found, supported }) => {
            assert_eq!((found, supported), (99, 1));
        }
        other => panic!("expected a version error, got {other:?}"),
    }
}

#[test]
fn data_without_a_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("series").unwrap().insert("x", "y").unwrap();
        db.flush().unwrap();
    }
    assert!(matches!(
        Index::open(dir.path()),
        Err(Error::IncompatibleVersion { found: 0, .. })
    ));
}

#[test]
fn corrupt_entries_are_errors_not_panics() {
    let (index, t) = matcher_fixture();
    let mut key = vec![4u8];
    key.extend_from_slice(b"fake");
    key.extend_from_slice(&1u64.to_be_bytes());
    index.series.insert(key, &[1, 2, 3]).unwrap();
    assert!(matches!(
        index.series(&t, &[], 0, 100),
        Err(Error::Corrupt { tree: "series", .. })
    ));
    // Lookups that do not touch the bad entry still work.
    assert_eq!(
        selected(&index, &t, &[m(MatchOp::Eq, "app", "x")], 0, 100),
        strings(&[X])
    );
}

// ---- property test against a brute-force model ----

const NAMES: &[&str] = &["app", "env", "job"];
const VALUES: &[&str] = &["", "api", "web", "a", "결제", "x\u{0}", "\u{ff}", "\u{0}"];
const REGEXES: &[&str] = &[".*", ".+", "a.*", "결.*", "api|web", "x.", "", "\u{ff}|a"];

#[derive(Debug, Clone)]
enum Op {
    Add(Vec<(usize, usize, u64, i64, i64)>),
    Delete(usize, usize, Vec<u64>),
}

fn label_set_strategy() -> impl Strategy<Value = LabelSet> {
    proptest::collection::vec((0..NAMES.len(), 0..VALUES.len()), 0..3).prop_map(|pairs| {
        LabelSet::from_pairs(pairs.into_iter().map(|(n, v)| (NAMES[n], VALUES[v])))
    })
}

fn op_strategy(series: usize) -> impl Strategy<Value = Op> {
    let add = proptest::collection::vec(
        (0..2usize, 0..series, 0..12u64, -20..100i64, 0..30i64),
        1..10,
    )
    .prop_map(Op::Add);
    let delete = (
        0..2usize,
        0..series,
        proptest::collection::vec(0..8u64, 1..3),
    )
        .prop_map(|(t, s, ids)| Op::Delete(t, s, ids));
    prop_oneof![4 => add, 1 => delete]
}

fn matcher_strategy() -> impl Strategy<Value = Matcher> {
    (0..4usize, 0..NAMES.len(), 0..VALUES.len(), 0..REGEXES.len()).prop_map(
        |(op, n, v, r)| match op {
            0 => m(MatchOp::Eq, NAMES[n], VALUES[v]),
            1 => m(MatchOp::Neq, NAMES[n], VALUES[v]),
            2 => m(MatchOp::Re, NAMES[n], REGEXES[r]),
            _ => m(MatchOp::Nre, NAMES[n], REGEXES[r]),
        },
    )
}

/// Per tenant: fingerprint → (labels, chunks by id).
type Model = [BTreeMap<Fingerprint, (LabelSet, BTreeMap<u64, ChunkRef>)>; 2];

fn model_series(
    model: &BTreeMap<Fingerprint, (LabelSet, BTreeMap<u64, ChunkRef>)>,
    matchers: &[Matcher],
    start: i64,
    end: i64,
) -> Vec<(Fingerprint, LabelSet, Vec<ChunkRef>)> {
    model
        .iter()
        .filter(|(_, (l, _))| matchers.iter().all(|m| m.matches_labels(l)))
        .filter_map(|(fp, (l, chunks))| {
            let mut hits: Vec<ChunkRef> = chunks
                .values()
                .filter(|c| c.overlaps(start, end))
                .cloned()
                .collect();
            hits.sort_by_key(|c| (c.min_ts, c.max_ts, c.chunk_id));
            (!hits.is_empty()).then(|| (*fp, l.clone(), hits))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn index_agrees_with_a_brute_force_model(
        sets in proptest::collection::vec(label_set_strategy(), 1..6),
        ops in proptest::collection::vec(op_strategy(6), 1..10),
        queries in proptest::collection::vec(
            (proptest::collection::vec(matcher_strategy(), 0..3), -30..130i64, 0..40i64),
            1..6,
        ),
    ) {
        let index = Index::temporary().unwrap();
        let tenants = [tenant("t1"), tenant("t2")];
        let mut model: Model = Default::default();
        for op in &ops {
            match op {
                Op::Add(items) => {
                    let mut per_tenant: [Vec<(LabelSet, ChunkRef)>; 2] = Default::default();
                    for &(t, s, id, min_ts, len) in items {
                        let l = sets[s % sets.len()].clone();
                        let c = chunk(id, min_ts, min_ts + len);
                        let entry = model[t].entry(l.fingerprint()).or_insert_with(|| (l.clone(), BTreeMap::new()));
                        entry.1.entry(id).or_insert_with(|| c.clone());
                        per_tenant[t].push((l, c));
                    }
                    for (t, items) in per_tenant.iter().enumerate() {
                        index.add_chunks(&tenants[t], items).unwrap();
                    }
                }
                Op::Delete(t, s, ids) => {
                    let fp = sets[s % sets.len()].fingerprint();
                    index.delete_chunks(&tenants[*t], fp, ids).unwrap();
                    if let Some((_, chunks)) = model[*t].get_mut(&fp) {
                        for id in ids {
                            chunks.remove(id);
                        }
                        if chunks.is_empty() {
                            model[*t].remove(&fp);
                        }
                    }
                }
            }
        }
        let expected_tenants: Vec<Tenant> = (0..2)
            .filter(|&t| !model[t].is_empty())
            .map(|t| tenants[t].clone())
            .collect();
        prop_assert_eq!(index.tenants().unwrap(), expected_tenants);
        for (matchers, start, len) in &queries {
            let (start, end) = (*start, start + len);
            for t in 0..2 {
                let tenant = &tenants[t];
                let want = model_series(&model[t], matchers, start, end);
                let got = index.series(tenant, matchers, start, end).unwrap();
                let want_series: Vec<(Fingerprint, LabelSet)> =
                    want.iter().map(|(fp, l, _)| (*fp, l.clone())).collect();
                prop_assert_eq!(&got, &want_series, "series {:?} [{}, {}]", matchers, start, end);

                let mut want_stats = IndexStats::default();
                for (fp, _, chunks) in &want {
                    want_stats.streams += 1;
                    chunks.iter().for_each(|c| want_stats.add_chunk(c));
                    prop_assert_eq!(&index.chunks(tenant, *fp, start, end).unwrap(), chunks);
                }
                prop_assert_eq!(index.stats(tenant, matchers, start, end).unwrap(), want_stats);

                let everything = model_series(&model[t], &[], start, end);
                let want_names: BTreeSet<String> = everything
                    .iter()
                    .flat_map(|(_, l, _)| l.iter().map(|(n, _)| n.to_owned()))
                    .collect();
                prop_assert_eq!(
                    index.label_names(tenant, start, end).unwrap(),
                    want_names.into_iter().collect::<Vec<_>>()
                );
                for name in NAMES {
                    let want_values: BTreeSet<String> = want
                        .iter()
                        .filter_map(|(_, l, _)| l.get(name).map(str::to_owned))
                        .collect();
                    prop_assert_eq!(
                        index.label_values(tenant, name, matchers, start, end).unwrap(),
                        want_values.into_iter().collect::<Vec<_>>(),
                        "values of {} for {:?}", name, matchers
                    );
                }
            }
        }
    }
}
