//! The simulator's power, measured: each canary (a deliberately wrong behaviour compiled in
//! only for the simulator, see `detcd::io::canary`) must be caught by its sweep within
//! [`BOUND`] seeds. A canary that survives means the faults, workloads or checkers went blind.

#![cfg(madsim)]

use std::collections::BTreeSet;

use detcd::io::canary::{self, Canary};
use detcd_sim::nemesis::FaultKind;
use detcd_sim::run::{run, RunConfig};
use detcd_sim::workloads::{lease, lock, txn, watch};

/// Seeds a canary may survive before the test fails.
const BOUND: u64 = 20;
/// The sweeps start here (the default sweeps' first seed).
const FIRST: u64 = 100;

/// Runs `scenario` with `canary` on for seeds from [`FIRST`] until one fails; returns that seed
/// and the failure, or panics after [`BOUND`] seeds.
fn caught(canary: Canary, scenario: impl Fn(u64) -> Result<(), String>) -> (u64, String) {
    let _on = canary::enable([canary]);
    for seed in FIRST..FIRST + BOUND {
        if let Err(why) = scenario(seed) {
            let first_line = why.lines().next().unwrap_or_default();
            eprintln!(
                "canary {canary} caught by seed {seed} ({} seeds): {first_line}",
                seed - FIRST + 1
            );
            return (seed, why);
        }
    }
    panic!("canary {canary} survived {BOUND} seeds");
}

fn register(seed: u64, faults: &[FaultKind]) -> Result<(), String> {
    let mut config = RunConfig::new(seed);
    if !faults.is_empty() {
        config.faults = faults.iter().copied().collect::<BTreeSet<_>>();
    }
    config.report_dir = std::env::temp_dir().join("detcd-canaries");
    let report = run(&config);
    match report.failure {
        Some(f) => Err(f.message),
        None => Ok(()),
    }
}

#[test]
fn stale_reads_are_caught() {
    caught(Canary::StaleReads, |seed| register(seed, &[]));
}

#[test]
fn a_compaction_that_drops_the_version_it_must_keep_is_caught() {
    caught(Canary::CompactionDropsNewest, |seed| register(seed, &[]));
}

#[test]
fn acknowledging_before_fsync_is_caught() {
    caught(Canary::AckBeforeFsync, |seed| {
        register(seed, &[FaultKind::Crash])
    });
}

#[test]
fn a_leader_change_without_lease_extension_is_caught() {
    let params = lease::Params::default();
    caught(Canary::NoLeaseExtension, |seed| {
        lease::run(seed, &params).map(|_| ())
    });
}

#[test]
fn a_watch_event_lost_in_catch_up_is_caught() {
    let params = watch::Params::default();
    caught(Canary::WatchLosesCatchUpEvent, |seed| {
        watch::run(seed, &params).map(|_| ())
    });
}

#[test]
fn a_lock_granted_out_of_turn_is_caught() {
    let params = lock::Params::default();
    caught(Canary::LockSkipsQueue, |seed| {
        lock::run(seed, &params).map(|_| ())
    });
}

#[test]
fn stale_reads_are_caught_in_multi_key_transactions_too() {
    let params = txn::Params::default();
    caught(Canary::StaleReads, |seed| {
        txn::run(seed, &params).map(|_| ())
    });
}

/// A failing seed replays bit for bit: the same failure, the same trace hash, run after run,
/// and again from the schedule file the failure saved.
#[test]
fn a_failing_seed_replays_with_the_same_trace_hash() {
    let dir = format!("{}/failing-replay", env!("CARGO_TARGET_TMPDIR"));
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_detcd-sim"))
            .args([
                "--seed",
                "100",
                "--canary",
                "stale-reads",
                "--report-dir",
                &dir,
            ])
            .args(extra)
            .output()
            .expect("detcd-sim runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "the canary run fails:\n{text}");
        text.lines()
            .find_map(|l| l.strip_prefix("trace hash "))
            .map(|h| h.split(';').next().unwrap_or_default().to_string())
            .unwrap_or_else(|| panic!("no trace hash in:\n{text}"))
    };
    let first = run(&[]);
    assert_eq!(first, run(&[]), "the failing seed replayed differently");
    let saved = format!("{dir}/seed-100.schedule.json");
    assert_eq!(
        first,
        run(&["--schedule", &saved]),
        "replay from the saved schedule"
    );
}
