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

/// Where a record sits: its segment, and the offset and length of its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    /// The segment's sequence number.
    pub seq: u64,
    /// Offset of the frame in the segment.
    pub offset: u64,
    /// Length of the frame.
    pub len: u32,
}

/// A log entry's id and where its record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// The entry's log id.
    pub log_id: LogId<u64>,
    /// Its record.
    pub loc: Loc,
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
    /// Held while a segment is being made: the log store and the flusher's sync markers may
    /// both find the segment full at once.
    rolling: Arc<tokio::sync::Mutex<()>>,
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
            rolling: Arc::new(tokio::sync::Mutex::new(())),
        };
        if let Some(last) = rec.segments.last() {
            // What was read back may have been only in the page cache (the process was killed,
            // the machine kept running): make it durable before anyone relies on it.
            wal.dir.sync(&last.name).await?;
        } else {
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
    /// rolling to new segments as they fill up. Returns where each record went.
    pub async fn write(&self, records: &[Record]) -> io::Result<Vec<Loc>> {
        Ok(self
            .write_frames(records)
            .await?
            .into_iter()
            .map(|(loc, _)| loc)
            .collect())
    }

    /// [`Wal::write`], also returning each record's frame as written.
    pub async fn write_frames(&self, records: &[Record]) -> io::Result<Vec<(Loc, Vec<u8>)>> {
        let mut locs = Vec::with_capacity(records.len());
        for r in records {
            let mut frame = Vec::new();
            r.put(&mut frame);
            loop {
                let written = {
                    let mut t = self.tail();
                    let seg = t.segments.last().expect("a WAL has a segment");
                    let (seq, len, name) = (seg.seq, seg.len, seg.name.clone());
                    if t.offset + frame.len() as u64 <= len {
                        self.dir.write_at(&name, t.offset, &frame)?;
                        let loc = Loc {
                            seq,
                            offset: t.offset,
                            len: frame.len() as u32,
                        };
                        t.offset += frame.len() as u64;
                        note(&mut t, r);
                        locs.push((loc, std::mem::take(&mut frame)));
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
        Ok(locs)
    }

    /// Reads back the record at `loc` (checking its CRC).
    pub fn read(&self, loc: Loc) -> io::Result<Record> {
        let name = {
            let t = self.tail();
            let i = t
                .segments
                .binary_search_by_key(&loc.seq, |s| s.seq)
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("wal: no segment {:x} (purged?)", loc.seq),
                    )
                })?;
            t.segments[i].name.clone()
        };
        let data = self.dir.read_at(&name, loc.offset, loc.len as usize)?;
        match frame::read(&data, 0) {
            frame::At::Record { kind, payload, .. } => Record::decode(kind, payload),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("wal: corrupt record at {name} offset {}", loc.offset),
            )),
        }
    }

    /// Makes every record written before the call durable (one fdatasync; a segment filled
    /// meanwhile was synced when the next one was created), then notes how far that was in a
    /// [`Record::Synced`] marker (itself durable with the next sync).
    pub async fn sync(&self) -> io::Result<()> {
        let (name, seq, through) = {
            let t = self.tail();
            let seg = t.segments.last().expect("a segment");
            (seg.name.clone(), seg.seq, t.offset)
        };
        self.dir.sync(&name).await?;
        let same_segment = self.tail().segments.last().map(|s| s.seq) == Some(seq);
        if same_segment {
            self.write(&[Record::Synced(through)]).await?;
        }
        Ok(())
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
        let _rolling = self.rolling.lock().await;
        let (seq, head, old) = {
            let t = self.tail();
            if let Some(last) = t.segments.last() {
                if t.offset + need <= last.len {
                    // Another writer rolled meanwhile and the record fits now.
                    return Ok(());
                }
            }
            let seq = t.segments.last().map_or(0, |s| s.seq + 1);
            let head = SegmentHead {
                seq,
                first_index: t.next_index,
                state: t.state.clone(),
                len: 0,
            };
            (seq, head, t.segments.last().map(|s| s.name.clone()))
        };
        if let Some(old) = old {
            self.dir.sync(&old).await?;
        }
        let mut head = head;
        let mut bytes = MAGIC.to_vec();
        Record::Segment(head.clone()).put(&mut bytes);
        // Room for the head (its length field grows by a few digits) and the record.
        let len = self
            .segment_bytes
            .max(bytes.len() as u64 + 32 + need + frame::HEADER as u64);
        head.len = len;
        bytes.truncate(MAGIC.len());
        Record::Segment(head.clone()).put(&mut bytes);
        let name = segment_name(seq, head.first_index);
        // Created atomically: a crash halfway never leaves a segment without its head.
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
        Record::Segment(_) | Record::Synced(_) => {}
    }
}

#[cfg(all(test, not(madsim)))]
mod tests;
