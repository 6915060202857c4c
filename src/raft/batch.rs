//! Group proposing: writes that arrive while earlier ones are being made durable go into the
//! log together, as one entry ([`RaftBatch`]) — one append, one fsync, one replication message
//! for all of them ([`Batcher`], on the leader). A follower groups the writes it forwards the
//! same way: one Propose call to the leader for all that queued meanwhile ([`Forwarder`]).
//!
//! Why here and not in the log store: openraft 0.9 waits for each append's fsync before it
//! takes the next client write (`append_to_log` awaits the flush callback), so without this
//! every write would cost a whole fsync of its own (measured: about 2,000 writes/s on a disk
//! whose fsync takes 0.3 ms, whatever the number of clients). At most [`IN_FLIGHT`] batches
//! are handed to openraft at once; the rest wait in the queue, which is what makes the next
//! batch large. The applier takes a batch apart again, so every request gets its own revision
//! and its own result.

use std::sync::Arc;

use openraft::error::{ClientWriteError, RaftError};
use openraft::Raft;
use prost::Message;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::cluster::Member;
use crate::error::Error;
use crate::proto::detcdpb::raft_request::Request as Req;
use crate::proto::detcdpb::{RaftBatch, RaftRequest};

use crate::io::clock;

use super::forward::{Peers, REQUEST_TIMEOUT};
use super::propose::{write_error, ProposeResult};
use super::types::{Applied, Command, TypeConfig};

/// Batches handed to raft and not yet applied, at most.
pub const IN_FLIGHT: usize = 2;
/// Requests in one batch, at most.
pub const MAX_REQUESTS: usize = 1000;
/// Encoded bytes of one batch, at most (a single larger request still goes alone).
pub const MAX_BYTES: usize = 4 << 20;

/// What became of one proposed request.
#[derive(Debug)]
pub enum Outcome {
    /// Committed and applied here, at this log index.
    Applied(Applied, u64),
    /// This member does not lead: the leader it knows of, if any. Nothing was proposed.
    NotLeader(Option<Member>),
    /// Raft failed (stopped, or refused the entry).
    Failed(Error),
}

struct Pending {
    request: RaftRequest,
    done: oneshot::Sender<Outcome>,
}

/// The proposal queue of one member; cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::UnboundedSender<Pending>,
    raft: Raft<TypeConfig>,
}

impl Batcher {
    /// Starts the batching task proposing to `raft`; it ends when the last clone is dropped.
    pub fn start(raft: Raft<TypeConfig>) -> Batcher {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(raft.clone(), rx));
        Batcher { queue, raft }
    }

    /// Proposes `request` with whatever else is waiting, and waits for its outcome. A member
    /// that does not lead answers at once (no queueing behind batches a lost leadership left
    /// in flight).
    pub async fn propose(&self, request: RaftRequest) -> Outcome {
        if let Some(elsewhere) = not_leading(&self.raft) {
            return Outcome::NotLeader(elsewhere);
        }
        let (done, outcome) = oneshot::channel();
        if self.queue.send(Pending { request, done }).is_err() {
            return Outcome::Failed(Error::Stopped);
        }
        outcome.await.unwrap_or(Outcome::Failed(Error::Stopped))
    }
}

/// `None` if this member leads (by its metrics); else the leader it knows of, if any.
fn not_leading(raft: &Raft<TypeConfig>) -> Option<Option<Member>> {
    let m = raft.metrics();
    let m = m.borrow();
    if m.current_leader == Some(m.id) {
        return None;
    }
    Some(
        m.current_leader
            .and_then(|l| m.membership_config.membership().get_node(&l).cloned()),
    )
}

async fn run(raft: Raft<TypeConfig>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        // Waiting for a slot is what lets the queue fill up behind the batches in flight.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut bytes = first.request.encoded_len();
        let mut batch = vec![first];
        while batch.len() < MAX_REQUESTS && bytes < MAX_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.request.encoded_len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            propose(&raft, batch).await;
            drop(slot);
        });
    }
}

