//! The key index, reads, and the on-disk layout of the mvcc store.
//!
//! Disk layout (one keyspace shared with the raft log, under these prefixes):
//! - `k` + revision (16 bytes big-endian) + `p`|`t` → the encoded `mvccpb.KeyValue` of a put, or
//!   of a tombstone (key and mod_revision only). Byte order is revision order.
//! - `m/rev` → the current revision; `m/compact` → the compacted revision (both i64 big-endian).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;

use crate::error::Error;
use crate::io::Disk;
use crate::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::proto::etcdserverpb::{RangeRequest, RangeResponse, ResponseHeader};
use crate::proto::mvccpb::KeyValue;

use super::{KeyHistory, Revision};

/// The first byte of every revision record's disk key (then the revision and `p`, or `t` for a
/// tombstone); the value is the `mvccpb.KeyValue`.
pub const REV_PREFIX: &[u8] = b"k";
pub(super) const META_REV: &[u8] = b"m/rev";
pub(super) const META_COMPACT: &[u8] = b"m/compact";

/// The disk key of one revision record.
pub(super) fn record_key(rev: Revision, tombstone: bool) -> Bytes {
    let mut k = BytesMut::with_capacity(18);
    k.put_slice(REV_PREFIX);
    k.put_slice(&rev.to_bytes());
    k.put_u8(if tombstone { b't' } else { b'p' });
    k.freeze()
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

/// The in-memory state behind the lock.
#[derive(Debug, Default)]
pub(super) struct State {
    /// Every key with retained history, in key order.
    pub(super) index: BTreeMap<Bytes, KeyHistory>,
    /// The newest revision. Invariant: never decreases.
    pub(super) current: i64,
    /// Reads below this revision fail with `Compacted`. Invariant: `compacted <= current`, never
    /// decreases.
    pub(super) compacted: i64,
}

/// The keys an etcd `(key, range_end)` pair names, in key order.
///
/// An empty `range_end` is the single key; `"\0"` means every key `>= key`; otherwise
/// `[key, range_end)`.
pub(super) fn keys_in<'a>(
    index: &'a BTreeMap<Bytes, KeyHistory>,
    key: &[u8],
    range_end: &[u8],
) -> Box<dyn DoubleEndedIterator<Item = (&'a Bytes, &'a KeyHistory)> + 'a> {
    if range_end.is_empty() {
        return Box::new(index.get_key_value(key).into_iter());
    }
    let upper = if range_end == [0] {
        Bound::Unbounded
    } else {
        Bound::Excluded(range_end)
    };
    if let Bound::Excluded(end) = upper {
        if end <= key {
            return Box::new(std::iter::empty());
        }
    }
    Box::new(index.range::<[u8], _>((Bound::Included(key), upper)))
}

impl State {
    /// Checks a read revision the way etcd does; 0 (or less) means "now".
    pub(super) fn read_rev(&self, rev: i64) -> Result<i64, Error> {
        if rev > self.current {
            return Err(Error::FutureRevision);
        }
        if rev <= 0 {
            return Ok(self.current);
        }
        if rev < self.compacted {
            return Err(Error::Compacted);
        }
        Ok(rev)
    }

    /// Serves a RangeRequest at the state's current contents. `current` is the revision reads of
    /// "now" use (inside a txn with writes, the txn's own revision).
    pub(super) fn range(&self, r: &RangeRequest, current: i64) -> Result<RangeResponse, Error> {
        let rev = if r.revision <= 0 {
            current
        } else {
            self.read_rev(r.revision)?
        };
        let mut sort_order =
            SortOrder::try_from(r.sort_order).map_err(|_| Error::InvalidSortOption)?;
        let sort_target =
            SortTarget::try_from(r.sort_target).map_err(|_| Error::InvalidSortOption)?;
        if sort_target != SortTarget::Key && sort_order == SortOrder::None {
            // Keys come out ascending already; any other target needs an explicit sort.
            sort_order = SortOrder::Ascend;
        }
        let filtered = r.min_mod_revision != 0
            || r.max_mod_revision != 0
            || r.min_create_revision != 0
            || r.max_create_revision != 0;
        let needs_all = sort_order != SortOrder::None || filtered;
        // Fetch one past the limit to learn whether there is more.
        let fetch = if r.limit > 0 && !needs_all {
            r.limit as usize + 1
        } else {
            usize::MAX
        };

        let mut count = 0i64;
        let mut kvs: Vec<KeyValue> = Vec::new();
        for (_, h) in keys_in(&self.index, &r.key, &r.range_end) {
            if let Some(kv) = h.get(rev) {
                count += 1;
                if !r.count_only && kvs.len() < fetch {
                    kvs.push(kv.clone());
                }
            }
        }
        if r.count_only {
            return Ok(RangeResponse {
                header: header(current),
                kvs: vec![],
                more: false,
                count,
            });
        }
        if filtered {
            kvs.retain(|kv| {
                (r.min_mod_revision == 0 || kv.mod_revision >= r.min_mod_revision)
                    && (r.max_mod_revision == 0 || kv.mod_revision <= r.max_mod_revision)
                    && (r.min_create_revision == 0 || kv.create_revision >= r.min_create_revision)
                    && (r.max_create_revision == 0 || kv.create_revision <= r.max_create_revision)
            });
        }
        if sort_order != SortOrder::None {
            // Stable sorts with the comparison flipped for DESCEND: ties keep ascending key
            // order, as etcd's reverse sort does.
            let desc = sort_order == SortOrder::Descend;
            let by = |o: std::cmp::Ordering| if desc { o.reverse() } else { o };
            match sort_target {
                SortTarget::Key => {
                    if desc {
                        kvs.reverse();
                    }
                }
                SortTarget::Version => kvs.sort_by(|a, b| by(a.version.cmp(&b.version))),
                SortTarget::Create => {
                    kvs.sort_by(|a, b| by(a.create_revision.cmp(&b.create_revision)))
                }
                SortTarget::Mod => kvs.sort_by(|a, b| by(a.mod_revision.cmp(&b.mod_revision))),
                SortTarget::Value => kvs.sort_by(|a, b| by(a.value.cmp(&b.value))),
            }
        }
        let mut more = false;
        if r.limit > 0 && kvs.len() > r.limit as usize {
            kvs.truncate(r.limit as usize);
            more = true;
        }
        if r.keys_only {
            for kv in &mut kvs {
                kv.value = Bytes::new();
            }
        }
        Ok(RangeResponse {
            header: header(current),
            kvs,
            more,
            count,
        })
    }
}

