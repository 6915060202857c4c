//! The simulated disk: the twin of [`sled`](super::sled) that the simulator runs on, with the
//! simulated WAL directory ([`SimDir`], its own fault model in its header) beside it.
//!
//! Fault model of the state store — everything it can do to the node above it:
//! - **Crash** ([`SimDisk::crash`]): writes not covered by a completed `sync` are lost. Because
//!   sled recovers a prefix of its write log, the crash keeps a prefix of the unsynced batches
//!   (chosen by the simulator's seed, possibly none) and drops the rest; synced data always survives.
//! - **Write errors**: with probability `write_error`, `write` fails with EIO and changes nothing.
//! - **Sync errors**: with probability `sync_error`, `sync` fails with EIO; nothing becomes durable.
//! - **Slow disk**: each `sync` takes `sync_latency` of simulated time.
//!
//! Reads always see every successful write (the page cache), synced or not.

use std::collections::BTreeMap;
use std::io;
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{WriteBatch, WriteOp};
use crate::io::fs::SimDir;

/// Fault rates of a [`SimDisk`]; all zero by default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DiskFaults {
    /// Probability that one `write` fails.
    pub write_error: f64,
    /// Probability that one `sync` fails.
    pub sync_error: f64,
    /// Simulated time one `sync` takes.
    pub sync_latency: Duration,
}

struct State {
    /// What survives a crash.
    durable: BTreeMap<Bytes, Bytes>,
    /// Batches written since the last completed sync, oldest first, with sequence numbers.
    unsynced: Vec<(u64, WriteBatch)>,
    /// The sequence number of the next batch: a sync covers exactly the batches numbered below
    /// the value it saw when it began.
    next_batch: u64,
    /// `durable` with `unsynced` applied: what reads see.
    view: BTreeMap<Bytes, Bytes>,
    faults: DiskFaults,
    rng: ChaCha8Rng,
    /// Counters the simulator reports.
    stats: DiskStats,
}

/// What happened to a [`SimDisk`] so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Successful writes.
    pub writes: u64,
    /// Successful syncs.
    pub syncs: u64,
    /// Injected write or sync errors.
    pub injected_errors: u64,
    /// Batches lost in crashes.
    pub lost_batches: u64,
}

/// An in-memory disk that survives simulated node restarts (the simulator keeps the handle) and
/// loses unsynced writes on [`SimDisk::crash`].
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
    files: SimDir,
}

impl Default for SimDisk {
    fn default() -> Self {
        Self::new()
    }
}

fn apply(map: &mut BTreeMap<Bytes, Bytes>, batch: &WriteBatch) {
    for op in batch.ops() {
        match op {
            WriteOp::Put(k, v) => {
                map.insert(k.clone(), v.clone());
            }
            WriteOp::Delete(k) => {
                map.remove(k);
            }
        }
    }
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("simulated disk: injected {what} error (EIO)"))
}

impl SimDisk {
    /// An empty disk with no faults; its fault generator is seeded from the seam's RNG.
    pub fn new() -> Self {
        SimDisk {
            state: Arc::new(Mutex::new(State {
                durable: BTreeMap::new(),
                unsynced: Vec::new(),
                next_batch: 0,
                view: BTreeMap::new(),
                faults: DiskFaults::default(),
                rng: crate::io::rand::fork_rng(),
                stats: DiskStats::default(),
            })),
            files: SimDir::new(),
        }
    }

