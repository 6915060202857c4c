//! Checks etcd watch guarantees over recorded watch streams, against the
//! store's write history (the ground truth: every committed event with its
//! revision).
//!
//! Guarantees (following etcd's documented watch API guarantees):
//!
//! * **ordered**: events arrive in non-decreasing revision order;
//! * **unique**: no (revision, key) event arrives twice;
//! * **atomic**: all events of one revision (within the watched range)
//!   arrive in the same response;
//! * **reliable**: no gaps: every matching event the stream covers, up to
//!   the newest revision it has delivered, is delivered;
//! * **resumable**: a stream started at revision `R` begins exactly with the
//!   first matching event at or after `R` and nothing older;
//! * **bookmarkable**: a progress notification at revision `P` only arrives
//!   after every covered matching event at or below `P`, and none arrives
//!   after it.
//!
//! What a stream covers: from its start revision on. A "from now" stream
//! (start revision 0) starts right after its creation response's header
//! revision `C` when that was recorded ([`WatchStream::created_revision`]):
//! it covers every revision after `C` and must deliver nothing at or before
//! `C`. Without it, the start is unknown, but each fact received narrows it
//! down: a progress notification at `P` proves the stream covers every
//! revision after `P`, and a delivered (committed) event at `r` proves it
//! covers `r` on. The stream is judged from the earliest such bound.
//!
//! Events that do not exist in the write history (or differ from it, or lie
//! outside the watched range) are reported as phantoms. The write history
//! must be complete for the watched ranges.
//!
//! A watch that outlives its streams ([`ResumedWatch`], checked by
//! [`check_resumed_watches`]) is what etcd's clients keep: when a stream
//! breaks (its member crashed, lost its leader, or was cut off), the client
//! opens a new one at the revision after the newest one the broken stream
//! reported. Each stream is judged as above; across them, **resumable** also
//! means each new stream starts exactly there (earlier would deliver
//! duplicates, later or "from now" could lose events), and **reliable** means
//! that a watch that ran until the store reached some revision delivered
//! every matching event it covered up to it, whichever stream carried it.

use crate::checker::Verdict;
use crate::report::Section;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Put or delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The key was written.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change to one key at one revision (both a committed write and a
/// delivered watch event).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WatchEvent {
    /// The revision of the change (the key's new `mod_revision`).
    pub revision: u64,
    /// The key.
    pub key: String,
    /// Put or delete.
    pub kind: EventKind,
    /// The new value for puts; ignored for deletes.
    #[serde(default)]
    pub value: Option<String>,
}

/// One message received on a watch stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WatchResponse {
    /// A batch of events.
    Events {
        /// The events, in delivery order.
        events: Vec<WatchEvent>,
    },
    /// A progress notification (bookmark): the stream claims to be caught
    /// up to `revision`.
    Progress {
        /// The header revision of the notification.
        revision: u64,
    },
}

/// A recorded watch stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchStream {
    /// A name for reports.
    pub name: String,
    /// First key of the watched range.
    pub key: String,
    /// End of the range (exclusive); `None` watches exactly `key`; `""`
    /// means every key from `key` on (etcd's `"\0"`).
    #[serde(default)]
    pub range_end: Option<String>,
    /// The requested start revision; 0 means "from now" (see
    /// `created_revision`).
    #[serde(default)]
    pub start_revision: u64,
    /// For a "from now" stream: the header revision of the watch-creation
    /// response, if recorded. etcd starts such a watch right after it, so
    /// every matching event after it must be delivered and none at or
    /// before it. Without it the start is bounded by the first progress
    /// notification or delivered event. Ignored when `start_revision > 0`.
    #[serde(default)]
    pub created_revision: Option<u64>,
    /// Everything received, in order.
    pub responses: Vec<WatchResponse>,
}

impl WatchStream {
    /// Whether `key` is inside the watched range.
    pub fn matches(&self, key: &str) -> bool {
        match &self.range_end {
            None => key == self.key,
            Some(end) if end.is_empty() => key >= self.key.as_str(),
            Some(end) => key >= self.key.as_str() && key < end.as_str(),
        }
    }

    /// The range end that watches every key with this prefix.
    pub fn prefix_end(prefix: &str) -> String {
        let mut b = prefix.as_bytes().to_vec();
        while let Some(last) = b.pop() {
            if last < 0xff {
                b.push(last + 1);
                return String::from_utf8_lossy(&b).into_owned();
            }
        }
        String::new()
    }
}

/// Everything the watch checker needs: the write history and the streams.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchHistory {
    /// Every committed change, in any order (sorted by the checker).
    pub writes: Vec<WatchEvent>,
    /// The watch streams.
    pub streams: Vec<WatchStream>,
}

