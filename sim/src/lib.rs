//! detcd clusters inside madsim: every node runs the real server code on the simulated
//! network, clock and [`SimDisk`](detcd::io::disk::SimDisk), so a seed fixes the whole run.
//!
//! Build and run with `RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim cargo test -p
//! detcd-sim`. In a normal build this crate only exports what needs no simulator: [`trace`]
//! the schedule types and generator of [`nemesis`], and the [`shrink`]ing search.
//!
//! Only in the simulator build: `cluster` (members on simulated hosts, disks and clocks, which
//! the [`nemesis`] breaks), `workloads` (what clients do, and how each history is judged),
//! `invariants` (checked while a run goes) and `run` (one seed, one verdict, in a child
//! process), which the [`cli`] drives.

// Every public item says what it is for: the harness is read mostly when a seed fails.
#![warn(missing_docs)]

pub mod cli;
pub mod nemesis;
pub mod replay;
pub mod shrink;
pub mod trace;
pub mod workload;

#[cfg(madsim)]
pub mod cluster;
#[cfg(madsim)]
pub mod invariants;
#[cfg(madsim)]
pub mod run;
#[cfg(madsim)]
pub mod workloads;

/// Prints the members' logs to stderr, in simulated time, when `DETCD_SIM_LOG=<filter>` is set
/// (tracing's env-filter syntax, e.g. `openraft=info,detcd=debug`): for replaying one seed, from
/// the CLI or a test. Does nothing without the variable, or when a subscriber is already set.
pub fn log_from_env() {
    if let Ok(filter) = std::env::var("DETCD_SIM_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
}
