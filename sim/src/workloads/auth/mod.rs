//! Auth under seeded faults: an admin revokes and grants a role's permission again and changes a
//! user's password while writers put keys with that user's tokens; the nemesis crashes, kills,
//! partitions, pauses, skews and jumps clocks, slows disks and networks meanwhile.
//!
//! Set up through one member before the faults: the root user and role, user [`USER`] with
//! role [`ROLE`], which may read and write the prefix [`PREFIX`], and auth enabled.
//!
//! - **The admin** (root's token) alternates revoking and granting [`ROLE`]'s permission on
//!   [`PREFIX`], and now and then sets [`USER`]'s password to a new generation; each change is
//!   recorded with its interval and whether it was acknowledged or refused.
//! - **The writers** authenticate as [`USER`] (with the newest password generation the admin
//!   sent, else the ones before) and put unique keys `p/<writer>-<n>` through random members;
//!   a put refused for an invalid token or an old auth revision sends the writer back to
//!   authenticate. Every put and authentication is recorded with its interval and outcome.
//!
//! Judged ([`judge::judge`]): no put succeeds that an acknowledged revocation forbids, no
//! authentication with an old password succeeds after an acknowledged change; after healing,
//! every member reports the same auth revision (at least the setup's plus one per
//! acknowledged change) and serves the same keys, which hold every acknowledged put and no
//! refused one.
//!
//! The run is in `scenario.rs`, setup and the final reading in `setup.rs`, the admin and the
//! writers in `clients.rs`, the verdict in `judge.rs`.

mod clients;
pub mod judge;
mod scenario;
mod setup;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::Status;

use crate::nemesis::{FaultKind, Schedule};
use crate::workloads::scenario::{run_seed, Passed};

/// The writers' key prefix, the one the role's permission covers.
pub const PREFIX: &str = "p/";
/// The writers' role.
pub const ROLE: &str = "r";
/// The writers' user.
pub const USER: &str = "w";
/// Root's password.
const ROOT_PASSWORD: &str = "rootpw";
/// Per-request timeout of the clients.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// The writers' password of generation `g` (0: the one set up).
pub fn password(g: u64) -> String {
    format!("pw{g}")
}

/// The shape of one run.
#[derive(Debug, Clone)]
pub struct Params {
    /// Members.
    pub nodes: usize,
    /// Writers.
    pub writers: u64,
    /// Length of the faulty phase.
    pub duration: Duration,
    /// The nemesis's fault kinds the seed may enable.
    pub faults: BTreeSet<FaultKind>,
    /// Play this schedule instead of drawing one from `faults` (a replay or a shrink).
    pub schedule: Option<Schedule>,
}

impl Default for Params {
    /// Three members, three writers, eight seconds, and every fault that leaves the membership
    /// and the disks' contents as they are, auto-compaction included.
    fn default() -> Self {
        Params {
            nodes: 3,
            writers: 3,
            duration: Duration::from_secs(8),
            faults: [
                FaultKind::Crash,
                FaultKind::Kill,
                FaultKind::Partition,
                FaultKind::Pause,
                FaultKind::ClockSkew,
                FaultKind::ClockJump,
                FaultKind::SlowDisk,
                FaultKind::NetDelay,
                FaultKind::NetLoss,
                FaultKind::OneWay,
                FaultKind::Bridge,
                FaultKind::IsolateLeader,
                FaultKind::Swizzle,
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
    /// Acknowledged revocations.
    pub revokes: usize,
    /// Acknowledged grants.
    pub grants: usize,
    /// Acknowledged password changes.
    pub passwords: usize,
    /// Puts acknowledged.
    pub puts_ok: usize,
    /// Puts refused with permission denied.
    pub denied: usize,
    /// Puts that an acknowledged revocation forbids (each must have failed).
    pub forbidden: usize,
    /// Puts refused for an old auth revision or an invalid token.
    pub stale: usize,
    /// Puts with no definite outcome.
    pub unknown: usize,
    /// Authentications refused for a wrong password.
    pub wrong_password: usize,
    /// The auth revision every member agreed on at the end.
    pub auth_revision: u64,
}

/// A passing run of this scenario.
pub type Outcome = Passed<Stats>;

/// Runs one seed in a fresh simulator; `Err` describes the violations, with the schedule.
pub fn run(seed: u64, params: &Params) -> Result<Outcome, String> {
    run_seed("auth", seed, scenario::scenario(seed, params.clone()))
}

/// What the clients recorded, shared between them.
#[derive(Default)]
struct Logs {
    /// The admin's changes, puts and authentications.
    history: judge::History,
    /// The newest password generation the admin sent.
    newest_password: u64,
}

/// The clients' shared [`Logs`].
type Shared = Arc<Mutex<Logs>>;

/// Whether `s` is a refusal the cluster judged, so that the request certainly had no effect.
fn refused(s: &Status) -> bool {
    let m = s.message();
    [
        "permission denied",
        "revision of auth store is old",
        "invalid auth token",
        "authentication failed",
        "user name is empty",
        "permission is not granted",
        "role name not found",
        "user name not found",
    ]
    .iter()
    .any(|r| m.contains(r))
}

/// Whether `s` says the caller must authenticate again.
fn stale_token(s: &Status) -> bool {
    let m = s.message();
    m.contains("invalid auth token")
        || m.contains("revision of auth store is old")
        || m.contains("user name is empty")
}
