//! Which permissions a request needs while auth is on (etcd's `apply_auth.go`), checked
//! against an [`AuthStore`]:
//! - Put: write on its key; with a lease, write on every key already attached to that lease;
//!   with `prev_kv`, read on its key.
//! - DeleteRange: write on its range; with `prev_kv`, read on it.
//! - Txn: read on every compare; every operation of both branches, whichever runs (a Put
//!   inside a txn needs write only, as in etcd). Nested txns are checked the same way — etcd
//!   3.4 skips them, which lets anyone write anything through a txn inside a txn.
//! - LeaseRevoke: write on every key attached to the lease.
//! - Compaction, LeaseGrant, lease checkpoints: nothing.
//! - Auth changes: the root role, checked by the store as it applies them.

use bytes::Bytes;

use crate::error::Error;
use crate::proto::detcdpb::raft_request::Request as Req;
use crate::proto::etcdserverpb::request_op::Request as Op;
use crate::proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest};

use super::store::{Access, AuthInfo, AuthStore};

/// Checks that `who` may make the write `req`; `leased(id)` lists the keys attached to a lease
/// (asked only when auth is on and the answer matters).
pub fn check_write(
    auth: &AuthStore,
    who: Option<&AuthInfo>,
    req: &Req,
    leased: &dyn Fn(i64) -> Vec<Bytes>,
) -> Result<(), Error> {
    if !auth.enabled() {
        return Ok(());
    }
    match req {
        Req::Put(p) => check_put(auth, who, p, leased),
        Req::DeleteRange(d) => check_delete(auth, who, d),
        Req::Txn(t) => check_txn(auth, who, t),
        Req::LeaseRevoke(r) => check_keys(auth, who, &leased(r.id)),
        _ => Ok(()),
    }
}

/// Checks that `who` may read `r`.
pub fn check_range(
    auth: &AuthStore,
    who: Option<&AuthInfo>,
    r: &RangeRequest,
) -> Result<(), Error> {
    auth.check(who, Access::Read, &r.key, &r.range_end)
}

/// Checks every compare and every operation of `t`, nested txns included.
pub fn check_txn(auth: &AuthStore, who: Option<&AuthInfo>, t: &TxnRequest) -> Result<(), Error> {
    for c in &t.compare {
        auth.check(who, Access::Read, &c.key, &c.range_end)?;
    }
    for op in t.success.iter().chain(&t.failure) {
        match &op.request {
            Some(Op::RequestRange(r)) => check_range(auth, who, r)?,
            Some(Op::RequestPut(p)) => auth.check(who, Access::Write, &p.key, &[])?,
            Some(Op::RequestDeleteRange(d)) => check_delete(auth, who, d)?,
            Some(Op::RequestTxn(t)) => check_txn(auth, who, t)?,
            None => {}
        }
    }
    Ok(())
}

fn check_put(
    auth: &AuthStore,
    who: Option<&AuthInfo>,
    p: &PutRequest,
    leased: &dyn Fn(i64) -> Vec<Bytes>,
) -> Result<(), Error> {
    auth.check(who, Access::Write, &p.key, &[])?;
    if p.lease != 0 {
        check_keys(auth, who, &leased(p.lease))?;
    }
    if p.prev_kv {
        auth.check(who, Access::Read, &p.key, &[])?;
    }
    Ok(())
}

fn check_delete(
    auth: &AuthStore,
    who: Option<&AuthInfo>,
    d: &DeleteRangeRequest,
) -> Result<(), Error> {
    auth.check(who, Access::Write, &d.key, &d.range_end)?;
    if d.prev_kv {
        auth.check(who, Access::Read, &d.key, &d.range_end)?;
    }
    Ok(())
}

fn check_keys(auth: &AuthStore, who: Option<&AuthInfo>, keys: &[Bytes]) -> Result<(), Error> {
    keys.iter()
        .try_for_each(|k| auth.check(who, Access::Write, k, &[]))
}
