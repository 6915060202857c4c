//! The checks of one watch stream against the write history: ordered,
//! unique, atomic, reliable, resumable and bookmarkable, plus phantom
//! events (see the [`watch`](super) module docs for what each means and
//! what a stream covers). Also returns what a resumed watch's checks need
//! to know about the stream.

use super::history::{EventKind, WatchEvent, WatchResponse, WatchStream};
use super::violation::{WatchReport, WatchViolation};
use std::collections::{BTreeMap, BTreeSet};

/// What one stream's check learned, for the checks that span a resumed watch's streams.
pub(super) struct StreamSummary {
    /// The first revision the stream provably covers (see the [`watch`](super) module
    /// docs); `None` if unknown.
    pub(super) cover_from: Option<u64>,
    /// The newest revision the stream reported to its client: its last event's, a progress
    /// notification's, or (before either) the revision just before its start. A client resumes
    /// right after it.
    pub(super) reported: u64,
    /// Every (revision, key) delivered.
    pub(super) delivered: BTreeSet<(u64, String)>,
}

/// A delivered event is the committed change: same kind and, for a put,
/// same value (a delete carries no value worth comparing).
fn same_change(a: &WatchEvent, b: &WatchEvent) -> bool {
    a.kind == b.kind && (a.kind == EventKind::Delete || a.value == b.value)
}

