//! Breaking split votes, as etcd's fresh election timeout per round does.
//!
//! With one leader per term a member votes once per term, so candidates that time out together
//! split the vote. openraft 0.9 draws each member's election timeout once, for its lifetime, and
//! checks it on a tick of 1.5 heartbeats: members whose timeouts round up to the same tick keep
//! timing out together after a split, term after term (in the simulator, where members start in
//! the same instant and every founding member campaigns at bootstrap, about one cluster in a few
//! hundred never elected a leader; on real machines a constant offset below the round trip does
//! the same). etcd draws a new timeout every round. Here a member that was a candidate with no
//! leader a fresh random time in [election, 2 x election) ago, and still is one (in whatever
//! term: openraft's own rounds move the term on), campaigns once more at that random instant,
//! off the ticks, so one candidate gets ahead of the others and wins.

use std::time::Duration;

use openraft::ServerState;

use crate::io::clock;

use super::RaftNode;

impl RaftNode {
    /// Starts the split-vote breaker; runs until raft stops.
    pub(super) fn start_breaking_split_votes(&self) {
        let node = self.clone();
        let election = self.settings.election;
        tokio::spawn(async move {
            loop {
                let before = node.candidacy();
                let jitter = crate::io::rand::random_u64() % (election.as_millis() as u64).max(1);
                clock::sleep(election + Duration::from_millis(jitter)).await;
                if node.raft.metrics().borrow().running_state.is_err() {
                    return;
                }
                let now = node.candidacy();
                if let (Some(then), Some(now)) = (before, now) {
                    tracing::info!(
                        since_term = then,
                        term = now,
                        "a candidate without a leader for an election timeout; campaigning again"
                    );
                    let _ = node.raft.trigger().elect().await;
                }
            }
        });
    }

    /// The term this member is a candidate in without a leader, if it is one.
    fn candidacy(&self) -> Option<u64> {
        let m = self.raft.metrics();
        let m = m.borrow();
        (m.state == ServerState::Candidate && m.current_leader.is_none()).then_some(m.current_term)
    }
}
