//! Reading a WAL back at start: every segment in order, every record checked, the log rebuilt.
//!
//! What counts as damage, and what is done about it:
//! - A frame that is torn, fails its CRC or reads as zeros **in the last segment**, where no
//!   later [`Record::Synced`] marker says it had been made durable, is a torn write: the log
//!   ends there. Only writes after the last completed sync can be torn, and none of them was
//!   acknowledged (every sync covers all writes before it). The rest of that segment is zeroed,
//!   so the cut cannot reappear behind later writes.
//! - The same where a later marker says the bytes were durable, or **in any earlier segment**,
//!   a missing or out-of-order segment, a segment whose entries do not reach the next segment's
//!   first index, or entries that are not contiguous: corruption of acknowledged data. The WAL
//!   refuses to open, naming the segment and offset.
//! - Segments are created atomically (see [`Dir::create`]): none is ever found half made.

use std::collections::BTreeMap;
use std::io;

use openraft::RaftLogId;

use crate::io::fs::Dir;

use super::frame::{self, At};
use super::record::{RaftState, Record, SegmentHead};
use super::{segment_name, Loc, Located, Segment, MAGIC};

/// The log as the WAL holds it.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Entries after the purge point, by index: their log ids and where they are.
    pub entries: BTreeMap<u64, Located>,
    /// Vote, committed and purge point.
    pub state: RaftState,
    /// The segments, oldest first (empty for a new WAL).
    pub segments: Vec<Segment>,
    /// Where the next record goes in the last segment.
    pub tail_offset: u64,
    /// The index the next entry record must have (or less, replacing a suffix).
    next: u64,
}

fn corrupt(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("wal: {msg}"))
}

/// Parses `{seq:016x}-{first_index:016x}.wal`.
fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".wal")?;
    let (seq, first) = stem.split_once('-')?;
    Some((
        u64::from_str_radix(seq, 16).ok()?,
        u64::from_str_radix(first, 16).ok()?,
    ))
}

impl Recovered {
    /// Applies one record read from the log.
    fn apply(&mut self, r: Record, loc: Loc, at: &str) -> io::Result<()> {
        match r {
            Record::Segment(h) => {
                return Err(corrupt(format!(
                    "segment head of seq {} inside {at}",
                    h.seq
                )))
            }
            Record::Entry(e) => {
                let index = e.get_log_id().index;
                if index > self.next {
                    return Err(corrupt(format!(
                        "entry {index} in {at} leaves a gap (the next entry is {})",
                        self.next
                    )));
                }
                // An entry at an index the log has replaces it and everything after it.
                self.entries.split_off(&index);
                self.entries.insert(
                    index,
                    Located {
                        log_id: *e.get_log_id(),
                        loc,
                    },
                );
                self.next = index + 1;
            }
            Record::Vote(v) => self.state.vote = Some(v),
            Record::Committed(c) => self.state.committed = c,
            Record::Truncate(i) => {
                self.entries.split_off(&i);
                self.next = self.next.min(i);
            }
            Record::Purge(l) => {
                self.state.purged = Some(l);
                self.entries = self.entries.split_off(&(l.index + 1));
                self.next = self.next.max(l.index + 1);
            }
            Record::Synced(_) => {}
        }
        Ok(())
    }
}

