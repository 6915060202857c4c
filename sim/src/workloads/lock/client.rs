//! The lock workload's clients: lock, read the token, access the resource fenced by it,
//! release.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use bytes::Bytes;
use detcd::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use detcd::proto::etcdserverpb::kv_client::KvClient;
use detcd::proto::etcdserverpb::request_op::Request as Op;
use detcd::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, RangeRequest, RequestOp, TxnRequest,
};
use detcd::proto::v3lockpb::lock_client::LockClient;
use detcd::proto::v3lockpb::{LockRequest, UnlockRequest};
use detcd_jepsen::lock::{Access, LockHold, Release};
use rand::Rng;
use tokio::time::Instant;
use tonic::transport::Channel;

use super::lease::{grant, KeptLease};
use super::{any_member, Shared, LOCK, REQUEST_TIMEOUT, RESOURCE};
use crate::workloads::client::{nanos_since, put_request};

/// The compare that holds while `key` still carries `token` as its create revision.
fn fenced(key: &Bytes, token: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.clone(),
        range_end: Bytes::new(),
        target_union: Some(TargetUnion::CreateRevision(token)),
    }
}

/// A txn that runs `then` only while `key` still carries `token`; `Some(succeeded)` if answered.
async fn fenced_txn(kv: &mut KvClient<Channel>, key: &Bytes, token: i64, then: Op) -> Option<bool> {
    let t = TxnRequest {
        compare: vec![fenced(key, token)],
        success: vec![RequestOp {
            request: Some(then),
        }],
        failure: Vec::new(),
    };
    let r = tokio::time::timeout(REQUEST_TIMEOUT, kv.txn(t))
        .await
        .ok()?
        .ok()?;
    Some(r.into_inner().succeeded)
}

/// One client: lock, read the token, access the resource under it, release; until `until`.
pub(super) async fn client(
    c: u64,
    urls: Vec<String>,
    start: Instant,
    until: Duration,
    fenced_release: bool,
    logs: Shared,
) {
    let mut lease: Option<KeptLease> = None;
    while start.elapsed() < until {
        if lease.is_none() {
            lease = grant(&urls).await;
            if lease.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        let id = lease.as_ref().map_or(0, |l| l.id);
        let Some(ch) = any_member(&urls).await else {
            continue;
        };
        let mut locks = LockClient::new(ch.clone());
        let mut kv = KvClient::new(ch);
        let acquire_invoke = nanos_since(start);
        let req = LockRequest {
            name: Bytes::from_static(LOCK.as_bytes()),
            lease: id,
        };
        let key = match tokio::time::timeout(REQUEST_TIMEOUT, locks.lock(req)).await {
            Ok(Ok(r)) => r.into_inner().key,
            Ok(Err(s)) => {
                logs.lock().unwrap().failed_locks += 1;
                if s.message().contains("lease not found") || s.message().contains("expired") {
                    lease = None;
                }
                continue;
            }
            Err(_) => {
                logs.lock().unwrap().failed_locks += 1;
                continue;
            }
        };
        let acquire_complete = nanos_since(start);
        // The token: the key's create revision (this read also shows the key still exists).
        let seen_at = nanos_since(start);
        let read = RangeRequest {
            key: key.clone(),
            ..Default::default()
        };
        let token = match tokio::time::timeout(REQUEST_TIMEOUT, kv.range(read)).await {
            Ok(Ok(r)) => r.into_inner().kvs.first().map(|kv| kv.create_revision),
            _ => None,
        };
        let Some(token) = token else {
            // Lost already, or unknown: nothing checkable. Retire the lease too, or the next
            // Lock with it would find its old key and hold under the same token again.
            lease = None;
            continue;
        };
        let mut hold = LockHold {
            process: c,
            token: token as u64,
            acquire_invoke,
            acquire_complete,
            release: None,
            accesses: Vec::new(),
            key_seen_at: Some(seen_at),
        };
        // The guarded access.
        let access_start = nanos_since(start);
        let write = Op::RequestPut(put_request(RESOURCE, &format!("{c}:{token}")));
        if fenced_txn(&mut kv, &key, token, write).await == Some(true) {
            hold.accesses.push(Access {
                start: access_start,
                end: nanos_since(start),
            });
        }
        let pause = madsim::rand::thread_rng().gen_range(0..50);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        // The release.
        let invoke = nanos_since(start);
        if fenced_release {
            let delete = Op::RequestDeleteRange(DeleteRangeRequest {
                key: key.clone(),
                ..Default::default()
            });
            match fenced_txn(&mut kv, &key, token, delete).await {
                Some(still_held) => {
                    hold.release = Some(Release {
                        invoke,
                        complete: nanos_since(start),
                        still_held,
                    })
                }
                None => lease = None,
            }
        } else {
            let unlock = locks.unlock(UnlockRequest { key });
            if !matches!(
                tokio::time::timeout(REQUEST_TIMEOUT, unlock).await,
                Ok(Ok(_))
            ) {
                lease = None;
            }
        }
        logs.lock().unwrap().holds.push(hold);
    }
}