/// The disk record of revision `rev` (a put of `kv`, or a tombstone of `kv.key`), for
/// restoring a snapshot into an empty data dir.
pub fn restore_record(
    batch: &mut crate::io::disk::WriteBatch,
    rev: Revision,
    kv: &KeyValue,
    tombstone: bool,
) {
    let value = if tombstone {
        KeyValue {
            key: kv.key.clone(),
            mod_revision: rev.main,
            ..Default::default()
        }
    } else {
        kv.clone()
    };
    batch.put(record_key(rev, tombstone), value.encode_to_vec());
}

/// The disk records of the current and compacted revisions, for restoring a snapshot.
pub fn restore_meta(batch: &mut crate::io::disk::WriteBatch, current: i64, compacted: i64) {
    batch.put(Bytes::from_static(META_REV), current.to_be_bytes().to_vec());
    batch.put(
        Bytes::from_static(META_COMPACT),
        compacted.to_be_bytes().to_vec(),
    );
}

/// The mvcc store: an index of every key's history, shared by the apply path (one writer at a
/// time) and any number of readers.
#[derive(Debug, Default)]
pub struct Store {
    state: RwLock<State>,
    /// Operations served, for etcd's `etcd_mvcc_*_total` metrics.
    pub(super) counts: OpCounts,
}

/// Operations the store has served since this member started, counted as etcd's mvcc counts
/// them: every range (a txn's included), put and delete-range, and a txn of more than one
/// operation once.
#[derive(Debug, Default)]
pub struct OpCounts {
    pub(super) range: AtomicU64,
    pub(super) put: AtomicU64,
    pub(super) delete: AtomicU64,
    pub(super) txn: AtomicU64,
}

impl OpCounts {
    /// (ranges, puts, deletes, txns) so far.
    pub fn get(&self) -> (u64, u64, u64, u64) {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        (g(&self.range), g(&self.put), g(&self.delete), g(&self.txn))
    }

    pub(super) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts the operations a txn executed (its chosen branches, nested ones included).
    pub(super) fn txn(&self, r: &crate::proto::etcdserverpb::TxnResponse) {
        fn walk(r: &crate::proto::etcdserverpb::TxnResponse, n: &mut [u64; 3]) {
            use crate::proto::etcdserverpb::response_op::Response;
            for op in &r.responses {
                match &op.response {
                    Some(Response::ResponseRange(_)) => n[0] += 1,
                    Some(Response::ResponsePut(_)) => n[1] += 1,
                    Some(Response::ResponseDeleteRange(_)) => n[2] += 1,
                    Some(Response::ResponseTxn(t)) => walk(t, n),
                    None => {}
                }
            }
        }
        let mut n = [0; 3];
        walk(r, &mut n);
        Self::add(&self.range, n[0]);
        Self::add(&self.put, n[1]);
        Self::add(&self.delete, n[2]);
        if n.iter().sum::<u64>() > 1 {
            Self::add(&self.txn, 1);
        }
    }
}

fn read_i64(disk: &Disk, key: &[u8]) -> std::io::Result<i64> {
    Ok(match disk.get(key)? {
        Some(v) if v.len() == 8 => i64::from_be_bytes(v[..].try_into().unwrap()),
        _ => 0,
    })
}

