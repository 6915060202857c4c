//! Multi-key transactions under seeded faults (issue 6's workloads): bank transfers by
//! compare-and-swap txns through random members conserve the total, and the whole history —
//! txns included — is linearizable. Seeds: a tenth of `DETCD_SIM_SEEDS` from `DETCD_SIM_FIRST`.

#![cfg(madsim)]

use detcd_sim::replay;
use detcd_sim::workloads::scenario;
use detcd_sim::workloads::txn::{self, Params};

#[test]
fn transfers_conserve_the_total_and_are_linearizable() {
    let params = Params::default();
    let mut failures = Vec::new();
    for seed in scenario::sweep(10) {
        match txn::run(seed, &params) {
            Ok(o) => eprintln!(
                "txn seed {seed}: {:?} in {:?} simulated",
                o.stats, o.simulated
            ),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same seed gives the same run, each in a fresh process.
#[test]
fn a_txn_run_replays_bit_for_bit() {
    const NAME: &str = "a_txn_run_replays_bit_for_bit";
    if let Some(seed) = replay::requested_seed() {
        let run = txn::run(seed, &Params::default()).expect("the replayed seed passes");
        replay::report(run.trace.hash());
        return;
    }
    let a = replay::hash_in_fresh_process(NAME, 5);
    let b = replay::hash_in_fresh_process(NAME, 5);
    assert_eq!(a, b, "seed 5 replayed differently");
}
