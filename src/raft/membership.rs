//! Membership as raft carries it: changes executed on the leader (planned by
//! [`cluster::membership`](crate::cluster::membership)), a member publishing its attributes,
//! learning of its own removal, joining (asking peers who the cluster is), and handing
//! leadership over (MoveLeader).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;

use crate::cluster::membership::{
    due_promotions, members_of, plan, MemberInfo, MembershipOp, Progress,
};
use crate::cluster::Member;
use crate::error::Error;
use crate::io::clock;
use crate::io::net::Dialer;
use crate::proto::detcdpb::RaftMessage;

use super::forward::{Here, Retry, REQUEST_TIMEOUT};
use super::network::{decode, encode, peer_channel};
use super::RaftNode;

impl RaftNode {
    /// The members of the last applied (so committed) membership, in ID order: what a member
    /// joining the cluster may rely on.
    pub fn applied_members(&self) -> Vec<MemberInfo> {
        members_of(&self.machine.applied_membership())
    }

    /// The members of raft's latest membership (possibly not committed yet), in ID order: what
    /// membership changes are validated against.
    pub fn latest_members(&self) -> Vec<MemberInfo> {
        members_of(self.raft.metrics().borrow().membership_config.membership())
    }

    /// Executes a membership operation on the leader (forwarding it there if needed) and
    /// returns the members afterwards.
    pub async fn change_membership(&self, op: MembershipOp) -> Result<Vec<MemberInfo>, Error> {
        let deadline = clock::now() + REQUEST_TIMEOUT;
        let (node, op) = (self, &op);
        self.leader_or_forward(
            Retry::AtMostOnce,
            deadline,
            move || async move {
                if node.leads() {
                    Here::Done(node.change_membership_here(op.clone()).await)
                } else {
                    Here::Elsewhere(node.where_leader())
                }
            },
            move |leader| async move {
                let bytes = node
                    .call_leader(&leader, deadline, encode(op), |mut c, m| {
                        Box::pin(async move { c.change_members(m).await })
                    })
                    .await?;
                decode::<Result<Vec<MemberInfo>, Error>>(&bytes).map_err(Error::Internal)?
            },
        )
        .await
    }

    /// Validates and commits `op` here, which must be the leader (answers `NoLeader`
    /// elsewhere). Returns the members afterwards.
    pub async fn change_membership_here(&self, op: MembershipOp) -> Result<Vec<MemberInfo>, Error> {
        let progress = self.progress().ok_or(Error::NoLeader)?;
        for step in plan(op, &self.latest_members(), &progress)? {
            self.raft
                .change_membership(step.change, step.retain)
                .await
                .map_err(|e| match e {
                    RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => Error::NoLeader,
                    RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                        tracing::info!("membership change refused: {e}");
                        Error::NotEnoughStartedMembers
                    }
                    RaftError::Fatal(_) => Error::Stopped,
                })?;
        }
        Ok(self.latest_members())
    }

    /// How far each member has replicated, if this member leads.
    fn progress(&self) -> Option<Progress> {
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.current_leader != Some(metrics.id) {
            return None;
        }
        Some(Progress {
            leader_last: metrics.last_log_index.unwrap_or(0),
            matched: metrics
                .replication
                .iter()
                .flatten()
                .map(|(id, l)| (*id, l.map_or(0, |l| l.index)))
                .collect::<BTreeMap<_, _>>(),
        })
    }

    /// Starts promoting, while this member leads, the members MemberAdd added as voters that
    /// raft holds as learners until they catch up ([`crate::cluster::Member::added_as_voter`]);
    /// runs until raft stops.
    pub fn start_promoting_added_voters(&self) {
        let node = self.clone();
        tokio::spawn(async move {
            loop {
                clock::sleep(Duration::from_millis(200)).await;
                let (running, leads) = node.running_and_leading();
                if !running {
                    return;
                }
                let Some(progress) = node.progress().filter(|_| leads) else {
                    continue;
                };
                for id in due_promotions(&node.latest_members(), &progress) {
                    let voter = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
                    match node.raft.change_membership(voter, true).await {
                        Ok(_) => tracing::info!(
                            member = %format!("{id:x}"),
                            "promoted the member added as a voter, now caught up"
                        ),
                        Err(e) => tracing::info!(
                            member = %format!("{id:x}"),
                            "promoting the member added as a voter: {e}"
                        ),
                    }
                }
            }
        });
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
            if self.member(self.id).is_some_and(|m| m.same_attributes(&me)) {
                return Ok(());
            }
            let op = MembershipOp::Publish {
                id: self.id,
                member: me.clone(),
            };
            match self.change_membership(op).await {
                Ok(_) => {
                    tracing::info!(member = %format!("{:x}", self.id), "published member attributes")
                }
                // `Stopped` may come from the leader this was forwarded to (its raft stopped):
                // another leader will be elected; only this member's own raft stopping (checked
                // above) ends the wait.
                Err(e) => {
                    tracing::debug!("publishing member attributes: {e}");
                    clock::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Resolves once this member has been removed from the cluster (after it was part of it):
    /// etcd's removed members stop, and so does detcd. Only a committed removal counts — one
    /// this member applied, or one a peer applied and answered with
    /// [`MEMBER_REMOVED`](crate::cluster::membership::MEMBER_REMOVED): an
    /// appended but uncommitted membership entry can still be rolled back by a new leader, and
    /// a member that stopped on it would stay down while still listed (found by the simulator's
    /// membership nemesis).
    pub async fn removed(&self) {
        let mut told = self.told_removed.subscribe();
        tokio::select! {
            _ = self.applied_removal() => {}
            // A former peer said so: it applied this member's removal, which this member may
            // never learn from the log (the leader no longer replicates to it).
            told = told.wait_for(|removed| *removed) => {
                if told.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// Resolves once this member has applied a membership without itself (after it was in one).
    async fn applied_removal(&self) {
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

    /// Asks the members at `peer_urls` for the cluster ID and their committed membership (for
    /// joining): the first answer that `wanted` accepts (one that lists the joining member — a
    /// member that has not applied the addition yet may not), else the last answer received.
    pub async fn cluster_info(
        dialer: &Dialer,
        peer_urls: &[String],
        wanted: impl Fn(&[MemberInfo]) -> bool,
    ) -> Result<(u64, Vec<MemberInfo>), Error> {
        let mut last = None;
        for url in peer_urls {
            let probe = Member {
                name: String::new(),
                peer_urls: vec![url.clone()],
                client_urls: vec![],
                added_as_voter: false,
            };
            let Ok(mut client) = peer_channel(dialer, &probe) else {
                continue;
            };
            let msg = RaftMessage {
                cluster_id: 0,
                from: 0,
                payload: bytes::Bytes::new(),
            };
            let call = clock::timeout(Duration::from_secs(2), client.cluster_info(msg));
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
        let deadline = clock::now() + self.settings.election * 5;
        let left = || deadline.saturating_duration_since(clock::now());
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

    /// The transferee's side of MoveLeader: keeps campaigning (the old leader has gone quiet)
    /// until this member leads; bounded to 40 attempts, 100 ms apart.
    pub fn campaign_for_transfer(&self) {
        let raft = self.raft.clone();
        tokio::spawn(async move {
            for _ in 0..40 {
                let m = raft.metrics().borrow().clone();
                if m.current_leader == Some(m.id) || raft.trigger().elect().await.is_err() {
                    return;
                }
                clock::sleep(Duration::from_millis(100)).await;
            }
        });
    }
}
