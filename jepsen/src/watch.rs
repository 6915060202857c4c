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

use crate::checker::Verdict;
use crate::report::Section;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Put or delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// Checks every stream against the write history.
pub fn check_watches(h: &WatchHistory) -> WatchReport {
    let mut log: BTreeMap<(u64, &str), &WatchEvent> = BTreeMap::new();
    for w in &h.writes {
        log.insert((w.revision, w.key.as_str()), w);
    }
    let mut report = WatchReport {
        streams: h.streams.len(),
        ..WatchReport::default()
    };
    for s in &h.streams {
        check_stream(s, &log, &mut report);
    }
    report
}

fn check_stream(
    s: &WatchStream,
    log: &BTreeMap<(u64, &str), &WatchEvent>,
    report: &mut WatchReport,
) {
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
}
