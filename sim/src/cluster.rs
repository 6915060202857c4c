//! The cluster harness: server nodes on simulated IPs, each with a [`SimDisk`] that outlives
//! node restarts, and a client node speaking etcd's gRPC API over madsim-tonic.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use detcd::config::Config;
use detcd::io::disk::{Disk, SimDisk};
use detcd::proto::etcdserverpb::kv_client::KvClient;
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

/// A running simulated cluster (one member for now).
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
        let runtime = Handle::current();
        let disk = SimDisk::new();
        let ip = node_ip(0);
        let client_url = format!("http://{ip}:2379");
        let cfg = Config::single("n1", &client_url, &format!("http://{ip}:2380"));
        let init_disk = disk.clone();
        let handle = runtime
            .create_node()
            .name("n1")
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
        let client = runtime
            .create_node()
            .name("client")
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)))
            .build();
        SimCluster {
            runtime,
            nodes: vec![SimNode {
                handle,
                disk,
                client_url,
            }],
            client,
        }
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

    /// Boots member `i` again from what its disk kept.
    pub fn restart(&self, i: usize) {
        self.runtime.restart(self.nodes[i].handle.id());
    }
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
