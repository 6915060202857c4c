//! One member: [`Server::start`] takes a [`Config`] and a [`Disk`], settles the member's
//! identity, starts its raft node, serves the peer service on the peer URLs, publishes its
//! attributes, and then serves etcd's gRPC API on the client URLs. This is the wiring; the
//! services themselves are in [`crate::server`].

pub mod identity;
pub mod transport;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use crate::auth::{AuthStore, Tokens};
use crate::cluster::membership::MEMBER_REMOVED;
use crate::cluster::Member;
use crate::config::Config;
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
#[cfg(not(madsim))]
use crate::server::gateway;
#[cfg(not(madsim))]
use crate::server::http;
use crate::server::kv::KvService;
use crate::server::lease::LeaseService;
use crate::server::lock::LockService;
use crate::server::maintenance::MaintenanceService;
#[cfg(not(madsim))]
use crate::server::metrics;
use crate::server::peer::PeerService;
use crate::server::quota::Quota;
use crate::server::watch::{WatchService, WatchSettings};
use crate::server::GRPC_OVERHEAD_BYTES;

/// A running member.
pub struct Server {
    node: RaftNode,
    client_addrs: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
    serving: Vec<tokio::task::JoinHandle<()>>,
}

/// Why a member could not start.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

impl Server {
    /// Starts a member on `disk` and serves its client URLs.
    pub async fn start(cfg: &Config, disk: Disk) -> Result<Server, StartError> {
        let transport = transport::Transport::from_config(cfg)?;
        let (me, cid, members) = identity::identity(cfg, &disk, &transport.dialer).await?;
        let settings = RaftSettings {
            heartbeat: cfg.heartbeat,
            election: cfg.election,
            snapshot_count: cfg.snapshot_count,
            max_request_bytes: cfg.max_request_bytes,
            wal_segment_bytes: cfg.wal_segment_bytes,
        };
        let tokens = Tokens::from_flag(
            &cfg.auth_token,
            cfg.auth_token_ttl,
            crate::io::fs::read_named_file,
        )?;
        let auth = Arc::new(AuthStore::new(tokens, cfg.client_tls.client_cert_auth));
        let (stop, stopped) = watch::channel(false);
        let mut serving = Vec::new();
        let dialer = transport.dialer.clone();
        let node = RaftNode::start(me, cid, members, disk, settings, dialer, auth).await?;
        tracing::info!(member = %format!("{me:x}"), cluster = %format!("{cid:x}"), "raft started");
        let peer = PeerServer::new(PeerService::new(node.clone(), cfg.max_txn_ops))
            .max_decoding_message_size(PEER_MESSAGE_LIMIT)
            .max_encoding_message_size(PEER_MESSAGE_LIMIT);
        for url in &cfg.listen_peer_urls {
            let (listener, bound) = listen(url).await?;
            let router = tonic::transport::Server::builder().add_service(peer.clone());
            let tls = transport.peer_listener(url);
            serving.push(serve(router, listener, false, tls, &stopped, "peer"));
            tracing::info!(%bound, "serving peer traffic");
        }
        if cfg.initial_corrupt_check {
            // etcd checks before its raft starts; here raft runs already, but no client is
            // served before the check passes.
            if let Err(e) = node.check_initial_hash().await {
                node.shutdown().await;
                return Err(e.into());
            }
        }
        // Like etcd, serve clients only once this member's attributes are committed — which
        // never happens for a member removed while it was down: its former peers tell it.
        let me = Member {
            name: cfg.name.clone(),
            peer_urls: cfg.initial_advertise_peer_urls.clone(),
            client_urls: cfg.advertise_client_urls.clone(),
            added_as_voter: false,
        };
        let published = tokio::select! {
            published = node.publish_attributes(me) => published,
            _ = node.removed() => {
                node.shutdown().await;
                return Err(MEMBER_REMOVED.into());
            }
        };
        if let Err(e) = published {
            // Raft stopped on a fatal error meanwhile: say which.
            let why = match node.raft().metrics().borrow().running_state.clone() {
                Err(fatal) => format!("{e} (raft stopped: {fatal})"),
                Ok(()) => e.to_string(),
            };
            return Err(why.into());
        }

        let max_decode = cfg.max_request_bytes + GRPC_OVERHEAD_BYTES;
        let quota = Quota::from_flag(cfg.quota_backend_bytes);
        let kv_service = KvService::new(node.clone(), cfg.max_txn_ops, quota);
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
        if let Some(policy) = cfg.auto_compaction {
            node.start_auto_compaction(policy);
        }
        if let Some(period) = cfg.corrupt_check_time {
            node.start_corrupt_check(period);
        }
        if cfg.lease_checkpoint {
            node.enable_lease_checkpoints(crate::lease::CHECKPOINT_INTERVAL);
        }
        let lease_service = LeaseService::new(node.clone(), cfg.election, quota);
        let lease = LeaseServer::new(lease_service.clone());
        let auth = AuthServer::new(AuthService::new(node.clone(), cfg.bcrypt_cost));
        // Lock and Election run etcd's recipes over an in-process client of this member.
        let local = LocalClient::new(node.clone(), kv_service, lease_service, stopped.clone());
        let election = ElectionServer::new(ElectionService::new(local.clone()));
        let lock = LockServer::new(LockService::new(local));
        #[cfg(not(madsim))]
        let grpc_metrics = metrics::grpc::GrpcMetrics::new(cfg.metrics_extensive);
        #[cfg(not(madsim))]
        let http_state =
            http::HttpState::new(node.clone(), quota.max_bytes(), grpc_metrics.clone());
        // JSON carries bytes as base64: a gateway body may be a third larger than its request.
        #[cfg(not(madsim))]
        let gateway_body_limit = 2 * (cfg.max_request_bytes + GRPC_OVERHEAD_BYTES);
        let mut client_addrs = Vec::new();
        for url in &cfg.listen_client_urls {
            let (listener, bound) = listen(url).await?;
            client_addrs.push(bound);
            let tls = transport.client_listener(url);
            // gRPC and HTTP (/health, /metrics, ...) share the port, HTTP/1.1 included.
            #[cfg(not(madsim))]
            let router = {
                let mut routes = tonic::service::Routes::new(kv.clone())
                    .add_service(maintenance.clone())
                    .add_service(cluster.clone())
                    .add_service(watch.clone())
                    .add_service(lease.clone())
                    .add_service(auth.clone())
                    .add_service(election.clone())
                    .add_service(lock.clone());
                let grpc = std::mem::take(routes.axum_router_mut()).layer(
                    axum::middleware::from_fn_with_state(
                        grpc_metrics.clone(),
                        metrics::grpc::track,
                    ),
                );
                let gateway = if cfg.grpc_gateway {
                    gateway::routes(grpc.clone(), gateway_body_limit)
                } else {
                    axum::Router::new()
                };
                *routes.axum_router_mut() = grpc
                    .merge(gateway)
                    .merge(http::routes(http_state.clone()))
                    .fallback(http::fallback)
                    .layer(tower::util::MapResponseLayer::new(http::grpc_go_statuses));
                tonic::transport::Server::builder()
                    .accept_http1(true)
                    .add_routes(routes)
            };
            #[cfg(madsim)]
            let router = tonic::transport::Server::builder()
                .add_service(kv.clone())
                .add_service(maintenance.clone())
                .add_service(cluster.clone())
                .add_service(watch.clone())
                .add_service(lease.clone())
                .add_service(auth.clone())
                .add_service(election.clone())
                .add_service(lock.clone());
            serving.push(serve(router, listener, true, tls, &stopped, "client"));
            tracing::info!(%bound, "serving client requests");
        }
        #[cfg(not(madsim))]
        for url in &cfg.listen_metrics_urls {
            let (listener, bound) = listen(url).await?;
            let routes = tonic::service::Routes::from(http::metrics_routes(http_state.clone()));
            let router = tonic::transport::Server::builder()
                .accept_http1(true)
                .add_routes(routes);
            let tls = transport.client_listener(url);
            serving.push(serve(router, listener, true, tls, &stopped, "metrics"));
            tracing::info!(%bound, "serving /metrics and /health");
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
        tracing::warn!("{MEMBER_REMOVED}");
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

/// Binds the listener of `url`; the address it got.
async fn listen(url: &str) -> Result<(net::Listener, SocketAddr), StartError> {
    let addr = net::parse_listen_url(url)?;
    let listener = net::bind(addr)
        .await
        .map_err(|e| format!("listen tcp {addr}: {e}"))?;
    let bound = net::local_addr(&listener)?;
    Ok((listener, bound))
}

/// Serves `router` on `listener` (`clients`: a client port, see [`net::serve_grpc`]) until the
/// member stops; a failure is logged as the `what` listener's.
fn serve(
    router: tonic::transport::server::Router,
    listener: net::Listener,
    clients: bool,
    tls: net::serve::ListenerTls,
    stopped: &watch::Receiver<bool>,
    what: &'static str,
) -> tokio::task::JoinHandle<()> {
    let bound = net::local_addr(&listener).ok();
    let mut stopped = stopped.clone();
    let shutdown = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    tokio::spawn(async move {
        if let Err(e) = net::serve_grpc(router, listener, shutdown, clients, tls).await {
            tracing::error!(?bound, "{what} listener failed: {e}");
        }
    })
}
