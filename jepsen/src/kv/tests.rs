//! Unit tests of the KV model: etcd's revision rules, transaction branches,
//! value compares on missing keys, and partitioning of multi-key txns.

use super::*;
use crate::history::{History, Op, Outcome};
use crate::{check, Verdict};

fn seq(ops: Vec<(KvInput, KvOutput)>) -> History<KvInput, KvOutput> {
    History {
        ops: ops
            .into_iter()
            .enumerate()
            .map(|(i, (input, out))| Op {
                process: 0,
                invoke: 2 * i as u64,
                complete: 2 * i as u64 + 1,
                input,
                outcome: Outcome::Ok(out),
            })
            .collect(),
    }
}

fn put(k: &str, v: &str) -> KvInput {
    KvInput::Put {
        key: k.into(),
        value: v.into(),
    }
}

fn get(k: &str) -> KvInput {
    KvInput::Get { key: k.into() }
}

fn got(v: Option<&str>, m: u64, r: u64) -> KvOutput {
    KvOutput::Get {
        value: v.map(Into::into),
        mod_revision: Some(m),
        revision: Some(r),
    }
}

fn verdict(h: &History<KvInput, KvOutput>) -> Verdict {
    check(&KvModel::default(), h, None).verdict
}

#[test]
fn revisions_follow_etcd() {
    let del = |k: &str| KvInput::Delete { key: k.into() };
    let h = seq(vec![
        (get("a"), got(None, 0, 1)),
        (put("a", "1"), KvOutput::Put { revision: Some(2) }),
        (put("b", "1"), KvOutput::Put { revision: Some(3) }),
        (get("a"), got(Some("1"), 2, 3)),
        // Deleting an absent key does not bump the revision.
        (
            del("zz"),
            KvOutput::Delete {
                deleted: Some(0),
                revision: Some(3),
            },
        ),
        (
            del("a"),
            KvOutput::Delete {
                deleted: Some(1),
                revision: Some(4),
            },
        ),
        (
            KvInput::Txn {
                compares: vec![Compare {
                    key: "b".into(),
                    op: CmpOp::Equal,
                    target: CompareTarget::ModRevision(3),
                }],
                success: vec![
                    TxnOp::Put {
                        key: "a".into(),
                        value: "2".into(),
                    },
                    TxnOp::Put {
                        key: "c".into(),
                        value: "2".into(),
                    },
                    TxnOp::Get { key: "a".into() },
                ],
                failure: vec![],
            },
            KvOutput::Txn {
                succeeded: true,
                results: vec![
                    TxnOpResult::Put,
                    TxnOpResult::Put,
                    TxnOpResult::Get {
                        value: Some("2".into()),
                        mod_revision: Some(5),
                    },
                ],
                revision: Some(5),
            },
        ),
        (get("c"), got(Some("2"), 5, 5)),
    ]);
    assert_eq!(verdict(&h), Verdict::Linearizable);
    // Each wrong revision is caught.
    for (i, bad) in [
        (1, KvOutput::Put { revision: Some(3) }),
        (3, got(Some("1"), 3, 3)),
        (3, got(Some("1"), 2, 4)),
        (
            4,
            KvOutput::Delete {
                deleted: Some(0),
                revision: Some(4),
            },
        ),
        (7, got(Some("2"), 6, 5)),
    ] {
        let mut h2 = h.clone();
        h2.ops[i].outcome = Outcome::Ok(bad);
        assert_eq!(verdict(&h2), Verdict::NotLinearizable, "corrupting op {i}");
    }
}

#[test]
fn txn_branch_must_match_compare() {
    let txn = KvInput::Txn {
        compares: vec![Compare {
            key: "a".into(),
            op: CmpOp::Equal,
            target: CompareTarget::Value("1".into()),
        }],
        success: vec![TxnOp::Put {
            key: "b".into(),
            value: "yes".into(),
        }],
        failure: vec![TxnOp::Put {
            key: "b".into(),
            value: "no".into(),
        }],
    };
    let out = |s| KvOutput::Txn {
        succeeded: s,
        results: vec![],
        revision: None,
    };
    let plain = |v: &str| KvOutput::Get {
        value: Some(v.into()),
        mod_revision: None,
        revision: None,
    };
    let ok = seq(vec![
        (put("a", "1"), KvOutput::Put { revision: None }),
        (txn.clone(), out(true)),
        (get("b"), plain("yes")),
    ]);
    assert_eq!(verdict(&ok), Verdict::Linearizable);
    let wrong_branch = seq(vec![
        (put("a", "1"), KvOutput::Put { revision: None }),
        (txn.clone(), out(false)),
    ]);
    assert_eq!(verdict(&wrong_branch), Verdict::NotLinearizable);
    let wrong_effect = seq(vec![(txn, out(false)), (get("b"), plain("yes"))]);
    assert_eq!(verdict(&wrong_effect), Verdict::NotLinearizable);
}

