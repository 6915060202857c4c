//! The checks beyond detcd-jepsen's watch guarantees: acknowledged writes are in the store's
//! history, whole, and every `prev_kv` delivered is right.

use std::collections::{BTreeMap, BTreeSet};

use detcd_jepsen::watch::{EventKind, WatchEvent};

use super::{Acked, WatcherLog};

/// Every acknowledged write is in the store's history at the revision its response named, whole
/// (a transaction's changes all at that revision, and nothing else there).
pub(super) fn check_acked(acked: &[Acked], truth: &[WatchEvent]) -> Vec<String> {
    let mut at: BTreeMap<u64, BTreeSet<(String, EventKind, Option<String>)>> = BTreeMap::new();
    for e in truth {
        at.entry(e.revision)
            .or_default()
            .insert((e.key.clone(), e.kind, e.value.clone()));
    }
    let mut problems = Vec::new();
    let mut seen_revisions = BTreeMap::new();
    for a in acked {
        let want: BTreeSet<(String, EventKind, Option<String>)> = a
            .events
            .iter()
            .map(|e| (e.key.clone(), e.kind, e.value.clone()))
            .collect();
        let got = at.get(&a.revision).cloned().unwrap_or_default();
        if want != got {
            problems.push(format!(
                "[durable] acknowledged {} at revision {}: the store's history has {got:?} there, \
                 expected {want:?}",
                a.what, a.revision
            ));
        }
        if let Some(other) = seen_revisions.insert(a.revision, a.what.clone()) {
            problems.push(format!(
                "[durable] {} and {other} were both acknowledged at revision {}",
                a.what, a.revision
            ));
        }
    }
    problems
}

/// Every `prev_kv` delivered is the key's state just before the event, per the store's history
/// — or, as etcd does, none when the revision before the event may have been compacted away by
/// the time it was sent (`compacted` is the highest revision the workload asked to compact to).
pub(super) fn check_prev_kvs(
    logs: &[WatcherLog],
    truth: &[WatchEvent],
    compacted: u64,
) -> Vec<String> {
    let mut history: BTreeMap<&str, Vec<&WatchEvent>> = BTreeMap::new();
    for e in truth {
        history.entry(e.key.as_str()).or_default().push(e);
    }
    let mut problems = Vec::new();
    for l in logs {
        for (stream, rev, key, prev) in &l.prev_kvs {
            let expected = history.get(key.as_str()).and_then(|h| {
                h.iter()
                    .rev()
                    .find(|e| e.revision < *rev)
                    .filter(|e| e.kind == EventKind::Put)
                    .map(|e| (e.value.clone().unwrap_or_default(), e.revision))
            });
            let compacted_away = prev.is_none() && compacted >= *rev;
            if *prev != expected && !compacted_away {
                problems.push(format!(
                    "[prev_kv] {stream}: event {key}@{rev} carried prev_kv {prev:?}, but the key \
                     was {expected:?} before it"
                ));
            }
        }
    }
    problems
}
