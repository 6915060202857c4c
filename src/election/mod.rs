//! Election: etcd's v3election service — leader election built on leases and key revisions.
//!
//! An election named `N` is a queue of candidates under `N/`, exactly like a lock's
//! ([`crate::lock`]): each candidate's lease `L` creates `N/<L in hex>` with its proposed value,
//! and the candidate with the lowest create revision is the leader. Campaign returns once the
//! caller leads; its `LeaderKey` (name, key, create revision, lease) identifies the leadership,
//! and Proclaim and Resign act only while that key still exists with that create revision.
//!
//! The create revision in the `LeaderKey` is the leadership's fencing token: it grows with every
//! new leader, so a system acting on a leader's behalf can refuse a deposed leader's requests
//! (lower token), and etcd writes can be made conditional on the key's create revision.
//!
//! Observe streams the leader's value: the current leader, each proclamation, and the next
//! leader when one leaves.

pub mod observe;
pub mod service;
