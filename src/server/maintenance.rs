//! The Maintenance service: Status (what `etcdctl endpoint status` shows). The rest answers
//! `Unimplemented` until built.

use tonic::{Request, Response, Status};

use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::proto::etcdserverpb::*;

use super::caller::admin;
use super::unimplemented::{not_yet, unimplemented_rpcs, NoStream};
use crate::error::Error;
use crate::raft::RaftNode;

/// The etcd API version detcd speaks (what Status reports as the server version).
pub const ETCD_API_VERSION: &str = "3.5.0";

/// etcd's Maintenance service on one member.
#[derive(Clone)]
pub struct MaintenanceService {
    node: RaftNode,
}

impl MaintenanceService {
    /// A Maintenance service for `node`.
    pub fn new(node: RaftNode) -> Self {
        MaintenanceService { node }
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    type SnapshotStream = NoStream<SnapshotResponse>;

    unimplemented_rpcs! {
        defragment(DefragmentRequest) -> DefragmentResponse;
        downgrade(DowngradeRequest) -> DowngradeResponse;
    }

    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        // No alarm is ever raised yet (no quota, no corruption check): GET lists none, and
        // activating or deactivating one changes nothing.
        let _ = req.into_inner();
        let revision = self.node.store().current_revision();
        Ok(Response::new(AlarmResponse {
            header: Some(self.node.header(revision)),
            alarms: vec![],
        }))
    }

    async fn move_leader(
        &self,
        req: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        self.node.move_leader(req.into_inner().target_id).await?;
        let revision = self.node.store().current_revision();
        Ok(Response::new(MoveLeaderResponse {
            header: Some(self.node.header(revision)),
        }))
    }

    async fn hash(&self, req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        admin(&self.node, &req).await.map_err(Error::raw_auth)?;
        let store = self.node.store();
        let (hash, _) = store.hash_kv(0)?;
        Ok(Response::new(HashResponse {
            header: Some(self.node.header(store.current_revision())),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        req: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        admin(&self.node, &req).await.map_err(Error::raw_auth)?;
        let store = self.node.store();
        let (hash, compact_revision) = store.hash_kv(req.into_inner().revision)?;
        Ok(Response::new(HashKvResponse {
            header: Some(self.node.header(store.current_revision())),
            hash,
            compact_revision,
        }))
    }

    async fn snapshot(
        &self,
        _req: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(not_yet("Snapshot"))
    }

    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let m = self.node.raft().metrics().borrow().clone();
        let store = self.node.store();
        let db_size = self.node.disk().size_on_disk() as i64;
        Ok(Response::new(StatusResponse {
            header: Some(self.node.header(store.current_revision())),
            version: ETCD_API_VERSION.to_string(),
            db_size,
            leader: m.current_leader.unwrap_or(0),
            raft_index: m.last_log_index.unwrap_or(0),
            raft_term: m.current_term,
            raft_applied_index: m.last_applied.map_or(0, |l| l.index),
            errors: vec![],
            db_size_in_use: db_size,
            is_learner: !m
                .membership_config
                .membership()
                .voter_ids()
                .any(|v| v == m.id),
        }))
    }
}
