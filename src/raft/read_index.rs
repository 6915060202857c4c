//! Linearizable reads: a read waits for a read index (the leader's commit point, confirmed by a
//! quorum after the read arrived) and then for this member to apply up to it. Concurrent reads
//! share one read-index round.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::Raft;

use crate::error::Error;
use crate::io::clock::{self, Instant};

use super::forward::{Here, Retry, REQUEST_TIMEOUT};
use super::network::decode;
use super::types::TypeConfig;
use super::RaftNode;

/// Requests waiting until this member has applied a given log index, woken in index order (then
/// arrival order) by the single task that follows openraft's metrics. Waiting on the metrics
/// channel directly would wake waiters in tokio's randomized order, which breaks the
/// simulator's determinism.
#[derive(Default)]
pub(super) struct AppliedWaiters {
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
    pub(super) async fn follow(raft: Raft<TypeConfig>, waiters: Arc<AppliedWaiters>) {
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
pub(super) struct ReadQueue {
    waiting: Vec<tokio::sync::oneshot::Sender<Result<u64, Error>>>,
    /// A task is serving rounds.
    running: bool,
}

impl RaftNode {
    /// Waits until this member has applied everything committed before the call: reads after
    /// it are linearizable. A follower asks the leader for the read index.
    pub async fn read_barrier(&self) -> Result<(), Error> {
        if crate::io::canary::on(crate::io::canary::Canary::StaleReads) {
            return Ok(());
        }
        let deadline = clock::now() + REQUEST_TIMEOUT;
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
        let index = match clock::timeout_at(deadline, rx).await {
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
            let result = self.fetch_read_index(clock::now() + REQUEST_TIMEOUT).await;
            for tx in batch {
                let _ = tx.send(result.clone());
            }
        }
    }

    /// The leader's read index: its commit point once a quorum confirmed its leadership. A
    /// follower asks the leader; asking again is harmless.
    async fn fetch_read_index(&self, deadline: Instant) -> Result<u64, Error> {
        let node = self;
        self.leader_or_forward(
            Retry::Idempotent,
            deadline,
            move || async move {
                match clock::timeout_at(deadline, node.raft.get_read_log_id()).await {
                    Err(_) => Here::Done(Err(Error::Timeout)),
                    Ok(Ok((read, _applied))) => Here::Done(Ok(read.map_or(0, |l| l.index))),
                    Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                        Here::Elsewhere(f.leader_node)
                    }
                    Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)))) => {
                        Here::Elsewhere(None)
                    }
                    Ok(Err(RaftError::Fatal(_))) => Here::Done(Err(Error::Stopped)),
                }
            },
            move |leader| async move {
                let bytes = node
                    .call_leader(&leader, deadline, bytes::Bytes::new(), |mut c, m| {
                        Box::pin(async move { c.read_index(m).await })
                    })
                    .await?;
                decode::<Result<u64, Error>>(&bytes).map_err(Error::Internal)?
            },
        )
        .await
    }

    /// The read index for a follower that asked (this member must lead).
    pub async fn read_index_here(&self) -> Result<u64, Error> {
        match self.raft.get_read_log_id().await {
            Ok((read, _applied)) => Ok(read.map_or(0, |l| l.index)),
            Err(RaftError::APIError(_)) => Err(Error::NoLeader),
            Err(RaftError::Fatal(_)) => Err(Error::Stopped),
        }
    }

    /// Waits until this member has applied log index `index`, for at most the request timeout.
    pub async fn await_applied(&self, index: u64) -> Result<(), Error> {
        self.wait_applied(index, clock::now() + super::forward::REQUEST_TIMEOUT)
            .await
    }

    /// Waits until this member has applied log index `index`, or fails at `deadline`.
    pub(super) async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<(), Error> {
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
        match clock::timeout_at(deadline, rx).await {
            Err(_) => Err(Error::Timeout),
            Ok(Err(_)) => Err(Error::Stopped),
            Ok(Ok(())) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_wake_in_index_order_up_to_the_applied_index() {
        let w = AppliedWaiters::default();
        let mut at5 = w.register(5);
        let mut at3 = w.register(3);
        let mut at9 = w.register(9);
        w.wake_up_to(5);
        assert!(at3.try_recv().is_ok());
        assert!(at5.try_recv().is_ok());
        assert!(at9.try_recv().is_err(), "index 9 is not applied yet");
        w.wake_up_to(9);
        assert!(at9.try_recv().is_ok());
    }
}
