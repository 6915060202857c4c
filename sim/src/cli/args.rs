//! The command line of `detcd-sim`.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::nemesis::{parse_faults, FaultKind};
use crate::workload::Workload;

/// Runs detcd clusters under seeded faults in the deterministic simulator and checks every
/// history; a failing seed replays bit for bit.
#[derive(Debug, Clone, Parser)]
#[command(name = "detcd-sim", version)]
pub struct Args {
    /// Sweep a range of seeds, e.g. `0..100` (end excluded).
    #[arg(long, value_parser = parse_range, conflicts_with = "seed")]
    pub seeds: Option<Range<u64>>,
    /// Run (replay) one seed, printing its schedule and trace hash.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Members at start (1..=7).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=7))]
    pub nodes: u64,
    /// Fault kinds a seed may enable, comma-separated, or `all`.
    #[arg(long, default_value = "all", value_parser = parse_faults)]
    pub faults: BTreeSet<FaultKind>,
    /// Length of the faulty phase, e.g. `6s`, `1500ms`, `1m`.
    #[arg(long, default_value = "6s", value_parser = parse_duration)]
    pub duration: Duration,
    /// What the clients do: register, txn, watch, lease, lock, auth, storage, or `all` (one of
    /// them per seed). Each workload draws its faults from those of `--faults` it withstands.
    #[arg(long, default_value = "register")]
    pub workload: Workload,
    /// Concurrent workload clients (writers, for the watch, auth and storage workloads).
    #[arg(long, default_value_t = 5)]
    pub clients: u64,
    /// Simulations run at once in a sweep (each is its own process).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Run every seed twice and compare the trace hashes.
    #[arg(long)]
    pub check_determinism: bool,
    /// On a failure, shrink its schedule to a minimal one that still fails.
    #[arg(long)]
    pub shrink: bool,
    /// Play this schedule (JSON, as saved next to a failure's report) instead of drawing one.
    #[arg(long, requires = "seed")]
    pub schedule: Option<PathBuf>,
    /// Candidate runs a shrink may try.
    #[arg(long, default_value_t = crate::shrink::DEFAULT_BUDGET)]
    pub shrink_budget: usize,
    /// Switch a canary on (a deliberately wrong server behaviour the sweep should catch),
    /// e.g. `stale-reads`; repeatable.
    #[arg(long = "canary")]
    pub canaries: Vec<String>,
    /// Where failure reports (HTML) and failing schedules (JSON) go.
    #[arg(long, default_value = "target/detcd-sim")]
    pub report_dir: PathBuf,
    /// Run shard I of N of the seed range, e.g. `0/4`: the seeds whose offset from the range's
    /// start is I modulo N (N machines with the same `--seeds` cover it exactly once).
    #[arg(long, value_parser = parse_shard, requires = "seeds", conflicts_with = "seed")]
    pub shard: Option<Shard>,
    /// Also write the sweep's summary as JSON, for `detcd-sim merge`.
    #[arg(long, requires = "seeds", conflicts_with = "seed")]
    pub summary_json: Option<PathBuf>,
}

/// One of N deterministic parts of a seed range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which part, from 0.
    pub index: u64,
    /// How many parts.
    pub count: u64,
}

impl Shard {
    /// The seeds of `range` in this shard, in order.
    pub fn seeds(&self, range: Range<u64>) -> Vec<u64> {
        range
            .clone()
            .filter(|s| (s - range.start) % self.count == self.index)
            .collect()
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Parses `I/N` (`0 <= I < N`).
pub fn parse_shard(s: &str) -> Result<Shard, String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("expected I/N, got {s:?}"))?;
    let index: u64 = i.trim().parse().map_err(|e| format!("{i:?}: {e}"))?;
    let count: u64 = n.trim().parse().map_err(|e| format!("{n:?}: {e}"))?;
    if count == 0 || index >= count {
        return Err(format!("shard {s:?}: need 0 <= I < N"));
    }
    Ok(Shard { index, count })
}

/// Parses `A..B`.
pub fn parse_range(s: &str) -> Result<Range<u64>, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("expected A..B, got {s:?}"))?;
    let a: u64 = a.trim().parse().map_err(|e| format!("{a:?}: {e}"))?;
    let b: u64 = b.trim().parse().map_err(|e| format!("{b:?}: {e}"))?;
    if b <= a {
        return Err(format!("empty seed range {s:?}"));
    }
    Ok(a..b)
}

/// Parses `6s`, `1500ms`, `2m`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => return Err(format!("bad duration unit in {s:?} (ms, s or m)")),
    };
    if d < Duration::from_millis(500) {
        return Err(format!("duration {s:?} is too short (at least 500ms)"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_a_range_exactly_once() {
        for n in 1..6 {
            let mut all: Vec<u64> = (0..n)
                .flat_map(|i| Shard { index: i, count: n }.seeds(17..40))
                .collect();
            all.sort_unstable();
            assert_eq!(all, (17..40).collect::<Vec<_>>(), "{n} shards");
        }
        assert_eq!(parse_shard("2/5"), Ok(Shard { index: 2, count: 5 }));
        assert!(parse_shard("0/0").is_err());
        assert!(parse_shard("5/5").is_err());
        assert!(parse_shard("1").is_err());
    }

    #[test]
    fn ranges_and_durations_parse() {
        assert_eq!(parse_range("3..10").unwrap(), 3..10);
        assert!(parse_range("10..3").is_err());
        assert!(parse_range("7").is_err());
        assert_eq!(parse_duration("6s").unwrap(), Duration::from_secs(6));
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("4").unwrap(), Duration::from_secs(4));
        assert!(parse_duration("6h").is_err());
        assert!(parse_duration("10ms").is_err());
    }

    #[test]
    fn the_command_line_parses() {
        let a = Args::try_parse_from([
            "detcd-sim",
            "--seeds",
            "0..5",
            "--faults",
            "crash,pause",
            "--nodes",
            "5",
        ])
        .unwrap();
        assert_eq!(a.seeds, Some(0..5));
        assert_eq!(a.nodes, 5);
        assert_eq!(a.faults.len(), 2);
        assert!(Args::try_parse_from(["detcd-sim", "--nodes", "8"]).is_err());
        let a = Args::try_parse_from(["detcd-sim", "--seeds", "0..10", "--shard", "1/3"]).unwrap();
        assert_eq!(a.shard.unwrap().seeds(a.seeds.unwrap()), vec![1, 4, 7]);
        assert!(Args::try_parse_from(["detcd-sim", "--seeds", "0..9", "--shard", "3/3"]).is_err());
        assert!(Args::try_parse_from(["detcd-sim", "--seed", "1", "--shard", "0/2"]).is_err());
        assert!(Args::try_parse_from(["detcd-sim", "--seeds", "0..2", "--seed", "1"]).is_err());
        let a = Args::try_parse_from(["detcd-sim", "--seed", "1", "--workload", "lease"]).unwrap();
        assert_eq!(a.workload, Workload::Lease);
        assert!(Args::try_parse_from(["detcd-sim", "--seed", "1", "--workload", "bank"]).is_err());
    }
}
