//! The raft log and vote on the node's [`Disk`]. An append is acknowledged to openraft only after
//! `sync`, so an entry a leader counts toward a commit is on stable storage.
//!
//! Layout: `l` + index (8 bytes big-endian) → `detcdpb.LogEntry`; `r/vote`, `r/committed`,
//! `r/purged` → JSON (rare writes, and their shape belongs to openraft).

// openraft's StorageError is what its traits return; boxing it is not ours to choose.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};

use bytes::{Bytes, BytesMut};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    Entry, EntryPayload, LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote,
};
use prost::Message;

use crate::io::disk::{prefix_end, WriteBatch};
use crate::io::Disk;
use crate::proto::detcdpb::{log_entry::Payload, Blank, LogEntry};

use super::types::{Command, TypeConfig};

const LOG_PREFIX: &[u8] = b"l";
const VOTE: &[u8] = b"r/vote";
const COMMITTED: &[u8] = b"r/committed";
const PURGED: &[u8] = b"r/purged";

fn log_key(index: u64) -> Bytes {
    let mut k = BytesMut::with_capacity(9);
    k.extend_from_slice(LOG_PREFIX);
    k.extend_from_slice(&index.to_be_bytes());
    k.freeze()
}

/// Encodes a log entry. A client request is written straight into the buffer as field 5 rather
/// than cloned into a `LogEntry` first.
pub fn encode_entry(e: &Entry<TypeConfig>) -> Vec<u8> {
    let mut head = LogEntry {
        term: e.log_id.leader_id.term,
        leader_node_id: e.log_id.leader_id.node_id,
        index: e.log_id.index,
        payload: None,
    };
    match &e.payload {
        EntryPayload::Blank => head.payload = Some(Payload::Blank(Blank {})),
        EntryPayload::Membership(m) => {
            let json = serde_json::to_vec(m).expect("membership serializes");
            head.payload = Some(Payload::MembershipJson(json.into()));
        }
        EntryPayload::Normal(_) => {}
    }
    let mut buf = head.encode_to_vec();
    if let EntryPayload::Normal(Command(r)) = &e.payload {
        prost::encoding::message::encode(5, r, &mut buf);
    }
    buf
}

/// Decodes what [`encode_entry`] wrote.
pub fn decode_entry(b: &[u8]) -> io::Result<Entry<TypeConfig>> {
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
    let e = LogEntry::decode(b).map_err(|e| bad(format!("log entry: {e}")))?;
    let payload = match e.payload {
        Some(Payload::Blank(_)) => EntryPayload::Blank,
        Some(Payload::Normal(r)) => EntryPayload::Normal(Command(r)),
        Some(Payload::MembershipJson(j)) => EntryPayload::Membership(
            serde_json::from_slice(&j).map_err(|e| bad(format!("membership: {e}")))?,
        ),
        None => return Err(bad("log entry without payload".into())),
    };
    Ok(Entry {
        log_id: LogId::new(
            openraft::CommittedLeaderId::new(e.term, e.leader_node_id),
            e.index,
        ),
        payload,
    })
}

fn read_err(e: io::Error) -> StorageError<u64> {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: io::Error) -> StorageError<u64> {
    StorageIOError::write_logs(&e).into()
}

/// The raft log store; cheap to clone (a disk handle and the flusher's queue).
#[derive(Clone, Debug)]
pub struct LogStore {
    disk: Disk,
    flusher: tokio::sync::mpsc::UnboundedSender<LogFlushed<TypeConfig>>,
}

