//! The KV service: validate, then read the store or propose through raft, then fill the header.

use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::proto::detcdpb::raft_request::Request as Req;
use crate::proto::detcdpb::RaftRequest;
use crate::proto::etcdserverpb::kv_server::Kv;
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use crate::raft::types::Response as Applied;
use crate::raft::RaftNode;

use super::check;

/// etcd's KV service on one member.
#[derive(Clone)]
pub struct KvService {
    node: RaftNode,
    max_txn_ops: usize,
}

impl KvService {
    /// A KV service proposing through `node`.
    pub fn new(node: RaftNode, max_txn_ops: usize) -> Self {
        KvService { node, max_txn_ops }
    }

    async fn propose(&self, request: Req) -> Result<Applied, Error> {
        self.node
            .write(RaftRequest {
                request: Some(request),
            })
            .await
    }
}

fn unexpected(what: &str) -> Status {
    Status::internal(format!("etcdserver: unexpected apply result for {what}"))
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let r = req.into_inner();
        check::check_range(&r)?;
        if !r.serializable {
            self.node.read_barrier().await?;
        }
        let mut resp = self.node.store().range(&r)?;
        self.node.fill(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let r = req.into_inner();
        check::check_put(&r)?;
        match self.propose(Req::Put(r)).await? {
            Applied::Put(mut resp) => {
                self.node.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected("put")),
        }
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let r = req.into_inner();
        check::check_delete(&r)?;
        match self.propose(Req::DeleteRange(r)).await? {
            Applied::DeleteRange(mut resp) => {
                self.node.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected("delete")),
        }
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let r = req.into_inner();
        check::check_txn(&r, self.max_txn_ops)?;
        if check::txn_is_read_only(&r) {
            // Reads need no log entry: like etcd, serve them from the store after the read barrier.
            if !check::txn_is_serializable(&r) {
                self.node.read_barrier().await?;
            }
            let mut resp = self.node.store().read_only_txn(&r)?;
            self.node.fill(&mut resp.header);
            return Ok(Response::new(resp));
        }
        match self.propose(Req::Txn(r)).await? {
            Applied::Txn(mut resp) => {
                self.node.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected("txn")),
        }
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let r = req.into_inner();
        match self.propose(Req::Compaction(r)).await? {
            Applied::Compaction(mut resp) => {
                self.node.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected("compaction")),
        }
    }
}
