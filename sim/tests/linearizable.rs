//! Concurrent clients put and read (linearizably) through every member of a 3-member cluster
//! while the leader loses power and later comes back; the recorded history must be linearizable
//! by detcd-jepsen's etcd KV model, revisions included.

#![cfg(madsim)]
// Reading madsim's clock is deterministic: it is the simulator's virtual time.
#![allow(clippy::disallowed_methods)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use detcd::proto::etcdserverpb::{PutRequest, RangeRequest};
use detcd_jepsen::{
    check_with, CheckOptions, History, KvInput, KvModel, KvOutput, Op, Outcome, Verdict,
};
use detcd_sim::cluster::{kv_client, wait_leader, SimCluster};
use rand::Rng;

type KvOp = Op<KvInput, KvOutput>;

const CLIENTS: u64 = 5;
const OPS_PER_CLIENT: usize = 40;
const KEYS: [&str; 3] = ["x", "y", "z"];

fn nanos_since(start: tokio::time::Instant) -> u64 {
    tokio::time::Instant::now().duration_since(start).as_nanos() as u64
}

async fn client(
    process: u64,
    urls: Vec<String>,
    start: tokio::time::Instant,
    log: Arc<Mutex<Vec<KvOp>>>,
) {
    let mut target = process as usize % urls.len();
    let mut kv = kv_client(&urls[target]).await;
    for i in 0..OPS_PER_CLIENT {
        let (key, write) = {
            let mut rng = madsim::rand::thread_rng();
            (
                KEYS[rng.gen_range(0..KEYS.len())].to_string(),
                rng.gen_bool(0.5),
            )
        };
        let invoke = nanos_since(start);
        let (input, outcome) = if write {
            let value = format!("{process}-{i}");
            let req = PutRequest {
                key: Bytes::from(key.clone()),
                value: Bytes::from(value.clone()),
                ..Default::default()
            };
            let outcome = match tokio::time::timeout(Duration::from_secs(3), kv.put(req)).await {
                Ok(Ok(r)) => Outcome::Ok(KvOutput::Put {
                    revision: Some(r.into_inner().header.unwrap().revision as u64),
                }),
                // A write that timed out or errored may still take effect.
                _ => Outcome::Info,
            };
            (KvInput::Put { key, value }, outcome)
        } else {
            let req = RangeRequest {
                key: Bytes::from(key.clone()),
                ..Default::default()
            };
            let outcome = match tokio::time::timeout(Duration::from_secs(3), kv.range(req)).await {
                Ok(Ok(r)) => {
                    let r = r.into_inner();
                    let kv = r.kvs.first();
                    Outcome::Ok(KvOutput::Get {
                        value: kv.map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
                        mod_revision: Some(kv.map_or(0, |kv| kv.mod_revision as u64)),
                        revision: Some(r.header.unwrap().revision as u64),
                    })
                }
                // A failed read has no effect.
                _ => Outcome::Fail,
            };
            (KvInput::Get { key }, outcome)
        };
        let failed = !matches!(outcome, Outcome::Ok(_));
        log.lock().unwrap().push(Op {
            process,
            invoke,
            complete: nanos_since(start),
            input,
            outcome,
        });
        if failed {
            // Try another member next time.
            target = (target + 1) % urls.len();
            kv = kv_client(&urls[target]).await;
        }
    }
}

fn run(seed: u64) -> (Verdict, usize, usize) {
    let rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    rt.block_on(async {
        let cluster = SimCluster::new(3);
        let urls = cluster.client_urls();
        let u = urls.clone();
        let leader = cluster.client(async move { wait_leader(&u).await }).await;
        let log = Arc::new(Mutex::new(Vec::new()));
        let start = tokio::time::Instant::now();
        let (l, u) = (log.clone(), urls.clone());
        let work = cluster.spawn_client(async move {
            let tasks: Vec<_> = (0..CLIENTS)
                .map(|p| tokio::spawn(client(p, u.clone(), start, l.clone())))
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
        let ops = std::mem::take(&mut *log.lock().unwrap());
        let unknown = ops
            .iter()
            .filter(|o| !matches!(o.outcome, Outcome::Ok(_)))
            .count();
        let n = ops.len();
        let mut h = History::new();
        for op in ops {
            h.push(op);
        }
        let model = KvModel {
            track_revisions: true,
            ..Default::default()
        };
        let r = check_with(
            &model,
            &h,
            &CheckOptions {
                timeout: Some(Duration::from_secs(60)),
                threads: 1,
                ..Default::default()
            },
        );
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
