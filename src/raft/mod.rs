//! Consensus: openraft glue in four small files — [`types`] (the type config and the request /
//! response carried through the log), [`log_store`], [`state_machine`] (apply → mvcc) and
//! [`network`] — plus [`node`], the handle the gRPC services call.

pub mod log_store;
pub mod network;
pub mod node;
pub mod peer_server;
pub mod state_machine;
pub mod types;

pub use node::{RaftNode, RaftSettings};
pub use types::TypeConfig;
