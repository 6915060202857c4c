//! The raft log's write-ahead log: an append-only sequence of preallocated segment files in the
//! member's WAL directory ([`Dir`]), each record framed with its length and CRC ([`frame`]).
//!
//! - **Append** writes records into the page cache; **sync** makes everything written so far
//!   durable with one fdatasync — the log store's group commit calls it once for many appends.
//! - A segment is `MAGIC`, a [`Record::Segment`] head carrying the raft state (vote, committed,
//!   purge point) as of its creation, then records; it is preallocated to `segment_bytes`, so
//!   writes inside it never meet a full disk. When the next record does not fit, the segment is
//!   synced and the next one created (`{seq:016x}-{first_index:016x}.wal`, as etcd names them).
//! - **Purge** records the purge point, syncs, and removes every segment whose entries are all
//!   at or below it; the newest segment always stays.
//! - At start, [`recover`] reads it back, cutting a torn tail and refusing real corruption.

pub mod frame;
pub mod record;
pub mod recover;

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::{LogId, RaftLogId};

use crate::io::fs::Dir;

pub use record::{RaftState, Record, SegmentHead};
pub use recover::Recovered;

/// The first bytes of every segment (format version 1).
pub const MAGIC: &[u8] = b"DETCDWL1";

/// etcd's segment size.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Sequence number.
    pub seq: u64,
    /// Index of its first entry.
    pub first_index: u64,
    /// File name.
    pub name: String,
    /// Allocated length.
    pub len: u64,
}

/// The file name of segment `seq` starting at entry `first_index`.
pub fn segment_name(seq: u64, first_index: u64) -> String {
    format!("{seq:016x}-{first_index:016x}.wal")
}

struct Tail {
    /// Every segment, oldest first; the last one is written.
    segments: Vec<Segment>,
    /// Where the next record goes in the last segment.
    offset: u64,
    /// The raft state as written so far (heads of new segments carry it).
    state: RaftState,
    /// The index the next entry will have.
    next_index: u64,
}

/// The write-ahead log; cheap to clone (clones share it).
#[derive(Clone)]
pub struct Wal {
    dir: Dir,
    segment_bytes: u64,
    tail: Arc<Mutex<Tail>>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Wal({:?})", self.dir)
    }
}

impl Wal {
    /// Opens the WAL in `dir` (creating its first segment if there is none) and returns what it
    /// holds; fails on corruption (see [`recover`]).
    pub async fn open(dir: Dir, segment_bytes: u64) -> io::Result<(Wal, Recovered)> {
        let rec = recover::recover(&dir).await?;
        let next_index = rec
            .entries
            .keys()
            .next_back()
            .map(|i| i + 1)
            .or_else(|| rec.state.purged.map(|p| p.index + 1))
            .unwrap_or(0);
        let wal = Wal {
            dir,
            segment_bytes,
            tail: Arc::new(Mutex::new(Tail {
                segments: rec.segments.clone(),
                offset: rec.tail_offset,
                state: rec.state.clone(),
                next_index,
            })),
        };
        if rec.segments.is_empty() {
            wal.roll(0).await?;
        }
        Ok((wal, rec))
    }

    fn tail(&self) -> MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> Vec<Segment> {
        self.tail().segments.clone()
    }

    /// Writes `records` after everything written so far (not durable until [`Wal::sync`]),
    /// rolling to new segments as they fill up.
    pub async fn write(&self, records: &[Record]) -> io::Result<()> {
        let mut frame = Vec::new();
        for r in records {
            frame.clear();
            r.put(&mut frame);
            loop {
                let written = {
                    let mut t = self.tail();
                    let seg = t.segments.last().expect("a WAL has a segment").clone();
                    if t.offset + frame.len() as u64 <= seg.len {
                        self.dir.write_at(&seg.name, t.offset, &frame)?;
                        t.offset += frame.len() as u64;
                        note(&mut t, r);
                        true
                    } else {
                        false
                    }
                };
                if written {
                    break;
                }
                self.roll(frame.len() as u64).await?;
            }
        }
        Ok(())
    }

    /// Makes every record written before the call durable (one fdatasync; a segment filled
    /// meanwhile was synced when the next one was created).
    pub async fn sync(&self) -> io::Result<()> {
        let name = self.tail().segments.last().expect("a segment").name.clone();
        self.dir.sync(&name).await
    }

    /// Records the purge point durably and removes the segments whose entries are all at or
    /// below it.
    pub async fn purge(&self, upto: LogId<u64>) -> io::Result<()> {
        self.write(&[Record::Purge(upto)]).await?;
        self.sync().await?;
        loop {
            let doomed = {
                let t = self.tail();
                match t.segments.get(1) {
                    Some(next) if next.first_index <= upto.index + 1 => {
                        Some(t.segments[0].name.clone())
                    }
                    _ => None,
                }
            };
            let Some(name) = doomed else { break };
            self.dir.remove(&name).await?;
            self.tail().segments.remove(0);
        }
        Ok(())
    }

    /// Syncs the current segment and starts the next one, big enough for a record of `need`
    /// bytes.
    async fn roll(&self, need: u64) -> io::Result<()> {
        let (seq, head, old) = {
            let t = self.tail();
            let seq = t.segments.last().map_or(0, |s| s.seq + 1);
            let head = SegmentHead {
                seq,
                first_index: t.next_index,
                state: t.state.clone(),
            };
            (seq, head, t.segments.last().map(|s| s.name.clone()))
        };
        if let Some(old) = old {
            self.dir.sync(&old).await?;
        }
        let mut bytes = MAGIC.to_vec();
        Record::Segment(head.clone()).put(&mut bytes);
        let len = self
            .segment_bytes
            .max(bytes.len() as u64 + need + frame::HEADER as u64);
        let name = segment_name(seq, head.first_index);
        self.dir.create(&name, len, &bytes).await?;
        let mut t = self.tail();
        t.segments.push(Segment {
            seq,
            first_index: head.first_index,
            name,
            len,
        });
        t.offset = bytes.len() as u64;
        Ok(())
    }
}

/// Keeps the tail's view of the raft state in step with a record written.
fn note(t: &mut Tail, r: &Record) {
    match r {
        Record::Entry(e) => t.next_index = e.get_log_id().index + 1,
        Record::Vote(v) => t.state.vote = Some(*v),
        Record::Committed(c) => t.state.committed = *c,
        Record::Truncate(i) => t.next_index = t.next_index.min(*i),
        Record::Purge(l) => {
            t.state.purged = Some(*l);
            t.next_index = t.next_index.max(l.index + 1);
        }
        Record::Segment(_) => {}
    }
}

#[cfg(all(test, not(madsim)))]
mod tests;
