//! etcd's Watch service: one task per bidirectional stream drives a [`Session`].
//!
//! The task waits on the client's requests, the hub's feed, the progress ticker, the leader
//! check (require-leader streams) and the client going away. Each wake-up turns into responses from the session, which the task
//! sends one by one into a bounded channel that backs the gRPC response stream. A slow client
//! therefore slows only its own task; writers never wait for it — its feed lags and the session
//! catches up from the store's history once the client reads again.
//!
//! As in etcd, a client closing its sending side does not end the stream: watchers keep
//! delivering until the client cancels the call. A stream opened with etcd's require-leader
//! metadata (etcdctl and clientv3 set it) is refused while the member knows no leader, and ends
//! with `etcdserver: no leader` once the member has seen no leader at
//! [`NO_LEADER_CHECKS`] consecutive checks, one per election timeout. A learner refuses Watch
//! streams altogether, as etcd's learners refuse every stream RPC.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{request as perms, Credentials};
use crate::error::Error;
use crate::io::clock;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::watch_server::Watch;
use crate::proto::etcdserverpb::{RangeRequest, WatchRequest, WatchResponse};
use crate::raft::RaftNode;
use crate::watch::progress;
use crate::watch::session::{Feed, HeaderFn, Session};
use crate::watch::{Hub, RevisionEvents};

use super::caller::{credentials, identify};
use super::GRPC_OVERHEAD_BYTES;

/// Why etcd cancels a watch its caller may not read (the status as Go prints it).
const PERMISSION_DENIED_REASON: &str =
    "rpc error: code = PermissionDenied desc = etcdserver: permission denied";

/// Responses buffered per stream before its task waits for the client.
const RESPONSE_BUFFER: usize = 128;

/// Feed batches a stream takes in one wake-up (the rest wait for the next, so requests and
/// timers are not starved).
const MAX_BATCHES_PER_WAKE: usize = 256;

/// Request metadata etcd clients set (`WithRequireLeader`) to be refused while no leader is
/// known.
const REQUIRE_LEADER_KEY: &str = "hasleader";

/// Consecutive leaderless checks (one per election timeout) after which a require-leader
/// stream is ended, as etcd does.
pub const NO_LEADER_CHECKS: u32 = 3;

/// The Watch service's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchSettings {
    /// `--max-request-bytes`; responses of watchers that allow fragments are split at this size
    /// plus gRPC's allowance.
    pub max_request_bytes: usize,
    /// `--experimental-watch-progress-notify-interval` as configured (`None`: etcd's default).
    pub progress_notify_interval: Option<Duration>,
    /// `--election-timeout`: how often require-leader streams check for a leader.
    pub election_timeout: Duration,
}

impl Default for WatchSettings {
    fn default() -> Self {
        WatchSettings {
            max_request_bytes: 1_572_864,
            progress_notify_interval: None,
            election_timeout: Duration::from_millis(1000),
        }
    }
}

/// etcd's Watch service on one member.
#[derive(Clone)]
pub struct WatchService {
    node: RaftNode,
    hub: Arc<Hub>,
    settings: WatchSettings,
    stopping: Option<tokio::sync::watch::Receiver<bool>>,
}

impl WatchService {
    /// A Watch service fed by `hub`, reading history from `node`'s store, with etcd's default
    /// settings.
    pub fn new(node: RaftNode, hub: Arc<Hub>) -> Self {
        WatchService {
            node,
            hub,
            settings: WatchSettings::default(),
            stopping: None,
        }
    }

