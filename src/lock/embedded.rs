//! An in-process etcd client for the Lock and Election services: KV and Lease requests go
//! through the member's own services (validation, raft, errors and headers exactly as a remote
//! client gets them), watches through a [`Session`] on the member's hub.
//!
//! etcd serves Lock and Election with its Go client connected to the server itself, so their
//! errors reach the caller as gRPC `Unknown` carrying the inner error's message (for example
//! `etcdserver: requested lease not found`). [`Embedded`] reproduces that.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tonic::{Request, Status};

use crate::lease::service::LeaseService;
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::kv_server::Kv;
use crate::proto::etcdserverpb::lease_server::Lease;
use crate::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::proto::etcdserverpb::request_op::Request as Op;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest, PutRequest, RangeRequest,
    RangeResponse, RequestOp, TxnRequest, TxnResponse, WatchCreateRequest, WatchRequest,
    WatchResponse,
};
use crate::raft::RaftNode;
use crate::server::kv::KvService;
use crate::watch::session::{Feed, HeaderFn, Session};

/// The TTL of the lease the services grant when a request names none (etcd's default session
/// TTL). Nobody keeps it alive: a lock or candidacy taken without a lease lasts at most this.
pub const DEFAULT_SESSION_TTL: i64 = 60;

/// etcd's message when a watch used by a recipe ends without the awaited event.
const LOST_WATCHER: &str = "lost watcher waiting for delete";

/// The error a request made through etcd's in-process client reaches the caller with.
pub fn client_error(s: Status) -> Status {
    Status::unknown(s.message().to_string())
}

/// The in-process client of one member.
#[derive(Clone)]
pub struct Embedded {
    node: RaftNode,
    kv: KvService,
    lease: LeaseService,
    stopping: watch::Receiver<bool>,
}

impl Embedded {
    /// A client of `node` through its KV and Lease services. Its watches end when `stopping`
    /// turns true, so a request waiting for a lock or a leadership cannot hold up the member's
    /// shutdown (a graceful server shutdown waits for every call in progress).
    pub fn new(
        node: RaftNode,
        kv: KvService,
        lease: LeaseService,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        Embedded {
            node,
            kv,
            lease,
            stopping,
        }
    }

    /// The member this client talks to.
    pub fn node(&self) -> &RaftNode {
        &self.node
    }

    /// A linearizable range request.
    pub async fn range(&self, r: RangeRequest) -> Result<RangeResponse, Status> {
        self.kv
            .range(Request::new(r))
            .await
            .map(|r| r.into_inner())
            .map_err(client_error)
    }

    /// A transaction.
    pub async fn txn(&self, t: TxnRequest) -> Result<TxnResponse, Status> {
        self.kv
            .txn(Request::new(t))
            .await
            .map(|r| r.into_inner())
            .map_err(client_error)
    }

    /// Deletes one key.
    pub async fn delete(&self, key: Bytes) -> Result<DeleteRangeResponse, Status> {
        let req = DeleteRangeRequest {
            key,
            ..Default::default()
        };
        self.kv
            .delete_range(Request::new(req))
            .await
            .map(|r| r.into_inner())
            .map_err(client_error)
    }

    /// `lease`, or a fresh lease of [`DEFAULT_SESSION_TTL`] when it is 0 (etcd's session with
    /// no lease given grants one).
    pub async fn session_lease(&self, lease: i64) -> Result<i64, Status> {
        if lease != 0 {
            return Ok(lease);
        }
        let req = LeaseGrantRequest {
            ttl: DEFAULT_SESSION_TTL,
            id: 0,
        };
        self.lease
            .lease_grant(Request::new(req))
            .await
            .map(|r| r.into_inner().id)
            .map_err(client_error)
    }

    /// Watches `[key, range_end)` from `start_revision`, on this member.
    pub fn watch(&self, key: Bytes, range_end: Bytes, start_revision: i64) -> KeyWatch {
        KeyWatch::start(
            &self.node,
            key,
            range_end,
            start_revision,
            self.stopping.clone(),
        )
    }
}

