//! The production disk: a sled database (`member/db`) and the write-ahead log's directory
//! (`member/wal`) in the data directory.

use std::io;
use std::path::Path;

use bytes::Bytes;

use super::{WriteBatch, WriteOp};
use crate::io::fs::real::RealDir;

/// A sled database (every component shares its default tree) and the WAL directory.
#[derive(Clone)]
pub struct SledDisk {
    db: sled::Db,
    wal: RealDir,
}

fn to_io(e: sled::Error) -> io::Error {
    match e {
        sled::Error::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

impl SledDisk {
    /// Opens (or creates) the database at `db` and the WAL directory `wal`.
    pub fn open(db: &Path, wal: &Path) -> io::Result<Self> {
        remove_unfinished_snapshots(db)?;
        let db = sled::Config::new()
            .path(db)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(32 << 20)
            .open()
            .map_err(to_io)?;
        Ok(SledDisk {
            db,
            wal: RealDir::open(wal)?,
        })
    }

    pub(super) fn wal_dir(&self) -> RealDir {
        self.wal.clone()
    }

    pub(super) fn get(&self, key: &[u8]) -> io::Result<Option<Bytes>> {
        Ok(self
            .db
            .get(key)
            .map_err(to_io)?
            .map(|v| Bytes::copy_from_slice(&v)))
    }

    pub(super) fn scan(&self, start: &[u8], end: &[u8]) -> io::Result<Vec<(Bytes, Bytes)>> {
        self.db
            .range(start..end)
            .map(|r| {
                let (k, v) = r.map_err(to_io)?;
                Ok((Bytes::copy_from_slice(&k), Bytes::copy_from_slice(&v)))
            })
            .collect()
    }

    pub(super) fn last_in(&self, start: &[u8], end: &[u8]) -> io::Result<Option<(Bytes, Bytes)>> {
        match self.db.range(start..end).next_back() {
            None => Ok(None),
            Some(r) => {
                let (k, v) = r.map_err(to_io)?;
                Ok(Some((
                    Bytes::copy_from_slice(&k),
                    Bytes::copy_from_slice(&v),
                )))
            }
        }
    }

    pub(super) fn write(&self, batch: WriteBatch) -> io::Result<()> {
        let mut b = sled::Batch::default();
        for op in batch.ops {
            match op {
                WriteOp::Put(k, v) => b.insert(k.as_ref(), v.as_ref()),
                WriteOp::Delete(k) => b.remove(k.as_ref()),
            }
        }
        self.db.apply_batch(b).map_err(to_io)
    }

    pub(super) async fn sync(&self) -> io::Result<()> {
        let db = self.db.clone();
        match tokio::task::spawn_blocking(move || db.flush()).await {
            Ok(r) => r.map(|_| ()).map_err(to_io),
            Err(e) => Err(io::Error::other(format!("flush task: {e}"))),
        }
    }

    pub(super) fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

/// Removes the snapshot files sled left unfinished (`snap.*.generating`). sled writes its
/// startup snapshot under that name and renames it when complete; an open that hits a full disk
/// leaves an empty one behind, which the next open then fails to read ("Read corrupted data") —
/// a member that could not start on a full disk must start once space is freed.
fn remove_unfinished_snapshots(db: &Path) -> io::Result<()> {
    let entries = match std::fs::read_dir(db) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %e.path().display(), "removing an unfinished sled snapshot");
            std::fs::remove_file(e.path())?;
        }
    }
    Ok(())
}

/// Opens the production disk for a member's data directory (`<data-dir>/member/db`), creating
/// directories as etcd does.
pub fn open_data_dir(data_dir: &str) -> io::Result<super::Disk> {
    let dir = Path::new(data_dir).join("member");
    std::fs::create_dir_all(&dir)?;
    Ok(super::Disk::Sled(SledDisk::open(
        &dir.join("db"),
        &dir.join("wal"),
    )?))
}
