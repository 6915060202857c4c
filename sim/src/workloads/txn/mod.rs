//! Multi-key transactions under seeded faults: bank transfers that must conserve the total.
//!
//! Four accounts start at 100 each (one txn before the clients start). Clients, through random
//! members, either read every account in one read-only txn, or transfer: read two accounts, then
//! a txn that writes both new balances only if neither changed since (compare `mod_revision`,
//! etcd's compare-and-swap). Every operation, txns included, is recorded for detcd-jepsen's etcd
//! KV model, which judges the whole history for linearizability; and every read of all accounts
//! must sum to 400 — a txn applied in part, or a read that sees half of one, breaks it.
//!
//! The run itself is in `scenario.rs`, the clients in `client.rs`, and opening and reading the
//! accounts (with how those reads are recorded) in `accounts.rs`.

mod accounts;
mod client;
mod scenario;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::nemesis::{FaultKind, Schedule};
use crate::workloads::register::KvOp;
use crate::workloads::scenario::{run_seed, Passed};

/// The accounts.
pub const ACCOUNTS: [&str; 4] = ["acct0", "acct1", "acct2", "acct3"];
/// Each account's opening balance.
pub const OPENING: i64 = 100;
/// Per-request timeout of the clients.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// The shape of one run.
#[derive(Debug, Clone)]
pub struct Params {
    /// Members.
    pub nodes: usize,
    /// Concurrent clients.
    pub clients: u64,
    /// Operations per client at most (keeps the checker's search small).
    pub ops_per_client: usize,
    /// Length of the faulty phase.
    pub duration: Duration,
    /// The nemesis's fault kinds the seed may enable.
    pub faults: BTreeSet<FaultKind>,
    /// Play this schedule instead of drawing one from `faults` (a replay or a shrink).
    pub schedule: Option<Schedule>,
}

impl Default for Params {
    /// Three members, four clients of at most 40 operations, six seconds, crashes, partitions,
    /// pauses, clock skew and slow disks, message delay and loss, an isolated leader, and
    /// auto-compaction.
    fn default() -> Self {
        Params {
            nodes: 3,
            clients: 4,
            ops_per_client: 40,
            duration: Duration::from_secs(6),
            faults: [
                FaultKind::Crash,
                FaultKind::Partition,
                FaultKind::Pause,
                FaultKind::ClockSkew,
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
    /// Operations checked.
    pub ops: usize,
    /// Transfers that committed.
    pub transfers: usize,
    /// Reads of every account (each summed to the total).
    pub audits: usize,
}

/// A passing run of this scenario.
pub type Outcome = Passed<Stats>;

/// Runs one seed in a fresh simulator; `Err` describes the violation, with the schedule.
pub fn run(seed: u64, params: &Params) -> Result<Outcome, String> {
    run_seed("txn", seed, scenario::scenario(seed, params.clone()))
}

/// What the clients recorded, shared between them.
#[derive(Default)]
struct Logs {
    /// Every operation, for the linearizability check.
    ops: Vec<KvOp>,
    /// Transfers that committed.
    transfers: usize,
    /// Reads of every account.
    audits: usize,
    /// Audits that did not sum to the total.
    broken: Vec<String>,
}

/// The clients' shared [`Logs`].
type Shared = Arc<Mutex<Logs>>;
