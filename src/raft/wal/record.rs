//! What the raft log writes into its WAL, one record each: log entries, and the durable raft
//! state besides them (vote, committed index, truncations, purges). Every segment starts with
//! a [`Record::Segment`] carrying that state as of its creation, so dropping old segments never
//! drops it.

use std::io;

use openraft::{Entry, LogId, Vote};
use serde::{Deserialize, Serialize};

use super::super::codec::{decode_entry, encode_entry};
use super::super::compat;
use super::super::TypeConfig;
use super::frame;

/// The raft state that must survive besides the entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftState {
    /// The last vote saved.
    pub vote: Option<Vote<u64>>,
    /// The last committed log id saved (not synced on its own: a lower value after a crash only
    /// makes the restart re-apply less at once).
    pub committed: Option<LogId<u64>>,
    /// Entries up to here were purged (they are in the state machine).
    pub purged: Option<LogId<u64>>,
}

/// A segment's first record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHead {
    /// The segment's sequence number (one more than its predecessor's).
    pub seq: u64,
    /// The index the segment's first entry has (or would have).
    pub first_index: u64,
    /// The raft state when the segment was created.
    pub state: RaftState,
    /// The segment's allocated length: a shorter file was cut.
    pub len: u64,
}

/// One record of the WAL.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// The head of a segment.
    Segment(SegmentHead),
    /// A log entry; an entry at an index the log already has replaces it and everything after.
    Entry(Entry<TypeConfig>),
    /// A vote.
    Vote(Vote<u64>),
    /// The committed log id.
    Committed(Option<LogId<u64>>),
    /// Entries from this index on are removed (a follower's conflicting suffix).
    Truncate(u64),
    /// Entries up to and including this log id are removed (they are in the state machine).
    Purge(LogId<u64>),
    /// Written after a sync completed: every byte of this segment before this offset was then
    /// durable. Recovery tells damage to synced data (corruption: refuse) from a torn write
    /// (cut) by it.
    Synced(u64),
}

const SEGMENT: u8 = 1;
const ENTRY: u8 = 2;
const VOTE: u8 = 3;
const COMMITTED: u8 = 4;
const TRUNCATE: u8 = 5;
const PURGE: u8 = 6;
const SYNCED: u8 = 7;

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("raft state serializes")
}

impl Record {
    /// Appends the record, framed, to `out`.
    pub fn put(&self, out: &mut Vec<u8>) {
        match self {
            Record::Segment(h) => frame::put(out, SEGMENT, &json(h)),
            Record::Entry(e) => frame::put(out, ENTRY, &encode_entry(e)),
            Record::Vote(v) => frame::put(out, VOTE, &json(v)),
            Record::Committed(c) => frame::put(out, COMMITTED, &json(c)),
            Record::Truncate(i) => frame::put(out, TRUNCATE, &i.to_le_bytes()),
            Record::Purge(l) => frame::put(out, PURGE, &json(l)),
            Record::Synced(o) => frame::put(out, SYNCED, &o.to_le_bytes()),
        }
    }

    /// Decodes a record read from a frame.
    pub fn decode(kind: u8, payload: &[u8]) -> io::Result<Record> {
        let bad = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
        let from_json = |what: &str| bad(format!("wal: undecodable {what} record"));
        Ok(match kind {
            SEGMENT => {
                Record::Segment(compat::from_json(payload).map_err(|_| from_json("segment"))?)
            }
            ENTRY => Record::Entry(decode_entry(payload)?),
            VOTE => Record::Vote(compat::from_json(payload).map_err(|_| from_json("vote"))?),
            COMMITTED => {
                Record::Committed(compat::from_json(payload).map_err(|_| from_json("committed"))?)
            }
            TRUNCATE => Record::Truncate(u64::from_le_bytes(
                payload.try_into().map_err(|_| from_json("truncate"))?,
            )),
            PURGE => Record::Purge(compat::from_json(payload).map_err(|_| from_json("purge"))?),
            SYNCED => Record::Synced(u64::from_le_bytes(
                payload.try_into().map_err(|_| from_json("synced"))?,
            )),
            other => return Err(bad(format!("wal: unknown record kind {other}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        let id = LogId::new(openraft::CommittedLeaderId::new(2, 9), 17);
        let records = [
            Record::Segment(SegmentHead {
                seq: 3,
                first_index: 18,
                state: RaftState {
                    vote: Some(Vote::new(2, 9)),
                    committed: Some(id),
                    purged: None,
                },
                len: 1 << 20,
            }),
            Record::Entry(Entry {
                log_id: id,
                payload: openraft::EntryPayload::Blank,
            }),
            Record::Vote(Vote::new(4, 1)),
            Record::Committed(None),
            Record::Truncate(12),
            Record::Purge(id),
            Record::Synced(4096),
        ];
        for r in records {
            let mut buf = Vec::new();
            r.put(&mut buf);
            match frame::read(&buf, 0) {
                frame::At::Record { kind, payload, .. } => {
                    assert_eq!(Record::decode(kind, payload).unwrap(), r)
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(Record::decode(99, b"").is_err());
    }
}
