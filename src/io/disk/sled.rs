//! The production disk: a sled database in the data directory.

use std::io;
use std::path::Path;

use bytes::Bytes;

use super::{WriteBatch, WriteOp};

/// A sled database; every component shares its default tree.
#[derive(Clone)]
pub struct SledDisk {
    db: sled::Db,
}

fn to_io(e: sled::Error) -> io::Error {
    match e {
        sled::Error::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

impl SledDisk {
    /// Opens (or creates) the database under `dir`.
    pub fn open(dir: &Path) -> io::Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(256 << 20)
            .open()
            .map_err(to_io)?;
        Ok(SledDisk { db })
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

/// Opens the production disk for a member's data directory (`<data-dir>/member/db`), creating
/// directories as etcd does.
pub fn open_data_dir(data_dir: &str) -> io::Result<super::Disk> {
    let dir = Path::new(data_dir).join("member");
    std::fs::create_dir_all(&dir)?;
    Ok(super::Disk::Sled(SledDisk::open(&dir.join("db"))?))
}
