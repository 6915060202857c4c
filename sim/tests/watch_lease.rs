//! Watch guarantees and lease safety under seeded faults (issue 5's simulator tests), over a
//! seed sweep sized by `DETCD_SIM_SEEDS`, and a same-seed replay check for each scenario.
//! (`tests/canaries.rs` checks that both scenarios notice their canaries.)
//!
//! Set `DETCD_SIM_TRACE=1` to print each passing run's trace.

#![cfg(madsim)]

use detcd_sim::replay;
use detcd_sim::trace::Trace;
use detcd_sim::workloads::{lease, scenario, watch};

/// Prints a passing run's trace when `DETCD_SIM_TRACE` is set.
fn show(trace: &Trace) {
    if std::env::var_os("DETCD_SIM_TRACE").is_some() {
        for e in trace.events() {
            eprintln!("  {e}");
        }
    }
}

#[test]
fn watch_guarantees_hold_across_leader_changes_and_partitions() {
    let params = watch::Params::default();
    let mut failures = Vec::new();
    for seed in scenario::sweep(4) {
        match watch::run(seed, &params) {
            Ok(o) => {
                eprintln!(
                    "watch seed {seed}: {:?}, {:?} simulated",
                    o.stats, o.simulated
                );
                show(&o.trace);
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn kept_alive_leases_survive_clock_skew_and_abandoned_ones_expire() {
    let params = lease::Params::default();
    let mut failures = Vec::new();
    for seed in scenario::sweep(4) {
        match lease::run(seed, &params) {
            Ok(o) => {
                eprintln!(
                    "lease seed {seed}: {:?}, {:?} simulated",
                    o.stats, o.simulated
                );
                show(&o.trace);
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same seed gives the same run, each in a fresh process (the only place a simulation is a
/// pure function of its seed: see `detcd_sim::replay`).
#[test]
fn a_watch_run_and_a_lease_run_replay_bit_for_bit() {
    const NAME: &str = "a_watch_run_and_a_lease_run_replay_bit_for_bit";
    if let Some(seed) = replay::requested_seed() {
        let watch = watch::run(seed, &watch::Params::default())
            .expect("watch run passes")
            .trace;
        let lease = lease::run(seed, &lease::Params::default())
            .expect("lease run passes")
            .trace;
        replay::report(watch.hash() ^ lease.hash().rotate_left(1));
        return;
    }
    let seed = 7;
    let a = replay::hash_in_fresh_process(NAME, seed);
    let b = replay::hash_in_fresh_process(NAME, seed);
    assert_eq!(a, b, "seed {seed} replayed differently");
}