/// `txn if value(k) <op> "x" then put k="y" else get k` on a store
/// where `k` does not exist.
fn value_compare_on_missing_key(op: CmpOp, succeeded: bool) -> History<KvInput, KvOutput> {
    let txn = KvInput::Txn {
        compares: vec![Compare {
            key: "k".into(),
            op,
            target: CompareTarget::Value("x".into()),
        }],
        success: vec![TxnOp::Put {
            key: "k".into(),
            value: "y".into(),
        }],
        failure: vec![TxnOp::Get { key: "k".into() }],
    };
    let results = if succeeded {
        vec![TxnOpResult::Put]
    } else {
        vec![TxnOpResult::Get {
            value: None,
            mod_revision: None,
        }]
    };
    seq(vec![(
        txn,
        KvOutput::Txn {
            succeeded,
            results,
            revision: None,
        },
    )])
}

#[test]
fn value_compares_on_a_missing_key_always_fail() {
    // etcd: "always fail if comparing a value on a key/keys that doesn't
    // exist", whatever the operator.
    for op in [CmpOp::Equal, CmpOp::NotEqual, CmpOp::Less, CmpOp::Greater] {
        let etcd = value_compare_on_missing_key(op, false);
        assert_eq!(
            verdict(&etcd),
            Verdict::Linearizable,
            "{op:?}: etcd's answer"
        );
        let model = KvModel::for_history(&etcd, false);
        assert_eq!(check(&model, &etcd, None).verdict, Verdict::Linearizable);
        let wrong = value_compare_on_missing_key(op, true);
        assert_eq!(
            verdict(&wrong),
            Verdict::NotLinearizable,
            "{op:?}: succeeded on a missing key"
        );
        let model = KvModel::for_history(&wrong, false);
        assert_eq!(
            check(&model, &wrong, None).verdict,
            Verdict::NotLinearizable
        );
    }
    // Once the key exists, the compare is an ordinary byte comparison
    // ("w" < "x").
    let setup = (put("k", "w"), KvOutput::Put { revision: None });
    for (op, holds) in [
        (CmpOp::Equal, false),
        (CmpOp::NotEqual, true),
        (CmpOp::Less, true),
        (CmpOp::Greater, false),
    ] {
        for succeeded in [false, true] {
            let mut h = value_compare_on_missing_key(op, succeeded);
            let mut ops = seq(vec![setup.clone()]).ops;
            for o in &mut h.ops {
                o.invoke += 10;
                o.complete += 10;
            }
            if !succeeded {
                h.ops[0].outcome = Outcome::Ok(KvOutput::Txn {
                    succeeded,
                    results: vec![TxnOpResult::Get {
                        value: Some("w".into()),
                        mod_revision: None,
                    }],
                    revision: None,
                });
            }
            ops.extend(h.ops);
            let want = if succeeded == holds {
                Verdict::Linearizable
            } else {
                Verdict::NotLinearizable
            };
            assert_eq!(verdict(&History { ops }), want, "\"w\" {op:?} \"x\"");
        }
    }
    // A missing key's mod_revision compares as 0.
    let txn = |op| KvInput::Txn {
        compares: vec![Compare {
            key: "k".into(),
            op,
            target: CompareTarget::ModRevision(0),
        }],
        success: vec![],
        failure: vec![],
    };
    let out = |succeeded| KvOutput::Txn {
        succeeded,
        results: vec![],
        revision: None,
    };
    let ok = seq(vec![(txn(CmpOp::Equal), out(true))]);
    assert_eq!(verdict(&ok), Verdict::Linearizable);
    let bad = seq(vec![(txn(CmpOp::Equal), out(false))]);
    assert_eq!(verdict(&bad), Verdict::NotLinearizable);
}

#[test]
fn a_null_value_target_is_rejected() {
    let line = r#"{"process":0,"invoke":0,"complete":1,"type":"ok","input":{"f":"txn","compares":[{"key":"k","op":"equal","target":{"value":null}}],"success":[],"failure":[]},"output":{"f":"txn","succeeded":false}}"#;
    let r: Result<History<KvInput, KvOutput>, _> = History::from_jsonl(line.as_bytes());
    assert!(r.is_err(), "etcd has no 'value is absent' compare");
    let ok = line.replace("null", "\"x\"");
    let h: History<KvInput, KvOutput> = History::from_jsonl(ok.as_bytes()).expect("parses");
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

#[test]
fn multi_key_txns_join_partitions() {
    let txn = KvInput::Txn {
        compares: vec![],
        success: vec![
            TxnOp::Put {
                key: "a".into(),
                value: "1".into(),
            },
            TxnOp::Put {
                key: "b".into(),
                value: "1".into(),
            },
        ],
        failure: vec![],
    };
    let h = seq(vec![
        (
            txn,
            KvOutput::Txn {
                succeeded: true,
                results: vec![],
                revision: None,
            },
        ),
        (put("c", "1"), KvOutput::Put { revision: None }),
        (
            get("b"),
            KvOutput::Get {
                value: Some("1".into()),
                mod_revision: None,
                revision: None,
            },
        ),
    ]);
    let model = KvModel::for_history(&h, false);
    assert!(!model.track_revisions);
    let r = check(&model, &h, None);
    assert_eq!(r.verdict, Verdict::Linearizable);
    assert_eq!(r.partitions, 2, "{{a,b}} and {{c}}");
}
