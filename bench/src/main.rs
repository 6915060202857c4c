//! `detcd-bench`: starts real etcd and detcd side by side on loopback, runs the same workloads
//! against each over gRPC, and prints throughput and latency with detcd/etcd ratios.
//!
//! ```sh
//! cargo build --release -p detcd -p detcd-bench
//! target/release/detcd-bench                      # the KV table, 1 and 3 members
//! target/release/detcd-bench --workload memory    # RSS with 1M keys
//! ```
//!
//! `--workload kv` (the default) runs put, txn, linearizable and serializable range with etcd's
//! benchmark shape — 100 clients over 10 connections, 256-byte values, 10,000 keys — on 1 and
//! 3 members, median of 3 alternating runs ([`kv`]). `--workload memory` loads 1,000,000 keys
//! and compares resident memory ([`memory`]).
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

use clap::Parser;

mod cluster;
mod kv;
mod memory;
mod watch;

pub use cluster::{ready_channel, Server};

/// Which set of workloads a run measures.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum WorkloadSet {
    /// Put, txn, linearizable and serializable range (see the `kv` module).
    Kv,
    /// Watch event latency and fan-out (see the `watch` module).
    Watch,
    /// Resident memory with many keys (see the `memory` module).
    Memory,
}

#[derive(Parser, Debug)]
#[command(about = "Benchmark detcd beside real etcd")]
struct Args {
    /// Operations per run of a KV workload.
    #[arg(long, default_value_t = 20_000)]
    ops: usize,
    /// Concurrent clients of the KV workloads.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Connections the clients share (spread over the members).
    #[arg(long, default_value_t = 10)]
    conns: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Key space of the KV workloads (written once before they run).
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    /// Runs of each KV workload per server (the median counts).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The KV workloads to run.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = vec![kv::Workload::Put, kv::Workload::Txn, kv::Workload::RangeLin, kv::Workload::RangeSer])]
    kv_workloads: Vec<kv::Workload>,
    /// Keys loaded by the memory workload.
    #[arg(long, default_value_t = 1_000_000)]
    memory_keys: usize,
    /// The detcd binary.
    #[arg(long, default_value = "target/release/detcd")]
    detcd: String,
    /// The etcd binary.
    #[arg(long, default_value = "etcd")]
    etcd: String,
    /// Cluster sizes to run the KV workloads on (clients are spread over the members; followers
    /// forward writes); the other workload sets use the first.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 3])]
    members: Vec<usize>,
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

#[tokio::main]
async fn main() {
    let args = Args::parse();
    match args.workload {
        WorkloadSet::Kv => kv::run_all(&args).await,
        WorkloadSet::Memory => memory::run(&args).await,
        WorkloadSet::Watch => {
            let etcd = cluster::start(&args.etcd, args.members[0]);
            let detcd = cluster::start(&args.detcd, args.members[0]);
            let ok = watch::run(&args, &etcd, &detcd).await;
            drop((etcd, detcd));
            if !ok {
                std::process::exit(1);
            }
        }
    }
}
