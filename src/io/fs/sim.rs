//! The simulated directory: the twin of [`real`](super) that the simulator runs on, kept in
//! memory and surviving simulated restarts (the simulator holds the handle).
//!
//! Fault model — everything it can do to the write-ahead log above it:
//! - **Crash** ([`SimDir::crash`]): of the writes not covered by a completed `sync`, any
//!   seed-chosen subset survives — the page cache writes pages back in any order — and each
//!   survivor may be **torn** (only a prefix of its bytes reached the disk). Synced bytes always
//!   survive. Creating, zeroing and removing files are durable when they return (they sync
//!   themselves).
//! - **Write errors**: with probability `write_error`, a `write_at` fails with EIO and changes
//!   nothing.
//! - **Fsync errors**: with probability `sync_error`, a `sync` fails with EIO and makes nothing
//!   durable.
//! - **Slow fsync**: each `sync` (and each creation) takes `sync_latency` of simulated time.
//! - **Full disk**: creating a file fails with "no space left on device" once the files would
//!   take more than `capacity` bytes; writes inside a created file never do (it is allocated).
//! - **Corrupt reads**: with probability `corrupt_read`, a `read` returns the file with one byte
//!   flipped (the file itself is unchanged: reading again may return it intact).
//!
//! Reads otherwise see every successful write (the page cache), synced or not.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Fault rates of a [`SimDir`]; none by default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FsFaults {
    /// Probability that one `write_at` fails.
    pub write_error: f64,
    /// Probability that one `sync` fails.
    pub sync_error: f64,
    /// Simulated time one `sync` takes.
    pub sync_latency: Duration,
    /// Bytes the files may take in all; `None` for no limit.
    pub capacity: Option<u64>,
    /// Probability that one `read` returns a flipped byte.
    pub corrupt_read: f64,
}

#[derive(Default)]
struct SimFile {
    /// What survives a crash.
    durable: Vec<u8>,
    /// What reads see.
    current: Vec<u8>,
    /// Writes since the last completed sync, oldest first, each with its sequence number.
    pending: Vec<(u64, usize, Vec<u8>)>,
}

struct State {
    files: BTreeMap<String, SimFile>,
    faults: FsFaults,
    rng: ChaCha8Rng,
    /// Bytes lost in crashes (for the simulator's report).
    lost_bytes: u64,
    /// The sequence number of the next write: a sync covers exactly the writes numbered below
    /// the value it saw when it began.
    next_write: u64,
}

/// An in-memory directory; see the module docs.
#[derive(Clone)]
pub struct SimDir {
    state: Arc<Mutex<State>>,
}

impl Default for SimDir {
    fn default() -> Self {
        Self::new()
    }
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("simulated disk: injected {what} error (EIO)"))
}

fn missing(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no file {name}"))
}

impl SimDir {
    /// An empty directory with no faults; its fault generator is seeded from the seam's RNG.
    pub fn new() -> Self {
        SimDir {
            state: Arc::new(Mutex::new(State {
                files: BTreeMap::new(),
                faults: FsFaults::default(),
                rng: crate::io::rand::fork_rng(),
                lost_bytes: 0,
                next_write: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the fault rates.
    pub fn set_faults(&self, faults: FsFaults) {
        self.lock().faults = faults;
    }

    /// The fault rates in force.
    pub fn faults(&self) -> FsFaults {
        self.lock().faults
    }

    /// Bytes of unsynced writes lost in crashes so far.
    pub fn lost_bytes(&self) -> u64 {
        self.lock().lost_bytes
    }

    /// Simulates power loss: per file, each unsynced write is lost, survives whole, or survives
    /// torn (a prefix of its bytes), as the seed decides; synced bytes always survive.
    pub fn crash(&self) {
        let mut guard = self.lock();
        let s = &mut *guard;
        for f in s.files.values_mut() {
            for (_, at, data) in std::mem::take(&mut f.pending) {
                let n = match s.rng.gen_range(0..3) {
                    0 => 0,
                    1 => data.len(),
                    _ => s.rng.gen_range(0..=data.len()),
                };
                f.durable[at..at + n].copy_from_slice(&data[..n]);
                s.lost_bytes += (data.len() - n) as u64;
            }
            f.current = f.durable.clone();
        }
    }

    pub(super) fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.lock().files.keys().cloned().collect())
    }

    pub(super) fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let mut guard = self.lock();
        let s = &mut *guard;
        let mut data = s
            .files
            .get(name)
            .ok_or_else(|| missing(name))?
            .current
            .clone();
        let p = s.faults.corrupt_read;
        if p > 0.0 && !data.is_empty() && s.rng.gen_bool(p.min(1.0)) {
            let at = s.rng.gen_range(0..data.len());
            data[at] ^= 1 << s.rng.gen_range(0..8);
        }
        Ok(data)
    }

    pub(super) fn read_at(&self, name: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let s = self.lock();
        let f = s.files.get(name).ok_or_else(|| missing(name))?;
        let at = offset as usize;
        f.current
            .get(at..at + len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("read past the end of {name}"),
                )
            })
    }

