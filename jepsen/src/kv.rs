//! A multi-key key/value model with etcd semantics: get/put/delete,
//! transactions with compares on value or `mod_revision`, and a global
//! revision that increases by one per successful write (a transaction with
//! writes counts once; deleting an absent key does not count). It also
//! supports `append`, used by porcupine's kv histories.
//!
//! # Partitioning and revisions
//!
//! Operations on one key are checked per key (P-compositionality), and a
//! transaction touching several keys joins their partitions. This is sound
//! only while no operation *observes* the global revision: a revision
//! returned by a put, a `mod_revision` returned by a get, a response header
//! revision, or a compare on `mod_revision` ties keys together through the
//! shared counter. If any operation in the history does, the footprint is
//! marked global and the whole history is checked as **one partition**
//! against the exact model (revisions included). Nothing is approximated,
//! so verdicts stay exact either way. When no operation observes revisions,
//! [`KvModel::for_history`] also turns revision tracking off, which keeps
//! states smaller and the memo more effective.

use crate::history::History;
use crate::model::{Footprint, Model};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A comparison operator in a transaction compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CmpOp {
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
    /// `<`
    Less,
    /// `>`
    Greater,
}

impl CmpOp {
    fn eval<T: Ord>(self, a: &T, b: &T) -> bool {
        match self {
            CmpOp::Equal => a == b,
            CmpOp::NotEqual => a != b,
            CmpOp::Less => a < b,
            CmpOp::Greater => a > b,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            CmpOp::Equal => "==",
            CmpOp::NotEqual => "!=",
            CmpOp::Less => "<",
            CmpOp::Greater => ">",
        }
    }
}

/// What a compare looks at.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareTarget {
    /// The key's value, compared byte-wise. As in etcd (`applyCompare`:
    /// "always fail if comparing a value on a key/keys that doesn't
    /// exist"), **every** value compare on a missing key is false, whatever
    /// the operator: `value(k) != "x"` is false when `k` does not exist.
    /// etcd has no "value is absent" target; compare `mod_revision == 0`
    /// for that.
    Value(String),
    /// The key's `mod_revision`; a missing key compares as 0 (as etcd does
    /// for its revision-like targets).
    ModRevision(u64),
}

/// One compare of a transaction: `key <op> target`. Compares name a
/// single key; etcd's range compares (`range_end`) are not modeled.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Compare {
    /// The key compared.
    pub key: String,
    /// The operator.
    pub op: CmpOp,
    /// What is compared and against which constant.
    pub target: CompareTarget,
}

/// An operation inside a transaction branch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum TxnOp {
    /// Read a key.
    Get {
        /// The key.
        key: String,
    },
    /// Write a key.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Delete a key.
    Delete {
        /// The key.
        key: String,
    },
}

impl TxnOp {
    fn key(&self) -> &str {
        match self {
            TxnOp::Get { key } | TxnOp::Put { key, .. } | TxnOp::Delete { key } => key,
        }
    }
}

/// The result of one operation inside a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum TxnOpResult {
    /// A get's result.
    Get {
        /// The value, `None` if absent.
        value: Option<String>,
        /// Its `mod_revision`, if recorded.
        #[serde(default)]
        mod_revision: Option<u64>,
    },
    /// A put happened.
    Put,
    /// A delete's result.
    Delete {
        /// Keys deleted (0 or 1), if recorded.
        #[serde(default)]
        deleted: Option<u64>,
    },
}

/// A request to the KV store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum KvInput {
    /// Read one key.
    Get {
        /// The key.
        key: String,
    },
    /// Write one key.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Delete one key.
    Delete {
        /// The key.
        key: String,
    },
    /// Append to a key's value (absent counts as empty); not an etcd
    /// operation, used by porcupine's kv histories.
    Append {
        /// The key.
        key: String,
        /// The suffix.
        value: String,
    },
    /// An etcd transaction: if all compares hold run `success`, else
    /// `failure`, atomically, at one revision.
    Txn {
        /// The guard.
        compares: Vec<Compare>,
        /// Ops when the guard holds.
        success: Vec<TxnOp>,
        /// Ops when it does not.
        failure: Vec<TxnOp>,
    },
}

