//! One run of the storage scenario: slow disks, writers, the crasher, the check.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use detcd::io::disk::DiskFaults;
use rand::Rng;
use tokio::time::Instant;

use super::judge::{judge, Put};
use super::writer;
use super::{crasher, Params, Stats};
use crate::cluster::log_check;
use crate::cluster::wal::WalStats;
use crate::cluster::{wait_leader, Exit, SimCluster};
use crate::invariants::Monitor;
use crate::nemesis::FaultKind;
use crate::trace::Trace;
use crate::workloads::scenario::Passed;

/// How often the monitor polls the members while the crasher runs.
const MONITOR_EVERY: Duration = Duration::from_millis(250);
/// Problems a failure report lists; the rest are only counted.
const SHOWN: usize = 25;

/// The run; see the module docs of [`super`].
pub(super) async fn scenario(seed: u64, p: Params) -> Result<Passed<Stats>, String> {
    let began = Instant::now();
    let cluster = SimCluster::as_etcd(p.nodes);
    let mut trace = Trace::default();
    let fsync = Duration::from_millis(madsim::rand::thread_rng().gen_range(1..=6));
    for i in 0..cluster.len() {
        if let Some(n) = cluster.node(i) {
            n.disk.set_faults(DiskFaults {
                sync_latency: fsync,
                ..Default::default()
            });
        }
    }
    trace.record(format!("every fsync takes {fsync:?}"));
    let urls = cluster.client_urls();
    let u = urls.clone();
    cluster.client(async move { wait_leader(&u).await }).await;

    let log: writer::Log = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let until = start + p.duration;
    let (l, u, bytes) = (log.clone(), urls.clone(), p.value_bytes);
    let writers = cluster.spawn_client(async move {
        let tasks: Vec<_> = (0..p.writers)
            .map(|w| tokio::spawn(writer::writer(w, u.clone(), until, bytes, l.clone())))
            .collect();
        for t in tasks {
            t.await.expect("writer task");
        }
    });
    // A segment with less room than two of the writers' records is about to roll.
    let margin = 2 * (p.value_bytes as u64 + 200);
    let mut monitor = Monitor::default();
    // Biased: tokio's select otherwise picks a branch with its own (unseeded) randomness.
    let (crashes, lines) = tokio::select! {
        biased;
        r = crasher::run(&cluster, start, until, fsync, margin) => r,
        _ = monitor.run(&cluster, MONITOR_EVERY) => unreachable!("the monitor never returns"),
    };
    for line in lines {
        trace.record(line);
    }
    writers.await.expect("writers");
    let puts: Vec<Put> = std::mem::take(&mut *log.lock().unwrap());
    let acked = puts.iter().filter(|p| p.revision.is_some()).count();
    trace.record(format!("{} puts, {acked} acknowledged", puts.len()));

    let mut problems = Vec::new();
    match writer::converged(&cluster).await {
        Ok(data) => {
            trace.record(format!(
                "converged on {} keys at revision {}",
                data.kvs.len(),
                data.revision
            ));
            problems.extend(judge(&puts, &data, p.value_bytes));
        }
        Err(e) => problems.extend(e),
    }
    monitor.poll(&cluster).await;
    problems.extend(std::mem::take(&mut monitor.violations));
    let (log_problems, logs) = log_check::check_cluster(&cluster).await;
    trace.record(format!("raft logs checked on disk: {logs}"));
    problems.extend(log_problems);
    let mut wal = WalStats::default();
    for i in 0..cluster.len() {
        let Some(node) = cluster.node(i) else {
            continue;
        };
        let stats = WalStats::of(&node.disk.files());
        wal.add(stats);
        trace.record(format!(
            "n{}: {} segments rolled, {} purged",
            i + 1,
            stats.rolled,
            stats.purged
        ));
        for r in node.refusals.lock().unwrap().iter() {
            problems.push(format!("n{} refused to start: {}", i + 1, r.error));
        }
        if let Exit::Failed(why) = node.exit() {
            problems.push(format!("n{} stopped: {why}", i + 1));
        }
    }
    trace.record(format!("{crashes:?}"));
    if !problems.is_empty() {
        return Err(failure(seed, &problems, &trace));
    }
    Ok(Passed {
        trace,
        simulated: began.elapsed(),
        // The crasher's strikes are this scenario's faults.
        faults_seen: [
            (FaultKind::Crash, crashes.power_cuts as usize),
            (FaultKind::Kill, crashes.kills as usize),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect(),
        stats: Stats {
            acked,
            unknown: puts.len() - acked,
            crashes,
            rolled: wal.rolled,
            purged: wal.purged,
        },
    })
}

/// A failing run's report: the seed, how to replay it, the problems, the trace.
fn failure(seed: u64, problems: &[String], trace: &Trace) -> String {
    let mut s = format!(
        "storage seed {seed}: {} problem(s)\n  replay: DETCD_SIM_FIRST={seed} DETCD_SIM_SEEDS=10 \
         RUSTFLAGS=\"--cfg madsim\" CARGO_TARGET_DIR=target/madsim cargo test -p detcd-sim \
         --test storage\n",
        problems.len()
    );
    for p in problems.iter().take(SHOWN) {
        s.push_str(&format!("  {p}\n"));
    }
    if problems.len() > SHOWN {
        s.push_str(&format!("  … and {} more\n", problems.len() - SHOWN));
    }
    s.push_str("trace:\n");
    for e in trace.events() {
        s.push_str(&format!("  {e}\n"));
    }
    s
}
