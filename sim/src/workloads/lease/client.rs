//! The lease workload's clients: lease holders that grant, put and renew (and then probe their
//! leases), and readers of the leased keys.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use detcd::proto::etcdserverpb::{LeaseGrantRequest, PutRequest, RangeRequest};
use rand::Rng;
use tokio::time::Instant;

use super::check::protected_until;
use super::{LeaseLog, Read, Renewal, Shared, CONNECT_TIMEOUT, PREFIX, REQUEST_TIMEOUT, TTLS};
use crate::workloads::client::{
    connect_kv, connect_lease, keep_alive_once, ms_since, prefix_request, put_request,
    random_member, text,
};

/// One client: grants leases (client-chosen IDs, so even a grant whose answer was lost is
/// known), puts a key with each, and keeps most of them alive — every TTL/3, through a random
/// member each time — until the faulty phase ends; some it abandons at once, some after a few
/// renewals.
pub(super) async fn client(
    c: u64,
    urls: Vec<String>,
    start: Instant,
    until: Duration,
    logs: Shared,
) {
    let mut keepers = Vec::new();
    let mut n = 0i64;
    while start.elapsed() < until {
        n += 1;
        let id = ((c as i64 + 1) << 32) | n;
        let (ttl, renewals, pause) = {
            let mut rng = madsim::rand::thread_rng();
            let renewals = match rng.gen_range(0..10) {
                0..=1 => 0,
                2..=4 => rng.gen_range(1..4),
                _ => usize::MAX,
            };
            (rng.gen_range(TTLS), renewals, rng.gen_range(300..1200))
        };
        if let Some(lease) = grant(&urls, start, id, ttl).await {
            let key = lease.key.clone();
            let index = {
                let mut l = logs.lock().unwrap();
                l.leases.push(lease);
                l.leases.len() - 1
            };
            put(&urls, start, &key, id, index, &logs).await;
            keepers.push(tokio::spawn(keep_alive(
                urls.clone(),
                start,
                until,
                index,
                renewals,
                logs.clone(),
            )));
        }
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    for k in keepers {
        k.await.expect("keep-alive task");
    }
}

/// Grants lease `id` with `ttl` through a random member; the grant is its first renewal.
async fn grant(urls: &[String], start: Instant, id: i64, ttl: i64) -> Option<LeaseLog> {
    let mut lc = connect_lease(&urls[random_member(urls)], CONNECT_TIMEOUT).await?;
    let sent = ms_since(start);
    let r = tokio::time::timeout(
        REQUEST_TIMEOUT,
        lc.lease_grant(LeaseGrantRequest { ttl, id }),
    )
    .await
    .ok()?
    .ok()?
    .into_inner();
    Some(LeaseLog {
        id,
        key: format!("{PREFIX}{id:x}"),
        renewals: vec![Renewal {
            sent,
            answered: ms_since(start),
            ttl: r.ttl,
        }],
        ..LeaseLog::default()
    })
}

/// Puts the lease's key with it through a random member, recording when it was acknowledged.
async fn put(urls: &[String], start: Instant, key: &str, lease: i64, index: usize, logs: &Shared) {
    let Some(mut kv) = connect_kv(&urls[random_member(urls)], CONNECT_TIMEOUT).await else {
        return;
    };
    let req = PutRequest {
        lease,
        ..put_request(key, "alive")
    };
    if let Ok(Ok(_)) = tokio::time::timeout(REQUEST_TIMEOUT, kv.put(req)).await {
        logs.lock().unwrap().leases[index].put_acked = Some(ms_since(start));
    }
}

/// Renews lease `index` every TTL/3 until the faulty phase ends, `renewals` renewals were sent,
/// or the cluster answers that the lease is gone; then probes it.
async fn keep_alive(
    urls: Vec<String>,
    start: Instant,
    until: Duration,
    index: usize,
    renewals: usize,
    logs: Shared,
) {
    renew_for(&urls, start, until, index, renewals, &logs).await;
    probe(&urls, start, index, &logs).await;
}

/// How long before the end of a lease's protection its probe reads.
const PROBE_LEAD: Duration = Duration::from_millis(250);

/// A linearizable read of the prefix shortly before the last renewal's protection ends, where
/// a lease that expires early is most likely gone already (a read that completes too late does
/// not constrain anything, and is recorded all the same).
async fn probe(urls: &[String], start: Instant, index: usize, logs: &Shared) {
    let until = {
        let l = logs.lock().unwrap();
        l.leases[index].renewals.iter().map(protected_until).max()
    };
    let Some(until) = until else { return };
    let at = start + Duration::from_millis(until) - PROBE_LEAD;
    tokio::time::sleep_until(at).await;
    read_once(urls, start, logs).await;
}

/// The renewals of [`keep_alive`].
async fn renew_for(
    urls: &[String],
    start: Instant,
    until: Duration,
    index: usize,
    mut renewals: usize,
    logs: &Shared,
) {
    let (id, mut ttl) = {
        let l = logs.lock().unwrap();
        let lease = &l.leases[index];
        (lease.id, lease.renewals[0].ttl)
    };
    while renewals > 0 {
        tokio::time::sleep(Duration::from_millis(ttl as u64 * 1000 / 3)).await;
        if start.elapsed() >= until {
            return;
        }
        renewals -= 1;
        let sent = ms_since(start);
        let answer = renew(&urls[random_member(urls)], id, ttl).await;
        let mut l = logs.lock().unwrap();
        let lease = &mut l.leases[index];
        match answer {
            Ok(t) if t > 0 => {
                ttl = t;
                lease.renewals.push(Renewal {
                    sent,
                    answered: ms_since(start),
                    ttl: t,
                });
            }
            Ok(_) => {
                lease.failed.push((sent, "gone".into()));
                lease.seen_gone = Some(ms_since(start));
                return;
            }
            Err(why) => lease.failed.push((sent, why)),
        }
    }
}

/// One keep-alive on a fresh stream through `url`: the TTL answered (0: the lease is gone), or
/// why it failed (no connection, an error, no answer within a third of the TTL).
async fn renew(url: &str, id: i64, ttl: i64) -> Result<i64, String> {
    let mut lc = connect_lease(url, CONNECT_TIMEOUT)
        .await
        .ok_or("no connection")?;
    let wait = Duration::from_millis(ttl as u64 * 1000 / 3);
    tokio::time::timeout(wait, keep_alive_once(&mut lc, id))
        .await
        .map_err(|_| "timeout".to_string())?
}

/// Linearizable reads of the prefix through random members until the faulty phase ends.
pub(super) async fn reader(urls: Vec<String>, start: Instant, until: Duration, logs: Shared) {
    while start.elapsed() < until {
        read_once(&urls, start, &logs).await;
        let pause = madsim::rand::thread_rng().gen_range(20..150);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// One linearizable read of the prefix through a random member, recorded if it succeeds.
async fn read_once(urls: &[String], start: Instant, logs: &Shared) {
    let Some(mut kv) = connect_kv(&urls[random_member(urls)], CONNECT_TIMEOUT).await else {
        return;
    };
    let req = RangeRequest {
        keys_only: true,
        ..prefix_request(PREFIX)
    };
    let invoked = ms_since(start);
    if let Ok(Ok(r)) = tokio::time::timeout(REQUEST_TIMEOUT, kv.range(req)).await {
        let keys = r.into_inner().kvs.iter().map(|kv| text(&kv.key)).collect();
        logs.lock().unwrap().reads.push(Read {
            invoked,
            completed: ms_since(start),
            keys,
        });
    }
}
