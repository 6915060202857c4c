//! Unit tests of the checker: optional `Info` writes, timeouts and the
//! memo cap give `Unknown`, and the explanation of a stuck read.

use super::*;
use crate::history::{Op, Outcome};
use crate::register::{RegisterInput as I, RegisterModel, RegisterOutput as O};

fn op(p: u64, inv: u64, ret: u64, i: I, o: Outcome<O>) -> Op<I, O> {
    Op {
        process: p,
        invoke: inv,
        complete: ret,
        input: i,
        outcome: o,
    }
}

fn read(p: u64, inv: u64, ret: u64, v: i64) -> Op<I, O> {
    op(
        p,
        inv,
        ret,
        I::Read,
        Outcome::Ok(O::Read { value: Some(v) }),
    )
}

#[test]
fn two_identical_info_writes_can_both_take_effect() {
    let h = History {
        ops: vec![
            op(0, 0, 0, I::Write { value: 1 }, Outcome::Info),
            op(1, 1, 2, I::Write { value: 2 }, Outcome::Ok(O::Write)),
            op(2, 1, 0, I::Write { value: 1 }, Outcome::Info),
            read(3, 3, 4, 1),
            read(3, 5, 6, 2),
            read(3, 7, 8, 1),
        ],
    };
    assert_eq!(
        check(&RegisterModel, &h, None).verdict,
        Verdict::NotLinearizable
    );
    // The second read of 2 needs the ok write after the first info
    // write; the last read of 1 needs the other info write after it.
    let mut h2 = h.clone();
    h2.ops[1] = op(1, 1, 5, I::Write { value: 2 }, Outcome::Ok(O::Write));
    assert_eq!(
        check(&RegisterModel, &h2, None).verdict,
        Verdict::Linearizable
    );
    // With only one info write of 1 it is impossible.
    h2.ops.remove(2);
    assert_eq!(
        check(&RegisterModel, &h2, None).verdict,
        Verdict::NotLinearizable
    );
}

/// `n` overlapping writes of distinct values followed by a read of a
/// value nobody wrote: the search must refute every subset order.
fn hard(n: i64) -> History<I, O> {
    let mut ops: Vec<Op<I, O>> = (0..n)
        .map(|v| {
            op(
                v as u64,
                0,
                100,
                I::Write { value: v },
                Outcome::Ok(O::Write),
            )
        })
        .collect();
    ops.push(read(99, 0, 100, -1));
    History { ops }
}

#[test]
fn timeout_gives_unknown_never_a_wrong_answer() {
    let h = hard(22);
    let r = check(&RegisterModel, &h, Some(Duration::ZERO));
    assert_eq!(r.verdict, Verdict::Unknown);
    assert!(r.explanation.is_none());
    let r = check(&RegisterModel, &hard(10), Some(Duration::from_secs(60)));
    assert_eq!(r.verdict, Verdict::NotLinearizable);
}

#[test]
fn huge_timeout_means_no_deadline() {
    for t in [Duration::MAX, Duration::from_secs(u64::MAX / 2)] {
        let r = check(&RegisterModel, &hard(10), Some(t));
        assert_eq!(r.verdict, Verdict::NotLinearizable, "timeout {t:?}");
    }
}

#[test]
fn memo_cap_gives_unknown() {
    let opts = CheckOptions {
        max_states: 10,
        ..CheckOptions::default()
    };
    assert_eq!(
        check_with(&RegisterModel, &hard(16), &opts).verdict,
        Verdict::Unknown
    );
}

#[test]
fn explanation_names_the_stuck_read() {
    let h = History {
        ops: vec![
            op(0, 0, 1, I::Write { value: 1 }, Outcome::Ok(O::Write)),
            op(1, 2, 3, I::Write { value: 2 }, Outcome::Ok(O::Write)),
            read(2, 4, 5, 1),
            op(3, 0, 0, I::Write { value: 7 }, Outcome::Fail),
        ],
    };
    let r = check(&RegisterModel, &h, None);
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    let e = r.explanation.expect("explanation");
    assert_eq!(e.ops.len(), 3, "the failed write is left out");
    assert_eq!(e.prefix.len(), 2);
    assert_eq!(e.stuck_state, "2");
    assert_eq!(e.blocked.len(), 1);
    assert_eq!(e.ops[e.blocked[0].op].history_index, 2);
    assert!(e.blocked[0]
        .reason
        .contains("read returned 1 but the register holds 2"));
    let text = e.summary();
    assert!(text.contains("places 2 of 3"), "{text}");
    let html = e.html_fragment();
    assert!(html.contains("class=\"bar bad front\""), "{html}");
    assert_eq!(
        html.matches("class=\"lane\"").count(),
        3,
        "one lane per process"
    );
}

#[test]
fn empty_and_all_info_histories_are_linearizable() {
    assert_eq!(
        check(&RegisterModel, &History::new(), None).verdict,
        Verdict::Linearizable
    );
    let h = History {
        ops: vec![op(0, 0, 0, I::Write { value: 1 }, Outcome::Info)],
    };
    assert_eq!(
        check(&RegisterModel, &h, None).verdict,
        Verdict::Linearizable
    );
}
