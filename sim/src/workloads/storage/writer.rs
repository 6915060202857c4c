//! The writers (puts of unique keys through the members, each outcome recorded), and the final
//! reading of every member once they converge, which [`judge`](super::judge) judges.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use detcd::proto::etcdserverpb::RangeRequest;
use tokio::time::Instant;

use super::judge::{Put, Reading};
use crate::cluster::SimCluster;
use crate::workloads::client::{connect_kv, put_request, revision, text};

/// Prefix of every key the writers write.
pub(super) const PREFIX: &str = "k";
/// Per-request timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Keys per page of a read of everything.
const PAGE: i64 = 500;
/// Rounds (200 ms apart) the members get to converge after the crashes.
const ROUNDS: usize = 150;

/// The puts of every writer, in completion order.
pub(super) type Log = Arc<Mutex<Vec<Put>>>;

/// Writer `w`: puts `k<w>-<n>` through member `w % n`, moving on to the next member after a
/// failure, until `until`.
pub(super) async fn writer(w: u64, urls: Vec<String>, until: Instant, bytes: usize, log: Log) {
    let mut target = w as usize % urls.len();
    let mut kv = None;
    let mut n = 0u64;
    while Instant::now() < until {
        let Some(c) = kv.as_mut() else {
            kv = connect_kv(&urls[target], Duration::from_millis(500)).await;
            if kv.is_none() {
                target = (target + 1) % urls.len();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            continue;
        };
        let key = format!("{PREFIX}{w}-{n:06}");
        n += 1;
        let put = put_request(&key, &super::judge::value_of(&key, bytes));
        let revision = match tokio::time::timeout(REQUEST_TIMEOUT, c.put(put)).await {
            Ok(Ok(r)) => Some(revision(r.into_inner().header)),
            _ => None,
        };
        log.lock().unwrap().push(Put { key, revision });
        if revision.is_none() {
            kv = None;
            target = (target + 1) % urls.len();
        }
    }
}

/// Every key under [`PREFIX`] as member `url` serves it (linearizably, or locally if
/// `serializable`), page by page at the first page's revision; `None` if it does not answer.
async fn read_all(url: String, serializable: bool) -> Option<Reading> {
    let mut kv = connect_kv(&url, Duration::from_secs(1)).await?;
    let mut reading = Reading::default();
    let mut from = Bytes::from_static(PREFIX.as_bytes());
    loop {
        let req = RangeRequest {
            key: from.clone(),
            range_end: Bytes::from(detcd::io::disk::prefix_end(PREFIX.as_bytes())),
            limit: PAGE,
            revision: reading.revision,
            serializable,
            ..Default::default()
        };
        let r = tokio::time::timeout(REQUEST_TIMEOUT, kv.range(req))
            .await
            .ok()?
            .ok()?
            .into_inner();
        // Every page at the first page's revision: one consistent cut.
        reading.revision = r.header.map_or(0, |h| h.revision);
        for k in &r.kvs {
            reading
                .kvs
                .insert(text(&k.key), (text(&k.value), k.mod_revision, k.version));
        }
        match r.kvs.last() {
            Some(last) if r.more => {
                let mut next = last.key.to_vec();
                next.push(0);
                from = Bytes::from(next);
            }
            _ => return Some(reading),
        }
    }
}

/// Waits (bounded) until a linearizable read succeeds and every member serves locally exactly
/// what it returned (same keys, values, mod revisions, versions and store revision); returns
/// that reading, or what kept the members apart in the last round.
pub(super) async fn converged(cluster: &SimCluster) -> Result<Reading, Vec<String>> {
    let urls = cluster.client_urls();
    let mut last = Vec::new();
    'rounds: for _ in 0..ROUNDS {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut truth = None;
        for i in cluster.members() {
            truth = cluster.client(read_all(urls[i].clone(), false)).await;
            if truth.is_some() {
                break;
            }
        }
        let Some(truth) = truth else { continue };
        last.clear();
        for i in cluster.members() {
            let view = cluster.client(read_all(urls[i].clone(), true)).await;
            if view.as_ref() != Some(&truth) {
                last.push(format!(
                    "n{} serves {}, a linearizable read {} keys at revision {}",
                    i + 1,
                    view.map_or("nothing".to_string(), |v| format!(
                        "{} keys at revision {}",
                        v.kvs.len(),
                        v.revision
                    )),
                    truth.kvs.len(),
                    truth.revision
                ));
                continue 'rounds;
            }
        }
        return Ok(truth);
    }
    last.insert(0, format!("no convergence within {} s", ROUNDS / 5));
    Err(last)
}
