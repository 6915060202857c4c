//! A register-style workload on etcd's KV API: concurrent clients put and read (linearizably) a
//! few keys through random members, recording a history for detcd-jepsen's etcd KV model.
//!
//! The CLI's runner ([`crate::run`]) spawns the [`client()`]s, plays the fault schedule,
//! and judges what they recorded with [`check()`].

mod check;
mod client;

use detcd_jepsen::{KvInput, KvOutput, Op};

pub use check::check;
pub use client::client;

/// One recorded operation.
pub type KvOp = Op<KvInput, KvOutput>;

/// The keys the clients share.
pub const KEYS: [&str; 3] = ["x", "y", "z"];
