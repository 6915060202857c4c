//! Crashes in the middle of the WAL's rolls and purges (`detcd_sim::workloads::storage`): every
//! member starts again every time, no acknowledged write is lost, and a seed replays bit for
//! bit. Seeds: a twentieth of `DETCD_SIM_SEEDS` from `DETCD_SIM_FIRST` (some 2 s of wall time
//! each).

#![cfg(madsim)]

use detcd_sim::replay;
use detcd_sim::workloads::scenario;
use detcd_sim::workloads::storage::{self, Params};

#[test]
fn crashes_during_rolls_and_purges_lose_no_acknowledged_write() {
    let params = Params::default();
    let mut failures = Vec::new();
    let (mut during_roll, mut during_purge, mut state_torn, mut seeds) = (0, 0, 0, 0);
    let mut purging = 0;
    for seed in scenario::sweep(20) {
        seeds += 1;
        match storage::run(seed, &params) {
            Ok(o) => {
                eprintln!(
                    "storage seed {seed}: {:?} in {:?} simulated",
                    o.stats, o.simulated
                );
                // Every run rolls its WAL; a run crashed over and over may never get as far as
                // a purge (seed 184: ten crashes, 27 writes acknowledged), most do.
                assert!(
                    o.stats.rolled > 0,
                    "seed {seed} never rolled: {:?}",
                    o.stats
                );
                purging += u64::from(o.stats.purged > 0);
                during_roll += o.stats.crashes.during_roll;
                during_purge += o.stats.crashes.during_purge;
                state_torn += o.stats.crashes.state_torn;
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        purging * 4 >= seeds * 3,
        "only {purging} of {seeds} seeds purged their WAL"
    );
    // The point of the scenario: the crasher does land inside rolls, purges and flushes.
    assert!(
        during_roll >= seeds && during_purge >= seeds && state_torn >= seeds,
        "over {seeds} seeds only {during_roll} crashes during a roll, {during_purge} during a \
         purge, {state_torn} tearing the state machine's unsynced writes"
    );
}

/// The same seed gives the same run, each in a fresh process.
#[test]
fn a_storage_run_replays_bit_for_bit() {
    const NAME: &str = "a_storage_run_replays_bit_for_bit";
    if let Some(seed) = replay::requested_seed() {
        let run = storage::run(seed, &Params::default()).expect("the replayed seed passes");
        replay::report(run.trace.hash());
        return;
    }
    let a = replay::hash_in_fresh_process(NAME, 3);
    let b = replay::hash_in_fresh_process(NAME, 3);
    assert_eq!(a, b, "seed 3 replayed differently");
}
