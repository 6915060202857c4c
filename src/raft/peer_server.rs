//! The `detcdpb.Peer` service: receives raft messages from other members, and does for
//! followers what only the leader can (propose a write, confirm a read index, change membership).

use openraft::error::{ClientWriteError, RaftError};
use openraft::Raft;
use tonic::{Request, Response, Status};

use crate::cluster::membership::{self, MemberInfo, MembershipOp};
use crate::cluster::Member;
use crate::error::Error;
use crate::proto::detcdpb::peer_server::Peer;
use crate::proto::detcdpb::{ProposeRequest, RaftMessage};

use std::sync::Arc;

use crate::lease::{LeaderAnswer, LeaderCall, Lessor};
use crate::mvcc::Store;

use super::network::{decode, encode};
use super::types::{Request as RaftReq, Response as Applied, TypeConfig};

/// What a forwarded write returns: the apply result and the index it was applied at.
pub type ProposeResult = Result<(Applied, u64), Error>;

/// The peer service of one member.
#[derive(Clone)]
pub struct PeerService {
    raft: Raft<TypeConfig>,
    cluster_id: u64,
    /// The lessor and store, for lease calls forwarded to the leader.
    lease: Option<(Arc<Lessor>, Arc<Store>)>,
    /// The committed membership, for joining members.
    applied_members: Option<Arc<dyn Fn() -> Vec<MemberInfo> + Send + Sync>>,
}

impl PeerService {
    /// Serves `raft` to the other members of `cluster_id`.
    pub fn new(raft: Raft<TypeConfig>, cluster_id: u64) -> Self {
        PeerService {
            raft,
            cluster_id,
            lease: None,
            applied_members: None,
        }
    }

    /// Answers membership queries of joining members with `applied_members` (the committed
    /// membership) rather than raft's latest, which may not be committed.
    pub fn with_applied_members(
        mut self,
        applied_members: Arc<dyn Fn() -> Vec<MemberInfo> + Send + Sync>,
    ) -> Self {
        self.applied_members = Some(applied_members);
        self
    }

    /// Also answers forwarded lease calls, from `lessor` and `store`.
    pub fn with_lease(mut self, lessor: Arc<Lessor>, store: Arc<Store>) -> Self {
        self.lease = Some((lessor, store));
        self
    }

    fn check(&self, cluster_id: u64) -> Result<(), Status> {
        if cluster_id != self.cluster_id {
            return Err(Status::failed_precondition(format!(
                "rafthttp: request cluster ID mismatch (got {cluster_id:x}, want {:x})",
                self.cluster_id
            )));
        }
        Ok(())
    }

    /// Checks a message's cluster and decodes its openraft payload.
    fn open<T: serde::de::DeserializeOwned>(&self, req: Request<RaftMessage>) -> Result<T, Status> {
        let m = req.into_inner();
        self.check(m.cluster_id)?;
        decode(&m.payload).map_err(bad)
    }

    fn reply(&self, payload: bytes::Bytes) -> Result<Response<RaftMessage>, Status> {
        Ok(Response::new(RaftMessage {
            cluster_id: self.cluster_id,
            from: 0,
            payload,
        }))
    }
}

fn bad(e: String) -> Status {
    Status::invalid_argument(e)
}

/// Maps a leader-side raft error to what the forwarding follower should see.
pub fn write_error(e: RaftError<u64, ClientWriteError<u64, Member>>) -> Error {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => Error::NoLeader,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            Error::Internal(e.to_string())
        }
        RaftError::Fatal(_) => Error::Stopped,
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.open(req)?;
        self.reply(encode(&self.raft.append_entries(rpc).await))
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.open(req)?;
        self.reply(encode(&self.raft.vote(rpc).await))
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.open(req)?;
        self.reply(encode(&self.raft.install_snapshot(rpc).await))
    }

    async fn propose(&self, req: Request<ProposeRequest>) -> Result<Response<RaftMessage>, Status> {
        let m = req.into_inner();
        self.check(m.cluster_id)?;
        let request = m
            .request
            .ok_or_else(|| bad("propose without a request".into()))?;
        let result: ProposeResult = match self.raft.client_write(RaftReq(request)).await {
            Ok(r) => Ok((r.data, r.log_id.index)),
            Err(e) => Err(write_error(e)),
        };
        self.reply(encode(&result))
    }

    async fn read_index(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let m = req.into_inner();
        self.check(m.cluster_id)?;
        let result: Result<u64, Error> = match self.raft.get_read_log_id().await {
            Ok((read, _applied)) => Ok(read.map_or(0, |l| l.index)),
            Err(RaftError::APIError(_)) => Err(Error::NoLeader),
            Err(RaftError::Fatal(_)) => Err(Error::Stopped),
        };
        self.reply(encode(&result))
    }

    async fn change_members(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let op: MembershipOp = self.open(req)?;
        let result = membership::execute(&self.raft, op).await;
        self.reply(encode(&result))
    }

    async fn cluster_info(
        &self,
        _req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let members = match &self.applied_members {
            Some(applied) => applied(),
            None => membership::members(&self.raft),
        };
        let info: (u64, Vec<MemberInfo>) = (self.cluster_id, members);
        self.reply(encode(&info))
    }

    async fn campaign(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.check(req.into_inner().cluster_id)?;
        // Keep campaigning (the old leader has gone quiet) until this member leads; bounded.
        let raft = self.raft.clone();
        tokio::spawn(async move {
            for _ in 0..40 {
                let m = raft.metrics().borrow().clone();
                if m.current_leader == Some(m.id) || raft.trigger().elect().await.is_err() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
        let result: Result<(), Error> = Ok(());
        self.reply(encode(&result))
    }

    async fn lease_leader(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let call: LeaderCall = self.open(req)?;
        let result: Result<LeaderAnswer, Error> = match &self.lease {
            Some((lessor, store)) => {
                crate::lease::serve_on_leader(&self.raft, lessor, store, &call).await
            }
            None => Err(Error::NotLeader),
        };
        self.reply(encode(&result))
    }
}
