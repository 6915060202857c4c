//! Locks under seeded faults: clients contend for one lock through etcd's Lock service on
//! random members, guard a resource with the lock's fencing token, and release; the nemesis
//! crashes, partitions, pauses, skews and jumps clocks, slows disks and networks meanwhile.
//! detcd-jepsen's lock checker then judges the history ([`detcd_jepsen::lock`]).
//!
//! # What a client records
//!
//! - **Acquisition**: the Lock call's invoke and completion; the token is the lock key's create
//!   revision, read right after (that read also proves the key existed at its invoke time).
//!   A lock whose key is already gone by then (its lease expired) is recorded as nothing: the
//!   history cannot name its token.
//! - **Access**: the guarded resource is an etcd key written by a txn that succeeds only while
//!   the lock key still has the token as create revision — fencing inside etcd. An access the
//!   cluster accepted is recorded with its interval.
//! - **Release**: half the seeds release through a txn deleting the key only if it still carries
//!   the token, which tells whether the holder still held the lock until then (the checker then
//!   verifies mutual exclusion over the whole hold); the other half call the Lock service's
//!   Unlock, whose answer does not say it (token order, uniqueness and fencing are checked).
//!
//! Each client keeps its own lease alive in the background; when the lease is found gone, it
//! grants a new one. A client whose release may not have happened (no answer) retires its
//! lease: locking again with it would find the old key and hold the lock under the same token
//! again (etcd's locks are re-entrant per lease), which the history could not tell from a
//! duplicate token. Clock jumps may expire a lease early on a leader whose clock leaps: that
//! frees the lock legitimately, and fencing is what keeps the stale holder out.
//!
//! The run is in `scenario.rs`, the clients in `client.rs`, and the leases they lock with in
//! `lease.rs`.

mod client;
mod lease;
mod scenario;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use detcd_jepsen::lock::LockHold;
use tonic::transport::Channel;

use crate::nemesis::{FaultKind, Schedule};
use crate::workloads::client::{channel, random_member};
use crate::workloads::scenario::{run_seed, Passed};

/// The lock's name.
pub const LOCK: &str = "lock";
/// The guarded resource's key.
pub const RESOURCE: &str = "resource";
/// Per-request timeout of the clients; a Lock call waits for its turn at most this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// The clients' lease TTL in seconds; they renew every third of it.
const TTL: i64 = 3;

/// The shape of one run.
#[derive(Debug, Clone)]
pub struct Params {
    /// Members.
    pub nodes: usize,
    /// Clients contending for the lock.
    pub clients: u64,
    /// Length of the faulty phase.
    pub duration: Duration,
    /// The nemesis's fault kinds the seed may enable.
    pub faults: BTreeSet<FaultKind>,
    /// Play this schedule instead of drawing one from `faults` (a replay or a shrink).
    pub schedule: Option<Schedule>,
}

impl Default for Params {
    /// Three members, four clients, eight seconds, and every fault that leaves the membership
    /// as it is, auto-compaction included.
    fn default() -> Self {
        Params {
            nodes: 3,
            clients: 4,
            duration: Duration::from_secs(8),
            faults: [
                FaultKind::Crash,
                FaultKind::Partition,
                FaultKind::Pause,
                FaultKind::ClockSkew,
                FaultKind::ClockJump,
                FaultKind::SlowDisk,
                FaultKind::NetDelay,
                FaultKind::NetLoss,
                FaultKind::IsolateLeader,
                FaultKind::AutoCompaction,
            ]
            .into_iter()
            .collect(),
            schedule: None,
        }
    }
}

/// What a passing run measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Acquisitions recorded (with a token).
    pub holds: usize,
    /// Accesses the fenced resource accepted.
    pub accesses: usize,
    /// Releases proven to have held the lock until they were sent.
    pub held_releases: usize,
    /// Lock calls that failed or timed out.
    pub failed_locks: usize,
}

/// A passing run of this scenario.
pub type Outcome = Passed<Stats>;

/// Runs one seed in a fresh simulator; `Err` describes the violations, with the schedule.
pub fn run(seed: u64, params: &Params) -> Result<Outcome, String> {
    run_seed("lock", seed, scenario::scenario(seed, params.clone()))
}

/// What the clients recorded, shared between them.
#[derive(Default)]
struct Logs {
    /// Every acquisition with a token, its accesses and its release.
    holds: Vec<LockHold>,
    /// Lock calls that failed or timed out.
    failed_locks: usize,
}

/// The clients' shared [`Logs`].
type Shared = Arc<Mutex<Logs>>;

/// Connects to a random member within the request timeout.
async fn any_member(urls: &[String]) -> Option<Channel> {
    channel(&urls[random_member(urls)], REQUEST_TIMEOUT).await
}
