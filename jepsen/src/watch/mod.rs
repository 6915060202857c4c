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
//!
//! # Files
//!
//! * `history.rs`: what a test records (writes, streams, responses);
//! * `violation.rs`: the broken guarantees and the [`WatchReport`];
//! * `stream.rs`: the checks of one stream;
//! * `resumed.rs`: [`ResumedWatch`] and the checks that span its streams;
//! * this file: [`check_watches`], and the write history as the checks
//!   look things up in it.

mod history;
mod resumed;
mod stream;
mod violation;

#[cfg(test)]
mod tests;

pub use history::{EventKind, WatchEvent, WatchHistory, WatchResponse, WatchStream};
pub use resumed::{check_resumed_watches, ResumedWatch};
pub use violation::{WatchReport, WatchViolation};

use std::collections::BTreeMap;
use stream::check_stream;

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
