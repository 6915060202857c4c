//! One auth run: set auth up, run the admin and the writers under the fault schedule, heal,
//! wait for the members to agree, judge.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;

use tokio::time::Instant;

use super::clients::{admin, writer};
use super::judge::{forbidding, judge, ChangeKind, PutOutcome};
use super::setup::{agreed, set_up};
use super::{Outcome, Params, Shared, Stats};
use crate::cluster::SimCluster;
use crate::nemesis::{apply, Schedule};
use crate::trace::Trace;
use crate::workloads::scenario::{self, start, Passed};

/// Runs one seed's scenario inside the simulator (see the module docs).
pub(super) async fn scenario(seed: u64, p: Params) -> Result<Outcome, String> {
    let began = Instant::now();
    // The cheapest bcrypt cost: every login hashes, and wall time is what a sweep costs.
    let schedule = scenario::schedule(seed, (p.nodes, p.duration), &p.faults, p.schedule.as_ref());
    let settings = scenario::settings(&schedule);
    let cluster = SimCluster::with_config(p.nodes, move |c| {
        settings(c);
        c.bcrypt_cost = 4;
    });
    let mut trace = Trace::default();
    let urls = start(&cluster, &schedule, &mut trace).await;
    let u = urls[0].clone();
    let (root, setup_revision) = cluster
        .client(async move { set_up(&u).await })
        .await
        .map_err(|e| failure(seed, &schedule, &[format!("setup: {e}")], None))?;
    trace.record(format!("auth set up at auth revision {setup_revision}"));

    let logs: Shared = Arc::default();
    let start = Instant::now();
    let (l, u, until, r) = (logs.clone(), urls.clone(), p.duration, root.clone());
    let writers = p.writers;
    let work = cluster.spawn_client(async move {
        let mut tasks = vec![tokio::spawn(admin(u.clone(), start, until, r, l.clone()))];
        for w in 0..writers {
            tasks.push(tokio::spawn(writer(w, u.clone(), start, until, l.clone())));
        }
        for t in tasks {
            t.await.expect("auth client task");
        }
    });
    let applied = apply::run(&schedule, &cluster).await;
    let faults_seen = applied.seen;
    scenario::restarted_logs("auth", seed, "auth", &applied.problems, &schedule)?;
    for line in applied.log {
        trace.record(line);
    }
    work.await
        .map_err(|e| format!("auth client panicked: {e:?}"))?;

    let mut history = std::mem::take(&mut logs.lock().unwrap().history);
    for c in &history.changes {
        trace.record(format!(
            "{:?} [{}, {:?}] refused {}",
            c.kind, c.invoke, c.ack, c.refused
        ));
    }
    let u = urls.clone();
    let (auth_revision, keys) = cluster
        .client(async move { agreed(&u, root).await })
        .await
        .map_err(|e| failure(seed, &schedule, &[e], Some(&trace)))?;
    history.keys = keys;
    let stats = stats(&history, auth_revision);
    trace.record(format!("{stats:?}"));
    let mut problems = judge(&history);
    let acked = history.changes.iter().filter(|c| c.ack.is_some()).count() as u64;
    if auth_revision < setup_revision + acked {
        problems.push(format!(
            "the members agree on auth revision {auth_revision}, below the setup's \
             {setup_revision} plus {acked} acknowledged changes"
        ));
    }
    if !problems.is_empty() {
        return Err(failure(seed, &schedule, &problems, Some(&trace)));
    }
    Ok(Passed {
        trace,
        simulated: began.elapsed(),
        faults_seen,
        stats,
    })
}

/// The figures of a run's history.
fn stats(h: &super::judge::History, auth_revision: u64) -> Stats {
    let acked = |k: fn(&ChangeKind) -> bool| {
        h.changes
            .iter()
            .filter(|c| c.ack.is_some() && k(&c.kind))
            .count()
    };
    let refused = |what: &str| {
        h.puts
            .iter()
            .filter(|p| matches!(&p.outcome, PutOutcome::Refused(m) if m.contains(what)))
            .count()
    };
    let denied = refused("permission denied");
    Stats {
        revokes: acked(|k| *k == ChangeKind::Revoke),
        grants: acked(|k| *k == ChangeKind::Grant),
        passwords: acked(|k| matches!(k, ChangeKind::Password(_))),
        puts_ok: h
            .puts
            .iter()
            .filter(|p| p.outcome == PutOutcome::Ok)
            .count(),
        denied,
        forbidden: h.puts.iter().filter(|p| forbidding(h, p).is_some()).count(),
        stale: refused("") - denied,
        unknown: h
            .puts
            .iter()
            .filter(|p| matches!(p.outcome, PutOutcome::Unknown(_)))
            .count(),
        wrong_password: h.auths.iter().filter(|a| a.ok == Some(false)).count(),
        auth_revision,
    }
}

/// The failure report of this scenario.
fn failure(seed: u64, schedule: &Schedule, problems: &[String], trace: Option<&Trace>) -> String {
    scenario::failure("auth", seed, "auth", problems, schedule, trace)
}
