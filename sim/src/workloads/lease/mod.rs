//! Leases under clock skew: a key whose lease was kept alive is never deleted before the TTL
//! the lease was last renewed with has elapsed, even while members' clocks disagree, leaders
//! crash and the network splits; and a lease no longer kept alive does expire once the faults
//! heal.
//!
//! # The property, and why it is the right one
//!
//! A client learns a lease's TTL only from a response: the grant's, or a keep-alive's (`ttl`,
//! 0 when the lease is gone). etcd's leader renews a lease by setting its expiry to *now + TTL
//! on the leader's own monotonic clock*, and a newly elected leader gives every lease its full
//! TTL again from its election. A renewal the client sent at (true) time `t` happened at or
//! after `t` — on the leader that answered, or, if leadership changed since, a later leader
//! restarted the TTL even later; and a deposed leader's revocations cannot commit, while one
//! already in the new leader's log is applied before the new leader renews anything. So if
//! the leader's clock runs at most `ρ` fast, the lease cannot expire before `t + TTL / (1 + ρ)`
//! in true time, and its keys (deleted only by the revocation) are in every linearizable read
//! that completes before then. Only keep-alives that *succeeded* count: a client cut off from
//! the leader sees its keep-alives fail, and its lease may legitimately expire.
//!
//! The check: every linearizable read of the prefix that started after the key was known to
//! exist (its put acknowledged, or an earlier read saw it) and completed before
//! `t + TTL / (1 + ρ)` for some successful renewal sent at `t` must contain the key; and no
//! keep-alive may answer "gone" (TTL 0) before then. Besides readers throughout, each lease is
//! probed by a read just before its last renewal's protection ends, where an early expiry
//! shows. Liveness: once the faults heal and keep-alives stop, every lease and key is gone
//! within the longest TTL (plus the rate margin) and `EXPIRY_SLACK`.
//!
//! # The clock skew, and the bound chosen
//!
//! Every member gets a random clock offset of up to ±2 s and a rate error of up to ±2%
//! ([`MAX_OFFSET_MS`], [`MAX_RATE_PPM`]) before it first reads its clock (the wall clock takes
//! the offset as is; a monotonic clock, which the seam never lets start below true time, takes
//! its forward part); during the run members' rates change, with their monotonic clocks kept
//! continuous. etcd's leases measure durations on one member's monotonic
//! clock and never compare instants across members, so offsets must not matter at all (a bug
//! comparing instants across members would show). The rate error is what the design tolerates
//! by margin: it shortens a TTL to `TTL / (1 + ρ)` in true time, which the check accounts
//! for, and clients renew every TTL/3, far inside it. ±2% is already far beyond real hardware
//! (quartz drifts by tens of ppm, NTP slews by at most 500 ppm) while keeping leases of a few
//! seconds meaningful. What the design does *not* tolerate is a monotonic clock jumping forward
//! (a leader whose clock steps ahead expires leases early, in etcd as here); real monotonic
//! clocks never step, so this scenario does not use the nemesis's clock steps.
//!
//! Faults besides skew: the nemesis's partitions, pauses and slow disks on random members, and
//! a leader killer that power-cuts whichever member currently leads and restarts it a moment
//! later (it replaces the nemesis's random crashes, see [`Params::default`]).
//!
//! # The code
//!
//! The run is in `scenario.rs`; the clients that grant, renew and read in `client.rs`; the
//! checks in `check.rs`; the wait for every lease to go in `expiry.rs`; and the scenario's own
//! faults (clock rates, leader kills) in `disorder.rs`.

mod check;
mod client;
mod disorder;
mod expiry;
mod scenario;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::nemesis::{FaultKind, Schedule};
use crate::workloads::scenario::{run_seed, Passed};

