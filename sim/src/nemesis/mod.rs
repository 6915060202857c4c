//! The nemesis: a schedule of faults chosen and timed by the seed, applied to a [`SimCluster`].
//!
//! A [`Schedule`] is plain data (printable, and serializable as JSON so a failing run can be
//! replayed or shrunk from a file). Its steps are grouped into *episodes* — a fault and the
//! steps that undo it (crash → restart, partition → heal) share an episode number — so a
//! shrinker can drop whole faults. Applying a schedule tolerates any subset of its steps: undoing
//! a fault that is not in force does nothing, and after the schedule everything is healed.
//!
//! [`generate`] draws schedules (swarm testing: each seed enables a random subset of the allowed
//! fault kinds, with random rates); [`apply`] plays them against a cluster.
//!
//! [`SimCluster`]: crate::cluster::SimCluster

pub mod generate;

#[cfg(madsim)]
pub mod apply;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FaultKind {
    /// Power cut and later restart (unsynced disk writes lost).
    Crash,
    /// Split the members in two.
    Partition,
    /// Freeze a member.
    Pause,
    /// Skew a member's clock (offset and rate).
    ClockSkew,
    /// Make a member's fsyncs slow.
    SlowDisk,
    /// Slow every message down (a wider latency range: messages on different connections
    /// overtake each other).
    NetDelay,
    /// Lose packets (connections refused, retransmissions delayed).
    NetLoss,
    /// Cut links in one direction only.
    OneWay,
    /// Two halves that both still reach one bridge member.
    Bridge,
    /// Cut the current leader off from the rest.
    IsolateLeader,
    /// Clog member links one by one in random order, then unclog them in another.
    Swizzle,
    /// Jump a member's clock forward or back.
    ClockJump,
    /// Failing disk writes and fsyncs (the member stops, as etcd does, and is restarted).
    DiskError,
    /// Add a learner, promote it, remove a member.
    Membership,
    /// Kill a member's process and later restart it (unsynced writes survive).
    Kill,
    /// Fill a member's disk: its WAL may not grow past what it uses now, so its next segment
    /// fails with ENOSPC (the member stops, and is restarted) until space is freed.
    DiskFull,
    /// A member's WAL reads return a flipped bit now and then, while it restarts (the WAL is
    /// read back when a member recovers it).
    CorruptRead,
    /// The members run etcd's periodic auto-compaction with a retention of a fraction of a
    /// second to a few seconds, so the store is compacted under the clients all the time. A
    /// setting rather than an episode: the runner reads it from the schedule before it starts
    /// the members.
    AutoCompaction,
}

/// Every fault kind: what `--faults all` and [`RunConfig::new`](crate::run::RunConfig::new)
/// enable.
pub const EVERY_FAULT: [FaultKind; 18] = [
    FaultKind::Crash,
    FaultKind::Partition,
    FaultKind::Pause,
    FaultKind::ClockSkew,
    FaultKind::SlowDisk,
    FaultKind::NetDelay,
    FaultKind::NetLoss,
    FaultKind::OneWay,
    FaultKind::Bridge,
    FaultKind::IsolateLeader,
    FaultKind::Swizzle,
    FaultKind::ClockJump,
    FaultKind::DiskError,
    FaultKind::Membership,
    FaultKind::Kill,
    FaultKind::DiskFull,
    FaultKind::CorruptRead,
    FaultKind::AutoCompaction,
];

/// The first catalogue (crash, partition, pause, clock skew, slow disk), which the watch,
/// lease and lock workloads were written against: none of them changes the membership, stops
/// a member on a disk error, or makes messages slow or lossy. Workloads ready for more use
/// [`EVERY_FAULT`].
pub const ALL_FAULTS: [FaultKind; 5] = [
    FaultKind::Crash,
    FaultKind::Partition,
    FaultKind::Pause,
    FaultKind::ClockSkew,
    FaultKind::SlowDisk,
];

impl FaultKind {
    /// The name used on the command line (`--faults crash,partition`).
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Partition => "partition",
            FaultKind::Pause => "pause",
            FaultKind::ClockSkew => "clock-skew",
            FaultKind::SlowDisk => "slow-disk",
            FaultKind::NetDelay => "delay",
            FaultKind::NetLoss => "loss",
            FaultKind::OneWay => "one-way",
            FaultKind::Bridge => "bridge",
            FaultKind::IsolateLeader => "isolate-leader",
            FaultKind::Swizzle => "swizzle",
            FaultKind::ClockJump => "clock-jump",
            FaultKind::DiskError => "disk-error",
            FaultKind::Membership => "membership",
            FaultKind::Kill => "kill",
            FaultKind::DiskFull => "disk-full",
            FaultKind::CorruptRead => "corrupt-read",
            FaultKind::AutoCompaction => "auto-compaction",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EVERY_FAULT
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = EVERY_FAULT.iter().map(|k| k.name()).collect();
                format!("unknown fault {s:?}; known: {}", names.join(","))
            })
    }
}

