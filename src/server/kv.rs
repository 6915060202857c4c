//! The KV service: check ([`check`](super::check)), then read the store or propose through
//! raft; errors map to etcd's statuses in one place ([`crate::error`]), headers are filled by the
//! node.

use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::proto::etcdserverpb::kv_server::Kv;
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use crate::raft::RaftNode;

use super::check;

/// etcd's KV service on one member.
#[derive(Clone)]
pub struct KvService {
    node: RaftNode,
    max_txn_ops: usize,
}

impl KvService {
    /// A KV service of `node`, allowing `max_txn_ops` operations per txn branch.
    pub fn new(node: RaftNode, max_txn_ops: usize) -> Self {
        KvService { node, max_txn_ops }
    }

    /// Range as the RPC serves it (the in-process client of the recipes calls it too).
    pub async fn handle_range(&self, r: RangeRequest) -> Result<RangeResponse, Error> {
        check::check_range(&r)?;
        if !r.serializable {
            self.node.read_barrier().await?;
        }
        let mut resp = self.node.store().range(&r)?;
        self.node.fill(&mut resp.header);
        Ok(resp)
    }

    /// Put as the RPC serves it.
    pub async fn handle_put(&self, r: PutRequest) -> Result<PutResponse, Error> {
        check::check_put(&r)?;
        self.node.propose(r).await
    }

    /// DeleteRange as the RPC serves it.
    pub async fn handle_delete_range(
        &self,
        r: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, Error> {
        check::check_delete(&r)?;
        self.node.propose(r).await
    }

    /// Txn as the RPC serves it. A txn that only reads needs no log entry: like etcd, it is
    /// served from the store after the read barrier.
    pub async fn handle_txn(&self, r: TxnRequest) -> Result<TxnResponse, Error> {
        check::check_txn(&r, self.max_txn_ops)?;
        if !check::txn_is_read_only(&r) {
            return self.node.propose(r).await;
        }
        if !check::txn_is_serializable(&r) {
            self.node.read_barrier().await?;
        }
        let mut resp = self.node.store().read_only_txn(&r)?;
        self.node.fill(&mut resp.header);
        Ok(resp)
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        Ok(Response::new(self.handle_range(req.into_inner()).await?))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        Ok(Response::new(self.handle_put(req.into_inner()).await?))
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        Ok(Response::new(
            self.handle_delete_range(req.into_inner()).await?,
        ))
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        Ok(Response::new(self.handle_txn(req.into_inner()).await?))
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        Ok(Response::new(self.node.propose(req.into_inner()).await?))
    }
}
