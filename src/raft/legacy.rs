//! Data dirs written before the WAL kept the raft log in the state store (`l` + index →
//! entry; `r/vote`, `r/committed`, `r/purged` → JSON). At the first start with a WAL they are
//! moved into it, synced, and only then removed from the state store. As long as they are
//! still in the state store the move has not finished: whatever WAL there is was made by an
//! interrupted move, and the move starts over on an empty WAL.

use std::io;

use bytes::Bytes;
use openraft::{LogId, Vote};

use crate::io::disk::{prefix_end, WriteBatch};
use crate::io::Disk;

use super::codec::decode_entry;
use super::wal::{Record, Wal};

const LOG_PREFIX: &[u8] = b"l";
const VOTE: &[u8] = b"r/vote";
const COMMITTED: &[u8] = b"r/committed";
const PURGED: &[u8] = b"r/purged";

fn json<T: serde::de::DeserializeOwned>(disk: &Disk, key: &[u8]) -> io::Result<Option<T>> {
    match disk.get(key)? {
        None => Ok(None),
        Some(v) => super::compat::from_json(&v)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
    }
}

/// Whether `disk` still holds a pre-WAL raft log.
pub fn present(disk: &Disk) -> io::Result<bool> {
    Ok(disk.get(VOTE)?.is_some()
        || disk.get(PURGED)?.is_some()
        || disk.last_in(LOG_PREFIX, &prefix_end(LOG_PREFIX))?.is_some())
}

/// Moves a pre-WAL raft log from `disk` into `wal`, which must be empty.
pub async fn migrate(disk: &Disk, wal: &Wal) -> io::Result<()> {
    let entries = disk.scan(LOG_PREFIX, &prefix_end(LOG_PREFIX))?;
    let vote: Option<Vote<u64>> = json(disk, VOTE)?;
    let purged: Option<LogId<u64>> = json(disk, PURGED)?;
    let committed: Option<Option<LogId<u64>>> = json(disk, COMMITTED)?;
    let mut records = Vec::new();
    if let Some(v) = vote {
        records.push(Record::Vote(v));
    }
    if let Some(p) = purged {
        records.push(Record::Purge(p));
    }
    for (_, v) in &entries {
        records.push(Record::Entry(decode_entry(v)?));
    }
    if let Some(c) = committed {
        records.push(Record::Committed(c));
    }
    wal.write(&records).await?;
    wal.sync().await?;
    let mut b = WriteBatch::new();
    for (k, _) in entries {
        b.delete(k);
    }
    for k in [VOTE, COMMITTED, PURGED] {
        b.delete(Bytes::from_static(k));
    }
    disk.write(b)?;
    disk.sync().await?;
    tracing::info!("moved the raft log from the state store into the WAL");
    Ok(())
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use bytes::{BufMut, BytesMut};
    use openraft::storage::RaftLogStorage;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, RaftLogReader};

    use super::*;
    use crate::io::disk::SimDisk;
    use crate::raft::codec::encode_entry;
    use crate::raft::log_store::LogStore;
    use crate::raft::TypeConfig;

    fn legacy_disk(entries: u64) -> Disk {
        let disk = Disk::Sim(SimDisk::new());
        let mut b = WriteBatch::new();
        for i in 0..entries {
            let e = Entry::<TypeConfig> {
                log_id: LogId::new(CommittedLeaderId::new(2, 1), i),
                payload: EntryPayload::Blank,
            };
            let mut k = BytesMut::new();
            k.put_slice(LOG_PREFIX);
            k.put_u64(i);
            b.put(k.freeze(), encode_entry(&e));
        }
        b.put(
            Bytes::from_static(VOTE),
            serde_json::to_vec(&Vote::new(2, 1)).unwrap(),
        );
        disk.write(b).unwrap();
        disk
    }

    #[tokio::test]
    async fn an_old_data_dir_moves_its_log_into_the_wal_once() {
        let disk = legacy_disk(5);
        let mut store = LogStore::open(disk.clone(), 4096).await.unwrap();
        assert!(!present(&disk).unwrap(), "the old records are gone");
        let entries = store.try_get_log_entries(0..10).await.unwrap();
        assert_eq!(entries.len(), 5);
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(2, 1)));
        // A second start reads the WAL alone.
        drop(store);
        let mut store = LogStore::open(disk, 4096).await.unwrap();
        assert_eq!(store.try_get_log_entries(0..10).await.unwrap().len(), 5);
    }

    #[tokio::test]
    async fn an_interrupted_move_starts_over() {
        let disk = legacy_disk(5);
        // A move that wrote part of the WAL and died before removing the old records.
        {
            let (wal, _) = Wal::open(disk.wal_dir(), 4096).await.unwrap();
            let e = Entry::<TypeConfig> {
                log_id: LogId::new(CommittedLeaderId::new(2, 1), 0),
                payload: EntryPayload::Blank,
            };
            wal.write(&[Record::Entry(e)]).await.unwrap();
            wal.sync().await.unwrap();
        }
        let mut store = LogStore::open(disk.clone(), 4096).await.unwrap();
        assert_eq!(store.try_get_log_entries(0..10).await.unwrap().len(), 5);
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(2, 1)));
        assert!(!present(&disk).unwrap());
    }
}
