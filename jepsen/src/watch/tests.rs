//! Unit tests of resumed watches: clean resumption, resuming late, early,
//! from now or on another range, and gaps reported once.

use super::*;

fn put(revision: u64, key: &str, value: &str) -> WatchEvent {
    WatchEvent {
        revision,
        key: key.into(),
        kind: EventKind::Put,
        value: Some(value.into()),
    }
}

fn del(revision: u64, key: &str) -> WatchEvent {
    WatchEvent {
        revision,
        key: key.into(),
        kind: EventKind::Delete,
        value: None,
    }
}

/// rev 2: a=1; rev 3: b=1; rev 4: a=2 and b=2 (one txn); rev 5: delete a;
/// rev 6: c=1 (outside "a".."c"); rev 7: b=3.
fn writes() -> Vec<WatchEvent> {
    vec![
        put(2, "a", "1"),
        put(3, "b", "1"),
        put(4, "a", "2"),
        put(4, "b", "2"),
        del(5, "a"),
        put(6, "c", "1"),
        put(7, "b", "3"),
    ]
}

fn events(e: Vec<WatchEvent>) -> WatchResponse {
    WatchResponse::Events { events: e }
}

/// A stream on "a".."c"; `created` is its creation revision when it
/// starts from now (`start` 0).
fn seg(name: &str, start: u64, created: Option<u64>, responses: Vec<WatchResponse>) -> WatchStream {
    WatchStream {
        name: name.into(),
        key: "a".into(),
        range_end: Some("c".into()),
        start_revision: start,
        created_revision: created,
        responses,
        compacted: None,
    }
}

fn watch(segments: Vec<WatchStream>, caught_up_to: Option<u64>) -> ResumedWatch {
    ResumedWatch {
        name: "w".into(),
        segments,
        caught_up_to,
    }
}

fn check(w: ResumedWatch) -> Vec<WatchViolation> {
    check_resumed_watches(&writes(), &[w]).violations
}

/// Broken after rev 3, resumed at 4; broken after a progress
/// notification at 6, resumed at 7; ran until 7.
fn clean() -> ResumedWatch {
    watch(
        vec![
            seg(
                "w#0",
                0,
                Some(1),
                vec![
                    events(vec![put(2, "a", "1")]),
                    events(vec![put(3, "b", "1")]),
                ],
            ),
            seg(
                "w#1",
                4,
                None,
                vec![
                    events(vec![put(4, "a", "2"), put(4, "b", "2")]),
                    events(vec![del(5, "a")]),
                    WatchResponse::Progress { revision: 6 },
                ],
            ),
            seg("w#2", 7, None, vec![events(vec![put(7, "b", "3")])]),
        ],
        Some(7),
    )
}

#[test]
fn a_watch_resumed_right_after_what_it_saw_passes() {
    let r = check_resumed_watches(&writes(), &[clean()]);
    assert!(r.is_valid(), "{:?}", r.violations);
    assert_eq!((r.streams, r.events), (3, 6));
}

#[test]
fn a_stream_that_saw_nothing_resumes_after_its_creation_or_start() {
    let w = watch(
        vec![
            seg("w#0", 0, Some(3), vec![]),
            seg("w#1", 4, None, vec![]),
            seg(
                "w#2",
                4,
                None,
                vec![
                    events(vec![put(4, "a", "2"), put(4, "b", "2")]),
                    events(vec![del(5, "a")]),
                ],
            ),
        ],
        Some(6),
    );
    assert_eq!(check(w), vec![]);
}

