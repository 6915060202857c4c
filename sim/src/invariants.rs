//! Invariants checked while a run goes, not only at its end: the monitor polls every live
//! member and records a violation the moment it sees one.
//!
//! - **One leader per term**: no two members ever name different leaders for the same term.
//! - **Revisions never go back** on a member while it runs (a restart may come back at an
//!   older applied revision: the state machine is re-applied from the synced log).
//! - **Equal history at equal revisions**: members' `HashKV` at a revision they all reached
//!   (with the same compaction) is the same.
//! - **No acknowledged write lost** (checked at the end by [`acked_writes_survive`]): every
//!   put a client saw succeed is in the converged store, or was overwritten by a later one.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::time::Duration;

use detcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use detcd::proto::etcdserverpb::{HashKvRequest, StatusRequest};
use detcd_jepsen::kv::TxnOp;
use detcd_jepsen::{KvInput, KvOutput, Outcome};

use crate::cluster::SimCluster;
use crate::workloads::register::KvOp;

/// How long one poll waits for a member.
const CALL_TIMEOUT: Duration = Duration::from_millis(300);

/// What one member said in one poll.
#[derive(Debug, Clone, Copy)]
struct Seen {
    member_id: u64,
    leader: u64,
    term: u64,
    revision: i64,
}

/// The monitor's memory between polls, and what it found.
#[derive(Debug, Default)]
pub struct Monitor {
    /// The leader first named for each term, and by which member.
    leaders: BTreeMap<u64, (u64, usize)>,
    /// Per member: (incarnation, highest revision seen in it).
    revisions: BTreeMap<usize, (u64, i64)>,
    /// Polls made and hash comparisons that had at least two members to compare.
    pub polls: u64,
    /// Hash comparisons made.
    pub hash_checks: u64,
    /// Violations, in the order found.
    pub violations: Vec<String>,
}

async fn status(url: String) -> Option<Seen> {
    let mut c = MaintenanceClient::connect(url).await.ok()?;
    let s = tokio::time::timeout(CALL_TIMEOUT, c.status(StatusRequest {}))
        .await
        .ok()?
        .ok()?
        .into_inner();
    let h = s.header?;
    Some(Seen {
        member_id: h.member_id,
        leader: s.leader,
        term: s.raft_term,
        revision: h.revision,
    })
}

/// (hash, compact revision) of `url`'s store at `revision`.
async fn hash_kv(url: String, revision: i64) -> Option<(u32, i64)> {
    let mut c = MaintenanceClient::connect(url).await.ok()?;
    let r = tokio::time::timeout(CALL_TIMEOUT, c.hash_kv(HashKvRequest { revision }))
        .await
        .ok()?
        .ok()?
        .into_inner();
    Some((r.hash, r.compact_revision))
}

/// Each listed member's compacted revision (from HashKV at the newest revision), by position;
/// `None` for a member that did not answer.
pub async fn compacted(cluster: &SimCluster, members: &[usize]) -> Vec<(usize, Option<i64>)> {
    let urls = cluster.client_urls();
    let mut out = Vec::new();
    for &i in members {
        let c = cluster.client(hash_kv(urls[i].clone(), 0)).await;
        out.push((i, c.map(|(_, compacted)| compacted)));
    }
    out
}

impl Monitor {
    /// Polls the cluster every `every` until dropped (run it beside the nemesis).
    pub async fn run(&mut self, cluster: &SimCluster, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            self.poll(cluster).await;
        }
    }

    /// One round over every live, unfrozen member.
    pub async fn poll(&mut self, cluster: &SimCluster) {
        self.polls += 1;
        let urls = cluster.client_urls();
        let mut seen = Vec::new();
        for i in cluster.live() {
            if cluster.is_paused(i) {
                continue;
            }
            // A member restarted while it answered may have answered from either life.
            let incarnation = cluster.incarnation(i);
            if let Some(s) = cluster.client(status(urls[i].clone())).await {
                if cluster.incarnation(i) == incarnation {
                    seen.push((i, s, incarnation));
                }
            }
        }
        for (i, s, incarnation) in &seen {
            self.check_leader(*i, s);
            self.check_revision(*i, s, *incarnation);
        }
        // Compare histories at the lowest revision every answering member has reached.
        let Some(at) = seen.iter().map(|(_, s, _)| s.revision).min() else {
            return;
        };
        if seen.len() < 2 || at < 1 {
            return;
        }
        let mut hashes = Vec::new();
        for (i, _, _) in &seen {
            if let Some(h) = cluster.client(hash_kv(urls[*i].clone(), at)).await {
                hashes.push((*i, h));
            }
        }
        let Some(&(first, (hash, compacted))) = hashes.first() else {
            return;
        };
        self.hash_checks += 1;
        for (i, (h, c)) in &hashes[1..] {
            if *c == compacted && *h != hash {
                self.violations.push(format!(
                    "HashKV at revision {at}: n{} has {hash:08x}, n{} has {h:08x}",
                    first + 1,
                    i + 1
                ));
            }
        }
    }

    fn check_leader(&mut self, i: usize, s: &Seen) {
        if s.leader == 0 {
            return;
        }
        let (leader, by) = *self.leaders.entry(s.term).or_insert((s.leader, i));
        if leader != s.leader {
            self.violations.push(format!(
                "two leaders in term {}: n{} named {leader:x}, n{} (member {:x}) names {:x}",
                s.term,
                by + 1,
                i + 1,
                s.member_id,
                s.leader
            ));
        }
    }

    fn check_revision(&mut self, i: usize, s: &Seen, incarnation: u64) {
        let entry = self.revisions.entry(i).or_insert((incarnation, s.revision));
        if entry.0 != incarnation {
            *entry = (incarnation, s.revision);
        } else if s.revision < entry.1 {
            self.violations.push(format!(
                "n{}'s revision went back from {} to {} without a restart",
                i + 1,
                entry.1,
                s.revision
            ));
        } else {
            entry.1 = s.revision;
        }
    }
}

