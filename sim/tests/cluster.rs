//! Three members under madsim: the leader loses power (unsynced writes dropped), writes go on
//! through the survivors, the old leader restarts and catches up; every acknowledged write is on
//! every member, and a seed replays bit for bit.

#![cfg(madsim)]
// Reading madsim's clock is deterministic: it is the simulator's virtual time.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use bytes::Bytes;
use detcd::proto::etcdserverpb::{PutRequest, RangeRequest};
use detcd_sim::cluster::{kv_client, status, wait_leader, SimCluster};
use detcd_sim::replay;
use detcd_sim::trace::Trace;

async fn put_all(url: String, keys: Vec<String>) -> Vec<(String, i64)> {
    let mut kv = kv_client(&url).await;
    let mut acked = Vec::new();
    for k in keys {
        let put = PutRequest {
            key: Bytes::from(k.clone()),
            value: Bytes::from_static(b"v"),
            ..Default::default()
        };
        // A member may lose its leader mid-run; an unacknowledged write is simply not counted.
        for _ in 0..20 {
            match kv.put(put.clone()).await {
                Ok(r) => {
                    acked.push((k.clone(), r.into_inner().header.unwrap().revision));
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    acked
}

/// All keys on `url` by a serializable (local) read, with the member's revision.
async fn local_keys(url: String) -> (Vec<String>, i64) {
    let mut kv = kv_client(&url).await;
    let req = RangeRequest {
        key: Bytes::from_static(b"\0"),
        range_end: Bytes::from_static(b"\0"),
        serializable: true,
        ..Default::default()
    };
    let r = kv.range(req).await.expect("local read").into_inner();
    let keys = r
        .kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect();
    (keys, r.header.unwrap().revision)
}

fn run(seed: u64) -> Trace {
    let rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    rt.block_on(async {
        let cluster = SimCluster::new(3);
        let urls = cluster.client_urls();
        let mut trace = Trace::default();
        let began = tokio::time::Instant::now();

        let u = urls.clone();
        let leader = cluster.client(async move { wait_leader(&u).await }).await;
        trace.record(format!("leader n{}", leader + 1));
        let mut acked = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            let keys = (0..5).map(|j| format!("a{i}{j}")).collect();
            acked.extend(cluster.client(put_all(url.clone(), keys)).await);
        }
        assert_eq!(
            acked.len(),
            15,
            "a healthy cluster acknowledges every write"
        );

        let lost = cluster.crash(leader);
        trace.record(format!(
            "power cut n{} lost {lost} unsynced batches",
            leader + 1
        ));
        let alive: Vec<String> = urls
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != leader)
            .map(|(_, u)| u.clone())
            .collect();
        let a = alive.clone();
        let new = cluster.client(async move { wait_leader(&a).await }).await;
        trace.record(format!("new leader {}", alive[new]));
        for (i, url) in alive.iter().enumerate() {
            let keys = (0..5).map(|j| format!("b{i}{j}")).collect();
            acked.extend(cluster.client(put_all(url.clone(), keys)).await);
        }
        assert_eq!(
            acked.len(),
            25,
            "two of three members still acknowledge every write"
        );

        cluster.restart(leader);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut want: Vec<String> = acked.iter().map(|(k, _)| k.clone()).collect();
        want.sort();
        let mut revisions = Vec::new();
        for url in &urls {
            let mut caught_up = None;
            for _ in 0..100 {
                let (keys, rev) = cluster.client(local_keys(url.clone())).await;
                if keys == want {
                    caught_up = Some(rev);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let rev =
                caught_up.unwrap_or_else(|| panic!("{url} never had every acknowledged write"));
            revisions.push(rev);
        }
        assert!(
            revisions.iter().all(|r| *r == revisions[0]),
            "members at different revisions: {revisions:?}"
        );
        for (k, rev) in &acked {
            trace.record(format!("{k}@{rev}"));
        }
        trace.record(format!("all members at revision {}", revisions[0]));
        trace.record(format!("simulated time {:?}", began.elapsed()));
        trace
    })
}

#[test]
fn leader_power_cut_writes_continue_and_it_catches_up() {
    for seed in 1..=5 {
        run(seed);
    }
}

#[test]
fn three_member_run_replays_bit_for_bit() {
    // Each run in its own process: only there is a simulation a pure function of its seed.
    if let Some(seed) = replay::requested_seed() {
        replay::report(run(seed).hash());
        return;
    }
    for seed in [11, 12] {
        let name = "three_member_run_replays_bit_for_bit";
        let (a, b) = (
            replay::hash_in_fresh_process(name, seed),
            replay::hash_in_fresh_process(name, seed),
        );
        assert_eq!(a, b, "seed {seed} diverged");
    }
}

/// A follower loses power (unsynced writes dropped) and misses far more writes than
/// `--snapshot-count`: the leader has purged that part of its log, so the follower catches up by
/// installing a snapshot; afterwards every member holds every acknowledged write.
fn follower_catch_up(seed: u64) -> Trace {
    let rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    rt.block_on(async {
        let cluster = SimCluster::with_config(3, |cfg| cfg.snapshot_count = 10);
        let urls = cluster.client_urls();
        let mut trace = Trace::default();
        let began = tokio::time::Instant::now();
        let u = urls.clone();
        let leader = cluster.client(async move { wait_leader(&u).await }).await;
        let follower = (leader + 1) % 3;
        let mut acked = cluster
            .client(put_all(
                urls[leader].clone(),
                (0..5).map(|i| format!("a{i}")).collect(),
            ))
            .await;
        let lost = cluster.crash(follower);
        trace.record(format!(
            "follower n{} lost {lost} unsynced batches",
            follower + 1
        ));
        let keys = (0..60).map(|i| format!("b{i:02}")).collect();
        acked.extend(cluster.client(put_all(urls[leader].clone(), keys)).await);
        assert_eq!(acked.len(), 65);
        cluster.restart(follower);
        let mut want: Vec<String> = acked.iter().map(|(k, _)| k.clone()).collect();
        want.sort();
        let mut caught_up = false;
        for _ in 0..100 {
            let (keys, rev) = cluster.client(local_keys(urls[follower].clone())).await;
            if keys == want {
                trace.record(format!("follower caught up at revision {rev}"));
                caught_up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(caught_up, "seed {seed}: follower never caught up");
        trace.record(format!("simulated time {:?}", began.elapsed()));
        trace
    })
}

#[test]
fn follower_power_cut_then_catch_up_by_snapshot() {
    for seed in 21..=25 {
        follower_catch_up(seed);
    }
    let (a, b) = (follower_catch_up(30), follower_catch_up(30));
    assert_eq!(a.hash(), b.hash(), "{:?}\nvs\n{:?}", a.events(), b.events());
}

/// A member's process restarted while it runs (no power loss: unsynced writes survive) comes
/// back and serves clients again, whether or not it was the leader. (madsim's restart alone
/// left the old instance's sockets bound, and the member was unreachable for good.)
fn restart_while_running(seed: u64, restart_leader: bool) -> Vec<Option<(u64, u64, u64)>> {
    let rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    rt.block_on(async move {
        let cluster = SimCluster::new(3);
        let urls = cluster.client_urls();
        let u = urls.clone();
        let leader = cluster.client(async move { wait_leader(&u).await }).await;
        let victim = if restart_leader {
            leader
        } else {
            (leader + 1) % 3
        };
        cluster.restart(victim);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let mut out = Vec::new();
        for u in urls {
            out.push(
                cluster
                    .client(async move {
                        tokio::time::timeout(Duration::from_secs(1), status(&u))
                            .await
                            .ok()
                            .flatten()
                    })
                    .await,
            );
        }
        out
    })
}

#[test]
fn a_member_restarted_while_running_serves_again() {
    for seed in 0..3 {
        for leader in [true, false] {
            let st = restart_while_running(seed, leader);
            assert!(
                st.iter().all(Option::is_some),
                "seed {seed} (leader restarted: {leader}): {st:?}"
            );
        }
    }
}
