//! Leases: which exist, when they expire, and what a grant gets — no raft and no gRPC here.
//!
//! - [`lessor`]: which leases exist (replicated through raft: grant, revoke, checkpoint) and, on
//!   the leader only, when each expires on the leader's clock.
//! - [`grant`]: what the member receiving a LeaseGrant decides before proposing it (ID, TTL).
//!
//! Keep-alive and time-to-live are answered by the leader alone (followers forward a
//! [`LeaderCall`]); the leader's expiry and checkpoint loops live with raft
//! (`raft::leases`), and the gRPC service in `server::lease`.

pub mod grant;
pub mod lessor;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use lessor::Lessor;

/// A lease operation only the leader can answer (it alone knows expiries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaderCall {
    /// Renew lease `0` (one LeaseKeepAlive request).
    Renew(i64),
    /// Remaining TTL of lease `id`, with its attached keys if `keys`.
    TimeToLive {
        /// The lease.
        id: i64,
        /// Whether to list the attached keys.
        keys: bool,
    },
}

/// The leader's answer to a [`LeaderCall`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaderAnswer {
    /// The renewed lease's TTL; 0 if it does not exist (or already expired).
    Renewed(i64),
    /// Remaining TTL (-1 for an unknown lease), granted TTL (0 if unknown), attached keys.
    TimeToLive(i64, i64, Vec<Vec<u8>>),
}

/// How often the leader looks for expired leases (etcd: every 500 ms).
pub const EXPIRY_TICK: Duration = Duration::from_millis(500);

/// How often the leader checkpoints remaining TTLs with `--experimental-enable-lease-checkpoint`
/// (etcd: every 5 minutes; leases with a TTL no longer than that are not checkpointed).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(300);