/// Group commit: appends queue their acknowledgement here; each round takes everything queued,
/// syncs once, and acknowledges all of it. An append is only queued after its batch was written,
/// so the sync that follows covers it. Raft's core never waits for an fsync, and entries that
/// arrive during one ride along in the next.
async fn flush_loop(
    disk: Disk,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<LogFlushed<TypeConfig>>,
) {
    while let Some(first) = queue.recv().await {
        let mut waiting = vec![first];
        while let Ok(more) = queue.try_recv() {
            waiting.push(more);
        }
        let synced = if crate::io::canary::on(crate::io::canary::Canary::AckBeforeFsync) {
            Ok(())
        } else {
            disk.sync().await
        };
        for cb in waiting {
            let result = match &synced {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            cb.log_io_completed(result);
        }
    }
}

impl LogStore {
    /// A log store on `disk`; spawns its flusher, which ends when the last clone is dropped.
    pub fn new(disk: Disk) -> Self {
        let (flusher, queue) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(flush_loop(disk.clone(), queue));
        LogStore { disk, flusher }
    }

    fn read_json<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> io::Result<Option<T>> {
        match self.disk.get(key)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => log_key(i + 1).to_vec(),
            Bound::Excluded(&i) => log_key(i).to_vec(),
            Bound::Unbounded => prefix_end(LOG_PREFIX),
        };
        let rows = self.disk.scan(&log_key(start), &end).map_err(read_err)?;
        rows.iter()
            .map(|(_, v)| decode_entry(v).map_err(read_err))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let last_purged: Option<LogId<u64>> = self.read_json(PURGED).map_err(read_err)?;
        let last = self
            .disk
            .last_in(LOG_PREFIX, &prefix_end(LOG_PREFIX))
            .map_err(read_err)?
            .map(|(_, v)| decode_entry(&v).map(|e| e.log_id))
            .transpose()
            .map_err(read_err)?;
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let mut b = WriteBatch::new();
        b.put(
            Bytes::from_static(VOTE),
            serde_json::to_vec(vote).expect("vote serializes"),
        );
        let io = async {
            self.disk.write(b)?;
            self.disk.sync().await
        };
        io.await.map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        // Raft's durable state is the term and who we voted for; openraft's extra "committed" bit
        // would let a restarted leader resume at once in its old term, with a commit index that
        // may lag what it acknowledged before the crash (commits are not synced), and so hand
        // out stale read indexes. The simulator's nemesis found exactly that. Restart every
        // member as a follower instead: a new election in a higher term commits a fresh entry
        // before any read index is served. Voting safety is unchanged (same term, same vote).
        let vote: Option<Vote<u64>> = self
            .read_json(VOTE)
            .map_err(|e| StorageIOError::read_vote(&e))?;
        Ok(vote.map(|v| Vote::new(v.leader_id.term, v.leader_id.node_id)))
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        let mut b = WriteBatch::new();
        b.put(
            Bytes::from_static(COMMITTED),
            serde_json::to_vec(&committed).expect("log id serializes"),
        );
        self.disk.write(b).map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self
            .read_json::<Option<LogId<u64>>>(COMMITTED)
            .map_err(read_err)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut b = WriteBatch::new();
        let mut previous: Option<u64> = None;
        for e in entries {
            let index = e.log_id.index;
            assert!(
                previous.is_none_or(|p| index == p + 1),
                "log indices are contiguous within an append"
            );
            previous = Some(index);
            b.put(log_key(index), encode_entry(&e));
        }
        self.disk.write(b).map_err(write_err)?;
        // Durable before acknowledged: openraft counts these entries toward a commit only after
        // the callback, which the flusher calls once a sync covering them has completed.
        if let Err(returned) = self.flusher.send(callback) {
            returned
                .0
                .log_io_completed(Err(io::Error::other("log flusher stopped")));
            return Err(write_err(io::Error::other("log flusher stopped")));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let rows = self
            .disk
            .scan(&log_key(log_id.index), &prefix_end(LOG_PREFIX))
            .map_err(read_err)?;
        let mut b = WriteBatch::new();
        for (k, _) in rows {
            b.delete(k);
        }
        self.disk.write(b).map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        // Whatever the state machine applied up to here must be durable before the log that
        // could replay it goes away.
        self.disk.sync().await.map_err(write_err)?;
        let rows = self
            .disk
            .scan(&log_key(0), &log_key(log_id.index + 1))
            .map_err(read_err)?;
        let mut b = WriteBatch::new();
        b.put(
            Bytes::from_static(PURGED),
            serde_json::to_vec(&log_id).expect("log id serializes"),
        );
        for (k, _) in rows {
            b.delete(k);
        }
        self.disk.write(b).map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;
    use crate::cluster::Member;
    use crate::proto::detcdpb::raft_request::Request as Req;
    use crate::proto::detcdpb::RaftRequest;
    use crate::proto::etcdserverpb::PutRequest;

    fn log_id(term: u64, node: u64, index: u64) -> LogId<u64> {
        LogId::new(openraft::CommittedLeaderId::new(term, node), index)
    }

    fn round_trip(e: &Entry<TypeConfig>) -> Entry<TypeConfig> {
        decode_entry(&encode_entry(e)).expect("decodes what it encoded")
    }

    #[test]
    fn blank_and_membership_entries_round_trip() {
        let blank = Entry {
            log_id: log_id(3, 7, 42),
            payload: EntryPayload::Blank,
        };
        assert_eq!(round_trip(&blank), blank);
        let nodes = BTreeMap::from([(
            7,
            Member {
                name: "n7".into(),
                peer_urls: vec!["http://127.0.0.1:2380".into()],
                client_urls: vec![],
            },
        )]);
        let membership = openraft::Membership::new(vec![BTreeSet::from([7])], nodes);
        let entry = Entry {
            log_id: log_id(1, 7, 1),
            payload: EntryPayload::Membership(membership),
        };
        assert_eq!(round_trip(&entry), entry);
    }

    #[test]
    fn garbage_is_an_error_not_an_entry() {
        assert!(decode_entry(b"\xff\xff\xff").is_err());
        let blank = Entry::<TypeConfig> {
            log_id: log_id(1, 1, 1),
            payload: EntryPayload::Blank,
        };
        let bytes = encode_entry(&blank);
        // Without its payload field the record is not an entry.
        assert!(decode_entry(&bytes[..bytes.len() - 2]).is_err());
    }

    proptest! {
        #[test]
        fn client_writes_round_trip(
            term in 0u64..1000,
            index in 0u64..1_000_000,
            key in proptest::collection::vec(any::<u8>(), 1..40),
            value in proptest::collection::vec(any::<u8>(), 0..200),
            lease in any::<i64>(),
        ) {
            let put = PutRequest {
                key: key.into(),
                value: value.into(),
                lease,
                ..Default::default()
            };
            let entry = Entry {
                log_id: log_id(term, 0x8e9e05c52164694d, index),
                payload: EntryPayload::Normal(Command(RaftRequest {
                    request: Some(Req::Put(put)),
                })),
            };
            prop_assert_eq!(round_trip(&entry), entry);
        }
    }
}
