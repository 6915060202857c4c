//! The Maintenance service: Status (what `etcdctl endpoint status` shows). The rest answers
//! `Unimplemented` until built.

use tonic::{Request, Response, Status};

use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::proto::etcdserverpb::*;

use super::unimplemented::{not_yet, unimplemented_rpcs, NoStream};
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
        alarm(AlarmRequest) -> AlarmResponse;
        defragment(DefragmentRequest) -> DefragmentResponse;
        hash(HashRequest) -> HashResponse;
        hash_kv(HashKvRequest) -> HashKvResponse;
        move_leader(MoveLeaderRequest) -> MoveLeaderResponse;
        downgrade(DowngradeRequest) -> DowngradeResponse;
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
            is_learner: false,
        }))
    }
}
