//! One txn run: open the accounts, run the clients under the fault schedule, then judge the
//! history (conservation first, then linearizability).

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;

use detcd_jepsen::Verdict;
use tokio::time::Instant;

use super::accounts::open_accounts;
use super::client::client;
use super::{Outcome, Params, Shared, Stats};
use crate::cluster::SimCluster;
use crate::nemesis::apply;
use crate::trace::Trace;
use crate::workloads::register::check;
use crate::workloads::scenario::{self, failure, start, Passed};

/// Runs one seed's scenario inside the simulator (see the module docs).
pub(super) async fn scenario(seed: u64, p: Params) -> Result<Outcome, String> {
    let began = Instant::now();
    let schedule = scenario::schedule(seed, (p.nodes, p.duration), &p.faults, p.schedule.as_ref());
    let cluster = SimCluster::with_config(p.nodes, scenario::settings(&schedule));
    let mut trace = Trace::default();
    let urls = start(&cluster, &schedule, &mut trace).await;

    let logs: Shared = Arc::default();
    let start = Instant::now();
    // Open the accounts, recorded as the history's first operation.
    let (l, u) = (logs.clone(), urls.clone());
    let opened = cluster
        .client(async move { open_accounts(&u, start, &l).await })
        .await;
    if !opened {
        return Err(format!("txn seed {seed}: could not open the accounts"));
    }
    let (l, u, until) = (logs.clone(), urls.clone(), p.duration);
    let (clients, per_client) = (p.clients, p.ops_per_client);
    let work = cluster.spawn_client(async move {
        let tasks: Vec<_> = (0..clients)
            .map(|c| tokio::spawn(client(c, u.clone(), start, until, per_client, l.clone())))
            .collect();
        for t in tasks {
            t.await.expect("txn client task");
        }
    });
    let applied = apply::run(&schedule, &cluster).await;
    let faults_seen = applied.seen;
    scenario::restarted_logs("txn", seed, "txn", &applied.problems, &schedule)?;
    for line in applied.log {
        trace.record(line);
    }
    work.await
        .map_err(|e| format!("txn client panicked: {e:?}"))?;

    let logs = std::mem::take(&mut *logs.lock().unwrap());
    if !logs.broken.is_empty() {
        return Err(failure("txn", seed, "txn", &logs.broken, &schedule, None));
    }
    let n = logs.ops.len();
    let result = check(logs.ops);
    if result.verdict != Verdict::Linearizable {
        let why = result
            .explanation
            .as_ref()
            .map(|e| e.summary())
            .unwrap_or_default();
        let problem = format!("{:?}: {why}", result.verdict);
        return Err(failure("txn", seed, "txn", &[problem], &schedule, None));
    }
    trace.record(format!(
        "{n} ops linearizable; {} transfers, {} audits",
        logs.transfers, logs.audits
    ));
    Ok(Passed {
        trace,
        simulated: began.elapsed(),
        faults_seen,
        stats: Stats {
            ops: n,
            transfers: logs.transfers,
            audits: logs.audits,
        },
    })
}
