//! Proposing a write: `node.propose(PutRequest { .. })` returns the `PutResponse` of applying
//! it, header filled — from this member, which forwards the write to the leader if it does not
//! lead and answers once it has applied the write itself (so a read here right after sees it).

use openraft::error::{ClientWriteError, RaftError};
use prost::Message;

use super::batch::Outcome;

use crate::cluster::Member;
use crate::error::Error;
use crate::io::clock;
use crate::proto::detcdpb::raft_request::Request as Req;
use crate::proto::detcdpb::RaftRequest;
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    LeaseCheckpointRequest, LeaseCheckpointResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, PutRequest, PutResponse, ResponseHeader, TxnRequest,
    TxnResponse,
};

use super::forward::{Here, Retry, REQUEST_TIMEOUT};
use super::types::Applied;
use super::RaftNode;

/// What a forwarded write returns: the apply result and the log index it was applied at.
pub type ProposeResult = Result<(Applied, u64), Error>;

/// An etcd request that is a write: what it becomes in the log, and its typed response.
pub trait Proposal {
    /// etcd's response message for this request.
    type Response;
    /// The request as a log command.
    fn command(self) -> Req;
    /// The response, if `applied` is this request's kind of result.
    fn response(applied: Applied) -> Option<Self::Response>;
    /// The response's header, to fill.
    fn header(response: &mut Self::Response) -> &mut Option<ResponseHeader>;
}

macro_rules! proposals {
    ($($request:ident => $response:ident, $variant:ident;)*) => {$(
        impl Proposal for $request {
            type Response = $response;
            fn command(self) -> Req {
                Req::$variant(self)
            }
            fn response(applied: Applied) -> Option<$response> {
                match applied {
                    Applied::$variant(r) => Some(r),
                    _ => None,
                }
            }
            fn header(response: &mut $response) -> &mut Option<ResponseHeader> {
                &mut response.header
            }
        }
    )*};
}

proposals! {
    PutRequest => PutResponse, Put;
    DeleteRangeRequest => DeleteRangeResponse, DeleteRange;
    TxnRequest => TxnResponse, Txn;
    CompactionRequest => CompactionResponse, Compaction;
    LeaseGrantRequest => LeaseGrantResponse, LeaseGrant;
    LeaseRevokeRequest => LeaseRevokeResponse, LeaseRevoke;
    LeaseCheckpointRequest => LeaseCheckpointResponse, LeaseCheckpoint;
}

/// Maps a leader-side raft write error to what the proposer sees.
pub fn write_error(e: RaftError<u64, ClientWriteError<u64, Member>>) -> Error {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => Error::NoLeader,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            Error::Internal(e.to_string())
        }
        RaftError::Fatal(_) => Error::Stopped,
    }
}

/// Turns an apply result into the proposer's answer: a request the state refused is an error.
fn accepted(a: Applied) -> Result<Applied, Error> {
    match a {
        Applied::Rejected(e) => Err(e),
        other => Ok(other),
    }
}

impl RaftNode {
    /// Proposes `request` through raft and returns its typed response, header filled. Refused
    /// with `RequestTooLarge` above `--max-request-bytes`; never proposed twice (see
    /// [`Retry::AtMostOnce`]).
    pub async fn propose<P: Proposal>(&self, request: P) -> Result<P::Response, Error> {
        let applied = self
            .propose_command(RaftRequest {
                request: Some(request.command()),
            })
            .await?;
        let mut response = P::response(applied).ok_or_else(|| {
            Error::Internal("unexpected apply result for the request's kind".into())
        })?;
        self.fill(P::header(&mut response));
        Ok(response)
    }

    async fn propose_command(&self, req: RaftRequest) -> Result<Applied, Error> {
        if req.encoded_len() > self.settings.max_request_bytes {
            return Err(Error::RequestTooLarge);
        }
        let deadline = clock::now() + REQUEST_TIMEOUT;
        let (node, req) = (self, &req);
        self.leader_or_forward(
            Retry::AtMostOnce,
            deadline,
            move || async move {
                // Proposed but not committed in time (a leader cut off from its quorum): the
                // outcome is unknown, as etcd's "request timed out" says.
                match clock::timeout_at(deadline, node.batcher.propose(req.clone())).await {
                    Err(_) => Here::Done(Err(Error::Timeout)),
                    Ok(Outcome::Applied(a, _)) => Here::Done(accepted(a)),
                    Ok(Outcome::NotLeader(leader)) => Here::Elsewhere(leader),
                    Ok(Outcome::Failed(e)) => Here::Done(Err(e)),
                }
            },
            move |leader| async move {
                let (applied, index) = node.forwarder.forward(leader, req.clone()).await?;
                node.wait_applied(index, deadline).await?;
                accepted(applied)
            },
        )
        .await
    }

    /// Proposes on this member only, never forwarding (the leader serving a forwarded write,
    /// and the leader's own lease revocations and checkpoints, which must not be carried out by
    /// a member that lost leadership meanwhile).
    pub async fn propose_here(&self, req: RaftRequest) -> ProposeResult {
        match self.batcher.propose(req).await {
            Outcome::Applied(a, index) => Ok((a, index)),
            Outcome::NotLeader(_) => Err(Error::NoLeader),
            Outcome::Failed(e) => Err(e),
        }
    }
}
