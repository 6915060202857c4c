//! Replaying a test's seed in a fresh process, the only place a simulation is a pure function
//! of its seed (see [`crate::run`]'s module docs: tokio seeds per-thread generators from a
//! process-wide counter, so a second simulation in one process takes another path).
//!
//! A test that checks its own determinism re-executes its test binary, filtered to itself,
//! with [`ENV`] set to the seed; the child sees [`requested_seed`], runs that seed, prints the
//! trace hash with [`report`], and the parent compares what two children printed.

use std::process::Command;

/// The environment variable that asks a test binary to replay one seed.
pub const ENV: &str = "DETCD_SIM_REPLAY_SEED";

const MARK: &str = "detcd-sim-replay-hash ";

/// The seed this process was started to replay, if any.
pub fn requested_seed() -> Option<u64> {
    std::env::var(ENV).ok().and_then(|s| s.parse().ok())
}

/// Prints a replayed run's trace hash for the parent process.
pub fn report(hash: u64) {
    println!("{MARK}{hash:016x}");
}

/// Runs test `test` of the current test binary in a fresh process with [`ENV`] = `seed` and
/// returns the trace hash it reported.
///
/// # Panics
/// If the child cannot be started or reports no hash.
pub fn hash_in_fresh_process(test: &str, seed: u64) -> u64 {
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ENV, seed.to_string())
        .output()
        .expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.split_once(MARK).map(|(_, h)| h.trim().to_string()))
        .and_then(|h| u64::from_str_radix(&h, 16).ok())
        .unwrap_or_else(|| {
            panic!(
                "{test} for seed {seed} reported no hash:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}
