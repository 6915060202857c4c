//! The raft node as the gRPC services see it: propose a write and wait for its result, wait for
//! a linearizable read point, fill response headers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{Config, Raft, SnapshotPolicy};
use prost::Message;

use crate::cluster::Member;
use crate::error::Error;
use crate::io::Disk;
use crate::mvcc::Store;
use crate::proto::detcdpb::RaftRequest;
use crate::proto::etcdserverpb::ResponseHeader;
use crate::watch::Hub;

use super::log_store::LogStore;
use super::network::Network;
use super::state_machine::StateMachine;
use super::types::{Request, Response, TypeConfig};

/// Raft and request-size settings, from etcd's flags.
#[derive(Debug, Clone)]
pub struct RaftSettings {
    /// `--heartbeat-interval`.
    pub heartbeat: Duration,
    /// `--election-timeout`.
    pub election: Duration,
    /// `--snapshot-count`: applied entries between snapshots (after which the log is purged).
    pub snapshot_count: u64,
    /// `--max-request-bytes`.
    pub max_request_bytes: usize,
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            heartbeat: Duration::from_millis(100),
            election: Duration::from_millis(1000),
            snapshot_count: 100_000,
            max_request_bytes: 1_572_864,
        }
    }
}

/// How long a proposal may wait for commit before failing with etcd's timeout error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(7);

/// One member's raft node and the store it applies to.
#[derive(Clone)]
pub struct RaftNode {
    raft: Raft<TypeConfig>,
    store: Arc<Store>,
    id: u64,
    cluster_id: u64,
    settings: RaftSettings,
    disk: Disk,
    hub: Arc<Hub>,
}

impl RaftNode {
    /// Opens the log and state machine on `disk`, starts raft, and bootstraps `initial` as the
    /// first membership if this disk has never been part of a cluster.
    pub async fn start(
        id: u64,
        cluster_id: u64,
        initial: BTreeMap<u64, Member>,
        disk: Disk,
        settings: RaftSettings,
    ) -> Result<RaftNode, Box<dyn std::error::Error + Send + Sync>> {
        let election_ms = settings.election.as_millis() as u64;
        let config = Config {
            cluster_name: format!("{cluster_id:x}"),
            heartbeat_interval: settings.heartbeat.as_millis() as u64,
            election_timeout_min: election_ms,
            election_timeout_max: election_ms * 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(settings.snapshot_count),
            max_in_snapshot_log_to_keep: settings.snapshot_count.min(5000),
            ..Default::default()
        }
        .validate()?;
        let log = LogStore::new(disk.clone());
        let hub = Arc::new(Hub::new());
        let sm = StateMachine::open(disk.clone(), hub.clone())?;
        let store = sm.store();
        let raft = Raft::new(id, Arc::new(config), Network, log, sm).await?;
        if !raft.is_initialized().await? {
            raft.initialize(initial).await?;
        }
        Ok(RaftNode {
            raft,
            store,
            id,
            cluster_id,
            settings,
            disk,
            hub,
        })
    }

    /// The mvcc store (reads go here directly).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Where applied events are published (for watchers).
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The node's disk.
    pub fn disk(&self) -> &Disk {
        &self.disk
    }

    /// This member's ID.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The raft handle, for status and membership.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// The cluster's ID.
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// A response header at `revision`.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.id,
            revision,
            raft_term: self.raft.metrics().borrow().current_term,
        }
    }

    /// Fills the cluster fields of a header the store left with only a revision.
    pub fn fill(&self, header: &mut Option<ResponseHeader>) {
        let revision = header.as_ref().map_or(0, |h| h.revision);
        *header = Some(self.header(revision));
    }

    /// Proposes a write through raft and waits for the result of applying it.
    pub async fn write(&self, req: RaftRequest) -> Result<Response, Error> {
        if req.encoded_len() > self.settings.max_request_bytes {
            return Err(Error::RequestTooLarge);
        }
        let fut = self.raft.client_write(Request(req));
        match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
            Err(_) => Err(Error::Timeout),
            Ok(Ok(r)) => match r.data {
                Response::Rejected(e) => Err(e),
                other => Ok(other),
            },
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                Err(Error::NoLeader)
            }
            Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
                Err(Error::Internal(e.to_string()))
            }
            Ok(Err(RaftError::Fatal(_))) => Err(Error::Stopped),
        }
    }

    /// Waits until this node has applied everything committed before the call: reads after it
    /// are linearizable.
    pub async fn read_barrier(&self) -> Result<(), Error> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.raft.ensure_linearizable()).await {
            Err(_) => Err(Error::Timeout),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(_))) => Err(Error::NoLeader),
            Ok(Err(RaftError::Fatal(_))) => Err(Error::Stopped),
        }
    }

    /// Stops raft.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}
