//! The raft log store on the write-ahead log ([`wal`](super::wal)): entries, the vote, the
//! committed index, truncations and purges are WAL records. In memory the store keeps where
//! each entry since the last purge is (a few dozen bytes each) and the newest entries whole
//! ([`CACHE_BYTES`]): replication and apply read those, and anything older is read back from
//! its segment (the page cache, usually). Values are thus not held twice in memory, once by the
//! log and once by the store.
//!
//! Group commit: an append writes its records (page cache) and queues its acknowledgement; the
//! flusher takes everything queued, syncs the WAL once, and acknowledges all of it. openraft
//! counts an entry toward a commit only after that, so what a leader commits is on stable
//! storage; raft's core never waits for an fsync, and entries arriving during one ride along
//! in the next.

// openraft's StorageError is what its traits return; boxing it is not ours to choose.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote};

use prometheus_client::metrics::histogram::Histogram;

use crate::io::Disk;

use super::disk_metrics::{timed, DiskMetrics};
use super::proposal_metrics::ProposalMetrics;
use super::state_machine::StateMachine;
use super::types::TypeConfig;
use super::wal::{Located, RaftState, Record, Wal};

/// Bytes of the newest entries' records kept decoded in memory (the others are read back from
/// the WAL when asked for).
pub const CACHE_BYTES: u64 = 32 << 20;

pub use super::codec::{decode_entry, encode_entry};

fn write_err(e: io::Error) -> StorageError<u64> {
    StorageIOError::write_logs(&e).into()
}

/// What the log holds, in memory.
#[derive(Debug, Default)]
struct Log {
    /// Every entry after the purge point: its log id and record. Invariant: contiguous indexes.
    entries: BTreeMap<u64, Located>,
    /// The newest entries, decoded, with their record sizes; at most [`CACHE_BYTES`] of them.
    cache: BTreeMap<u64, (Entry<TypeConfig>, u64)>,
    cached_bytes: u64,
    /// The most the cache holds ([`CACHE_BYTES`] but in tests).
    cache_limit: u64,
    state: RaftState,
}

impl Log {
    fn remove_from(&mut self, index: u64) {
        self.entries.split_off(&index);
        for (_, (_, bytes)) in self.cache.split_off(&index) {
            self.cached_bytes -= bytes;
        }
    }

    fn remove_through(&mut self, index: u64) {
        self.entries = self.entries.split_off(&(index + 1));
        let kept = self.cache.split_off(&(index + 1));
        for (_, (_, bytes)) in std::mem::replace(&mut self.cache, kept) {
            self.cached_bytes -= bytes;
        }
    }
}

/// The raft log store; cheap to clone (clones share the log and the flusher's queue).
#[derive(Clone, Debug)]
pub struct LogStore {
    wal: Wal,
    /// The state store, made durable before the log that could replay it is purged.
    disk: Disk,
    log: Arc<Mutex<Log>>,
    flusher: tokio::sync::mpsc::UnboundedSender<LogFlushed<TypeConfig>>,
    metrics: DiskMetrics,
    /// The committed index among etcd's proposal metrics.
    proposals: ProposalMetrics,
    /// The state machine this log feeds, once the node has opened both: a purge waits for it
    /// to have applied what is purged.
    machine: Arc<OnceLock<StateMachine>>,
}

