//! Judging the members' HashKV answers for data corruption, as etcd's corruption checks do
//! (pure; the calls to the peers are `raft::corrupt_check`).
//!
//! Every member that applied the same log holds the same revisions, so the hash of its key
//! history up to a revision is the same everywhere — once both sides compacted at the same
//! revision (compaction drops history, so hashes taken over different compactions differ
//! legitimately and are not compared).
//!
//! - At start (`--experimental-initial-corrupt-check`) a member asks its peers to hash its own
//!   revision; any peer with the same compaction and another hash means this member's data
//!   disagrees with the cluster's, and it refuses to start.
//! - Periodically (`--experimental-corrupt-check-time`) the leader hashes its store, asks every
//!   peer to hash the same revision, confirms it still leads and hashes again; a peer ahead of
//!   it, compacted further than it, or with another hash over the same compaction is corrupt —
//!   and so is the leader itself if its own hash of a revision changed. The first one found
//!   gets the CORRUPT alarm, which stops every member from serving.

use serde::{Deserialize, Serialize};

/// A member's hash of its key history up to a revision (its HashKV answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvHash {
    /// The member that hashed.
    pub member: u64,
    /// The member's current revision when it answered (the response header's).
    pub revision: i64,
    /// The hash of every revision up to the one asked for.
    pub hash: u32,
    /// The member's compacted revision.
    pub compact_revision: i64,
}

/// The peers whose hash of this member's revision shows that the two disagree: the same
/// compaction, another hash. `own` is this member's hash at its current revision.
pub fn initial_mismatches(own: &KvHash, peers: &[KvHash]) -> Vec<u64> {
    peers
        .iter()
        .filter(|p| p.hash != own.hash && p.compact_revision == own.compact_revision)
        .map(|p| p.member)
        .collect()
}

/// The member the leader raises the CORRUPT alarm for after a periodic check, if any.
/// `before` is the leader's hash at its current revision when it asked the peers (who hashed
/// that revision), `after` its hash once it confirmed its leadership.
pub fn periodic_suspect(before: &KvHash, after: &KvHash, peers: &[KvHash]) -> Option<u64> {
    // The same revision, the same compaction, another hash: the leader's own data changed
    // under it.
    if after.revision == before.revision
        && after.compact_revision == before.compact_revision
        && after.hash != before.hash
    {
        return Some(before.member);
    }
    peers
        .iter()
        .find(|p| {
            // No follower can be ahead of its leader, or have compacted further.
            p.revision > after.revision
                || p.compact_revision > after.compact_revision
                || (p.compact_revision == before.compact_revision && p.hash != before.hash)
        })
        .map(|p| p.member)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(member: u64, revision: i64, hash: u32, compact_revision: i64) -> KvHash {
        KvHash {
            member,
            revision,
            hash,
            compact_revision,
        }
    }

    #[test]
    fn at_start_only_a_hash_over_the_same_compaction_counts() {
        let me = h(1, 10, 0xaa, 3);
        assert!(initial_mismatches(&me, &[h(2, 12, 0xaa, 3), h(3, 10, 0xaa, 3)]).is_empty());
        assert_eq!(initial_mismatches(&me, &[h(2, 12, 0xbb, 3)]), vec![2]);
        // A peer that compacted since hashes less history: not comparable.
        assert!(initial_mismatches(&me, &[h(2, 12, 0xbb, 8)]).is_empty());
    }

    #[test]
    fn the_leader_alarms_the_first_member_that_cannot_be_right() {
        let before = h(1, 10, 0xaa, 3);
        let same = before;
        assert_eq!(periodic_suspect(&before, &same, &[h(2, 10, 0xaa, 3)]), None);
        // A follower behind the leader hashed the same revision: fine.
        assert_eq!(periodic_suspect(&before, &same, &[h(2, 9, 0xaa, 3)]), None);
        assert_eq!(
            periodic_suspect(&before, &same, &[h(2, 10, 0xaa, 3), h(3, 10, 0xbb, 3)]),
            Some(3)
        );
        assert_eq!(
            periodic_suspect(&before, &same, &[h(2, 11, 0xaa, 3)]),
            Some(2),
            "ahead of its leader"
        );
        assert_eq!(
            periodic_suspect(&before, &same, &[h(2, 10, 0xaa, 5)]),
            Some(2),
            "compacted past its leader"
        );
        // The leader moved on meanwhile (a write, a compaction): a peer's later compaction up
        // to the leader's is not suspicious, nor a hash over another compaction.
        let moved = h(1, 12, 0xcc, 5);
        assert_eq!(
            periodic_suspect(&before, &moved, &[h(2, 10, 0xdd, 5)]),
            None
        );
        // Its own hash of the same revision changed: the leader is corrupt.
        let changed = h(1, 10, 0xbb, 3);
        assert_eq!(
            periodic_suspect(&before, &changed, &[h(2, 10, 0xaa, 3)]),
            Some(1)
        );
    }
}
