//! The summary table of a sweep.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::cluster::wal::WalStats;
use crate::nemesis::FaultKind;
use crate::run::RunReport;

/// Totals over the seeds of a sweep.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Seeds that passed.
    pub passed: u64,
    /// Seeds that failed, in order.
    pub failed: Vec<u64>,
    /// Client operations checked.
    pub ops: usize,
    /// Simulated time, summed.
    pub simulated: Duration,
    /// Wall time of the sweep (with `--jobs`, shared by the parallel runs).
    pub wall: Duration,
    /// Per fault kind: (seeds in which it occurred, episodes in all).
    pub faults: BTreeMap<FaultKind, (u64, usize)>,
    /// WAL segments rolled and purged, summed over members and seeds.
    pub wal: WalStats,
    /// Seeds in which some member purged its raft log.
    pub seeds_purging: u64,
    /// Times a member refused to start.
    pub refusals: usize,
}

impl Summary {
    /// Counts one run.
    pub fn add(&mut self, r: &RunReport) {
        if r.passed() {
            self.passed += 1;
        } else {
            self.failed.push(r.seed);
        }
        self.ops += r.ops;
        self.simulated += r.simulated;
        self.wal.add(r.wal);
        self.seeds_purging += u64::from(r.wal.purged > 0);
        self.refusals += r.refusals;
        for (k, n) in &r.faults_seen {
            let e = self.faults.entry(*k).or_insert((0, 0));
            e.0 += 1;
            e.1 += n;
        }
    }

    /// Seeds run.
    pub fn seeds(&self) -> u64 {
        self.passed + self.failed.len() as u64
    }

    /// Simulated seconds per wall second.
    pub fn speedup(&self) -> f64 {
        self.simulated.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }

    /// Seeds per wall minute.
    pub fn seeds_per_minute(&self) -> f64 {
        self.seeds() as f64 * 60.0 / self.wall.as_secs_f64().max(1e-9)
    }

    /// The table, for people.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{:<16} {:>8} {:>10}", "fault", "seeds", "episodes");
        for (k, (seeds, episodes)) in &self.faults {
            let _ = writeln!(s, "{:<16} {seeds:>8} {episodes:>10}", k.name());
        }
        let _ = writeln!(s, "{}", "-".repeat(36));
        let rows = [
            ("seeds passed", self.passed.to_string()),
            ("seeds failed", self.failed.len().to_string()),
            ("ops checked", self.ops.to_string()),
            ("segments rolled", self.wal.rolled.to_string()),
            ("segments purged", self.wal.purged.to_string()),
            ("seeds purging", self.seeds_purging.to_string()),
            ("starts refused", self.refusals.to_string()),
            (
                "simulated",
                format!("{:.1} s", self.simulated.as_secs_f64()),
            ),
            ("wall", format!("{:.1} s", self.wall.as_secs_f64())),
            ("sim s / wall s", format!("{:.1}", self.speedup())),
            ("seeds / minute", format!("{:.1}", self.seeds_per_minute())),
        ];
        for (name, value) in rows {
            let _ = writeln!(s, "{name:<16} {value:>19}");
        }
        if !self.failed.is_empty() {
            let seeds: Vec<String> = self.failed.iter().map(u64::to_string).collect();
            let _ = writeln!(s, "failing seeds: {}", seeds.join(" "));
        }
        s
    }
}
