//! What the workload scenarios ([`watch`](super::watch), [`lease`](super::lease),
//! [`lock`](super::lock), [`txn`](super::txn)) share: running one seed in a fresh simulator
//! with a hang limit, the shape of a passing run, and the seed range a test sweeps.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::future::Future;
use std::ops::Range;
use std::time::Duration;

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