/// A response from the KV store. Revision fields are optional: `None`
/// means "not recorded", and is not checked.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum KvOutput {
    /// A get's result.
    Get {
        /// The value, `None` if absent.
        value: Option<String>,
        /// The key's `mod_revision` (0 if absent), if recorded.
        #[serde(default)]
        mod_revision: Option<u64>,
        /// The response header revision (the store's revision), if recorded.
        #[serde(default)]
        revision: Option<u64>,
    },
    /// A put's result.
    Put {
        /// The revision the put created, if recorded.
        #[serde(default)]
        revision: Option<u64>,
    },
    /// A delete's result.
    Delete {
        /// Keys deleted (0 or 1), if recorded.
        #[serde(default)]
        deleted: Option<u64>,
        /// The header revision after the delete, if recorded.
        #[serde(default)]
        revision: Option<u64>,
    },
    /// An append's result.
    Append {
        /// The revision it created, if recorded.
        #[serde(default)]
        revision: Option<u64>,
    },
    /// A transaction's result.
    Txn {
        /// Whether the compares held.
        succeeded: bool,
        /// Per-op results of the branch taken; empty = not recorded.
        #[serde(default)]
        results: Vec<TxnOpResult>,
        /// The header revision after the transaction, if recorded.
        #[serde(default)]
        revision: Option<u64>,
    },
}

/// Base of the polynomial string hash used by [`Value`].
const POLY: u64 = 0x0100_0000_01b3_0001;

fn poly_hash(s: &str) -> u64 {
    s.bytes().fold(0u64, |h, b| {
        h.wrapping_mul(POLY).wrapping_add(u64::from(b) + 1)
    })
}

fn poly_pow(mut n: usize) -> u64 {
    let (mut acc, mut base) = (1u64, POLY);
    while n > 0 {
        if n & 1 == 1 {
            acc = acc.wrapping_mul(base);
        }
        base = base.wrapping_mul(base);
        n >>= 1;
    }
    acc
}

/// A stored value: an immutable string shared between model states (cloning
/// is a reference-count bump) with a cached polynomial hash, so that long
/// values (porcupine's append histories) are cheap to copy, hash and extend.
#[derive(Clone)]
pub struct Value {
    s: Arc<str>,
    h: u64,
}

impl Value {
    /// Wraps a string.
    pub fn new(s: &str) -> Value {
        Value {
            s: Arc::from(s),
            h: poly_hash(s),
        }
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        &self.s
    }

    /// This value followed by `suffix`; the hash is extended, not recomputed.
    fn concat(&self, suffix: &str) -> Value {
        let mut s = String::with_capacity(self.s.len() + suffix.len());
        s.push_str(&self.s);
        s.push_str(suffix);
        Value {
            s: Arc::from(s),
            h: self
                .h
                .wrapping_mul(poly_pow(suffix.len()))
                .wrapping_add(poly_hash(suffix)),
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, o: &Value) -> bool {
        self.h == o.h && (Arc::ptr_eq(&self.s, &o.s) || self.s == o.s)
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.h);
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.s, f)
    }
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.s)
    }
}

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
    data: Vec<(Arc<str>, KeyState)>,
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

/// The KV model. See the module docs for partitioning and revisions.
#[derive(Clone, Debug)]
pub struct KvModel {
    /// Treat a stored empty string as an absent key when reading (porcupine
    /// kv histories, where keys start as `""`).
    pub empty_is_absent: bool,
    /// Track revisions. When false, revision fields in outputs and
    /// `mod_revision` compares are not checked (use only for histories that
    /// record no revisions; [`KvModel::for_history`] decides this).
    pub track_revisions: bool,
    /// The store's revision before the history starts (etcd starts at 1).
    pub initial_revision: u64,
}

impl Default for KvModel {
    fn default() -> Self {
        KvModel {
            empty_is_absent: false,
            track_revisions: true,
            initial_revision: 1,
        }
    }
}

