//! The gRPC Election service (v3election): Campaign, Proclaim, Leader, Observe, Resign.

use bytes::Bytes;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::lock::embedded::{by_create, created_at, op_delete, op_get, op_put, range_of, Embedded};
use crate::lock::queue::{still_queued, wait_deletes, withdraw, Withdraw};
use crate::lock::service::{prefix, waiter_key};
use crate::proto::etcdserverpb::range_request::SortOrder;
use crate::proto::etcdserverpb::{ResponseHeader, TxnRequest};
use crate::proto::v3electionpb::election_server::Election;
use crate::proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};

use super::observe;

/// etcd's error for Leader when nobody leads.
pub const NO_LEADER: &str = "election: no leader";
/// etcd's error for Proclaim by a candidate that no longer leads.
pub const NOT_LEADER: &str = "election: not leader";
/// The error of a Campaign whose key vanished (its lease expired) while it waited.
pub const SESSION_EXPIRED: &str = "election: session expired";
/// etcd's error for Proclaim and Resign without a leader key.
pub const MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";

/// The stream of an Observe call.
pub type ObserveStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<LeaderResponse, Status>> + Send + 'static>>;

/// etcd's Election service on one member.
#[derive(Clone)]
pub struct ElectionService {
    client: Embedded,
}

impl ElectionService {
    /// An Election service making its requests through `client`.
    pub fn new(client: Embedded) -> Self {
        ElectionService { client }
    }
}

/// Sets the leader's value if `leader` still leads; returns the txn's header.
async fn proclaim(
    c: &Embedded,
    leader: &LeaderKey,
    value: Bytes,
) -> Result<Option<ResponseHeader>, Status> {
    let t = TxnRequest {
        compare: vec![created_at(&leader.key, leader.rev)],
        success: vec![op_put(&leader.key, value, leader.lease)],
        failure: Vec::new(),
    };
    let resp = c.txn(t).await?;
    if !resp.succeeded {
        return Err(Status::unknown(NOT_LEADER));
    }
    Ok(resp.header)
}

#[tonic::async_trait]
impl Election for ElectionService {
    type ObserveStream = ObserveStream;

    async fn campaign(
        &self,
        req: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let r = req.into_inner();
        let c = &self.client;
        let lease = c.session_lease(r.lease).await?;
        let key = waiter_key(&r.name, lease);
        let t = TxnRequest {
            compare: vec![created_at(&key, 0)],
            success: vec![op_put(&key, r.value.clone(), lease)],
            failure: vec![op_get(&key)],
        };
        let resp = c.txn(t).await?;
        let mut leader = LeaderKey {
            name: r.name.clone(),
            key: key.clone(),
            rev: resp.header.as_ref().map_or(0, |h| h.revision),
            lease,
        };
        if !resp.succeeded {
            // This lease already campaigns: keep its place, and its value up to date.
            if let Some(kv) = range_of(&resp, 0).and_then(|g| g.kvs.first()) {
                leader.rev = kv.create_revision;
                if kv.value != r.value {
                    if let Err(e) = proclaim(c, &leader, r.value.clone()).await {
                        let _ = withdraw(c, key.clone(), leader.rev).await;
                        return Err(e);
                    }
                }
            }
        }
        // As for locks: only the request that created the key withdraws it if abandoned.
        let guard = resp.succeeded.then(|| Withdraw::new(c, &key, leader.rev));
        wait_deletes(c, &prefix(&r.name), leader.rev - 1).await?;
        // A candidacy whose lease expired while it waited is gone: it does not lead. (etcd
        // answers success here; leadership without the key would contradict Proclaim's and
        // Resign's fencing.)
        if !still_queued(c, &key, leader.rev).await? {
            return Err(Status::unknown(SESSION_EXPIRED));
        }
        if let Some(g) = guard {
            g.keep();
        }
        Ok(Response::new(CampaignResponse {
            header: resp.header,
            leader: Some(leader),
        }))
    }

    async fn proclaim(
        &self,
        req: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let r = req.into_inner();
        let mut leader = r
            .leader
            .ok_or_else(|| Status::unknown(MISSING_LEADER_KEY))?;
        // Like etcd, a leader key without a lease proclaims under a fresh session lease.
        leader.lease = self.client.session_lease(leader.lease).await?;
        let header = proclaim(&self.client, &leader, r.value).await?;
        Ok(Response::new(ProclaimResponse { header }))
    }

    async fn leader(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let r = req.into_inner();
        let resp = self
            .client
            .range(by_create(&prefix(&r.name), SortOrder::Ascend, 0))
            .await?;
        let kv = resp
            .kvs
            .into_iter()
            .next()
            .ok_or_else(|| Status::unknown(NO_LEADER))?;
        Ok(Response::new(LeaderResponse {
            header: resp.header,
            kv: Some(kv),
        }))
    }

    async fn observe(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let name = req.into_inner().name;
        let (tx, rx) = mpsc::channel(16);
        let client = self.client.clone();
        tokio::spawn(async move {
            tokio::select! {
                // Deterministic under the simulator: no random branch order.
                biased;
                _ = observe::run(&client, &name, &tx) => {}
                _ = tx.closed() => {}
            }
        });
        let stream =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn resign(
        &self,
        req: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let r = req.into_inner();
        let leader = r
            .leader
            .ok_or_else(|| Status::unknown(MISSING_LEADER_KEY))?;
        let t = TxnRequest {
            compare: vec![created_at(&leader.key, leader.rev)],
            success: vec![op_delete(&leader.key)],
            failure: Vec::new(),
        };
        let resp = self.client.txn(t).await?;
        Ok(Response::new(ResignResponse {
            header: resp.header,
        }))
    }
}