/// The end of the range of keys starting with `prefix` (etcd's `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Bytes {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end.into();
        }
    }
    // Every byte is 0xff: the range runs to the end of the keyspace.
    Bytes::from_static(b"\0")
}

/// The key with the lowest (`Ascend`) or highest (`Descend`) create revision under `prefix`,
/// among those created at or before `max_create_revision` (0: no bound).
pub fn by_create(prefix: &[u8], order: SortOrder, max_create_revision: i64) -> RangeRequest {
    RangeRequest {
        key: Bytes::copy_from_slice(prefix),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: order as i32,
        sort_target: SortTarget::Create as i32,
        max_create_revision,
        ..Default::default()
    }
}

/// `create_revision(key) == rev`.
pub fn created_at(key: &Bytes, rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.clone(),
        range_end: Bytes::new(),
        target_union: Some(TargetUnion::CreateRevision(rev)),
    }
}

/// A put as a txn operation.
pub fn op_put(key: &Bytes, value: Bytes, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: key.clone(),
            value,
            lease,
            ..Default::default()
        })),
    }
}

/// A range as a txn operation.
pub fn op_range(r: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(r)),
    }
}

/// A single-key get as a txn operation.
pub fn op_get(key: &Bytes) -> RequestOp {
    op_range(RangeRequest {
        key: key.clone(),
        ..Default::default()
    })
}

/// A single-key delete as a txn operation.
pub fn op_delete(key: &Bytes) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
            key: key.clone(),
            ..Default::default()
        })),
    }
}

/// The range response of operation `i` of a txn's answer, if it is one.
pub fn range_of(t: &TxnResponse, i: usize) -> Option<&RangeResponse> {
    use crate::proto::etcdserverpb::response_op::Response;
    match t.responses.get(i)?.response.as_ref()? {
        Response::ResponseRange(r) => Some(r),
        _ => None,
    }
}

/// One watcher on a member's own event feed, served by the Watch service's session logic (so
/// history replay and catching up after a lag behave exactly as for remote watchers).
pub struct KeyWatch {
    session: Session,
    feed: Feed,
    pending: VecDeque<WatchResponse>,
    stopping: watch::Receiver<bool>,
}

impl KeyWatch {
    fn start(
        node: &RaftNode,
        key: Bytes,
        range_end: Bytes,
        start_revision: i64,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        let n = node.clone();
        let header: HeaderFn = Arc::new(move |rev| n.header(rev));
        // Nothing here fragments: the watcher does not allow it.
        let (mut session, feed) =
            Session::start(node.store().clone(), node.hub(), header, usize::MAX);
        let create = WatchCreateRequest {
            key,
            range_end,
            start_revision,
            ..Default::default()
        };
        let mut out = Vec::new();
        session.handle(
            WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(create)),
            },
            &mut out,
        );
        KeyWatch {
            session,
            feed,
            pending: out.into(),
            stopping,
        }
    }

    /// The next response carrying events. Fails when the start revision was compacted, or the
    /// member stops.
    pub async fn next(&mut self) -> Result<WatchResponse, Status> {
        loop {
            while let Some(r) = self.pending.pop_front() {
                if r.compact_revision != 0 {
                    return Err(client_error(crate::error::Error::Compacted.into()));
                }
                if r.canceled {
                    return Err(Status::unknown(LOST_WATCHER));
                }
                if !r.events.is_empty() {
                    return Ok(r);
                }
            }
            let mut out = Vec::new();
            let received = tokio::select! {
                biased;
                _ = self.stopping.wait_for(|s| *s) => return Err(Status::unknown(LOST_WATCHER)),
                r = self.feed.recv() => r,
            };
            match received {
                Ok(batch) => self.session.on_batch(&batch, &mut out),
                Err(RecvError::Lagged(_)) => self.session.on_lagged(&mut out),
                Err(RecvError::Closed) => return Err(Status::unknown(LOST_WATCHER)),
            }
            self.pending.extend(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_end(b"lock/"), Bytes::from_static(b"lock0"));
        assert_eq!(prefix_end(b"a\xff"), Bytes::from_static(b"b"));
        assert_eq!(prefix_end(b"\xff\xff"), Bytes::from_static(b"\0"));
    }
}
