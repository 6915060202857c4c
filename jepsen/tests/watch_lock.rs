//! The watch and lock checkers accept clean hand-made histories and reject
//! each kind of violation.

use detcd_jepsen::lock::{check_locks, Access, LockHistory, LockHold, LockViolation, Release};
use detcd_jepsen::watch::{
    check_watches, EventKind, WatchEvent, WatchHistory, WatchResponse, WatchStream, WatchViolation,
};

fn put(rev: u64, key: &str, value: &str) -> WatchEvent {
    WatchEvent {
        revision: rev,
        key: key.into(),
        kind: EventKind::Put,
        value: Some(value.into()),
    }
}

fn del(rev: u64, key: &str) -> WatchEvent {
    WatchEvent {
        revision: rev,
        key: key.into(),
        kind: EventKind::Delete,
        value: None,
    }
}

/// rev 2: a=1; rev 3: b=1; rev 4: a=2 and b=2 (one txn); rev 5: delete a;
/// rev 6: c=1 (outside prefix "a".."c").
fn writes() -> Vec<WatchEvent> {
    vec![
        put(2, "a", "1"),
        put(3, "b", "1"),
        put(4, "a", "2"),
        put(4, "b", "2"),
        del(5, "a"),
        put(6, "c", "1"),
    ]
}

fn ev(events: Vec<WatchEvent>) -> WatchResponse {
    WatchResponse::Events { events }
}

fn stream(
    name: &str,
    key: &str,
    range_end: Option<&str>,
    start: u64,
    responses: Vec<WatchResponse>,
) -> WatchStream {
    WatchStream {
        name: name.into(),
        key: key.into(),
        range_end: range_end.map(Into::into),
        start_revision: start,
        created_revision: None,
        responses,
        compacted: None,
    }
}

fn clean_streams() -> Vec<WatchStream> {
    vec![
        stream(
            "range a..c from 2",
            "a",
            Some("c"),
            2,
            vec![
                ev(vec![put(2, "a", "1")]),
                ev(vec![put(3, "b", "1")]),
                WatchResponse::Progress { revision: 3 },
                ev(vec![put(4, "a", "2"), put(4, "b", "2")]),
                ev(vec![del(5, "a")]),
                WatchResponse::Progress { revision: 6 },
            ],
        ),
        stream(
            "key a resumed at 4",
            "a",
            None,
            4,
            vec![ev(vec![put(4, "a", "2")]), ev(vec![del(5, "a")])],
        ),
        stream(
            "all keys from now",
            "",
            Some(""),
            0,
            vec![ev(vec![put(6, "c", "1")])],
        ),
        stream(
            "prefix a resumed at 3",
            "a",
            Some(&WatchStream::prefix_end("a")),
            3,
            vec![
                WatchResponse::Progress { revision: 3 },
                ev(vec![put(4, "a", "2")]),
            ],
        ),
    ]
}

fn check_one(s: WatchStream) -> Vec<WatchViolation> {
    check_watches(&WatchHistory {
        writes: writes(),
        streams: vec![s],
    })
    .violations
}

#[test]
fn clean_watch_streams_pass() {
    let r = check_watches(&WatchHistory {
        writes: writes(),
        streams: clean_streams(),
    });
    assert!(r.is_valid(), "{:?}", r.violations);
    assert_eq!(r.events, 9);
}

#[test]
fn watch_unordered_is_caught() {
    let v = check_one(stream(
        "s",
        "a",
        Some("c"),
        0,
        vec![
            ev(vec![put(2, "a", "1"), put(4, "a", "2"), put(4, "b", "2")]),
            ev(vec![put(3, "b", "1")]),
        ],
    ));
    assert!(
        v.iter().any(|v| matches!(
            v,
            WatchViolation::Unordered {
                previous: 4,
                revision: 3,
                ..
            }
        )),
        "{v:?}"
    );
}

#[test]
fn watch_duplicate_is_caught() {
    let v = check_one(stream(
        "s",
        "a",
        None,
        2,
        vec![
            ev(vec![put(2, "a", "1")]),
            ev(vec![put(2, "a", "1")]),
            ev(vec![put(4, "a", "2")]),
        ],
    ));
    assert!(
        v.iter()
            .any(|v| matches!(v, WatchViolation::Duplicate { revision: 2, .. })),
        "{v:?}"
    );
}

