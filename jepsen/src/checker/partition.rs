//! P-compositional partitioning (Horn and Kroening): operations whose
//! footprints share no key are checked separately, which turns one search
//! over the whole history into many small ones. Which keys an operation
//! touches, and whether it observes state shared by all keys, is the
//! model's to say ([`Model::footprint`]).

use crate::history::{History, Outcome};
use crate::model::Model;
use std::collections::BTreeMap;

/// One group of operations checked independently.
#[derive(Clone, Debug)]
pub(crate) struct Partition {
    /// The keys (empty when unpartitioned).
    pub keys: Vec<String>,
    /// Indices into the history, in history order.
    pub ops: Vec<usize>,
}

/// Splits a history P-compositionally (see [`crate::model::Footprint`]).
/// `Fail` operations and `Info` reads are left out: they cannot constrain
/// the verdict.
pub(crate) fn partition<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
) -> Vec<Partition> {
    let relevant: Vec<usize> = history
        .ops
        .iter()
        .enumerate()
        .filter(|(_, op)| match op.outcome {
            Outcome::Ok(_) => true,
            Outcome::Fail => false,
            Outcome::Info => !model.is_read_only(&op.input),
        })
        .map(|(i, _)| i)
        .collect();
    let footprints: Vec<_> = relevant
        .iter()
        .map(|&i| model.footprint(&history.ops[i].input, history.ops[i].outcome.output()))
        .collect();
    if footprints.iter().any(|f| f.global || f.keys.is_empty()) {
        let mut keys: Vec<String> = footprints
            .iter()
            .flat_map(|f| f.keys.iter().cloned())
            .collect();
        keys.sort();
        keys.dedup();
        return vec![Partition {
            keys,
            ops: relevant,
        }];
    }
    // Union-find over keys.
    let mut key_id: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &footprints {
        for k in &f.keys {
            let n = key_id.len();
            key_id.entry(k.as_str()).or_insert(n);
        }
    }
    let mut parent: Vec<usize> = (0..key_id.len()).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for f in &footprints {
        let first = key_id[f.keys[0].as_str()];
        for k in &f.keys[1..] {
            let a = find(&mut parent, first);
            let b = find(&mut parent, key_id[k.as_str()]);
            if a != b {
                parent[b] = a;
            }
        }
    }
    let mut by_root: BTreeMap<usize, usize> = BTreeMap::new(); // root -> partition index
    let mut parts: Vec<Partition> = Vec::new();
    for (j, &i) in relevant.iter().enumerate() {
        let root = find(&mut parent, key_id[footprints[j].keys[0].as_str()]);
        let idx = *by_root.entry(root).or_insert_with(|| {
            parts.push(Partition {
                keys: Vec::new(),
                ops: Vec::new(),
            });
            parts.len() - 1
        });
        parts[idx].ops.push(i);
    }
    for (k, &id) in &key_id {
        let root = find(&mut parent, id);
        if let Some(&idx) = by_root.get(&root) {
            parts[idx].keys.push((*k).to_string());
        }
    }
    parts
}
