//! The broken watch guarantees ([`WatchViolation`]), each tagged in its
//! text with the guarantee it breaks (`[ordered]`, `[reliable]`, ...), and
//! the [`WatchReport`] that collects them for a report section.

use super::history::WatchEvent;
use crate::checker::Verdict;
use crate::report::Section;
use serde::Serialize;
use std::fmt;

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

/// The result of [`check_watches`](super::check_watches) and
/// [`check_resumed_watches`](super::check_resumed_watches).
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