    /// The same service with `settings`.
    pub fn with_settings(mut self, settings: WatchSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Ends every stream when `stopping` turns true: a graceful server shutdown waits for every
    /// call in progress, and a watch never ends by itself.
    pub fn ending_on(mut self, stopping: tokio::sync::watch::Receiver<bool>) -> Self {
        self.stopping = Some(stopping);
        self
    }
}

/// The response stream of one Watch call.
pub type ResponseStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ResponseStream;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        if self.node.is_learner() {
            // etcd refuses every stream RPC on a learner.
            return Err(crate::error::Error::NotSupportedForLearner.into());
        }
        let require_leader = request
            .metadata()
            .get(REQUIRE_LEADER_KEY)
            .is_some_and(|v| v.as_bytes() == b"true");
        let election = self.settings.election_timeout;
        if require_leader && !has_leader(&self.node, election) {
            return Err(Error::NoLeader.into());
        }
        let permit = Permit {
            node: self.node.clone(),
            creds: credentials(&request),
        };
        let requests = request.into_inner();
        let node = self.node.clone();
        let header: HeaderFn = Arc::new(move |rev| node.header(rev));
        let (session, feed) = Session::start(
            self.node.store().clone(),
            &self.hub,
            header,
            self.settings.max_request_bytes + GRPC_OVERHEAD_BYTES,
        );
        let period = progress::stream_period(progress::effective_interval(
            self.settings.progress_notify_interval,
        ));
        let leader = require_leader.then(|| {
            let node = self.node.clone();
            LeaderCheck {
                has_leader: Arc::new(move || has_leader(&node, election)),
                every: self.settings.election_timeout,
            }
        });
        let (tx, rx) = mpsc::channel(RESPONSE_BUFFER);
        let stopping = self.stopping.clone();
        let streams = Streams {
            requests,
            tx,
            stopping,
        };
        tokio::spawn(drive(session, feed, streams, period, leader, permit));
        let stream =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Resolves when the member starts stopping (never, without a signal).
async fn member_stopping(stopping: &mut Option<tokio::sync::watch::Receiver<bool>>) {
    match stopping {
        Some(s) => {
            let _ = s.wait_for(|stop| *stop).await;
        }
        None => std::future::pending().await,
    }
}

/// Whether this member has a leader, as etcd's require-leader checks see it: a follower knows
/// one; a leader counts only while a quorum acknowledged it within the last election timeout
/// (etcd's leader steps down otherwise — check-quorum — and then has none).
fn has_leader(node: &RaftNode, election: Duration) -> bool {
    let metrics = node.raft().metrics();
    let m = metrics.borrow();
    match m.current_leader {
        None => false,
        Some(l) if l == m.id => m
            .millis_since_quorum_ack
            .is_some_and(|ms| u128::from(ms) <= election.as_millis()),
        Some(_) => true,
    }
}

/// How a require-leader stream learns whether the member knows a leader.
struct LeaderCheck {
    has_leader: Arc<dyn Fn() -> bool + Send + Sync>,
    every: Duration,
}

/// Whether the stream's caller may watch a range: etcd judges each create request by the
/// stream's credentials as a read of the range.
struct Permit {
    node: RaftNode,
    creds: Credentials,
}

impl Permit {
    /// The cancel response for `create` if its caller may not read its range.
    async fn refusal(&self, req: &WatchRequest) -> Option<WatchResponse> {
        let Some(RequestUnion::CreateRequest(c)) = &req.request_union else {
            return None;
        };
        let auth = self.node.auth();
        if !auth.enabled() && self.creds.token.is_none() {
            return None;
        }
        let range = RangeRequest {
            key: c.key.clone(),
            range_end: c.range_end.clone(),
            ..Default::default()
        };
        let allowed = match identify(&self.node, &self.creds).await {
            Ok(who) => perms::check_range(auth, who.as_ref(), &range).is_ok(),
            Err(_) => false,
        };
        (!allowed).then(|| WatchResponse {
            header: Some(self.node.header(self.node.store().current_revision())),
            watch_id: -1,
            created: true,
            canceled: true,
            cancel_reason: PERMISSION_DENIED_REASON.to_string(),
            ..Default::default()
        })
    }
}

/// The stream's two ends and the member's stop signal.
struct Streams {
    requests: Streaming<WatchRequest>,
    tx: mpsc::Sender<Result<WatchResponse, Status>>,
    stopping: Option<tokio::sync::watch::Receiver<bool>>,
}

/// What woke the stream's task.
enum Wake {
    Gone,
    Request(Result<Option<WatchRequest>, Status>),
    Feed(Result<Arc<Vec<RevisionEvents>>, RecvError>),
    Tick,
    LeaderCheck,
}

/// Runs one stream until the client goes away, its requests fail, or the node shuts down.
async fn drive(
    mut session: Session,
    mut feed: Feed,
    streams: Streams,
    period: Duration,
    leader: Option<LeaderCheck>,
    permit: Permit,
) {
    let Streams {
        mut requests,
        tx,
        mut stopping,
    } = streams;
    let mut next_tick = clock::now() + period;
    let check_every = leader.as_ref().map_or(period, |l| l.every);
    let mut next_leader_check = clock::now() + check_every;
    let mut leaderless_checks = 0;
    let mut requests_open = true;
    loop {
        let wake = tokio::select! {
            // Timers first: a busy feed must not starve progress notifications or leader
            // checks; requests before the feed, so a busy store cannot starve the client.
            biased;
            _ = tx.closed() => Wake::Gone,
            _ = member_stopping(&mut stopping) => Wake::Gone,
            _ = clock::sleep_until(next_tick) => Wake::Tick,
            _ = clock::sleep_until(next_leader_check), if leader.is_some() => Wake::LeaderCheck,
            r = requests.message(), if requests_open => Wake::Request(r),
            f = feed.recv() => Wake::Feed(f),
        };
        let mut out = Vec::new();
        match wake {
            Wake::Gone => return,
            Wake::Request(Ok(Some(req))) => {
                session.drain(&mut feed, &mut out);
                match permit.refusal(&req).await {
                    Some(refused) => out.push(refused),
                    None => session.handle(req, &mut out),
                }
            }
            // The client finished sending; keep watching until it cancels the call.
            Wake::Request(Ok(None)) => requests_open = false,
            Wake::Request(Err(e)) => {
                tracing::debug!("watch stream receive failed: {e}");
                return;
            }
            Wake::Feed(Ok(batch)) => {
                // Take what else is already waiting: a backlog is folded (see
                // `session::COALESCE_BACKLOG`).
                let mut batches = vec![batch];
                let mut lagged = false;
                while batches.len() < MAX_BATCHES_PER_WAKE {
                    match feed.try_recv() {
                        Ok(b) => batches.push(b),
                        Err(TryRecvError::Lagged(_)) => {
                            lagged = true;
                            break;
                        }
                        Err(_) => break,
                    }
                }
                session.on_batches(&batches, &mut out);
                if lagged {
                    session.on_lagged(&mut out);
                }
            }
            Wake::Feed(Err(RecvError::Lagged(n))) => {
                tracing::info!(
                    skipped_batches = n,
                    "watch stream fell behind the live feed; catching up from history"
                );
                session.on_lagged(&mut out);
            }
            // The hub is gone: the node is shutting down.
            Wake::Feed(Err(RecvError::Closed)) => return,
            Wake::Tick => {
                session.drain(&mut feed, &mut out);
                session.progress_tick(&mut out);
                next_tick = clock::now() + period;
            }
            Wake::LeaderCheck => {
                next_leader_check = clock::now() + check_every;
                let has_leader = leader.as_ref().is_some_and(|l| (l.has_leader)());
                leaderless_checks = if has_leader { 0 } else { leaderless_checks + 1 };
                if leaderless_checks >= NO_LEADER_CHECKS {
                    tracing::info!("ending a watch stream: no leader");
                    let _ = tx.send(Err(Error::NoLeader.into())).await;
                    return;
                }
            }
        }
        for r in out {
            if tx.send(Ok(r)).await.is_err() {
                return;
            }
        }
    }
}
