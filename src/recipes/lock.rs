//! Lock: etcd's v3lock service — distributed mutexes built on leases and key revisions.
//!
//! A lock named `N` is the set of keys under `N/`. To lock, a client's lease `L` creates the key
//! `N/<L in hex>` (or finds it, if that lease already waits or holds it); the key with the
//! lowest create revision holds the lock, and the others wait, each for the deletion of the
//! key just ahead of it ([`queue`]). Unlocking deletes the key; so does the expiry or revocation
//! of its lease, which is what frees the lock of a client that died.
//!
//! # Fencing
//!
//! Holding a lock proves nothing to a storage system the holder writes to later: its lease may
//! have expired meanwhile and another client may hold the lock now. The lock key's **create
//! revision** is the fencing token: it grows with every acquisition, so a resource guarded by
//! the lock should refuse writes carrying a token lower than one it has seen — or, inside etcd,
//! a holder makes its writes conditional on `create_revision(lock key) == token` in one txn.
//! A `LockResponse` carries the key; read its create revision (the response header revision
//! of an uncontended lock equals it).
//!
//! Like etcd, the service runs this client-side recipe inside the server, over an in-process
//! [`Client`], so every read and write it makes is an ordinary KV request with the KV API's
//! validation, errors and response headers.

use bytes::Bytes;

use crate::error::Error;
use crate::proto::etcdserverpb::range_request::SortOrder;
use crate::proto::etcdserverpb::{DeleteRangeResponse, ResponseHeader, TxnRequest};

use super::client::{
    by_create, created_at, op_get, op_put, op_range, range_of, session_lease, Client,
};
use super::queue::{prefix, still_queued, wait_deletes, waiter_key, Withdraw};

/// Waits until lease `lease` (a fresh session lease if 0) holds the lock `name`; returns the
/// lock key and the header of the read that found it at the front.
pub async fn lock(
    c: &impl Client,
    name: &[u8],
    lease: i64,
) -> Result<(Bytes, ResponseHeader), Error> {
    let lease = session_lease(c, lease).await?;
    let prefix = prefix(name);
    let key = waiter_key(name, lease);
    // Join the queue (or find this lease already in it) and learn the front in one request.
    let front = op_range(by_create(&prefix, SortOrder::Ascend, 0));
    let t = TxnRequest {
        compare: vec![created_at(&key, 0)],
        success: vec![op_put(&key, Bytes::new(), lease), front.clone()],
        failure: vec![op_get(&key), front],
    };
    let resp = c.txn(t).await?;
    let header = resp.header.unwrap_or_default();
    let my_rev = if resp.succeeded {
        header.revision
    } else {
        range_of(&resp, 0)
            .and_then(|g| g.kvs.first())
            .map_or(0, |kv| kv.create_revision)
    };
    let holder = range_of(&resp, 1).and_then(|g| g.kvs.first());
    let skip = crate::io::canary::on(crate::io::canary::Canary::LockSkipsQueue);
    if skip || holder.is_none_or(|kv| kv.create_revision == my_rev) {
        return Ok((key, header));
    }
    // Only the request that put the key in the line takes it out again if its client goes
    // away: a request that found the key (a retry with the same lease) must not delete the
    // key another request of that lease may already hold.
    let guard = resp.succeeded.then(|| Withdraw::new(c, &key, my_rev));
    let header = wait_deletes(c, &prefix, my_rev - 1).await?;
    // A key whose lease expired while it waited is gone: the lock is not ours. (etcd 3.4
    // answered success here; later versions check, and mutual exclusion needs the check.)
    if !still_queued(c, &key, my_rev).await? {
        return Err(Error::LockSessionExpired);
    }
    if let Some(g) = guard {
        g.keep();
    }
    Ok((key, header))
}

/// Releases a lock: deletes the key [`lock`] returned.
pub async fn unlock(c: &impl Client, key: Bytes) -> Result<DeleteRangeResponse, Error> {
    c.delete(key).await
}
