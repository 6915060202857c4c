//! Safety under seeded faults: concurrent clients through a 3-member cluster while the nemesis
//! crashes, partitions, pauses, skews clocks and slows disks; then everything heals. The history
//! must be linearizable, every member must converge to the same data, and a seed replays the
//! same run.

#![cfg(madsim)]
// Reading madsim's clock is deterministic: it is the simulator's virtual time.
#![allow(clippy::disallowed_methods)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use detcd::proto::etcdserverpb::RangeRequest;
use detcd_jepsen::Verdict;
use detcd_sim::cluster::{kv_client, wait_leader, SimCluster};
use detcd_sim::nemesis::{Schedule, ALL_FAULTS};
use detcd_sim::trace::Trace;
use detcd_sim::workload::{self, KEYS};

const DURATION: Duration = Duration::from_secs(6);

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

/// Runs one seed; returns its trace and the simulated time it took (cluster start-up included).
fn run(seed: u64) -> (Trace, Duration) {
    let rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    rt.block_on(async {
        let began = tokio::time::Instant::now();
        let cluster = SimCluster::new(3);
        let urls = cluster.client_urls();
        let u = urls.clone();
        cluster.client(async move { wait_leader(&u).await }).await;
        let schedule = Schedule::random(3, DURATION, &ALL_FAULTS);
        let mut trace = Trace::default();
        trace.record(format!("{schedule}"));

        let log = Arc::new(Mutex::new(Vec::new()));
        let start = tokio::time::Instant::now();
        let (l, u) = (log.clone(), urls.clone());
        let work = cluster.spawn_client(async move {
            let tasks: Vec<_> = (0..5u64)
                .map(|p| {
                    tokio::spawn(workload::client(
                        p,
                        u.clone(),
                        start,
                        DURATION,
                        10_000,
                        l.clone(),
                    ))
                })
                .collect();
            for t in tasks {
                t.await.expect("client task");
            }
        });
        for line in schedule.run(&cluster).await {
            trace.record(line);
        }
        work.await.expect("workload");

        // Safety: the history is linearizable.
        let ops = std::mem::take(&mut *log.lock().unwrap());
        let n = ops.len();
        if let Ok(path) = std::env::var("DETCD_SIM_DUMP") {
            let mut h = detcd_jepsen::History::new();
            for op in ops.clone() {
                h.push(op);
            }
            h.to_jsonl(std::fs::File::create(format!("{path}.{seed}.jsonl")).unwrap())
                .unwrap();
        }
        let result = workload::check(ops);
        if result.verdict != Verdict::Linearizable {
            let why = result
                .explanation
                .as_ref()
                .map(|e| e.summary())
                .unwrap_or_default();
            panic!(
                "seed {seed}: {:?}\nschedule:\n{schedule}\n{why}",
                result.verdict
            );
        }
        trace.record(format!("{n} ops linearizable"));

        // Liveness and convergence: after healing, every member serves the same contents.
        let mut last = Vec::new();
        for _ in 0..100 {
            let mut views = Vec::new();
            for url in &urls {
                views.push(cluster.client(contents(url.clone())).await);
            }
            if views.iter().all(|v| v.is_some() && *v == views[0]) {
                let data = views[0].clone().unwrap();
                assert!(data.iter().all(|(k, _, _)| KEYS.contains(&k.as_str())));
                trace.record(format!("converged: {data:?}"));
                trace.record(format!("simulated time {:?}", began.elapsed()));
                return (trace, began.elapsed());
            }
            last = views;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "seed {seed}: members did not converge after healing: {last:?}\nschedule:\n{schedule}"
        );
    })
}

#[test]
fn linearizable_and_convergent_under_random_faults() {
    // A tenth of the sweep size (`DETCD_SIM_SEEDS`, default 60 → 6 seeds; CI runs more).
    let seeds: u64 = std::env::var("DETCD_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
        / 10;
    let first: u64 = std::env::var("DETCD_SIM_FIRST")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let mut simulated = Duration::ZERO;
    for seed in first..first + seeds.max(1) {
        simulated += run(seed).1;
    }
    // With cargo's wall time for this test, this gives simulated seconds per wall second.
    eprintln!("{} nemesis seeds: {simulated:?} simulated", seeds.max(1));
}

#[test]
fn a_faulty_run_replays_bit_for_bit() {
    for seed in [7, 8, 9] {
        let (a, b) = (run(seed).0, run(seed).0);
        assert_eq!(
            a.hash(),
            b.hash(),
            "seed {seed}: {:?}\nvs\n{:?}",
            a.events(),
            b.events()
        );
    }
}
