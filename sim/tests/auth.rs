//! Auth under seeded faults (`detcd_sim::workloads::auth`): while an admin revokes and grants a
//! role's permission again and changes a password, and writers put keys with tokens, no
//! operation succeeds that an acknowledged revocation (or password change) forbids, and after
//! healing every member agrees on the auth revision and the keys. Seeds: a twentieth of
//! `DETCD_SIM_SEEDS` (at least two) from `DETCD_SIM_FIRST`.

#![cfg(madsim)]

use detcd_sim::replay;
use detcd_sim::workloads::auth::{self, Params};
use detcd_sim::workloads::scenario;

#[test]
fn no_write_succeeds_that_a_committed_revocation_forbids() {
    let params = Params::default();
    let seeds = scenario::sweep(20);
    let seeds = seeds.start..seeds.end.max(seeds.start + 2);
    let mut failures = Vec::new();
    let (mut ok, mut denied, mut forbidden) = (0, 0, 0);
    for seed in seeds.clone() {
        match auth::run(seed, &params) {
            Ok(o) => {
                eprintln!(
                    "auth seed {seed}: {:?} in {:?} simulated",
                    o.stats, o.simulated
                );
                ok += o.stats.puts_ok;
                denied += o.stats.denied;
                forbidden += o.stats.forbidden;
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Not vacuous: over the sweep, puts succeeded, were denied, and were sent inside windows an
    // acknowledged revocation closed (each of which had to fail).
    assert!(
        ok > 0 && denied > 0 && forbidden > 0,
        "over seeds {seeds:?}: {ok} puts acknowledged, {denied} denied, {forbidden} forbidden"
    );
}

/// The same seed gives the same run, each in a fresh process.
#[test]
fn an_auth_run_replays_bit_for_bit() {
    const NAME: &str = "an_auth_run_replays_bit_for_bit";
    if let Some(seed) = replay::requested_seed() {
        let run = auth::run(seed, &Params::default()).expect("the replayed seed passes");
        replay::report(run.trace.hash());
        return;
    }
    let a = replay::hash_in_fresh_process(NAME, 3);
    let b = replay::hash_in_fresh_process(NAME, 3);
    assert_eq!(a, b, "seed 3 replayed differently");
}
