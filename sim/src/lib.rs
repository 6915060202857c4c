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

#[cfg(madsim)]
pub mod cluster;
#[cfg(madsim)]
pub mod invariants;
#[cfg(madsim)]
pub mod run;
#[cfg(madsim)]
pub mod workloads;
