//! A watch kept going over several streams ([`ResumedWatch`]), as etcd's
//! clients keep one across member crashes and cut-off streams, and the
//! guarantees that span its streams: each new stream starts right after
//! what the broken one reported (resumable), and together they deliver
//! every covered event up to where the watch ran (reliable). See the
//! [`watch`](super) module docs.

use super::history::{WatchEvent, WatchStream};
use super::index;
use super::stream::check_stream;
use super::violation::{WatchReport, WatchViolation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

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
/// [`check_watches`](super::check_watches) does, plus the guarantees that
/// span streams (see the [`watch`](super) module docs). `streams` in the
/// report counts streams, not watches.
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
        // Revisions [from, to) a compacted stream told the watch it lost.
        let mut lost: Vec<(u64, u64)> = Vec::new();
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
            if let Some(c) = seg.compacted {
                // etcd cancels a watch that needs a revision compacted away (its start, or where
                // a slow stream fell behind to), naming the oldest revision left: the watch
                // continues from there, having lost what came between.
                let next = summary.reported + 1;
                if c <= next {
                    report.violations.push(WatchViolation::BadResume {
                        stream: seg.name.clone(),
                        start_revision: seg.start_revision,
                        detail: format!(
                            "canceled as compacted at {c}, though it needed revision {next} next"
                        ),
                    });
                } else {
                    lost.push((next, c));
                    reported = reported.max(Some(c - 1));
                }
            }
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
            let told_lost = lost.iter().any(|(from, to)| (*from..*to).contains(rev));
            if first.matches(key)
                && !told_lost
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
