//! `detcd-bench`: starts real etcd and detcd side by side on loopback, runs the same workloads
//! against each over gRPC, and prints throughput and latency with detcd/etcd ratios.
//!
//! ```sh
//! cargo build --release -p detcd -p detcd-bench
//! target/release/detcd-bench --ops 20000 --clients 16
//! ```
//!
//! `--workload kv` (the default) runs Put, linearizable Get and serializable Get.
//!
//! `--workload watch` runs the watch workloads of [`watch`] instead: event latency (one watcher,
//! one sequential writer, then `--writers` concurrent writers) and fan-out (`--watchers` watchers
//! on one prefix, spread over each stream count of `--streams`, every stream on its own
//! connection; fed by one writer paced at `--rate` puts/s, one unpaced writer, and `--writers`
//! concurrent writers). Each case does `--puts` puts under a fresh prefix and checks that every
//! watcher received every event exactly once, in revision order; a violation is printed as an
//! error and makes the command exit with status 1. Besides latency and events/s it prints each
//! server's CPU per event, events per response and the RSS the watchers add.
//!
//! ```sh
//! target/release/detcd-bench --workload watch --puts 1000 --watchers 1000 --streams 1,100
//! target/release/detcd-bench --workload watch --members 3
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

mod watch;

/// Which set of workloads a run measures.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum WorkloadSet {
    /// Put, linearizable Get, serializable Get.
    Kv,
    /// Watch event latency and fan-out (see the `watch` module).
    Watch,
}

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
    /// The workloads to run.
    #[arg(long, value_enum, default_value_t = WorkloadSet::Kv)]
    workload: WorkloadSet,
    /// Watch workloads: puts per case.
    #[arg(long, default_value_t = 1000)]
    puts: usize,
    /// Watch workloads: concurrent writers (each with its own connection) in the concurrent
    /// latency case.
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Watch workloads: puts per second of the paced writer in the fan-out cases.
    #[arg(long, default_value_t = 150)]
    rate: u32,
    /// Watch workloads: watchers on one prefix in each fan-out case.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Watch workloads: the fan-out cases, as numbers of streams (each on its own connection)
    /// the watchers are spread over.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 100])]
    streams: Vec<usize>,
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

impl Server {
    /// The summed resident set size of the members, in KiB, from `/proc/<pid>/status`; `None`
    /// where that is unreadable (not Linux, or a member exited).
    fn rss_kib(&self) -> Option<u64> {
        let mut total = 0;
        for c in &self.children {
            let status = std::fs::read_to_string(format!("/proc/{}/status", c.id())).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            total += line.split_whitespace().nth(1)?.parse::<u64>().ok()?;
        }
        Some(total)
    }

    /// The CPU time (user + system) the members have used so far, from `/proc/<pid>/stat`;
    /// `None` where that is unreadable.
    fn cpu_time(&self) -> Option<Duration> {
        static TICKS_PER_SEC: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        // USER_HZ: 100 on every mainstream Linux build, but ask rather than assume.
        let hz = *TICKS_PER_SEC.get_or_init(|| {
            Command::new("getconf")
                .arg("CLK_TCK")
                .output()
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(100)
        });
        let mut ticks = 0;
        for c in &self.children {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", c.id())).ok()?;
            // Fields after the command name (which may hold spaces); utime and stime are the
            // 14th and 15th fields of the whole line.
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut fields = rest.split_whitespace().skip(11);
            ticks += fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?;
        }
        Some(Duration::from_secs_f64(ticks as f64 / hz as f64))
    }
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

/// A connection to `url` once the server there answers a read (it may still be starting).
async fn ready_channel(url: &str) -> Channel {
    let deadline = Instant::now() + Duration::from_secs(20);
    let endpoint = Channel::from_shared(url.to_string()).expect("a valid URL");
    loop {
        if let Ok(channel) = endpoint.connect().await {
            let probe = RangeRequest {
                key: Bytes::from_static(b"probe"),
                ..Default::default()
            };
            if KvClient::new(channel.clone()).range(probe).await.is_ok() {
                return channel;
            }
        }
        assert!(
            Instant::now() < deadline,
            "server at {url} did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn connect(url: &str) -> KvClient<Channel> {
    KvClient::new(ready_channel(url).await)
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
    if args.workload == WorkloadSet::Watch {
        let ok = watch::run(&args, &etcd, &detcd).await;
        drop((etcd, detcd));
        if !ok {
            std::process::exit(1);
        }
        return;
    }
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