/// Proposes one batch (a lone request as itself) and hands every request its outcome.
///
/// Only a member that leads proposes; openraft refusing the entry after that is ambiguous: it
/// may have been appended here and then truncated by a new leader that still holds (and may
/// commit) it. Such a batch fails with etcd's "possibly due to previous leader failure" rather
/// than being proposed again elsewhere, which could apply it twice.
async fn propose(raft: &Raft<TypeConfig>, mut batch: Vec<Pending>) {
    if let Some(elsewhere) = not_leading(raft) {
        for p in batch {
            let _ = p.done.send(Outcome::NotLeader(elsewhere.clone()));
        }
        return;
    }
    let request = if batch.len() == 1 {
        std::mem::take(&mut batch[0].request)
    } else {
        RaftRequest::anonymous(Req::Batch(RaftBatch {
            requests: batch
                .iter_mut()
                .map(|p| std::mem::take(&mut p.request))
                .collect(),
        }))
    };
    match raft.client_write(Command(request)).await {
        Ok(r) => {
            let index = r.log_id.index;
            let results = match r.data {
                Applied::Batch(results) if batch.len() > 1 => results,
                single => vec![single],
            };
            assert_eq!(
                results.len(),
                batch.len(),
                "a batch applies to one result per request"
            );
            for (p, result) in batch.into_iter().zip(results) {
                let _ = p.done.send(Outcome::Applied(result, index));
            }
        }
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
            for p in batch {
                let _ = p.done.send(Outcome::Failed(Error::TimeoutDueToLeaderFail));
            }
        }
        Err(e) => {
            let e = write_error(e);
            for p in batch {
                let _ = p.done.send(Outcome::Failed(e.clone()));
            }
        }
    }
}

/// Forwarding runs at most this many Propose calls to the leader at once.
pub const FORWARDS_IN_FLIGHT: usize = 2;

struct Forwarded {
    leader: Member,
    request: RaftRequest,
    done: oneshot::Sender<ProposeResult>,
}

/// A follower's writes on their way to the leader, grouped the same way: the requests that
/// queue while earlier Propose calls are in flight go to the leader in one call, which the
/// leader proposes as one (nested) batch. Cheap to clone.
#[derive(Clone)]
pub struct Forwarder {
    queue: mpsc::UnboundedSender<Forwarded>,
}

impl Forwarder {
    /// Starts the forwarding task, calling the leader through `peers`; it ends when the last
    /// clone is dropped.
    pub fn start(peers: Peers) -> Forwarder {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(forward_loop(peers, rx));
        Forwarder { queue }
    }

    /// Forwards `request` to `leader` with whatever else is waiting for it; the leader's apply
    /// result and log index (a failure applies to every request of the call).
    pub async fn forward(&self, leader: Member, request: RaftRequest) -> ProposeResult {
        let (done, result) = oneshot::channel();
        let sent = self.queue.send(Forwarded {
            leader,
            request,
            done,
        });
        if sent.is_err() {
            return Err(Error::Stopped);
        }
        result.await.unwrap_or(Err(Error::Stopped))
    }
}

async fn forward_loop(peers: Peers, mut rx: mpsc::UnboundedReceiver<Forwarded>) {
    let slots = Arc::new(Semaphore::new(FORWARDS_IN_FLIGHT));
    let mut held: Option<Forwarded> = None;
    loop {
        let first = match held.take() {
            Some(f) => f,
            None => match rx.recv().await {
                Some(f) => f,
                None => return,
            },
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut bytes = first.request.encoded_len();
        let mut batch = vec![first];
        while batch.len() < MAX_REQUESTS && bytes < MAX_BYTES {
            match rx.try_recv() {
                // Requests for another leader (leadership moved) wait for the next call.
                Ok(f) if f.leader != batch[0].leader => {
                    held = Some(f);
                    break;
                }
                Ok(f) => {
                    bytes += f.request.encoded_len();
                    batch.push(f);
                }
                Err(_) => break,
            }
        }
        let peers = peers.clone();
        tokio::spawn(async move {
            forward_batch(&peers, batch).await;
            drop(slot);
        });
    }
}

/// Forwards one group of requests (a lone request as itself) and hands each its result.
async fn forward_batch(peers: &Peers, mut batch: Vec<Forwarded>) {
    let leader = batch[0].leader.clone();
    let request = if batch.len() == 1 {
        std::mem::take(&mut batch[0].request)
    } else {
        RaftRequest::anonymous(Req::Batch(RaftBatch {
            requests: batch
                .iter_mut()
                .map(|f| std::mem::take(&mut f.request))
                .collect(),
        }))
    };
    let deadline = clock::now() + REQUEST_TIMEOUT;
    match peers.propose(&leader, request, deadline).await {
        Ok((Applied::Batch(results), index)) if batch.len() > 1 && results.len() == batch.len() => {
            for (f, result) in batch.into_iter().zip(results) {
                let _ = f.done.send(Ok((result, index)));
            }
        }
        Ok((result, index)) if batch.len() == 1 => {
            let _ = batch.pop().expect("one").done.send(Ok((result, index)));
        }
        Ok(_) => {
            let e = Error::Internal("the leader answered a batch with another shape".into());
            for f in batch {
                let _ = f.done.send(Err(e.clone()));
            }
        }
        Err(e) => {
            for f in batch {
                let _ = f.done.send(Err(e.clone()));
            }
        }
    }
}