/// Parses a comma-separated fault list: names add kinds, `all` adds every kind, `-name`
/// removes one (`all,-membership`).
pub fn parse_faults(list: &str) -> Result<BTreeSet<FaultKind>, String> {
    let mut kinds = BTreeSet::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item == "all" {
            kinds.extend(EVERY_FAULT);
        } else if let Some(name) = item.strip_prefix('-') {
            kinds.remove(&name.parse::<FaultKind>()?);
        } else {
            kinds.insert(item.parse::<FaultKind>()?);
        }
    }
    Ok(kinds)
}

/// One thing the nemesis does. Members are numbered from 0 (printed as n1, n2, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Action {
    /// Power-cut member.
    Crash(usize),
    /// Kill member's process (its disk keeps everything written).
    Kill(usize),
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
    /// Message latency range (min ms, max ms) for every link.
    Delay(u64, u64),
    /// Back to the default latency.
    DelayEnd,
    /// Packet loss rate, in per mille, for every link.
    Loss(u32),
    /// No more packet loss.
    LossEnd,
    /// Cut the links from the first group to the second (one way).
    OneWay(Vec<usize>, Vec<usize>),
    /// Cut the two halves off from each other; the bridge member reaches both.
    Bridge(Vec<usize>, usize, Vec<usize>),
    /// Cut whoever leads now off from the rest (resolved when applied).
    IsolateLeader,
    /// Cut the link from one member to another.
    Clog(usize, usize),
    /// Restore the link from one member to another.
    Unclog(usize, usize),
    /// Move a member's clock by this many ms (monotonic time never goes back).
    ClockJump(usize, i64),
    /// A member's disk fails writes and fsyncs with these rates (per mille).
    DiskErrors(usize, u32, u32),
    /// A member's disk stops failing.
    DiskOk(usize),
    /// A member's disk is full: its WAL directory may take no more bytes than it does now
    /// (resolved when applied; removing segments frees space).
    DiskFull(usize),
    /// A member's disk has space again.
    DiskSpace(usize),
    /// A member's WAL reads return one flipped bit with this rate (per mille).
    CorruptReads(usize, u32),
    /// A member's WAL reads are intact again.
    ReadsOk(usize),
    /// Add this (next) member as a learner and start it.
    AddLearner(usize),
    /// Promote this learner.
    Promote(usize),
    /// Remove this member from the cluster.
    Remove(usize),
    /// The members auto-compact, keeping this many milliseconds of history (etcd's periodic
    /// mode); only at time 0, read by the runner before the members start.
    AutoCompaction(u64),
}

fn names(members: &[usize]) -> String {
    let v: Vec<String> = members.iter().map(|i| format!("n{}", i + 1)).collect();
    v.join(",")
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Crash(i) => write!(f, "crash n{}", i + 1),
            Action::Kill(i) => write!(f, "kill n{}", i + 1),
            Action::Restart(i) => write!(f, "restart n{}", i + 1),
            Action::Partition(side) => write!(f, "partition [{}] from the rest", names(side)),
            Action::Heal => write!(f, "heal"),
            Action::Pause(i) => write!(f, "pause n{}", i + 1),
            Action::Resume(i) => write!(f, "resume n{}", i + 1),
            Action::Skew(i, off, ppm) => write!(f, "skew n{} by {off} ms at {ppm} ppm", i + 1),
            Action::SlowDisk(i, ms) => write!(f, "n{} fsync takes {ms} ms", i + 1),
            Action::Delay(lo, hi) => write!(f, "messages take {lo}..{hi} ms"),
            Action::DelayEnd => write!(f, "message latency back to normal"),
            Action::Loss(pm) => write!(f, "lose {pm} per mille of packets"),
            Action::LossEnd => write!(f, "no more packet loss"),
            Action::OneWay(from, to) => write!(f, "cut [{}] -> [{}]", names(from), names(to)),
            Action::Bridge(a, b, c) => {
                write!(f, "bridge [{}] <- n{} -> [{}]", names(a), b + 1, names(c))
            }
            Action::IsolateLeader => write!(f, "isolate the leader"),
            Action::Clog(a, b) => write!(f, "clog n{} -> n{}", a + 1, b + 1),
            Action::Unclog(a, b) => write!(f, "unclog n{} -> n{}", a + 1, b + 1),
            Action::ClockJump(i, ms) => write!(f, "n{} clock jumps {ms:+} ms", i + 1),
            Action::DiskErrors(i, w, s) => write!(
                f,
                "n{} disk fails {w} per mille of writes, {s} per mille of fsyncs",
                i + 1
            ),
            Action::DiskOk(i) => write!(f, "n{} disk healthy", i + 1),
            Action::DiskFull(i) => write!(f, "n{} disk full", i + 1),
            Action::DiskSpace(i) => write!(f, "n{} disk has space again", i + 1),
            Action::CorruptReads(i, pm) => {
                write!(
                    f,
                    "n{} WAL reads flip a bit {pm} per mille of the time",
                    i + 1
                )
            }
            Action::ReadsOk(i) => write!(f, "n{} WAL reads intact", i + 1),
            Action::AddLearner(i) => write!(f, "add n{} as a learner", i + 1),
            Action::Promote(i) => write!(f, "promote n{}", i + 1),
            Action::Remove(i) => write!(f, "remove n{}", i + 1),
            Action::AutoCompaction(ms) => {
                write!(f, "members auto-compact, keeping {ms} ms of history")
            }
        }
    }
}

