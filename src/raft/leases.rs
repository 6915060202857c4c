//! What only the leader does for leases: it alone keeps expiries, so it answers keep-alives and
//! time-to-live queries (followers forward them, [`LeaderCall`]), proposes the revocation of
//! expired leases, and with `--experimental-enable-lease-checkpoint` records remaining TTLs.
//! The lessor itself ([`crate::lease`]) knows nothing of raft; these loops drive it.

use std::time::Duration;

use crate::error::Error;
use crate::io::clock;
use crate::lease::{LeaderAnswer, LeaderCall, EXPIRY_TICK};
use crate::proto::detcdpb::raft_request::Request as Req;
use crate::proto::detcdpb::RaftRequest;
use crate::proto::etcdserverpb::{LeaseCheckpoint, LeaseCheckpointRequest, LeaseRevokeRequest};

use super::forward::{Here, Retry, REQUEST_TIMEOUT};
use super::network::{decode, encode};
use super::RaftNode;

/// Most checkpoints in one proposal.
const CHECKPOINT_BATCH: usize = 1000;

impl RaftNode {
    /// Answers a lease call only the leader can (keep-alive, time-to-live): here if this member
    /// leads, else on the leader through the peer service. Both calls are safe to repeat.
    pub async fn lease_call(&self, call: LeaderCall) -> Result<LeaderAnswer, Error> {
        let deadline = clock::now() + REQUEST_TIMEOUT;
        let (node, call) = (self, &call);
        self.leader_or_forward(
            Retry::Idempotent,
            deadline,
            move || async move {
                if node.leads() {
                    Here::Done(node.serve_lease_call(call).await)
                } else {
                    Here::Elsewhere(node.where_leader())
                }
            },
            move |leader| async move {
                let bytes = node
                    .call_leader(&leader, deadline, encode(call), |mut c, m| {
                        Box::pin(async move { c.lease_leader(m).await })
                    })
                    .await?;
                decode::<Result<LeaderAnswer, Error>>(&bytes).map_err(Error::Internal)?
            },
        )
        .await
    }

    /// Answers `call` on this member, which must lead: after confirming leadership with a
    /// quorum and applying everything committed (so a lease granted or revoked just before is
    /// seen), as etcd's leader waits for its applied index before renewing. `NotLeader` when
    /// this member does not lead (the caller asks the leader instead).
    pub async fn serve_lease_call(&self, call: &LeaderCall) -> Result<LeaderAnswer, Error> {
        if !self.leads() {
            return Err(Error::NotLeader);
        }
        match self.read_index_here().await {
            Ok(index) => {
                self.wait_applied(index, clock::now() + REQUEST_TIMEOUT)
                    .await?
            }
            Err(Error::NoLeader) => return Err(Error::NotLeader),
            Err(e) => return Err(e),
        }
        let now = clock::now();
        // The expiry loop promotes within a tick of the election; a call arriving first does it.
        self.lessor.promote(
            now,
            self.raft.metrics().borrow().current_term,
            self.settings.election,
        );
        match call {
            LeaderCall::Renew(id) => match self.lessor.renew(*id, now)? {
                None => Ok(LeaderAnswer::Renewed(0)),
                Some((ttl, checkpointed)) => {
                    if checkpointed {
                        // The renewal supersedes the checkpoint on every member.
                        self.propose_checkpoints(vec![(*id, 0)]).await?;
                    }
                    Ok(LeaderAnswer::Renewed(ttl))
                }
            },
            LeaderCall::TimeToLive { id, keys } => {
                Ok(match self.lessor.time_to_live(*id, now)? {
                    None => LeaderAnswer::TimeToLive(-1, 0, Vec::new()),
                    Some((left, granted)) => {
                        let keys = if *keys {
                            self.store
                                .keys_with_lease(*id)
                                .into_iter()
                                .map(|k| k.to_vec())
                                .collect()
                        } else {
                            Vec::new()
                        };
                        LeaderAnswer::TimeToLive(left, granted, keys)
                    }
                })
            }
        }
    }

    /// Makes the lessor primary for the current term now if this member leads (the expiry loop
    /// would within a tick): a lease granted in this term then expires its TTL after its grant,
    /// not its TTL plus the extension a new leader gives the leases it finds.
    pub(super) fn promote_lessor_if_leading(&self) {
        let (leads, term) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (
                m.current_leader == Some(m.id) && m.state.is_leader(),
                m.current_term,
            )
        };
        if leads {
            self.lessor
                .promote(clock::now(), term, self.settings.election);
        }
    }

    /// Keeps the lessor's primary role in step with raft leadership and revokes expired leases,
    /// every [`EXPIRY_TICK`] on the node's clock, until raft stops. Followers never expire
    /// anything. An expired lease is revoked through raft like a client's LeaseRevoke, but
    /// proposed only here and never forwarded: a member that lost leadership meanwhile must not
    /// revoke a lease the new leader keeps (it retries later if it still leads and the lease
    /// still exists).
    pub(super) async fn lease_expiry_loop(self) {
        loop {
            clock::sleep(EXPIRY_TICK).await;
            let (leads, running, term) = {
                let m = self.raft.metrics();
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
                if self.lessor.is_primary() {
                    self.lessor.demote();
                }
                continue;
            }
            let now = clock::now();
            self.lessor.promote(now, term, self.settings.election);
            for id in self.lessor.take_expired(now) {
                tracing::info!(lease = %format!("{id:016x}"), "lease expired; revoking");
                let node = self.clone();
                tokio::spawn(async move {
                    let mut req = RaftRequest::system(Req::LeaseRevoke(LeaseRevokeRequest { id }));
                    req.expired_in_term = term;
                    if let Err(e) = node.propose_here(req).await {
                        tracing::debug!(lease = %format!("{id:016x}"), "revoking an expired lease: {e}");
                    }
                });
            }
        }
    }

    /// Starts the leader's periodic lease checkpoints (`--experimental-enable-lease-checkpoint`):
    /// every `every`, the leader records each long lease's remaining TTL through raft, so a new
    /// leader continues from it instead of granting a full TTL again (a lease whose leader keeps
    /// changing still expires). Runs until raft stops.
    pub fn enable_lease_checkpoints(&self, every: Duration) {
        let node = self.clone();
        tokio::spawn(async move {
            loop {
                clock::sleep(every).await;
                let (running, leads) = node.running_and_leading();
                if !running {
                    return;
                }
                if !leads {
                    continue;
                }
                let cps = node
                    .lessor
                    .remaining_all(clock::now(), every.as_secs() as i64);
                if cps.is_empty() {
                    continue;
                }
                if let Err(e) = node.propose_checkpoints(cps).await {
                    tracing::debug!("lease checkpoint: {e}");
                }
            }
        });
    }

    /// Proposes `(lease, remaining TTL)` checkpoints from this member (never forwarded).
    async fn propose_checkpoints(&self, cps: Vec<(i64, i64)>) -> Result<(), Error> {
        for chunk in cps.chunks(CHECKPOINT_BATCH) {
            let req = RaftRequest::system(Req::LeaseCheckpoint(LeaseCheckpointRequest {
                checkpoints: chunk
                    .iter()
                    .map(|&(id, remaining_ttl)| LeaseCheckpoint { id, remaining_ttl })
                    .collect(),
            }));
            self.propose_here(req).await?;
        }
        Ok(())
    }
}
