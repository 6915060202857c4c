//! The cluster harness: server nodes on simulated IPs, each with a [`SimDisk`] that outlives
//! node restarts, and a client node speaking etcd's gRPC API over madsim-tonic.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use detcd::config::{Config, InitialMember};
use detcd::io::disk::{Disk, SimDisk};
use detcd::proto::etcdserverpb::kv_client::KvClient;
use detcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use detcd::proto::etcdserverpb::StatusRequest;
use detcd::server::Server;
use madsim::runtime::{Handle, NodeHandle};
use tonic::transport::Channel;

/// One simulated member.
pub struct SimNode {
    /// The madsim node.
    pub handle: NodeHandle,
    /// Its disk: survives restarts; `crash` drops what was not synced.
    pub disk: SimDisk,
    /// Its client URL.
    pub client_url: String,
}

/// A running simulated cluster.
pub struct SimCluster {
    runtime: Handle,
    /// The members.
    pub nodes: Vec<SimNode>,
    client: NodeHandle,
}

fn node_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, (i + 1) as u8))
}

impl SimCluster {
    /// Starts a single-member cluster. Must run inside a madsim runtime.
    pub fn single() -> SimCluster {
        SimCluster::new(1)
    }

    /// Starts `n` members bootstrapped together (etcd's `--initial-cluster`), each on its own
    /// simulated host and disk. Must run inside a madsim runtime.
    pub fn new(n: usize) -> SimCluster {
        SimCluster::with_config(n, |_| {})
    }

    /// Like [`SimCluster::new`], with `tune` applied to every member's configuration.
    pub fn with_config(n: usize, tune: impl Fn(&mut Config)) -> SimCluster {
        let runtime = Handle::current();
        detcd::io::clock::reset_skews();
        let initial: Vec<InitialMember> = (0..n)
            .map(|i| InitialMember {
                name: format!("n{}", i + 1),
                peer_urls: vec![format!("http://{}:2380", node_ip(i))],
            })
            .collect();
        let mut nodes = Vec::new();
        for i in 0..n {
            let ip = node_ip(i);
            let client_url = format!("http://{ip}:2379");
            let mut cfg = Config::single(
                &format!("n{}", i + 1),
                &client_url,
                &format!("http://{ip}:2380"),
            );
            cfg.initial_cluster = initial.clone();
            cfg.initial_cluster_token = "sim".to_string();
            tune(&mut cfg);
            let disk = SimDisk::new();
            let init_disk = disk.clone();
            let handle = runtime
                .create_node()
                .name(format!("n{}", i + 1))
                .ip(ip)
                .init(move || {
                    let cfg = cfg.clone();
                    let disk = init_disk.clone();
                    async move {
                        let server = Server::start(&cfg, Disk::Sim(disk))
                            .await
                            .expect("member starts");
                        std::future::pending::<()>().await;
                        drop(server);
                    }
                })
                .build();
            nodes.push(SimNode {
                handle,
                disk,
                client_url,
            });
        }
        let client = runtime
            .create_node()
            .name("client")
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)))
            .build();
        SimCluster {
            runtime,
            nodes,
            client,
        }
    }

    /// Every member's client URL.
    pub fn client_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.client_url.clone()).collect()
    }

    /// Starts `f` on the client node without waiting for it.
    pub fn spawn_client<F, T>(&self, f: F) -> madsim::task::JoinHandle<T>
    where
        F: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.client.spawn(f)
    }

    /// Runs `f` on the client node.
    pub async fn client<F, T>(&self, f: F) -> T
    where
        F: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.client.spawn(f).await.expect("client task")
    }

    /// Power-cuts member `i`: its tasks die, and its disk loses whatever was not synced.
    /// Returns the number of write batches lost.
    pub fn crash(&self, i: usize) -> usize {
        self.runtime.kill(self.nodes[i].handle.id());
        self.nodes[i].disk.crash()
    }

    /// The madsim node of member `i`.
    pub fn node_id(&self, i: usize) -> madsim::task::NodeId {
        self.nodes[i].handle.id()
    }

    /// Freezes member `i` (its tasks stop running; its network and disk stay).
    pub fn pause(&self, i: usize) {
        self.runtime.pause(self.node_id(i));
    }

    /// Unfreezes member `i`.
    pub fn resume(&self, i: usize) {
        self.runtime.resume(self.node_id(i));
    }

    /// Cuts every link between `side` and the other members, both ways (clients still reach
    /// every member).
    pub fn partition(&self, side: &[usize]) {
        let net = madsim::net::NetSim::current();
        for a in side {
            for b in (0..self.nodes.len()).filter(|b| !side.contains(b)) {
                net.clog_link(self.node_id(*a), self.node_id(b));
                net.clog_link(self.node_id(b), self.node_id(*a));
            }
        }
    }

    /// Restores every link between members.
    pub fn heal(&self) {
        let net = madsim::net::NetSim::current();
        for a in 0..self.nodes.len() {
            for b in 0..self.nodes.len() {
                if a != b {
                    net.unclog_link(self.node_id(a), self.node_id(b));
                }
            }
        }
    }

    /// Boots member `i` again from what its disk kept.
    pub fn restart(&self, i: usize) {
        self.runtime.restart(self.nodes[i].handle.id());
    }
}

/// Asks member `url` for its status: (member id, leader id, raft term); `None` if it does not
/// answer.
pub async fn status(url: &str) -> Option<(u64, u64, u64)> {
    let mut c = MaintenanceClient::connect(url.to_string()).await.ok()?;
    let s = c.status(StatusRequest {}).await.ok()?.into_inner();
    Some((s.header?.member_id, s.leader, s.raft_term))
}

/// Waits (bounded, in simulated time) until the members at `urls` agree on a leader among them;
/// returns its position in `urls`.
pub async fn wait_leader(urls: &[String]) -> usize {
    for _ in 0..200 {
        let mut st = Vec::new();
        for u in urls {
            st.push(status(u).await);
        }
        if let Some(first) = st.first().copied().flatten() {
            let leader = first.1;
            if leader != 0 && st.iter().all(|s| s.is_some_and(|s| s.1 == leader)) {
                if let Some(pos) = st.iter().position(|s| s.is_some_and(|s| s.0 == leader)) {
                    return pos;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no agreed leader among {urls:?} within 20 simulated seconds");
}

/// Connects a KV client to `url`, retrying while the member boots (bounded).
pub async fn kv_client(url: &str) -> KvClient<Channel> {
    for _ in 0..100 {
        if let Ok(c) = KvClient::connect(url.to_string()).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not connect to {url} within 10 simulated seconds");
}
