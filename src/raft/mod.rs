//! Consensus: openraft glue as small files — [`types`] (the type config and what the log
//! carries), [`log_store`], [`state_machine`] (persisting what the applier did),
//! [`snapshot`] (its framing) and [`network`] (raft messages to peers) — and the
//! [`RaftNode`] the services call, whose work is split by idea: [`propose`] (writes),
//! [`read_index`] (linearizable reads), [`membership`], [`leases`] (what only the leader
//! answers), all of them leader-or-[`forward`].

pub mod auto_compaction;
pub mod batch;
pub mod codec;
pub mod compat;
pub mod corrupt_check;
pub mod disk_metrics;
pub mod forward;
pub mod leases;
pub mod legacy;
pub mod log_store;
pub mod membership;
pub mod network;
pub mod node;
pub mod peer_metrics;
pub mod proposal_metrics;
pub mod propose;
pub mod read_index;
pub mod snapshot;
pub mod split_vote;
pub mod state_machine;
pub mod types;
pub mod wal;

pub use node::{RaftNode, RaftSettings};
pub use types::TypeConfig;

// openraft's suite builds its own tokio runtime, which the simulator build cannot run.
#[cfg(all(test, not(madsim)))]
mod storage_suite;
