//! The part of a run that happens inside the simulator: boot, workload under the nemesis,
//! heal, converge.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{converge, RunConfig};
use crate::cluster::log_check;
use crate::cluster::wal::WalStats;
use crate::cluster::{wait_leader, SimCluster};
use crate::invariants::{self, Monitor};
use crate::nemesis::apply::{self, RestartPolicy};
use crate::nemesis::{FaultKind, Schedule};
use crate::trace::Trace;
use crate::workloads::register::{self, past, KvOp, Shared};
use crate::workloads::scenario;

/// How often the monitor polls the members during the faulty phase.
const MONITOR_EVERY: Duration = Duration::from_millis(250);
/// Simulated time allowed beyond the faulty phase before the run counts as hung.
const HANG_LIMIT: Duration = Duration::from_secs(300);

/// What the simulation hands back for judging.
pub(super) struct Simulated {
    pub trace: Trace,
    pub ops: Vec<KvOp>,
    pub seen: BTreeMap<FaultKind, usize>,
    /// Invariant violations found while running (empty if all held).
    pub violations: Vec<String>,
    pub simulated: Duration,
    /// WAL segments rolled and purged, summed over the members.
    pub wal: WalStats,
    /// Times a member refused to start.
    pub refusals: usize,
}

/// Runs the seed in a fresh runtime. Panics (from the server or the harness) propagate; the
/// caller catches them.
pub(super) fn simulate(config: &RunConfig, schedule: &Schedule) -> Simulated {
    let mut rt =
        madsim::runtime::Runtime::with_seed_and_config(config.seed, madsim::Config::default());
    let duration = Duration::from_millis(schedule.duration_ms);
    rt.set_time_limit(duration + HANG_LIMIT);
    let nodes = config.nodes;
    let clients = config.clients;
    let schedule = schedule.clone();
    rt.block_on(async move {
        let began = tokio::time::Instant::now();
        let cluster = SimCluster::as_etcd_with(nodes, scenario::settings(&schedule));
        let urls = cluster.client_urls();
        let u = urls.clone();
        cluster.client(async move { wait_leader(&u).await }).await;
        let mut trace = Trace::default();
        trace.record(format!("{schedule}"));

        let log: Shared = Shared::default();
        let start = tokio::time::Instant::now();
        let (l, u) = (log.clone(), urls.clone());
        let work = cluster.spawn_client(async move {
            let tasks: Vec<_> = (0..clients)
                .map(|p| {
                    tokio::spawn(register::client(
                        p,
                        u.clone(),
                        start,
                        duration,
                        usize::MAX,
                        l.clone(),
                    ))
                })
                .collect();
            for t in tasks {
                t.await.expect("client task");
            }
        });
        let mut monitor = Monitor::default();
        // Biased: tokio's select otherwise picks a branch with its own (unseeded) randomness.
        let applied = tokio::select! {
            biased;
            applied = apply::run_with(&schedule, &cluster, Some(RestartPolicy::default())) => applied,
            _ = monitor.run(&cluster, MONITOR_EVERY) => unreachable!("the monitor never returns"),
        };
        for line in applied.log {
            trace.record(line);
        }
        let restart_problems = applied.problems;
        work.await.expect("workload");
        let recorded = std::mem::take(&mut *log.lock().unwrap());
        let ops = recorded.ops;
        trace.record(format!("{} ops; {}", ops.len(), recorded.past.summary()));
        let mut violations = past::check(&ops, &recorded.past, schedule.auto_compaction().is_some());
        violations.extend(restart_problems);

        // Liveness and convergence: after healing, every member serves the same contents.
        // The restart policy stays on: a member may fail on a write issued just before the
        // disks were healed.
        let restarts = std::cell::RefCell::new(Vec::new());
        let converged = tokio::select! {
            biased;
            c = converge::converge(&cluster) => c,
            _ = apply::supervise(&cluster, RestartPolicy::default(), start, &restarts) => {
                unreachable!("the restart policy never returns")
            }
        };
        for line in restarts.into_inner() {
            trace.record(line);
        }
        match converged {
            Ok(data) => {
                trace.record(format!("converged: {data:?}"));
                violations.extend(invariants::acked_writes_survive(&ops, &data));
                // Once converged, every member's history must hash the same, and every member
                // must have applied the same compactions.
                monitor.poll(&cluster).await;
                if let Some(v) = same_compactions(&cluster, &mut trace).await {
                    violations.push(v);
                }
            }
            Err(e) => violations.push(e),
        }
        trace.record(format!(
            "monitor: {} polls, {} hash checks",
            monitor.polls, monitor.hash_checks
        ));
        violations.extend(std::mem::take(&mut monitor.violations));
        let (log_problems, logs) = log_check::check_cluster(&cluster).await;
        trace.record(format!("raft logs checked on disk: {logs}"));
        violations.extend(log_problems);
        let (wal, refusals) = storage(&cluster, &mut trace, &mut violations);
        for v in &violations {
            trace.record(format!("violation: {v}"));
        }
        let simulated = began.elapsed();
        trace.record(format!("simulated time {simulated:?}"));
        Simulated {
            trace,
            ops,
            seen: applied.seen,
            violations,
            simulated,
            wal,
            refusals,
        }
    })
}

/// Waits (bounded) until every listed member reports the same compacted revision: each applies
/// the same compactions, but a member may not have applied the last one yet when the contents
/// already agree. Records the revisions; returns the violation if they never agree.
async fn same_compactions(cluster: &SimCluster, trace: &mut Trace) -> Option<String> {
    let mut shown = Vec::new();
    for _ in 0..50 {
        let members = match cluster.listed_members().await {
            Some((_, m)) => m,
            None => cluster.members(),
        };
        let compacted = invariants::compacted(cluster, &members).await;
        shown = compacted
            .iter()
            .map(|(i, c)| format!("n{} {c:?}", i + 1))
            .collect();
        let answered: BTreeSet<i64> = compacted.iter().filter_map(|(_, c)| *c).collect();
        if answered.len() <= 1 {
            trace.record(format!("compacted revisions: {}", shown.join(", ")));
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Some(format!(
        "members kept different compacted revisions for 10 s after converging: {}",
        shown.join(", ")
    ))
}

/// Records what each member's storage went through: WAL segments rolled and purged, and every
/// refusal to start. A member with a WAL refusing while its disk had no fault in force is a
/// violation: it could not read back what it had written itself. Returns the totals.
fn storage(
    cluster: &SimCluster,
    trace: &mut Trace,
    violations: &mut Vec<String>,
) -> (WalStats, usize) {
    let (mut total, mut refusals) = (WalStats::default(), 0);
    for i in 0..cluster.len() {
        let Some(node) = cluster.node(i) else {
            continue;
        };
        let stats = WalStats::of(&node.disk.files());
        total.add(stats);
        trace.record(format!(
            "n{} WAL: {} segments rolled, {} purged",
            i + 1,
            stats.rolled,
            stats.purged
        ));
        for r in node.refusals.lock().unwrap().iter() {
            refusals += 1;
            let line = format!("n{} refused to start: {}", i + 1, r.error);
            if r.had_wal && !r.disk_faulty {
                violations.push(format!("{line} (its WAL had no fault in force)"));
            }
            trace.record(line);
        }
    }
    (total, refusals)
}
