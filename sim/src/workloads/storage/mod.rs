//! Crashes in the middle of the storage's own work: while the WAL rolls to a new segment, while
//! it purges old ones, and while the state machine's writes are not yet flushed (issue 11: a
//! crash at any point loses no acknowledged write and applies nothing twice).
//!
//! Three members on slow disks (every fsync and segment creation takes a few simulated ms)
//! take a steady stream of puts of unique keys with values large enough that segments fill in a
//! few entries, and snapshots every [`SIM_SNAPSHOT_COUNT`](crate::cluster::SIM_SNAPSHOT_COUNT)
//! entries purge them (each purge first flushes the state machine, then writes its record,
//! syncs, and removes segments). A crasher follows every member's WAL from outside
//! ([`WalWatch`](crate::cluster::wal::WalWatch)) and power-cuts or kills a member when it sees a
//! segment nearly full (a roll is due), a new segment, a purge record written (its sync and the
//! removals follow), or segments removed — after a random delay of up to a few fsyncs — and at
//! random moments besides; one member is down at a time, and comes back after a while. A power
//! cut keeps a seed-chosen prefix of the state machine's unsynced write batches, as a flush cut
//! short would, and loses the rest; the member re-applies them from its WAL.
//!
//! Judged: every member starts again every time (a refusal is a failure: nothing
//! here damages a disk beyond losing or tearing unsynced writes); after the cluster converges
//! every member serves the same keys, values, mod revisions, versions and store revision; every
//! acknowledged put is there at the revision it was acknowledged at; every key is at version 1
//! and the mod revisions are exactly `2..=revision` (each entry applied once, none twice); no
//! key appears that no client wrote; the invariants of [`Monitor`](crate::invariants::Monitor)
//! hold throughout.
//!
//! The run is in `scenario.rs`, the crasher in `crasher.rs`, the writers and the final reading
//! in `writer.rs`, the verdict in `judge.rs`.

mod crasher;
mod judge;
mod scenario;
mod writer;

use std::time::Duration;

use crate::workloads::scenario::{run_seed, Passed};

/// The shape of one run.
#[derive(Debug, Clone)]
pub struct Params {
    /// Members.
    pub nodes: usize,
    /// Concurrent writers.
    pub writers: u64,
    /// Bytes of each value.
    pub value_bytes: usize,
    /// How long the writers write and the crasher crashes.
    pub duration: Duration,
}

impl Default for Params {
    /// Three members, four writers of 300-byte values, fifteen seconds.
    fn default() -> Self {
        Params {
            nodes: 3,
            writers: 4,
            value_bytes: 300,
            duration: Duration::from_secs(15),
        }
    }
}

/// Where the crasher struck, by what made it strike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Crashes {
    /// Power cuts (unsynced writes lost or torn).
    pub power_cuts: u64,
    /// Process kills (unsynced writes survive).
    pub kills: u64,
    /// Struck after seeing a segment nearly full.
    pub after_nearly_full: u64,
    /// Struck after seeing a new segment.
    pub after_roll: u64,
    /// Struck after seeing a purge record written.
    pub after_purge_record: u64,
    /// Struck after seeing segments removed.
    pub after_removal: u64,
    /// Struck after seeing a truncation record (a conflicting suffix dropped).
    pub after_truncation: u64,
    /// Struck at a random moment.
    pub at_random: u64,
    /// Struck while a roll was due or under way (the last segment nearly full, no new one yet).
    pub during_roll: u64,
    /// Struck while a purge was under way (its record written, the segments it lets go still
    /// there).
    pub during_purge: u64,
    /// Power cuts that lost some of the state machine's unsynced writes: what the member had
    /// applied since its last flush must come back from the WAL, each entry exactly once.
    pub state_lost: u64,
    /// Of those, the ones that kept a prefix of the unsynced writes and lost the rest, as a
    /// state-machine flush cut short leaves the store.
    pub state_torn: u64,
}

/// What a passing run measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Puts acknowledged (each checked on every member).
    pub acked: usize,
    /// Puts whose outcome is unknown (timed out or failed).
    pub unknown: usize,
    /// The crasher's strikes.
    pub crashes: Crashes,
    /// WAL segments rolled, over the members.
    pub rolled: u64,
    /// WAL segments purged, over the members.
    pub purged: u64,
}

/// Runs `seed`; `Ok` with its trace and figures if everything held, else the failure report.
pub fn run(seed: u64, params: &Params) -> Result<Passed<Stats>, String> {
    let p = params.clone();
    run_seed("storage", seed, scenario::scenario(seed, p))
}
