//! The operations of the KV model: what a client asks for ([`KvInput`],
//! with a transaction's [`Compare`]s and branch [`TxnOp`]s) and what it gets
//! back ([`KvOutput`], [`TxnOpResult`]), in the JSON form histories are
//! written in (serde, tagged by `"f"`). Revision fields of responses are
//! optional because not every recorder sees them; what is not recorded is
//! not checked.
//!
//! [`observes_revision`] lives here too: whether an operation looks at the
//! global revision is a property of the operation, and it decides how the
//! model partitions a history (see the [`kv`](super) module docs).

use serde::{Deserialize, Serialize};

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
    /// `a <op> b`; values compare byte-wise, revisions numerically.
    pub(super) fn eval<T: Ord>(self, a: &T, b: &T) -> bool {
        match self {
            CmpOp::Equal => a == b,
            CmpOp::NotEqual => a != b,
            CmpOp::Less => a < b,
            CmpOp::Greater => a > b,
        }
    }

    /// The operator as written in operation descriptions.
    pub(super) fn symbol(self) -> &'static str {
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
    /// The key the op reads or writes (for footprints).
    pub(super) fn key(&self) -> &str {
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

/// Whether an operation observes etcd's global revision: a compare on
/// `mod_revision`, or a recorded revision in its response. One such
/// operation ties every key to the shared counter, so the history can no
/// longer be checked per key (see the [`kv`](super) module docs).
pub(super) fn observes_revision(input: &KvInput, output: Option<&KvOutput>) -> bool {
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