fn observes_revision(input: &KvInput, output: Option<&KvOutput>) -> bool {
    if let KvInput::Txn { compares, .. } = input {
        if compares
            .iter()
            .any(|c| matches!(c.target, CompareTarget::ModRevision(_)))
        {
            return true;
        }
    }
    match output {
        None => false,
        Some(KvOutput::Get {
            mod_revision,
            revision,
            ..
        }) => mod_revision.is_some() || revision.is_some(),
        Some(KvOutput::Put { revision }) | Some(KvOutput::Append { revision }) => {
            revision.is_some()
        }
        Some(KvOutput::Delete { revision, .. }) => revision.is_some(),
        Some(KvOutput::Txn {
            results, revision, ..
        }) => {
            revision.is_some()
                || results.iter().any(|r| {
                    matches!(
                        r,
                        TxnOpResult::Get {
                            mod_revision: Some(_),
                            ..
                        }
                    )
                })
        }
    }
}

impl KvModel {
    /// A model for this history: revision tracking on only if some
    /// operation observes revisions.
    pub fn for_history(history: &History<KvInput, KvOutput>, empty_is_absent: bool) -> Self {
        let track = history
            .ops
            .iter()
            .any(|op| observes_revision(&op.input, op.outcome.output()));
        KvModel {
            empty_is_absent,
            track_revisions: track,
            ..KvModel::default()
        }
    }

    fn read<'a>(&self, s: &'a KvState, key: &str) -> Option<&'a KeyState> {
        s.get(key)
            .filter(|k| !(self.empty_is_absent && k.value.as_str().is_empty()))
    }

    /// Applies `input` to `s` in place; returns the per-op results (for
    /// txns) and the branch taken. Revisions advance only when tracked.
    fn apply(&self, s: &mut KvState, input: &KvInput) -> Applied {
        let new_rev = if self.track_revisions {
            s.revision + 1
        } else {
            0
        };
        let mut wrote = false;
        let mut results = Vec::new();
        let mut succeeded = true;
        let mut deleted = 0;
        let mut run = |s: &mut KvState, op: &TxnOp, results: &mut Vec<TxnOpResult>| match op {
            TxnOp::Get { key } => {
                let k = self.read(s, key);
                results.push(TxnOpResult::Get {
                    value: k.map(|k| k.value.as_str().to_string()),
                    mod_revision: Some(k.map_or(0, |k| k.mod_revision)),
                });
            }
            TxnOp::Put { key, value } => {
                s.insert(
                    key,
                    KeyState {
                        value: Value::new(value),
                        mod_revision: new_rev,
                    },
                );
                wrote = true;
                results.push(TxnOpResult::Put);
            }
            TxnOp::Delete { key } => {
                let d = u64::from(s.remove(key));
                wrote |= d == 1;
                deleted = d;
                results.push(TxnOpResult::Delete { deleted: Some(d) });
            }
        };
        match input {
            KvInput::Get { key } => run(s, &TxnOp::Get { key: key.clone() }, &mut results),
            KvInput::Put { key, value } => run(
                s,
                &TxnOp::Put {
                    key: key.clone(),
                    value: value.clone(),
                },
                &mut results,
            ),
            KvInput::Delete { key } => run(s, &TxnOp::Delete { key: key.clone() }, &mut results),
            KvInput::Append { key, value } => {
                let v = match s.get(key) {
                    Some(k) => k.value.concat(value),
                    None => Value::new(value),
                };
                s.insert(
                    key,
                    KeyState {
                        value: v,
                        mod_revision: new_rev,
                    },
                );
                wrote = true;
                results.push(TxnOpResult::Put);
            }
            KvInput::Txn {
                compares,
                success,
                failure,
            } => {
                succeeded = compares.iter().all(|c| {
                    let k = self.read(s, &c.key);
                    match &c.target {
                        // A missing key fails every value compare.
                        CompareTarget::Value(v) => {
                            k.is_some_and(|k| c.op.eval(&k.value.as_str(), &v.as_str()))
                        }
                        CompareTarget::ModRevision(r) => {
                            c.op.eval(&k.map_or(0, |k| k.mod_revision), r)
                        }
                    }
                });
                for op in if succeeded { success } else { failure } {
                    run(s, op, &mut results);
                }
            }
        }
        if wrote && self.track_revisions {
            s.revision = new_rev;
        }
        Applied {
            results,
            succeeded,
            deleted,
            wrote,
        }
    }
}

