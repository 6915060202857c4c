//! The member's in-process client (etcd's `v3client`): the recipes' [`Client`] served by this
//! member's own KV and Lease services — so each step gets their checks, errors and headers —
//! and by watches on its own event feed.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;

use crate::auth::AuthInfo;
use crate::error::Error;
use crate::proto::etcdserverpb::{
    DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest, RangeRequest, RangeResponse,
    TxnRequest, TxnResponse,
};
use crate::raft::RaftNode;
use crate::recipes::client::{Client, KeyWatch};
use crate::watch::session::HeaderFn;

use super::kv::KvService;
use super::lease::LeaseService;

/// The in-process client of one member, acting as one caller.
#[derive(Clone)]
pub struct LocalClient {
    node: RaftNode,
    kv: KvService,
    lease: LeaseService,
    stopping: watch::Receiver<bool>,
    /// Whom its requests are made as (etcd's v3client passes the caller's context on).
    who: Option<AuthInfo>,
}

impl LocalClient {
    /// A client of `node` through its `kv` and `lease` services. Its watches end when
    /// `stopping` turns true (a graceful server shutdown waits for every call in progress, and a
    /// Lock or Campaign may wait forever otherwise).
    pub fn new(
        node: RaftNode,
        kv: KvService,
        lease: LeaseService,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        LocalClient {
            node,
            kv,
            lease,
            stopping,
            who: None,
        }
    }

    /// The same client making its requests as `who`.
    pub fn acting_as(&self, who: Option<AuthInfo>) -> Self {
        LocalClient {
            who,
            ..self.clone()
        }
    }

    /// The same client acting as the caller of `req`.
    pub async fn for_caller<T>(&self, req: &tonic::Request<T>) -> Result<Self, Error> {
        Ok(self.acting_as(super::caller::caller(&self.node, req).await?))
    }

    /// The member this client is served by.
    pub fn node(&self) -> &RaftNode {
        &self.node
    }
}

impl Client for LocalClient {
    async fn range(&self, r: RangeRequest) -> Result<RangeResponse, Error> {
        self.kv.handle_range(self.who.as_ref(), r).await
    }

    async fn txn(&self, t: TxnRequest) -> Result<TxnResponse, Error> {
        self.kv.handle_txn(self.who.as_ref(), t).await
    }

    async fn delete(&self, key: Bytes) -> Result<DeleteRangeResponse, Error> {
        let req = DeleteRangeRequest {
            key,
            ..Default::default()
        };
        self.kv.handle_delete_range(self.who.as_ref(), req).await
    }

    async fn grant(&self, ttl: i64) -> Result<i64, Error> {
        let req = LeaseGrantRequest { ttl, id: 0 };
        Ok(self.lease.handle_grant(self.who.as_ref(), req).await?.id)
    }

    fn watch(&self, key: Bytes, range_end: Bytes, start_revision: i64) -> KeyWatch {
        let node = self.node.clone();
        let header: HeaderFn = Arc::new(move |rev| node.header(rev));
        KeyWatch::start(
            self.node.store().clone(),
            self.node.hub(),
            header,
            key,
            range_end,
            start_revision,
            self.stopping.clone(),
        )
    }
}