/// A broken watch guarantee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WatchViolation {
    /// An event arrived after one with a higher revision.
    Unordered {
        /// Stream name.
        stream: String,
        /// Revision delivered earlier.
        previous: u64,
        /// Lower revision delivered later.
        revision: u64,
    },
    /// The same (revision, key) event arrived twice.
    Duplicate {
        /// Stream name.
        stream: String,
        /// Revision.
        revision: u64,
        /// Key.
        key: String,
    },
    /// One revision's events were split over several responses.
    NotAtomic {
        /// Stream name.
        stream: String,
        /// The split revision.
        revision: u64,
        /// Indices of the responses that carried parts of it.
        responses: Vec<usize>,
    },
    /// A matching event was skipped although later ones arrived.
    Gap {
        /// Stream name.
        stream: String,
        /// The missing event.
        missing: WatchEvent,
    },
    /// The stream did not start exactly at the first matching event at or
    /// after its start revision.
    BadResume {
        /// Stream name.
        stream: String,
        /// The requested start revision.
        start_revision: u64,
        /// What was wrong.
        detail: String,
    },
    /// A progress notification ran ahead of the events.
    ProgressAhead {
        /// Stream name.
        stream: String,
        /// The notification's revision.
        progress: u64,
        /// What was wrong.
        detail: String,
    },
    /// A resumed watch never delivered a matching event it covered,
    /// although it ran until the store was past it.
    Incomplete {
        /// The resumed watch's name.
        watch: String,
        /// The missing event.
        missing: WatchEvent,
        /// The revision the watch ran until.
        caught_up_to: u64,
    },
    /// An event that was never committed (or differs from the committed
    /// one, or is outside the watched range).
    Phantom {
        /// Stream name.
        stream: String,
        /// The event.
        event: WatchEvent,
        /// What was wrong.
        detail: String,
    },
}

impl fmt::Display for WatchViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WatchViolation::Unordered {
                stream,
                previous,
                revision,
            } => write!(
                f,
                "[ordered] {stream}: revision {revision} delivered after {previous}"
            ),
            WatchViolation::Duplicate {
                stream,
                revision,
                key,
            } => {
                write!(
                    f,
                    "[unique] {stream}: event {key}@{revision} delivered twice"
                )
            }
            WatchViolation::NotAtomic {
                stream,
                revision,
                responses,
            } => write!(
                f,
                "[atomic] {stream}: revision {revision} split over responses {responses:?}"
            ),
            WatchViolation::Gap { stream, missing } => write!(
                f,
                "[reliable] {stream}: event {}@{} ({:?}) missing although later events arrived",
                missing.key, missing.revision, missing.kind
            ),
            WatchViolation::BadResume {
                stream,
                start_revision,
                detail,
            } => write!(f, "[resumable] {stream} (start {start_revision}): {detail}"),
            WatchViolation::ProgressAhead {
                stream,
                progress,
                detail,
            } => write!(f, "[bookmarkable] {stream}: progress {progress}: {detail}"),
            WatchViolation::Incomplete {
                watch,
                missing,
                caught_up_to,
            } => write!(
                f,
                "[reliable] {watch}: event {}@{} ({:?}) never delivered although the watch ran until revision {caught_up_to}",
                missing.key, missing.revision, missing.kind
            ),
            WatchViolation::Phantom {
                stream,
                event,
                detail,
            } => {
                write!(
                    f,
                    "[phantom] {stream}: event {}@{}: {detail}",
                    event.key, event.revision
                )
            }
        }
    }
}

/// The result of [`check_watches`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WatchReport {
    /// Streams checked.
    pub streams: usize,
    /// Events delivered in total.
    pub events: usize,
    /// Everything that went wrong (empty = all guarantees held).
    pub violations: Vec<WatchViolation>,
}

impl WatchReport {
    /// True when no guarantee was broken.
    pub fn is_valid(&self) -> bool {
        self.violations.is_empty()
    }

    /// A report section (verdict plus one line per violation).
    pub fn to_section(&self, title: impl Into<String>) -> Section {
        let mut text = format!("{} streams, {} events delivered", self.streams, self.events);
        for v in &self.violations {
            text.push('\n');
            text.push_str(&v.to_string());
        }
        Section {
            title: title.into(),
            verdict: if self.is_valid() {
                Verdict::Linearizable
            } else {
                Verdict::NotLinearizable
            },
            text,
            html: String::new(),
        }
    }
}

fn same_change(a: &WatchEvent, b: &WatchEvent) -> bool {
    a.kind == b.kind && (a.kind == EventKind::Delete || a.value == b.value)
}

/// The write history indexed by (revision, key).
fn index(writes: &[WatchEvent]) -> BTreeMap<(u64, &str), &WatchEvent> {
    writes
        .iter()
        .map(|w| ((w.revision, w.key.as_str()), w))
        .collect()
}

/// Checks every stream against the write history.
pub fn check_watches(h: &WatchHistory) -> WatchReport {
    let log = index(&h.writes);
    let mut report = WatchReport {
        streams: h.streams.len(),
        ..WatchReport::default()
    };
    for s in &h.streams {
        check_stream(s, &log, &mut report);
    }
    report
}

