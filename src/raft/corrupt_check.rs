//! The corruption checks' calls (judged by [`crate::alarm::corrupt`]): a member hashing its
//! key history for a peer, asking every peer for theirs, the check a member runs before it
//! serves (`--experimental-initial-corrupt-check`) and the leader's periodic check
//! (`--experimental-corrupt-check-time`), which raises the CORRUPT alarm.

use std::time::Duration;

use crate::alarm::corrupt::{initial_mismatches, periodic_suspect, KvHash};
use crate::apply::Applied;
use crate::error::Error;
use crate::io::clock;
use crate::proto::detcdpb::raft_request::Request as Req;
use crate::proto::detcdpb::RaftRequest;
use crate::proto::etcdserverpb::alarm_request::AlarmAction;
use crate::proto::etcdserverpb::{AlarmRequest, AlarmType};

use super::network::{decode, encode};
use super::RaftNode;

/// How long a peer may take to hash (etcd allows its request timeout).
const PEER_HASH_TIMEOUT: Duration = Duration::from_secs(5);

impl RaftNode {
    /// This member's hash of its key history up to `rev` (0 = now), with its current and
    /// compacted revisions. Fails like a read for a compacted or future revision.
    pub fn kv_hash(&self, rev: i64) -> Result<KvHash, Error> {
        let store = self.store();
        let revision = store.current_revision();
        let (hash, compact_revision) = store.hash_kv(rev)?;
        Ok(KvHash {
            member: self.id(),
            revision,
            hash,
            compact_revision,
        })
    }

    /// Every other committed member's hash up to `rev`, from those that answer in time. A peer
    /// that is behind `rev`, has compacted past it or cannot be reached is left out (logged).
    async fn peer_hashes(&self, rev: i64) -> Vec<KvHash> {
        let deadline = clock::now() + PEER_HASH_TIMEOUT;
        let calls = self
            .applied_members()
            .into_iter()
            .filter(|m| m.id != self.id())
            .map(|m| async move {
                let reply = self
                    .call_leader(&m.member, deadline, encode(&rev), |mut c, msg| {
                        Box::pin(async move { c.hash_kv(msg).await })
                    })
                    .await
                    .and_then(|b| decode::<Result<KvHash, Error>>(&b).map_err(Error::Internal)?);
                if let Err(e) = &reply {
                    tracing::warn!(
                        peer = %format!("{:x}", m.id),
                        revision = rev,
                        "cannot check the hash of a peer: {e}"
                    );
                }
                reply.ok()
            });
        futures::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// etcd's initial corruption check: before serving, compare this member's hash of its
    /// revision with its peers' hashes of the same revision. Fails (the member must not serve)
    /// if a peer with the same compaction disagrees.
    pub async fn check_initial_hash(&self) -> Result<(), String> {
        let own = self.kv_hash(0).map_err(|e| e.to_string())?;
        tracing::info!(
            revision = own.revision,
            hash = own.hash,
            "starting initial corruption check"
        );
        let peers = self.peer_hashes(own.revision).await;
        let bad = initial_mismatches(&own, &peers);
        for p in peers.iter().filter(|p| bad.contains(&p.member)) {
            tracing::error!(
                peer = %format!("{:x}", p.member),
                revision = own.revision,
                compact_revision = own.compact_revision,
                own = own.hash,
                theirs = p.hash,
                "hash differs from a peer's"
            );
        }
        if !bad.is_empty() {
            return Err(format!(
                "{:x} found data inconsistency with peers",
                self.id()
            ));
        }
        tracing::info!(
            peers = peers.len(),
            "initial corruption checking passed; no corruption"
        );
        Ok(())
    }

    /// Starts the leader's periodic corruption check every `period`; runs until raft stops.
    pub fn start_corrupt_check(&self, period: Duration) {
        let node = self.clone();
        tokio::spawn(async move {
            loop {
                clock::sleep(period).await;
                let (running, leads) = node.running_and_leading();
                if !running {
                    return;
                }
                if leads {
                    if let Err(e) = node.check_hashes_once().await {
                        tracing::warn!("corruption check failed: {e}");
                    }
                }
            }
        });
    }

    /// One periodic check: hash, ask the peers to hash the same revision, confirm leadership,
    /// hash again, and raise the CORRUPT alarm for the member the answers convict.
    async fn check_hashes_once(&self) -> Result<(), Error> {
        let before = self.kv_hash(0)?;
        let peers = self.peer_hashes(before.revision).await;
        self.read_barrier().await?;
        let after = self.kv_hash(0)?;
        let Some(corrupt) = periodic_suspect(&before, &after, &peers) else {
            return Ok(());
        };
        tracing::error!(
            member = %format!("{corrupt:x}"),
            revision = before.revision,
            "data inconsistency found; raising the CORRUPT alarm"
        );
        let raise = RaftRequest::system(Req::Alarm(AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: corrupt,
            alarm: AlarmType::Corrupt as i32,
        }));
        match self.propose_here(raise).await? {
            (Applied::Rejected(e), _) => Err(e),
            _ => Ok(()),
        }
    }
}