/// Every acknowledged put (plain, or by a compare-and-swap) is in `store` ((key, value, mod
/// revision) triples, as converged) or was overwritten — the key's mod revision is at least
/// the put's — or deleted after it: by an acknowledged delete at a later revision, or by one
/// with no answer (it may have taken effect at any time). Returns violations.
pub fn acked_writes_survive(ops: &[KvOp], store: &[(String, String, i64)]) -> Vec<String> {
    let mut acked: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
    let mut deletes: BTreeMap<&str, Vec<Option<u64>>> = BTreeMap::new();
    for op in ops {
        match (&op.input, &op.outcome) {
            (KvInput::Put { key, value }, Outcome::Ok(KvOutput::Put { revision: Some(r) })) => {
                let e = acked.entry(key.as_str()).or_insert((*r, value.as_str()));
                if *r > e.0 {
                    *e = (*r, value.as_str());
                }
            }
            (
                KvInput::Txn { success, .. },
                Outcome::Ok(KvOutput::Txn {
                    succeeded: true,
                    revision: Some(r),
                    ..
                }),
            ) => {
                for t in success {
                    if let TxnOp::Put { key, value } = t {
                        let e = acked.entry(key.as_str()).or_insert((*r, value.as_str()));
                        if *r > e.0 {
                            *e = (*r, value.as_str());
                        }
                    }
                }
            }
            (KvInput::Delete { key }, Outcome::Info) => {
                deletes.entry(key.as_str()).or_default().push(None)
            }
            (KvInput::Delete { key }, Outcome::Ok(KvOutput::Delete { deleted, revision }))
                if deleted.unwrap_or(1) > 0 =>
            {
                deletes.entry(key.as_str()).or_default().push(*revision);
            }
            _ => {}
        }
    }
    let mut lost = Vec::new();
    for (key, (rev, value)) in acked {
        let deleted_after = || {
            deletes
                .get(key)
                .is_some_and(|d| d.iter().any(|r| r.is_none_or(|r| r > rev)))
        };
        match store.iter().find(|(k, _, _)| k == key) {
            Some((_, _, m)) if *m >= rev as i64 => {}
            None if deleted_after() => {}
            found => lost.push(format!(
                "acknowledged put {key}={value} at revision {rev} was lost: the store has {found:?}"
            )),
        }
    }
    lost
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::register::acked::{delete, put};

    #[test]
    fn a_lost_acknowledged_put_is_found_and_an_overwritten_one_is_not() {
        let ops = vec![put("x", "a", 3), put("x", "b", 5), put("y", "c", 4)];
        let ok = vec![
            ("x".to_string(), "b".to_string(), 5),
            ("y".to_string(), "d".to_string(), 9),
        ];
        assert!(acked_writes_survive(&ops, &ok).is_empty());
        let lost = vec![("x".to_string(), "a".to_string(), 3)];
        let v = acked_writes_survive(&ops, &lost);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].contains("x=b at revision 5"), "{v:?}");
        assert!(v[1].contains("y=c"), "{v:?}");
        // A key deleted after the put is not lost; deleted before it, it is.
        let delete = |rev| delete("y", rev);
        let only_x = vec![("x".to_string(), "b".to_string(), 5)];
        let mut later = ops.clone();
        later.push(delete(6));
        assert!(acked_writes_survive(&later, &only_x).is_empty());
        let mut earlier = ops.clone();
        earlier.push(delete(2));
        assert_eq!(acked_writes_survive(&earlier, &only_x).len(), 1);
    }

    #[test]
    fn two_leaders_in_one_term_and_a_revision_going_back_are_violations() {
        let mut m = Monitor::default();
        let s = |leader, term, revision| Seen {
            member_id: 1,
            leader,
            term,
            revision,
        };
        m.check_leader(0, &s(7, 2, 10));
        m.check_leader(1, &s(7, 2, 10));
        m.check_leader(2, &s(8, 3, 10));
        assert!(m.violations.is_empty());
        m.check_leader(1, &s(9, 2, 10));
        assert_eq!(m.violations.len(), 1);
        m.check_revision(0, &s(7, 2, 10), 0);
        m.check_revision(0, &s(7, 2, 12), 0);
        m.check_revision(0, &s(7, 2, 5), 1);
        assert_eq!(m.violations.len(), 1, "a restart may come back older");
        m.check_revision(0, &s(7, 2, 4), 1);
        assert_eq!(m.violations.len(), 2);
    }
}