    /// The simulated WAL directory on this disk (crashed with it).
    pub fn files(&self) -> SimDir {
        self.files.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves the maps consistent (every mutation is a
        // single insert/remove), so a poisoned lock is still safe to use.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the fault rates, of the state store and alike of the WAL directory (whose full-disk
    /// and corrupt-read faults are set on [`SimDisk::files`] directly).
    pub fn set_faults(&self, faults: DiskFaults) {
        self.lock().faults = faults;
        let mut fs = self.files.faults();
        fs.write_error = faults.write_error;
        fs.sync_error = faults.sync_error;
        fs.sync_latency = faults.sync_latency;
        self.files.set_faults(fs);
    }

    /// Counters so far.
    pub fn stats(&self) -> DiskStats {
        self.lock().stats
    }

    /// Simulates power loss: keeps a seed-chosen prefix of the unsynced batches, drops the rest
    /// (and crashes the WAL directory, [`SimDir::crash`]). Returns the number of batches lost.
    pub fn crash(&self) -> usize {
        self.files.crash();
        let mut s = self.lock();
        let pending = std::mem::take(&mut s.unsynced);
        let keep = if pending.is_empty() {
            0
        } else {
            s.rng.gen_range(0..=pending.len())
        };
        let mut durable = std::mem::take(&mut s.durable);
        for (_, b) in &pending[..keep] {
            apply(&mut durable, b);
        }
        s.view = durable.clone();
        s.durable = durable;
        let lost = pending.len() - keep;
        s.stats.lost_batches += lost as u64;
        lost
    }

    /// Number of batches written but not yet synced.
    pub fn unsynced_batches(&self) -> usize {
        self.lock().unsynced.len()
    }

    pub(super) fn get(&self, key: &[u8]) -> io::Result<Option<Bytes>> {
        Ok(self.lock().view.get(key).cloned())
    }

    pub(super) fn scan(&self, start: &[u8], end: &[u8]) -> io::Result<Vec<(Bytes, Bytes)>> {
        if start >= end {
            return Ok(Vec::new());
        }
        let s = self.lock();
        Ok(s.view
            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    pub(super) fn last_in(&self, start: &[u8], end: &[u8]) -> io::Result<Option<(Bytes, Bytes)>> {
        if start >= end {
            return Ok(None);
        }
        let s = self.lock();
        Ok(s.view
            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
            .next_back()
            .map(|(k, v)| (k.clone(), v.clone())))
    }

    pub(super) fn write(&self, batch: WriteBatch) -> io::Result<()> {
        let mut s = self.lock();
        let p = s.faults.write_error;
        if p > 0.0 && s.rng.gen_bool(p.min(1.0)) {
            s.stats.injected_errors += 1;
            return Err(injected("write"));
        }
        apply(&mut s.view, &batch);
        let n = s.next_batch;
        s.next_batch += 1;
        s.unsynced.push((n, batch));
        s.stats.writes += 1;
        Ok(())
    }

    pub(super) async fn sync(&self) -> io::Result<()> {
        // Only the batches written before the sync started become durable.
        let (upto, latency) = {
            let s = self.lock();
            (s.next_batch, s.faults.sync_latency)
        };
        if !latency.is_zero() {
            // A device's latency is elapsed time, not what the node's (skewed) clock reads.
            #[allow(clippy::disallowed_methods)]
            tokio::time::sleep(latency).await;
        }
        let mut s = self.lock();
        let p = s.faults.sync_error;
        if p > 0.0 && s.rng.gen_bool(p.min(1.0)) {
            s.stats.injected_errors += 1;
            return Err(injected("fsync"));
        }
        // A crash during the sleep may already have dropped some of them.
        let count = s.unsynced.iter().take_while(|(n, _)| *n < upto).count();
        let done: Vec<(u64, WriteBatch)> = s.unsynced.drain(..count).collect();
        for (_, b) in &done {
            apply(&mut s.durable, b);
        }
        s.stats.syncs += 1;
        Ok(())
    }

    pub(super) fn size(&self) -> u64 {
        self.lock()
            .view
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum()
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;

    fn batch(k: &str, v: &str) -> WriteBatch {
        let mut b = WriteBatch::new();
        b.put(
            Bytes::copy_from_slice(k.as_bytes()),
            Bytes::copy_from_slice(v.as_bytes()),
        );
        b
    }

    #[tokio::test]
    async fn synced_writes_survive_a_crash_unsynced_may_not() {
        let d = SimDisk::new();
        d.write(batch("a", "1")).unwrap();
        d.sync().await.unwrap();
        for i in 0..10 {
            d.write(batch(&format!("b{i}"), "x")).unwrap();
        }
        assert_eq!(d.scan(b"b", b"c").unwrap().len(), 10);
        let lost = d.crash();
        assert_eq!(d.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
        // What survives is a prefix of the unsynced batches.
        let left = d.scan(b"b", b"c").unwrap();
        assert_eq!(left.len(), 10 - lost);
        for (i, (k, _)) in left.iter().enumerate() {
            assert_eq!(k.as_ref(), format!("b{i}").as_bytes());
        }
        assert_eq!(d.unsynced_batches(), 0);
    }

    #[tokio::test]
    async fn injected_errors_change_nothing() {
        let d = SimDisk::new();
        d.set_faults(DiskFaults {
            write_error: 1.0,
            sync_error: 1.0,
            ..Default::default()
        });
        assert!(d.write(batch("a", "1")).is_err());
        assert!(d.get(b"a").unwrap().is_none());
        d.set_faults(DiskFaults {
            sync_error: 1.0,
            ..Default::default()
        });
        d.write(batch("a", "1")).unwrap();
        assert!(d.sync().await.is_err());
        d.crash();
        assert!(d.get(b"a").unwrap().is_none() || d.stats().lost_batches == 0);
    }
}
