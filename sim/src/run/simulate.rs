//! The part of a run that happens inside the simulator: boot, workload under the nemesis,
//! heal, converge.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use detcd::proto::etcdserverpb::RangeRequest;

use super::RunConfig;
use crate::cluster::{kv_client, wait_leader, SimCluster};
use crate::nemesis::{apply, FaultKind, Schedule};
use crate::trace::Trace;
use crate::workload::{self, KvOp, KEYS};

/// How long after healing the members get to agree on the same contents.
const CONVERGE_ROUNDS: usize = 100;
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
}

/// Every member's view of the keys by a local read: (key, value, mod_revision) triples.
async fn contents(url: String) -> Option<Vec<(String, String, i64)>> {
    let mut kv = kv_client(&url).await;
    let req = RangeRequest {
        key: Bytes::from_static(b"\0"),
        range_end: Bytes::from_static(b"\0"),
        serializable: true,
        ..Default::default()
    };
    let r = tokio::time::timeout(Duration::from_secs(2), kv.range(req))
        .await
        .ok()?
        .ok()?
        .into_inner();
    Some(
        r.kvs
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    String::from_utf8_lossy(&kv.value).into_owned(),
                    kv.mod_revision,
                )
            })
            .collect(),
    )
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
        let cluster = SimCluster::new(nodes);
        let urls = cluster.client_urls();
        let u = urls.clone();
        cluster.client(async move { wait_leader(&u).await }).await;
        let mut trace = Trace::default();
        trace.record(format!("{schedule}"));

        let log = Arc::new(Mutex::new(Vec::new()));
        let start = tokio::time::Instant::now();
        let (l, u) = (log.clone(), urls.clone());
        let work = cluster.spawn_client(async move {
            let tasks: Vec<_> = (0..clients)
                .map(|p| {
                    tokio::spawn(workload::client(
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
        let applied = apply::run(&schedule, &cluster).await;
        for line in applied.log {
            trace.record(line);
        }
        work.await.expect("workload");
        let ops = std::mem::take(&mut *log.lock().unwrap());
        trace.record(format!("{} ops", ops.len()));

        // Liveness and convergence: after healing, every member serves the same contents.
        let mut violations = Vec::new();
        let mut last = Vec::new();
        let mut converged = false;
        for _ in 0..CONVERGE_ROUNDS {
            let mut views = Vec::new();
            for url in &urls {
                views.push(cluster.client(contents(url.clone())).await);
            }
            if views.iter().all(|v| v.is_some() && *v == views[0]) {
                let data = views[0].clone().unwrap_or_default();
                if let Some((k, _, _)) = data.iter().find(|(k, _, _)| !KEYS.contains(&k.as_str())) {
                    violations.push(format!("a key no client wrote appeared: {k:?}"));
                }
                trace.record(format!("converged: {data:?}"));
                converged = true;
                break;
            }
            last = views;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if !converged {
            violations.push(format!(
                "members did not converge within {} s of healing: {last:?}",
                CONVERGE_ROUNDS / 5
            ));
        }
        let simulated = began.elapsed();
        trace.record(format!("simulated time {simulated:?}"));
        Simulated {
            trace,
            ops,
            seen: applied.seen,
            violations,
            simulated,
        }
    })
}