/// Checks one stream against the write history `log` (indexed by
/// revision and key), adding what it delivered to `report.events` and what
/// it broke to `report.violations`.
pub(super) fn check_stream(
    s: &WatchStream,
    log: &BTreeMap<(u64, &str), &WatchEvent>,
    report: &mut WatchReport,
) -> StreamSummary {
    let name = s.name.clone();
    let v = &mut report.violations;
    // The first revision the stream must cover, when known up front.
    let known_start = if s.start_revision > 0 {
        Some(s.start_revision)
    } else {
        s.created_revision.map(|c| c.saturating_add(1))
    };
    let start = known_start.unwrap_or(0);
    // A lower bound of the revisions the stream provably covers; for an
    // unknown start it drops with each progress notification or committed
    // event received.
    let mut cover = known_start;
    let lower = |cover: &mut Option<u64>, r: u64| {
        if known_start.is_none() {
            *cover = Some(cover.map_or(r, |c| c.min(r)));
        }
    };
    // Expected events: matching the range, at or after the start.
    let expected: Vec<&WatchEvent> = log
        .values()
        .copied()
        .filter(|e| s.matches(&e.key) && e.revision >= start)
        .collect();
    let mut delivered: BTreeSet<(u64, String)> = BTreeSet::new();
    let mut revision_responses: BTreeMap<u64, BTreeSet<usize>> = BTreeMap::new();
    let mut last_rev = 0u64;
    let mut max_progress = 0u64;
    let mut first_event: Option<&WatchEvent> = None;
    for (ri, resp) in s.responses.iter().enumerate() {
        match resp {
            WatchResponse::Events { events } => {
                for e in events {
                    report.events += 1;
                    first_event.get_or_insert(e);
                    if e.revision < last_rev {
                        v.push(WatchViolation::Unordered {
                            stream: name.clone(),
                            previous: last_rev,
                            revision: e.revision,
                        });
                    }
                    last_rev = last_rev.max(e.revision);
                    if !delivered.insert((e.revision, e.key.clone())) {
                        v.push(WatchViolation::Duplicate {
                            stream: name.clone(),
                            revision: e.revision,
                            key: e.key.clone(),
                        });
                    }
                    revision_responses.entry(e.revision).or_default().insert(ri);
                    if e.revision <= max_progress {
                        v.push(WatchViolation::ProgressAhead {
                            stream: name.clone(),
                            progress: max_progress,
                            detail: format!(
                                "event {}@{} arrived after the notification claimed progress past it",
                                e.key, e.revision
                            ),
                        });
                    }
                    match log.get(&(e.revision, e.key.as_str())) {
                        None => v.push(WatchViolation::Phantom {
                            stream: name.clone(),
                            event: e.clone(),
                            detail: "no such write in the history".into(),
                        }),
                        Some(w) if !same_change(w, e) => v.push(WatchViolation::Phantom {
                            stream: name.clone(),
                            event: e.clone(),
                            detail: format!("the committed change was {:?} {:?}", w.kind, w.value),
                        }),
                        Some(_) if !s.matches(&e.key) => v.push(WatchViolation::Phantom {
                            stream: name.clone(),
                            event: e.clone(),
                            detail: "key outside the watched range".into(),
                        }),
                        Some(_) if e.revision < start => v.push(WatchViolation::BadResume {
                            stream: name.clone(),
                            start_revision: s.start_revision,
                            detail: if s.start_revision > 0 {
                                format!(
                                    "delivered {}@{} from before the start revision",
                                    e.key, e.revision
                                )
                            } else {
                                format!(
                                    "delivered {}@{}, at or before the creation revision {}",
                                    e.key,
                                    e.revision,
                                    start - 1
                                )
                            },
                        }),
                        Some(_) => lower(&mut cover, e.revision),
                    }
                }
            }
            WatchResponse::Progress { revision } => {
                // Every covered event at or below the notification must
                // have arrived (nothing is known to be covered yet for a
                // "from now" stream with no recorded start and no earlier
                // bound).
                if let Some(from) = cover {
                    let missing: Vec<String> = expected
                        .iter()
                        .filter(|e| {
                            e.revision >= from
                                && e.revision <= *revision
                                && !delivered.contains(&(e.revision, e.key.clone()))
                        })
                        .map(|e| format!("{}@{}", e.key, e.revision))
                        .collect();
                    if !missing.is_empty() {
                        v.push(WatchViolation::ProgressAhead {
                            stream: name.clone(),
                            progress: *revision,
                            detail: format!("events not yet delivered: {}", missing.join(", ")),
                        });
                    }
                }
                // The stream is caught up to `revision`, so it covers
                // everything after it.
                lower(&mut cover, revision.saturating_add(1));
                max_progress = max_progress.max(*revision);
            }
        }
    }
    // Atomic: each revision in one response, and complete in it.
    for (rev, resps) in &revision_responses {
        if resps.len() > 1 {
            v.push(WatchViolation::NotAtomic {
                stream: name.clone(),
                revision: *rev,
                responses: resps.iter().copied().collect(),
            });
        }
    }
    // Resumable: the first delivered event is the first expected one.
    if s.start_revision > 0 {
        if let (Some(first), Some(want)) = (first_event, expected.first()) {
            if first.revision > want.revision {
                v.push(WatchViolation::BadResume {
                    stream: name.clone(),
                    start_revision: s.start_revision,
                    detail: format!(
                        "first delivered event is {}@{} but {}@{} should have come first",
                        first.key, first.revision, want.key, want.revision
                    ),
                });
            }
        }
    }
    // Reliable: nothing covered skipped up to the newest delivered
    // revision. With an explicit start revision, what comes before the
    // first delivered event is the resumable check's concern.
    let gap_from = if s.start_revision > 0 {
        first_event.map_or(0, |e| e.revision)
    } else {
        cover.unwrap_or(u64::MAX)
    };
    for e in &expected {
        if e.revision > last_rev {
            break;
        }
        if e.revision < gap_from {
            continue;
        }
        if !delivered.contains(&(e.revision, e.key.clone())) {
            // A missing event inside a revision that did arrive is an
            // atomicity failure (the revision came incomplete), otherwise a gap.
            if revision_responses.contains_key(&e.revision) {
                v.push(WatchViolation::NotAtomic {
                    stream: name.clone(),
                    revision: e.revision,
                    responses: revision_responses[&e.revision].iter().copied().collect(),
                });
            } else {
                v.push(WatchViolation::Gap {
                    stream: name.clone(),
                    missing: (*e).clone(),
                });
            }
        }
    }
    StreamSummary {
        cover_from: cover,
        reported: last_rev
            .max(max_progress)
            .max(known_start.map_or(0, |k| k - 1)),
        delivered,
    }
}