#[test]
fn resuming_late_or_from_now_loses_events_and_is_caught() {
    let mut late = clean();
    late.segments[1] = seg("w#1", 5, None, vec![events(vec![del(5, "a")])]);
    late.segments[2].start_revision = 6;
    let v = check(late);
    assert!(
        v.iter().any(|v| matches!(v, WatchViolation::BadResume { stream, start_revision: 5, .. } if stream == "w#1")),
        "{v:?}"
    );
    let lost: Vec<(u64, &str)> = v
        .iter()
        .filter_map(|v| match v {
            WatchViolation::Incomplete { missing, .. } => {
                Some((missing.revision, missing.key.as_str()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(lost, vec![(4, "a"), (4, "b")], "{v:?}");

    let mut from_now = clean();
    from_now.segments[2].start_revision = 0;
    let v = check(from_now);
    assert!(
        v.iter().any(|v| matches!(v, WatchViolation::BadResume { stream, start_revision: 0, .. } if stream == "w#2")),
        "{v:?}"
    );
}

#[test]
fn resuming_early_is_caught() {
    let mut early = clean();
    early.segments[2] = seg("w#2", 6, None, vec![events(vec![put(7, "b", "3")])]);
    let v = check(early);
    assert!(
        matches!(&v[..], [WatchViolation::BadResume { start_revision: 6, detail, .. }] if detail.contains("continuation starts at 7")),
        "{v:?}"
    );
}

#[test]
fn a_watch_that_stops_short_of_where_it_ran_to_is_incomplete() {
    let short = watch(
        vec![seg(
            "w#0",
            2,
            None,
            vec![
                events(vec![put(2, "a", "1")]),
                events(vec![put(3, "b", "1")]),
            ],
        )],
        Some(5),
    );
    let v = check(short.clone());
    let lost: Vec<(u64, &str)> = v
        .iter()
        .filter_map(|v| match v {
            WatchViolation::Incomplete {
                missing,
                caught_up_to: 5,
                ..
            } => Some((missing.revision, missing.key.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(lost, vec![(4, "a"), (4, "b"), (5, "a")], "{v:?}");
    // Without the claim that it ran that far, what arrived is consistent.
    assert_eq!(check(watch(short.segments, None)), vec![]);
}

#[test]
fn a_gap_inside_a_stream_is_reported_once() {
    let w = watch(
        vec![seg(
            "w#0",
            2,
            None,
            vec![
                events(vec![put(2, "a", "1")]),
                events(vec![put(4, "a", "2"), put(4, "b", "2")]),
            ],
        )],
        Some(5),
    );
    let v = check(w);
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(matches!(&v[0], WatchViolation::Gap { missing, .. } if missing.revision == 3));
    assert!(matches!(&v[1], WatchViolation::Incomplete { missing, .. } if missing.revision == 5));
}

#[test]
fn a_resumed_stream_replaying_what_came_before_it_is_caught() {
    let mut replay = clean();
    replay.segments[2] = seg(
        "w#2",
        7,
        None,
        vec![events(vec![del(5, "a")]), events(vec![put(7, "b", "3")])],
    );
    let v = check(replay);
    assert!(
        v.iter()
            .any(|v| matches!(v, WatchViolation::BadResume { stream, .. } if stream == "w#2")),
        "{v:?}"
    );
}

#[test]
fn a_resumed_stream_on_another_range_is_caught() {
    let mut other = clean();
    other.segments[1].range_end = None;
    let v = check(other);
    assert!(
        v.iter().any(|v| matches!(v, WatchViolation::BadResume { detail, .. } if detail.contains("another range"))),
        "{v:?}"
    );
}

/// Broken after rev 2, resumed at 3, canceled because 3 was compacted (the oldest revision
/// left: 5), resumed at 5.
fn compacted_resume(compact_revision: u64, resume_at: u64) -> ResumedWatch {
    let mut lost = seg("w#1", 3, None, vec![]);
    lost.compacted = Some(compact_revision);
    watch(
        vec![
            seg("w#0", 0, Some(1), vec![events(vec![put(2, "a", "1")])]),
            lost,
            seg(
                "w#2",
                resume_at,
                None,
                vec![events(vec![del(5, "a")]), events(vec![put(7, "b", "3")])],
            ),
        ],
        Some(7),
    )
}

#[test]
fn a_watch_told_its_start_was_compacted_resumes_from_the_compact_revision() {
    // Revisions 3 and 4 are lost to it, and it was told: no violation.
    assert_eq!(check(compacted_resume(5, 5)), vec![]);
    // Resuming anywhere but the compact revision is a bad resume; the events before it are
    // still excused, those after it are not.
    let v = check(compacted_resume(5, 6));
    assert!(
        matches!(
            &v[..],
            [
                WatchViolation::BadResume {
                    start_revision: 6,
                    ..
                },
                ..
            ]
        ),
        "{v:?}"
    );
    // A stream canceled as compacted at a revision not after its start lies.
    let v = check(compacted_resume(3, 3));
    assert!(
        v.iter()
            .any(|x| matches!(x, WatchViolation::BadResume { detail, .. }
            if detail.contains("canceled as compacted at 3, though it needed revision 3"))),
        "{v:?}"
    );
    // A stream from now that fell behind its writes may be canceled as compacted too.
    let mut behind = compacted_resume(5, 5);
    behind.segments.remove(1);
    behind.segments[0].compacted = Some(5);
    assert_eq!(check(behind), vec![]);
    // Without the compaction notice, the same streams lose events silently.
    let mut silent = compacted_resume(5, 5);
    silent.segments[1].compacted = None;
    assert!(!check(silent).is_empty());
}
