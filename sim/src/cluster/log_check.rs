//! Raft's log invariants checked on the members' disks, independently of the members' own view:
//! each WAL is read back (from a copy, so nothing the check does can touch the member) and
//!
//! - within one log, terms never decrease with the index, and no entry is from a term later
//!   than the member's persisted vote (entries are accepted only from the leader it voted for,
//!   or a later one, after recording that vote);
//! - across logs, raft's Log Matching property holds: two logs with an entry of the same index
//!   and term agree on every earlier entry they both hold — what a truncation that left a
//!   stale suffix behind, or an entry written over without its successors, would break.
//!
//! A WAL that does not read back (a fault in force corrupts reads, say) is not judged here:
//! whether its member may refuse to start is the runner's storage check.

use std::collections::BTreeMap;

use detcd::io::fs::{Dir, SimDir};
use detcd::raft::wal::recover::recover;

use super::SimCluster;

/// One member's log as its WAL holds it: term by index, the vote's term, the purge point.
#[derive(Debug, Clone, Default)]
pub struct LogView {
    /// Entries after the purge point: term by index.
    pub terms: BTreeMap<u64, u64>,
    /// The persisted vote's term (0 if none).
    pub vote_term: u64,
    /// The index entries were purged up to, if any.
    pub purged: Option<u64>,
}

/// Reads the WAL in `dir` back as a member would at start, from a copy. `None` if it does not
/// read back.
pub async fn read_log(dir: &SimDir) -> Option<LogView> {
    let from = Dir::Sim(dir.clone());
    let copy = Dir::Sim(SimDir::new());
    for name in from.list().ok()? {
        if !name.ends_with(".wal") {
            continue;
        }
        let data = from.read(&name).ok()?;
        copy.create(&name, data.len() as u64, &data).await.ok()?;
    }
    let rec = recover(&copy).await.ok()?;
    Some(LogView {
        terms: rec
            .entries
            .iter()
            .map(|(i, e)| (*i, e.log_id.leader_id.term))
            .collect(),
        vote_term: rec.state.vote.map_or(0, |v| v.leader_id.term),
        purged: rec.state.purged.map(|p| p.index),
    })
}

/// What is wrong within one log (`who` names the member in messages).
pub fn check_one(who: &str, log: &LogView) -> Vec<String> {
    let mut problems = Vec::new();
    let mut last: Option<(u64, u64)> = None;
    for (&index, &term) in &log.terms {
        if let Some((i, t)) = last {
            if term < t {
                problems.push(format!(
                    "{who}'s log goes back in term: entry {i} has term {t}, entry {index} term {term}"
                ));
            }
        }
        last = Some((index, term));
    }
    if let Some((index, term)) = last {
        if term > log.vote_term {
            problems.push(format!(
                "{who}'s last entry {index} has term {term}, after the vote it persisted (term {})",
                log.vote_term
            ));
        }
    }
    problems
}

/// Where two logs break Log Matching: an entry of the same index and term in both, with an
/// earlier index where they differ. (`logs` are named by member.)
pub fn check_matching(logs: &[(String, LogView)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (a, (who_a, la)) in logs.iter().enumerate() {
        for (who_b, lb) in &logs[a + 1..] {
            // The newest index where both hold the same term: everything before must agree.
            let Some(matched) = la
                .terms
                .iter()
                .rev()
                .find(|(i, t)| lb.terms.get(i) == Some(t))
                .map(|(i, _)| *i)
            else {
                continue;
            };
            if let Some((i, ta)) = la
                .terms
                .range(..matched)
                .find(|(i, t)| lb.terms.get(i).is_some_and(|tb| tb != *t))
            {
                problems.push(format!(
                    "{who_a} and {who_b} both hold entry {matched} of the same term, but entry {i} \
                     has term {ta} in {who_a}'s log and {} in {who_b}'s",
                    lb.terms[i]
                ));
            }
        }
    }
    problems
}

/// Every member's log (removed and stopped members included: raft's invariants hold for every
/// log that was ever part of the cluster), each checked alone and all against each other.
/// Returns the violations and how many logs were read back.
pub async fn check_cluster(cluster: &SimCluster) -> (Vec<String>, usize) {
    let mut logs = Vec::new();
    let mut problems = Vec::new();
    for i in 0..cluster.len() {
        let Some(node) = cluster.node(i) else {
            continue;
        };
        if let Some(view) = read_log(&node.disk.files()).await {
            let who = format!("n{}", i + 1);
            problems.extend(check_one(&who, &view));
            logs.push((who, view));
        }
    }
    problems.extend(check_matching(&logs));
    (problems, logs.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(terms: &[(u64, u64)], vote_term: u64) -> LogView {
        LogView {
            terms: terms.iter().copied().collect(),
            vote_term,
            purged: None,
        }
    }

    #[test]
    fn a_log_must_not_go_back_in_term_nor_run_ahead_of_its_vote() {
        assert!(check_one("n1", &log(&[(1, 1), (2, 1), (3, 2)], 2)).is_empty());
        assert_eq!(check_one("n1", &log(&[(1, 2), (2, 1)], 2)).len(), 1);
        assert_eq!(check_one("n1", &log(&[(1, 1), (2, 3)], 2)).len(), 1);
    }

    #[test]
    fn logs_that_match_at_an_index_must_match_before_it() {
        let a = log(&[(1, 1), (2, 1), (3, 2), (4, 2)], 2);
        // Diverged after 3 (an uncommitted suffix of another term): allowed.
        let b = log(&[(1, 1), (2, 1), (3, 2), (4, 3)], 3);
        // Purged up to 2: only what both hold is compared.
        let c = log(&[(3, 2)], 2);
        let named = |v: Vec<LogView>| -> Vec<(String, LogView)> {
            v.into_iter()
                .enumerate()
                .map(|(i, l)| (format!("n{}", i + 1), l))
                .collect()
        };
        assert!(check_matching(&named(vec![a.clone(), b, c])).is_empty());
        // Agrees at 4, differs at 2: a stale entry survived.
        let bad = log(&[(1, 1), (2, 3), (3, 2), (4, 2)], 3);
        let found = check_matching(&named(vec![a, bad]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("entry 2"), "{found:?}");
    }
}
