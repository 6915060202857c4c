//! Playing a [`Schedule`] against a running [`SimCluster`].

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use detcd::io::clock::{set_node_skew, Skew};
use detcd::io::disk::DiskFaults;

use super::{Action, FaultKind, Schedule};
use crate::cluster::SimCluster;

/// What the nemesis did: the trace lines and how many episodes of each kind it started.
#[derive(Debug, Default, Clone)]
pub struct Applied {
    /// One line per step applied, with its time.
    pub log: Vec<String>,
    /// Episodes started, per fault kind.
    pub seen: BTreeMap<FaultKind, usize>,
}

/// The faults in force, so undoing steps know what to undo and the final heal undoes the rest.
#[derive(Default)]
struct InForce {
    crashed: BTreeSet<usize>,
    paused: BTreeSet<usize>,
}

/// Applies the schedule (sleeping between steps, on the simulator's clock), then heals
/// everything: links restored, members resumed and restarted.
pub async fn run(schedule: &Schedule, cluster: &SimCluster) -> Applied {
    let start = tokio::time::Instant::now();
    let mut applied = Applied::default();
    let mut episodes = BTreeSet::new();
    let mut state = InForce::default();
    for step in &schedule.steps {
        tokio::time::sleep_until(start + Duration::from_millis(step.at_ms)).await;
        apply(cluster, &step.action, &mut state);
        if episodes.insert(step.episode) {
            *applied.seen.entry(step.kind).or_insert(0) += 1;
        }
        applied
            .log
            .push(format!("{} ms {}", step.at_ms, step.action));
    }
    tokio::time::sleep_until(start + Duration::from_millis(schedule.duration_ms)).await;
    heal_all(cluster, &mut state);
    applied.log.push("healed".to_string());
    applied
}

/// The liveness phase: every member back, every link up.
fn heal_all(cluster: &SimCluster, state: &mut InForce) {
    cluster.heal();
    for i in std::mem::take(&mut state.paused) {
        cluster.resume(i);
    }
    for i in std::mem::take(&mut state.crashed) {
        cluster.restart(i);
    }
}

fn apply(cluster: &SimCluster, action: &Action, state: &mut InForce) {
    match action {
        Action::Crash(i) => {
            if state.paused.remove(i) {
                cluster.resume(*i);
            }
            if state.crashed.insert(*i) {
                cluster.crash(*i);
            }
        }
        Action::Restart(i) => {
            if state.crashed.remove(i) {
                cluster.restart(*i);
            }
        }
        Action::Partition(side) => cluster.partition(side),
        Action::Heal => cluster.heal(),
        Action::Pause(i) => {
            if !state.crashed.contains(i) && state.paused.insert(*i) {
                cluster.pause(*i);
            }
        }
        Action::Resume(i) => {
            if state.paused.remove(i) {
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