/// Group commit; see the module docs. An append is only queued after its records were written,
/// so the sync that follows covers it.
async fn flush_loop(
    wal: Wal,
    fsync: Histogram,
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
            timed(&fsync, wal.sync()).await
        };
        if let Err(e) = &synced {
            tracing::error!("the raft log cannot be synced: {e}");
        }
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
    /// Opens the log in `disk`'s WAL directory (segments of `segment_bytes`), reading back what
    /// it holds; spawns the flusher, which ends when the last clone is dropped. Fails if the WAL
    /// is corrupt.
    pub async fn open(disk: Disk, segment_bytes: u64) -> io::Result<Self> {
        if super::legacy::present(&disk)? {
            let dir = disk.wal_dir();
            for name in dir.list()? {
                // Left by an interrupted move: it starts over.
                dir.remove(&name).await?;
            }
            let (wal, _) = Wal::open(dir, segment_bytes).await?;
            super::legacy::migrate(&disk, &wal).await?;
        }
        let (wal, rec) = Wal::open(disk.wal_dir(), segment_bytes).await?;
        let (flusher, queue) = tokio::sync::mpsc::unbounded_channel();
        let metrics = DiskMetrics::default();
        tokio::spawn(flush_loop(wal.clone(), metrics.wal_fsync.clone(), queue));
        let proposals = ProposalMetrics::default();
        proposals
            .committed
            .set(rec.state.committed.map_or(0, |c| c.index as i64));
        Ok(LogStore {
            wal,
            disk,
            log: Arc::new(Mutex::new(Log {
                entries: rec.entries,
                state: rec.state,
                cache_limit: CACHE_BYTES,
                ..Default::default()
            })),
            flusher,
            metrics,
            proposals,
            machine: Arc::new(OnceLock::new()),
        })
    }

    /// Ties this log to the state machine it feeds (see [`RaftLogStorage::purge`] below).
    pub fn feeds(&self, machine: StateMachine) {
        let _ = self.machine.set(machine);
    }

    /// The latency histograms of this log's fsyncs and of the state store's commits.
    pub fn disk_metrics(&self) -> DiskMetrics {
        self.metrics.clone()
    }

    /// etcd's proposal metrics, whose committed index this log keeps current.
    pub fn proposal_metrics(&self) -> ProposalMetrics {
        self.proposals.clone()
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes entries into the WAL (not yet durable) and into the in-memory log.
    async fn write_entries(
        &self,
        entries: impl IntoIterator<Item = Entry<TypeConfig>>,
    ) -> io::Result<()> {
        let records: Vec<Record> = entries.into_iter().map(Record::Entry).collect();
        let written = self.wal.write_frames(&records).await?;
        {
            let mut log = self.log();
            for (r, (loc, frame)) in records.into_iter().zip(written) {
                let Record::Entry(e) = r else { unreachable!() };
                let index = e.log_id.index;
                // Cached as decoded from its own record, not as received: a request's bytes may
                // be slices of network buffers many times their size, which the cache (and the
                // store the entry is applied to) would otherwise keep alive.
                let e = match super::wal::frame::read(&frame, 0) {
                    super::wal::frame::At::Record { kind, payload, .. } => {
                        match Record::decode(kind, payload)? {
                            Record::Entry(own) => own,
                            _ => unreachable!("an entry was written"),
                        }
                    }
                    _ => unreachable!("a frame just written reads back"),
                };
                // An append continues the log; one at an index the log has replaces that
                // suffix, as recovery reads it back.
                if log
                    .entries
                    .keys()
                    .next_back()
                    .is_some_and(|last| index <= *last)
                {
                    log.remove_from(index);
                }
                assert!(
                    log.entries
                        .keys()
                        .next_back()
                        .is_none_or(|last| index == last + 1),
                    "log indices are contiguous"
                );
                log.entries.insert(
                    index,
                    Located {
                        log_id: e.log_id,
                        loc,
                    },
                );
                log.cached_bytes += u64::from(loc.len);
                log.cache.insert(index, (e, u64::from(loc.len)));
            }
            while log.cached_bytes > log.cache_limit && log.cache.len() > 1 {
                let (_, (_, bytes)) = log.cache.pop_first().expect("not empty");
                log.cached_bytes -= bytes;
            }
        }
        Ok(())
    }

    /// The index of the last purged entry (0 if none): the state machine must have applied at
    /// least this far, or the entries it lacks are gone.
    pub fn purged_index(&self) -> Option<u64> {
        self.log().state.purged.map(|p| p.index)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        let wanted: Vec<(u64, Option<Entry<TypeConfig>>, Located)> = {
            let log = self.log();
            log.entries
                .range(range)
                .map(|(i, l)| (*i, log.cache.get(i).map(|(e, _)| e.clone()), *l))
                .collect()
        };
        let mut out = Vec::with_capacity(wanted.len());
        for (index, cached, located) in wanted {
            out.push(match cached {
                Some(e) => e,
                None => match self.wal.read(located.loc) {
                    Ok(Record::Entry(e)) if e.log_id == located.log_id => e,
                    Ok(_) => {
                        return Err(StorageIOError::read_logs(&io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("wal: the record of entry {index} is not that entry"),
                        ))
                        .into())
                    }
                    Err(e) => return Err(StorageIOError::read_logs(&e).into()),
                },
            });
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let log = self.log();
        let last_purged = log.state.purged;
        let last = log.entries.values().next_back().map(|l| l.log_id);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let io = async {
            self.wal.write(&[Record::Vote(*vote)]).await?;
            timed(&self.metrics.wal_fsync, self.wal.sync()).await
        };
        io.await.map_err(|e| StorageIOError::write_vote(&e))?;
        self.log().state.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        // Raft's durable state is the term and who we voted for; openraft's extra "committed" bit
        // would let a restarted leader resume at once in its old term, with a commit index that
        // may lag what it acknowledged before the crash (commits are not synced), and so hand
        // out stale read indexes. The simulator's nemesis found exactly that. Restart every
        // member as a follower instead: a new election in a higher term commits a fresh entry
        // before any read index is served. Voting safety is unchanged (same term, same vote).
        let vote = self.log().state.vote;
        Ok(vote.map(|v| Vote {
            committed: false,
            ..v
        }))
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        // Not synced on its own: it rides along with the next sync, and a lower value after a
        // crash only makes the restart re-apply less at once.
        self.wal
            .write(&[Record::Committed(committed)])
            .await
            .map_err(write_err)?;
        self.log().state.committed = committed;
        self.proposals
            .committed
            .set(committed.map_or(0, |c| c.index as i64));
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.log().state.committed)
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
        self.write_entries(entries).await.map_err(write_err)?;
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
        self.wal
            .write(&[Record::Truncate(log_id.index)])
            .await
            .map_err(write_err)?;
        self.log().remove_from(log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        // Never past what the state machine has applied: openraft 0.9 purges the log a received
        // snapshot covers while its state machine task may still be installing it (or failing
        // to: a disk error stops raft), and a restart must find the entries that replay up to
        // the applied state. So wait for the install; if it fails, so does the purge.
        if let Some(machine) = self.machine.get() {
            machine
                .wait_applied(log_id.index)
                .await
                .map_err(write_err)?;
        }
        // Whatever the state machine applied up to here must be durable before the log that
        // could replay it goes away.
        timed(&self.metrics.backend_commit, self.disk.sync())
            .await
            .map_err(write_err)?;
        let disagrees = {
            let log = self.log();
            let at = log.entries.get(&log_id.index);
            at.is_some_and(|l| l.log_id != log_id)
        };
        if disagrees {
            // The log here disagrees with what is purged (the state machine is ahead of it, so
            // this is another history): nothing after it follows on; raft sends what does.
            self.wal
                .write(&[Record::Truncate(log_id.index)])
                .await
                .map_err(write_err)?;
            self.log().remove_from(log_id.index);
        }
        self.wal.purge(log_id).await.map_err(write_err)?;
        let mut log = self.log();
        log.remove_through(log_id.index);
        log.state.purged = Some(log_id);
        Ok(())
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::io::disk::SimDisk;
    use crate::proto::detcdpb::raft_request::Request as Req;
    use crate::proto::detcdpb::RaftRequest;
    use crate::proto::etcdserverpb::PutRequest;
    use crate::raft::types::Command;

    fn put(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command(RaftRequest::anonymous(Req::Put(PutRequest {
                key: format!("k{index}").into_bytes().into(),
                value: vec![index as u8; 300].into(),
                ..Default::default()
            })))),
        }
    }

    #[tokio::test]
    async fn entries_evicted_from_the_cache_are_read_back_from_the_wal() {
        let disk = Disk::Sim(SimDisk::new());
        let mut store = LogStore::open(disk.clone(), 8 << 10).await.unwrap();
        store.log().cache_limit = 2_000;
        for i in 0..40 {
            store.write_entries([put(i)]).await.unwrap();
        }
        assert!(store.log().cache.len() < 10, "most entries left the cache");
        let back = store.try_get_log_entries(0..40).await.unwrap();
        assert_eq!(back, (0..40).map(put).collect::<Vec<_>>());
        store
            .truncate(LogId::new(CommittedLeaderId::new(1, 1), 30))
            .await
            .unwrap();
        store
            .purge(LogId::new(CommittedLeaderId::new(1, 1), 9))
            .await
            .unwrap();
        let back = store.try_get_log_entries(0..40).await.unwrap();
        assert_eq!(back, (10..30).map(put).collect::<Vec<_>>());
    }
}
