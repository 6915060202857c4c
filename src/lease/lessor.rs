//! The lessor: which leases exist (replicated state, changed only by applying the raft log) and,
//! on the leader only, when each one expires (node-local state, read from the node's clock).
//!
//! Replicated part — identical on every member that applied the same log, persisted under
//! `s/lease/<id>` in the same disk batch as the apply that changed it (so snapshots carry it):
//! the granted TTL and the last checkpointed remaining TTL of every lease.
//!
//! Leader part — `expiry` of each lease, set only while this member is the *primary* lessor (the
//! raft leader). A member becoming leader [`Lessor::promote`]s: every lease's expiry becomes now +
//! its remaining TTL (the checkpoint if there is one, else the granted TTL), so a lease renewed
//! within its TTL on the old leader survives the change. Losing leadership [`Lessor::demote`]s:
//! expiries are forgotten and followers never expire anything.
//!
//! Keys attached to a lease are not tracked here: a key's `lease` field in the mvcc store is the
//! single source of truth (see `Writer::keys_with_lease`).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::Error;
use crate::io::clock::Instant;
use crate::io::disk::{prefix_end, WriteBatch};
use crate::io::Disk;

/// Disk prefix of the lease records (inside the state machine's `s/` prefix).
pub const LEASE_PREFIX: &[u8] = b"s/lease/";

/// etcd's largest TTL a lease may be granted with, in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// How long the leader waits before proposing the revocation of an expired lease again, if the
/// first proposal did not remove it (e.g. it was lost in a leader change).
const REVOKE_RETRY: Duration = Duration::from_secs(3);

/// One lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Granted TTL in seconds. Invariant: positive, never changes after the grant.
    pub ttl: i64,
    /// Remaining TTL in seconds at the last checkpoint; 0 = no checkpoint (the full TTL counts).
    pub remaining: i64,
    /// When the lease expires on this member's clock; `Some` only on the primary lessor.
    expiry: Option<Instant>,
}