    async fn device_latency(&self) {
        let latency = self.lock().faults.sync_latency;
        if !latency.is_zero() {
            // A device's latency is elapsed time, not what the node's (skewed) clock reads.
            #[allow(clippy::disallowed_methods)]
            tokio::time::sleep(latency).await;
        }
    }

    pub(super) async fn create(&self, name: &str, len: u64, head: &[u8]) -> io::Result<()> {
        self.device_latency().await;
        let mut s = self.lock();
        if s.files.contains_key(name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("file {name} exists"),
            ));
        }
        let used: u64 = s.files.values().map(|f| f.durable.len() as u64).sum();
        if s.faults.capacity.is_some_and(|c| used + len > c) {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "simulated disk: no space left on device",
            ));
        }
        let mut content = vec![0u8; len as usize];
        content[..head.len()].copy_from_slice(head);
        s.files.insert(
            name.to_string(),
            SimFile {
                durable: content.clone(),
                current: content,
                pending: Vec::new(),
            },
        );
        Ok(())
    }

    pub(super) fn write_at(&self, name: &str, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut guard = self.lock();
        let s = &mut *guard;
        let p = s.faults.write_error;
        if p > 0.0 && s.rng.gen_bool(p.min(1.0)) {
            return Err(injected("write"));
        }
        let f = s.files.get_mut(name).ok_or_else(|| missing(name))?;
        let at = offset as usize;
        if at + data.len() > f.current.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("write past the allocated end of {name}"),
            ));
        }
        f.current[at..at + data.len()].copy_from_slice(data);
        f.pending.push((s.next_write, at, data.to_vec()));
        s.next_write += 1;
        Ok(())
    }

    pub(super) async fn sync(&self, name: &str) -> io::Result<()> {
        // Only the writes issued before the sync started become durable.
        let upto = {
            let s = self.lock();
            s.files.get(name).ok_or_else(|| missing(name))?;
            s.next_write
        };
        self.device_latency().await;
        let mut guard = self.lock();
        let s = &mut *guard;
        let p = s.faults.sync_error;
        if p > 0.0 && s.rng.gen_bool(p.min(1.0)) {
            return Err(injected("fsync"));
        }
        // A crash or a removal during the latency may have changed the file meanwhile.
        let Some(f) = s.files.get_mut(name) else {
            return Err(missing(name));
        };
        let count = f.pending.iter().take_while(|(n, _, _)| *n < upto).count();
        for (_, at, data) in f.pending.drain(..count) {
            f.durable[at..at + data.len()].copy_from_slice(&data);
        }
        Ok(())
    }

    pub(super) async fn zero_from(&self, name: &str, offset: u64) -> io::Result<()> {
        self.device_latency().await;
        let mut s = self.lock();
        let f = s.files.get_mut(name).ok_or_else(|| missing(name))?;
        let at = (offset as usize).min(f.current.len());
        f.pending.clear();
        f.current[at..].fill(0);
        f.durable = f.current.clone();
        Ok(())
    }

    pub(super) async fn remove(&self, name: &str) -> io::Result<()> {
        self.lock()
            .files
            .remove(name)
            .ok_or_else(|| missing(name))?;
        Ok(())
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn synced_bytes_survive_a_crash_and_unsynced_writes_may_be_lost_or_torn() {
        let d = SimDir::new();
        d.create("f", 64, b"H").await.unwrap();
        d.write_at("f", 1, b"synced").unwrap();
        d.sync("f").await.unwrap();
        for i in 0..8u8 {
            d.write_at("f", 7 + i as u64 * 4, &[i + 1; 4]).unwrap();
        }
        d.crash();
        let after = d.read("f").unwrap();
        assert_eq!(&after[..7], b"Hsynced");
        // Each unsynced write is gone, whole, or a prefix of itself — never anything else.
        for (i, w) in after[7..39].chunks(4).enumerate() {
            let kept = w.iter().take_while(|b| **b != 0).count();
            assert!(w[kept..].iter().all(|b| *b == 0), "{w:?}");
            assert!(w[..kept].iter().all(|b| *b == i as u8 + 1), "{w:?}");
        }
    }

    #[tokio::test]
    async fn a_full_disk_refuses_new_files_and_failed_syncs_keep_nothing() {
        let d = SimDir::new();
        d.set_faults(FsFaults {
            capacity: Some(100),
            ..Default::default()
        });
        d.create("a", 60, b"").await.unwrap();
        let full = d.create("b", 60, b"").await.unwrap_err();
        assert_eq!(full.kind(), io::ErrorKind::StorageFull);
        d.set_faults(FsFaults {
            sync_error: 1.0,
            ..Default::default()
        });
        d.write_at("a", 0, b"x").unwrap();
        assert!(d.sync("a").await.is_err());
        // Forced to lose everything unsynced: the crash may keep a prefix, never more.
        d.crash();
        let a = d.read("a").unwrap();
        assert!(a[0] == 0 || a[0] == b'x');
    }
}
