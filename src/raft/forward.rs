//! Leader or forward: what only the leader can do (propose, confirm a read index, change the
//! membership, answer a lease call) is done here if this member leads, else sent to the leader
//! over the peer service — retried while no leader is known, until the request's deadline.
//!
//! Whether a failed attempt may be retried is the caller's [`Retry`] policy, explicit at every
//! call: a write must never be proposed twice, a read index may be asked for as often as needed.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::Channel;

use crate::cluster::Member;
use crate::error::Error;
use crate::io::clock::{self, Instant};
use crate::io::net::Dialer;
use crate::proto::detcdpb::peer_client::PeerClient as PeerGrpc;
use crate::proto::detcdpb::{ProposeRequest, RaftMessage, RaftRequest};

use super::network::{decode, peer_channel, PeerRpc};
use super::propose::ProposeResult;
use super::RaftNode;

/// How long a request may wait for the leader (and for commit) before failing with etcd's
/// timeout error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(7);

/// Pause between attempts while no leader is known.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// Which failures of an attempt are retried (until the deadline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The call changes nothing (a read index, a lease renewal or time-to-live): retried
    /// whenever the leader was unknown, moved, or did not answer.
    Idempotent,
    /// The call must take effect at most once (a write, a membership change): retried only when
    /// it provably never reached a leader. An answer lost on the way back is the client's
    /// etcd "request timed out, possibly due to previous leader failure".
    AtMostOnce,
}

impl Retry {
    fn retries(self, e: &Error) -> bool {
        match self {
            Retry::Idempotent => matches!(
                e,
                Error::NoLeader | Error::NotLeader | Error::TimeoutDueToLeaderFail
            ),
            Retry::AtMostOnce => matches!(e, Error::NoLeader),
        }
    }
}

/// The outcome of trying a call on this member.
pub enum Here<T> {
    /// This member led and answered (or failed for good).
    Done(Result<T, Error>),
    /// Another member leads (`Some`) or no leader is known (`None`).
    Elsewhere(Option<Member>),
}

/// Classifies a failed call to the leader. Only a call that provably never reached it (the
/// connection could not be made) counts as "no leader"; anything else may have been delivered.
pub(super) fn unsent_or_unknown(status: &tonic::Status) -> Error {
    let msg = status.message().to_ascii_lowercase();
    let never_connected = status.code() == tonic::Code::Unavailable
        && (msg.contains("tcp connect error") || msg.contains("connection refused"));
    if never_connected {
        Error::NoLeader
    } else {
        Error::TimeoutDueToLeaderFail
    }
}

impl RaftNode {
    /// Runs `here` on this member; if another member leads, runs `there` with it; repeats per
    /// `retry` until `deadline`, pausing briefly between attempts; `Error::NoLeader` once the
    /// deadline has passed.
    pub(super) async fn leader_or_forward<T, H, HF, F, FF>(
        &self,
        retry: Retry,
        deadline: Instant,
        mut here: H,
        mut there: F,
    ) -> Result<T, Error>
    where
        H: FnMut() -> HF,
        HF: Future<Output = Here<T>>,
        F: FnMut(Member) -> FF,
        FF: Future<Output = Result<T, Error>>,
    {
        loop {
            let leader = match here().await {
                Here::Done(Err(e)) if retry.retries(&e) => None,
                Here::Done(done) => return done,
                Here::Elsewhere(leader) => leader,
            };
            if let Some(leader) = leader {
                match there(leader).await {
                    Err(e) if retry.retries(&e) => {}
                    other => return other,
                }
            }
            if clock::now() + RETRY_BACKOFF >= deadline {
                return Err(Error::NoLeader);
            }
            clock::sleep(RETRY_BACKOFF).await;
        }
    }

    /// Where the leader is, as this member's metrics know it: here, elsewhere, or unknown.
    pub(super) fn where_leader(&self) -> Option<Member> {
        self.leader().and_then(|l| self.member(l))
    }

    /// Whether this member leads, by its metrics (a quorum may no longer agree).
    pub(super) fn leads(&self) -> bool {
        self.leader() == Some(self.id)
    }