struct Applied {
    results: Vec<TxnOpResult>,
    succeeded: bool,
    deleted: u64,
    wrote: bool,
}

fn rev_ok(track: bool, seen: &Option<u64>, actual: u64) -> bool {
    !track || seen.is_none_or(|r| r == actual)
}

fn result_ok(track: bool, seen: &TxnOpResult, actual: &TxnOpResult) -> bool {
    match (seen, actual) {
        (
            TxnOpResult::Get {
                value,
                mod_revision,
            },
            TxnOpResult::Get {
                value: v2,
                mod_revision: m2,
            },
        ) => value == v2 && (!track || mod_revision.is_none() || mod_revision == m2),
        (TxnOpResult::Put, TxnOpResult::Put) => true,
        (TxnOpResult::Delete { deleted }, TxnOpResult::Delete { deleted: d2 }) => {
            deleted.is_none() || deleted == d2
        }
        _ => false,
    }
}

fn show(v: &Option<String>) -> String {
    v.as_ref()
        .map_or_else(|| "∅".to_string(), |v| format!("{v:?}"))
}

impl Model for KvModel {
    type Input = KvInput;
    type Output = KvOutput;
    type State = KvState;

    fn init(&self) -> KvState {
        KvState {
            revision: if self.track_revisions {
                self.initial_revision
            } else {
                0
            },
            data: Vec::new(),
        }
    }

    fn step(&self, state: &KvState, input: &KvInput, output: &KvOutput) -> Option<KvState> {
        let t = self.track_revisions;
        // Reads: check without cloning the state.
        if let (
            KvInput::Get { key },
            KvOutput::Get {
                value,
                mod_revision,
                revision,
            },
        ) = (input, output)
        {
            let k = self.read(state, key);
            let ok = k.map(|k| k.value.as_str()) == value.as_deref()
                && rev_ok(t, mod_revision, k.map_or(0, |k| k.mod_revision))
                && rev_ok(t, revision, state.revision);
            return ok.then(|| state.clone());
        }
        let mut s = state.clone();
        let a = self.apply(&mut s, input);
        let ok = match (input, output) {
            (KvInput::Put { .. }, KvOutput::Put { revision })
            | (KvInput::Append { .. }, KvOutput::Append { revision }) => {
                rev_ok(t, revision, s.revision)
            }
            (KvInput::Delete { .. }, KvOutput::Delete { deleted, revision }) => {
                deleted.is_none_or(|d| d == a.deleted) && rev_ok(t, revision, s.revision)
            }
            (
                KvInput::Txn { .. },
                KvOutput::Txn {
                    succeeded,
                    results,
                    revision,
                },
            ) => {
                *succeeded == a.succeeded
                    && (results.is_empty()
                        || (results.len() == a.results.len()
                            && results
                                .iter()
                                .zip(&a.results)
                                .all(|(x, y)| result_ok(t, x, y))))
                    && rev_ok(t, revision, s.revision)
            }
            _ => false,
        };
        ok.then_some(s)
    }

    fn step_unknown(&self, state: &KvState, input: &KvInput) -> Option<KvState> {
        if self.is_read_only(input) {
            return None;
        }
        let mut s = state.clone();
        let a = self.apply(&mut s, input);
        (a.wrote && s != *state).then_some(s)
    }

    fn is_read_only(&self, input: &KvInput) -> bool {
        match input {
            KvInput::Get { .. } => true,
            KvInput::Txn {
                success, failure, ..
            } => success
                .iter()
                .chain(failure)
                .all(|o| matches!(o, TxnOp::Get { .. })),
            _ => false,
        }
    }

