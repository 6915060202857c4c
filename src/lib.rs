//! detcd: an etcd v3 compatible, strongly consistent key-value store whose whole cluster can run
//! inside a seeded deterministic simulation.

pub mod io;
pub mod proto;
pub mod error;
pub mod mvcc;
pub mod cluster;
pub mod raft;
