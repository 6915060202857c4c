//! The Election service (v3election): etcd's election recipe ([`crate::recipes::election`]) on
//! this member's in-process client. Every error is reported as etcd's in-process client
//! reports it ([`Error::in_recipe`]).

use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::proto::v3electionpb::election_server::Election;
use crate::proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use crate::recipes::{election, observe};

use super::embedded::LocalClient;

/// The stream of an Observe call.
pub type ObserveStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<LeaderResponse, Status>> + Send + 'static>>;

/// etcd's Election service on one member.
#[derive(Clone)]
pub struct ElectionService {
    client: LocalClient,
}

impl ElectionService {
    /// An Election service making its requests through `client`.
    pub fn new(client: LocalClient) -> Self {
        ElectionService { client }
    }
}

#[tonic::async_trait]
impl Election for ElectionService {
    type ObserveStream = ObserveStream;

    async fn campaign(
        &self,
        req: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let client = self
            .client
            .for_caller(&req)
            .await
            .map_err(Error::in_recipe)?;
        let r = req.into_inner();
        let (leader, header) = election::campaign(&client, &r.name, r.value, r.lease)
            .await
            .map_err(Error::in_recipe)?;
        Ok(Response::new(CampaignResponse {
            header,
            leader: Some(leader),
        }))
    }

    async fn proclaim(
        &self,
        req: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let client = self
            .client
            .for_caller(&req)
            .await
            .map_err(Error::in_recipe)?;
        let r = req.into_inner();
        let header = election::proclaim_as(&client, r.leader, r.value)
            .await
            .map_err(Error::in_recipe)?;
        Ok(Response::new(ProclaimResponse { header }))
    }

    async fn leader(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let client = self
            .client
            .for_caller(&req)
            .await
            .map_err(Error::in_recipe)?;
        let (kv, header) = election::leader(&client, &req.into_inner().name)
            .await
            .map_err(Error::in_recipe)?;
        Ok(Response::new(LeaderResponse {
            header,
            kv: Some(kv),
        }))
    }

    async fn observe(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let client = self
            .client
            .for_caller(&req)
            .await
            .map_err(Error::in_recipe)?;
        let name = req.into_inner().name;
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            tokio::select! {
                // Deterministic under the simulator: no random branch order.
                biased;
                _ = observe::run(&client, &name, &tx) => {}
                _ = tx.closed() => {}
            }
        });
        let stream =
            futures::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|r| (Ok(r), rx)) },
            );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn resign(
        &self,
        req: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let client = self
            .client
            .for_caller(&req)
            .await
            .map_err(Error::in_recipe)?;
        let header = election::resign(&client, req.into_inner().leader)
            .await
            .map_err(Error::in_recipe)?;
        Ok(Response::new(ResignResponse { header }))
    }
}
