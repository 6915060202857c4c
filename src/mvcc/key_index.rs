//! The history of one key, split into generations.
//!
//! A generation runs from a key's creation to its deletion (the tombstone). Worked example:
//!
//! ```text
//! put(a)@1.0  put(a)@2.0  delete(a)@3.0  put(a)@4.0  put(a)@5.0
//!
//! generation 0: 1.0 (version 1)  2.0 (version 2)  3.0 (tombstone)      — closed
//! generation 1: 4.0 (version 1)  5.0 (version 2)                       — live
//! ```
//!
//! Reading at revision 3 or 2 finds the last change at or before it: at 3 the tombstone (key
//! absent), at 2 the value written at 2.0. Compacting at 4 removes generation 0 entirely (its
//! tombstone is before 4) and nothing of generation 1 (4.0 is the newest change at or before 4,
//! so it must stay readable). Compacting at 5 would then remove 4.0. Compacting at 3 instead keeps
//! the tombstone at 3.0 (and drops 1.0 and 2.0): a watch from revision 3 must still see the
//! deletion, as etcd keeps it since etcd-io/etcd#18274 (the simulator's watch workload found
//! the same loss here); a lone tombstone read back from disk starts a generation of its own.
//!
//! Each change keeps its [`KeyValue`](crate::proto::mvccpb::KeyValue): keys and values are
//! reference-counted `Bytes`, so reads hand them out without copying.

use crate::proto::mvccpb::KeyValue;

use super::Revision;

/// One change to a key: a put (with the resulting key-value) or a tombstone.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// When it happened.
    pub rev: Revision,
    /// The key-value after a put; `None` for a tombstone.
    pub kv: Option<KeyValue>,
}

/// A run of changes from creation to (optionally) deletion.
#[derive(Debug, Clone, Default, PartialEq)]
struct Generation {
    /// Changes in revision order; only the last may be a tombstone.
    changes: Vec<Change>,
}

impl Generation {
    fn closed(&self) -> bool {
        self.changes.last().is_some_and(|c| c.kv.is_none())
    }

    fn first_main(&self) -> i64 {
        self.changes.first().map_or(i64::MAX, |c| c.rev.main)
    }
}

/// All retained changes of one key. Invariant: generations are in revision order, every
/// generation but the last is closed by a tombstone, and no generation is empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyHistory {
    generations: Vec<Generation>,
}

impl KeyHistory {
    /// The key-value visible at store revision `at`, if the key existed then.
    pub fn get(&self, at: i64) -> Option<&KeyValue> {
        self.change_at(at).and_then(|c| c.kv.as_ref())
    }

    /// The last change at or before `at`.
    fn change_at(&self, at: i64) -> Option<&Change> {
        let g = self
            .generations
            .iter()
            .rev()
            .find(|g| g.first_main() <= at)?;
        let idx = g.changes.partition_point(|c| c.rev.main <= at);
        g.changes.get(idx.checked_sub(1)?)
    }

    /// The live key-value now (after the newest change), if any.
    pub fn latest(&self) -> Option<&KeyValue> {
        self.generations.last()?.changes.last()?.kv.as_ref()
    }

    /// Records a put. `kv.mod_revision` must be newer than every change so far.
    pub fn put(&mut self, rev: Revision, kv: KeyValue) {
        debug_assert!(
            self.newest_rev().is_none_or(|r| r < rev),
            "revisions of a key only increase"
        );
        match self.generations.last_mut() {
            Some(g) if !g.closed() => g.changes.push(Change { rev, kv: Some(kv) }),
            _ => self.generations.push(Generation {
                changes: vec![Change { rev, kv: Some(kv) }],
            }),
        }
    }

    /// Records a deletion; the key must be live.
    pub fn tombstone(&mut self, rev: Revision) {
        let g = self
            .generations
            .last_mut()
            .expect("tombstone on a key with no history");
        assert!(!g.closed(), "tombstone on a deleted key");
        debug_assert!(g.changes.last().is_some_and(|c| c.rev < rev));
        g.changes.push(Change { rev, kv: None });
    }

    /// Records a tombstone read back from disk: on a live key it closes the key's generation;
    /// on a key with none (what came before it was compacted away, see the module docs) it is
    /// a generation of its own.
    pub fn restore_tombstone(&mut self, rev: Revision) {
        match self.generations.last() {
            Some(g) if !g.closed() => self.tombstone(rev),
            _ => self.generations.push(Generation {
                changes: vec![Change { rev, kv: None }],
            }),
        }
    }

    fn newest_rev(&self) -> Option<Revision> {
        Some(self.generations.last()?.changes.last()?.rev)
    }

