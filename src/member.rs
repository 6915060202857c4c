//! One member: [`Server::start`] takes a [`Config`] and a [`Disk`], settles the member's
//! identity, starts its raft node, serves the peer service on the peer URLs, publishes its
//! attributes, and then serves etcd's gRPC API on the client URLs. This is the wiring; the
//! services themselves are in [`crate::server`].

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use tokio::sync::watch;

use crate::cluster::membership::MemberInfo;
use crate::cluster::{cluster_id, member_id, Member};
use crate::config::Config;
use crate::io::disk::WriteBatch;
use crate::io::{net, Disk};
use crate::proto::detcdpb::peer_server::PeerServer;
use crate::proto::etcdserverpb::auth_server::AuthServer;
use crate::proto::etcdserverpb::cluster_server::ClusterServer;
use crate::proto::etcdserverpb::kv_server::KvServer;
use crate::proto::etcdserverpb::lease_server::LeaseServer;
use crate::proto::etcdserverpb::maintenance_server::MaintenanceServer;
use crate::proto::etcdserverpb::watch_server::WatchServer;
use crate::proto::v3electionpb::election_server::ElectionServer;
use crate::proto::v3lockpb::lock_server::LockServer;
use crate::raft::network::PEER_MESSAGE_LIMIT;
use crate::raft::{RaftNode, RaftSettings};
use crate::server::auth::AuthService;
use crate::server::cluster::ClusterService;
use crate::server::election::ElectionService;
use crate::server::embedded::LocalClient;
use crate::server::kv::KvService;
use crate::server::lease::LeaseService;
use crate::server::lock::LockService;
use crate::server::maintenance::MaintenanceService;
use crate::server::peer::PeerService;
use crate::server::watch::{WatchService, WatchSettings};
use crate::server::GRPC_OVERHEAD_BYTES;

const MEMBER_ID_KEY: &[u8] = b"c/member_id";
const CLUSTER_ID_KEY: &[u8] = b"c/cluster_id";
/// Present when this member joined a running cluster: it must never bootstrap a membership of
/// its own, even if it restarts before the leader first replicated to it.
const JOINED_KEY: &[u8] = b"c/joined";

/// A running member.
pub struct Server {
    node: RaftNode,
    client_addrs: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
    serving: Vec<tokio::task::JoinHandle<()>>,
}

/// Why a member could not start.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// The member and cluster identity: from disk if this data dir was bootstrapped before (flags
/// like the cluster token only matter at bootstrap, as in etcd), else derived from the flags.
async fn identity(
    cfg: &Config,
    disk: &Disk,
) -> Result<(u64, u64, BTreeMap<u64, Member>), StartError> {
    // Every member must bootstrap the same first membership entry, so it holds only what all of
    // them know from the flags; each member publishes its client URLs once it runs.
    let mut members = BTreeMap::new();
    for m in &cfg.initial_cluster {
        let id = member_id(&m.peer_urls, &cfg.initial_cluster_token);
        let member = Member {
            name: m.name.clone(),
            peer_urls: m.peer_urls.clone(),
            client_urls: vec![],
        };
        if members.insert(id, member).is_some() {
            return Err(format!(
                "--initial-cluster has duplicate peer URLs for member {}",
                m.name
            )
            .into());
        }
    }
    let read = |k: &[u8]| -> Result<Option<u64>, StartError> {
        Ok(disk
            .get(k)?
            .and_then(|v| v[..].try_into().ok().map(u64::from_be_bytes)))
    };
    if let (Some(me), Some(cid)) = (read(MEMBER_ID_KEY)?, read(CLUSTER_ID_KEY)?) {
        if disk.get(JOINED_KEY)?.is_some() {
            // It learns the membership from the leader, however it was started this time.
            return Ok((me, cid, BTreeMap::new()));
        }
        return Ok((me, cid, members));
    }
    if !cfg.initial_cluster_new {
        // Joining a running cluster (after `etcdctl member add`): learn the cluster and our own
        // ID from the other members, by our peer URLs, as etcd does.
        let others: Vec<String> = cfg
            .initial_cluster
            .iter()
            .filter(|m| m.name != cfg.name)
            .flat_map(|m| m.peer_urls.clone())
            .collect();
        let mut mine = cfg.initial_advertise_peer_urls.clone();
        mine.sort();
        let is_me = |m: &MemberInfo| {
            let mut urls = m.member.peer_urls.clone();
            urls.sort();
            urls == mine
        };
        let (cid, current) = RaftNode::cluster_info(&others, |ms| ms.iter().any(is_me)).await?;
        let me = current
            .iter()
            .find(|m| is_me(m))
            .map(|m| m.id)
            .ok_or_else(|| {
                format!(
                    "member with peer URLs {} has not been added to cluster {cid:x}; run `etcdctl member add` first",
                    mine.join(",")
                )
            })?;
        persist_identity(disk, me, cid, true).await?;
        return Ok((me, cid, BTreeMap::new()));
    }
    let me = member_id(&cfg.initial_advertise_peer_urls, &cfg.initial_cluster_token);
    let ids: Vec<u64> = members.keys().copied().collect();
    let cid = cluster_id(&ids);
    persist_identity(disk, me, cid, false).await?;
    Ok((me, cid, members))
}

async fn persist_identity(disk: &Disk, me: u64, cid: u64, joined: bool) -> Result<(), StartError> {
    let mut b = WriteBatch::new();
    if joined {
        b.put(Bytes::from_static(JOINED_KEY), vec![1]);
    }
    b.put(Bytes::from_static(MEMBER_ID_KEY), me.to_be_bytes().to_vec());
    b.put(
        Bytes::from_static(CLUSTER_ID_KEY),
        cid.to_be_bytes().to_vec(),
    );
    disk.write(b)?;
    disk.sync().await?;
    Ok(())
}

