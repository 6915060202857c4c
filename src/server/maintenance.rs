//! The Maintenance service: Status (what `etcdctl endpoint status` shows, raised alarms
//! included), Alarm (through the log, see [`crate::alarm`]), Hash/HashKV (root only while auth
//! is on), MoveLeader. Snapshot (root only) streams the applied state as etcd's backend database
//! ([`crate::backup`]). Defragment (root only) rebuilds this member's state store to give space
//! back ([`crate::io::Disk::defragment`]). Downgrade answers as etcd 3.5 answers for a cluster
//! that cannot downgrade: there is no older detcd to go to.

use tonic::{Request, Response, Status};

use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::proto::etcdserverpb::*;

use super::caller::{admin, caller};
use crate::backup::{self, etcd_db, export};
use crate::error::Error;
use crate::io::runtime;
use crate::raft::RaftNode;

/// The responses of a Snapshot call.
pub type SnapshotStream = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<SnapshotResponse, Status>> + Send + 'static>,
>;

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
    type SnapshotStream = SnapshotStream;

    async fn downgrade(
        &self,
        req: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        admin(&self.node, &req).await.map_err(Error::raw_auth)?;
        let r = req.into_inner();
        let action = downgrade_request::DowngradeAction::try_from(r.action);
        use downgrade_request::DowngradeAction::*;
        match action {
            Ok(Validate | Enable) => {
                downgrade_target(&r.version)?;
                // As etcd: the answer reflects the committed state, not a stale member's.
                self.node.read_barrier().await?;
                Err(Error::InvalidDowngradeTargetVersion.into())
            }
            Ok(Cancel) => {
                self.node.read_barrier().await?;
                Err(Error::NoInflightDowngrade.into())
            }
            Err(_) => Err(Error::UnknownMethod.into()),
        }
    }

    async fn defragment(
        &self,
        req: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        // Root only while auth is on, as etcd's maintenance checks; this member only.
        admin(&self.node, &req).await.map_err(Error::raw_auth)?;
        tracing::info!("starting to defragment the state store");
        let before = self.node.disk().size_on_disk();
        self.node
            .disk()
            .defragment()
            .await
            .map_err(|e| Error::Internal(format!("defragment: {e}")))?;
        let after = self.node.disk().size_on_disk();
        tracing::info!(before, after, "finished defragmenting the state store");
        // etcd 3.4 answers with no header.
        Ok(Response::new(DefragmentResponse { header: None }))
    }

    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        // Every action goes through the log, as in etcd: a GET is linearizable, and raising or
        // clearing an alarm is applied by every member. Anyone may (etcd checks no role).
        let who = caller(&self.node, &req).await?;
        let resp = self.node.propose(who.as_ref(), req.into_inner()).await?;
        Ok(Response::new(resp))
    }

    async fn move_leader(
        &self,
        req: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        self.node.move_leader(req.into_inner().target_id).await?;
        // etcd 3.4 answers MoveLeader with an empty response: no header.
        Ok(Response::new(MoveLeaderResponse { header: None }))
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
        req: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        admin(&self.node, &req).await.map_err(Error::raw_auth)?;
        let content = export::content(&self.node);
        // Encoding a large store is CPU work: off the runtime's threads.
        let db = runtime::off_runtime(move || etcd_db::write(&content)).await;
        tracing::info!(bytes = db.len(), "sending a database snapshot");
        // As etcd 3.4: the responses carry no header.
        let responses: Vec<Result<SnapshotResponse, Status>> =
            backup::snapshot_responses(&db).map(Ok).collect();
        Ok(Response::new(Box::pin(futures::stream::iter(responses))))
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
            errors: self.node.alarms().status_errors(),
            db_size_in_use: db_size,
            is_learner: !m
                .membership_config
                .membership()
                .voter_ids()
                .any(|v| v == m.id),
        }))
    }
}

/// A Downgrade target as etcd reads it: a semantic version, or `major.minor` (`3.4` is
/// `3.4.0`); only its major and minor count.
fn downgrade_target(version: &str) -> Result<(u64, u64), Error> {
    semver::Version::parse(version)
        .or_else(|_| semver::Version::parse(&format!("{version}.0")))
        .map(|v| (v.major, v.minor))
        .map_err(|_| Error::WrongDowngradeVersionFormat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downgrade_targets_read_as_etcd_reads_them() {
        assert_eq!(downgrade_target("3.4"), Ok((3, 4)));
        assert_eq!(downgrade_target("3.4.2"), Ok((3, 4)));
        assert_eq!(downgrade_target("3.3.0-rc.1"), Ok((3, 3)));
        for bad in ["", "3", "three.four", "3.4.x", "v3.4.0"] {
            assert_eq!(
                downgrade_target(bad),
                Err(Error::WrongDowngradeVersionFormat),
                "{bad}"
            );
        }
    }
}
