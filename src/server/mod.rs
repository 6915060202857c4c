//! Every gRPC service a member serves, one file each (etcd's `api/v3rpc`). Handlers are thin:
//! check the request ([`check`]), call the raft node or read the store, and let the one error
//! table ([`crate::error`]) map failures to etcd's statuses; the node fills response headers.
//!
//! Client URLs: [`kv`], [`watch`], [`lease`], [`cluster`], [`maintenance`], [`auth`], [`lock`]
//! and [`election`] (the last two run etcd's recipes over [`embedded`], the member's in-process
//! client). Peer URLs: [`peer`]. Which service listens where is the member's wiring
//! (`crate::member`).

pub mod auth;
pub mod caller;
pub mod check;
pub mod cluster;
#[cfg(not(madsim))]
pub mod descriptors;
pub mod election;
pub mod embedded;
#[cfg(not(madsim))]
pub mod gateway;
#[cfg(not(madsim))]
pub mod http;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
#[cfg(not(madsim))]
pub mod metrics;
pub mod peer;
pub mod quota;
pub mod watch;

/// gRPC adds framing around a request; etcd allows this much on top of `--max-request-bytes`
/// (for the largest request a service decodes, and the size at which watch responses are
/// fragmented).
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;
