//! `--experimental-enable-lease-checkpoint` across a leader change, in simulated time: a long
//! lease that nobody keeps alive must expire when its TTL says — measured from the last
//! checkpoint the old leader recorded through raft — not a whole fresh TTL after the new
//! leader's election; and without checkpoints a new leader does give it a fresh TTL (etcd's
//! default behaviour). etcd fixes the checkpoint interval at 5 minutes, so this needs ~15
//! simulated minutes: seconds of wall time in the simulator.

#![cfg(madsim)]
// Reading madsim's clock is deterministic: it is the simulator's virtual time.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use detcd::proto::etcdserverpb::lease_client::LeaseClient;
use detcd::proto::etcdserverpb::{LeaseGrantRequest, LeaseTimeToLiveRequest};
use detcd_sim::cluster::{wait_leader, SimCluster};

/// The lease's TTL: two checkpoint intervals.
const TTL: i64 = 600;

/// Grants a `TTL` lease, lets 400 s pass (a checkpoint at 300 s records 300 s remaining),
/// power-cuts the leader, and returns the simulated seconds from the grant until the lease was
/// gone (polled every 10 s, up to 1,200 s).
fn expiry_after_leader_crash(seed: u64, checkpoints: bool) -> u64 {
    let rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    rt.block_on(async move {
        let cluster = SimCluster::with_config(3, move |cfg| cfg.lease_checkpoint = checkpoints);
        let urls = cluster.client_urls();
        let u = urls.clone();
        let leader = cluster.client(async move { wait_leader(&u).await }).await;
        let first = urls[leader].clone();
        let id = cluster
            .client(async move {
                let mut c = LeaseClient::connect(first).await.expect("connect");
                c.lease_grant(LeaseGrantRequest { ttl: TTL, id: 0 })
                    .await
                    .expect("grant")
                    .into_inner()
                    .id
            })
            .await;
        let granted = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_secs(400)).await;
        cluster.crash(leader);
        let survivors: Vec<String> = (0..urls.len())
            .filter(|i| *i != leader)
            .map(|i| urls[i].clone())
            .collect();
        let s = survivors.clone();
        cluster.client(async move { wait_leader(&s).await }).await;
        loop {
            let s = survivors.clone();
            let alive = cluster
                .client(async move {
                    for url in s {
                        let Ok(mut c) = LeaseClient::connect(url).await else {
                            continue;
                        };
                        let req = LeaseTimeToLiveRequest { id, keys: false };
                        if let Ok(r) = c.lease_time_to_live(req).await {
                            return Some(r.into_inner().ttl > 0);
                        }
                    }
                    None
                })
                .await;
            let elapsed = granted.elapsed().as_secs();
            if alive == Some(false) || elapsed > 1_200 {
                return elapsed;
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    })
}

#[test]
fn a_new_leader_continues_from_the_last_checkpoint() {
    let gone = expiry_after_leader_crash(1, true);
    // Checkpointed at 300 s with 300 s left; the new leader (elected at ~401 s) counts those:
    // gone at ~700 s. Never before the TTL itself; well before a fresh TTL (~1,000 s).
    assert!(
        (TTL as u64..=800).contains(&gone),
        "with checkpoints the lease was gone after {gone} s"
    );
}

#[test]
fn without_checkpoints_a_new_leader_grants_a_fresh_ttl() {
    let gone = expiry_after_leader_crash(1, false);
    assert!(
        (1_000..=1_100).contains(&gone),
        "without checkpoints the lease was gone after {gone} s"
    );
}