#[test]
fn watch_split_revision_is_caught() {
    let v = check_one(stream(
        "s",
        "a",
        Some("c"),
        4,
        vec![ev(vec![put(4, "a", "2")]), ev(vec![put(4, "b", "2")])],
    ));
    assert!(
        v.iter()
            .any(|v| matches!(v, WatchViolation::NotAtomic { revision: 4, .. })),
        "{v:?}"
    );
    // A revision that arrives incomplete is not atomic either.
    let v = check_one(stream(
        "s",
        "a",
        Some("c"),
        4,
        vec![ev(vec![put(4, "a", "2")]), ev(vec![del(5, "a")])],
    ));
    assert!(
        v.iter()
            .any(|v| matches!(v, WatchViolation::NotAtomic { revision: 4, .. })),
        "{v:?}"
    );
}

#[test]
fn watch_gap_is_caught() {
    let v = check_one(stream(
        "s",
        "a",
        Some("c"),
        2,
        vec![
            ev(vec![put(2, "a", "1")]),
            ev(vec![put(4, "a", "2"), put(4, "b", "2")]),
        ],
    ));
    assert!(
        v.iter()
            .any(|v| matches!(v, WatchViolation::Gap { missing, .. } if missing.revision == 3)),
        "{v:?}"
    );
}

#[test]
fn watch_bad_resume_is_caught() {
    // Skips the first event at/after the start revision.
    let v = check_one(stream(
        "s",
        "a",
        Some("c"),
        3,
        vec![ev(vec![put(4, "a", "2"), put(4, "b", "2")])],
    ));
    assert!(
        v.iter()
            .any(|v| matches!(v, WatchViolation::BadResume { .. })),
        "{v:?}"
    );
    // Replays an event from before the start revision.
    let v = check_one(stream(
        "s",
        "a",
        None,
        3,
        vec![ev(vec![put(2, "a", "1")]), ev(vec![put(4, "a", "2")])],
    ));
    assert!(
        v.iter()
            .any(|v| matches!(v, WatchViolation::BadResume { .. })),
        "{v:?}"
    );
}

#[test]
fn watch_progress_ahead_is_caught() {
    let v = check_one(stream(
        "s",
        "a",
        Some("c"),
        2,
        vec![
            ev(vec![put(2, "a", "1")]),
            WatchResponse::Progress { revision: 3 },
            ev(vec![put(3, "b", "1")]),
        ],
    ));
    assert!(
        v.iter()
            .any(|v| matches!(v, WatchViolation::ProgressAhead { progress: 3, .. })),
        "{v:?}"
    );
}

#[test]
fn watch_phantom_is_caught() {
    let v = check_one(stream("s", "a", None, 2, vec![ev(vec![put(2, "a", "9")])]));
    assert!(
        v.iter()
            .any(|v| matches!(v, WatchViolation::Phantom { .. })),
        "{v:?}"
    );
    let v = check_one(stream(
        "s",
        "a",
        None,
        2,
        vec![ev(vec![put(2, "a", "1"), put(3, "b", "1")])],
    ));
    assert!(
        v.iter()
            .any(|v| matches!(v, WatchViolation::Phantom { .. })),
        "{v:?}"
    );
}

fn hold(
    process: u64,
    token: u64,
    acq: (u64, u64),
    release: Option<(u64, u64, bool)>,
    acc: &[(u64, u64)],
) -> LockHold {
    LockHold {
        process,
        token,
        acquire_invoke: acq.0,
        acquire_complete: acq.1,
        release: release.map(|(invoke, complete, still_held)| Release {
            invoke,
            complete,
            still_held,
        }),
        accesses: acc
            .iter()
            .map(|&(start, end)| Access { start, end })
            .collect(),
        key_seen_at: None,
    }
}

fn locks(holds: Vec<LockHold>) -> Vec<LockViolation> {
    check_locks(&LockHistory { holds }).violations
}

#[test]
fn clean_lock_histories_pass() {
    // Hand-over after a clean release.
    let v = locks(vec![
        hold(0, 10, (0, 1), Some((5, 6, true)), &[(2, 3)]),
        hold(1, 12, (4, 7), Some((10, 11, true)), &[(8, 9)]),
        hold(2, 15, (9, 12), None, &[(13, 14)]),
    ]);
    assert!(v.is_empty(), "{v:?}");
    // Lease expiry: holder 0 lost its key before holder 1 got the lock; the
    // fenced resource saw no stale access.
    let v = locks(vec![
        hold(0, 10, (0, 1), Some((5, 6, false)), &[(2, 3)]),
        hold(1, 12, (2, 4), None, &[(4, 5)]),
    ]);
    assert!(v.is_empty(), "{v:?}");
}

