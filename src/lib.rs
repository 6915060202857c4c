//! detcd: an etcd v3 compatible, strongly consistent key-value store whose whole cluster can run
//! inside a seeded deterministic simulation.

pub mod cluster;
pub mod config;
pub mod election;
pub mod error;
pub mod io;
pub mod lease;
pub mod lock;
pub mod mvcc;
pub mod proto;
pub mod raft;
pub mod server;
pub mod watch;