    fn is_pure(&self, input: &KvInput, output: &KvOutput) -> bool {
        match (input, output) {
            (KvInput::Get { .. }, _) => true,
            (
                KvInput::Txn {
                    success, failure, ..
                },
                KvOutput::Txn { succeeded, .. },
            ) => (if *succeeded { success } else { failure })
                .iter()
                .all(|o| matches!(o, TxnOp::Get { .. })),
            _ => false,
        }
    }

    fn progress(&self, state: &KvState) -> u64 {
        state.revision
    }

    fn progress_bound(&self, input: &KvInput, output: &KvOutput) -> u64 {
        if !self.track_revisions {
            return u64::MAX;
        }
        // The revision before the op: a write that created revision r ran
        // at r - 1; anything reporting a header revision r ran at <= r.
        let before_write = |r: &Option<u64>| r.map_or(u64::MAX, |r| r.saturating_sub(1));
        match (input, output) {
            (KvInput::Put { .. }, KvOutput::Put { revision })
            | (KvInput::Append { .. }, KvOutput::Append { revision }) => before_write(revision),
            (_, KvOutput::Get { revision, .. })
            | (_, KvOutput::Delete { revision, .. })
            | (_, KvOutput::Txn { revision, .. }) => revision.unwrap_or(u64::MAX),
            _ => u64::MAX,
        }
    }

    fn footprint(&self, input: &KvInput, output: Option<&KvOutput>) -> Footprint {
        let mut keys: Vec<String> = match input {
            KvInput::Get { key }
            | KvInput::Put { key, .. }
            | KvInput::Delete { key }
            | KvInput::Append { key, .. } => {
                vec![key.clone()]
            }
            KvInput::Txn {
                compares,
                success,
                failure,
            } => compares
                .iter()
                .map(|c| c.key.clone())
                .chain(success.iter().chain(failure).map(|o| o.key().to_string()))
                .collect(),
        };
        keys.sort();
        keys.dedup();
        let global = self.track_revisions && observes_revision(input, output);
        Footprint { keys, global }
    }

