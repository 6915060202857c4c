//! The raft node as the gRPC services see it: propose a write and wait for its result, wait for
//! a linearizable read point, fill response headers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{Config, Raft, SnapshotPolicy};
use prost::Message;
use std::sync::Mutex;
use tonic::transport::Channel;

use crate::cluster::membership::{self, MemberInfo, MembershipOp};
use crate::cluster::Member;
use crate::error::Error;
use crate::io::clock::Instant as NodeInstant;
use crate::io::Clock;
use crate::io::Disk;
use crate::mvcc::Store;
use crate::proto::detcdpb::peer_client::PeerClient as PeerGrpc;
use crate::proto::detcdpb::{ProposeRequest, RaftMessage, RaftRequest};
use crate::proto::etcdserverpb::ResponseHeader;
use crate::watch::Hub;

use super::log_store::LogStore;
use super::network::{decode, encode, peer_channel, Network, PeerRpc};
use super::peer_server::{write_error, ProposeResult};
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
    /// Clients to other members' peer services, by peer URL.
    peers: Arc<Mutex<BTreeMap<String, PeerGrpc<Channel>>>>,
    /// Linearizable reads waiting for a read index.
    reads: Arc<Mutex<ReadQueue>>,
    /// The leases the state machine applies to.
    lessor: Arc<crate::lease::Lessor>,
    /// Requests waiting for this member to apply a log index.
    applied: Arc<AppliedWaiters>,
    /// This member's clock (request deadlines, retries).
    clock: Clock,
    /// The state machine, for its applied membership.
    machine: StateMachine,
}

/// Requests waiting until this member has applied a given log index, woken in index order (then
/// arrival order) by the single task that follows openraft's metrics. Waiting on the metrics
/// channel directly would wake waiters in tokio's randomized order, which breaks the
/// simulator's determinism.
#[derive(Default)]
struct AppliedWaiters {
    waiting: Mutex<BTreeMap<u64, Vec<tokio::sync::oneshot::Sender<()>>>>,
}

impl AppliedWaiters {
    fn register(&self, index: u64) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(index)
            .or_default()
            .push(tx);
        rx
    }

    /// Wakes every waiter at or below `applied`, lowest index first.
    fn wake_up_to(&self, applied: u64) {
        let ready = {
            let mut w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            let later = w.split_off(&(applied + 1));
            std::mem::replace(&mut *w, later)
        };
        for (_, senders) in ready {
            for tx in senders {
                let _ = tx.send(());
            }
        }
    }

    /// The one task that watches the applied index; ends (dropping every waiter) with raft.
    async fn follow(raft: Raft<TypeConfig>, waiters: Arc<AppliedWaiters>) {
        let mut metrics = raft.metrics();
        drop(raft);
        loop {
            let applied = metrics.borrow().last_applied.map_or(0, |l| l.index);
            waiters.wake_up_to(applied);
            if metrics.changed().await.is_err() {
                waiters
                    .waiting
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
                return;
            }
        }
    }
}

/// Read barriers waiting for the next read-index round.
#[derive(Default)]
struct ReadQueue {
    waiting: Vec<tokio::sync::oneshot::Sender<Result<u64, Error>>>,
    /// A task is serving rounds.
    running: bool,
}

/// Turns an apply result into the caller's answer.
fn applied(r: Response) -> Result<Response, Error> {
    match r {
        Response::Rejected(e) => Err(e),
        other => Ok(other),
    }
}

/// Sleeps briefly before another attempt, or fails with `err` once the deadline has passed.
async fn retry_or(clock: &Clock, deadline: NodeInstant, err: Error) -> Result<(), Error> {
    if clock.now() + RETRY_BACKOFF >= deadline {
        return Err(err);
    }
    tokio::time::sleep(RETRY_BACKOFF).await;
    Ok(())
}

/// Classifies a failed call to the leader. Only a call that provably never reached it (the
/// connection could not be made) may be retried; anything else may have been delivered, and a
/// forwarded write must then not be proposed again (it would apply twice), so the client gets
/// etcd's ambiguous "possibly due to previous leader failure" error.
fn unsent_or_unknown(status: &tonic::Status) -> Error {
    let msg = status.message().to_ascii_lowercase();
    let never_connected = status.code() == tonic::Code::Unavailable
        && (msg.contains("tcp connect error") || msg.contains("connection refused"));
    if never_connected {
        Error::NoLeader
    } else {
        Error::TimeoutDueToLeaderFail
    }
}

/// Pause between attempts while no leader is known.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);

