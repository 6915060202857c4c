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
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard};

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

    /// Applies queued batches to the current database until the disk is dropped.
    fn run(self: Arc<Self>, db: Arc<RwLock<sled::Db>>) {
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
            let result = read(&db).apply_batch(merged);
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
    /// The database; replaced whole by [`SledDisk::defragment`].
    db: Arc<RwLock<sled::Db>>,
    /// Where the database lives: the path `open` was given, or its alternate after an odd
    /// number of defragmentations.
    active: Mutex<PathBuf>,
    /// The path `open` was given.
    primary: PathBuf,
    wal: RealDir,
    writer: Arc<Writer>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
}

fn read(db: &RwLock<sled::Db>) -> RwLockReadGuard<'_, sled::Db> {
    db.read().unwrap_or_else(|p| p.into_inner())
}

/// The other directory a database at `primary` alternates with when defragmented.
fn alternate(primary: &Path) -> PathBuf {
    let mut name = primary.file_name().unwrap_or_default().to_os_string();
    name.push(".1");
    primary.with_file_name(name)
}

/// The file naming which of the two directories holds the database (absent: `primary`).
fn pointer(primary: &Path) -> PathBuf {
    let mut name = primary.file_name().unwrap_or_default().to_os_string();
    name.push(".active");
    primary.with_file_name(name)
}

/// The directory holding the database at `primary`, and the other one (stale if present: an
/// unfinished or finished-but-not-cleaned defragmentation).
fn active_paths(primary: &Path) -> io::Result<(PathBuf, PathBuf)> {
    let alt = alternate(primary);
    let named = match std::fs::read(pointer(primary)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let alt_name = alt.file_name().unwrap_or_default().to_string_lossy();
    if named == alt_name.as_bytes() {
        Ok((alt, primary.to_path_buf()))
    } else {
        Ok((primary.to_path_buf(), alt))
    }
}

/// How long an open waits for a database this process just closed: sled's own background
/// thread lets go of its file lock shortly after the last handle is dropped.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn open_sled(path: &Path) -> io::Result<sled::Db> {
    remove_unfinished_snapshots(path)?;
    let mut waited = std::time::Duration::ZERO;
    loop {
        let opened = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(32 << 20)
            .open();
        match opened {
            Err(e) if e.to_string().contains("could not acquire lock") && waited < LOCK_WAIT => {
                let pause = std::time::Duration::from_millis(20);
                // The seam owns blocking waits: opening a database blocks anyway.
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(pause);
                waited += pause;
            }
            other => return other.map_err(to_io),
        }
    }
}

