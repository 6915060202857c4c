//! detcd: an etcd v3 compatible, strongly consistent key-value store whose whole cluster can run
//! inside a seeded deterministic simulation.

#![warn(missing_docs)]

pub mod alarm;
pub mod apply;
pub mod auth;
pub mod backup;
pub mod cluster;
pub mod compactor;
pub mod config;
pub mod error;
pub mod io;
pub mod lease;
pub mod member;
pub mod mvcc;
pub mod proto;
pub mod raft;
pub mod recipes;
pub mod server;
pub mod watch;
