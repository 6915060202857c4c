//! The KV model's rules: [`KvModel`] and its [`Model`] implementation, the
//! sequential specification of etcd's KV API that histories are checked
//! against. `KvModel::apply` runs an input on a state the way etcd's
//! apply loop would; `step` then accepts the recorded output only if it
//! matches what `apply` produced (fields not recorded are not checked).
//! How operations and states read in explanations is in `describe.rs`.

use super::describe;
use super::ops::{observes_revision, CompareTarget, KvInput, KvOutput, TxnOp, TxnOpResult};
use super::state::{KeyState, KvState};
use super::value::Value;
use crate::history::History;
use crate::model::{Footprint, Model};

/// The KV model. See the [`kv`](super) module docs for partitioning and
/// revisions.
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

    pub(super) fn read<'a>(&self, s: &'a KvState, key: &str) -> Option<&'a KeyState> {
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

/// What [`KvModel::apply`] did, for `step` to compare with the recorded
/// output and for `step_unknown` to tell whether anything changed.
struct Applied {
    results: Vec<TxnOpResult>,
    succeeded: bool,
    deleted: u64,
    wrote: bool,
}

/// A recorded revision is right: revisions are not tracked, it was not
/// recorded, or it equals the model's.
fn rev_ok(track: bool, seen: &Option<u64>, actual: u64) -> bool {
    !track || seen.is_none_or(|r| r == actual)
}

/// A recorded txn op result agrees with the model's; unrecorded fields
/// (`None`) are not checked.
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
        describe::op(input, output)
    }

    fn describe_state(&self, state: &KvState) -> String {
        describe::store(self, state)
    }

    fn explain_illegal(
        &self,
        state: &KvState,
        input: &KvInput,
        output: Option<&KvOutput>,
    ) -> String {
        describe::why_illegal(self, state, input, output)
    }
}
