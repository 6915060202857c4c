//! The verdict on the writers' puts against what the converged members serve: nothing
//! acknowledged lost, nothing applied twice, nothing that no writer wrote.
//!
//! Every put is of a key of its own and nothing else writes or deletes, so a store that applied
//! each entry exactly once has every key at version 1, and its mod revisions are exactly
//! `2..=revision` (the empty store is at revision 1; each put takes the next). A put applied
//! twice shows as a version of 2 and a revision with no key; one skipped and re-applied later
//! as a mod revision other than the one acknowledged.

use std::collections::{BTreeMap, BTreeSet};

/// One put and what came of it.
#[derive(Debug, Clone)]
pub(super) struct Put {
    /// Its key, written by no other put.
    pub key: String,
    /// The revision it was acknowledged at; `None` if it timed out or failed (it may still
    /// have taken effect).
    pub revision: Option<u64>,
}

/// What a member serves under the writers' prefix, at one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Reading {
    /// The store's revision the reading was made at.
    pub revision: i64,
    /// Key → (value, mod revision, version).
    pub kvs: BTreeMap<String, (String, i64, i64)>,
}

/// The value written at `key`: the key, repeated to `bytes` bytes.
pub(super) fn value_of(key: &str, bytes: usize) -> String {
    key.chars().cycle().take(bytes.max(key.len())).collect()
}

/// The problems with `data` as the outcome of `puts` (values of `bytes` bytes); none if every
/// acknowledged put is there at its revision and every entry was applied exactly once.
pub(super) fn judge(puts: &[Put], data: &Reading, bytes: usize) -> Vec<String> {
    let mut problems = Vec::new();
    let written: BTreeMap<&str, Option<u64>> =
        puts.iter().map(|p| (p.key.as_str(), p.revision)).collect();
    for (key, rev) in written.iter().filter_map(|(k, r)| r.map(|r| (k, r))) {
        match data.kvs.get(*key) {
            None => problems.push(format!("acknowledged put {key} (revision {rev}) lost")),
            Some((_, at, _)) if *at as u64 != rev => problems.push(format!(
                "acknowledged put {key} (revision {rev}) reads back at revision {at}"
            )),
            Some(_) => {}
        }
    }
    let mut revisions = BTreeSet::new();
    for (key, (v, at, version)) in &data.kvs {
        if !written.contains_key(key.as_str()) || *v != value_of(key, bytes) {
            problems.push(format!("{key} was never written with the value it has"));
        }
        if *version != 1 {
            problems.push(format!(
                "{key}, put once, is at version {version} (applied {version} times)"
            ));
        }
        if !revisions.insert(*at) {
            problems.push(format!("{key} shares mod revision {at} with another key"));
        }
    }
    // Revision 1 is the empty store's; each applied put took one more.
    let expected: BTreeSet<i64> = (2..=data.revision).collect();
    if revisions != expected {
        let skipped: Vec<_> = expected.difference(&revisions).take(5).collect();
        let beyond: Vec<_> = revisions.difference(&expected).take(5).collect();
        problems.push(format!(
            "{} keys at store revision {}: revisions without a key {skipped:?}, keys beyond \
             the store's revision {beyond:?} (an entry applied twice or out of order)",
            data.kvs.len(),
            data.revision
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const BYTES: usize = 8;

    fn put(key: &str, revision: Option<u64>) -> Put {
        Put {
            key: key.to_string(),
            revision,
        }
    }

    /// A store holding `keys` as (key, mod revision, version), at `revision`.
    fn reading(revision: i64, keys: &[(&str, i64, i64)]) -> Reading {
        Reading {
            revision,
            kvs: keys
                .iter()
                .map(|&(k, at, v)| (k.to_string(), (value_of(k, BYTES), at, v)))
                .collect(),
        }
    }

    #[test]
    fn exactly_once_and_nothing_lost_passes() {
        let puts = [
            put("a", Some(2)),
            put("b", None),
            put("c", Some(4)),
            put("d", None),
        ];
        // b took effect although its client never heard; d did not.
        let data = reading(4, &[("a", 2, 1), ("b", 3, 1), ("c", 4, 1)]);
        assert_eq!(judge(&puts, &data, BYTES), Vec::<String>::new());
    }

    #[test]
    fn a_lost_acknowledged_put_fails() {
        let puts = [put("a", Some(2)), put("b", Some(3))];
        let data = reading(2, &[("a", 2, 1)]);
        let problems = judge(&puts, &data, BYTES);
        assert_eq!(problems, ["acknowledged put b (revision 3) lost"]);
    }

    #[test]
    fn a_put_applied_twice_fails() {
        let puts = [put("a", Some(2)), put("b", Some(3))];
        // b's entry re-applied after a restart: version 2, and a revision beyond its put.
        let data = reading(4, &[("a", 2, 1), ("b", 4, 2)]);
        let problems = judge(&puts, &data, BYTES);
        assert!(
            problems.iter().any(|p| p.contains("version 2")),
            "{problems:?}"
        );
        assert!(problems
            .iter()
            .any(|p| p.contains("reads back at revision 4")));
        assert!(problems.iter().any(|p| p.contains("without a key [3]")));
    }

    #[test]
    fn a_revision_applied_without_its_key_fails() {
        // Something took revision 3 and left nothing: an entry applied and then lost while the
        // revision counter survived, or a write no writer made.
        let puts = [put("a", Some(2)), put("c", Some(4))];
        let data = reading(4, &[("a", 2, 1), ("c", 4, 1)]);
        let problems = judge(&puts, &data, BYTES);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("without a key [3]"));
    }

    #[test]
    fn a_key_no_writer_wrote_fails() {
        let data = reading(2, &[("z", 2, 1)]);
        let problems = judge(&[], &data, BYTES);
        assert_eq!(problems, ["z was never written with the value it has"]);
    }
}
