//! Key permissions as etcd checks them: every permission of a user's roles becomes an interval
//! of keys, merged per access kind into a set of disjoint intervals; a request for one key is
//! allowed if an interval holds it, a request for a range if the union covers it whole.
//!
//! A permission's interval: no `range_end` is the key alone (`[key, key\0)`), `range_end` `\0`
//! is every key from `key` on, anything else is `[key, range_end)`. An empty `key` grants
//! nothing (etcd orders the empty key after every other key), which is why etcdctl sends `\0`
//! for an empty key.

use crate::proto::authpb::permission::Type;
use crate::proto::authpb::Permission;

/// One end of an interval: a key, or past every key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Bound {
    Key(Vec<u8>),
    End,
}

/// The interval `[begin, end)` of keys a request or a permission names; `None` if it names no
/// key at all.
fn interval(key: &[u8], range_end: &[u8]) -> Option<(Vec<u8>, Bound)> {
    if key.is_empty() {
        return None;
    }
    let end = if range_end.is_empty() {
        let mut next = key.to_vec();
        next.push(0);
        Bound::Key(next)
    } else if range_end == [0] {
        Bound::End
    } else {
        Bound::Key(range_end.to_vec())
    };
    if end <= Bound::Key(key.to_vec()) {
        return None;
    }
    Some((key.to_vec(), end))
}

/// Disjoint, sorted intervals: the union of some permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    intervals: Vec<(Vec<u8>, Bound)>,
}

impl KeySet {
    /// The union of `perms` (each as `(key, range_end)`), touching intervals joined.
    pub fn union<'a>(perms: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> KeySet {
        let mut all: Vec<(Vec<u8>, Bound)> = perms
            .into_iter()
            .filter_map(|(k, e)| interval(k, e))
            .collect();
        all.sort();
        let mut merged: Vec<(Vec<u8>, Bound)> = Vec::new();
        for (begin, end) in all {
            match merged.last_mut() {
                Some((_, last_end)) if Bound::Key(begin.clone()) <= *last_end => {
                    if end > *last_end {
                        *last_end = end;
                    }
                }
                _ => merged.push((begin, end)),
            }
        }
        KeySet { intervals: merged }
    }

    /// Whether the set allows the request `(key, range_end)`: its one key, or its whole range.
    pub fn allows(&self, key: &[u8], range_end: &[u8]) -> bool {
        let Some((begin, end)) = interval(key, range_end) else {
            return false;
        };
        // The interval that starts at or before `begin`, if any, must reach `end`.
        let i = self
            .intervals
            .partition_point(|(b, _)| b.as_slice() <= begin.as_slice());
        if i == 0 {
            return false;
        }
        let (_, reach) = &self.intervals[i - 1];
        *reach >= end && *reach > Bound::Key(begin)
    }
}

/// A user's merged permissions: what it may read and what it may write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPerms {
    /// Keys the user may read.
    pub read: KeySet,
    /// Keys the user may write.
    pub write: KeySet,
}

impl UserPerms {
    /// The merged permissions of `perms` (all of a user's roles).
    pub fn merge<'a>(perms: impl IntoIterator<Item = &'a Permission> + Clone) -> UserPerms {
        let of = |want: fn(Type) -> bool| {
            KeySet::union(
                perms
                    .clone()
                    .into_iter()
                    .filter(|p| want(Type::try_from(p.perm_type).unwrap_or(Type::Read)))
                    .map(|p| (&p.key[..], &p.range_end[..])),
            )
        };
        UserPerms {
            read: of(|t| matches!(t, Type::Read | Type::Readwrite)),
            write: of(|t| matches!(t, Type::Write | Type::Readwrite)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(perms: &[(&str, &str)]) -> KeySet {
        KeySet::union(perms.iter().map(|(k, e)| (k.as_bytes(), e.as_bytes())))
    }

    #[test]
    fn etcds_examples() {
        let single = set(&[("foo", "")]);
        assert!(single.allows(b"foo", b""));
        assert!(single.allows(b"foo", b"foo\0"));
        assert!(!single.allows(b"foo", b"fop"), "a prefix read needs more");
        assert!(!single.allows(b"foo", b"foo\0\0"));
        let prefix = set(&[("ro/", "ro0")]);
        assert!(prefix.allows(b"ro/a", b"ro/b"));
        assert!(prefix.allows(b"ro/", b"ro0"));
        assert!(!prefix.allows(b"ro/", b"ro1"));
        let from = set(&[("m", "\0")]);
        assert!(from.allows(b"n", b"\0"));
        assert!(from.allows(b"\xff\xff", b""));
        assert!(!from.allows(b"l", b"\0"));
        // Touching intervals of two roles join up; a gap does not.
        assert!(set(&[("b", "d"), ("d", "f")]).allows(b"b", b"f"));
        assert!(!set(&[("b", "d"), ("e", "f")]).allows(b"b", b"f"));
        // An empty key grants nothing; etcdctl's "" --prefix is ["\0", "\0"): everything.
        assert!(!set(&[("", "\0")]).allows(b"a", b""));
        assert!(set(&[("\0", "\0")]).allows(b"\0", b"\0"));
    }

    /// The keys of a small alphabet, for brute-force comparisons.
    fn keys() -> Vec<Vec<u8>> {
        let mut out = vec![];
        for a in b"abc" {
            out.push(vec![*a]);
            for b in b"abc" {
                out.push(vec![*a, *b]);
            }
        }
        out
    }

    fn in_interval(k: &[u8], key: &[u8], end: &[u8]) -> bool {
        match interval(key, end) {
            None => false,
            Some((b, e)) => k >= b.as_slice() && Bound::Key(k.to_vec()) < e,
        }
    }

    fn short() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'c')], 0..3)
    }

    proptest! {
        /// On a small keyspace, `allows` agrees with checking every key of the request against
        /// the permissions one by one.
        #[test]
        fn allows_is_coverage_of_every_key(
            perms in proptest::collection::vec((short(), short()), 0..5),
            key in short(),
            end in short(),
        ) {
            let s = KeySet::union(perms.iter().map(|(k, e)| (&k[..], &e[..])));
            prop_assume!(!key.is_empty() && (end.is_empty() || end > key));
            let wanted: Vec<Vec<u8>> = keys()
                .into_iter()
                .filter(|k| in_interval(k, &key, &end))
                .collect();
            let covered = wanted
                .iter()
                .all(|k| perms.iter().any(|(pk, pe)| in_interval(k, pk, pe)));
            // The brute force only sees keys of length <= 2: it can miss a gap longer keys fall
            // in, so only its "not covered" is conclusive.
            if !covered {
                prop_assert!(!s.allows(&key, &end));
            }
            if s.allows(&key, &end) {
                prop_assert!(covered);
            }
        }
    }
}
