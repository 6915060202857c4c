//! One watch run: writers and watchers under the fault schedule, then the final revision, the
//! watchers' catch-up, the store's history, and the checks.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use detcd_jepsen::watch::{
    check_resumed_watches, ResumedWatch, WatchResponse as Seen, WatchStream,
};
use tokio::time::Instant;

use super::check::{check_acked, check_prev_kvs};
use super::history::{compact_behind, final_revision, store_history, Historian};
use super::watcher::{watcher, Spec};
use super::writer::writer;
use super::{Outcome, Params, Stats, Target, CATCH_UP, PROGRESS_INTERVAL};
use crate::cluster::SimCluster;
use crate::nemesis::{apply, Schedule};
use crate::trace::Trace;
use crate::workloads::scenario::{self, start, Passed};

/// Runs one seed's scenario inside the simulator (see the module docs).
pub(super) async fn scenario(seed: u64, p: Params) -> Result<Outcome, String> {
    let began = Instant::now();
    let schedule = scenario::schedule(seed, (p.nodes, p.duration), &p.faults, p.schedule.as_ref());
    let cluster = SimCluster::with_config(p.nodes, |c| {
        c.watch_progress_notify_interval = Some(PROGRESS_INTERVAL);
    });
    let mut trace = Trace::default();
    let urls = start(&cluster, &schedule, &mut trace).await;

    let acked = Arc::new(Mutex::new(Vec::new()));
    let target: Target = Arc::new(Mutex::new(None));
    let start = Instant::now();
    let (a, u, until, writers) = (acked.clone(), urls.clone(), p.duration, p.writers);
    let writing = cluster.spawn_client(async move {
        let tasks: Vec<_> = (0..writers)
            .map(|w| tokio::spawn(writer(w, u.clone(), start, until, a.clone())))
            .collect();
        for t in tasks {
            t.await.expect("writer task");
        }
    });
    // The auto-compaction fault: the workload compacts the store as it goes, a little behind
    // the history it has read (the members' own auto-compaction would compact revisions the
    // history still has to read).
    let compacting = schedule.auto_compaction().is_some().then(|| {
        let u = urls.clone();
        cluster.spawn_client(compact_behind(u, start, until))
    });
    let watching: Vec<_> = (0..p.watchers)
        .map(|w| cluster.spawn_client(watcher(Spec::new(w), urls.clone(), target.clone())))
        .collect();
    let applied = apply::run(&schedule, &cluster).await;
    let faults_seen = applied.seen;
    scenario::restarted_logs(
        "watch",
        seed,
        "watch_lease watch",
        &applied.problems,
        &schedule,
    )?;
    for line in applied.log {
        trace.record(line);
    }
    writing
        .await
        .map_err(|e| format!("writer panicked: {e:?}"))?;

    let u = urls.clone();
    let last = cluster
        .client(async move { final_revision(&u).await })
        .await;
    let last = last.ok_or_else(|| failure(seed, &schedule, &["no final revision".into()]))?;
    *target.lock().unwrap() = Some((last, Instant::now() + CATCH_UP));
    trace.record(format!("final revision {last}"));
    let mut logs = Vec::new();
    for w in watching {
        logs.push(w.await.map_err(|e| format!("watcher panicked: {e:?}"))?);
    }
    // A write whose writer gave up on it may still commit after `last` was read, and a watcher
    // may have seen it: the history must reach as far as any watcher was told about.
    let upto = logs.iter().filter_map(|l| l.reported).fold(last, u64::max);
    let (historian, compacted) = match compacting {
        Some(c) => {
            let (h, compactions, asked) =
                c.await.map_err(|e| format!("compactor panicked: {e:?}"))?;
            trace.record(format!(
                "{compactions} compactions (up to {asked}), history read to {} meanwhile",
                h.progress
            ));
            (h, asked)
        }
        None => (Historian::default(), 0),
    };
    let u = urls.clone();
    let truth = cluster
        .client(async move { store_history(&u, upto, historian).await })
        .await
        .map_err(|e| failure(seed, &schedule, &[e]))?;
    trace.record(format!("store history to {upto}: {} events", truth.len()));

    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let mut problems = check_acked(&acked, &truth);
    let watches: Vec<ResumedWatch> = logs
        .iter()
        .map(|l| {
            let mut w = l.watch.clone();
            w.caught_up_to = l.caught_up.then_some(last);
            w
        })
        .collect();
    let report = check_resumed_watches(&truth, &watches);
    problems.extend(report.violations.iter().map(|v| v.to_string()));
    problems.extend(check_prev_kvs(&logs, &truth, compacted));
    for l in &logs {
        if !l.caught_up {
            problems.push(format!(
                "[liveness] {} was not told about the final revision {last} within {CATCH_UP:?} \
                 after healing (newest revision it heard of: {:?})",
                l.watch.name, l.reported
            ));
        }
    }

    let mut stats = Stats {
        acked_writes: acked.len(),
        final_revision: last,
        ..Stats::default()
    };
    for l in &logs {
        stats.streams += l.watch.segments.len();
        stats.resumptions += l.watch.segments.len().saturating_sub(1);
        stats.compacted += l
            .watch
            .segments
            .iter()
            .filter(|s| s.compacted.is_some())
            .count();
        for s in &l.watch.segments {
            trace.record(describe(s));
            for r in &s.responses {
                match r {
                    Seen::Events { events } => stats.events += events.len(),
                    Seen::Progress { .. } => stats.progress += 1,
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(failure(seed, &schedule, &problems));
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
fn failure(seed: u64, schedule: &Schedule, problems: &[String]) -> String {
    scenario::failure("watch", seed, "watch_lease watch", problems, schedule, None)
}

/// One line per stream for the trace.
fn describe(s: &WatchStream) -> String {
    let mut line = format!(
        "{} start {} created {:?}:",
        s.name, s.start_revision, s.created_revision
    );
    for r in &s.responses {
        match r {
            Seen::Events { events } => {
                let revs: BTreeSet<u64> = events.iter().map(|e| e.revision).collect();
                line.push_str(&format!(" e{revs:?}"));
            }
            Seen::Progress { revision } => line.push_str(&format!(" p{revision}")),
        }
    }
    if let Some(c) = s.compacted {
        line.push_str(&format!(" canceled: compacted at {c}"));
    }
    line
}