impl Store {
    /// An empty store. Like etcd's, it starts at revision 1, so the first write makes revision 2.
    pub fn new() -> Self {
        Store {
            state: RwLock::new(State {
                current: 1,
                ..Default::default()
            }),
            counts: OpCounts::default(),
        }
    }

    /// Rebuilds the store from what `disk` holds.
    pub fn open(disk: &Disk) -> std::io::Result<Self> {
        let mut state = State {
            current: 1,
            ..Default::default()
        };
        let corrupt =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        for (k, v) in disk.scan(REV_PREFIX, &crate::io::disk::prefix_end(REV_PREFIX))? {
            let rev = Revision::from_bytes(&k[1..]).ok_or_else(|| corrupt("short revision key"))?;
            let kv = KeyValue::decode(v).map_err(|_| corrupt("undecodable revision record"))?;
            let h = state.index.entry(kv.key.clone()).or_default();
            if k.last() == Some(&b't') {
                h.restore_tombstone(rev);
            } else {
                h.put(rev, kv);
            }
            state.current = state.current.max(rev.main);
        }
        state.current = state.current.max(read_i64(disk, META_REV)?);
        state.compacted = read_i64(disk, META_COMPACT)?;
        if state.compacted > state.current {
            return Err(corrupt("compacted revision above the current revision"));
        }
        Ok(Store {
            state: RwLock::new(state),
            counts: OpCounts::default(),
        })
    }

    pub(super) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn write_lock(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The operations served so far (etcd's `etcd_mvcc_*_total`).
    pub fn op_counts(&self) -> &OpCounts {
        &self.counts
    }

    /// Replaces the whole state with what `disk` holds (after a snapshot was installed there).
    pub fn reload(&self, disk: &Disk) -> std::io::Result<()> {
        let fresh = Store::open(disk)?
            .state
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        *self.write_lock() = fresh;
        Ok(())
    }

    /// Runs `f` while no writer can change the store: for consistent snapshots.
    pub fn frozen<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = self.read();
        f()
    }

    /// Serves a range read; the header carries only the revision, for the caller to complete.
    pub fn range(&self, r: &RangeRequest) -> Result<RangeResponse, Error> {
        OpCounts::add(&self.counts.range, 1);
        let s = self.read();
        s.range(r, s.current)
    }

    /// The newest revision.
    pub fn current_revision(&self) -> i64 {
        self.read().current
    }

    /// The compacted revision (0 if never compacted).
    pub fn compacted_revision(&self) -> i64 {
        self.read().compacted
    }

    /// Calls `f` with every retained revision record in revision order (the key, and its
    /// key-value, `None` for a tombstone) and the compacted revision, while no writer can
    /// change the store — so what else `f` reads of the applied state (leases, auth, the applied
    /// index, all changed under the store's write lock) is consistent with them. For snapshots.
    pub fn with_records<R>(
        &self,
        f: impl FnOnce(Vec<(Revision, Bytes, Option<KeyValue>)>, i64) -> R,
    ) -> R {
        let s = self.read();
        let mut records: Vec<_> = s
            .index
            .iter()
            .flat_map(|(key, h)| h.changes().map(move |c| (c.rev, key.clone(), c.kv.clone())))
            .collect();
        records.sort_by_key(|(rev, _, _)| *rev);
        f(records, s.compacted)
    }

    /// Number of keys that exist now (for metrics).
    pub fn key_count(&self) -> usize {
        self.read()
            .index
            .values()
            .filter(|h| h.latest().is_some())
            .count()
    }

    /// Number of retained revision records (for status and metrics).
    pub fn record_count(&self) -> usize {
        self.read()
            .index
            .values()
            .map(|h| h.changes().count())
            .sum()
    }
}

impl Store {
    /// A hash of every retained revision up to `rev` (0 = now), in revision order, and the
    /// compacted revision: equal on every member that applied the same log. A tombstone at the
    /// compacted revision, which compaction keeps for watchers, is left out, as etcd leaves it
    /// out, so the hash is the one members that dropped it compute. Fails like a read for a
    /// compacted or future revision.
    pub fn hash_kv(&self, rev: i64) -> Result<(u32, i64), Error> {
        let s = self.read();
        let rev = s.read_rev(rev)?;
        let mut records: Vec<(Revision, Option<&KeyValue>, &Bytes)> = Vec::new();
        for (key, h) in &s.index {
            for c in h.changes() {
                let kept_tombstone = c.kv.is_none() && c.rev.main == s.compacted;
                if c.rev.main <= rev && !kept_tombstone {
                    records.push((c.rev, c.kv.as_ref(), key));
                }
            }
        }
        records.sort_by_key(|r| r.0);
        let mut hasher = crc32fast::Hasher::new();
        for (r, kv, key) in records {
            hasher.update(&r.to_bytes());
            hasher.update(key);
            match kv {
                Some(kv) => {
                    hasher.update(b"p");
                    hasher.update(&kv.encode_to_vec());
                }
                None => hasher.update(b"t"),
            }
        }
        Ok((hasher.finalize(), s.compacted))
    }
}
