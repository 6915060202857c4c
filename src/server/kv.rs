//! The KV service: check ([`check`](super::check)), establish the caller
//! ([`caller`](super::caller)), then read the store or propose through raft; errors map to
//! etcd's statuses in one place ([`crate::error`]), headers are filled by the node.
//!
//! Writes carry the caller into their log entry and are judged when they apply. Reads are
//! judged here, before they run and again after if the auth store changed meanwhile (etcd's
//! `doSerialize`): a read never returns what a permission revoked before it finished hid.

use tonic::{Request, Response, Status};

use crate::auth::{request as perms, AuthInfo};
use crate::error::Error;
use crate::proto::etcdserverpb::kv_server::Kv;
use crate::proto::etcdserverpb::{
    AlarmType, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use crate::raft::RaftNode;

use super::caller::caller;
use super::check;
use super::quota::{cost_put, cost_txn, Quota};

/// etcd's KV service on one member.
#[derive(Clone)]
pub struct KvService {
    node: RaftNode,
    max_txn_ops: usize,
    quota: Quota,
}

impl KvService {
    /// A KV service of `node`, allowing `max_txn_ops` operations per txn branch and puts within
    /// `quota`.
    pub fn new(node: RaftNode, max_txn_ops: usize, quota: Quota) -> Self {
        KvService {
            node,
            max_txn_ops,
            quota,
        }
    }

    /// Refuses every read while the CORRUPT alarm is raised, as etcd does.
    fn readable(&self) -> Result<(), Error> {
        if self.node.alarms().raised(AlarmType::Corrupt) {
            return Err(Error::Corrupt);
        }
        Ok(())
    }

    /// Runs `read` once `permitted` allows it to `who`, and again while the auth store changed
    /// between the check and the read's end. An identity by simple token or certificate is
    /// re-judged at the new auth revision; a JWT carries its own, which then is stale.
    fn judged_read<T>(
        &self,
        who: Option<&AuthInfo>,
        permitted: impl Fn(Option<&AuthInfo>) -> Result<(), Error>,
        read: impl Fn() -> Result<T, Error>,
    ) -> Result<T, Error> {
        let auth = self.node.auth();
        let mut who = who.cloned();
        loop {
            permitted(who.as_ref())?;
            let out = read()?;
            match &mut who {
                Some(w) if auth.enabled() && w.revision != 0 && w.revision < auth.revision() => {
                    if !auth.tokens().is_jwt() {
                        w.revision = auth.revision();
                    }
                }
                _ => return Ok(out),
            }
        }
    }

    /// Range as the RPC serves it (the in-process client of the recipes calls it too).
    pub async fn handle_range(
        &self,
        who: Option<&AuthInfo>,
        r: RangeRequest,
    ) -> Result<RangeResponse, Error> {
        check::check_range(&r)?;
        self.readable()?;
        if !r.serializable {
            self.node.read_barrier().await?;
        }
        let auth = self.node.auth();
        let mut resp = self.judged_read(
            who,
            |who| perms::check_range(auth, who, &r),
            || self.node.store().range(&r),
        )?;
        self.node.fill(&mut resp.header);
        Ok(resp)
    }

    /// Put as the RPC serves it.
    pub async fn handle_put(
        &self,
        who: Option<&AuthInfo>,
        r: PutRequest,
    ) -> Result<PutResponse, Error> {
        check::check_put(&r)?;
        self.quota.check(&self.node, cost_put(&r)).await?;
        self.node.propose(who, r).await
    }

    /// DeleteRange as the RPC serves it.
    pub async fn handle_delete_range(
        &self,
        who: Option<&AuthInfo>,
        r: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, Error> {
        check::check_delete(&r)?;
        self.node.propose(who, r).await
    }

    /// Txn as the RPC serves it. A txn that only reads needs no log entry: like etcd, it is
    /// served from the store after the read barrier, judged as a read.
    pub async fn handle_txn(
        &self,
        who: Option<&AuthInfo>,
        r: TxnRequest,
    ) -> Result<TxnResponse, Error> {
        check::check_txn(&r, self.max_txn_ops)?;
        self.quota.check(&self.node, cost_txn(&r)).await?;
        if !check::txn_is_read_only(&r) {
            return self.node.propose(who, r).await;
        }
        self.readable()?;
        if !check::txn_is_serializable(&r) {
            self.node.read_barrier().await?;
        }
        let auth = self.node.auth();
        let mut resp = self.judged_read(
            who,
            |who| perms::check_txn(auth, who, &r),
            || self.node.store().read_only_txn(&r),
        )?;
        self.node.fill(&mut resp.header);
        Ok(resp)
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let who = caller(&self.node, &req).await?;
        let resp = self.handle_range(who.as_ref(), req.into_inner()).await?;
        Ok(Response::new(resp))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let who = caller(&self.node, &req).await?;
        let resp = self.handle_put(who.as_ref(), req.into_inner()).await?;
        Ok(Response::new(resp))
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let who = caller(&self.node, &req).await?;
        let resp = self
            .handle_delete_range(who.as_ref(), req.into_inner())
            .await?;
        Ok(Response::new(resp))
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let who = caller(&self.node, &req).await?;
        let resp = self.handle_txn(who.as_ref(), req.into_inner()).await?;
        Ok(Response::new(resp))
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        // Anyone may compact, as in etcd; the caller still has to be valid.
        let who = caller(&self.node, &req).await?;
        let resp = self.node.propose(who.as_ref(), req.into_inner()).await?;
        Ok(Response::new(resp))
    }
}
