//! `detcd-bench`: starts real etcd and detcd side by side on loopback, runs the same workloads
//! against each over gRPC, and prints throughput and latency with detcd/etcd ratios.
//!
//! ```sh
//! cargo build --release -p detcd -p detcd-bench
//! target/release/detcd-bench --ops 20000 --clients 16
//! ```

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use detcd::proto::etcdserverpb::kv_client::KvClient;
use detcd::proto::etcdserverpb::{PutRequest, RangeRequest};
use tonic::transport::Channel;

#[derive(Parser, Debug)]
#[command(about = "Benchmark detcd beside real etcd")]
struct Args {
    /// Operations per workload.
    #[arg(long, default_value_t = 20_000)]
    ops: usize,
    /// Concurrent clients (each with its own connection).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// The detcd binary.
    #[arg(long, default_value = "target/release/detcd")]
    detcd: String,
    /// The etcd binary.
    #[arg(long, default_value = "etcd")]
    etcd: String,
    /// Members per cluster (clients are spread over them; followers forward writes).
    #[arg(long, default_value_t = 1)]
    members: usize,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A cluster of server processes with their data dirs; killed and cleaned up on drop.
struct Server {
    children: Vec<Child>,
    urls: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start(binary: &str, members: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<(u16, u16)> = (0..members).map(|_| (free_port(), free_port())).collect();
    let ic = ports
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut children = Vec::new();
    let mut urls = Vec::new();
    for (i, (client, peer)) in ports.iter().enumerate() {
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(binary)
            .args(["--name", &format!("m{i}"), "--data-dir"])
            .arg(dir.path().join(format!("m{i}")))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &ic])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        children.push(child);
        urls.push(url);
    }
    Server {
        children,
        urls,
        _dir: dir,
    }
}

async fn connect(url: &str) -> KvClient<Channel> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut c) = KvClient::connect(url.to_string()).await {
            let probe = RangeRequest {
                key: Bytes::from_static(b"probe"),
                ..Default::default()
            };
            if c.range(probe).await.is_ok() {
                return c;
            }
        }
        assert!(
            Instant::now() < deadline,
            "server at {url} did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Clone, Copy, Debug)]
enum Workload {
    Put,
    GetLinearizable,
    GetSerializable,
}

struct Result {
    ops_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

async fn run(urls: &[String], w: Workload, args: &Args) -> Result {
    let value = Bytes::from(vec![b'v'; args.value_size]);
    let per_client = args.ops / args.clients;
    let mut clients = Vec::new();
    for i in 0..args.clients {
        clients.push(connect(&urls[i % urls.len()]).await);
    }
    let start = Instant::now();
    let value = Arc::new(value);
    let mut tasks = Vec::new();
    for (c, mut kv) in clients.into_iter().enumerate() {
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let key = Bytes::from(format!("key{:04}", (c * per_client + i) % 1000));
                let t = Instant::now();
                match w {
                    Workload::Put => {
                        let req = PutRequest {
                            key,
                            value: (*value).clone(),
                            ..Default::default()
                        };
                        kv.put(req).await.expect("put");
                    }
                    Workload::GetLinearizable | Workload::GetSerializable => {
                        let serializable = matches!(w, Workload::GetSerializable);
                        kv.range(RangeRequest {
                            key,
                            serializable,
                            ..Default::default()
                        })
                        .await
                        .expect("get");
                    }
                }
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    all.sort();
    Result {
        ops_per_sec: all.len() as f64 / elapsed.as_secs_f64(),
        p50: all[all.len() / 2],
        p99: all[all.len() * 99 / 100],
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let etcd = start(&args.etcd, args.members);
    let detcd = start(&args.detcd, args.members);
    println!(
        "{} ops per workload, {} clients over {} member(s), {}-byte values; etcd = {}, detcd = {}",
        args.ops, args.clients, args.members, args.value_size, args.etcd, args.detcd
    );
    println!(
        "{:<18} {:>12} {:>12} {:>8}   {:>18} {:>18}",
        "workload", "etcd ops/s", "detcd ops/s", "ratio", "etcd p50/p99 ms", "detcd p50/p99 ms"
    );
    for w in [
        Workload::Put,
        Workload::GetLinearizable,
        Workload::GetSerializable,
    ] {
        let e = run(&etcd.urls, w, &args).await;
        let d = run(&detcd.urls, w, &args).await;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:<18} {:>12.0} {:>12.0} {:>7.2}x   {:>8.2}/{:<9.2} {:>8.2}/{:<9.2}",
            format!("{w:?}"),
            e.ops_per_sec,
            d.ops_per_sec,
            d.ops_per_sec / e.ops_per_sec,
            ms(e.p50),
            ms(e.p99),
            ms(d.p50),
            ms(d.p99)
        );
    }
}
