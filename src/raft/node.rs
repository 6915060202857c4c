//! The raft node: one member's openraft instance with the state it applies to, started from
//! etcd's settings. What the services ask of it lives beside this file, one idea each:
//! [`propose`](super::propose) (writes), [`read_index`](super::read_index) (linearizable
//! reads), [`membership`](super::membership), [`leases`](super::leases) (what only the
//! leader answers), all going through [`forward`](super::forward) when this member does not lead.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::RaftError;
use openraft::{Config, Raft, SnapshotPolicy};

use crate::alarm::AlarmStore;
use crate::auth::AuthStore;
use crate::cluster::membership::MEMBER_REMOVED;
use crate::cluster::Member;
use crate::io::net::Dialer;
use crate::io::Disk;
use crate::lease::Lessor;
use crate::mvcc::Store;
use crate::proto::etcdserverpb::ResponseHeader;
use crate::watch::Hub;

use super::batch::{Batcher, Forwarder};
use super::disk_metrics::DiskMetrics;
use super::forward::Peers;
use super::log_store::LogStore;
use super::network::Network;
use super::peer_metrics::PeerMetrics;
use super::proposal_metrics::ProposalMetrics;
use super::read_index::{AppliedWaiters, ReadQueue};
use super::state_machine::StateMachine;
use super::types::TypeConfig;

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
    /// Size of a WAL segment file (etcd's is 64 MiB; the simulator uses small ones).
    pub wal_segment_bytes: u64,
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            heartbeat: Duration::from_millis(100),
            election: Duration::from_millis(1000),
            snapshot_count: 100_000,
            max_request_bytes: 1_572_864,
            wal_segment_bytes: super::wal::DEFAULT_SEGMENT_BYTES,
        }
    }
}

/// One member's raft node and the state it applies to; clones share everything.
#[derive(Clone)]
pub struct RaftNode {
    pub(super) raft: Raft<TypeConfig>,
    pub(super) store: Arc<Store>,
    pub(super) id: u64,
    pub(super) cluster_id: u64,
    pub(super) settings: RaftSettings,
    disk: Disk,
    hub: Arc<Hub>,
    /// Clients to other members' peer services.
    pub(super) peers: Peers,
    /// Linearizable reads waiting for a read index.
    pub(super) reads: Arc<Mutex<ReadQueue>>,
    /// The leases the state machine applies to.
    pub(super) lessor: Arc<Lessor>,
    /// Users, roles and tokens, as the state machine applies them.
    auth: Arc<AuthStore>,
    /// Requests waiting for this member to apply a log index.
    pub(super) applied: Arc<AppliedWaiters>,
    /// Set once a peer answered that this member was removed from the cluster.
    pub(super) told_removed: Arc<tokio::sync::watch::Sender<bool>>,
    /// The state machine, for its applied (committed) membership.
    pub(super) machine: StateMachine,
    /// Where writes queue to be proposed in batches.
    pub(super) batcher: Batcher,
    /// Where a follower's writes queue to be forwarded to the leader in batches.
    pub(super) forwarder: Forwarder,
    /// How long fsyncs and state store commits take.
    disk_metrics: DiskMetrics,
    /// etcd's proposal metrics (committed, pending, failed).
    proposal_metrics: ProposalMetrics,
    /// Raft traffic to and from each peer.
    peer_metrics: PeerMetrics,
}

/// Why a raft node could not start.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

