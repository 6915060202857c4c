//! The Lock service (v3lock): etcd's lock recipe ([`crate::recipes::lock`]) on this member's
//! in-process client. Every error is reported as etcd's in-process client reports it
//! ([`Error::in_recipe`]).

use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::proto::v3lockpb::lock_server::Lock;
use crate::proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use crate::recipes::lock;

use super::embedded::LocalClient;

/// etcd's Lock service on one member.
#[derive(Clone)]
pub struct LockService {
    client: LocalClient,
}

impl LockService {
    /// A Lock service making its requests through `client`.
    pub fn new(client: LocalClient) -> Self {
        LockService { client }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, req: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let client = self
            .client
            .for_caller(&req)
            .await
            .map_err(Error::in_recipe)?;
        let r = req.into_inner();
        let (key, header) = lock::lock(&client, &r.name, r.lease)
            .await
            .map_err(Error::in_recipe)?;
        Ok(Response::new(LockResponse {
            header: Some(header),
            key,
        }))
    }

    async fn unlock(
        &self,
        req: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let client = self
            .client
            .for_caller(&req)
            .await
            .map_err(Error::in_recipe)?;
        let resp = lock::unlock(&client, req.into_inner().key)
            .await
            .map_err(Error::in_recipe)?;
        Ok(Response::new(UnlockResponse {
            header: resp.header,
        }))
    }
}
