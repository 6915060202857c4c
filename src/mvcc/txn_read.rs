//! The reading half of a txn: which branch each (nested) txn takes, decided by its compares
//! against the state before any of its writes, and the execution of txns that only read —
//! under the store's read lock, so reads never wait for each other.

use crate::error::Error;
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::response_op::Response;
use crate::proto::etcdserverpb::{Compare, ResponseHeader, ResponseOp, TxnRequest, TxnResponse};
use crate::proto::mvccpb::KeyValue;

use super::store::{keys_in, State};
use super::Store;

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

/// The branch every txn of a request takes (its own, then its nested txns' in execution
/// order), decided against `state` before any of its writes.
pub(super) fn compare_path(state: &State, r: &TxnRequest, path: &mut Vec<bool>) {
    let ok = r.compare.iter().all(|c| compare(state, c));
    path.push(ok);
    for op in if ok { &r.success } else { &r.failure } {
        if let Some(Request::RequestTxn(t)) = &op.request {
            compare_path(state, t, path);
        }
    }
}

fn compare(state: &State, c: &Compare) -> bool {
    let at = state.current;
    let mut any = false;
    for (_, h) in keys_in(&state.index, &c.key, &c.range_end) {
        if let Some(kv) = h.get(at) {
            any = true;
            if !compare_kv(c, kv) {
                return false;
            }
        }
    }
    if any {
        return true;
    }
    // A missing key has no value to compare; every other target reads as zero.
    c.target != CompareTarget::Value as i32 && compare_kv(c, &KeyValue::default())
}

/// Executes the taken branches of a txn that only reads, against `state` at its current
/// revision.
fn read_only_in(
    state: &State,
    r: &TxnRequest,
    path: &[bool],
    cursor: &mut usize,
) -> Result<TxnResponse, Error> {
    let ok = path[*cursor];
    *cursor += 1;
    let mut responses = Vec::new();
    for op in if ok { &r.success } else { &r.failure } {
        let response = match &op.request {
            Some(Request::RequestRange(q)) => {
                Some(Response::ResponseRange(state.range(q, state.current)?))
            }
            Some(Request::RequestTxn(t)) => {
                let mut resp = read_only_in(state, t, path, cursor)?;
                resp.header = header(state.current);
                Some(Response::ResponseTxn(resp))
            }
            Some(Request::RequestPut(_) | Request::RequestDeleteRange(_)) => {
                panic!("read_only_txn is only called with txns whose branches only read")
            }
            None => None,
        };
        responses.push(ResponseOp { response });
    }
    Ok(TxnResponse {
        header: header(state.current),
        succeeded: ok,
        responses,
    })
}

/// Compares one key-value against a Compare's target the way etcd 3.4 does: a target union that
/// does not match the target reads as an empty value or as zero; a target outside the enum
/// compares as equal, and a result outside the enum always holds (etcd checks neither).
fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    use std::cmp::Ordering;
    let ord = match CompareTarget::try_from(c.target) {
        Ok(CompareTarget::Value) => match &c.target_union {
            Some(TargetUnion::Value(v)) => kv.value.as_ref().cmp(v.as_ref()),
            _ => kv.value.as_ref().cmp(&[][..]),
        },
        Ok(t @ CompareTarget::Version) => kv.version.cmp(&union_i64(c, t)),
        Ok(t @ CompareTarget::Create) => kv.create_revision.cmp(&union_i64(c, t)),
        Ok(t @ CompareTarget::Mod) => kv.mod_revision.cmp(&union_i64(c, t)),
        Ok(t @ CompareTarget::Lease) => kv.lease.cmp(&union_i64(c, t)),
        Err(_) => Ordering::Equal,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ord != Ordering::Equal,
        Ok(CompareResult::Greater) => ord == Ordering::Greater,
        Ok(CompareResult::Less) => ord == Ordering::Less,
        Err(_) => true,
    }
}

fn union_i64(c: &Compare, target: CompareTarget) -> i64 {
    match (&c.target_union, target) {
        (Some(TargetUnion::Version(v)), CompareTarget::Version) => *v,
        (Some(TargetUnion::CreateRevision(v)), CompareTarget::Create) => *v,
        (Some(TargetUnion::ModRevision(v)), CompareTarget::Mod) => *v,
        (Some(TargetUnion::Lease(v)), CompareTarget::Lease) => *v,
        _ => 0,
    }
}

impl Store {
    /// Runs a txn whose branches only read (see `server::check::txn_is_read_only`): no log
    /// entry, no new revision, nothing persisted.
    /// Takes only the store's read lock: reads never wait for each other.
    pub fn read_only_txn(&self, r: &TxnRequest) -> Result<TxnResponse, Error> {
        let state = self.read();
        let mut path = Vec::new();
        compare_path(&state, r, &mut path);
        let resp = read_only_in(&state, r, &path, &mut 0)?;
        self.counts.txn(&resp);
        Ok(resp)
    }
}