impl RaftNode {
    /// Opens the log and state machine on `disk`, starts raft, and bootstraps `initial` as the
    /// first membership if this disk has never been part of a cluster. With `initial` empty
    /// the member joins a running cluster: the leader replicates the membership to it. Starts
    /// the leader-side lease expiry loop.
    pub async fn start(
        id: u64,
        cluster_id: u64,
        initial: BTreeMap<u64, Member>,
        disk: Disk,
        settings: RaftSettings,
        dialer: Dialer,
        auth: Arc<AuthStore>,
    ) -> Result<RaftNode, StartError> {
        let election_ms = settings.election.as_millis() as u64;
        let config = Config {
            cluster_name: format!("{cluster_id:x}"),
            heartbeat_interval: settings.heartbeat.as_millis() as u64,
            election_timeout_min: election_ms,
            election_timeout_max: election_ms * 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(settings.snapshot_count),
            max_in_snapshot_log_to_keep: settings.snapshot_count.min(5000),
            max_payload_entries: 64,
            ..Default::default()
        }
        .validate()?;
        let log = LogStore::open(disk.clone(), settings.wal_segment_bytes).await?;
        let disk_metrics = log.disk_metrics();
        let proposal_metrics = log.proposal_metrics();
        let hub = Arc::new(Hub::new());
        let machine = StateMachine::open(disk.clone(), hub.clone(), auth.clone())?;
        log.feeds(machine.clone());
        let (applied, purged) = (machine.applied_index(), log.purged_index());
        if applied < purged {
            return Err(format!(
                "the state store has applied the raft log up to entry {applied:?}, but the log \
                 only holds entries after {purged:?}: state that was acknowledged is missing \
                 (the data dir is damaged); refusing to start"
            )
            .into());
        }
        let store = machine.store();
        let lessor = machine.lessor();
        if machine.is_removed(id) {
            return Err(MEMBER_REMOVED.into());
        }
        let peer_metrics = PeerMetrics::default();
        let told_removed = Arc::new(tokio::sync::watch::Sender::new(false));
        let network = Network {
            me: id,
            cluster_id,
            dialer: dialer.clone(),
            metrics: peer_metrics.clone(),
            told_removed: told_removed.clone(),
        };
        let raft = Raft::new(id, Arc::new(config), network, log, machine.clone()).await?;
        let batcher = Batcher::start(raft.clone());
        let peers = Peers::new(cluster_id, id, dialer);
        let applied = Arc::new(AppliedWaiters::default());
        tokio::spawn(AppliedWaiters::follow(raft.clone(), applied.clone()));
        if !initial.is_empty() && !raft.is_initialized().await? {
            // Every founding member initializes with the same membership; openraft allows that,
            // and answers NotAllowed once a peer's entry already got here first.
            match raft.initialize(initial).await {
                Ok(()) => {}
                Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let node = RaftNode {
            raft,
            store,
            id,
            cluster_id,
            settings,
            disk,
            hub,
            peers: peers.clone(),
            reads: Arc::new(Mutex::new(ReadQueue::default())),
            applied,
            lessor,
            auth,
            machine,
            batcher,
            forwarder: Forwarder::start(peers),
            disk_metrics,
            proposal_metrics,
            peer_metrics,
            told_removed,
        };
        tokio::spawn(node.clone().lease_expiry_loop());
        node.start_promoting_added_voters();
        node.start_breaking_split_votes();
        Ok(node)
    }

    /// The mvcc store (reads go here directly).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The index of the last entry applied here (`None` before the first).
    pub fn applied_index(&self) -> Option<u64> {
        self.machine.applied_index()
    }

    /// Whether `id` was removed from the cluster by a membership change this member applied:
    /// its messages are answered with [`MEMBER_REMOVED`].
    pub fn is_removed_member(&self, id: u64) -> bool {
        self.machine.is_removed(id)
    }

    /// The raised alarms, as applied here.
    pub fn alarms(&self) -> Arc<AlarmStore> {
        self.machine.alarms()
    }

    /// The auth store (users, roles, tokens as applied here).
    pub fn auth(&self) -> &Arc<AuthStore> {
        &self.auth
    }

    /// The lessor (leases as applied here; expiries if this member leads).
    pub fn lessor(&self) -> &Arc<Lessor> {
        &self.lessor
    }

    /// Where applied events are published (for watchers).
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Whether raft still runs, and whether this member is the leader it knows (as raft's
    /// metrics say now): what the leader's periodic loops check before each round.
    pub(super) fn running_and_leading(&self) -> (bool, bool) {
        let m = self.raft.metrics();
        let m = m.borrow();
        (m.running_state.is_ok(), m.current_leader == Some(m.id))
    }

    /// How long this member's fsyncs and state store commits take.
    pub fn disk_metrics(&self) -> &DiskMetrics {
        &self.disk_metrics
    }

    /// etcd's proposal metrics of this member.
    pub fn proposal_metrics(&self) -> &ProposalMetrics {
        &self.proposal_metrics
    }

    /// Raft traffic to and from each peer.
    pub fn peer_metrics(&self) -> &PeerMetrics {
        &self.peer_metrics
    }

    /// The member's state store.
    pub fn disk(&self) -> &Disk {
        &self.disk
    }

    /// This member's ID.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The cluster's ID.
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// The raft handle, for status and metrics.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// The leader this member knows of, if any.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// Whether this member is a learner (in the membership, not a voter).
    pub fn is_learner(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let learner = m
            .membership_config
            .membership()
            .learner_ids()
            .any(|l| l == self.id);
        learner
    }

    /// A response header at `revision`: etcd's cluster, member and raft term fields.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.id,
            revision,
            raft_term: self.raft.metrics().borrow().current_term,
        }
    }

    /// Fills the cluster fields of a header the store or the applier left with only a revision.
    pub fn fill(&self, header: &mut Option<ResponseHeader>) {
        let revision = header.as_ref().map_or(0, |h| h.revision);
        *header = Some(self.header(revision));
    }

    /// Resolves with the reason once raft has stopped on a fatal error (a storage failure): the
    /// member can no longer serve and should exit so a supervisor restarts it.
    pub async fn fatal(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            if let Err(e) = &metrics.borrow().running_state {
                return e.to_string();
            }
            if metrics.changed().await.is_err() {
                return "raft stopped".to_string();
            }
        }
    }

    /// Stops raft.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}
