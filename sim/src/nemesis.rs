//! The nemesis: a schedule of faults chosen and timed by the seed, applied to a [`SimCluster`].
//!
//! Fault kinds (each seed enables a random subset, swarm-style): crash + restart (unsynced disk
//! writes lost), network partition + heal, pause + resume, clock skew (offset and rate) and a
//! slow disk. After the schedule the cluster is healed (links restored, members resumed and
//! restarted) so a run can check liveness and convergence after safety.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use detcd::io::clock::{set_node_skew, Skew};
use detcd::io::disk::DiskFaults;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::cluster::SimCluster;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// Power cut and later restart.
    Crash,
    /// Split the members in two.
    Partition,
    /// Freeze a member.
    Pause,
    /// Skew a member's clock.
    ClockSkew,
    /// Make a member's fsyncs slow.
    SlowDisk,
}

/// Every fault kind.
pub const ALL_FAULTS: [FaultKind; 5] = [
    FaultKind::Crash,
    FaultKind::Partition,
    FaultKind::Pause,
    FaultKind::ClockSkew,
    FaultKind::SlowDisk,
];

/// One step of a schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Power-cut member.
    Crash(usize),
    /// Restart member.
    Restart(usize),
    /// Cut the given side off from the rest.
    Partition(Vec<usize>),
    /// Restore all links.
    Heal,
    /// Freeze member.
    Pause(usize),
    /// Unfreeze member.
    Resume(usize),
    /// Set a member's clock skew (offset ms, rate ppm).
    Skew(usize, i64, i64),
    /// Set a member's fsync latency (ms).
    SlowDisk(usize, u64),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Crash(i) => write!(f, "crash n{}", i + 1),
            Action::Restart(i) => write!(f, "restart n{}", i + 1),
            Action::Partition(side) => {
                let names: Vec<String> = side.iter().map(|i| format!("n{}", i + 1)).collect();
                write!(f, "partition [{}] from the rest", names.join(","))
            }
            Action::Heal => write!(f, "heal"),
            Action::Pause(i) => write!(f, "pause n{}", i + 1),
            Action::Resume(i) => write!(f, "resume n{}", i + 1),
            Action::Skew(i, off, ppm) => write!(f, "skew n{} by {off} ms at {ppm} ppm", i + 1),
            Action::SlowDisk(i, ms) => write!(f, "n{} fsync takes {ms} ms", i + 1),
        }
    }
}

/// Faults at times (from the start of the run), in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schedule {
    /// The enabled fault kinds.
    pub kinds: BTreeSet<FaultKind>,
    /// (milliseconds, action), sorted by time.
    pub steps: Vec<(u64, Action)>,
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "faults enabled: {:?}", self.kinds)?;
        for (ms, a) in &self.steps {
            writeln!(f, "  {ms:>6} ms  {a}")?;
        }
        Ok(())
    }
}

impl Schedule {
    /// A random schedule over `duration` for `nodes` members, from the runtime's seeded RNG.
    /// Swarm testing: a random non-empty subset of `allowed` is enabled for this seed.
    pub fn random(nodes: usize, duration: Duration, allowed: &[FaultKind]) -> Schedule {
        let mut rng = madsim::rand::thread_rng();
        let mut kinds: BTreeSet<FaultKind> = allowed
            .iter()
            .copied()
            .filter(|_| rng.gen_bool(0.6))
            .collect();
        if kinds.is_empty() {
            kinds.insert(*allowed.choose(&mut rng).expect("at least one fault kind"));
        }
        let enabled: Vec<FaultKind> = kinds.iter().copied().collect();
        let end = duration.as_millis() as u64;
        let mut steps = Vec::new();
        // Member i is unavailable (crashed or paused) until down_until[i].
        let mut down_until = vec![0u64; nodes];
        let mut partitioned_until = 0u64;
        let mut t = 200;
        while t < end {
            let kind = *enabled.choose(&mut rng).expect("non-empty");
            let node = rng.gen_range(0..nodes);
            let back = t + rng.gen_range(300..2000);
            match kind {
                FaultKind::Crash if down_until[node] <= t => {
                    steps.push((t, Action::Crash(node)));
                    steps.push((back, Action::Restart(node)));
                    down_until[node] = back;
                }
                FaultKind::Pause if down_until[node] <= t => {
                    steps.push((t, Action::Pause(node)));
                    steps.push((back, Action::Resume(node)));
                    down_until[node] = back;
                }
                FaultKind::Partition if partitioned_until <= t => {
                    let mut members: Vec<usize> = (0..nodes).collect();
                    members.shuffle(&mut rng);
                    let size = rng.gen_range(1..nodes.max(2));
                    let mut side: Vec<usize> = members[..size].to_vec();
                    side.sort_unstable();
                    steps.push((t, Action::Partition(side)));
                    steps.push((back, Action::Heal));
                    partitioned_until = back;
                }
                FaultKind::ClockSkew => {
                    let offset = rng.gen_range(-2000..=2000);
                    let ppm = rng.gen_range(-20_000..=20_000);
                    steps.push((t, Action::Skew(node, offset, ppm)));
                }
                FaultKind::SlowDisk => {
                    steps.push((t, Action::SlowDisk(node, rng.gen_range(0..30))))
                }
                _ => {}
            }
            t += rng.gen_range(150..700);
        }
        steps.sort_by_key(|(ms, _)| *ms);
        Schedule { kinds, steps }
    }

    /// Applies the schedule (sleeping between steps), then heals everything. Returns the steps
    /// applied, for the trace.
    pub async fn run(&self, cluster: &SimCluster) -> Vec<String> {
        let start = tokio::time::Instant::now();
        let mut log = Vec::new();
        let mut crashed = BTreeSet::new();
        let mut paused = BTreeSet::new();
        for (ms, action) in &self.steps {
            tokio::time::sleep_until(start + Duration::from_millis(*ms)).await;
            apply(cluster, action, &mut crashed, &mut paused);
            log.push(format!("{ms} ms {action}"));
        }
        // Liveness phase: every member back, every link up.
        cluster.heal();
        for i in std::mem::take(&mut paused) {
            cluster.resume(i);
        }
        for i in std::mem::take(&mut crashed) {
            cluster.restart(i);
        }
        log.push("healed".to_string());
        log
    }
}

fn apply(
    cluster: &SimCluster,
    action: &Action,
    crashed: &mut BTreeSet<usize>,
    paused: &mut BTreeSet<usize>,
) {
    match action {
        Action::Crash(i) => {
            if paused.remove(i) {
                cluster.resume(*i);
            }
            cluster.crash(*i);
            crashed.insert(*i);
        }
        Action::Restart(i) => {
            if crashed.remove(i) {
                cluster.restart(*i);
            }
        }
        Action::Partition(side) => cluster.partition(side),
        Action::Heal => cluster.heal(),
        Action::Pause(i) => {
            if !crashed.contains(i) && paused.insert(*i) {
                cluster.pause(*i);
            }
        }
        Action::Resume(i) => {
            if paused.remove(i) {
                cluster.resume(*i);
            }
        }
        Action::Skew(i, offset_ms, ppm) => {
            set_node_skew(
                cluster.node_id(*i),
                Skew {
                    offset_nanos: offset_ms * 1_000_000,
                    rate_ppm: *ppm,
                },
            );
        }
        Action::SlowDisk(i, ms) => cluster.nodes[*i].disk.set_faults(DiskFaults {
            sync_latency: Duration::from_millis(*ms),
            ..Default::default()
        }),
    }
}
