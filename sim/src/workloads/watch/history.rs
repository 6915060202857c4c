//! The store's own account of what happened: the final revision, and the prefix's history
//! rebuilt by reading it at every revision.

use std::collections::BTreeMap;
use std::time::Duration;

use detcd::proto::etcdserverpb::RangeRequest;
use detcd_jepsen::watch::WatchEvent;

use super::events::{delete_event, put_event};
use super::{CONNECT_TIMEOUT, PREFIX, REQUEST_TIMEOUT};
use crate::cluster::wait_leader;
use crate::workloads::client::{connect_kv, get_request, prefix_request, revision, text};

/// The final revision, from a linearizable read through any member (bounded retries).
pub(super) async fn final_revision(urls: &[String]) -> Option<u64> {
    wait_leader(urls).await;
    for _ in 0..50 {
        for url in urls {
            let Some(mut kv) = connect_kv(url, CONNECT_TIMEOUT).await else {
                continue;
            };
            let req = get_request("\0");
            if let Ok(Ok(r)) = tokio::time::timeout(REQUEST_TIMEOUT, kv.range(req)).await {
                return Some(revision(r.into_inner().header));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// The store's history of [`PREFIX`] up to revision `last`, rebuilt from the prefix's contents
/// at every revision: a key whose `mod_revision` is `r` was put at `r`; a key present at `r - 1`
/// and gone at `r` was deleted at `r`.
pub(super) async fn store_history(urls: &[String], last: u64) -> Result<Vec<WatchEvent>, String> {
    let mut errors = Vec::new();
    for url in urls {
        match history_from(url, last).await {
            Ok(h) => return Ok(h),
            Err(e) => errors.push(format!("{url}: {e}")),
        }
    }
    Err(format!(
        "could not read the store's history: {}",
        errors.join("; ")
    ))
}

/// [`store_history`] as member `url` tells it.
async fn history_from(url: &str, last: u64) -> Result<Vec<WatchEvent>, String> {
    let mut kv = connect_kv(url, CONNECT_TIMEOUT)
        .await
        .ok_or("no connection")?;
    let range = |revision: u64, serializable: bool| RangeRequest {
        revision: revision as i64,
        serializable,
        ..prefix_request(PREFIX)
    };
    // A linearizable read first: afterwards this member has applied `last`, so local reads of
    // every earlier revision are complete.
    tokio::time::timeout(REQUEST_TIMEOUT, kv.range(range(last, false)))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let mut events = Vec::new();
    let mut before: BTreeMap<String, (String, i64)> = BTreeMap::new();
    for rev in 1..=last {
        let r = tokio::time::timeout(REQUEST_TIMEOUT, kv.range(range(rev, true)))
            .await
            .map_err(|_| format!("timeout at revision {rev}"))?
            .map_err(|e| format!("revision {rev}: {e}"))?
            .into_inner();
        let now: BTreeMap<String, (String, i64)> = r
            .kvs
            .iter()
            .map(|kv| (text(&kv.key), (text(&kv.value), kv.mod_revision)))
            .collect();
        for (key, (value, m)) in &now {
            if *m == rev as i64 {
                events.push(put_event(rev, key, value));
            } else if before.get(key) != Some(&(value.clone(), *m)) {
                return Err(format!(
                    "key {key} changed at revision {rev} without a new mod_revision"
                ));
            }
        }
        for key in before.keys().filter(|k| !now.contains_key(*k)) {
            events.push(delete_event(rev, key));
        }
        before = now;
    }
    Ok(events)
}