/// The prefix of the leased keys.
pub const PREFIX: &str = "l/";
/// Largest clock offset between a member and true time, in milliseconds.
pub const MAX_OFFSET_MS: i64 = 2_000;
/// Largest clock rate error, in parts per million (2%).
pub const MAX_RATE_PPM: i64 = 20_000;
/// Granted TTLs, in seconds (etcd's minimum with the default election timeout is 2 s).
const TTLS: std::ops::RangeInclusive<i64> = 2..=5;
/// Time allowed, after healing and beyond the longest TTL, for every abandoned lease to be
/// revoked: a leader election, an expiry tick, a lost revocation's retry, the commit.
const EXPIRY_SLACK: Duration = Duration::from_secs(15);
/// Per-request timeout of the clients.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client waits for a member to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The shape of one run.
#[derive(Debug, Clone)]
pub struct Params {
    /// Members.
    pub nodes: usize,
    /// Concurrent clients granting and keeping alive leases.
    pub clients: u64,
    /// Concurrent readers.
    pub readers: u64,
    /// Length of the faulty phase.
    pub duration: Duration,
    /// The nemesis's fault kinds the seed may enable (clock steps are never used; skew is this
    /// scenario's own, see the module docs).
    pub faults: BTreeSet<FaultKind>,
    /// Play this schedule instead of drawing one from `faults` (a replay or a shrink).
    pub schedule: Option<Schedule>,
    /// Whether a leader killer runs besides the nemesis.
    pub kill_leaders: bool,
}

impl Default for Params {
    /// Three members, four clients, two readers, eight seconds, partitions, pauses, slow disks,
    /// auto-compaction and the leader killer. (The nemesis's own crashes are left out: a member it believes
    /// crashed might be one the leader killer already restarted, and madsim's restart of a
    /// running member keeps the old incarnation's sockets.)
    fn default() -> Self {
        Params {
            nodes: 3,
            clients: 4,
            readers: 2,
            duration: Duration::from_secs(8),
            faults: [
                FaultKind::Partition,
                FaultKind::Pause,
                FaultKind::SlowDisk,
                FaultKind::AutoCompaction,
            ]
            .into_iter()
            .collect(),
            kill_leaders: true,
            schedule: None,
        }
    }
}

/// What a passing run measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Leases granted (acknowledged).
    pub leases: usize,
    /// Keep-alives that succeeded.
    pub renewals: usize,
    /// Keep-alives that failed (error, timeout, or TTL 0).
    pub failed_renewals: usize,
    /// Linearizable reads checked.
    pub reads: usize,
    /// (lease, read) pairs where the lease was protected and its key had to be present.
    pub protected_checks: usize,
    /// Leaders the leader killer power-cut.
    pub leaders_killed: usize,
    /// Simulated milliseconds from the end of the faulty phase until every lease was gone.
    pub expiry_ms: u64,
}

/// A passing run of this scenario.
pub type Outcome = Passed<Stats>;

/// Runs one seed in a fresh simulator; `Err` describes every violation, with the schedule.
pub fn run(seed: u64, params: &Params) -> Result<Outcome, String> {
    run_seed("lease", seed, scenario::scenario(seed, params.clone()))
}

/// Milliseconds since the start of the run (true, simulated time).
type Ms = u64;

/// A renewal the cluster acknowledged: the grant, or a keep-alive with a positive TTL.
#[derive(Debug, Clone, Copy)]
struct Renewal {
    sent: Ms,
    answered: Ms,
    ttl: i64,
}

/// One lease and what its client learned about it.
#[derive(Debug, Clone, Default)]
struct LeaseLog {
    id: i64,
    key: String,
    /// When the put of `key` was acknowledged, if it was.
    put_acked: Option<Ms>,
    renewals: Vec<Renewal>,
    /// Keep-alives that failed: (sent, why).
    failed: Vec<(Ms, String)>,
    /// When a keep-alive answered TTL 0 (the lease was gone).
    seen_gone: Option<Ms>,
}

/// A linearizable read of the prefix that succeeded.
#[derive(Debug, Clone)]
struct Read {
    invoked: Ms,
    completed: Ms,
    keys: BTreeSet<String>,
}

#[derive(Default)]
struct Logs {
    leases: Vec<LeaseLog>,
    reads: Vec<Read>,
}

type Shared = Arc<Mutex<Logs>>;
