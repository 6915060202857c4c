//! The store's own account of what happened: the final revision, and the prefix's history
//! rebuilt by reading it at every revision — as the run goes, when the workload compacts the
//! store behind what it has read.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::time::Duration;

use detcd::proto::etcdserverpb::{CompactionRequest, RangeRequest};
use detcd_jepsen::watch::WatchEvent;
use rand::Rng;
use tokio::time::Instant;

use super::events::{delete_event, put_event};
use super::{CONNECT_TIMEOUT, PREFIX, REQUEST_TIMEOUT};
use crate::cluster::wait_leader;
use crate::workloads::client::{
    connect_kv, get_request, prefix_request, random_member, revision, text,
};

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

/// The store's history of [`PREFIX`] rebuilt from the prefix's contents at every revision, as
/// far as it has been read: a key whose `mod_revision` is `r` was put at `r`; a key present at
/// `r - 1` and gone at `r` was deleted at `r`. Read as the run goes when the store is compacted
/// under the watchers (the revisions below a compaction cannot be read afterwards).
#[derive(Debug, Default)]
pub(super) struct Historian {
    /// The changes, by revision.
    pub events: Vec<WatchEvent>,
    /// The prefix's contents at `progress`: value and mod revision by key.
    before: BTreeMap<String, (String, i64)>,
    /// The newest revision read.
    pub progress: u64,
}

impl Historian {
    /// Reads the revisions after `progress` up to `last` from member `url`; what it read stays
    /// read if it fails midway.
    pub async fn advance(&mut self, url: &str, last: u64) -> Result<(), String> {
        if self.progress >= last {
            return Ok(());
        }
        let mut kv = connect_kv(url, CONNECT_TIMEOUT)
            .await
            .ok_or("no connection")?;
        let range = |revision: u64, serializable: bool| RangeRequest {
            revision: revision as i64,
            serializable,
            ..prefix_request(PREFIX)
        };
        // A linearizable read first: afterwards this member has applied `last`, so local reads
        // of every earlier revision are complete.
        tokio::time::timeout(REQUEST_TIMEOUT, kv.range(range(last, false)))
            .await
            .map_err(|_| "timeout".to_string())?
            .map_err(|e| e.to_string())?;
        for rev in self.progress + 1..=last {
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
                    self.events.push(put_event(rev, key, value));
                } else if self.before.get(key) != Some(&(value.clone(), *m)) {
                    return Err(format!(
                        "key {key} changed at revision {rev} without a new mod_revision"
                    ));
                }
            }
            for key in self.before.keys().filter(|k| !now.contains_key(*k)) {
                self.events.push(delete_event(rev, key));
            }
            self.before = now;
            self.progress = rev;
        }
        Ok(())
    }
}

/// The store's history of [`PREFIX`] up to revision `last`: `h` read on through the first
/// member that answers.
pub(super) async fn store_history(
    urls: &[String],
    last: u64,
    mut h: Historian,
) -> Result<Vec<WatchEvent>, String> {
    let mut errors = Vec::new();
    for url in urls {
        match h.advance(url, last).await {
            Ok(()) => return Ok(h.events),
            Err(e) => errors.push(format!("{url}: {e}")),
        }
    }
    Err(format!(
        "could not read the store's history: {}",
        errors.join("; ")
    ))
}

/// While the writers write (until `until` after `start`): now and then reads the history on
/// through a random member and compacts the store a little behind what it has read, so that
/// watchers resuming from old revisions are told they were compacted. Returns the history read,
/// the compactions acknowledged and the highest revision asked to compact to.
pub(super) async fn compact_behind(
    urls: Vec<String>,
    start: Instant,
    until: Duration,
) -> (Historian, usize, u64) {
    let mut h = Historian::default();
    let (mut compacted, mut done, mut asked) = (0, 0, 0);
    while start.elapsed() < until {
        let (pause, back) = {
            let mut rng = madsim::rand::thread_rng();
            (rng.gen_range(200..600), rng.gen_range(0..3))
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let url = &urls[random_member(&urls)];
        let Some(mut kv) = connect_kv(url, CONNECT_TIMEOUT).await else {
            continue;
        };
        let Ok(Ok(r)) = tokio::time::timeout(REQUEST_TIMEOUT, kv.range(get_request("\0"))).await
        else {
            continue;
        };
        let current = revision(r.into_inner().header);
        if h.advance(url, current).await.is_err() {
            continue;
        }
        let to = h.progress.saturating_sub(back);
        if to <= compacted {
            continue;
        }
        let req = CompactionRequest {
            revision: to as i64,
            physical: false,
        };
        asked = asked.max(to);
        if let Ok(Ok(_)) = tokio::time::timeout(REQUEST_TIMEOUT, kv.compact(req)).await {
            compacted = to;
            done += 1;
        }
    }
    (h, done, asked)
}
