//! The raft log store on the write-ahead log ([`wal`](super::wal)): entries, the vote, the
//! committed index, truncations and purges are WAL records; the entries since the last purge
//! are also kept in memory (etcd's raft keeps them in memory too), so reads never touch the
//! disk.
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
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote};

use crate::io::Disk;

use super::types::TypeConfig;
use super::wal::{RaftState, Record, Wal};

pub use super::codec::{decode_entry, encode_entry};

fn write_err(e: io::Error) -> StorageError<u64> {
    StorageIOError::write_logs(&e).into()
}

/// What the log holds, in memory.
#[derive(Debug, Default)]
struct Log {
    /// Entries after the purge point, by index. Invariant: contiguous.
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    state: RaftState,
}

/// The raft log store; cheap to clone (clones share the log and the flusher's queue).
#[derive(Clone, Debug)]
pub struct LogStore {
    wal: Wal,
    /// The state store, made durable before the log that could replay it is purged.
    disk: Disk,
    log: Arc<Mutex<Log>>,
    flusher: tokio::sync::mpsc::UnboundedSender<LogFlushed<TypeConfig>>,
}

/// Group commit; see the module docs. An append is only queued after its records were written,
/// so the sync that follows covers it.
async fn flush_loop(
    wal: Wal,
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
            wal.sync().await
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
        let (mut wal, mut rec) = Wal::open(disk.wal_dir(), segment_bytes).await?;
        let fresh = rec.entries.is_empty() && rec.state.vote.is_none();
        if fresh && super::legacy::migrate(&disk, &wal).await? {
            // Read back what was moved, as any later start will.
            (wal, rec) = Wal::open(disk.wal_dir(), segment_bytes).await?;
        }
        let (flusher, queue) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(flush_loop(wal.clone(), queue));
        Ok(LogStore {
            wal,
            disk,
            log: Arc::new(Mutex::new(Log {
                entries: rec.entries,
                state: rec.state,
            })),
            flusher,
        })
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
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
        Ok(self
            .log()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let log = self.log();
        let last_purged = log.state.purged;
        let last = log.entries.values().next_back().map(|e| e.log_id);
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
            self.wal.sync().await
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
        Ok(vote.map(|v| Vote::new(v.leader_id.term, v.leader_id.node_id)))
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
        let records: Vec<Record> = entries.into_iter().map(Record::Entry).collect();
        self.wal.write(&records).await.map_err(write_err)?;
        {
            let mut log = self.log();
            for r in records {
                let Record::Entry(e) = r else { unreachable!() };
                let index = e.log_id.index;
                // Appends continue the log, or replace its suffix after a truncation.
                assert!(
                    log.entries
                        .keys()
                        .next_back()
                        .is_none_or(|last| index == last + 1),
                    "log indices are contiguous"
                );
                log.entries.insert(index, e);
            }
        }
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
        self.log().entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        // Whatever the state machine applied up to here must be durable before the log that
        // could replay it goes away.
        self.disk.sync().await.map_err(write_err)?;
        self.wal.purge(log_id).await.map_err(write_err)?;
        let mut log = self.log();
        log.entries = log.entries.split_off(&(log_id.index + 1));
        log.state.purged = Some(log_id);
        Ok(())
    }
}
