//! A register-style workload on etcd's KV API: concurrent clients read (linearizably), put,
//! delete and compare-and-swap a few keys through random members, recording a history for
//! detcd-jepsen's etcd KV model; and they compact the store at recent revisions and read the
//! past (at a revision, around the compacted one), which [`past`] judges against the
//! acknowledged writes and compactions.
//!
//! The CLI's runner ([`crate::run`]) spawns the [`client()`]s, plays the fault schedule,
//! and judges what they recorded with [`check()`] and [`past::check`].

mod check;
mod client;
pub mod past;

use std::sync::{Arc, Mutex};

use detcd_jepsen::{KvInput, KvOutput, Op};

pub use check::check;
pub use client::client;

/// One recorded operation.
pub type KvOp = Op<KvInput, KvOutput>;

/// The keys the clients share.
pub const KEYS: [&str; 5] = ["v", "w", "x", "y", "z"];

/// What the clients recorded.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Reads of the present and writes: the history the KV model judges.
    pub ops: Vec<KvOp>,
    /// Reads of the past and compactions, for [`past::check`].
    pub past: past::PastLog,
}

/// The clients' shared [`Recorded`].
pub type Shared = Arc<Mutex<Recorded>>;

/// Acknowledged operations, as the checks' unit tests build their histories.
#[cfg(test)]
pub(crate) mod acked {
    use detcd_jepsen::{KvInput, KvOutput, Op};

    use super::KvOp;

    /// A put of `key` = `value` acknowledged at revision `rev`.
    pub fn put(key: &str, value: &str, rev: u64) -> KvOp {
        Op::ok(
            0,
            0,
            1,
            KvInput::Put {
                key: key.into(),
                value: value.into(),
            },
            KvOutput::Put {
                revision: Some(rev),
            },
        )
    }

    /// A delete of `key` that deleted it, acknowledged at revision `rev`.
    pub fn delete(key: &str, rev: u64) -> KvOp {
        Op::ok(
            0,
            0,
            1,
            KvInput::Delete { key: key.into() },
            KvOutput::Delete {
                deleted: Some(1),
                revision: Some(rev),
            },
        )
    }
}
