//! The runner: one seed, one fresh simulated cluster, one verdict.
//!
//! [`run`] draws the seed's fault schedule and plays it; [`run_schedule`] plays a given one
//! (a replay from a file, or a shrinking candidate). Either way the whole run happens in a new
//! madsim runtime seeded with the seed, so the same (config, schedule) always gives the same
//! trace. A violation — a non-linearizable history, a broken invariant, a panic anywhere in
//! the simulated cluster, no convergence after healing — never panics out of the runner: it is
//! caught and reported as a [`Failure`], with the checker's explanation and an HTML report.
//!
//! **One run per process.** A run is a pure function of (config, schedule) only as the first
//! simulation in its process: tokio keeps a process-wide counter that seeds each thread's
//! generator for `select!` branch order and `sync::watch` wake-up order (both used under the
//! server, by openraft among others), and some libraries seed process-wide state on first use.
//! A second run in the same process therefore takes another, equally valid, path — fine for
//! finding bugs, useless for replaying them. [`isolated`] runs each simulation in a child
//! process (`detcd-sim --worker`); the CLI always does, and so must anything that compares or
//! replays runs.

mod converge;
pub mod isolated;
mod outcome;
mod panics;
mod scenarios;
mod simulate;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use detcd_jepsen::Verdict;

use detcd::io::canary::{self, Canary};
use serde::{Deserialize, Serialize};

use crate::nemesis::{generate, FaultKind, Schedule, EVERY_FAULT};
use crate::workload::Workload;

pub use panics::quiet_panics;

/// What to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    /// The simulator's seed: fixes the schedule, every message delay, every random choice.
    pub seed: u64,
    /// Cluster size at start (1..=7).
    pub nodes: usize,
    /// The fault kinds the seed may enable (it picks a random subset).
    pub faults: BTreeSet<FaultKind>,
    /// Length of the faulty phase; the workload runs this long, then everything heals.
    pub duration: Duration,
    /// Concurrent workload clients.
    pub clients: u64,
    /// Where HTML reports of failing runs go.
    pub report_dir: PathBuf,
    /// Canaries (deliberately wrong server behaviours, `detcd::io::canary`) switched on for
    /// the run, by name; empty for the real server.
    #[serde(default)]
    pub canaries: Vec<String>,
    /// What the clients do; [`Workload::All`] picks one per seed.
    #[serde(default)]
    pub workload: Workload,
}

impl RunConfig {
    /// Three members, every fault, six seconds, five clients; reports under the system's
    /// temporary directory.
    pub fn new(seed: u64) -> RunConfig {
        RunConfig {
            seed,
            nodes: 3,
            faults: EVERY_FAULT.into_iter().collect(),
            duration: Duration::from_secs(6),
            clients: 5,
            report_dir: std::env::temp_dir().join("detcd-sim"),
            canaries: Vec::new(),
            workload: Workload::Register,
        }
    }

    /// The same configuration under another seed.
    pub fn with_seed(&self, seed: u64) -> RunConfig {
        RunConfig {
            seed,
            ..self.clone()
        }
    }

    /// The workload this configuration's seed plays.
    pub fn workload(&self) -> Workload {
        self.workload.resolve(self.seed)
    }

    /// The fault kinds the seed may draw: those asked for that its workload was written to
    /// withstand (see [`scenarios::faults_of`]).
    pub fn faults(&self) -> BTreeSet<FaultKind> {
        let able = scenarios::faults_of(self.workload());
        self.faults.intersection(&able).copied().collect()
    }

    /// The schedule this configuration's seed draws.
    pub fn schedule(&self) -> Schedule {
        generate::random(
            self.seed,
            self.nodes,
            self.duration.as_millis() as u64,
            &self.faults(),
        )
    }
}

/// Why a run failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    /// One line: what went wrong.
    pub message: String,
    /// The checker's explanation (or the invariant violations, or the panic), in full.
    pub explanation: String,
    /// The HTML report, if it could be written.
    pub html_path: Option<PathBuf>,
}

/// What one run did and found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// The schedule that was played.
    pub schedule: Schedule,
    /// Hash of the trace: equal for two runs of the same (config, schedule).
    pub trace_hash: u64,
    /// The trace itself, line by line.
    pub trace: Vec<String>,
    /// Client operations recorded and checked.
    pub ops: usize,
    /// The linearizability checker's verdict (`Unknown` if the run never got to the check).
    pub verdict: Verdict,
    /// Fault episodes actually started, per kind.
    pub faults_seen: BTreeMap<FaultKind, usize>,
    /// Simulated time the run took, cluster start-up and the liveness phase included.
    pub simulated: Duration,
    /// `None` if everything held.
    pub failure: Option<Failure>,
    /// WAL segments the members rolled and purged, summed.
    #[serde(default)]
    pub wal: crate::cluster::wal::WalStats,
    /// Times a member refused to start.
    #[serde(default)]
    pub refusals: usize,
    /// The workload the run played.
    #[serde(default)]
    pub workload: Workload,
    /// The workload's own figures, for people (empty for the register workload, whose figures
    /// are the fields above).
    #[serde(default)]
    pub stats: String,
}

impl RunReport {
    /// The report of a run of `config` with `schedule` that has not (yet) produced anything.
    pub fn empty(config: &RunConfig, schedule: &Schedule) -> RunReport {
        RunReport {
            seed: config.seed,
            schedule: schedule.clone(),
            trace_hash: 0,
            trace: Vec::new(),
            ops: 0,
            verdict: Verdict::Unknown,
            faults_seen: Default::default(),
            simulated: Default::default(),
            failure: None,
            wal: Default::default(),
            refusals: 0,
            workload: config.workload(),
            stats: String::new(),
        }
    }

    /// Whether the run found nothing wrong.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// Runs `config`'s seed with the schedule it draws.
pub fn run(config: &RunConfig) -> RunReport {
    run_schedule(config, &config.schedule())
}

/// Runs `config`'s seed with `schedule` instead of the drawn one (its `duration_ms` wins over
/// `config.duration`).
pub fn run_schedule(config: &RunConfig, schedule: &Schedule) -> RunReport {
    let canaries: Result<Vec<Canary>, String> = config.canaries.iter().map(|c| c.parse()).collect();
    let _on = match canaries {
        Ok(c) => canary::enable(c),
        Err(e) => return outcome::judge(config, schedule, Err(format!("bad canary: {e}"))),
    };
    if config.workload() != Workload::Register {
        return scenarios::run(config, schedule);
    }
    let simulated = panics::catching(|| simulate::simulate(config, schedule));
    outcome::judge(config, schedule, simulated)
}