    /// A member of the current (latest) membership.
    pub(super) fn member(&self, id: u64) -> Option<Member> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .cloned()
    }

    /// One unary call on `leader`'s peer service, bounded by `deadline`; its reply payload.
    pub(super) async fn call_leader(
        &self,
        leader: &Member,
        deadline: Instant,
        payload: bytes::Bytes,
        rpc: PeerRpc,
    ) -> Result<bytes::Bytes, Error> {
        self.peers.call(leader, deadline, payload, rpc).await
    }
}

/// Clients to the other members' peer services, by peer URL; cheap to clone (clones share the
/// connections).
#[derive(Clone)]
pub struct Peers {
    clients: Arc<Mutex<BTreeMap<String, PeerGrpc<Channel>>>>,
    cluster_id: u64,
    me: u64,
    dialer: Dialer,
}

impl Peers {
    /// Clients for member `me` of cluster `cluster_id`, connecting with `dialer`.
    pub fn new(cluster_id: u64, me: u64, dialer: Dialer) -> Peers {
        Peers {
            clients: Arc::new(Mutex::new(BTreeMap::new())),
            cluster_id,
            me,
            dialer,
        }
    }

    /// A client to `member`'s peer service, reused across calls.
    fn client(&self, member: &Member) -> Result<PeerGrpc<Channel>, Error> {
        let key = member.peer_urls.first().cloned().unwrap_or_default();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let c = peer_channel(&self.dialer, member).map_err(Error::Internal)?;
        clients.insert(key, c.clone());
        Ok(c)
    }

    /// One unary call on `leader`'s peer service, bounded by `deadline`; its reply payload.
    pub async fn call(
        &self,
        leader: &Member,
        deadline: Instant,
        payload: bytes::Bytes,
        rpc: PeerRpc,
    ) -> Result<bytes::Bytes, Error> {
        let client = self.client(leader)?;
        let msg = RaftMessage {
            cluster_id: self.cluster_id,
            from: self.me,
            payload,
        };
        match clock::timeout_at(deadline, rpc(client, msg)).await {
            Err(_) => Err(Error::TimeoutDueToLeaderFail),
            Ok(Err(status)) => Err(unsent_or_unknown(&status)),
            Ok(Ok(r)) => Ok(r.into_inner().payload),
        }
    }

    /// Proposes `req` on `leader` (its peer service's Propose), bounded by `deadline`: the
    /// apply result and its log index.
    pub async fn propose(
        &self,
        leader: &Member,
        req: RaftRequest,
        deadline: Instant,
    ) -> ProposeResult {
        let mut client = self.client(leader)?;
        let msg = ProposeRequest {
            cluster_id: self.cluster_id,
            request: Some(req),
        };
        let reply = match clock::timeout_at(deadline, client.propose(msg)).await {
            Err(_) => return Err(Error::TimeoutDueToLeaderFail),
            Ok(Err(status)) => return Err(unsent_or_unknown(&status)),
            Ok(Ok(r)) => r.into_inner(),
        };
        decode::<ProposeResult>(&reply.payload).map_err(Error::Internal)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_idempotent_calls_retry_after_they_may_have_arrived() {
        let unsent = Error::NoLeader;
        assert!(Retry::AtMostOnce.retries(&unsent) && Retry::Idempotent.retries(&unsent));
        for e in [Error::NotLeader, Error::TimeoutDueToLeaderFail] {
            assert!(!Retry::AtMostOnce.retries(&e) && Retry::Idempotent.retries(&e));
        }
        for e in [Error::Timeout, Error::Stopped, Error::LeaseNotFound] {
            assert!(!Retry::AtMostOnce.retries(&e) && !Retry::Idempotent.retries(&e));
        }
    }

    #[test]
    fn only_a_refused_connection_proves_a_call_unsent() {
        let refused = tonic::Status::unavailable("tcp connect error: Connection refused");
        assert_eq!(unsent_or_unknown(&refused), Error::NoLeader);
        let reset = tonic::Status::unavailable("connection reset by peer");
        assert_eq!(unsent_or_unknown(&reset), Error::TimeoutDueToLeaderFail);
        let other = tonic::Status::internal("h2 protocol error");
        assert_eq!(unsent_or_unknown(&other), Error::TimeoutDueToLeaderFail);
    }
}
