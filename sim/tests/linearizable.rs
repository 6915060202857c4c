//! Concurrent clients put and read (linearizably) through every member of a 3-member cluster
//! while the leader loses power and later comes back; the recorded history must be linearizable
//! by detcd-jepsen's etcd KV model, revisions included.

#![cfg(madsim)]
// Reading madsim's clock is deterministic: it is the simulator's virtual time.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use detcd_jepsen::{Outcome, Verdict};
use detcd_sim::cluster::{wait_leader, SimCluster};
use detcd_sim::workloads::register;

const CLIENTS: u64 = 5;
const OPS_PER_CLIENT: usize = 40;

fn run(seed: u64) -> (Verdict, usize, usize) {
    // Captured by the test harness; shown only when a seed fails, so it can be replayed.
    eprintln!("seed {seed}");
    detcd_sim::log_from_env();
    let rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    rt.block_on(async {
        let cluster = SimCluster::new(3);
        let urls = cluster.client_urls();
        let u = urls.clone();
        let leader = cluster.client(async move { wait_leader(&u).await }).await;
        let log = register::Shared::default();
        let start = tokio::time::Instant::now();
        let (l, u) = (log.clone(), urls.clone());
        let work = cluster.spawn_client(async move {
            let tasks: Vec<_> = (0..CLIENTS)
                .map(|p| {
                    let log = l.clone();
                    tokio::spawn(register::client(
                        p,
                        u.clone(),
                        start,
                        Duration::MAX,
                        OPS_PER_CLIENT,
                        log,
                    ))
                })
                .collect();
            for t in tasks {
                t.await.expect("client task");
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.crash(leader);
        tokio::time::sleep(Duration::from_secs(2)).await;
        cluster.restart(leader);
        work.await.expect("workload");
        let recorded = std::mem::take(&mut *log.lock().unwrap());
        let past = register::past::check(&recorded.ops, &recorded.past, false);
        assert!(past.is_empty(), "seed {seed}: {past:?}");
        let ops = recorded.ops;
        let recorded_past = recorded.past.reads.len() + recorded.past.compactions.len();
        let unknown = ops
            .iter()
            .filter(|o| !matches!(o.outcome, Outcome::Ok(_)))
            .count();
        let n = ops.len() + recorded_past;
        let r = register::check(ops);
        if r.verdict != Verdict::Linearizable {
            if let Some(e) = &r.explanation {
                eprintln!("seed {seed}:\n{}", e.summary());
            }
        }
        (r.verdict, n, unknown)
    })
}

#[test]
fn histories_through_a_leader_power_cut_are_linearizable() {
    // A tenth of the sweep size (`DETCD_SIM_SEEDS`, default 60 → 6 seeds; CI runs more).
    let seeds: u64 = std::env::var("DETCD_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
        / 10;
    let mut unknown_total = 0;
    for seed in 1..=seeds.max(1) {
        let (verdict, n, unknown) = run(seed);
        assert_eq!(verdict, Verdict::Linearizable, "seed {seed}");
        assert_eq!(n, (CLIENTS as usize) * OPS_PER_CLIENT);
        unknown_total += unknown;
    }
    // The power cut must actually disturb some operations, or this proves little.
    assert!(unknown_total > 0);
}
