//! The porcupine reference histories must get exactly the verdicts listed in
//! `shared/jepsen/porcupine-data/README.md`.

use detcd_jepsen::porcupine::{parse_etcd_log, parse_kv_log};
use detcd_jepsen::{check, KvModel, RegisterModel, Verdict};
use std::path::PathBuf;

/// Locates the data directory: `$DETCD_PORCUPINE_DATA`, else
/// `<crate>/../../shared/jepsen/porcupine-data`, else
/// `<crate>/../shared/jepsen/porcupine-data`. Panics (fails the test) if none exists.
fn data_dir() -> PathBuf {
    let mut candidates = Vec::new();
    if let Ok(d) = std::env::var("DETCD_PORCUPINE_DATA") {
        candidates.push(PathBuf::from(d));
    }
    candidates.push(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/jepsen/porcupine-data"
    )));
    candidates.push(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/jepsen/porcupine-data"
    )));
    for c in &candidates {
        if c.join("etcd_000.log").is_file() {
            return c.clone();
        }
    }
    panic!("porcupine data not found; tried {candidates:?} (set DETCD_PORCUPINE_DATA)");
}

/// The 23 linearizable etcd files according to the data README.
const LINEARIZABLE: [u32; 23] = [
    2, 5, 7, 18, 25, 31, 38, 45, 48, 49, 51, 53, 56, 67, 75, 76, 80, 87, 92, 98, 100, 101, 102,
];

#[test]
fn all_etcd_histories_get_the_published_verdicts() {
    let dir = data_dir();
    let (mut lin, mut not) = (0, 0);
    let mut wrong = Vec::new();
    for i in 0..=102u32 {
        if i == 95 {
            continue;
        }
        let path = dir.join(format!("etcd_{i:03}.log"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let h = parse_etcd_log(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert!(h.len() >= 70, "{path:?} has {} ops", h.len());
        let r = check(&RegisterModel, &h, None);
        let want = if LINEARIZABLE.contains(&i) {
            Verdict::Linearizable
        } else {
            Verdict::NotLinearizable
        };
        if r.verdict != want {
            wrong.push((i, r.verdict));
        }
        match r.verdict {
            Verdict::Linearizable => lin += 1,
            Verdict::NotLinearizable => {
                not += 1;
                let e = r.explanation.expect("violations come with an explanation");
                assert!(
                    !e.blocked.is_empty(),
                    "etcd_{i:03}: no blocked ops in explanation"
                );
            }
            Verdict::Unknown => {}
        }
    }
    assert!(wrong.is_empty(), "wrong verdicts: {wrong:?}");
    assert_eq!((lin, not), (23, 79));
}

#[test]
fn empty_etcd_095_parses_to_an_empty_history() {
    let text = std::fs::read_to_string(data_dir().join("etcd_095.log")).expect("etcd_095 exists");
    let h = parse_etcd_log(&text).expect("empty parses");
    assert!(h.is_empty());
}

#[test]
fn kv_histories_get_the_published_verdicts() {
    let dir = data_dir().join("kv");
    for (name, want) in [
        ("c01-ok", Verdict::Linearizable),
        ("c01-bad", Verdict::NotLinearizable),
        ("c10-ok", Verdict::Linearizable),
        ("c10-bad", Verdict::NotLinearizable),
        ("c50-ok", Verdict::Linearizable),
        ("c50-bad", Verdict::NotLinearizable),
    ] {
        let text = std::fs::read_to_string(dir.join(format!("{name}.txt"))).expect("kv file");
        let h = parse_kv_log(&text).expect("parses");
        let model = KvModel::for_history(&h, true);
        let r = check(&model, &h, None);
        assert_eq!(r.verdict, want, "{name}");
        assert!(r.partitions > 1, "{name}: per-key partitions expected");
    }
}

#[test]
fn verdicts_and_explanations_are_deterministic_across_thread_counts() {
    use detcd_jepsen::{check_with, CheckOptions};
    let dir = data_dir();
    let text = std::fs::read_to_string(dir.join("kv/c50-bad.txt")).expect("kv file");
    let h = parse_kv_log(&text).expect("parses");
    let model = KvModel::for_history(&h, true);
    let run = |threads| {
        let r = check_with(
            &model,
            &h,
            &CheckOptions {
                threads,
                ..CheckOptions::default()
            },
        );
        (r.verdict, r.explanation)
    };
    let one = run(1);
    assert_eq!(one.0, Verdict::NotLinearizable);
    let e = one.1.as_ref().expect("explanation");
    assert_eq!(e.partition_keys.len(), 1, "per-key partition");
    for _ in 0..3 {
        assert_eq!(run(2), one);
        assert_eq!(run(4), one);
    }
    let text = std::fs::read_to_string(dir.join("etcd_040.log")).expect("etcd file");
    let h = parse_etcd_log(&text).expect("parses");
    let a = check(&RegisterModel, &h, None).explanation;
    let b = check(&RegisterModel, &h, None).explanation;
    assert!(a.is_some());
    assert_eq!(a, b);
}
