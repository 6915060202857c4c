//! Proposing a write: `node.propose(PutRequest { .. })` returns the `PutResponse` of applying
//! it, header filled — from this member, which forwards the write to the leader if it does not
//! lead and answers once it has applied the write itself (so a read here right after sees it).

use openraft::error::{ClientWriteError, RaftError};
use prost::Message;

use super::batch::Outcome;

use crate::auth::AuthInfo;
use crate::cluster::Member;
use crate::error::Error;
use crate::io::clock;
use crate::proto::detcdpb::raft_request::Request as Req;
use crate::proto::detcdpb::{InternalAuthenticateRequest, RaftRequest, RequestAuth};
use crate::proto::etcdserverpb::*;

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
    /// Whether etcd answers with a header (its Alarm responses have none).
    const HAS_HEADER: bool = true;
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

impl Proposal for AlarmRequest {
    type Response = AlarmResponse;
    const HAS_HEADER: bool = false;
    fn command(self) -> Req {
        Req::Alarm(self)
    }
    fn response(applied: Applied) -> Option<AlarmResponse> {
        match applied {
            Applied::Alarm(r) => Some(AlarmResponse {
                header: None,
                alarms: r.alarms,
            }),
            _ => None,
        }
    }
    fn header(response: &mut AlarmResponse) -> &mut Option<ResponseHeader> {
        &mut response.header
    }
}

/// Auth changes: every one answers only a header.
macro_rules! auth_proposals {
    ($($request:ident => $response:ident, $variant:ident;)*) => {$(
        impl Proposal for $request {
            type Response = $response;
            fn command(self) -> Req {
                Req::$variant(self)
            }
            fn response(applied: Applied) -> Option<$response> {
                match applied {
                    Applied::Auth(a) => Some($response { header: a.header }),
                    _ => None,
                }
            }
            fn header(response: &mut $response) -> &mut Option<ResponseHeader> {
                &mut response.header
            }
        }
    )*};
}

auth_proposals! {
    AuthEnableRequest => AuthEnableResponse, AuthEnable;
    AuthDisableRequest => AuthDisableResponse, AuthDisable;
    AuthUserAddRequest => AuthUserAddResponse, UserAdd;
    AuthUserDeleteRequest => AuthUserDeleteResponse, UserDelete;
    AuthUserChangePasswordRequest => AuthUserChangePasswordResponse, UserChangePassword;
    AuthUserGrantRoleRequest => AuthUserGrantRoleResponse, UserGrantRole;
    AuthUserRevokeRoleRequest => AuthUserRevokeRoleResponse, UserRevokeRole;
    AuthRoleAddRequest => AuthRoleAddResponse, RoleAdd;
    AuthRoleDeleteRequest => AuthRoleDeleteResponse, RoleDelete;
    AuthRoleGrantPermissionRequest => AuthRoleGrantPermissionResponse, RoleGrantPermission;
    AuthRoleRevokePermissionRequest => AuthRoleRevokePermissionResponse, RoleRevokePermission;
}

impl Proposal for InternalAuthenticateRequest {
    type Response = AuthenticateResponse;
    fn command(self) -> Req {
        Req::Authenticate(self)
    }
    fn response(applied: Applied) -> Option<AuthenticateResponse> {
        match applied {
            Applied::Auth(a) => Some(AuthenticateResponse {
                header: a.header,
                token: a.token,
            }),
            _ => None,
        }
    }
    fn header(response: &mut AuthenticateResponse) -> &mut Option<ResponseHeader> {
        &mut response.header
    }
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
    /// Proposes `request` as `who` through raft and returns its typed response, header filled.
    /// The entry carries `who`, judged when it applies. Refused with `RequestTooLarge` above
    /// `--max-request-bytes`; never proposed twice (see [`Retry::AtMostOnce`]).
    pub async fn propose<P: Proposal>(
        &self,
        who: Option<&AuthInfo>,
        request: P,
    ) -> Result<P::Response, Error> {
        let applied = self
            .propose_command(RaftRequest {
                request: Some(request.command()),
                auth: who.map(|w| RequestAuth {
                    username: w.username.clone(),
                    revision: w.revision,
                    system: false,
                }),
                expired_in_term: 0,
            })
            .await?;
        let mut response = P::response(applied).ok_or_else(|| {
            Error::Internal("unexpected apply result for the request's kind".into())
        })?;
        if P::HAS_HEADER {
            self.fill(P::header(&mut response));
        }
        Ok(response)
    }

    async fn propose_command(&self, req: RaftRequest) -> Result<Applied, Error> {
        if req.encoded_len() > self.settings.max_request_bytes {
            return Err(Error::RequestTooLarge);
        }
        let pending = self.proposal_metrics().pending();
        let deadline = clock::now() + REQUEST_TIMEOUT;
        let (node, req) = (self, &req);
        let outcome = self
            .leader_or_forward(
                Retry::AtMostOnce,
                deadline,
                move || async move {
                    node.before_proposing(req);
                    // Proposed but not committed in time (a leader cut off from its quorum):
                    // the outcome is unknown, as etcd's "request timed out" says.
                    match clock::timeout_at(deadline, node.batcher.propose(req.clone())).await {
                        Err(_) => Here::Done(Err(Error::Timeout)),
                        Ok(Outcome::Applied(a, _)) => Here::Done(Ok(a)),
                        Ok(Outcome::NotLeader(leader)) => Here::Elsewhere(leader),
                        Ok(Outcome::Failed(e)) => Here::Done(Err(e)),
                    }
                },
                move |leader| async move {
                    let (applied, index) = node.forwarder.forward(leader, req.clone()).await?;
                    node.wait_applied(index, deadline).await?;
                    Ok(applied)
                },
            )
            .await;
        // An entry that applied is a proposal that succeeded, even if the state refused it.
        pending.finish(outcome.is_ok());
        accepted(outcome?)
    }

    /// What the leader settles before it proposes `req`: a lease grant finds the lessor primary
    /// for this term, so the lease expires its TTL after the grant.
    fn before_proposing(&self, req: &RaftRequest) {
        if matches!(req.request, Some(Req::LeaseGrant(_))) {
            self.promote_lessor_if_leading();
        }
    }

    /// Proposes on this member only, never forwarding (the leader serving a forwarded write,
    /// and the leader's own lease revocations and checkpoints, which must not be carried out by
    /// a member that lost leadership meanwhile).
    pub async fn propose_here(&self, req: RaftRequest) -> ProposeResult {
        self.before_proposing(&req);
        match self.batcher.propose(req).await {
            Outcome::Applied(a, index) => Ok((a, index)),
            Outcome::NotLeader(_) => Err(Error::NoLeader),
            Outcome::Failed(e) => Err(e),
        }
    }
}
