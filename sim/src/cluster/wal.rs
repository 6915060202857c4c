//! A member's WAL directory seen from outside, as an operator would `ls` it: which segments it
//! holds and how many bytes they take. Segments are numbered from 0 in the order they are
//! created and removed oldest first, so the names alone tell how many were rolled and purged.
//! A [`WalWatch`] follows the records as they are written, to tell when a roll or a purge is
//! under way.

use detcd::io::fs::{Dir, SimDir};
use detcd::raft::wal::{frame, segment_name, Record, MAGIC};

/// The segments of a WAL directory: (sequence number, first entry index), oldest first.
pub fn segments(dir: &SimDir) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Dir::Sim(dir.clone())
        .list()
        .unwrap_or_default()
        .iter()
        .filter_map(|name| {
            let (seq, first) = name.strip_suffix(".wal")?.split_once('-')?;
            Some((
                u64::from_str_radix(seq, 16).ok()?,
                u64::from_str_radix(first, 16).ok()?,
            ))
        })
        .collect();
    out.sort_unstable();
    out
}

/// Bytes the files of a WAL directory take (their allocated lengths): what a full disk is
/// measured against. Reads each file, so a corrupt-read fault in force draws from its dice.
pub fn used_bytes(dir: &SimDir) -> u64 {
    let d = Dir::Sim(dir.clone());
    d.list()
        .unwrap_or_default()
        .iter()
        .filter_map(|name| d.read(name).ok())
        .map(|data| data.len() as u64)
        .sum()
}

/// How a WAL directory's segments came and went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WalStats {
    /// Segments created after the first (rolls).
    pub rolled: u64,
    /// Segments removed (purges).
    pub purged: u64,
}

impl WalStats {
    /// What the names in `dir` tell.
    pub fn of(dir: &SimDir) -> WalStats {
        let segs = segments(dir);
        WalStats {
            rolled: segs.last().map_or(0, |s| s.0),
            purged: segs.first().map_or(0, |s| s.0),
        }
    }

    /// Both counts, summed.
    pub fn add(&mut self, other: WalStats) {
        self.rolled += other.rolled;
        self.purged += other.purged;
    }
}

/// What a [`WalWatch`] saw happen in a WAL directory since it last looked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalEvent {
    /// A new segment appeared (its sequence number): the previous one was synced and rolled.
    Rolled(u64),
    /// The last segment has fewer free bytes than the watch's margin: the next records roll it.
    NearlyFull,
    /// A purge record was written (entries up to this index go): the purge now syncs it and
    /// removes the segments it covers.
    Purging(u64),
    /// Old segments were removed: the oldest left has this sequence number.
    Purged(u64),
    /// A truncation record was written: entries from this index on were a conflicting suffix
    /// the member dropped (a new leader's log replaces them).
    Truncated(u64),
}

/// Follows a WAL directory from outside while the member writes it, reading only the records
/// appended since the previous look (the simulated directory shows writes at once, synced or
/// not, as a page cache would).
#[derive(Debug, Clone, Default)]
pub struct WalWatch {
    /// Free bytes under which the last segment counts as nearly full.
    margin: u64,
    /// The last segment followed: sequence number, file name, allocated length.
    last: Option<(u64, String, u64)>,
    /// Where the next record is expected in it.
    offset: u64,
    /// Whether [`WalEvent::NearlyFull`] was reported for it.
    warned: bool,
    /// The oldest segment seen.
    first: Option<u64>,
    /// The last purge point seen written.
    purge_point: Option<u64>,
}

impl WalWatch {
    /// A watch that reports a segment with fewer than `margin` free bytes as nearly full.
    pub fn new(margin: u64) -> WalWatch {
        WalWatch {
            margin,
            ..WalWatch::default()
        }
    }

    /// Forgets where the last segment's records end (after a crash the member cuts its torn
    /// tail and writes over it); the next [`WalWatch::poll`] reads that segment from its head.
    pub fn reset(&mut self) {
        self.last = None;
        self.warned = false;
    }

    /// Whether the last segment was nearly full when last looked at and no new one followed:
    /// a roll is due or under way.
    pub fn roll_due(&self) -> bool {
        self.warned
    }

    /// Whether `dir` still holds segments that the last purge point seen written lets go: the
    /// purge has written its record but not yet synced it and removed them.
    pub fn purge_unfinished(&self, dir: &SimDir) -> bool {
        let Some(upto) = self.purge_point else {
            return false;
        };
        segments(dir)
            .get(1)
            .is_some_and(|(_, first_index)| *first_index <= upto + 1)
    }

    /// What happened since the previous poll, in order.
    pub fn poll(&mut self, dir: &SimDir) -> Vec<WalEvent> {
        let mut events = Vec::new();
        let segs = segments(dir);
        let (Some(&(first, _)), Some(&(seq, first_index))) = (segs.first(), segs.last()) else {
            return events;
        };
        if self.first.is_some_and(|f| first > f) {
            events.push(WalEvent::Purged(first));
        }
        self.first = Some(first);
        let d = Dir::Sim(dir.clone());
        if self.last.as_ref().map(|l| l.0) != Some(seq) {
            if self.last.as_ref().is_some_and(|l| l.0 < seq) {
                events.push(WalEvent::Rolled(seq));
            }
            let name = segment_name(seq, first_index);
            let Some((Record::Segment(head), next)) = record_at(&d, &name, MAGIC.len() as u64)
            else {
                // Not readable yet: look again next time.
                self.last = None;
                return events;
            };
            self.last = Some((seq, name, head.len));
            self.offset = next;
            self.warned = false;
        }
        let Some((_, name, len)) = self.last.clone() else {
            return events;
        };
        while let Some((record, next)) = record_at(&d, &name, self.offset) {
            match record {
                Record::Purge(upto) if self.purge_point.is_none_or(|p| upto.index > p) => {
                    self.purge_point = Some(upto.index);
                    events.push(WalEvent::Purging(upto.index));
                }
                Record::Truncate(from) => events.push(WalEvent::Truncated(from)),
                _ => {}
            }
            self.offset = next;
        }
        if !self.warned && len.saturating_sub(self.offset) < self.margin {
            self.warned = true;
            events.push(WalEvent::NearlyFull);
        }
        events
    }
}

/// The whole record at `offset` of segment `name` and the offset after it; `None` where
/// nothing (or nothing whole) was written.
fn record_at(d: &Dir, name: &str, offset: u64) -> Option<(Record, u64)> {
    let head = d.read_at(name, offset, frame::HEADER).ok()?;
    let len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
    if len == 0 {
        return None;
    }
    let whole = d.read_at(name, offset, frame::HEADER + len).ok()?;
    match frame::read(&whole, 0) {
        frame::At::Record {
            kind,
            payload,
            next,
        } => Some((Record::decode(kind, payload).ok()?, offset + next as u64)),
        _ => None,
    }
}
