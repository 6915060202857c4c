//! The KV model's state: the store's revision and its live keys
//! ([`KvState`]), each with its value and `mod_revision` ([`KeyState`]).
//! Kept apart from the model's rules so that what a state *is* (and why it
//! is a sorted vector) reads on its own.

use super::value::Value;
use serde::Serialize;
use std::sync::Arc;

/// A key's stored data.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct KeyState {
    /// The value.
    pub value: Value,
    /// Revision of the last write (0 when revisions are not tracked).
    pub mod_revision: u64,
}

/// The whole store: the global revision and the live keys (kept sorted in
/// a vector: model states are cloned on every step, and partitions usually
/// hold one or a few keys).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct KvState {
    /// The store's current revision (constant when not tracked).
    pub revision: u64,
    /// Live keys, sorted by key.
    pub(super) data: Vec<(Arc<str>, KeyState)>,
}

impl KvState {
    /// The live key `key`, if any.
    pub fn get(&self, key: &str) -> Option<&KeyState> {
        self.data
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &self.data[i].1)
    }

    /// Live keys in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &KeyState)> {
        self.data.iter().map(|(k, v)| (&**k, v))
    }

    /// Sets a key.
    pub fn insert(&mut self, key: &str, v: KeyState) {
        match self.data.binary_search_by(|(k, _)| (**k).cmp(key)) {
            Ok(i) => self.data[i].1 = v,
            Err(i) => self.data.insert(i, (Arc::from(key), v)),
        }
    }

    /// Removes a key; returns whether it existed.
    pub fn remove(&mut self, key: &str) -> bool {
        match self.data.binary_search_by(|(k, _)| (**k).cmp(key)) {
            Ok(i) => {
                self.data.remove(i);
                true
            }
            Err(_) => false,
        }
    }
}
