//! The summary of a sweep: its table for people, its JSON for `detcd-sim merge`, which sums
//! the summaries of shards run anywhere (CI matrix jobs, a Kubernetes Indexed Job).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::cluster::wal::WalStats;
use crate::nemesis::FaultKind;
use crate::run::RunReport;
use crate::workload::Workload;

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
    /// Per workload: seeds run, seeds failed, operations checked, simulated time.
    pub workloads: BTreeMap<Workload, PerWorkload>,
    /// WAL segments rolled and purged, summed over members and seeds.
    pub wal: WalStats,
    /// Seeds in which some member purged its raft log.
    pub seeds_purging: u64,
    /// Times a member refused to start.
    pub refusals: usize,
    /// The shards summed here (`I/N`), when the sweep was sharded.
    pub shards: Vec<String>,
    /// The replay command of every failure.
    pub replays: Vec<String>,
    /// Set by a single sharded sweep, before it is listed in `shards`.
    pub shard: Option<String>,
}

/// One workload's row of a [`Summary`].
#[derive(Debug, Default, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PerWorkload {
    /// Seeds that played it.
    pub seeds: u64,
    /// Of those, the ones that failed.
    pub failed: u64,
    /// Client operations checked.
    pub ops: usize,
    /// Simulated seconds, summed.
    pub simulated_secs: f64,
}

impl PerWorkload {
    fn add(&mut self, other: &PerWorkload) {
        self.seeds += other.seeds;
        self.failed += other.failed;
        self.ops += other.ops;
        self.simulated_secs += other.simulated_secs;
    }
}

/// The JSON form of a [`Summary`] (`--summary-json`).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct SummaryJson {
    shards: Vec<String>,
    passed: u64,
    failed: Vec<u64>,
    ops: usize,
    simulated_secs: f64,
    wall_secs: f64,
    /// Per fault kind: [seeds in which it occurred, episodes].
    faults: BTreeMap<String, (u64, usize)>,
    /// Per workload (absent in summaries written before workloads were named: all register).
    #[serde(default)]
    workloads: BTreeMap<String, PerWorkload>,
    segments_rolled: u64,
    segments_purged: u64,
    seeds_purging: u64,
    starts_refused: usize,
    replays: Vec<String>,
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
        self.workloads
            .entry(r.workload)
            .or_default()
            .add(&PerWorkload {
                seeds: 1,
                failed: u64::from(!r.passed()),
                ops: r.ops,
                simulated_secs: r.simulated.as_secs_f64(),
            });
        self.wal.add(r.wal);
        self.seeds_purging += u64::from(r.wal.purged > 0);
        self.refusals += r.refusals;
        for (k, n) in &r.faults_seen {
            let e = self.faults.entry(*k).or_insert((0, 0));
            e.0 += 1;
            e.1 += n;
        }
    }

    /// The summary as JSON.
    pub fn to_json(&self) -> String {
        let mut shards = self.shards.clone();
        shards.extend(self.shard.clone());
        let j = SummaryJson {
            shards,
            passed: self.passed,
            failed: self.failed.clone(),
            ops: self.ops,
            simulated_secs: self.simulated.as_secs_f64(),
            wall_secs: self.wall.as_secs_f64(),
            faults: self
                .faults
                .iter()
                .map(|(k, v)| (k.name().to_string(), *v))
                .collect(),
            workloads: self
                .workloads
                .iter()
                .map(|(w, v)| (w.name().to_string(), *v))
                .collect(),
            segments_rolled: self.wal.rolled,
            segments_purged: self.wal.purged,
            seeds_purging: self.seeds_purging,
            starts_refused: self.refusals,
            replays: self.replays.clone(),
        };
        serde_json::to_string_pretty(&j).expect("a summary serializes")
    }

    /// Adds the summary `json` holds (one shard's, or merged ones). Wall time is the longest
    /// of them: shards run side by side.
    pub fn merge_json(&mut self, json: &str) -> Result<(), String> {
        let j: SummaryJson = serde_json::from_str(json).map_err(|e| e.to_string())?;
        self.shards.extend(j.shards);
        self.passed += j.passed;
        let failed = j.failed.len() as u64;
        self.failed.extend(j.failed);
        self.failed.sort_unstable();
        self.ops += j.ops;
        self.simulated += Duration::from_secs_f64(j.simulated_secs.max(0.0));
        self.wall = self.wall.max(Duration::from_secs_f64(j.wall_secs.max(0.0)));
        for (name, (seeds, episodes)) in j.faults {
            let kind: FaultKind = name.parse()?;
            let e = self.faults.entry(kind).or_insert((0, 0));
            e.0 += seeds;
            e.1 += episodes;
        }
        if j.workloads.is_empty() && j.passed + failed > 0 {
            self.workloads
                .entry(Workload::Register)
                .or_default()
                .add(&PerWorkload {
                    seeds: j.passed + failed,
                    failed,
                    ops: j.ops,
                    simulated_secs: j.simulated_secs,
                });
        }
        for (name, row) in j.workloads {
            let w: Workload = name.parse()?;
            self.workloads.entry(w).or_default().add(&row);
        }
        self.wal.rolled += j.segments_rolled;
        self.wal.purged += j.segments_purged;
        self.seeds_purging += j.seeds_purging;
        self.refusals += j.starts_refused;
        self.replays.extend(j.replays);
        Ok(())
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
        let _ = writeln!(
            s,
            "{:<10} {:>7} {:>7} {:>10} {:>10}",
            "workload", "seeds", "failed", "ops", "sim s"
        );
        for (w, row) in &self.workloads {
            let _ = writeln!(
                s,
                "{:<10} {:>7} {:>7} {:>10} {:>10.1}",
                w.name(),
                row.seeds,
                row.failed,
                row.ops,
                row.simulated_secs
            );
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
        if let Some(shard) = &self.shard {
            let _ = writeln!(s, "shard {shard}");
        }
        if !self.shards.is_empty() {
            let _ = writeln!(s, "shards merged: {}", self.shards.join(" "));
        }
        if !self.failed.is_empty() {
            let seeds: Vec<String> = self.failed.iter().map(u64::to_string).collect();
            let _ = writeln!(s, "failing seeds: {}", seeds.join(" "));
        }
        s
    }
}