/// One timed step of a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Milliseconds from the start of the faulty phase.
    pub at_ms: u64,
    /// The episode: a fault and the steps that undo it share this number.
    pub episode: u32,
    /// The kind of fault the episode belongs to.
    pub kind: FaultKind,
    /// What to do.
    pub action: Action,
}

/// Faults at times, in time order, over a faulty phase of `duration_ms`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// The fault kinds this seed enabled.
    pub kinds: BTreeSet<FaultKind>,
    /// Length of the faulty phase (the workload runs this long; then everything heals).
    pub duration_ms: u64,
    /// The steps, sorted by time.
    pub steps: Vec<Step>,
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<&str> = self.kinds.iter().map(|k| k.name()).collect();
        writeln!(
            f,
            "faults enabled: {} over {} ms",
            kinds.join(","),
            self.duration_ms
        )?;
        for s in &self.steps {
            writeln!(f, "  {:>6} ms  #{:<3} {}", s.at_ms, s.episode, s.action)?;
        }
        Ok(())
    }
}

impl Schedule {
    /// The history the members' auto-compaction keeps, if the schedule turns it on.
    pub fn auto_compaction(&self) -> Option<std::time::Duration> {
        self.steps.iter().find_map(|s| match s.action {
            Action::AutoCompaction(ms) => Some(std::time::Duration::from_millis(ms)),
            _ => None,
        })
    }

    /// The schedule as pretty JSON (the `--schedule FILE` format).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a schedule always serializes")
    }

    /// Parses the `--schedule FILE` format.
    pub fn from_json(s: &str) -> Result<Schedule, String> {
        serde_json::from_str(s).map_err(|e| format!("bad schedule: {e}"))
    }

    /// The episode numbers, in order of first appearance.
    pub fn episodes(&self) -> Vec<u32> {
        let mut seen = BTreeSet::new();
        self.steps
            .iter()
            .filter(|s| seen.insert(s.episode))
            .map(|s| s.episode)
            .collect()
    }

    /// This schedule without the steps of the given episodes.
    pub fn without(&self, episodes: &BTreeSet<u32>) -> Schedule {
        Schedule {
            kinds: self.kinds.clone(),
            duration_ms: self.duration_ms,
            steps: self
                .steps
                .iter()
                .filter(|s| !episodes.contains(&s.episode))
                .cloned()
                .collect(),
        }
    }

    /// This schedule cut to its first `ms` milliseconds. An episode whose undoing step falls
    /// past the cut is undone by the final heal instead.
    pub fn truncated(&self, ms: u64) -> Schedule {
        Schedule {
            kinds: self.kinds.clone(),
            duration_ms: ms.min(self.duration_ms),
            steps: self
                .steps
                .iter()
                .filter(|s| s.at_ms < ms)
                .cloned()
                .collect(),
        }
    }

    /// Episodes per fault kind.
    pub fn episodes_per_kind(&self) -> BTreeMap<FaultKind, usize> {
        let mut seen = BTreeSet::new();
        let mut counts = BTreeMap::new();
        for s in &self.steps {
            if seen.insert(s.episode) {
                *counts.entry(s.kind).or_insert(0) += 1;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_parse_and_reject_unknown_names() {
        let all = parse_faults("all").unwrap();
        assert_eq!(all.len(), EVERY_FAULT.len());
        let two = parse_faults("crash, pause").unwrap();
        assert_eq!(
            two.into_iter().collect::<Vec<_>>(),
            vec![FaultKind::Crash, FaultKind::Pause]
        );
        assert!(parse_faults("crash,meteor").is_err());
        let most = parse_faults("all,-membership,-crash").unwrap();
        assert_eq!(most.len(), EVERY_FAULT.len() - 2);
        assert!(!most.contains(&FaultKind::Membership));
        for k in EVERY_FAULT {
            assert_eq!(k.name().parse::<FaultKind>().unwrap(), k);
        }
    }

    #[test]
    fn schedules_round_trip_through_json_and_shrink_by_episode() {
        let s = generate::random(42, 3, 6000, &EVERY_FAULT.into_iter().collect());
        assert!(!s.steps.is_empty());
        let back = Schedule::from_json(&s.to_json()).unwrap();
        assert_eq!(back, s);
        let first = s.episodes()[0];
        let fewer = s.without(&[first].into_iter().collect());
        assert!(fewer.steps.iter().all(|st| st.episode != first));
        assert!(fewer.steps.len() < s.steps.len());
        let short = s.truncated(1000);
        assert!(short.steps.iter().all(|st| st.at_ms < 1000));
        assert_eq!(short.duration_ms, 1000);
    }
}