impl RaftNode {
    /// Opens the log and state machine on `disk`, starts raft, and bootstraps `initial` as the
    /// first membership if this disk has never been part of a cluster. With `initial` empty
    /// the member joins a running cluster: the leader replicates the membership to it.
    pub async fn start(
        id: u64,
        cluster_id: u64,
        initial: BTreeMap<u64, Member>,
        disk: Disk,
        settings: RaftSettings,
        clock: Clock,
    ) -> Result<RaftNode, Box<dyn std::error::Error + Send + Sync>> {
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
        let log = LogStore::new(disk.clone());
        let hub = Arc::new(Hub::new());
        let sm = StateMachine::open(disk.clone(), hub.clone())?;
        let store = sm.store();
        let lessor = sm.lessor();
        let network = Network { me: id, cluster_id };
        let machine = sm.clone();
        let raft = Raft::new(id, Arc::new(config), network, log, sm).await?;
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
            peers: Arc::new(Mutex::new(BTreeMap::new())),
            reads: Arc::new(Mutex::new(ReadQueue::default())),
            applied,
            clock,
            lessor,
            machine,
        };
        node.start_lease_expiry();
        Ok(node)
    }

    /// The members of the last applied (so committed) membership, in ID order: what a member
    /// joining the cluster may rely on.
    pub fn applied_members(&self) -> Vec<MemberInfo> {
        crate::cluster::membership::members_of(&self.machine.applied_membership())
    }

    /// The lessor (leases as applied here; expiries if this member leads).
    pub fn lessor(&self) -> &Arc<crate::lease::Lessor> {
        &self.lessor
    }

    /// Runs the leader's lease expiry: an expired lease is revoked through raft, like a
    /// client's LeaseRevoke, but proposed only here and never forwarded: a member that lost
    /// leadership meanwhile must not revoke a lease the new leader keeps (it retries later if
    /// it still leads and the lease still exists).
    fn start_lease_expiry(&self) {
        let raft = self.raft.clone();
        let revoke: crate::lease::Revoke = Arc::new(move |id| {
            let raft = raft.clone();
            tokio::spawn(async move {
                let req = RaftRequest {
                    request: Some(crate::proto::detcdpb::raft_request::Request::LeaseRevoke(
                        crate::proto::etcdserverpb::LeaseRevokeRequest { id },
                    )),
                };
                if let Err(e) = raft.client_write(Request(req)).await {
                    tracing::debug!(lease = %format!("{id:016x}"), "revoking an expired lease: {e}");
                }
            });
        });
        tokio::spawn(crate::lease::expiry_loop(
            self.raft.clone(),
            self.lessor.clone(),
            revoke,
        ));
    }

    /// Starts the leader's periodic lease checkpoints (`--experimental-enable-lease-checkpoint`).
    pub fn enable_lease_checkpoints(&self, every: Duration) {
        tokio::spawn(crate::lease::checkpoint_loop(
            self.raft.clone(),
            self.lessor.clone(),
            every,
        ));
    }

    /// Answers a lease call only the leader can (keep-alive, time-to-live): here if this member
    /// leads, else on the leader through the peer service. Retried while no leader is known;
    /// both calls are safe to repeat.
    pub async fn lease_call(
        &self,
        call: crate::lease::LeaderCall,
    ) -> Result<crate::lease::LeaderAnswer, Error> {
        let deadline = self.clock.now() + REQUEST_TIMEOUT;
        loop {
            let leader = self.raft.metrics().borrow().current_leader;
            let result = if leader == Some(self.id) {
                crate::lease::serve_on_leader(&self.raft, &self.lessor, &self.store, &call).await
            } else if let Some(node) = leader.and_then(|l| self.member(l)) {
                match self
                    .call_leader(&node, deadline, encode(&call), |mut c, m| {
                        Box::pin(async move { c.lease_leader(m).await })
                    })
                    .await
                {
                    Ok(bytes) => decode::<Result<crate::lease::LeaderAnswer, Error>>(&bytes)
                        .map_err(Error::Internal)?,
                    Err(e) => Err(e),
                }
            } else {
                Err(Error::NoLeader)
            };
            match result {
                Err(Error::NoLeader | Error::NotLeader | Error::TimeoutDueToLeaderFail) => {
                    retry_or(&self.clock, deadline, Error::NoLeader).await?
                }
                other => return other,
            }
        }
    }

    /// The mvcc store (reads go here directly).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// This member's clock.
    pub fn clock(&self) -> Clock {
        self.clock
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

    /// Proposes a write through raft and waits for the result of applying it. On a follower the
    /// write is forwarded to the leader; the answer comes once this member has applied it too, so
    /// a read here right after sees it.
    pub async fn write(&self, req: RaftRequest) -> Result<Response, Error> {
        if req.encoded_len() > self.settings.max_request_bytes {
            return Err(Error::RequestTooLarge);
        }
        let deadline = self.clock.now() + REQUEST_TIMEOUT;
        loop {
            let leader = match self.raft.client_write(Request(req.clone())).await {
                Ok(r) => return applied(r.data),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => f.leader_node,
                Err(e) => return Err(write_error(e)),
            };
            if let Some(leader) = leader {
                match self.forward_propose(&leader, &req, deadline).await {
                    Err(Error::NoLeader) => {}
                    Err(e) => return Err(e),
                    Ok((resp, index)) => {
                        self.wait_applied(index, deadline).await?;
                        return applied(resp);
                    }
                }
            }
            retry_or(&self.clock, deadline, Error::NoLeader).await?;
        }
    }

    /// Waits until this member has applied everything committed before the call: reads after
    /// it are linearizable. A follower asks the leader for the read index.
    pub async fn read_barrier(&self) -> Result<(), Error> {
        if crate::io::canary::on(crate::io::canary::Canary::StaleReads) {
            return Ok(());
        }
        let deadline = self.clock.now() + REQUEST_TIMEOUT;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let start = {
            let mut q = self.reads.lock().unwrap_or_else(|p| p.into_inner());
            q.waiting.push(tx);
            !std::mem::replace(&mut q.running, true)
        };
        if start {
            let node = self.clone();
            tokio::spawn(async move { node.read_index_rounds().await });
        }
        let index = match crate::io::runtime::timeout_at(deadline.to_runtime(), rx).await {
            Err(_) => return Err(Error::Timeout),
            Ok(Err(_)) => return Err(Error::Stopped),
            Ok(Ok(r)) => r?,
        };
        self.wait_applied(index, deadline).await
    }

    /// Serves queued read barriers in rounds: each round fetches one read index for every caller
    /// that queued before the round began (so the index is at least as new as each caller's
    /// arrival: linearizable), while callers arriving meanwhile wait for the next round.
    async fn read_index_rounds(self) {
        loop {
            let batch = {
                let mut q = self.reads.lock().unwrap_or_else(|p| p.into_inner());
                if q.waiting.is_empty() {
                    q.running = false;
                    return;
                }
                std::mem::take(&mut q.waiting)
            };
            let result = self
                .fetch_read_index(self.clock.now() + REQUEST_TIMEOUT)
                .await;
            for tx in batch {
                let _ = tx.send(result.clone());
            }
        }
    }

    /// The leader's read index: confirmed leadership by a quorum, then its commit point. A
    /// follower asks the leader.
    async fn fetch_read_index(&self, deadline: NodeInstant) -> Result<u64, Error> {
        loop {
            let leader = match crate::io::runtime::timeout_at(
                deadline.to_runtime(),
                self.raft.get_read_log_id(),
            )
            .await
            {
                Err(_) => return Err(Error::Timeout),
                Ok(Ok((read, _applied))) => return Ok(read.map_or(0, |l| l.index)),
                Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                    f.leader_node
                }
                Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)))) => None,
                Ok(Err(RaftError::Fatal(_))) => return Err(Error::Stopped),
            };
            if let Some(leader) = leader {
                match self.forward_read_index(&leader, deadline).await {
                    // Asking again is harmless: a read index changes nothing.
                    Err(Error::NoLeader | Error::TimeoutDueToLeaderFail) => {}
                    other => return other,
                }
            }
            retry_or(&self.clock, deadline, Error::NoLeader).await?;
        }
    }

    /// Executes a membership operation on the leader (forwarding it there if needed) and
    /// returns the members afterwards.
    pub async fn membership(&self, op: MembershipOp) -> Result<Vec<MemberInfo>, Error> {
        let deadline = self.clock.now() + REQUEST_TIMEOUT;
        loop {
            let leader = self.raft.metrics().borrow().current_leader;
            let result = if leader == Some(self.id) {
                membership::execute(&self.raft, op.clone()).await
            } else if let Some(node) = leader.and_then(|l| self.member(l)) {
                let payload = encode(&op);
                match self
                    .call_leader(&node, deadline, payload, |mut c, m| {
                        Box::pin(async move { c.change_members(m).await })
                    })
                    .await
                {
                    Ok(bytes) => {
                        decode::<Result<Vec<MemberInfo>, Error>>(&bytes).map_err(Error::Internal)?
                    }
                    Err(e) => Err(e),
                }
            } else {
                Err(Error::NoLeader)
            };
            match result {
                Err(Error::NoLeader) => retry_or(&self.clock, deadline, Error::NoLeader).await?,
                other => return other,
            }
        }
    }

    /// Asks the members at `peer_urls` for the cluster ID and their committed membership (for
    /// joining): the first answer that `wanted` accepts (one that lists the joining member — a
    /// member that has not applied the addition yet may not), else the last answer received.
    pub async fn cluster_info(
        clock: &Clock,
        peer_urls: &[String],
        wanted: impl Fn(&[MemberInfo]) -> bool,
    ) -> Result<(u64, Vec<MemberInfo>), Error> {
        let mut last = None;
        for url in peer_urls {
            let probe = Member {
                name: String::new(),
                peer_urls: vec![url.clone()],
                client_urls: vec![],
            };
            let Ok(mut client) = peer_channel(&probe) else {
                continue;
            };
            let msg = RaftMessage {
                cluster_id: 0,
                from: 0,
                payload: bytes::Bytes::new(),
            };
            let call = crate::io::runtime::timeout_at(
                (clock.now() + Duration::from_secs(2)).to_runtime(),
                client.cluster_info(msg),
            );
            if let Ok(Ok(reply)) = call.await {
                let info: (u64, Vec<MemberInfo>) =
                    decode(&reply.into_inner().payload).map_err(Error::Internal)?;
                if wanted(&info.1) {
                    return Ok(info);
                }
                last = Some(info);
            }
        }
        last.ok_or_else(|| {
            Error::Internal(format!(
                "could not reach any of {peer_urls:?} to join the cluster"
            ))
        })
    }

    /// Hands leadership to voter `target` (etcd's MoveLeader); only the leader may ask. Waits
    /// until the target has the whole log, has it campaign, and waits until it leads.
    pub async fn move_leader(&self, target: u64) -> Result<(), Error> {
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.current_leader != Some(self.id) {
            return Err(Error::NotLeader);
        }
        let m = metrics.membership_config.membership();
        if !m.voter_ids().any(|v| v == target) {
            return Err(Error::BadLeaderTransferee);
        }
        if target == self.id {
            return Ok(());
        }
        let node = self.member(target).ok_or(Error::BadLeaderTransferee)?;
        let deadline = self.clock.now() + self.settings.election * 5;
        let left = || deadline.saturating_duration_since(self.clock.now());
        let last = metrics.last_log_index;
        let caught_up = self
            .raft
            .wait(Some(left()))
            .metrics(
                |m| {
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(&target).copied().flatten())
                        .map(|l| l.index)
                        >= last
                },
                "transferee caught up",
            )
            .await;
        if caught_up.is_err() {
            return Err(Error::LeaderTransferTimeout);
        }
        // Followers reject votes while the leader's lease holds, so the leader goes quiet (no
        // heartbeats, no campaigning of its own) and the target campaigns until it wins.
        self.raft.runtime_config().heartbeat(false);
        self.raft.runtime_config().elect(false);
        let _ = self
            .call_leader(&node, deadline, bytes::Bytes::new(), |mut c, m| {
                Box::pin(async move { c.campaign(m).await })
            })
            .await;
        let moved = self
            .raft
            .wait(Some(left()))
            .metrics(
                |m| m.current_leader.is_some_and(|l| l != self.id),
                "leader moved",
            )
            .await;
        self.raft.runtime_config().heartbeat(true);
        self.raft.runtime_config().elect(true);
        match moved {
            Ok(m) if m.current_leader == Some(target) => Ok(()),
            _ => Err(Error::LeaderTransferTimeout),
        }
    }

    /// A member of the current membership.
    fn member(&self, id: u64) -> Option<Member> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .cloned()
    }

    async fn wait_applied(&self, index: u64, deadline: NodeInstant) -> Result<(), Error> {
        let applied = || {
            self.raft
                .metrics()
                .borrow()
                .last_applied
                .map_or(0, |l| l.index)
        };
        if applied() >= index {
            return Ok(());
        }
        let rx = self.applied.register(index);
        // Applied may have moved between the check and the registration.
        if applied() >= index {
            return Ok(());
        }
        match crate::io::runtime::timeout_at(deadline.to_runtime(), rx).await {
            Err(_) => Err(Error::Timeout),
            Ok(Err(_)) => Err(Error::Stopped),
            Ok(Ok(())) => Ok(()),
        }
    }

    async fn forward_propose(
        &self,
        leader: &Member,
        req: &RaftRequest,
        deadline: NodeInstant,
    ) -> Result<(Response, u64), Error> {
        let mut client = self.peer(leader)?;
        let msg = ProposeRequest {
            cluster_id: self.cluster_id,
            request: Some(req.clone()),
        };
        let reply = match crate::io::runtime::timeout_at(deadline.to_runtime(), client.propose(msg))
            .await
        {
            Err(_) => return Err(Error::TimeoutDueToLeaderFail),
            Ok(Err(status)) => return Err(unsent_or_unknown(&status)),
            Ok(Ok(r)) => r.into_inner(),
        };
        let result: ProposeResult = decode(&reply.payload).map_err(Error::Internal)?;
        result
    }

    async fn forward_read_index(
        &self,
        leader: &Member,
        deadline: NodeInstant,
    ) -> Result<u64, Error> {
        let bytes = self
            .call_leader(leader, deadline, bytes::Bytes::new(), |mut c, m| {
                Box::pin(async move { c.read_index(m).await })
            })
            .await?;
        let result: Result<u64, Error> = decode(&bytes).map_err(Error::Internal)?;
        result
    }

    async fn call_leader(
        &self,
        leader: &Member,
        deadline: NodeInstant,
        payload: bytes::Bytes,
        rpc: PeerRpc,
    ) -> Result<bytes::Bytes, Error> {
        let client = self.peer(leader)?;
        let msg = RaftMessage {
            cluster_id: self.cluster_id,
            from: self.id,
            payload,
        };
        match crate::io::runtime::timeout_at(deadline.to_runtime(), rpc(client, msg)).await {
            Err(_) => Err(Error::TimeoutDueToLeaderFail),
            Ok(Err(status)) => Err(unsent_or_unknown(&status)),
            Ok(Ok(r)) => Ok(r.into_inner().payload),
        }
    }

    /// A client to `member`'s peer service, reused across calls.
    fn peer(&self, member: &Member) -> Result<PeerGrpc<Channel>, Error> {
        let key = member.peer_urls.first().cloned().unwrap_or_default();
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = peers.get(&key) {
            return Ok(c.clone());
        }
        let c = peer_channel(member).map_err(Error::Internal)?;
        peers.insert(key, c.clone());
        Ok(c)
    }

    /// Makes this member's name and client URLs part of the replicated membership (what
    /// `MemberList` reports), as etcd members publish their attributes before serving clients.
    /// Retries until committed (a quorum must be up), or until raft stops.
    pub async fn publish_attributes(&self, me: Member) -> Result<(), Error> {
        loop {
            // Raft may stop on a storage error while the publish still succeeds through the
            // leader: the local membership then never changes and this would loop forever,
            // with the member neither serving nor stopping (found by the simulator).
            if self.raft.metrics().borrow().running_state.is_err() {
                return Err(Error::Stopped);
            }
            let current = self
                .raft
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .get_node(&self.id)
                .cloned();
            if current.as_ref() == Some(&me) {
                return Ok(());
            }
            let op = MembershipOp::Publish {
                id: self.id,
                member: me.clone(),
            };
            match self.membership(op).await {
                Ok(_) => {
                    tracing::info!(member = %format!("{:x}", self.id), "published member attributes")
                }
                Err(Error::Stopped) => return Err(Error::Stopped),
                Err(e) => {
                    tracing::debug!("publishing member attributes: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Resolves once this member has been removed from the cluster (after it was part of it):
    /// etcd's removed members stop, and so does detcd. Only a removal this member has applied
    /// counts: an appended but uncommitted membership entry can still be rolled back by a new
    /// leader, and a member that stopped on it would stay down while still listed (found by
    /// the simulator's membership nemesis).
    pub async fn removed(&self) {
        let mut metrics = self.raft.metrics();
        let mut was_member = false;
        loop {
            let (is_member, committed) = {
                let m = metrics.borrow();
                let ms = &m.membership_config;
                let applied = ms.log_id().is_some() && ms.log_id() <= &m.last_applied;
                (ms.membership().get_node(&self.id).is_some(), applied)
            };
            if is_member {
                was_member = true;
            } else if was_member && committed {
                return;
            }
            if metrics.changed().await.is_err() {
                // Raft stopped: never report removal.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Stops raft.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}
