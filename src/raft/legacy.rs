//! Data dirs written before the WAL kept the raft log in the state store (`l` + index →
//! entry; `r/vote`, `r/committed`, `r/purged` → JSON). At the first start with a WAL they are
//! moved into it, synced, and only then removed from the state store, so a crash halfway
//! leaves them in one place or both (and a later start finishes the move).

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
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
    }
}

/// Moves a pre-WAL raft log from `disk` into `wal` (which must hold no entries yet). Returns
/// whether there was one.
pub async fn migrate(disk: &Disk, wal: &Wal) -> io::Result<bool> {
    let entries = disk.scan(LOG_PREFIX, &prefix_end(LOG_PREFIX))?;
    let vote: Option<Vote<u64>> = json(disk, VOTE)?;
    if entries.is_empty() && vote.is_none() {
        return Ok(false);
    }
    let purged: Option<LogId<u64>> = json(disk, PURGED)?;
    let committed: Option<Option<LogId<u64>>> = json(disk, COMMITTED)?;
    let mut records = Vec::new();
    if let Some(p) = purged {
        records.push(Record::Purge(p));
    }
    for (_, v) in &entries {
        records.push(Record::Entry(decode_entry(v)?));
    }
    if let Some(v) = vote {
        records.push(Record::Vote(v));
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
    Ok(true)
}