impl Server {
    /// Starts a member on `disk` and serves its client URLs.
    pub async fn start(cfg: &Config, disk: Disk) -> Result<Server, StartError> {
        let (me, cid, members) = identity(cfg, &disk).await?;
        let settings = RaftSettings {
            heartbeat: cfg.heartbeat,
            election: cfg.election,
            snapshot_count: cfg.snapshot_count,
            max_request_bytes: cfg.max_request_bytes,
            wal_segment_bytes: cfg.wal_segment_bytes,
        };
        let (stop, stopped) = watch::channel(false);
        let mut serving = Vec::new();
        let node = RaftNode::start(me, cid, members, disk, settings).await?;
        tracing::info!(member = %format!("{me:x}"), cluster = %format!("{cid:x}"), "raft started");
        let peer = PeerServer::new(PeerService::new(node.clone()))
            .max_decoding_message_size(PEER_MESSAGE_LIMIT)
            .max_encoding_message_size(PEER_MESSAGE_LIMIT);
        for url in &cfg.listen_peer_urls {
            let addr = net::parse_listen_url(url)?;
            let listener = net::bind(addr)
                .await
                .map_err(|e| format!("listen tcp {addr}: {e}"))?;
            let bound = net::local_addr(&listener)?;
            let router = tonic::transport::Server::builder().add_service(peer.clone());
            let mut stopped = stopped.clone();
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            serving.push(tokio::spawn(async move {
                if let Err(e) = net::serve_grpc(router, listener, shutdown, false).await {
                    tracing::error!(%bound, "peer listener failed: {e}");
                }
            }));
            tracing::info!(%bound, "serving peer traffic");
        }
        // Like etcd, serve clients only once this member's attributes are committed.
        node.publish_attributes(Member {
            name: cfg.name.clone(),
            peer_urls: cfg.initial_advertise_peer_urls.clone(),
            client_urls: cfg.advertise_client_urls.clone(),
        })
        .await?;

        let max_decode = cfg.max_request_bytes + GRPC_OVERHEAD_BYTES;
        let kv_service = KvService::new(node.clone(), cfg.max_txn_ops);
        let kv = KvServer::new(kv_service.clone())
            .max_decoding_message_size(max_decode)
            .max_encoding_message_size(usize::MAX);
        let maintenance = MaintenanceServer::new(MaintenanceService::new(node.clone()))
            .max_decoding_message_size(max_decode);
        let cluster = ClusterServer::new(ClusterService::new(node.clone()));
        let watch = WatchServer::new(
            WatchService::new(node.clone(), node.hub().clone())
                .with_settings(WatchSettings {
                    max_request_bytes: cfg.max_request_bytes,
                    progress_notify_interval: cfg.watch_progress_notify_interval,
                    election_timeout: cfg.election,
                })
                .ending_on(stopped.clone()),
        )
        .max_decoding_message_size(max_decode);
        if cfg.lease_checkpoint {
            node.enable_lease_checkpoints(crate::lease::CHECKPOINT_INTERVAL);
        }
        let lease_service = LeaseService::new(node.clone(), cfg.election);
        let lease = LeaseServer::new(lease_service.clone());
        // Lock and Election run etcd's recipes over an in-process client of this member.
        let local = LocalClient::new(node.clone(), kv_service, lease_service, stopped.clone());
        let election = ElectionServer::new(ElectionService::new(local.clone()));
        let lock = LockServer::new(LockService::new(local));
        let mut client_addrs = Vec::new();
        for url in &cfg.listen_client_urls {
            let addr = net::parse_listen_url(url)?;
            let listener = net::bind(addr)
                .await
                .map_err(|e| format!("listen tcp {addr}: {e}"))?;
            let bound = net::local_addr(&listener)?;
            client_addrs.push(bound);
            let router = tonic::transport::Server::builder()
                .add_service(kv.clone())
                .add_service(maintenance.clone())
                .add_service(cluster.clone())
                .add_service(watch.clone())
                .add_service(lease.clone())
                .add_service(AuthServer::new(AuthService))
                .add_service(election.clone())
                .add_service(lock.clone());
            let mut stopped = stopped.clone();
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            serving.push(tokio::spawn(async move {
                if let Err(e) = net::serve_grpc(router, listener, shutdown, true).await {
                    tracing::error!(%bound, "client listener failed: {e}");
                }
            }));
            tracing::info!(%bound, "serving client requests");
        }
        Ok(Server {
            node,
            client_addrs,
            stop,
            serving,
        })
    }

    /// The addresses the client listeners are bound to.
    pub fn client_addrs(&self) -> &[SocketAddr] {
        &self.client_addrs
    }

    /// The member's raft node.
    pub fn node(&self) -> &RaftNode {
        &self.node
    }

    /// Resolves when this member has been removed from the cluster and should stop.
    pub async fn removed(&self) {
        self.node.removed().await;
        tracing::warn!("the member has been permanently removed from the cluster");
    }

    /// Resolves with the reason once the member has failed for good (raft stopped on a storage
    /// error): the process should exit with an error, as etcd does, for its supervisor.
    pub async fn failed(&self) -> String {
        self.node.fatal().await
    }

    /// Stops serving and shuts raft down.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for s in self.serving {
            let _ = s.await;
        }
        self.node.shutdown().await;
    }
}
