//! Lock safety under seeded faults (issue 5's simulator test "locks are mutually exclusive by
//! fencing revision"), over a seed sweep sized by `DETCD_SIM_SEEDS`, and a same-seed replay.

#![cfg(madsim)]

use detcd_sim::replay;
use detcd_sim::workloads::lock::{self, Params};
use detcd_sim::workloads::scenario;

#[test]
fn locks_are_mutually_exclusive_by_fencing_token() {
    let params = Params::default();
    let mut failures = Vec::new();
    for seed in scenario::sweep(10) {
        match lock::run(seed, &params) {
            Ok(o) => eprintln!(
                "lock seed {seed}: {:?} in {:?} simulated",
                o.stats, o.simulated
            ),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same seed gives the same run, each in a fresh process (the only place a simulation is a
/// pure function of its seed: see `detcd_sim::replay`).
#[test]
fn a_lock_run_replays_bit_for_bit() {
    const NAME: &str = "a_lock_run_replays_bit_for_bit";
    if let Some(seed) = replay::requested_seed() {
        let run = lock::run(seed, &Params::default()).expect("the replayed seed passes");
        replay::report(run.trace.hash());
        return;
    }
    for seed in [3, 4] {
        let a = replay::hash_in_fresh_process(NAME, seed);
        let b = replay::hash_in_fresh_process(NAME, seed);
        assert_eq!(a, b, "seed {seed} replayed differently");
    }
}