    fn describe_op(&self, input: &KvInput, output: Option<&KvOutput>) -> String {
        let rev = |r: &Option<u64>| r.map_or_else(String::new, |r| format!(" @{r}"));
        let inp = match input {
            KvInput::Get { key } => format!("get {key}"),
            KvInput::Put { key, value } => format!("put {key}={value:?}"),
            KvInput::Delete { key } => format!("delete {key}"),
            KvInput::Append { key, value } => format!("append {key}+={value:?}"),
            KvInput::Txn {
                compares,
                success,
                failure,
            } => {
                let c: Vec<String> = compares
                    .iter()
                    .map(|c| match &c.target {
                        CompareTarget::Value(v) => {
                            format!("value({}) {} {v:?}", c.key, c.op.symbol())
                        }
                        CompareTarget::ModRevision(r) => {
                            format!("mod({}) {} {r}", c.key, c.op.symbol())
                        }
                    })
                    .collect();
                let ops = |v: &Vec<TxnOp>| {
                    v.iter()
                        .map(|o| match o {
                            TxnOp::Get { key } => format!("get {key}"),
                            TxnOp::Put { key, value } => format!("put {key}={value:?}"),
                            TxnOp::Delete { key } => format!("delete {key}"),
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                format!(
                    "txn if {} then [{}] else [{}]",
                    c.join(" && "),
                    ops(success),
                    ops(failure)
                )
            }
        };
        let out = match output {
            None => " -> ?".to_string(),
            Some(KvOutput::Get {
                value,
                mod_revision,
                revision,
            }) => format!(
                " -> {}{}{}",
                show(value),
                mod_revision.map_or_else(String::new, |m| format!(" (mod {m})")),
                rev(revision)
            ),
            Some(KvOutput::Put { revision }) | Some(KvOutput::Append { revision }) => {
                format!(" -> ok{}", rev(revision))
            }
            Some(KvOutput::Delete { deleted, revision }) => format!(
                " -> {}{}",
                deleted.map_or_else(|| "ok".to_string(), |d| format!("deleted {d}")),
                rev(revision)
            ),
            Some(KvOutput::Txn {
                succeeded,
                results,
                revision,
            }) => format!(
                " -> {}{}{}",
                if *succeeded { "then" } else { "else" },
                if results.is_empty() {
                    String::new()
                } else {
                    format!(" {results:?}")
                },
                rev(revision)
            ),
        };
        inp + &out
    }

    fn describe_state(&self, state: &KvState) -> String {
        let kv: Vec<String> = state
            .iter()
            .map(|(k, v)| {
                if self.track_revisions {
                    format!("{k}={:?}@{}", v.value, v.mod_revision)
                } else {
                    format!("{k}={:?}", v.value)
                }
            })
            .collect();
        if self.track_revisions {
            format!("{{{}}} rev {}", kv.join(", "), state.revision)
        } else {
            format!("{{{}}}", kv.join(", "))
        }
    }

    fn explain_illegal(
        &self,
        state: &KvState,
        input: &KvInput,
        output: Option<&KvOutput>,
    ) -> String {
        if let (KvInput::Get { key }, Some(KvOutput::Get { value, .. })) = (input, output) {
            let cur = self.read(state, key).map(|k| k.value.as_str().to_string());
            if cur != *value {
                return format!(
                    "get {key} returned {} but the store holds {}",
                    show(value),
                    show(&cur)
                );
            }
        }
        format!(
            "{} does not match the store {}",
            self.describe_op(input, output),
            self.describe_state(state)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Op, Outcome};
    use crate::{check, Verdict};

    fn seq(ops: Vec<(KvInput, KvOutput)>) -> History<KvInput, KvOutput> {
        History {
            ops: ops
                .into_iter()
                .enumerate()
                .map(|(i, (input, out))| Op {
                    process: 0,
                    invoke: 2 * i as u64,
                    complete: 2 * i as u64 + 1,
                    input,
                    outcome: Outcome::Ok(out),
                })
                .collect(),
        }
    }

    fn put(k: &str, v: &str) -> KvInput {
        KvInput::Put {
            key: k.into(),
            value: v.into(),
        }
    }

    fn get(k: &str) -> KvInput {
        KvInput::Get { key: k.into() }
    }

    fn got(v: Option<&str>, m: u64, r: u64) -> KvOutput {
        KvOutput::Get {
            value: v.map(Into::into),
            mod_revision: Some(m),
            revision: Some(r),
        }
    }

    fn verdict(h: &History<KvInput, KvOutput>) -> Verdict {
        check(&KvModel::default(), h, None).verdict
    }

    #[test]
    fn revisions_follow_etcd() {
        let del = |k: &str| KvInput::Delete { key: k.into() };
        let h = seq(vec![
            (get("a"), got(None, 0, 1)),
            (put("a", "1"), KvOutput::Put { revision: Some(2) }),
            (put("b", "1"), KvOutput::Put { revision: Some(3) }),
            (get("a"), got(Some("1"), 2, 3)),
            // Deleting an absent key does not bump the revision.
            (
                del("zz"),
                KvOutput::Delete {
                    deleted: Some(0),
                    revision: Some(3),
                },
            ),
            (
                del("a"),
                KvOutput::Delete {
                    deleted: Some(1),
                    revision: Some(4),
                },
            ),
            (
                KvInput::Txn {
                    compares: vec![Compare {
                        key: "b".into(),
                        op: CmpOp::Equal,
                        target: CompareTarget::ModRevision(3),
                    }],
                    success: vec![
                        TxnOp::Put {
                            key: "a".into(),
                            value: "2".into(),
                        },
                        TxnOp::Put {
                            key: "c".into(),
                            value: "2".into(),
                        },
                        TxnOp::Get { key: "a".into() },
                    ],
                    failure: vec![],
                },
                KvOutput::Txn {
                    succeeded: true,
                    results: vec![
                        TxnOpResult::Put,
                        TxnOpResult::Put,
                        TxnOpResult::Get {
                            value: Some("2".into()),
                            mod_revision: Some(5),
                        },
                    ],
                    revision: Some(5),
                },
            ),
            (get("c"), got(Some("2"), 5, 5)),
        ]);
        assert_eq!(verdict(&h), Verdict::Linearizable);
        // Each wrong revision is caught.
        for (i, bad) in [
            (1, KvOutput::Put { revision: Some(3) }),
            (3, got(Some("1"), 3, 3)),
            (3, got(Some("1"), 2, 4)),
            (
                4,
                KvOutput::Delete {
                    deleted: Some(0),
                    revision: Some(4),
                },
            ),
            (7, got(Some("2"), 6, 5)),
        ] {
            let mut h2 = h.clone();
            h2.ops[i].outcome = Outcome::Ok(bad);
            assert_eq!(verdict(&h2), Verdict::NotLinearizable, "corrupting op {i}");
        }
    }

    #[test]
    fn txn_branch_must_match_compare() {
        let txn = KvInput::Txn {
            compares: vec![Compare {
                key: "a".into(),
                op: CmpOp::Equal,
                target: CompareTarget::Value("1".into()),
            }],
            success: vec![TxnOp::Put {
                key: "b".into(),
                value: "yes".into(),
            }],
            failure: vec![TxnOp::Put {
                key: "b".into(),
                value: "no".into(),
            }],
        };
        let out = |s| KvOutput::Txn {
            succeeded: s,
            results: vec![],
            revision: None,
        };
        let plain = |v: &str| KvOutput::Get {
            value: Some(v.into()),
            mod_revision: None,
            revision: None,
        };
        let ok = seq(vec![
            (put("a", "1"), KvOutput::Put { revision: None }),
            (txn.clone(), out(true)),
            (get("b"), plain("yes")),
        ]);
        assert_eq!(verdict(&ok), Verdict::Linearizable);
        let wrong_branch = seq(vec![
            (put("a", "1"), KvOutput::Put { revision: None }),
            (txn.clone(), out(false)),
        ]);
        assert_eq!(verdict(&wrong_branch), Verdict::NotLinearizable);
        let wrong_effect = seq(vec![(txn, out(false)), (get("b"), plain("yes"))]);
        assert_eq!(verdict(&wrong_effect), Verdict::NotLinearizable);
    }

    /// `txn if value(k) <op> "x" then put k="y" else get k` on a store
    /// where `k` does not exist.
    fn value_compare_on_missing_key(op: CmpOp, succeeded: bool) -> History<KvInput, KvOutput> {
        let txn = KvInput::Txn {
            compares: vec![Compare {
                key: "k".into(),
                op,
                target: CompareTarget::Value("x".into()),
            }],
            success: vec![TxnOp::Put {
                key: "k".into(),
                value: "y".into(),
            }],
            failure: vec![TxnOp::Get { key: "k".into() }],
        };
        let results = if succeeded {
            vec![TxnOpResult::Put]
        } else {
            vec![TxnOpResult::Get {
                value: None,
                mod_revision: None,
            }]
        };
        seq(vec![(
            txn,
            KvOutput::Txn {
                succeeded,
                results,
                revision: None,
            },
        )])
    }

    #[test]
    fn value_compares_on_a_missing_key_always_fail() {
        // etcd: "always fail if comparing a value on a key/keys that doesn't
        // exist", whatever the operator.
        for op in [CmpOp::Equal, CmpOp::NotEqual, CmpOp::Less, CmpOp::Greater] {
            let etcd = value_compare_on_missing_key(op, false);
            assert_eq!(
                verdict(&etcd),
                Verdict::Linearizable,
                "{op:?}: etcd's answer"
            );
            let model = KvModel::for_history(&etcd, false);
            assert_eq!(check(&model, &etcd, None).verdict, Verdict::Linearizable);
            let wrong = value_compare_on_missing_key(op, true);
            assert_eq!(
                verdict(&wrong),
                Verdict::NotLinearizable,
                "{op:?}: succeeded on a missing key"
            );
            let model = KvModel::for_history(&wrong, false);
            assert_eq!(
                check(&model, &wrong, None).verdict,
                Verdict::NotLinearizable
            );
        }
        // Once the key exists, the compare is an ordinary byte comparison
        // ("w" < "x").
        let setup = (put("k", "w"), KvOutput::Put { revision: None });
        for (op, holds) in [
            (CmpOp::Equal, false),
            (CmpOp::NotEqual, true),
            (CmpOp::Less, true),
            (CmpOp::Greater, false),
        ] {
            for succeeded in [false, true] {
                let mut h = value_compare_on_missing_key(op, succeeded);
                let mut ops = seq(vec![setup.clone()]).ops;
                for o in &mut h.ops {
                    o.invoke += 10;
                    o.complete += 10;
                }
                if !succeeded {
                    h.ops[0].outcome = Outcome::Ok(KvOutput::Txn {
                        succeeded,
                        results: vec![TxnOpResult::Get {
                            value: Some("w".into()),
                            mod_revision: None,
                        }],
                        revision: None,
                    });
                }
                ops.extend(h.ops);
                let want = if succeeded == holds {
                    Verdict::Linearizable
                } else {
                    Verdict::NotLinearizable
                };
                assert_eq!(verdict(&History { ops }), want, "\"w\" {op:?} \"x\"");
            }
        }
        // A missing key's mod_revision compares as 0.
        let txn = |op| KvInput::Txn {
            compares: vec![Compare {
                key: "k".into(),
                op,
                target: CompareTarget::ModRevision(0),
            }],
            success: vec![],
            failure: vec![],
        };
        let out = |succeeded| KvOutput::Txn {
            succeeded,
            results: vec![],
            revision: None,
        };
        let ok = seq(vec![(txn(CmpOp::Equal), out(true))]);
        assert_eq!(verdict(&ok), Verdict::Linearizable);
        let bad = seq(vec![(txn(CmpOp::Equal), out(false))]);
        assert_eq!(verdict(&bad), Verdict::NotLinearizable);
    }

    #[test]
    fn a_null_value_target_is_rejected() {
        let line = r#"{"process":0,"invoke":0,"complete":1,"type":"ok","input":{"f":"txn","compares":[{"key":"k","op":"equal","target":{"value":null}}],"success":[],"failure":[]},"output":{"f":"txn","succeeded":false}}"#;
        let r: Result<History<KvInput, KvOutput>, _> = History::from_jsonl(line.as_bytes());
        assert!(r.is_err(), "etcd has no 'value is absent' compare");
        let ok = line.replace("null", "\"x\"");
        let h: History<KvInput, KvOutput> = History::from_jsonl(ok.as_bytes()).expect("parses");
        assert_eq!(verdict(&h), Verdict::Linearizable);
    }

    #[test]
    fn multi_key_txns_join_partitions() {
        let txn = KvInput::Txn {
            compares: vec![],
            success: vec![
                TxnOp::Put {
                    key: "a".into(),
                    value: "1".into(),
                },
                TxnOp::Put {
                    key: "b".into(),
                    value: "1".into(),
                },
            ],
            failure: vec![],
        };
        let h = seq(vec![
            (
                txn,
                KvOutput::Txn {
                    succeeded: true,
                    results: vec![],
                    revision: None,
                },
            ),
            (put("c", "1"), KvOutput::Put { revision: None }),
            (
                get("b"),
                KvOutput::Get {
                    value: Some("1".into()),
                    mod_revision: None,
                    revision: None,
                },
            ),
        ]);
        let model = KvModel::for_history(&h, false);
        assert!(!model.track_revisions);
        let r = check(&model, &h, None);
        assert_eq!(r.verdict, Verdict::Linearizable);
        assert_eq!(r.partitions, 2, "{{a,b}} and {{c}}");
    }
}
