//! Leases: etcd's Lease service.
//!
//! - [`lessor`]: which leases exist (replicated through raft: grant, revoke, checkpoint) and, on
//!   the leader only, when each expires on the leader's clock.
//! - [`service`]: the gRPC service. Grant and revoke are raft proposals; keep-alive and
//!   time-to-live are answered by the leader (followers forward them over the peer service,
//!   [`LeaderCall`]); the leader proposes the revocation of expired leases ([`expiry_loop`]).

pub mod lessor;
pub mod service;

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::Raft;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::io::Clock;
use crate::mvcc::Store;
use crate::raft::types::TypeConfig;

pub use lessor::Lessor;

/// A lease operation only the leader can answer (it alone knows expiries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaderCall {
    /// Renew lease `0` (one LeaseKeepAlive request).
    Renew(i64),
    /// Remaining TTL of lease `id`, with its attached keys if `keys`.
    TimeToLive {
        /// The lease.
        id: i64,
        /// Whether to list the attached keys.
        keys: bool,
    },
}

/// The leader's answer to a [`LeaderCall`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaderAnswer {
    /// The renewed lease's TTL; 0 if it does not exist (or already expired).
    Renewed(i64),
    /// Remaining TTL (-1 for an unknown lease), granted TTL (0 if unknown), attached keys.
    TimeToLive(i64, i64, Vec<Vec<u8>>),
}

/// Answers `call` on this member, which must be the leader: after confirming leadership with
/// a quorum and applying everything committed (so a lease granted or revoked just before is
/// seen), as etcd's leader waits for its applied index before renewing. Errors with
/// `NotLeader` when this member does not lead (the caller asks the leader instead).
pub async fn serve_on_leader(
    raft: &Raft<TypeConfig>,
    lessor: &Lessor,
    store: &Store,
    call: &LeaderCall,
) -> Result<LeaderAnswer, Error> {
    let me = raft.metrics().borrow().id;
    if raft.metrics().borrow().current_leader != Some(me) {
        return Err(Error::NotLeader);
    }
    match raft.ensure_linearizable().await {
        Ok(_) => {}
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => {
            return Err(Error::NotLeader)
        }
        Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
            return Err(Error::NoLeader)
        }
        Err(RaftError::Fatal(_)) => return Err(Error::Stopped),
    }
    let now = Clock.now();
    // The expiry loop promotes within a tick of the election; a call arriving first does it.
    lessor.promote(now, raft.metrics().borrow().current_term);
    match call {
        LeaderCall::Renew(id) => match lessor.renew(*id, now)? {
            None => Ok(LeaderAnswer::Renewed(0)),
            Some((ttl, checkpointed)) => {
                if checkpointed {
                    // The renewal supersedes the checkpoint on every member.
                    propose_checkpoints(raft, vec![(*id, 0)]).await?;
                }
                Ok(LeaderAnswer::Renewed(ttl))
            }
        },
        LeaderCall::TimeToLive { id, keys } => Ok(match lessor.time_to_live(*id, now)? {
            None => LeaderAnswer::TimeToLive(-1, 0, Vec::new()),
            Some((left, granted)) => {
                let keys = if *keys {
                    store
                        .keys_with_lease(*id)
                        .into_iter()
                        .map(|k| k.to_vec())
                        .collect()
                } else {
                    Vec::new()
                };
                LeaderAnswer::TimeToLive(left, granted, keys)
            }
        }),
    }
}

/// How often the leader looks for expired leases (etcd: every 500 ms).
pub const EXPIRY_TICK: Duration = Duration::from_millis(500);

/// What the expiry loop does with an expired lease: propose its revocation (through raft).
pub type Revoke = Arc<dyn Fn(i64) + Send + Sync>;

/// Keeps the lessor's primary role in step with raft leadership and revokes expired leases,
/// every [`EXPIRY_TICK`] on the node's clock, until raft stops. Followers never expire anything.
pub async fn expiry_loop(raft: Raft<TypeConfig>, lessor: Arc<Lessor>, revoke: Revoke) {
    let clock = Clock;
    loop {
        clock.sleep(EXPIRY_TICK).await;
        let (leads, running, term) = {
            let m = raft.metrics();
            let m = m.borrow();
            (
                m.current_leader == Some(m.id) && m.state.is_leader(),
                m.running_state.is_ok(),
                m.current_term,
            )
        };
        if !running {
            return;
        }
        if !leads {
            if lessor.is_primary() {
                lessor.demote();
            }
            continue;
        }
        let now = clock.now();
        lessor.promote(now, term);
        for id in lessor.take_expired(now) {
            tracing::info!(lease = %format!("{id:016x}"), "lease expired; revoking");
            revoke(id);
        }
    }
}

/// How often the leader checkpoints remaining TTLs with `--experimental-enable-lease-checkpoint`
/// (etcd: every 5 minutes; leases with a TTL no longer than that are not checkpointed).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(300);

/// Most checkpoints in one proposal.
const CHECKPOINT_BATCH: usize = 1000;

/// Proposes `(lease, remaining TTL)` checkpoints through raft from this member (never forwarded).
async fn propose_checkpoints(raft: &Raft<TypeConfig>, cps: Vec<(i64, i64)>) -> Result<(), Error> {
    use crate::proto::detcdpb::raft_request::Request as Req;
    use crate::proto::detcdpb::RaftRequest;
    use crate::proto::etcdserverpb::{LeaseCheckpoint, LeaseCheckpointRequest};
    for chunk in cps.chunks(CHECKPOINT_BATCH) {
        let req = RaftRequest {
            request: Some(Req::LeaseCheckpoint(LeaseCheckpointRequest {
                checkpoints: chunk
                    .iter()
                    .map(|&(id, remaining_ttl)| LeaseCheckpoint { id, remaining_ttl })
                    .collect(),
            })),
        };
        raft.client_write(crate::raft::types::Request(req))
            .await
            .map_err(crate::raft::peer_server::write_error)?;
    }
    Ok(())
}

/// With `--experimental-enable-lease-checkpoint`: every `every`, the leader records each long
/// lease's remaining TTL through raft, so a new leader continues from it instead of granting a
/// full TTL again (a lease whose leader keeps changing still expires). Runs until raft stops.
pub async fn checkpoint_loop(raft: Raft<TypeConfig>, lessor: Arc<Lessor>, every: Duration) {
    let clock = Clock;
    loop {
        clock.sleep(every).await;
        let (leads, running) = {
            let m = raft.metrics();
            let m = m.borrow();
            (m.current_leader == Some(m.id), m.running_state.is_ok())
        };
        if !running {
            return;
        }
        if !leads {
            continue;
        }
        let cps = lessor.remaining_all(clock.now(), every.as_secs() as i64);
        if cps.is_empty() {
            continue;
        }
        if let Err(e) = propose_checkpoints(&raft, cps).await {
            tracing::debug!("lease checkpoint: {e}");
        }
    }
}
