//! detcd clusters inside madsim: every node runs the real server code on the simulated
//! network, clock and [`SimDisk`](detcd::io::disk::SimDisk), so a seed fixes the whole run.
//!
//! Build and run with `RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim cargo test -p
//! detcd-sim`. In a normal build this crate only exports what needs no simulator: [`trace`]
//! the schedule types and generator of [`nemesis`], and the [`shrink`]ing search.

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
