//! What the workload scenarios ([`watch`](super::watch), [`lease`](super::lease),
//! [`lock`](super::lock), [`txn`](super::txn)) share: running one seed in a fresh simulator
//! with a hang limit, how a run starts, the shape of a passing run, the report of a failing
//! one, and the seed range a test sweeps.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::ops::Range;
use std::time::Duration;

use detcd::compactor::Policy;
use detcd::config::Config;

use crate::cluster::{wait_leader, SimCluster};
use crate::nemesis::{generate, FaultKind, Schedule};
use crate::trace::Trace;

/// Simulated time after which a scenario counts as hung.
pub const HANG_LIMIT: Duration = Duration::from_secs(300);

/// A passing run: its trace (for same-seed replay checks), simulated time and figures.
#[derive(Debug, Clone)]
pub struct Passed<S> {
    /// What the scenario recorded, in order.
    pub trace: Trace,
    /// Simulated time the run took, cluster start-up included.
    pub simulated: Duration,
    /// The scenario's figures.
    pub stats: S,
    /// Fault episodes the nemesis started, per kind.
    pub faults_seen: BTreeMap<FaultKind, usize>,
}

/// Runs `scenario` for `seed` in a fresh madsim runtime; a run with no verdict within
/// [`HANG_LIMIT`] simulated is a failure. `what` names the scenario in messages.
pub fn run_seed<S, F>(what: &str, seed: u64, scenario: F) -> Result<S, String>
where
    F: Future<Output = Result<S, String>> + 'static,
{
    let rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    rt.block_on(async move {
        match tokio::time::timeout(HANG_LIMIT, scenario).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "{what} seed {seed}: hung (no verdict within {HANG_LIMIT:?} simulated)"
            )),
        }
    })
}

/// The schedule a scenario plays: `given` (a schedule replayed from a file or tried by a
/// shrink), or the one the seed draws over `nodes` members and `duration` from `faults`.
pub fn schedule(
    seed: u64,
    (nodes, duration): (usize, Duration),
    faults: &BTreeSet<FaultKind>,
    given: Option<&Schedule>,
) -> Schedule {
    match given {
        Some(s) => s.clone(),
        None => generate::random(seed, nodes, duration.as_millis() as u64, faults),
    }
}

/// What `schedule` sets on every member before it starts: auto-compaction, if the schedule
/// turns it on (the `auto-compaction` fault).
pub fn settings(schedule: &Schedule) -> impl Fn(&mut Config) + Send + Sync + 'static {
    let auto = schedule.auto_compaction();
    move |cfg: &mut Config| cfg.auto_compaction = auto.map(Policy::Periodic)
}

/// How every scenario starts, once its cluster is built with the [`settings`] of its
/// `schedule`: waits (from the client node) until the members agree on a leader, so that faults
/// hit a working cluster, and records the schedule in `trace`. Returns the members' client URLs.
pub async fn start(cluster: &SimCluster, schedule: &Schedule, trace: &mut Trace) -> Vec<String> {
    let urls = cluster.client_urls();
    let u = urls.clone();
    cluster.client(async move { wait_leader(&u).await }).await;
    trace.record(schedule.to_string());
    urls
}

/// How many problems a [`failure`] report lists; the rest are only counted.
const SHOWN: usize = 25;

/// A failing run's report, so that the seed can be replayed and the failure understood: the
/// scenario (`what`), the seed and the number of problems; the command that replays the seed
/// (`test` is the test binary and filter, e.g. `watch_lease lease`); the problems (at most
/// [`SHOWN`]); the fault schedule; and, if given, the scenario's trace.
pub fn failure(
    what: &str,
    seed: u64,
    test: &str,
    problems: &[String],
    schedule: &Schedule,
    trace: Option<&Trace>,
) -> String {
    let mut s = format!(
        "{what} seed {seed}: {} problem(s)\n  replay: DETCD_SIM_FIRST={seed} DETCD_SIM_SEEDS=10 \
         RUSTFLAGS=\"--cfg madsim\" CARGO_TARGET_DIR=target/madsim cargo test -p detcd-sim \
         --test {test}\n",
        problems.len()
    );
    for p in problems.iter().take(SHOWN) {
        s.push_str(&format!("  {p}\n"));
    }
    if problems.len() > SHOWN {
        s.push_str(&format!("  … and {} more\n", problems.len() - SHOWN));
    }
    s.push_str(&format!("schedule:\n{schedule}"));
    if let Some(trace) = trace {
        s.push_str("\ntrace:\n");
        for e in trace.events() {
            s.push_str(&format!("  {e}\n"));
        }
    }
    s
}

/// Fails a scenario with `problems`, the raft-log violations the nemesis found on the disks of
/// members it restarted (see [`crate::cluster::log_check`]), if there are any.
pub fn restarted_logs(
    what: &str,
    seed: u64,
    test: &str,
    problems: &[String],
    schedule: &Schedule,
) -> Result<(), String> {
    match problems {
        [] => Ok(()),
        _ => Err(failure(what, seed, test, problems, schedule, None)),
    }
}

/// The seeds a test sweeps: `DETCD_SIM_SEEDS / divisor` of them (at least one; the variable
/// defaults to 60), from `DETCD_SIM_FIRST` (default 100). CI sets `DETCD_SIM_SEEDS=300`.
pub fn sweep(divisor: u64) -> Range<u64> {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let first = env("DETCD_SIM_FIRST", 100);
    first..first + (env("DETCD_SIM_SEEDS", 60) / divisor.max(1)).max(1)
}