#[test]
fn lock_duplicate_token_is_caught() {
    let v = locks(vec![
        hold(0, 10, (0, 1), Some((5, 6, true)), &[]),
        hold(1, 10, (4, 7), None, &[]),
    ]);
    assert!(
        v.iter()
            .any(|v| matches!(v, LockViolation::DuplicateToken { token: 10, .. })),
        "{v:?}"
    );
}

#[test]
fn lock_token_order_is_caught() {
    let v = locks(vec![
        hold(0, 10, (0, 1), Some((2, 3, true)), &[]),
        hold(1, 8, (4, 5), None, &[]),
    ]);
    assert!(
        v.iter().any(|v| matches!(
            v,
            LockViolation::TokenOrder {
                earlier: 0,
                later: 1
            }
        )),
        "{v:?}"
    );
}

#[test]
fn lock_overlap_is_caught() {
    let v = locks(vec![
        hold(0, 10, (0, 1), Some((5, 6, true)), &[]),
        hold(1, 12, (3, 4), None, &[]),
    ]);
    assert!(
        v.iter().any(|v| matches!(
            v,
            LockViolation::Overlap {
                holder: 0,
                later: 1
            }
        )),
        "{v:?}"
    );
}

#[test]
fn lock_overlap_with_a_holder_that_never_released_is_caught() {
    // Hold 0 never releases; a get at 8 still sees its key, yet hold 1
    // (larger token) was granted at 5.
    let mut never_released = hold(0, 10, (0, 1), None, &[]);
    never_released.key_seen_at = Some(8);
    let v = locks(vec![never_released.clone(), hold(1, 12, (3, 5), None, &[])]);
    assert!(
        v.iter().any(|v| matches!(
            v,
            LockViolation::Overlap {
                holder: 0,
                later: 1
            }
        )),
        "{v:?}"
    );
    // Granted after the last sighting: the lease may have expired.
    let v = locks(vec![never_released.clone(), hold(1, 12, (3, 9), None, &[])]);
    assert!(v.is_empty(), "{v:?}");
    // A sighting invoked before the acquisition completed proves nothing.
    let mut early = hold(0, 10, (0, 6), None, &[]);
    early.key_seen_at = Some(4);
    let v = locks(vec![early, hold(1, 12, (1, 3), None, &[])]);
    assert!(v.is_empty(), "{v:?}");
    // An unlock that found the key already gone (lease expired) plus a
    // later sighting: the sighting still counts.
    let mut expired = hold(0, 10, (0, 1), Some((9, 10, false)), &[]);
    expired.key_seen_at = Some(7);
    let v = locks(vec![expired, hold(1, 12, (3, 5), None, &[])]);
    assert!(
        v.iter()
            .any(|v| matches!(v, LockViolation::Overlap { holder: 0, .. })),
        "{v:?}"
    );
    // Without evidence, a holder that never released is not judged for
    // overlap (its lease may have expired), only by token order/fencing.
    let v = locks(vec![
        hold(0, 10, (0, 1), None, &[]),
        hold(1, 12, (3, 5), None, &[]),
    ]);
    assert!(v.is_empty(), "{v:?}");
}

#[test]
fn lock_stale_access_is_caught() {
    let v = locks(vec![
        hold(0, 10, (0, 1), None, &[(2, 3), (8, 9)]),
        hold(1, 12, (4, 5), None, &[(6, 7)]),
    ]);
    assert!(
        v.iter()
            .any(|v| matches!(v, LockViolation::StaleAccess { stale: 0, newer: 1 })),
        "{v:?}"
    );
}

#[test]
fn lock_access_before_request_is_caught() {
    let v = locks(vec![hold(0, 10, (5, 6), None, &[(1, 2)])]);
    assert!(
        v.iter()
            .any(|v| matches!(v, LockViolation::AccessOutsideHold { hold: 0 })),
        "{v:?}"
    );
}