impl Lease {
    /// The TTL a new primary gives the lease: the checkpointed remainder, else the full TTL.
    fn extend_ttl(&self) -> i64 {
        if self.remaining > 0 {
            self.remaining
        } else {
            self.ttl
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    leases: BTreeMap<i64, Lease>,
    /// The raft term in which this member leads and keeps expiries; `None` on followers.
    primary: Option<u64>,
    /// Expired leases whose revocation was proposed, and when.
    revoking: BTreeMap<i64, Instant>,
}

/// The leases of one member; see the module docs.
#[derive(Debug, Default)]
pub struct Lessor {
    inner: Mutex<Inner>,
}

/// The disk key of lease `id`.
fn record_key(id: i64) -> Bytes {
    let mut k = BytesMut::with_capacity(LEASE_PREFIX.len() + 8);
    k.put_slice(LEASE_PREFIX);
    k.put_i64(id);
    k.freeze()
}

fn record(l: &Lease) -> Bytes {
    let mut v = BytesMut::with_capacity(16);
    v.put_i64(l.ttl);
    v.put_i64(l.remaining);
    v.freeze()
}

/// The disk record of lease `id` with `ttl` and checkpointed `remaining` (0: none), for
/// restoring a snapshot into an empty data dir.
pub fn restore_record(batch: &mut WriteBatch, id: i64, ttl: i64, remaining: i64) {
    let lease = Lease {
        ttl: ttl.max(1),
        remaining: remaining.max(0),
        expiry: None,
    };
    batch.put(record_key(id), record(&lease));
}

fn seconds(s: i64) -> Duration {
    Duration::from_secs(s.max(0) as u64)
}

impl Lessor {
    /// An empty lessor (not primary).
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces every lease with what `disk` holds (at open, and after a snapshot install). A
    /// primary lessor gives every loaded lease a fresh expiry from `now`.
    pub fn load(&self, disk: &Disk, now: Instant) -> std::io::Result<()> {
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        let mut leases = BTreeMap::new();
        for (k, v) in disk.scan(LEASE_PREFIX, &prefix_end(LEASE_PREFIX))? {
            let id = k[LEASE_PREFIX.len()..]
                .try_into()
                .map(i64::from_be_bytes)
                .map_err(|_| bad("bad lease key"))?;
            if v.len() != 16 {
                return Err(bad("bad lease record"));
            }
            let ttl = i64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
            let remaining = i64::from_be_bytes(v[8..].try_into().expect("8 bytes"));
            if ttl <= 0 {
                return Err(bad("lease record with a TTL that is not positive"));
            }
            leases.insert(
                id,
                Lease {
                    ttl,
                    remaining,
                    expiry: None,
                },
            );
        }
        let mut inner = self.lock();
        inner.leases = leases;
        inner.revoking.clear();
        if inner.primary.is_some() {
            for l in inner.leases.values_mut() {
                l.expiry = Some(now + seconds(l.extend_ttl()));
            }
        }
        Ok(())
    }

    // --- apply side: called in log order by the applier; records go into the apply's batch.

    /// Applies a grant of lease `id` with `ttl` seconds. The member that proposed it raised the
    /// TTL to the minimum already; a TTL below one second (only a raw proposal can carry one)
    /// is raised to one, so every lease has a positive TTL.
    pub fn grant(
        &self,
        id: i64,
        ttl: i64,
        now: Instant,
        batch: &mut WriteBatch,
    ) -> Result<(), Error> {
        let mut inner = self.lock();
        if id == 0 || inner.leases.contains_key(&id) {
            return Err(Error::LeaseExist);
        }
        let ttl = ttl.max(1);
        let primary = inner.primary.is_some();
        let lease = Lease {
            ttl,
            remaining: 0,
            expiry: primary.then(|| now + seconds(ttl)),
        };
        batch.put(record_key(id), record(&lease));
        inner.leases.insert(id, lease);
        Ok(())
    }

    /// Applies the revocation of lease `id` (its keys are deleted by the caller).
    pub fn revoke(&self, id: i64, batch: &mut WriteBatch) -> Result<(), Error> {
        let mut inner = self.lock();
        inner.leases.remove(&id).ok_or(Error::LeaseNotFound)?;
        inner.revoking.remove(&id);
        batch.delete(record_key(id));
        Ok(())
    }

    /// Applies a checkpoint: lease `id` had `remaining` seconds left on the leader. Unknown
    /// leases are ignored (a revoke may have overtaken the checkpoint).
    pub fn checkpoint(&self, id: i64, remaining: i64, batch: &mut WriteBatch) {
        let mut inner = self.lock();
        if let Some(l) = inner.leases.get_mut(&id) {
            l.remaining = remaining;
            batch.put(record_key(id), record(l));
        }
    }

    // --- leader side.

    /// Whether this member keeps expiries (is the leader).
    pub fn is_primary(&self) -> bool {
        self.lock().primary.is_some()
    }

    /// This member leads in raft term `term`: every lease expires its remaining TTL after
    /// `now + extend`. etcd's new leader extends by an election timeout: the old leader may have
    /// renewed a lease after this one was elected — it confirmed its leadership at most a
    /// leader lease before the election and may answer a little later, on a clock of its own.
    /// Idempotent within a term; a later term (leadership lost and regained, possibly unnoticed
    /// in between) starts afresh, since renewals meanwhile went to another leader.
    pub fn promote(&self, now: Instant, term: u64, extend: Duration) {
        let mut inner = self.lock();
        if inner.primary == Some(term) {
            return;
        }
        inner.primary = Some(term);
        inner.revoking.clear();
        let no_extension = crate::io::canary::on(crate::io::canary::Canary::NoLeaseExtension);
        for l in inner.leases.values_mut() {
            l.expiry = Some(if no_extension {
                now
            } else {
                now + extend + seconds(l.extend_ttl())
            });
        }
    }

    /// This member stopped leading: it forgets every expiry.
    pub fn demote(&self) {
        let mut inner = self.lock();
        inner.primary = None;
        inner.revoking.clear();
        for l in inner.leases.values_mut() {
            l.expiry = None;
        }
    }

    /// Renews lease `id` on the primary: it expires its full TTL from `now`. Returns the TTL and
    /// whether a checkpointed remainder is on record (the caller must clear it through raft, or
    /// a new leader would count from the stale remainder). `None` if the lease does not exist or
    /// has already expired (its revocation is under way).
    pub fn renew(&self, id: i64, now: Instant) -> Result<Option<(i64, bool)>, Error> {
        let mut inner = self.lock();
        if inner.primary.is_none() {
            return Err(Error::NotLeader);
        }
        let Some(l) = inner.leases.get_mut(&id) else {
            return Ok(None);
        };
        if l.expiry.is_some_and(|e| e <= now) {
            return Ok(None);
        }
        l.expiry = Some(now + seconds(l.ttl));
        Ok(Some((l.ttl, l.remaining > 0)))
    }

    /// Remaining and granted TTL of lease `id`, in whole seconds (remaining rounds down), as the
    /// primary sees it; `None` if it does not exist.
    pub fn time_to_live(&self, id: i64, now: Instant) -> Result<Option<(i64, i64)>, Error> {
        let inner = self.lock();
        if inner.primary.is_none() {
            return Err(Error::NotLeader);
        }
        Ok(inner.leases.get(&id).map(|l| {
            let left = l
                .expiry
                .map_or(0, |e| e.saturating_duration_since(now).as_secs() as i64);
            (left, l.ttl)
        }))
    }

    /// Leases whose expiry has passed on the primary, in ID order, not counting those whose
    /// revocation was proposed less than a few seconds ago; they are marked as being revoked.
    pub fn take_expired(&self, now: Instant) -> Vec<i64> {
        let mut inner = self.lock();
        if inner.primary.is_none() {
            return Vec::new();
        }
        let Inner {
            leases, revoking, ..
        } = &mut *inner;
        let mut out = Vec::new();
        for (id, l) in leases.iter() {
            let expired = l.expiry.is_some_and(|e| e <= now);
            let pending = revoking
                .get(id)
                .is_some_and(|since| now.saturating_duration_since(*since) < REVOKE_RETRY);
            if expired && !pending {
                out.push(*id);
                revoking.insert(*id, now);
            }
        }
        out
    }

    /// Remaining TTL (whole seconds, at least 1) of every lease on the primary whose TTL is
    /// longer than `min_ttl` seconds, for checkpoints (as etcd, shorter leases are not
    /// checkpointed).
    pub fn remaining_all(&self, now: Instant, min_ttl: i64) -> Vec<(i64, i64)> {
        let inner = self.lock();
        if inner.primary.is_none() {
            return Vec::new();
        }
        inner
            .leases
            .iter()
            .filter(|(_, l)| l.ttl > min_ttl)
            .filter_map(|(id, l)| {
                let e = l.expiry?;
                Some((
                    *id,
                    (e.saturating_duration_since(now).as_secs() as i64).max(1),
                ))
            })
            .collect()
    }

    // --- anyone.

    /// Whether lease `id` exists.
    pub fn exists(&self, id: i64) -> bool {
        self.lock().leases.contains_key(&id)
    }

    /// The granted TTL and checkpointed remainder of lease `id`.
    pub fn get(&self, id: i64) -> Option<Lease> {
        self.lock().leases.get(&id).cloned()
    }

    /// Every lease ID, in ID order.
    pub fn ids(&self) -> Vec<i64> {
        self.lock().leases.keys().copied().collect()
    }
}

impl crate::mvcc::txn::LeaseCheck for Lessor {
    fn exists(&self, id: i64) -> bool {
        Lessor::exists(self, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::disk::WriteOp;

    fn now() -> Instant {
        Instant::now()
    }

    #[test]
    fn grant_revoke_and_records() {
        let l = Lessor::new();
        let mut ops = WriteBatch::new();
        l.grant(5, 10, now(), &mut ops).unwrap();
        assert_eq!(l.grant(5, 10, now(), &mut ops), Err(Error::LeaseExist));
        assert!(l.exists(5));
        assert_eq!(l.ids(), vec![5]);
        assert_eq!(ops.ops().len(), 1);
        l.revoke(5, &mut ops).unwrap();
        assert_eq!(l.revoke(5, &mut ops), Err(Error::LeaseNotFound));
        assert!(!l.exists(5));
        assert!(matches!(&ops.ops()[1], WriteOp::Delete(k) if *k == record_key(5)));
    }

    #[test]
    fn a_ttl_below_one_second_is_raised_to_one() {
        let l = Lessor::new();
        l.grant(9, 0, now(), &mut WriteBatch::new()).unwrap();
        assert_eq!(l.get(9).map(|l| l.ttl), Some(1));
    }

    #[test]
    fn followers_never_expire_and_cannot_renew() {
        let l = Lessor::new();
        let t = now();
        l.grant(1, 1, t, &mut WriteBatch::new()).unwrap();
        assert!(l.take_expired(t + Duration::from_secs(100)).is_empty());
        assert_eq!(l.renew(1, t), Err(Error::NotLeader));
        assert_eq!(l.time_to_live(1, t), Err(Error::NotLeader));
    }

    #[test]
    fn primary_expires_renews_and_promotion_extends() {
        let l = Lessor::new();
        let t = now();
        l.grant(1, 10, t, &mut WriteBatch::new()).unwrap();
        l.promote(t, 1, Duration::ZERO);
        assert_eq!(l.time_to_live(1, t), Ok(Some((10, 10))));
        assert!(l.take_expired(t + Duration::from_secs(9)).is_empty());
        // Renewed at t+9: expires at t+19.
        assert_eq!(
            l.renew(1, t + Duration::from_secs(9)),
            Ok(Some((10, false)))
        );
        assert!(l.take_expired(t + Duration::from_secs(18)).is_empty());
        assert_eq!(l.take_expired(t + Duration::from_secs(19)), vec![1]);
        // Proposed once; not again until the retry interval passes.
        assert!(l.take_expired(t + Duration::from_secs(20)).is_empty());
        assert_eq!(l.take_expired(t + Duration::from_secs(23)), vec![1]);
        // An expired lease cannot be renewed.
        assert_eq!(l.renew(1, t + Duration::from_secs(23)), Ok(None));
        assert_eq!(l.renew(2, t), Ok(None));
        // Leadership lost and regained at t+30: a fresh full TTL.
        l.demote();
        l.promote(t + Duration::from_secs(30), 2, Duration::ZERO);
        assert!(l.take_expired(t + Duration::from_secs(39)).is_empty());
        assert_eq!(
            l.time_to_live(1, t + Duration::from_secs(35)),
            Ok(Some((5, 10)))
        );
        assert_eq!(l.time_to_live(7, t), Ok(None));
        // A new leader extends by the election timeout it is given, as etcd's.
        l.demote();
        let (at, election) = (t + Duration::from_secs(50), Duration::from_secs(1));
        l.promote(at, 3, election);
        assert!(l.take_expired(at + Duration::from_secs(10)).is_empty());
        assert_eq!(l.take_expired(at + Duration::from_secs(11)), vec![1]);
    }

    #[test]
    fn promotion_uses_the_checkpointed_remainder() {
        let l = Lessor::new();
        let t = now();
        l.grant(1, 100, t, &mut WriteBatch::new()).unwrap();
        l.grant(3, 10, t, &mut WriteBatch::new()).unwrap();
        l.checkpoint(1, 7, &mut WriteBatch::new());
        l.checkpoint(2, 7, &mut WriteBatch::new());
        l.promote(t, 1, Duration::ZERO);
        assert_eq!(l.time_to_live(1, t), Ok(Some((7, 100))));
        // Only leases longer than the checkpoint interval are checkpointed.
        assert_eq!(
            l.remaining_all(t + Duration::from_secs(2), 60),
            vec![(1, 5)]
        );
        assert_eq!(l.take_expired(t + Duration::from_secs(7)), vec![1]);
        // A renewal reports the remainder on record, until a checkpoint of 0 clears it.
        l.demote();
        l.promote(t, 2, Duration::ZERO);
        assert_eq!(l.renew(1, t), Ok(Some((100, true))));
        l.checkpoint(1, 0, &mut WriteBatch::new());
        assert_eq!(l.renew(1, t), Ok(Some((100, false))));
    }
}
