//! # detcd-jepsen
//!
//! Histories of concurrent operations and the checkers that judge them:
//!
//! * [`check`]: a linearizability checker (Wing–Gong–Lowe search with
//!   memoization, P-compositional partitioning, optional `info` ops) for any
//!   [`Model`]; ships with a [`RegisterModel`] and an etcd-style [`KvModel`].
//!   Verdicts are `linearizable`, `not linearizable` (with an
//!   [`Explanation`]) or `unknown` after a timeout, never a wrong answer.
//! * [`watch`]: etcd watch guarantees over recorded watch streams.
//! * [`lock`]: mutual exclusion of lock holders, judged with fencing tokens.
//! * [`porcupine`]: parsers for the Jepsen etcd and kv logs shipped with
//!   porcupine; [`History::from_jsonl`] for our own JSON-lines format.
//!
//! The crate is deterministic: the same history always gives the same
//! verdict and the same explanation.

#![warn(missing_docs)]

pub mod bench;
pub mod checker;
pub mod explain;
mod hash;
pub mod history;
pub mod kv;
pub mod lock;
pub mod model;
pub mod porcupine;
pub mod register;
pub mod report;
pub mod watch;

pub use checker::{check, check_with, CheckOptions, CheckResult, Verdict};
pub use explain::Explanation;
pub use history::{Event, History, HistoryError, Op, Outcome};
pub use kv::{KvInput, KvModel, KvOutput};
pub use lock::{check_locks, LockHistory, LockReport};
pub use model::{Footprint, Model};
pub use register::{RegisterInput, RegisterModel, RegisterOutput};
pub use report::{Report, Section};
pub use watch::{check_resumed_watches, check_watches, ResumedWatch, WatchHistory, WatchReport};

/// The crate README, compiled as a doctest so that its example stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
