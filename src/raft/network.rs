//! Raft messages between members, over the `detcdpb.Peer` gRPC service (tonic, or madsim-tonic in
//! the simulator). openraft's own message types travel bincode-encoded inside `RaftMessage`,
//! stamped with the cluster ID so a member of another cluster is refused.

use std::sync::Arc;

use bytes::Bytes;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::cluster::membership::MEMBER_REMOVED;
use crate::cluster::Member;
use crate::io::clock;
use crate::io::net::Dialer;
use crate::proto::detcdpb::peer_client::PeerClient as PeerGrpc;
use crate::proto::detcdpb::RaftMessage;

use super::peer_metrics::{peer, PeerMetrics};
use super::types::TypeConfig;

/// Encodes an openraft value for the wire.
pub fn encode<T: Serialize>(value: &T) -> Bytes {
    bincode::serialize(value)
        .expect("openraft types serialize")
        .into()
}

/// Decodes an openraft value from the wire.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    bincode::deserialize(bytes).map_err(|e| format!("undecodable peer message: {e}"))
}

/// A lazily connecting client of a member's peer service, at its first peer URL.
pub fn peer_channel(dialer: &Dialer, member: &Member) -> Result<PeerGrpc<Channel>, String> {
    let url = member
        .peer_urls
        .first()
        .ok_or_else(|| format!("member {} has no peer URL", member.name))?;
    Ok(PeerGrpc::new(dialer.channel(url)?)
        .max_decoding_message_size(PEER_MESSAGE_LIMIT)
        .max_encoding_message_size(PEER_MESSAGE_LIMIT))
}

/// The largest peer message: an append of many entries, or a snapshot chunk.
pub const PEER_MESSAGE_LIMIT: usize = 512 << 20;

/// One unary call on the peer service, as a plain function so callers can pick the method.
pub type PeerRpc =
    fn(
        PeerGrpc<Channel>,
        RaftMessage,
    )
        -> futures::future::BoxFuture<'static, Result<tonic::Response<RaftMessage>, tonic::Status>>;

/// Creates connections to peers.
#[derive(Debug, Clone)]
pub struct Network {
    /// This member.
    pub me: u64,
    /// This member's cluster.
    pub cluster_id: u64,
    /// How to reach the other members.
    pub dialer: Dialer,
    /// What the raft traffic to each peer amounts to.
    pub metrics: PeerMetrics,
    /// Set when a peer answers that this member was removed from the cluster.
    pub told_removed: Arc<watch::Sender<bool>>,
}

/// A connection to one peer.
pub struct PeerClient {
    target: u64,
    me: u64,
    cluster_id: u64,
    client: Result<PeerGrpc<Channel>, String>,
    metrics: PeerMetrics,
    told_removed: Arc<watch::Sender<bool>>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &Member) -> PeerClient {
        PeerClient {
            target,
            me: self.me,
            cluster_id: self.cluster_id,
            client: peer_channel(&self.dialer, node),
            metrics: self.metrics.clone(),
            told_removed: self.told_removed.clone(),
        }
    }
}

fn unreachable<E: std::error::Error>(msg: String) -> RPCError<u64, Member, E> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        msg,
    )))
}

fn network<E: std::error::Error>(msg: String) -> RPCError<u64, Member, E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(msg)))
}

impl PeerClient {
    /// One round trip: encode, call with the deadline openraft gave, decode the remote result.
    async fn call<Req, Resp, E>(
        &mut self,
        req: &Req,
        option: &RPCOption,
        rpc: PeerRpc,
    ) -> Result<Resp, RPCError<u64, Member, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let to = peer("To", self.target);
        let client = match &self.client {
            Ok(c) => c.clone(),
            Err(e) => {
                self.metrics.sent_failures.get_or_create(&to).inc();
                return Err(unreachable(e.clone()));
            }
        };
        let msg = RaftMessage {
            cluster_id: self.cluster_id,
            from: self.me,
            payload: encode(req),
        };
        let bytes = msg.payload.len() as u64;
        let start = clock::now();
        let answer = clock::timeout(option.hard_ttl(), rpc(client, msg)).await;
        if let Ok(Ok(_)) = &answer {
            let elapsed = clock::now().saturating_duration_since(start);
            self.metrics.sent_bytes.get_or_create(&to).inc_by(bytes);
            let rtt = self.metrics.round_trip.get_or_create(&to);
            rtt.observe(elapsed.as_secs_f64());
        } else {
            self.metrics.sent_failures.get_or_create(&to).inc();
        }
        let reply = match answer {
            Err(_) => {
                return Err(network(format!(
                    "peer {:x} did not answer in time",
                    self.target
                )))
            }
            Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {
                return Err(unreachable(format!(
                    "peer {:x}: {}",
                    self.target,
                    status.message()
                )))
            }
            Ok(Err(status))
                if status.code() == tonic::Code::FailedPrecondition
                    && status.message() == MEMBER_REMOVED =>
            {
                tracing::warn!(peer = %format!("{:x}", self.target), "{MEMBER_REMOVED}");
                self.told_removed.send_replace(true);
                return Err(network(format!("peer {:x}: {MEMBER_REMOVED}", self.target)));
            }
            Ok(Err(status)) => return Err(network(format!("peer {:x}: {status}", self.target))),
            Ok(Ok(r)) => r.into_inner(),
        };
        let result: Result<Resp, RaftError<u64, E>> = decode(&reply.payload).map_err(network)?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, Member, RaftError<u64>>> {
        self.call(&rpc, &option, |mut c, m| {
            Box::pin(async move { c.append_entries(m).await })
        })
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, Member, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call(&rpc, &option, |mut c, m| {
            Box::pin(async move { c.install_snapshot(m).await })
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, Member, RaftError<u64>>> {
        self.call(&rpc, &option, |mut c, m| {
            Box::pin(async move { c.vote(m).await })
        })
        .await
    }
}
