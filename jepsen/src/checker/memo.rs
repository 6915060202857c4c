//! The memo of the search: every configuration (set of linearized
//! operations, model state) already explored, so that no configuration is
//! explored twice. Keys are kept small ([`Bits`]) and carry their hash
//! (an incrementally maintained Zobrist hash of the set mixed with a hash
//! of the state), because on big histories the memo is most of the
//! checker's memory.

use crate::hash::{fast_hash, BuildPassThrough};
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

/// The set of linearized ops as stored in the memo. Ops are numbered in
/// invoke order and mostly placed in that order, so the set is stored as
/// "all ops in the first `start` words" plus the words after that up to the
/// last set bit; short remainders are stored inline. The encoding is
/// canonical (equal sets give equal keys) and keeps memo entries small even
/// for histories with tens of thousands of ops.
#[derive(PartialEq, Eq)]
enum Bits {
    Inline { start: u32, words: [u64; 3] },
    Heap { start: u32, words: Box<[u64]> },
}

impl Bits {
    fn from_words(w: &[u64]) -> Bits {
        let start = w.iter().position(|&x| x != u64::MAX).unwrap_or(w.len());
        let end = w
            .iter()
            .rposition(|&x| x != 0)
            .map_or(start, |e| (e + 1).max(start));
        let rest = &w[start..end];
        let start = start as u32;
        if rest.len() <= 3 {
            let mut words = [0u64; 3];
            words[..rest.len()].copy_from_slice(rest);
            Bits::Inline { start, words }
        } else {
            Bits::Heap {
                start,
                words: rest.to_vec().into_boxed_slice(),
            }
        }
    }
}

/// A memo entry: the configuration and its precomputed hash.
pub(super) struct CacheKey<S> {
    hash: u64,
    bits: Bits,
    state: S,
}

impl<S> Hash for CacheKey<S> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.hash);
    }
}

impl<S: Eq> PartialEq for CacheKey<S> {
    fn eq(&self, o: &Self) -> bool {
        self.hash == o.hash && self.bits == o.bits && self.state == o.state
    }
}

impl<S: Eq> Eq for CacheKey<S> {}

/// Records the configuration "current set plus op `c`, in state `ns`" in
/// the memo; false if it was already there (already explored).
pub(super) fn memo_insert<S: Clone + Eq + Hash>(
    cache: &mut HashSet<CacheKey<S>, BuildPassThrough>,
    lin: &mut [u64],
    zob: u64,
    c: usize,
    ns: &S,
) -> bool {
    lin[c / 64] |= 1 << (c % 64);
    let key = CacheKey {
        hash: zob ^ fast_hash(ns),
        bits: Bits::from_words(lin),
        state: ns.clone(),
    };
    lin[c / 64] &= !(1 << (c % 64));
    cache.insert(key)
}
