//! One lock run: the clients under the fault schedule, then detcd-jepsen's lock checker on
//! what they recorded.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;

use detcd_jepsen::{check_locks, LockHistory};
use rand::Rng;
use tokio::time::Instant;

use super::client::client;
use super::{Outcome, Params, Shared, Stats};
use crate::cluster::SimCluster;
use crate::nemesis::{apply, Schedule};
use crate::trace::Trace;
use crate::workloads::scenario::{self, start, Passed};

/// Runs one seed's scenario inside the simulator (see the module docs).
pub(super) async fn scenario(seed: u64, p: Params) -> Result<Outcome, String> {
    let began = Instant::now();
    let schedule = scenario::schedule(seed, (p.nodes, p.duration), &p.faults, p.schedule.as_ref());
    let cluster = SimCluster::with_config(p.nodes, scenario::settings(&schedule));
    let mut trace = Trace::default();
    let urls = start(&cluster, &schedule, &mut trace).await;
    let fenced_release = madsim::rand::thread_rng().gen_bool(0.5);
    trace.record(format!("fenced release: {fenced_release}"));

    let logs: Shared = Arc::default();
    let start = Instant::now();
    let (l, u, until) = (logs.clone(), urls.clone(), p.duration);
    let clients = p.clients;
    let work = cluster.spawn_client(async move {
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                tokio::spawn(client(
                    c,
                    u.clone(),
                    start,
                    until,
                    fenced_release,
                    l.clone(),
                ))
            })
            .collect();
        for t in tasks {
            t.await.expect("lock client task");
        }
    });
    let applied = apply::run(&schedule, &cluster).await;
    let faults_seen = applied.seen;
    scenario::restarted_logs("lock", seed, "lock", &applied.problems, &schedule)?;
    for line in applied.log {
        trace.record(line);
    }
    work.await
        .map_err(|e| format!("lock client panicked: {e:?}"))?;

    let logs = std::mem::take(&mut *logs.lock().unwrap());
    let history = LockHistory {
        holds: logs.holds.clone(),
    };
    let stats = Stats {
        holds: history.holds.len(),
        accesses: history.holds.iter().map(|h| h.accesses.len()).sum(),
        held_releases: history
            .holds
            .iter()
            .filter(|h| h.release.as_ref().is_some_and(|r| r.still_held))
            .count(),
        failed_locks: logs.failed_locks,
    };
    for h in &history.holds {
        trace.record(format!(
            "p{} token {} acquired [{}, {}] accesses {} release {:?} seen {:?}",
            h.process,
            h.token,
            h.acquire_invoke,
            h.acquire_complete,
            h.accesses.len(),
            h.release
                .as_ref()
                .map(|r| (r.invoke, r.complete, r.still_held)),
            h.key_seen_at
        ));
    }
    if let Err(e) = history.validate() {
        return Err(failure(seed, &schedule, &e));
    }
    let report = check_locks(&history);
    if !report.is_valid() {
        let text = report.to_section("locks").text;
        return Err(failure(seed, &schedule, &text));
    }
    if stats.holds == 0 {
        return Err(failure(seed, &schedule, "no client ever held the lock"));
    }
    trace.record(format!("{stats:?}"));
    Ok(Passed {
        trace,
        simulated: began.elapsed(),
        faults_seen,
        stats,
    })
}

/// The failure report of this scenario.
fn failure(seed: u64, schedule: &Schedule, problem: &str) -> String {
    let problems = [problem.to_string()];
    scenario::failure("lock", seed, "lock", &problems, schedule, None)
}
