//! The workloads: what clients do to a simulated cluster while the nemesis breaks it, and how
//! each history is judged.
//!
//! - [`register`]: puts and gets on a few keys, judged linearizable by detcd-jepsen (the CLI's
//!   workload, run by [`crate::run`]);
//! - [`txn`]: bank transfers by compare-and-swap transactions that must conserve the total;
//! - [`watch`]: watches followed across broken streams, judged by the watch guarantees;
//! - [`lease`]: leases kept alive under clock skew must not expire early, abandoned ones must;
//! - [`lock`]: clients contending for one lock, fenced by its token, judged mutually exclusive;
//! - [`storage`]: members crashed while their WAL rolls and purges segments, judged by the
//!   acknowledged writes and every member starting again;
//! - [`auth`]: permissions revoked and granted again and passwords changed while clients write
//!   with tokens, judged by what the acknowledged revocations forbid and the members' agreement.
//!
//! The last six are scenarios: each runs one seed in a fresh simulator through
//! [`scenario::run_seed`] and returns a [`scenario::Passed`] or a [`scenario::failure`] report.
//! Their clients connect, build requests and renew leases through the shared [`client`].

pub mod auth;
pub mod client;
pub mod lease;
pub mod lock;
pub mod register;
pub mod scenario;
pub mod storage;
pub mod txn;
pub mod watch;
