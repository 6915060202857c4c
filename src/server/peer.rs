//! The `detcdpb.Peer` service on the peer URLs: raft's messages from other members, and what a
//! follower asks of the leader (propose a write, a read index, a membership change, a lease
//! call) or a joining member asks of anyone (the cluster's ID and committed members). Each
//! handler checks the sender's cluster, decodes, calls the node, encodes the answer.
//!
//! The peer port is a trust boundary (peer TLS and `--peer-cert-allowed-cn/hostname` decide who
//! gets in), and even a member is held to the client rules: a forwarded write is checked as the
//! KV service checks it before it reaches the log, and only the leader may ask a member to
//! campaign (its MoveLeader).

use tonic::{Request, Response, Status};

use crate::alarm::corrupt::KvHash;
use crate::cluster::membership::{MemberInfo, MembershipOp, MEMBER_REMOVED};
use crate::error::Error;
use crate::lease::{LeaderAnswer, LeaderCall};
use crate::proto::detcdpb::peer_server::Peer;
use crate::proto::detcdpb::raft_request::Request as Req;
use crate::proto::detcdpb::{ProposeRequest, RaftMessage, RaftRequest};
use crate::raft::network::{decode, encode};
use crate::raft::peer_metrics::peer;
use crate::raft::propose::ProposeResult;
use crate::raft::RaftNode;

use super::check;

/// The peer service of one member.
#[derive(Clone)]
pub struct PeerService {
    node: RaftNode,
    max_txn_ops: usize,
}

impl PeerService {
    /// Serves `node` to the other members of its cluster, holding forwarded txns to
    /// `max_txn_ops` operations per branch.
    pub fn new(node: RaftNode, max_txn_ops: usize) -> Self {
        PeerService { node, max_txn_ops }
    }

    /// The checks a client write gets from the KV service, for a write a member forwarded.
    fn validate(&self, r: &RaftRequest, nested: bool) -> Result<(), Error> {
        match &r.request {
            Some(Req::Batch(b)) if !nested => {
                b.requests.iter().try_for_each(|r| self.validate(r, true))
            }
            Some(Req::Batch(_)) => Err(Error::Internal("a batch inside a batch".into())),
            Some(Req::Put(p)) => check::check_put(p),
            Some(Req::DeleteRange(d)) => check::check_delete(d),
            Some(Req::Txn(t)) => check::check_txn(t, self.max_txn_ops),
            _ => Ok(()),
        }
    }

    fn check(&self, cluster_id: u64) -> Result<(), Status> {
        let mine = self.node.cluster_id();
        if cluster_id != mine {
            return Err(Status::failed_precondition(format!(
                "rafthttp: request cluster ID mismatch (got {cluster_id:x}, want {mine:x})"
            )));
        }
        Ok(())
    }

    /// Checks a message's cluster and decodes its payload.
    fn open<T: serde::de::DeserializeOwned>(&self, req: Request<RaftMessage>) -> Result<T, Status> {
        let m = req.into_inner();
        self.check(m.cluster_id)?;
        if self.node.is_removed_member(m.from) {
            return Err(Status::failed_precondition(MEMBER_REMOVED));
        }
        let from = peer("From", m.from);
        let metrics = &self.node.peer_metrics().received_bytes;
        metrics.get_or_create(&from).inc_by(m.payload.len() as u64);
        decode(&m.payload).map_err(Status::invalid_argument)
    }

    fn reply(&self, payload: bytes::Bytes) -> Result<Response<RaftMessage>, Status> {
        Ok(Response::new(RaftMessage {
            cluster_id: self.node.cluster_id(),
            from: 0,
            payload,
        }))
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.open(req)?;
        self.reply(encode(&self.node.raft().append_entries(rpc).await))
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.open(req)?;
        self.reply(encode(&self.node.raft().vote(rpc).await))
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.open(req)?;
        self.reply(encode(&self.node.raft().install_snapshot(rpc).await))
    }

    async fn propose(&self, req: Request<ProposeRequest>) -> Result<Response<RaftMessage>, Status> {
        let m = req.into_inner();
        self.check(m.cluster_id)?;
        let request = m
            .request
            .ok_or_else(|| Status::invalid_argument("propose without a request"))?;
        let result: ProposeResult = match self.validate(&request, false) {
            Ok(()) => self.node.propose_here(request).await,
            Err(e) => Err(e),
        };
        self.reply(encode(&result))
    }

    async fn read_index(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.check(req.into_inner().cluster_id)?;
        let result: Result<u64, Error> = self.node.read_index_here().await;
        self.reply(encode(&result))
    }

    async fn change_members(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let op: MembershipOp = self.open(req)?;
        let result = self.node.change_membership_here(op).await;
        self.reply(encode(&result))
    }

    async fn cluster_info(
        &self,
        _req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        // The committed membership: raft's latest may list a member whose addition a new
        // leader rolls back.
        let info: (u64, Vec<MemberInfo>) = (self.node.cluster_id(), self.node.applied_members());
        self.reply(encode(&info))
    }

    async fn campaign(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let m = req.into_inner();
        self.check(m.cluster_id)?;
        // Only as part of a MoveLeader the leader started: a campaign costs the cluster a term
        // and its writes for an election.
        if m.from == self.node.id() || self.node.leader() != Some(m.from) {
            return Err(Status::permission_denied(format!(
                "member {:x} asked for a campaign but is not the leader",
                m.from
            )));
        }
        self.node.campaign_for_transfer();
        let result: Result<(), Error> = Ok(());
        self.reply(encode(&result))
    }

    async fn lease_leader(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let call: LeaderCall = self.open(req)?;
        let result: Result<LeaderAnswer, Error> = self.node.serve_lease_call(&call).await;
        self.reply(encode(&result))
    }

    async fn hash_kv(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rev: i64 = self.open(req)?;
        let result: Result<KvHash, Error> = self.node.kv_hash(rev);
        self.reply(encode(&result))
    }
}