    /// Drops every change that no read at or after `at` can see, returning the dropped
    /// revisions (with whether each was a tombstone) so their records can be removed from disk.
    pub fn compact(&mut self, at: i64, removed: &mut Vec<(Revision, bool)>) {
        let mut keep_from = 0;
        for (i, g) in self.generations.iter_mut().enumerate() {
            if g.first_main() > at {
                break;
            }
            // A generation deleted before `at` goes whole; one deleted at `at` keeps its
            // tombstone (the newest change at or before `at`, like any other).
            if g.closed() && g.changes.last().is_some_and(|c| c.rev.main < at) {
                removed.extend(g.changes.iter().map(|c| (c.rev, c.kv.is_none())));
                keep_from = i + 1;
                continue;
            }
            // The newest change at or before `at` stays; older ones go.
            let idx = g.changes.partition_point(|c| c.rev.main <= at);
            let keep = if idx < g.changes.len()
                && crate::io::canary::on(crate::io::canary::Canary::CompactionDropsNewest)
            {
                0
            } else {
                1
            };
            if idx > keep {
                removed.extend(
                    g.changes
                        .drain(..idx - keep)
                        .map(|c| (c.rev, c.kv.is_none())),
                );
            }
        }
        self.generations.drain(..keep_from);
    }

    /// True when no change is retained (the key can leave the index).
    pub fn is_empty(&self) -> bool {
        self.generations.is_empty()
    }

    /// Every retained change, oldest first.
    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.generations.iter().flat_map(|g| g.changes.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn kv(rev: i64, ver: i64, create: i64) -> KeyValue {
        KeyValue {
            key: Bytes::from_static(b"a"),
            create_revision: create,
            mod_revision: rev,
            version: ver,
            value: Bytes::from(format!("v{rev}")),
            lease: 0,
        }
    }

    fn example() -> KeyHistory {
        let mut h = KeyHistory::default();
        h.put(Revision::new(1, 0), kv(1, 1, 1));
        h.put(Revision::new(2, 0), kv(2, 2, 1));
        h.tombstone(Revision::new(3, 0));
        h.put(Revision::new(4, 0), kv(4, 1, 4));
        h.put(Revision::new(5, 0), kv(5, 2, 4));
        h
    }

    #[test]
    fn reads_find_the_last_change_at_or_before() {
        let h = example();
        assert!(h.get(0).is_none());
        assert_eq!(h.get(1).unwrap().mod_revision, 1);
        assert_eq!(h.get(2).unwrap().mod_revision, 2);
        assert!(h.get(3).is_none());
        assert_eq!(h.get(4).unwrap().version, 1);
        assert_eq!(h.get(99).unwrap().mod_revision, 5);
        assert_eq!(h.latest().unwrap().mod_revision, 5);
    }

    #[test]
    fn compaction_follows_the_worked_example() {
        let mut h = example();
        let mut removed = Vec::new();
        h.compact(2, &mut removed);
        assert_eq!(removed, vec![(Revision::new(1, 0), false)]);
        assert_eq!(h.get(2).unwrap().mod_revision, 2);
        removed.clear();
        h.compact(4, &mut removed);
        assert_eq!(
            removed,
            vec![(Revision::new(2, 0), false), (Revision::new(3, 0), true)]
        );
        assert_eq!(h.get(4).unwrap().mod_revision, 4);
        removed.clear();
        h.compact(5, &mut removed);
        assert_eq!(removed, vec![(Revision::new(4, 0), false)]);
        assert_eq!(h.changes().count(), 1);
        removed.clear();
        let mut d = example();
        d.compact(3, &mut removed);
        // The tombstone at the compacted revision stays: a watch from 3 sees the deletion.
        assert_eq!(
            removed,
            vec![(Revision::new(1, 0), false), (Revision::new(2, 0), false)]
        );
        assert!(d.get(3).is_none());
        assert_eq!(d.changes().next().map(|c| c.rev), Some(Revision::new(3, 0)));
        assert_eq!(d.get(4).unwrap().mod_revision, 4);
        removed.clear();
        d.compact(4, &mut removed);
        assert_eq!(removed, vec![(Revision::new(3, 0), true)]);
        // Read back from disk after that first compaction, the lone tombstone opens the history.
        let mut back = KeyHistory::default();
        back.restore_tombstone(Revision::new(3, 0));
        back.put(Revision::new(4, 0), kv(4, 1, 4));
        assert!(back.get(3).is_none());
        assert_eq!(back.get(4).unwrap().mod_revision, 4);
    }

    #[test]
    fn compacting_a_deleted_key_empties_it() {
        let mut h = KeyHistory::default();
        h.put(Revision::new(1, 0), kv(1, 1, 1));
        h.tombstone(Revision::new(2, 0));
        let mut removed = Vec::new();
        h.compact(1, &mut removed);
        assert!(removed.is_empty());
        // At the tombstone's revision the tombstone stays; after it, the key goes.
        h.compact(2, &mut removed);
        assert_eq!(removed, vec![(Revision::new(1, 0), false)]);
        assert!(!h.is_empty() && h.latest().is_none());
        h.compact(3, &mut removed);
        assert!(h.is_empty());
    }
}