#[test]
fn from_now_stream_gap_after_a_bookmark_is_caught() {
    // Writes at 4 and 5 on key a; the stream claims progress at 3, so it
    // covers 4 and 5, but only 5 arrives.
    let h = |responses| WatchHistory {
        writes: vec![put(2, "a", "1"), put(4, "a", "2"), put(5, "a", "3")],
        streams: vec![stream("from now", "a", None, 0, responses)],
    };
    let v = check_watches(&h(vec![
        WatchResponse::Progress { revision: 3 },
        ev(vec![put(5, "a", "3")]),
    ]))
    .violations;
    assert!(
        v.iter()
            .any(|v| matches!(v, WatchViolation::Gap { missing, .. } if missing.revision == 4)),
        "{v:?}"
    );
    // Delivering both is fine, and so is a bookmark at 4 before 5.
    for responses in [
        vec![
            WatchResponse::Progress { revision: 3 },
            ev(vec![put(4, "a", "2")]),
            ev(vec![put(5, "a", "3")]),
        ],
        vec![
            WatchResponse::Progress { revision: 4 },
            ev(vec![put(5, "a", "3")]),
        ],
    ] {
        let r = check_watches(&h(responses));
        assert!(r.is_valid(), "{:?}", r.violations);
    }
    // A later bookmark must also come after every event since the first.
    let v = check_watches(&h(vec![
        WatchResponse::Progress { revision: 3 },
        WatchResponse::Progress { revision: 5 },
    ]))
    .violations;
    assert!(
        v.iter()
            .any(|v| matches!(v, WatchViolation::ProgressAhead { progress: 5, .. })),
        "{v:?}"
    );
}

#[test]
fn from_now_stream_with_a_creation_revision_covers_everything_after_it() {
    let h = |created, responses| {
        let mut s = stream("from now", "a", Some("c"), 0, responses);
        s.created_revision = Some(created);
        WatchHistory {
            writes: writes(),
            streams: vec![s],
        }
    };
    // Created at 3: revision 4 (a and b) and 5 must all arrive.
    let r = check_watches(&h(
        3,
        vec![
            ev(vec![put(4, "a", "2"), put(4, "b", "2")]),
            ev(vec![del(5, "a")]),
        ],
    ));
    assert!(r.is_valid(), "{:?}", r.violations);
    let v = check_watches(&h(3, vec![ev(vec![del(5, "a")])])).violations;
    assert!(
        v.iter()
            .any(|v| matches!(v, WatchViolation::Gap { missing, .. } if missing.revision == 4)),
        "{v:?}"
    );
    // Without the creation revision that stream is judged from revision 5.
    let mut unknown = h(3, vec![ev(vec![del(5, "a")])]);
    unknown.streams[0].created_revision = None;
    assert!(check_watches(&unknown).is_valid());
    // A bookmark right after creation must wait for the covered events.
    let v = check_watches(&h(3, vec![WatchResponse::Progress { revision: 4 }])).violations;
    assert!(
        v.iter()
            .any(|v| matches!(v, WatchViolation::ProgressAhead { progress: 4, .. })),
        "{v:?}"
    );
    // Nothing at or before the creation revision may be delivered.
    let v = check_watches(&h(
        3,
        vec![
            ev(vec![put(3, "b", "1")]),
            ev(vec![put(4, "a", "2"), put(4, "b", "2")]),
            ev(vec![del(5, "a")]),
        ],
    ))
    .violations;
    assert!(
        v.iter()
            .any(|v| matches!(v, WatchViolation::BadResume { .. })),
        "{v:?}"
    );
}

#[test]
fn from_now_stream_is_judged_from_its_first_event() {
    // Created after revision 3: a bookmark at 3 with nothing delivered is
    // fine, and so is starting at revision 4.
    let ok = stream(
        "from now",
        "a",
        Some("c"),
        0,
        vec![
            WatchResponse::Progress { revision: 3 },
            ev(vec![put(4, "a", "2"), put(4, "b", "2")]),
            WatchResponse::Progress { revision: 5 },
        ],
    );
    let v = check_one(ok);
    // Revision 5 (delete a) was not delivered before the bookmark at 5.
    assert!(
        v.iter()
            .any(|v| matches!(v, WatchViolation::ProgressAhead { progress: 5, .. })),
        "{v:?}"
    );
    assert_eq!(v.len(), 1, "{v:?}");
}