/// Reads the WAL in `dir`; see the module docs.
pub async fn recover(dir: &Dir) -> io::Result<Recovered> {
    let mut named: Vec<(u64, u64, String)> = Vec::new();
    for name in dir.list()? {
        if let Some((seq, first)) = parse_name(&name) {
            named.push((seq, first, name));
        }
    }
    named.sort();
    for pair in named.windows(2) {
        if pair[1].0 != pair[0].0 + 1 {
            return Err(corrupt(format!(
                "segment seq {:x} is missing between {} and {}",
                pair[0].0 + 1,
                pair[0].2,
                pair[1].2
            )));
        }
    }
    let mut out = Recovered::default();
    let count = named.len();
    for (i, (seq, first_index, name)) in named.into_iter().enumerate() {
        let last = i + 1 == count;
        let mut data = dir.read(&name)?;
        if !data.starts_with(MAGIC) {
            return Err(corrupt(format!("{name} is not a WAL segment")));
        }
        let mut rereads = 0;
        let mut at = MAGIC.len();
        match frame::read(&data, at) {
            At::Record {
                kind,
                payload,
                next,
            } => match Record::decode(kind, payload)? {
                Record::Segment(SegmentHead {
                    seq: s,
                    first_index: f,
                    state,
                    len,
                }) if s == seq && f == first_index => {
                    if (data.len() as u64) < len {
                        return Err(corrupt(format!(
                            "{name} was cut short: {} of its {len} bytes",
                            data.len()
                        )));
                    }
                    if i > 0 && first_index != out.next {
                        return Err(corrupt(format!(
                            "{name} starts at entry {first_index}, but the segments before it \
                             continue at entry {}",
                            out.next
                        )));
                    }
                    // The head holds the state as of the segment's creation: the newest so far.
                    if let Some(p) = state.purged {
                        out.entries = out.entries.split_off(&(p.index + 1));
                    }
                    out.state = state;
                    out.next = first_index;
                    at = next;
                }
                _ => return Err(corrupt(format!("{name} has a wrong head"))),
            },
            _ => return Err(corrupt(format!("{name} has no readable head"))),
        }
        loop {
            match frame::read(&data, at) {
                At::Record {
                    kind,
                    payload,
                    next,
                } => {
                    let loc = Loc {
                        seq,
                        offset: at as u64,
                        len: (next - at) as u32,
                    };
                    out.apply(Record::decode(kind, payload)?, loc, &name)?;
                    at = next;
                }
                At::End if !last => break,
                At::Bad if !last => {
                    return Err(corrupt(format!(
                        "{name} is corrupt at offset {at} (not the last segment)"
                    )))
                }
                At::End | At::Bad => {
                    if data[at..].iter().all(|b| *b == 0) {
                        break;
                    }
                    // A bad read must not be taken for damage: read again before judging.
                    let again = dir.read(&name)?;
                    if again[..] != data[..] && rereads < 3 {
                        rereads += 1;
                        data = again;
                        continue;
                    }
                    if let Some(through) = synced_beyond(&data, at) {
                        return Err(corrupt(format!(
                            "{name} is corrupt at offset {at}, below offset {through} that a \
                             completed sync made durable"
                        )));
                    }
                    tracing::warn!(segment = %name, offset = at, "cutting a torn write at the end of the WAL");
                    dir.zero_from(&name, at as u64).await?;
                    break;
                }
            }
        }
        out.segments.push(Segment {
            seq,
            first_index,
            name,
            len: data.len() as u64,
        });
        out.tail_offset = at as u64;
    }
    if let Some(first) = out.segments.first() {
        let start = out.state.purged.map_or(0, |p| p.index + 1);
        if first.first_index > start {
            return Err(corrupt(format!(
                "entries {start}..{} are neither in the log nor purged",
                first.first_index
            )));
        }
    }
    debug_assert!(out
        .segments
        .iter()
        .all(|s| s.name == segment_name(s.seq, s.first_index)));
    Ok(out)
}

/// The largest offset beyond `at` that a valid sync marker after `at` says was durable: proof
/// that damage at `at` is not a torn write.
fn synced_beyond(data: &[u8], at: usize) -> Option<u64> {
    let mut best = None;
    let mut i = at + 1;
    while i + frame::HEADER <= data.len() {
        if data[i] == 0 {
            // Skip runs of zeros (the unwritten end of a preallocated segment) quickly.
            i += data[i..]
                .iter()
                .position(|b| *b != 0)
                .unwrap_or(data.len() - i);
            continue;
        }
        match frame::read(data, i) {
            At::Record {
                kind,
                payload,
                next,
            } => {
                if let Ok(Record::Synced(through)) = Record::decode(kind, payload) {
                    if through > at as u64 {
                        best = best.max(Some(through));
                    }
                }
                i = next;
            }
            _ => i += 1,
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_parse() {
        assert_eq!(parse_name(&segment_name(3, 0x1f)), Some((3, 0x1f)));
        assert_eq!(parse_name("0000000000000003-000000000000001f.tmp"), None);
        assert_eq!(parse_name("x-y.wal"), None);
    }
}
