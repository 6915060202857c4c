//! The client the recipes run on: etcd's KV and Lease as a client sees them, and watches on the
//! member's own event feed. etcd serves Lock and Election with its Go client connected to the
//! server itself (`v3client`); detcd's server implements [`Client`] over its own services
//! (`server::embedded`), so every step of a recipe gets the KV API's validation, errors and
//! headers. The request builders below are the few shapes the recipes use.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use crate::error::Error;
use crate::mvcc::Store;
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::proto::etcdserverpb::request_op::Request as Op;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest, RangeRequest, RangeResponse,
    RequestOp, TxnRequest, TxnResponse, WatchCreateRequest, WatchRequest, WatchResponse,
};
use crate::watch::session::{Feed, HeaderFn, Session};
use crate::watch::Hub;

/// The TTL of the lease the services grant when a request names none (etcd's default session
/// TTL). Nobody keeps it alive: a lock or candidacy taken without a lease lasts at most this.
pub const DEFAULT_SESSION_TTL: i64 = 60;

/// What the recipes need from a member. Errors are the KV and Lease APIs' own.
pub trait Client: Clone + Send + Sync + 'static {
    /// A linearizable range request.
    fn range(&self, r: RangeRequest) -> impl Future<Output = Result<RangeResponse, Error>> + Send;
    /// A transaction.
    fn txn(&self, t: TxnRequest) -> impl Future<Output = Result<TxnResponse, Error>> + Send;
    /// Deletes one key.
    fn delete(&self, key: Bytes)
        -> impl Future<Output = Result<DeleteRangeResponse, Error>> + Send;
    /// Grants a lease of `ttl` seconds with a server-chosen ID; returns the ID.
    fn grant(&self, ttl: i64) -> impl Future<Output = Result<i64, Error>> + Send;
    /// Watches `[key, range_end)` from `start_revision`, on this member.
    fn watch(&self, key: Bytes, range_end: Bytes, start_revision: i64) -> KeyWatch;
}

/// `lease`, or a fresh lease of [`DEFAULT_SESSION_TTL`] when it is 0 (etcd's session with no
/// lease given grants one).
pub async fn session_lease(client: &impl Client, lease: i64) -> Result<i64, Error> {
    if lease != 0 {
        return Ok(lease);
    }
    client.grant(DEFAULT_SESSION_TTL).await
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
    /// Watches `[key, range_end)` of `store` from `start_revision`, following `hub`; `header`
    /// fills response headers. Ends when `stopping` turns true, so a request waiting for a lock
    /// or a leadership cannot hold up the member's shutdown.
    pub fn start(
        store: Arc<Store>,
        hub: &Hub,
        header: HeaderFn,
        key: Bytes,
        range_end: Bytes,
        start_revision: i64,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        // Nothing here fragments: the watcher does not allow it.
        let (mut session, feed) = Session::start(store, hub, header, usize::MAX);
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
    pub async fn next(&mut self) -> Result<WatchResponse, Error> {
        loop {
            while let Some(r) = self.pending.pop_front() {
                if r.compact_revision != 0 {
                    return Err(Error::Compacted);
                }
                if r.canceled {
                    return Err(Error::LostWatcher);
                }
                if !r.events.is_empty() {
                    return Ok(r);
                }
            }
            let mut out = Vec::new();
            let received = tokio::select! {
                biased;
                _ = self.stopping.wait_for(|s| *s) => return Err(Error::LostWatcher),
                r = self.feed.recv() => r,
            };
            match received {
                Ok(batch) => self.session.on_batch(&batch, &mut out),
                Err(RecvError::Lagged(_)) => self.session.on_lagged(&mut out),
                Err(RecvError::Closed) => return Err(Error::LostWatcher),
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
