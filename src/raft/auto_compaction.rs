//! The leader's auto-compaction loop: samples the store and proposes the compactions the policy
//! ([`crate::compactor`]) makes due, as the member's own housekeeping (never refused by auth).
//! Followers keep sampling, so a new leader starts with a full window, as in etcd.

use crate::apply::Applied;
use crate::compactor::{Compactor, Policy};
use crate::error::Error;
use crate::io::clock;
use crate::proto::detcdpb::raft_request::Request as Req;
use crate::proto::detcdpb::RaftRequest;
use crate::proto::etcdserverpb::CompactionRequest;

use super::RaftNode;

impl RaftNode {
    /// Starts compacting by `policy` while this member leads; runs until raft stops.
    pub fn start_auto_compaction(&self, policy: Policy) {
        let node = self.clone();
        tokio::spawn(async move {
            let start = clock::now();
            let mut compactor = Compactor::new(policy);
            loop {
                compactor.sample(node.store.current_revision());
                clock::sleep(compactor.tick()).await;
                let (running, leads) = node.running_and_leading();
                if !running {
                    return;
                }
                if !leads {
                    continue;
                }
                let now = clock::now().saturating_duration_since(start);
                let Some(rev) = compactor.due(now, node.store.current_revision()) else {
                    continue;
                };
                tracing::info!(revision = rev, ?policy, "starting auto-compaction");
                match node.compact_as_member(rev).await {
                    Ok(()) | Err(Error::Compacted) => {
                        compactor.done(clock::now().saturating_duration_since(start), rev);
                        tracing::info!(revision = rev, "finished auto-compaction");
                    }
                    Err(e) => tracing::warn!(
                        revision = rev,
                        "failed auto-compaction ({e}); retrying after {:?}",
                        compactor.tick()
                    ),
                }
            }
        });
    }

    /// Compacts the store to `rev` from this member.
    async fn compact_as_member(&self, rev: i64) -> Result<(), Error> {
        let req = RaftRequest::system(Req::Compaction(CompactionRequest {
            revision: rev,
            physical: false,
        }));
        match self.propose_here(req).await? {
            (Applied::Rejected(e), _) => Err(e),
            _ => Ok(()),
        }
    }
}
