//! Election: etcd's v3election recipe — leader election built on leases and key revisions.
//!
//! An election named `N` is a queue of candidates under `N/`, exactly like a lock's
//! ([`super::lock`]): each candidate's lease `L` creates `N/<L in hex>` with its proposed value,
//! and the candidate with the lowest create revision is the leader. Campaign returns once the
//! caller leads; its `LeaderKey` (name, key, create revision, lease) identifies the leadership,
//! and Proclaim and Resign act only while that key still exists with that create revision.
//!
//! The create revision in the `LeaderKey` is the leadership's fencing token: it grows with every
//! new leader, so a system acting on a leader's behalf can refuse a deposed leader's requests
//! (lower token), and etcd writes can be made conditional on the key's create revision.
//!
//! Observe streams the leader's value: the current leader, each proclamation, and the next
//! leader when one leaves.

use bytes::Bytes;

use crate::error::Error;
use crate::proto::etcdserverpb::range_request::SortOrder;
use crate::proto::etcdserverpb::{ResponseHeader, TxnRequest};
use crate::proto::mvccpb::KeyValue;
use crate::proto::v3electionpb::LeaderKey;

use super::client::{
    by_create, created_at, op_delete, op_get, op_put, range_of, session_lease, Client,
};
use super::queue::{prefix, still_queued, wait_deletes, waiter_key, withdraw, Withdraw};

/// Sets the leader's value if `leader` still leads; returns the txn's header.
pub async fn proclaim(
    c: &impl Client,
    leader: &LeaderKey,
    value: Bytes,
) -> Result<Option<ResponseHeader>, Error> {
    let t = TxnRequest {
        compare: vec![created_at(&leader.key, leader.rev)],
        success: vec![op_put(&leader.key, value, leader.lease)],
        failure: Vec::new(),
    };
    let resp = c.txn(t).await?;
    if !resp.succeeded {
        return Err(Error::ElectionNotLeader);
    }
    Ok(resp.header)
}

/// Proclaim as the RPC serves it: a leader key without a lease proclaims under a fresh session
/// lease, as etcd does.
pub async fn proclaim_as(
    c: &impl Client,
    leader: Option<LeaderKey>,
    value: Bytes,
) -> Result<Option<ResponseHeader>, Error> {
    let mut leader = leader.ok_or(Error::MissingLeaderKey)?;
    leader.lease = session_lease(c, leader.lease).await?;
    proclaim(c, &leader, value).await
}

/// Campaigns in election `name` with `value` under lease `lease` (a fresh session lease if 0);
/// returns once this candidate leads, with its leader key and the txn's header.
pub async fn campaign(
    c: &impl Client,
    name: &Bytes,
    value: Bytes,
    lease: i64,
) -> Result<(LeaderKey, Option<ResponseHeader>), Error> {
    let lease = session_lease(c, lease).await?;
    let key = waiter_key(name, lease);
    let t = TxnRequest {
        compare: vec![created_at(&key, 0)],
        success: vec![op_put(&key, value.clone(), lease)],
        failure: vec![op_get(&key)],
    };
    let resp = c.txn(t).await?;
    let mut leader = LeaderKey {
        name: name.clone(),
        key: key.clone(),
        rev: resp.header.as_ref().map_or(0, |h| h.revision),
        lease,
    };
    if !resp.succeeded {
        // This lease already campaigns: keep its place, and its value up to date.
        if let Some(kv) = range_of(&resp, 0).and_then(|g| g.kvs.first()) {
            leader.rev = kv.create_revision;
            if kv.value != value {
                if let Err(e) = proclaim(c, &leader, value).await {
                    let _ = withdraw(c, key.clone(), leader.rev).await;
                    return Err(e);
                }
            }
        }
    }
    // As for locks: only the request that created the key withdraws it if abandoned.
    let guard = resp.succeeded.then(|| Withdraw::new(c, &key, leader.rev));
    wait_deletes(c, &prefix(name), leader.rev - 1).await?;
    // A candidacy whose lease expired while it waited is gone: it does not lead. (etcd
    // answers success here; leadership without the key would contradict Proclaim's and
    // Resign's fencing.)
    if !still_queued(c, &key, leader.rev).await? {
        return Err(Error::ElectionSessionExpired);
    }
    if let Some(g) = guard {
        g.keep();
    }
    Ok((leader, resp.header))
}

/// The current leader of election `name`: the candidate with the lowest create revision.
pub async fn leader(
    c: &impl Client,
    name: &[u8],
) -> Result<(KeyValue, Option<ResponseHeader>), Error> {
    let resp = c
        .range(by_create(&prefix(name), SortOrder::Ascend, 0))
        .await?;
    let kv = resp.kvs.into_iter().next().ok_or(Error::ElectionNoLeader)?;
    Ok((kv, resp.header))
}

/// Gives up leadership (or candidacy) `leader`, if its key is still the one it created.
pub async fn resign(
    c: &impl Client,
    leader: Option<LeaderKey>,
) -> Result<Option<ResponseHeader>, Error> {
    let leader = leader.ok_or(Error::MissingLeaderKey)?;
    let t = TxnRequest {
        compare: vec![created_at(&leader.key, leader.rev)],
        success: vec![op_delete(&leader.key)],
        failure: Vec::new(),
    };
    Ok(c.txn(t).await?.header)
}
