//! etcd's concurrency recipes, run inside the server as etcd runs them: Lock and Election are
//! client-side algorithms over KV, Lease and Watch ([`client::Client`]), here executed by the
//! member on behalf of the caller.
//!
//! - [`client`]: what the recipes need from a member, and the request shapes they use.
//! - [`queue`]: the waiting line under a prefix, shared by both recipes.
//! - [`lock`]: mutexes (v3lock).
//! - [`election`]: leader election (v3election), and [`observe`] for following a leader.
//!
//! Neither recipe reaches into the other; both stand on the queue.

pub mod client;
pub mod election;
pub mod lock;
pub mod observe;
pub mod queue;
