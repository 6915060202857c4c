//! Property tests for the linearizability checker:
//!
//! * histories produced by random concurrent clients running against a
//!   sequential store (with crashes = `info`, and `fail`s) are always
//!   linearizable, for the register and for the etcd-style KV model (with
//!   and without observed revisions);
//! * corrupting one read into a value no write produced is always caught;
//! * on small random (mostly non-linearizable) register histories the
//!   checker agrees with an independent brute-force enumeration;
//! * for KV histories without revisions, checking per key gives the same
//!   verdict as checking everything as one partition.

use detcd_jepsen::kv::{CmpOp, Compare, CompareTarget, TxnOp, TxnOpResult};
use detcd_jepsen::{
    check, Footprint, History, KvInput, KvModel, KvOutput, Model, Op, Outcome, RegisterInput,
    RegisterModel, RegisterOutput, Verdict,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

type Choices = Vec<(u8, u8, u8)>;

/// A client's open operation: invoke time, input, and the output if the
/// store already executed it.
struct Open<I, O> {
    invoke: u64,
    input: I,
    done: Option<O>,
}

/// Drives `nproc` clients with the given choices. `make` builds an input
/// from two random bytes; `exec` runs it against the store and returns the
/// output. Returns a history that is linearizable by construction: every
/// op that took effect did so between its invoke and its completion.
fn simulate<I: Clone, O: Clone>(
    nproc: usize,
    choices: &Choices,
    mut make: impl FnMut(u8, u8) -> I,
    mut exec: impl FnMut(&I) -> O,
) -> History<I, O> {
    let mut open: Vec<Option<Open<I, O>>> = (0..nproc).map(|_| None).collect();
    let mut ids: Vec<u64> = (0..nproc as u64).collect();
    let mut h = History::new();
    for (t, &(a, b, c)) in choices.iter().enumerate() {
        let t = t as u64;
        let p = a as usize % nproc;
        match open[p].take() {
            None => {
                open[p] = Some(Open {
                    invoke: t,
                    input: make(b, c),
                    done: None,
                })
            }
            Some(o) if o.done.is_none() => match b % 6 {
                0 => h.push(Op {
                    process: ids[p],
                    invoke: o.invoke,
                    complete: t,
                    input: o.input,
                    outcome: Outcome::Fail,
                }),
                1 => {
                    h.push(Op {
                        process: ids[p],
                        invoke: o.invoke,
                        complete: t,
                        input: o.input,
                        outcome: Outcome::Info,
                    });
                    ids[p] += nproc as u64;
                }
                _ => {
                    let out = exec(&o.input);
                    open[p] = Some(Open {
                        done: Some(out),
                        ..o
                    });
                }
            },
            Some(o) => {
                let out = o.done.expect("executed");
                let info = b % 7 == 0;
                h.push(Op {
                    process: ids[p],
                    invoke: o.invoke,
                    complete: t,
                    input: o.input,
                    outcome: if info {
                        Outcome::Info
                    } else {
                        Outcome::Ok(out)
                    },
                });
                if info {
                    ids[p] += nproc as u64;
                }
            }
        }
    }
    for (p, o) in open.into_iter().enumerate() {
        if let Some(o) = o {
            h.push(Op {
                process: ids[p],
                invoke: o.invoke,
                complete: u64::MAX,
                input: o.input,
                outcome: Outcome::Info,
            });
        }
    }
    h
}

fn register_history(nproc: usize, choices: &Choices) -> History<RegisterInput, RegisterOutput> {
    let mut reg: Option<i64> = None;
    simulate(
        nproc,
        choices,
        |b, c| match b % 3 {
            0 => RegisterInput::Read,
            1 => RegisterInput::Write {
                value: i64::from(c % 4),
            },
            _ => RegisterInput::Cas {
                from: i64::from(c % 4),
                to: i64::from((c / 4) % 4),
            },
        },
        |i| match i {
            RegisterInput::Read => RegisterOutput::Read { value: reg },
            RegisterInput::Write { value } => {
                reg = Some(*value);
                RegisterOutput::Write
            }
            RegisterInput::Cas { from, to } => {
                let ok = reg == Some(*from);
                if ok {
                    reg = Some(*to);
                }
                RegisterOutput::Cas { succeeded: ok }
            }
        },
    )
}

/// A tiny etcd-like store used as the oracle for the KV model.
#[derive(Default)]
struct Store {
    rev: u64,
    data: BTreeMap<String, (String, u64)>,
}

fn key(c: u8) -> String {
    format!("k{}", c % 3)
}

fn kv_history(nproc: usize, choices: &Choices, revisions: bool) -> History<KvInput, KvOutput> {
    let mut s = Store {
        rev: 1,
        ..Store::default()
    };
    let r = |x: u64| revisions.then_some(x);
    simulate(
        nproc,
        choices,
        |b, c| match b % 5 {
            0 | 1 => KvInput::Get { key: key(c) },
            2 => KvInput::Put {
                key: key(c),
                value: format!("v{}", c / 3 % 4),
            },
            3 => KvInput::Delete { key: key(c) },
            _ => KvInput::Txn {
                compares: vec![Compare {
                    key: key(c),
                    op: CmpOp::Equal,
                    target: if revisions && c % 2 == 0 {
                        CompareTarget::ModRevision(u64::from(c / 6 % 4))
                    } else {
                        CompareTarget::Value(format!("v{}", c / 6 % 4))
                    },
                }],
                success: vec![TxnOp::Put {
                    key: key(c / 3),
                    value: format!("t{}", c % 5),
                }],
                failure: vec![TxnOp::Get { key: key(c / 3) }],
            },
        },
        |i| match i {
            KvInput::Get { key } => {
                let e = s.data.get(key);
                KvOutput::Get {
                    value: e.map(|e| e.0.clone()),
                    mod_revision: r(e.map_or(0, |e| e.1)),
                    revision: r(s.rev),
                }
            }
            KvInput::Put { key, value } => {
                s.rev += 1;
                s.data.insert(key.clone(), (value.clone(), s.rev));
                KvOutput::Put { revision: r(s.rev) }
            }
            KvInput::Delete { key } => {
                let d = s.data.remove(key).is_some();
                if d {
                    s.rev += 1;
                }
                KvOutput::Delete {
                    deleted: Some(u64::from(d)),
                    revision: r(s.rev),
                }
            }
            KvInput::Txn {
                compares,
                success,
                failure,
            } => {
                let cmp = &compares[0];
                let e = s.data.get(&cmp.key);
                let holds = match &cmp.target {
                    // etcd: a value compare on a missing key is false.
                    CompareTarget::Value(v) => e.is_some_and(|e| e.0 == *v),
                    CompareTarget::ModRevision(m) => e.map_or(0, |e| e.1) == *m,
                };
                let branch = if holds { success } else { failure };
                let mut results = Vec::new();
                for op in branch {
                    match op {
                        TxnOp::Put { key, value } => {
                            s.data.insert(key.clone(), (value.clone(), s.rev + 1));
                            results.push(TxnOpResult::Put);
                        }
                        TxnOp::Get { key } => {
                            let e = s.data.get(key);
                            results.push(TxnOpResult::Get {
                                value: e.map(|e| e.0.clone()),
                                mod_revision: r(e.map_or(0, |e| e.1)),
                            });
                        }
                        TxnOp::Delete { .. } => unreachable!("not generated"),
                    }
                }
                if holds {
                    s.rev += 1;
                }
                KvOutput::Txn {
                    succeeded: holds,
                    results,
                    revision: r(s.rev),
                }
            }
            KvInput::Append { .. } => unreachable!("not generated"),
        },
    )
}

fn choices(max: usize) -> impl Strategy<Value = Choices> {
    proptest::collection::vec(any::<(u8, u8, u8)>(), 1..max)
}

/// Independent brute force for the register: try every subset of `info`
/// ops and every order consistent with real time.
fn brute_force_register(h: &History<RegisterInput, RegisterOutput>) -> bool {
    let ops: Vec<&Op<RegisterInput, RegisterOutput>> = h
        .ops
        .iter()
        .filter(|o| !matches!(o.outcome, Outcome::Fail))
        .collect();
    fn go(
        ops: &[&Op<RegisterInput, RegisterOutput>],
        used: &mut Vec<bool>,
        state: Option<i64>,
    ) -> bool {
        let all_ok_done = ops
            .iter()
            .zip(used.iter())
            .all(|(o, u)| *u || matches!(o.outcome, Outcome::Info));
        if all_ok_done {
            return true;
        }
        for i in 0..ops.len() {
            if used[i] {
                continue;
            }
            // Real time: no unused op may have completed before ops[i] was invoked.
            let blocked = ops.iter().enumerate().any(|(j, o)| {
                j != i
                    && !used[j]
                    && !matches!(o.outcome, Outcome::Info)
                    && o.complete < ops[i].invoke
            });
            if blocked {
                continue;
            }
            let next = match (&ops[i].input, &ops[i].outcome) {
                (RegisterInput::Read, Outcome::Ok(RegisterOutput::Read { value })) => {
                    (*value == state).then_some(state)
                }
                (RegisterInput::Read, _) => Some(state),
                (RegisterInput::Write { value }, _) => Some(Some(*value)),
                (
                    RegisterInput::Cas { from, to },
                    Outcome::Ok(RegisterOutput::Cas { succeeded }),
                ) => match (state == Some(*from), succeeded) {
                    (true, true) => Some(Some(*to)),
                    (false, false) => Some(state),
                    _ => None,
                },
                (RegisterInput::Cas { from, to }, _) => Some(if state == Some(*from) {
                    Some(*to)
                } else {
                    state
                }),
            };
            if let Some(ns) = next {
                used[i] = true;
                if go(ops, used, ns) {
                    return true;
                }
                used[i] = false;
            }
        }
        false
    }
    let mut used = vec![false; ops.len()];
    go(&ops, &mut used, None)
}

fn random_register_op() -> impl Strategy<Value = Op<RegisterInput, RegisterOutput>> {
    (
        0u64..12,
        0u64..6,
        0u8..3,
        0i64..3,
        0i64..3,
        0u8..7,
        proptest::option::of(0i64..3),
    )
        .prop_map(|(inv, dur, f, a, b, oc, rv)| {
            let input = match f {
                0 => RegisterInput::Read,
                1 => RegisterInput::Write { value: a },
                _ => RegisterInput::Cas { from: a, to: b },
            };
            let outcome = match oc {
                0 => Outcome::Fail,
                1 | 2 => Outcome::Info,
                _ => Outcome::Ok(match f {
                    0 => RegisterOutput::Read { value: rv },
                    1 => RegisterOutput::Write,
                    _ => RegisterOutput::Cas {
                        succeeded: oc % 2 == 0,
                    },
                }),
            };
            Op {
                process: 0,
                invoke: inv,
                complete: inv + dur,
                input,
                outcome,
            }
        })
}

/// Wraps the KV model but refuses to partition.
struct Unpartitioned(KvModel);

impl Model for Unpartitioned {
    type Input = KvInput;
    type Output = KvOutput;
    type State = <KvModel as Model>::State;
    fn init(&self) -> Self::State {
        self.0.init()
    }
    fn step(&self, s: &Self::State, i: &KvInput, o: &KvOutput) -> Option<Self::State> {
        self.0.step(s, i, o)
    }
    fn step_unknown(&self, s: &Self::State, i: &KvInput) -> Option<Self::State> {
        self.0.step_unknown(s, i)
    }
    fn footprint(&self, i: &KvInput, o: Option<&KvOutput>) -> Footprint {
        Footprint {
            global: true,
            ..self.0.footprint(i, o)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn simulated_register_histories_are_linearizable(nproc in 1usize..6, c in choices(120)) {
        let h = register_history(nproc, &c);
        let r = check(&RegisterModel, &h, None);
        prop_assert_eq!(r.verdict, Verdict::Linearizable);
    }

    #[test]
    fn corrupted_register_read_is_caught(nproc in 1usize..6, c in choices(120), pick in any::<usize>()) {
        let mut h = register_history(nproc, &c);
        let reads: Vec<usize> = h.ops.iter().enumerate()
            .filter(|(_, o)| matches!(o.outcome, Outcome::Ok(RegisterOutput::Read { .. })))
            .map(|(i, _)| i).collect();
        let bad = Outcome::Ok(RegisterOutput::Read { value: Some(1000) });
        if reads.is_empty() {
            // No read to corrupt: append one after everything else.
            let end = c.len() as u64 + 1;
            h.push(Op { process: 1000, invoke: end, complete: end + 1, input: RegisterInput::Read, outcome: bad });
        } else {
            let i = reads[pick % reads.len()];
            h.ops[i].outcome = bad;
        }
        let r = check(&RegisterModel, &h, None);
        prop_assert_eq!(r.verdict, Verdict::NotLinearizable);
        let e = r.explanation.expect("explanation");
        prop_assert!(!e.blocked.is_empty());
    }

    #[test]
    fn simulated_kv_histories_are_linearizable(nproc in 1usize..5, c in choices(80), revisions in any::<bool>()) {
        let h = kv_history(nproc, &c, revisions);
        let r = check(&KvModel::for_history(&h, false), &h, None);
        prop_assert_eq!(r.verdict, Verdict::Linearizable);
        // The exact model (revisions always tracked) agrees.
        let r2 = check(&KvModel::default(), &h, None);
        prop_assert_eq!(r2.verdict, Verdict::Linearizable);
    }

    #[test]
    fn corrupted_kv_read_is_caught(nproc in 1usize..5, c in choices(80), revisions in any::<bool>(), pick in any::<usize>()) {
        let mut h = kv_history(nproc, &c, revisions);
        let reads: Vec<usize> = h.ops.iter().enumerate()
            .filter(|(_, o)| matches!(o.outcome, Outcome::Ok(KvOutput::Get { .. })))
            .map(|(i, _)| i).collect();
        if reads.is_empty() {
            // No read to corrupt: append one after everything else.
            let end = c.len() as u64 + 1;
            h.push(Op {
                process: 1000,
                invoke: end,
                complete: end + 1,
                input: KvInput::Get { key: key(pick as u8) },
                outcome: Outcome::Ok(KvOutput::Get { value: Some("never-written".to_string()), mod_revision: None, revision: None }),
            });
        } else {
            let i = reads[pick % reads.len()];
            if let Outcome::Ok(KvOutput::Get { value, .. }) = &mut h.ops[i].outcome {
                *value = Some("never-written".to_string());
            }
        }
        let r = check(&KvModel::for_history(&h, false), &h, None);
        prop_assert_eq!(r.verdict, Verdict::NotLinearizable);
    }

    #[test]
    fn register_checker_agrees_with_brute_force(ops in proptest::collection::vec(random_register_op(), 0..7)) {
        let h = History { ops };
        let want = if brute_force_register(&h) { Verdict::Linearizable } else { Verdict::NotLinearizable };
        prop_assert_eq!(check(&RegisterModel, &h, None).verdict, want);
    }

    #[test]
    fn kv_partitioning_agrees_with_one_partition(nproc in 1usize..5, c in choices(60), pick in any::<usize>(), corrupt in any::<bool>()) {
        let mut h = kv_history(nproc, &c, false);
        if corrupt && !h.ops.is_empty() {
            // Swap two outputs of the same kind to make interesting, often invalid histories.
            let i = pick % h.ops.len();
            let j = (pick / 7) % h.ops.len();
            if std::mem::discriminant(&h.ops[i].input) == std::mem::discriminant(&h.ops[j].input) {
                let (a, b) = (h.ops[i].outcome.clone(), h.ops[j].outcome.clone());
                h.ops[i].outcome = b;
                h.ops[j].outcome = a;
            }
        }
        let model = KvModel::for_history(&h, false);
        let split = check(&model, &h, None);
        let whole = check(&Unpartitioned(model), &h, None);
        prop_assert_eq!(split.verdict, whole.verdict);
    }
}

#[test]
fn kv_history_with_revisions_is_one_partition() {
    let c: Choices = (0..60u8)
        .map(|i| (i, i.wrapping_mul(7), i.wrapping_mul(13)))
        .collect();
    let h = kv_history(3, &c, true);
    let r = check(&KvModel::for_history(&h, false), &h, None);
    assert_eq!(r.partitions, 1);
    let h = kv_history(3, &c, false);
    let r = check(&KvModel::for_history(&h, false), &h, None);
    assert!(
        r.partitions > 1,
        "expected per-key partitions, got {}",
        r.partitions
    );
}

/// Model-generic brute force: every subset of `info` ops (each either took
/// effect via `step_unknown` or not) and every order consistent with real
/// time, with no memo and no pruning.
fn brute_force<M: Model>(model: &M, h: &History<M::Input, M::Output>) -> bool {
    let ops: Vec<&Op<M::Input, M::Output>> = h
        .ops
        .iter()
        .filter(|o| !matches!(o.outcome, Outcome::Fail))
        .collect();
    fn go<M: Model>(
        model: &M,
        ops: &[&Op<M::Input, M::Output>],
        used: &mut Vec<bool>,
        state: &M::State,
    ) -> bool {
        if ops
            .iter()
            .zip(used.iter())
            .all(|(o, u)| *u || matches!(o.outcome, Outcome::Info))
        {
            return true;
        }
        for i in 0..ops.len() {
            if used[i] {
                continue;
            }
            let blocked = ops.iter().enumerate().any(|(j, o)| {
                j != i
                    && !used[j]
                    && !matches!(o.outcome, Outcome::Info)
                    && o.complete < ops[i].invoke
            });
            if blocked {
                continue;
            }
            let next = match &ops[i].outcome {
                Outcome::Ok(out) => model.step(state, &ops[i].input, out),
                _ => Some(
                    model
                        .step_unknown(state, &ops[i].input)
                        .unwrap_or_else(|| state.clone()),
                ),
            };
            if let Some(ns) = next {
                used[i] = true;
                if go(model, ops, used, &ns) {
                    return true;
                }
                used[i] = false;
            }
        }
        false
    }
    let mut used = vec![false; ops.len()];
    go(model, &ops, &mut used, &model.init())
}

fn random_kv_op(revisions: bool) -> impl Strategy<Value = Op<KvInput, KvOutput>> {
    (
        0u64..10,
        0u64..6,
        0u8..5,
        0u8..2,
        0u8..3,
        0u8..7,
        any::<bool>(),
        1u64..5,
    )
        .prop_map(move |(inv, dur, f, k, v, oc, flag, rev)| {
            let key = format!("k{k}");
            let val = |v: u8| (v > 0).then(|| format!("v{v}"));
            let r = revisions.then_some(rev);
            let (input, output) = match f {
                0 => (
                    KvInput::Get { key },
                    KvOutput::Get {
                        value: val(v),
                        mod_revision: None,
                        revision: r,
                    },
                ),
                1 => (
                    KvInput::Put {
                        key,
                        value: format!("v{}", v % 2 + 1),
                    },
                    KvOutput::Put { revision: r },
                ),
                2 => (
                    KvInput::Delete { key },
                    KvOutput::Delete {
                        deleted: Some(u64::from(flag)),
                        revision: r,
                    },
                ),
                3 => (
                    KvInput::Append {
                        key,
                        value: format!("{v}"),
                    },
                    KvOutput::Append { revision: None },
                ),
                _ => (
                    KvInput::Txn {
                        compares: vec![Compare {
                            key: key.clone(),
                            op: CmpOp::Equal,
                            target: CompareTarget::Value(format!("v{v}")),
                        }],
                        success: vec![TxnOp::Put {
                            key: "k1".into(),
                            value: "t".into(),
                        }],
                        failure: vec![TxnOp::Get { key: "k0".into() }],
                    },
                    KvOutput::Txn {
                        succeeded: flag,
                        results: vec![],
                        revision: r,
                    },
                ),
            };
            let outcome = match oc {
                0 => Outcome::Fail,
                1 | 2 => Outcome::Info,
                _ => Outcome::Ok(output),
            };
            Op {
                process: 0,
                invoke: inv,
                complete: inv + dur,
                input,
                outcome,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn checker_agrees_with_generic_brute_force_register(ops in proptest::collection::vec(random_register_op(), 0..8)) {
        let h = History { ops };
        let want = if brute_force(&RegisterModel, &h) { Verdict::Linearizable } else { Verdict::NotLinearizable };
        prop_assert_eq!(check(&RegisterModel, &h, None).verdict, want);
    }

    #[test]
    fn checker_agrees_with_generic_brute_force_kv(ops in proptest::collection::vec(random_kv_op(false), 0..7), revisions in any::<bool>()) {
        let h = History { ops };
        for model in [KvModel::for_history(&h, false), KvModel { track_revisions: revisions, ..KvModel::default() }] {
            let want = if brute_force(&model, &h) { Verdict::Linearizable } else { Verdict::NotLinearizable };
            prop_assert_eq!(check(&model, &h, None).verdict, want);
        }
    }

    #[test]
    fn checker_agrees_with_generic_brute_force_kv_revisions(ops in proptest::collection::vec(random_kv_op(true), 0..6)) {
        let h = History { ops };
        let model = KvModel::default();
        let want = if brute_force(&model, &h) { Verdict::Linearizable } else { Verdict::NotLinearizable };
        prop_assert_eq!(check(&model, &h, None).verdict, want);
    }
}