/// One logical watch kept going over several streams, as etcd's clients do:
/// after a stream breaks, the next one starts at the revision after the
/// newest one reported so far (the last event's or a progress
/// notification's; for a "from now" stream with nothing since, its creation
/// revision).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumedWatch {
    /// A name for reports.
    pub name: String,
    /// Its streams, in the order they were opened; all watch the same range.
    pub segments: Vec<WatchStream>,
    /// The revision the store had reached when the watch was last known to
    /// be caught up with it (the client got a progress notification at or
    /// past it); every matching event the watch covers up to here must have
    /// been delivered by one of its streams. `None`: judge only what arrived.
    #[serde(default)]
    pub caught_up_to: Option<u64>,
}

/// Checks resumed watches against the write history: each stream as
/// [`check_watches`] does, plus the guarantees that span streams (see the
/// module docs). `streams` in the report counts streams, not watches.
pub fn check_resumed_watches(writes: &[WatchEvent], watches: &[ResumedWatch]) -> WatchReport {
    let log = index(writes);
    let mut report = WatchReport::default();
    for w in watches {
        report.streams += w.segments.len();
        let first_violation = report.violations.len();
        // Newest revision reported by the streams so far; `None` before the first.
        let mut reported: Option<u64> = None;
        let mut cover_from = None;
        let mut delivered = BTreeSet::new();
        for (i, seg) in w.segments.iter().enumerate() {
            let first = &w.segments[0];
            if (&seg.key, &seg.range_end) != (&first.key, &first.range_end) {
                report.violations.push(WatchViolation::BadResume {
                    stream: seg.name.clone(),
                    start_revision: seg.start_revision,
                    detail: format!("resumed {} on another range", w.name),
                });
            }
            if let Some(prev) = reported {
                if seg.start_revision != prev + 1 {
                    let detail = if seg.start_revision == 0 {
                        format!(
                            "resumed {} from now after its streams reported up to {prev}: \
                             events after {prev} may be lost",
                            w.name
                        )
                    } else {
                        format!(
                            "resumed {} at {} after its streams reported up to {prev} \
                             (the continuation starts at {})",
                            w.name,
                            seg.start_revision,
                            prev + 1
                        )
                    };
                    report.violations.push(WatchViolation::BadResume {
                        stream: seg.name.clone(),
                        start_revision: seg.start_revision,
                        detail,
                    });
                }
            }
            let summary = check_stream(seg, &log, &mut report);
            if i == 0 {
                cover_from = summary.cover_from;
            }
            reported = Some(reported.map_or(summary.reported, |r| r.max(summary.reported)));
            delivered.extend(summary.delivered);
        }
        let (Some(until), Some(from), Some(first)) =
            (w.caught_up_to, cover_from, w.segments.first())
        else {
            continue;
        };
        // Events a stream's own check already reported missing are not repeated.
        let mut known = BTreeSet::new();
        let mut split = BTreeSet::new();
        for v in &report.violations[first_violation..] {
            match v {
                WatchViolation::Gap { missing, .. } => {
                    known.insert((missing.revision, missing.key.clone()));
                }
                WatchViolation::NotAtomic { revision, .. } => {
                    split.insert(*revision);
                }
                _ => {}
            }
        }
        for e in log.range((from, "")..) {
            let ((rev, key), e) = e;
            if *rev > until {
                break;
            }
            let id = (*rev, key.to_string());
            if first.matches(key)
                && !delivered.contains(&id)
                && !known.contains(&id)
                && !split.contains(rev)
            {
                report.violations.push(WatchViolation::Incomplete {
                    watch: w.name.clone(),
                    missing: (*e).clone(),
                    caught_up_to: until,
                });
            }
        }
    }
    report
}

/// What one stream's check learned, for the checks that span a resumed watch's streams.
struct StreamSummary {
    /// The first revision the stream provably covers (see the module docs); `None` if unknown.
    cover_from: Option<u64>,
    /// The newest revision the stream reported to its client: its last event's, a progress
    /// notification's, or (before either) the revision just before its start. A client resumes
    /// right after it.
    reported: u64,
    /// Every (revision, key) delivered.
    delivered: BTreeSet<(u64, String)>,
}

fn check_stream(
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

#[cfg(test)]
mod tests {
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
    fn seg(
        name: &str,
        start: u64,
        created: Option<u64>,
        responses: Vec<WatchResponse>,
    ) -> WatchStream {
        WatchStream {
            name: name.into(),
            key: "a".into(),
            range_end: Some("c".into()),
            start_revision: start,
            created_revision: created,
            responses,
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
        assert!(
            matches!(&v[1], WatchViolation::Incomplete { missing, .. } if missing.revision == 5)
        );
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
}
