//! One lease run: skewed clocks, clients and readers under the nemesis and the scenario's own
//! faults, then the wait for every lease to expire, and the checks.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::check::{check, protected_pairs};
use super::client::{client, reader};
use super::disorder::{disorder, Skews};
use super::expiry::all_gone;
use super::{Ms, Outcome, Params, Shared, Stats, EXPIRY_SLACK, MAX_OFFSET_MS, MAX_RATE_PPM, TTLS};
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
    // Skew every member before it has read its clock: offsets are then no step at all.
    let mut skews = Skews::default();
    for i in 0..p.nodes {
        let (off, ppm) = {
            let mut rng = madsim::rand::thread_rng();
            (
                rng.gen_range(-MAX_OFFSET_MS..=MAX_OFFSET_MS),
                rng.gen_range(-MAX_RATE_PPM..=MAX_RATE_PPM),
            )
        };
        skews.set(&cluster, i, off as i128 * 1_000_000, ppm);
        trace.record(format!("n{} clock {off} ms at {ppm} ppm", i + 1));
    }
    let urls = start(&cluster, &schedule, &mut trace).await;

    let logs: Shared = Arc::default();
    let start = Instant::now();
    let (l, u, until) = (logs.clone(), urls.clone(), p.duration);
    let (clients, readers) = (p.clients, p.readers);
    let work = cluster.spawn_client(async move {
        let mut tasks = Vec::new();
        for c in 0..clients {
            tasks.push(tokio::spawn(client(c, u.clone(), start, until, l.clone())));
        }
        for _ in 0..readers {
            tasks.push(tokio::spawn(reader(u.clone(), start, until, l.clone())));
        }
        for t in tasks {
            t.await.expect("lease client task");
        }
    });
    let (nemesis, disorder) = tokio::join!(
        apply::run(&schedule, &cluster),
        disorder(&cluster, &mut skews, start, p.duration, p.kill_leaders)
    );
    let faults_seen = nemesis.seen;
    scenario::restarted_logs(
        "lease",
        seed,
        "watch_lease lease",
        &nemesis.problems,
        &schedule,
    )?;
    for line in nemesis.log.into_iter().chain(disorder.log) {
        trace.record(line);
    }
    work.await
        .map_err(|e| format!("lease client panicked: {e:?}"))?;
    let faulty_end = start.elapsed().as_millis() as Ms;

    // Liveness: nobody keeps anything alive now, so every lease must go.
    let u = urls.clone();
    let longest = Duration::from_secs(*TTLS.end() as u64);
    let limit = longest + longest * MAX_RATE_PPM as u32 / 1_000_000 + EXPIRY_SLACK;
    let gone = cluster
        .client(async move { all_gone(&u, limit).await })
        .await;
    let logs = std::mem::take(&mut *logs.lock().unwrap());
    let mut problems = check(&logs);
    let expiry_ms = match gone {
        Ok(()) => start.elapsed().as_millis() as Ms - faulty_end,
        Err(left) => {
            problems.push(format!(
                "[liveness] {left} still there {limit:?} after the faults healed and keep-alives \
                 stopped"
            ));
            0
        }
    };

    let mut stats = Stats {
        leases: logs.leases.len(),
        reads: logs.reads.len(),
        leaders_killed: disorder.kills,
        expiry_ms,
        ..Stats::default()
    };
    for l in &logs.leases {
        stats.renewals += l.renewals.len().saturating_sub(1);
        stats.failed_renewals += l.failed.len();
        trace.record(format!(
            "lease {:x} {} put {:?} renewals {:?} failed {:?} gone {:?}",
            l.id,
            l.key,
            l.put_acked,
            l.renewals
                .iter()
                .map(|r| (r.sent, r.answered, r.ttl))
                .collect::<Vec<_>>(),
            l.failed,
            l.seen_gone
        ));
    }
    stats.protected_checks = protected_pairs(&logs);
    if !problems.is_empty() {
        return Err(failure(seed, &schedule, &trace, &problems));
    }
    trace.record(format!("{stats:?}"));
    Ok(Passed {
        trace,
        simulated: began.elapsed(),
        faults_seen,
        stats,
    })
}

/// The failure report of this scenario, with its trace (the renewals explain a violation).
fn failure(seed: u64, schedule: &Schedule, trace: &Trace, problems: &[String]) -> String {
    scenario::failure(
        "lease",
        seed,
        "watch_lease lease",
        problems,
        schedule,
        Some(trace),
    )
}
