//! Durable storage as the server sees it — one member's disk, in two parts:
//! - the **state store**: one ordered keyspace with atomic write batches and an explicit `sync`
//!   (the mvcc store, leases, members, the applied index, the member's identity);
//! - a **directory** ([`Dir`]) for the raft write-ahead log's segment files.
//!
//! Two implementations: [`sled`](self::sled) plus a real directory for production, and
//! [`SimDisk`], the simulated twin of both, which keeps synced and unsynced writes apart so a
//! simulated crash loses exactly what a real power cut could lose.

pub mod sim;
#[cfg(not(madsim))]
pub mod sled;

use std::io;

use bytes::Bytes;

pub use sim::{DiskFaults, SimDisk};

use super::fs::Dir;

/// One change in a [`WriteBatch`].
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Set `key` to `value`.
    Put(Bytes, Bytes),
    /// Remove `key` (no error if absent).
    Delete(Bytes),
}

/// A group of changes applied atomically: after a crash either all of them or none are visible.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    ops: Vec<WriteOp>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.ops.push(WriteOp::Put(key.into(), value.into()));
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: impl Into<Bytes>) {
        self.ops.push(WriteOp::Delete(key.into()));
    }

    /// True if the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The changes, in order.
    pub fn ops(&self) -> &[WriteOp] {
        &self.ops
    }
}

/// The node's disk. An enum rather than a trait object so `sync` can be a plain async fn.
#[derive(Clone)]
pub enum Disk {
    /// sled on the local filesystem.
    #[cfg(not(madsim))]
    Sled(self::sled::SledDisk),
    /// The in-memory simulated disk.
    Sim(SimDisk),
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            #[cfg(not(madsim))]
            Disk::Sled(_) => f.write_str("Disk::Sled"),
            Disk::Sim(_) => f.write_str("Disk::Sim"),
        }
    }
}

impl Disk {
    /// Reads one key.
    pub fn get(&self, key: &[u8]) -> io::Result<Option<Bytes>> {
        match self {
            #[cfg(not(madsim))]
            Disk::Sled(d) => d.get(key),
            Disk::Sim(d) => d.get(key),
        }
    }

    /// All entries with `start <= key < end`, in key order.
    pub fn scan(&self, start: &[u8], end: &[u8]) -> io::Result<Vec<(Bytes, Bytes)>> {
        match self {
            #[cfg(not(madsim))]
            Disk::Sled(d) => d.scan(start, end),
            Disk::Sim(d) => d.scan(start, end),
        }
    }

    /// The last entry with `start <= key < end`.
    pub fn last_in(&self, start: &[u8], end: &[u8]) -> io::Result<Option<(Bytes, Bytes)>> {
        match self {
            #[cfg(not(madsim))]
            Disk::Sled(d) => d.last_in(start, end),
            Disk::Sim(d) => d.last_in(start, end),
        }
    }

    /// Applies a batch atomically. Not durable until [`Disk::sync`] returns.
    pub fn write(&self, batch: WriteBatch) -> io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        match self {
            #[cfg(not(madsim))]
            Disk::Sled(d) => d.write(batch),
            Disk::Sim(d) => d.write(batch),
        }
    }

    /// Makes every write issued before this call durable (fsync).
    pub async fn sync(&self) -> io::Result<()> {
        match self {
            #[cfg(not(madsim))]
            Disk::Sled(d) => d.sync().await,
            Disk::Sim(d) => d.sync().await,
        }
    }

    /// The directory of the write-ahead log.
    pub fn wal_dir(&self) -> Dir {
        match self {
            #[cfg(not(madsim))]
            Disk::Sled(d) => Dir::Real(d.wal_dir()),
            Disk::Sim(d) => Dir::Sim(d.files()),
        }
    }

    /// Gives the space of deleted and overwritten data back (Maintenance.Defragment). The
    /// simulated disk holds exactly its live data, so there it has nothing to do.
    pub async fn defragment(&self) -> io::Result<()> {
        match self {
            #[cfg(not(madsim))]
            Disk::Sled(d) => {
                let d = d.clone();
                match tokio::task::spawn_blocking(move || d.defragment()).await {
                    Ok(r) => r,
                    Err(e) => Err(io::Error::other(format!("defragment task: {e}"))),
                }
            }
            Disk::Sim(_) => Ok(()),
        }
    }

    /// Bytes used on disk (approximate), for Maintenance.Status.
    pub fn size_on_disk(&self) -> u64 {
        match self {
            #[cfg(not(madsim))]
            Disk::Sled(d) => d.size_on_disk(),
            Disk::Sim(d) => d.size(),
        }
    }
}

/// The exclusive upper bound of all keys starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}
