//! The gRPC Lock service (v3lock): Lock waits its turn in the lock's queue; Unlock deletes the
//! key Lock returned.

use bytes::Bytes;
use tonic::{Request, Response, Status};

use crate::proto::etcdserverpb::range_request::SortOrder;
use crate::proto::etcdserverpb::TxnRequest;
use crate::proto::v3lockpb::lock_server::Lock;
use crate::proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};

use super::embedded::{by_create, created_at, op_get, op_put, op_range, range_of, Embedded};
use super::queue::{still_queued, wait_deletes, Withdraw};

/// etcd's error when the lock key vanished (its lease expired) while the request waited.
pub const SESSION_EXPIRED: &str = "mutex: session is expired";

/// The key lease `lease` holds or waits with in the lock (or election) `name`: `name/<hex id>`.
pub fn waiter_key(name: &[u8], lease: i64) -> Bytes {
    let mut key = name.to_vec();
    // Go's %x on a signed ID: a minus sign, then the magnitude.
    let hex = if lease < 0 {
        format!("/-{:x}", lease.unsigned_abs())
    } else {
        format!("/{lease:x}")
    };
    key.extend_from_slice(hex.as_bytes());
    key.into()
}

/// `name/`, the prefix of a lock's (or election's) keys.
pub fn prefix(name: &[u8]) -> Vec<u8> {
    let mut p = name.to_vec();
    p.push(b'/');
    p
}

/// etcd's Lock service on one member.
#[derive(Clone)]
pub struct LockService {
    client: Embedded,
}

impl LockService {
    /// A Lock service making its requests through `client`.
    pub fn new(client: Embedded) -> Self {
        LockService { client }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, req: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let r = req.into_inner();
        let c = &self.client;
        let lease = c.session_lease(r.lease).await?;
        let prefix = prefix(&r.name);
        let key = waiter_key(&r.name, lease);
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
            return Ok(Response::new(LockResponse {
                header: Some(header),
                key: key.to_vec().into(),
            }));
        }
        // Only the request that put the key in the line takes it out again if its client goes
        // away: a request that found the key (a retry with the same lease) must not delete the
        // key another request of that lease may already hold.
        let guard = resp.succeeded.then(|| Withdraw::new(c, &key, my_rev));
        let header = wait_deletes(c, &prefix, my_rev - 1).await?;
        // A key whose lease expired while it waited is gone: the lock is not ours. (etcd 3.4
        // answered success here; later versions check, and mutual exclusion needs the check.)
        if !still_queued(c, &key, my_rev).await? {
            return Err(Status::unknown(SESSION_EXPIRED));
        }
        if let Some(g) = guard {
            g.keep();
        }
        Ok(Response::new(LockResponse {
            header: Some(header),
            key: key.to_vec().into(),
        }))
    }

    async fn unlock(
        &self,
        req: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let r = req.into_inner();
        let resp = self.client.delete(r.key).await?;
        Ok(Response::new(UnlockResponse {
            header: resp.header,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiter_keys_are_the_name_a_slash_and_the_lease_in_hex() {
        assert_eq!(waiter_key(b"l1", 1001), Bytes::from_static(b"l1/3e9"));
        assert_eq!(waiter_key(b"", 255), Bytes::from_static(b"/ff"));
        assert_eq!(waiter_key(b"n", -255), Bytes::from_static(b"n/-ff"));
        assert_eq!(prefix(b"l1"), b"l1/".to_vec());
    }
}
