//! The Lease service: grant and revoke through raft; keep-alive and time-to-live answered by the
//! leader ([`RaftNode::lease_call`]); the lease list from this member's lessor.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::AuthInfo;
use crate::error::Error;
use crate::io::clock;
use crate::lease::grant::{check_grant, min_ttl, IdGen};
use crate::lease::{LeaderAnswer, LeaderCall};
use crate::proto::etcdserverpb::lease_server::Lease;
use crate::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use crate::raft::RaftNode;

use super::caller::caller;
use super::quota::{Quota, LEASE_OVERHEAD};

/// The responses of a LeaseKeepAlive stream.
pub type KeepAliveStream =
    Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

/// etcd's Lease service on one member.
#[derive(Clone)]
pub struct LeaseService {
    node: RaftNode,
    min_ttl: i64,
    ids: Arc<IdGen>,
    quota: Quota,
}

/// The leader answered a lease call with the other call's kind of answer (cannot happen
/// between members of one version).
fn mismatched() -> Error {
    Error::Internal("unexpected answer to a lease call".into())
}

impl LeaseService {
    /// A Lease service on `node`, whose election timeout sets the minimum TTL, granting
    /// within `quota`.
    pub fn new(node: RaftNode, election: Duration, quota: Quota) -> Self {
        let ids = IdGen::new(node.id(), clock::unix_nanos());
        LeaseService {
            node,
            min_ttl: min_ttl(election),
            ids: Arc::new(ids),
            quota,
        }
    }

    /// LeaseGrant as the RPC serves it (the in-process client of the recipes calls it too).
    pub async fn handle_grant(
        &self,
        who: Option<&AuthInfo>,
        r: LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, Error> {
        let lessor = self.node.lessor();
        self.quota.check(&self.node, LEASE_OVERHEAD).await?;
        let g = check_grant(&r, self.min_ttl, || self.ids.next(), |id| lessor.exists(id))?;
        self.node.propose(who, g).await
    }

    async fn renew(&self, id: i64) -> Result<LeaseKeepAliveResponse, Error> {
        match self.node.lease_call(LeaderCall::Renew(id)).await? {
            LeaderAnswer::Renewed(ttl) => Ok(LeaseKeepAliveResponse {
                header: Some(self.node.header(self.node.store().current_revision())),
                id,
                ttl,
            }),
            LeaderAnswer::TimeToLive(..) => Err(mismatched()),
        }
    }
}

#[tonic::async_trait]
impl Lease for LeaseService {
    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_grant(
        &self,
        req: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let who = caller(&self.node, &req).await?;
        Ok(Response::new(
            self.handle_grant(who.as_ref(), req.into_inner()).await?,
        ))
    }

    async fn lease_revoke(
        &self,
        req: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        // Judged when it applies: write permission on every key attached to the lease.
        let who = caller(&self.node, &req).await?;
        let resp = self.node.propose(who.as_ref(), req.into_inner()).await?;
        Ok(Response::new(resp))
    }

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut requests = req.into_inner();
        let service = self.clone();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            // One renewal at a time, in order, as etcd serves a stream.
            while let Ok(Some(r)) = requests.message().await {
                let answer = service.renew(r.id).await.map_err(Status::from);
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    return;
                }
            }
        });
        let stream =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let r = req.into_inner();
        let call = LeaderCall::TimeToLive {
            id: r.id,
            keys: r.keys,
        };
        match self.node.lease_call(call).await? {
            LeaderAnswer::TimeToLive(ttl, granted_ttl, keys) => {
                Ok(Response::new(LeaseTimeToLiveResponse {
                    header: Some(self.node.header(self.node.store().current_revision())),
                    id: r.id,
                    ttl,
                    granted_ttl,
                    keys: keys.into_iter().map(Into::into).collect(),
                }))
            }
            LeaderAnswer::Renewed(_) => Err(mismatched().into()),
        }
    }

    async fn lease_leases(
        &self,
        _req: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let leases = self
            .node
            .lessor()
            .ids()
            .into_iter()
            .map(|id| LeaseStatus { id })
            .collect();
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(self.node.header(self.node.store().current_revision())),
            leases,
        }))
    }
}
