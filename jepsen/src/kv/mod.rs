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
//!
//! # Files
//!
//! * `ops.rs`: the requests and responses ([`KvInput`], [`KvOutput`] and
//!   the transaction parts), as recorded in histories.
//! * `value.rs`: [`Value`], how a stored string is shared and hashed.
//! * `state.rs`: [`KvState`], the store a model state holds.
//! * `model.rs`: [`KvModel`], the rules: how an operation changes the
//!   store and which outputs it allows.
//! * `describe.rs`: how operations and stores read in explanations.

mod describe;
mod model;
mod ops;
mod state;
mod value;

#[cfg(test)]
mod tests;

pub use model::KvModel;
pub use ops::{CmpOp, Compare, CompareTarget, KvInput, KvOutput, TxnOp, TxnOpResult};
pub use state::{KeyState, KvState};
pub use value::Value;