fn remove_dir_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.writer.lock().closed = true;
        self.writer.changed.notify_all();
        // The writer holds the database: once it has gone, the last handle is dropped with
        // this disk and sled's lock released, so the same process may open it again.
        if let Some(t) = self.writer_thread.take() {
            let _ = t.join();
        }
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
    /// Opens (or creates) the database at `db` (or where a defragmentation moved it) and the
    /// WAL directory `wal`.
    pub fn open(db: &Path, wal: &Path) -> io::Result<Self> {
        let (active, stale) = active_paths(db)?;
        remove_dir_if_present(&stale)?;
        let sled_db = Arc::new(RwLock::new(open_sled(&active)?));
        let writer = Arc::new(Writer {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
        });
        let (w, d) = (writer.clone(), sled_db.clone());
        // The seam owns its threads: this one only ever runs sled's (blocking) batch writes.
        #[allow(clippy::disallowed_methods)]
        let writer_thread = std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || w.run(d))?;
        Ok(SledDisk {
            inner: Arc::new(Inner {
                db: sled_db,
                active: Mutex::new(active),
                primary: db.to_path_buf(),
                wal: RealDir::open(wal)?,
                writer,
                writer_thread: Some(writer_thread),
            }),
        })
    }

    /// Gives the space of deleted and overwritten data back (etcd's defrag): copies the
    /// database into a fresh one in the alternate directory, switches to it durably (the
    /// pointer file is renamed into place: a crash before leaves the old one in use, after it
    /// the new one), then removes the old. Reads and writes wait meanwhile, as in etcd.
    pub(super) fn defragment(&self) -> io::Result<()> {
        let inner = &self.inner;
        inner.writer.drain()?;
        let mut db = inner.db.write().unwrap_or_else(|p| p.into_inner());
        let mut active = inner.active.lock().unwrap_or_else(|p| p.into_inner());
        let next = if *active == inner.primary {
            alternate(&inner.primary)
        } else {
            inner.primary.clone()
        };
        remove_dir_if_present(&next)?;
        let fresh = open_sled(&next)?;
        let mut batch = sled::Batch::default();
        for (i, r) in db.iter().enumerate() {
            let (k, v) = r.map_err(to_io)?;
            batch.insert(k, v);
            if i % 4096 == 4095 {
                fresh
                    .apply_batch(std::mem::take(&mut batch))
                    .map_err(to_io)?;
            }
        }
        fresh.apply_batch(batch).map_err(to_io)?;
        fresh.flush().map_err(to_io)?;
        let ptr = pointer(&inner.primary);
        let tmp = ptr.with_extension("active.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(next.file_name().unwrap_or_default().as_encoded_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &ptr)?;
        if let Some(parent) = ptr.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        let old = std::mem::replace(&mut *db, fresh);
        let old_path = std::mem::replace(&mut *active, next);
        drop(db);
        drop(old);
        if let Err(e) = remove_dir_if_present(&old_path) {
            tracing::warn!(path = %old_path.display(), "removing the database defragmentation replaced: {e}");
        }
        Ok(())
    }

    pub(super) fn wal_dir(&self) -> RealDir {
        self.inner.wal.clone()
    }

    pub(super) fn get(&self, key: &[u8]) -> io::Result<Option<Bytes>> {
        self.inner.writer.drain()?;
        Ok(read(&self.inner.db)
            .get(key)
            .map_err(to_io)?
            .map(|v| Bytes::copy_from_slice(&v)))
    }

    pub(super) fn scan(&self, start: &[u8], end: &[u8]) -> io::Result<Vec<(Bytes, Bytes)>> {
        self.inner.writer.drain()?;
        read(&self.inner.db)
            .range(start..end)
            .map(|r| {
                let (k, v) = r.map_err(to_io)?;
                Ok((Bytes::copy_from_slice(&k), Bytes::copy_from_slice(&v)))
            })
            .collect()
    }

    pub(super) fn last_in(&self, start: &[u8], end: &[u8]) -> io::Result<Option<(Bytes, Bytes)>> {
        self.inner.writer.drain()?;
        match read(&self.inner.db).range(start..end).next_back() {
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
            read(&inner.db).flush().map(|_| ()).map_err(to_io)
        })
        .await;
        match flushed {
            Ok(r) => r,
            Err(e) => Err(io::Error::other(format!("flush task: {e}"))),
        }
    }

    pub(super) fn size_on_disk(&self) -> u64 {
        read(&self.inner.db).size_on_disk().unwrap_or(0)
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

/// A data dir `etcdctl snapshot restore` wrote (`member/snap/db`, etcd's WAL in `member/wal`) that
/// detcd has not yet taken over: the path of etcd's database file. An operator's runbook restores
/// with etcdctl and starts the member on that dir; detcd takes the data over on its first start:
/// [`prepare_etcd_restore`], open the data dir, restore from the file into it
/// (`crate::backup::restore`), then [`finish_etcd_restore`] — until which a restart starts over.
pub fn etcdctl_restored_db(data_dir: &str) -> Option<PathBuf> {
    let snap = Path::new(data_dir).join("member").join("snap");
    let db = snap.join("db");
    (db.is_file() && !snap.join(RESTORED_MARKER).exists()).then_some(db)
}

/// Written beside etcd's database once detcd has taken it over.
const RESTORED_MARKER: &str = "detcd-restored";
/// Where etcd's WAL is kept once detcd has taken the data dir over.
const ETCD_WAL: &str = "wal.etcd";

/// Clears the way for detcd's files in an etcdctl-restored data dir: etcd's WAL moves to
/// `member/wal.etcd`; whatever an interrupted earlier take-over left is removed.
pub fn prepare_etcd_restore(data_dir: &str) -> io::Result<()> {
    let member = Path::new(data_dir).join("member");
    let wal = member.join("wal");
    if wal.exists() {
        if member.join(ETCD_WAL).exists() {
            // Ours, from an interrupted take-over.
            std::fs::remove_dir_all(&wal)?;
        } else {
            std::fs::rename(&wal, member.join(ETCD_WAL))?;
        }
    }
    let db = member.join("db");
    remove_dir_if_present(&db)?;
    remove_dir_if_present(&alternate(&db))?;
    match std::fs::remove_file(pointer(&db)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    sync_dir(&member)
}

/// Marks the take-over done (the restored disk must be synced).
pub fn finish_etcd_restore(data_dir: &str) -> io::Result<()> {
    let snap = Path::new(data_dir).join("member").join("snap");
    std::fs::File::create(snap.join(RESTORED_MARKER))?.sync_all()?;
    sync_dir(&snap)
}

fn sync_dir(path: &Path) -> io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_all(d: &SledDisk, keys: impl Iterator<Item = u32>, value: &[u8]) {
        let mut b = WriteBatch::new();
        for k in keys {
            b.put(
                Bytes::from(format!("k{k:05}")),
                Bytes::copy_from_slice(value),
            );
        }
        d.write(b).unwrap();
    }

    #[test]
    fn defragment_gives_space_back_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (db, wal) = (dir.path().join("db"), dir.path().join("wal"));
        let d = SledDisk::open(&db, &wal).unwrap();
        // Rewrite a few megabytes several times, keep a little.
        for round in 0..4u8 {
            put_all(&d, 0..1000, &[round; 4096]);
            d.inner.writer.drain().unwrap();
            read(&d.inner.db).flush().unwrap();
        }
        let mut b = WriteBatch::new();
        for k in 10..1000 {
            b.delete(Bytes::from(format!("k{k:05}")));
        }
        d.write(b).unwrap();
        d.inner.writer.drain().unwrap();
        read(&d.inner.db).flush().unwrap();
        let before = d.size_on_disk();
        d.defragment().unwrap();
        let after = d.size_on_disk();
        assert!(after * 4 < before, "{before} -> {after} bytes");
        assert_eq!(d.scan(b"k", b"l").unwrap().len(), 10);
        assert!(alternate(&db).exists() && !db.exists());
        // Writes go on into the new database, and it is the one reopened.
        put_all(&d, 2000..2001, b"after");
        d.inner.writer.drain().unwrap();
        read(&d.inner.db).flush().unwrap();
        drop(d);
        let d = SledDisk::open(&db, &wal).unwrap();
        assert_eq!(d.scan(b"k", b"l").unwrap().len(), 11);
        assert_eq!(d.get(b"k02000").unwrap().as_deref(), Some(&b"after"[..]));
        // Further ones alternate between the two directories.
        d.defragment().unwrap();
        assert!(db.exists() && !alternate(&db).exists());
        d.defragment().unwrap();
        d.defragment().unwrap();
        assert!(db.exists() && !alternate(&db).exists());
        drop(d);
        let d = SledDisk::open(&db, &wal).unwrap();
        assert_eq!(d.scan(b"k", b"l").unwrap().len(), 11);
    }

    #[test]
    fn an_unfinished_defragmentation_is_discarded_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let (db, wal) = (dir.path().join("db"), dir.path().join("wal"));
        let d = SledDisk::open(&db, &wal).unwrap();
        put_all(&d, 0..3, b"v");
        d.inner.writer.drain().unwrap();
        read(&d.inner.db).flush().unwrap();
        drop(d);
        // A crash while copying: the alternate exists, the pointer does not name it.
        std::fs::create_dir_all(alternate(&db)).unwrap();
        std::fs::write(alternate(&db).join("junk"), b"x").unwrap();
        let d = SledDisk::open(&db, &wal).unwrap();
        assert_eq!(d.scan(b"k", b"l").unwrap().len(), 3);
        assert!(!alternate(&db).exists());
    }
}
