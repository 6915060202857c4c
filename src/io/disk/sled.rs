//! The production disk: a sled database (`member/db`) and the write-ahead log's directory
//! (`member/wal`) in the data directory.
//!
//! Writes to sled happen on a writer thread of their own, off the apply path: the state store
//! is not what makes a write durable (the WAL is), and sled's tree inserts and log
//! serialization cost as much as the rest of a write. The writer applies queued batches in
//! order, merging whatever queued meanwhile into one sled batch (atomic, so a crash still leaves
//! a prefix). Reads and syncs first wait for every write issued before them, so the disk still
//! reads back what was written; a failed write fails every later call.

use std::io;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use bytes::Bytes;

use super::{WriteBatch, WriteOp};
use crate::io::fs::real::RealDir;

/// Batches waiting for the writer, at most; a writer further behind makes `write` wait.
const MAX_QUEUED: usize = 256;

#[derive(Default)]
struct Queue {
    batches: Vec<WriteBatch>,
    /// Batches handed to `write` so far.
    submitted: u64,
    /// Batches applied to sled so far. Invariant: `written <= submitted`.
    written: u64,
    /// The first failure; sticky.
    failed: Option<(io::ErrorKind, String)>,
    closed: bool,
}

struct Writer {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Writer {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, q: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        self.changed.wait(q).unwrap_or_else(|p| p.into_inner())
    }

    /// Applies queued batches until the disk is dropped.
    fn run(self: Arc<Self>, db: sled::Db) {
        loop {
            let batches = {
                let mut q = self.lock();
                while q.batches.is_empty() && !q.closed {
                    q = self.wait(q);
                }
                if q.batches.is_empty() {
                    return;
                }
                std::mem::take(&mut q.batches)
            };
            let n = batches.len() as u64;
            let mut merged = sled::Batch::default();
            for batch in batches {
                for op in batch.ops {
                    match op {
                        WriteOp::Put(k, v) => merged.insert(k.as_ref(), v.as_ref()),
                        WriteOp::Delete(k) => merged.remove(k.as_ref()),
                    }
                }
            }
            let result = db.apply_batch(merged);
            let mut q = self.lock();
            q.written += n;
            if let Err(e) = result {
                let e = to_io(e);
                tracing::error!("the state store cannot be written: {e}");
                q.failed.get_or_insert((e.kind(), e.to_string()));
            }
            drop(q);
            self.changed.notify_all();
        }
    }

    fn failure(q: &Queue) -> io::Result<()> {
        match &q.failed {
            Some((kind, msg)) => Err(io::Error::new(*kind, msg.clone())),
            None => Ok(()),
        }
    }

    /// Waits until every batch submitted before the call is in sled.
    fn drain(&self) -> io::Result<()> {
        let mut q = self.lock();
        let target = q.submitted;
        while q.written < target && q.failed.is_none() {
            q = self.wait(q);
        }
        Self::failure(&q)
    }
}

struct Inner {
    db: sled::Db,
    wal: RealDir,
    writer: Arc<Writer>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.writer.lock().closed = true;
        self.writer.changed.notify_all();
    }
}

/// A sled database (every component shares its default tree) and the WAL directory; cheap to
/// clone.
#[derive(Clone)]
pub struct SledDisk {
    inner: Arc<Inner>,
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
        let writer = Arc::new(Writer {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
        });
        let (w, d) = (writer.clone(), db.clone());
        // The seam owns its threads: this one only ever runs sled's (blocking) batch writes.
        #[allow(clippy::disallowed_methods)]
        std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || w.run(d))?;
        Ok(SledDisk {
            inner: Arc::new(Inner {
                db,
                wal: RealDir::open(wal)?,
                writer,
            }),
        })
    }

    pub(super) fn wal_dir(&self) -> RealDir {
        self.inner.wal.clone()
    }

    pub(super) fn get(&self, key: &[u8]) -> io::Result<Option<Bytes>> {
        self.inner.writer.drain()?;
        Ok(self
            .inner
            .db
            .get(key)
            .map_err(to_io)?
            .map(|v| Bytes::copy_from_slice(&v)))
    }

    pub(super) fn scan(&self, start: &[u8], end: &[u8]) -> io::Result<Vec<(Bytes, Bytes)>> {
        self.inner.writer.drain()?;
        self.inner
            .db
            .range(start..end)
            .map(|r| {
                let (k, v) = r.map_err(to_io)?;
                Ok((Bytes::copy_from_slice(&k), Bytes::copy_from_slice(&v)))
            })
            .collect()
    }

    pub(super) fn last_in(&self, start: &[u8], end: &[u8]) -> io::Result<Option<(Bytes, Bytes)>> {
        self.inner.writer.drain()?;
        match self.inner.db.range(start..end).next_back() {
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
        let w = &self.inner.writer;
        let mut q = w.lock();
        while q.batches.len() >= MAX_QUEUED && q.failed.is_none() {
            q = w.wait(q);
        }
        Writer::failure(&q)?;
        q.batches.push(batch);
        q.submitted += 1;
        drop(q);
        w.changed.notify_all();
        Ok(())
    }

    pub(super) async fn sync(&self) -> io::Result<()> {
        let inner = self.inner.clone();
        let flushed = tokio::task::spawn_blocking(move || {
            inner.writer.drain()?;
            inner.db.flush().map(|_| ()).map_err(to_io)
        })
        .await;
        match flushed {
            Ok(r) => r,
            Err(e) => Err(io::Error::other(format!("flush task: {e}"))),
        }
    }

    pub(super) fn size_on_disk(&self) -> u64 {
        self.inner.db.size_on_disk().unwrap_or(0)
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
