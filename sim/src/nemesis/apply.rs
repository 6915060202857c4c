//! Playing a [`Schedule`] against a running [`SimCluster`], with the restart policy for
//! members that stop on their own.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use detcd::io::clock::{set_node_skew, Skew};
use detcd::io::disk::DiskFaults;
use detcd::io::fs::FsFaults;

use super::{Action, FaultKind, Schedule};
use crate::cluster::{log_check, wal, Exit, SimCluster};

/// What the nemesis did: the trace lines and how many episodes of each kind it started.
#[derive(Debug, Default, Clone)]
pub struct Applied {
    /// One line per step applied (and per restart by the policy), with its time.
    pub log: Vec<String>,
    /// What was wrong in the log of a member about to be restarted (see
    /// [`log_check`](crate::cluster::log_check)).
    pub problems: Vec<String>,
    /// Episodes started, per fault kind.
    pub seen: BTreeMap<FaultKind, usize>,
}

/// When the runner brings back a member that stopped on a fatal error (etcd exits on a failed
/// write or fsync; an operator's supervisor restarts it).
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    /// How long a stopped member stays down before it is restarted.
    pub delay: Duration,
    /// How often members are checked.
    pub poll: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            delay: Duration::from_millis(1000),
            poll: Duration::from_millis(100),
        }
    }
}

/// Faults this nemesis put in force (others may crash members too: a workload's own leader
/// killer restarts what it killed, and the final heal must not restart it under it).
#[derive(Default)]
struct InForce {
    /// Members this nemesis power-cut and has not restarted.
    crashed: std::collections::BTreeSet<usize>,
    /// Clock (offset ms, rate ppm) set per member.
    clocks: BTreeMap<usize, (i64, i64)>,
    /// Disk faults set per member (slow fsyncs and errors combine).
    disks: BTreeMap<usize, DiskFaults>,
    /// Members whose WAL directory this nemesis filled or made to read corrupt bits.
    files: std::collections::BTreeSet<usize>,
    delay: Option<(u64, u64)>,
    loss: Option<u32>,
    /// Violations found in the logs of members about to restart.
    problems: Vec<String>,
}

fn ms_since(start: tokio::time::Instant) -> u128 {
    start.elapsed().as_millis()
}

/// [`run_with`] without a restart policy: for clusters whose members do not stop on their
/// own ([`Lifecycle::Serve`](crate::cluster::Lifecycle::Serve)).
pub async fn run(schedule: &Schedule, cluster: &SimCluster) -> Applied {
    run_with(schedule, cluster, None).await
}

/// Applies the schedule (sleeping between steps, on the simulator's clock) while the restart
/// policy, if any, watches the members, then heals everything: links and message delivery
/// restored, disks healthy, members resumed and restarted.
pub async fn run_with(
    schedule: &Schedule,
    cluster: &SimCluster,
    policy: Option<RestartPolicy>,
) -> Applied {
    let start = tokio::time::Instant::now();
    let log = RefCell::new(Vec::new());
    let mut seen = BTreeMap::new();
    let mut state = InForce::default();
    let play = async {
        let mut episodes = std::collections::BTreeSet::new();
        for step in &schedule.steps {
            tokio::time::sleep_until(start + Duration::from_millis(step.at_ms)).await;
            let note = apply(cluster, &step.action, &mut state).await;
            if episodes.insert(step.episode) {
                *seen.entry(step.kind).or_insert(0) += 1;
            }
            let note = note.map(|n| format!(": {n}")).unwrap_or_default();
            log.borrow_mut()
                .push(format!("{} ms {}{note}", step.at_ms, step.action));
        }
        tokio::time::sleep_until(start + Duration::from_millis(schedule.duration_ms)).await;
    };
    // Biased: tokio's select otherwise picks a branch with its own (unseeded) randomness.
    let watch = async {
        match policy {
            Some(p) => supervise(cluster, p, start, &log).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        _ = play => {}
        _ = watch => {}
    }
    heal_all(cluster, &mut state);
    let mut log = log.into_inner();
    log.push("healed".to_string());
    Applied {
        log,
        seen,
        problems: state.problems,
    }
}

/// The restart policy: a member whose server stopped on an error is power-cut (its process is
/// gone) and restarted after `policy.delay`; each restart is logged with its time since
/// `start`. Never returns: run it beside something that does, for as long as members may fail
/// (a member can fail just after the faults end, on a write that was already under way).
pub async fn supervise(
    cluster: &SimCluster,
    policy: RestartPolicy,
    start: tokio::time::Instant,
    log: &RefCell<Vec<String>>,
) {
    let mut down_since: BTreeMap<usize, tokio::time::Instant> = BTreeMap::new();
    loop {
        tokio::time::sleep(policy.poll).await;
        for i in cluster.members() {
            let Some(node) = cluster.node(i) else {
                continue;
            };
            let failed = match node.exit() {
                Exit::Failed(why) => Some(why.chars().take(120).collect::<String>()),
                _ => None,
            };
            match failed {
                Some(why) if !cluster.is_crashed(i) && !cluster.is_paused(i) => {
                    let since = *down_since
                        .entry(i)
                        .or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= policy.delay {
                        down_since.remove(&i);
                        cluster.crash(i);
                        cluster.restart(i);
                        log.borrow_mut().push(format!(
                            "{} ms n{} had stopped ({why}): restarted",
                            ms_since(start),
                            i + 1
                        ));
                    }
                }
                _ => {
                    down_since.remove(&i);
                }
            }
        }
    }
}

/// The liveness phase: every member back, every link up, messages and disks healthy.
fn heal_all(cluster: &SimCluster, state: &mut InForce) {
    cluster.heal();
    set_net(state.delay.take(), state.loss.take());
    for (i, faults) in std::mem::take(&mut state.disks) {
        if let Some(n) = cluster.node(i) {
            n.disk.set_faults(DiskFaults {
                sync_latency: faults.sync_latency,
                ..Default::default()
            });
        }
    }
    for i in std::mem::take(&mut state.files) {
        set_files(cluster, state, i, |f, _| {
            f.capacity = None;
            f.corrupt_read = 0.0;
        });
    }
    cluster.resume_all();
    for i in std::mem::take(&mut state.crashed) {
        if cluster.is_crashed(i) {
            cluster.restart(i);
        }
    }
    for i in cluster.members() {
        let failed = cluster
            .node(i)
            .is_some_and(|n| matches!(n.exit(), Exit::Failed(_)));
        if failed && !cluster.is_crashed(i) {
            cluster.crash(i);
            cluster.restart(i);
        }
    }
}

/// Sets madsim's message latency range and loss rate (both global to the network).
fn set_net(delay: Option<(u64, u64)>, loss: Option<u32>) {
    let defaults = madsim::net::Config::default();
    madsim::net::NetSim::current().update_config(|c| {
        c.send_latency = match delay {
            Some((lo, hi)) => Duration::from_millis(lo)..Duration::from_millis(hi.max(lo + 1)),
            None => defaults.send_latency.clone(),
        };
        c.packet_loss_rate = loss.map_or(0.0, |pm| f64::from(pm) / 1000.0);
    });
}

fn set_disk(cluster: &SimCluster, state: &mut InForce, i: usize, f: impl FnOnce(&mut DiskFaults)) {
    let Some(node) = cluster.node(i) else { return };
    let faults = state.disks.entry(i).or_default();
    f(faults);
    node.disk.set_faults(*faults);
}

/// Changes member `i`'s WAL directory faults that [`DiskFaults`] does not carry (a full disk,
/// corrupt reads), keeping the others; `f` sees the directory as it is.
fn set_files(
    cluster: &SimCluster,
    state: &mut InForce,
    i: usize,
    f: impl FnOnce(&mut FsFaults, &detcd::io::fs::SimDir),
) {
    let Some(node) = cluster.node(i) else { return };
    let dir = node.disk.files();
    let mut faults = dir.faults();
    f(&mut faults, &dir);
    dir.set_faults(faults);
    state.files.insert(i);
}

fn set_clock(cluster: &SimCluster, state: &mut InForce, i: usize, offset_ms: i64, ppm: i64) {
    if i >= cluster.len() {
        return;
    }
    state.clocks.insert(i, (offset_ms, ppm));
    set_node_skew(
        cluster.node_id(i),
        Skew {
            offset_nanos: offset_ms * 1_000_000,
            rate_ppm: ppm,
        },
    );
}

/// Applies one step; returns a note for the trace when the outcome is not implied by the step.
async fn apply(cluster: &SimCluster, action: &Action, state: &mut InForce) -> Option<String> {
    match action {
        Action::Crash(i) => {
            if !cluster.is_crashed(*i) {
                cluster.crash(*i);
                state.crashed.insert(*i);
            }
        }
        Action::Kill(i) => {
            if !cluster.is_crashed(*i) {
                cluster.kill(*i);
                state.crashed.insert(*i);
            }
        }
        Action::Restart(i) => {
            if state.crashed.remove(i) && cluster.is_crashed(*i) {
                // The log the member will recover from, as its crash left it.
                if let Some(node) = cluster.node(*i) {
                    if let Some(view) = log_check::read_log(&node.disk.files()).await {
                        let who = format!("n{} (before its restart)", i + 1);
                        state.problems.extend(log_check::check_one(&who, &view));
                    }
                }
                cluster.restart(*i);
            }
        }
        Action::Partition(side) => cluster.partition(side),
        Action::Heal => cluster.heal(),
        Action::Pause(i) => cluster.pause(*i),
        Action::Resume(i) => cluster.resume(*i),
        Action::Skew(i, offset_ms, ppm) => set_clock(cluster, state, *i, *offset_ms, *ppm),
        Action::ClockJump(i, ms) => {
            let (offset, ppm) = state.clocks.get(i).copied().unwrap_or((0, 0));
            set_clock(cluster, state, *i, offset + ms, ppm);
        }
        Action::SlowDisk(i, ms) => set_disk(cluster, state, *i, |f| {
            f.sync_latency = Duration::from_millis(*ms);
        }),
        Action::DiskErrors(i, w, s) => set_disk(cluster, state, *i, |f| {
            f.write_error = f64::from(*w) / 1000.0;
            f.sync_error = f64::from(*s) / 1000.0;
        }),
        Action::DiskOk(i) => set_disk(cluster, state, *i, |f| {
            f.write_error = 0.0;
            f.sync_error = 0.0;
        }),
        Action::DiskFull(i) => {
            let mut used = None;
            set_files(cluster, state, *i, |f, dir| {
                let bytes = wal::used_bytes(dir);
                f.capacity = Some(bytes);
                used = Some(bytes);
            });
            return used.map(|b| format!("its WAL keeps {b} bytes"));
        }
        Action::DiskSpace(i) => set_files(cluster, state, *i, |f, _| f.capacity = None),
        Action::CorruptReads(i, pm) => set_files(cluster, state, *i, |f, _| {
            f.corrupt_read = f64::from(*pm) / 1000.0;
        }),
        Action::ReadsOk(i) => set_files(cluster, state, *i, |f, _| f.corrupt_read = 0.0),
        Action::Delay(lo, hi) => {
            state.delay = Some((*lo, *hi));
            set_net(state.delay, state.loss);
        }
        Action::DelayEnd => {
            state.delay = None;
            set_net(state.delay, state.loss);
        }
        Action::Loss(pm) => {
            state.loss = Some(*pm);
            set_net(state.delay, state.loss);
        }
        Action::LossEnd => {
            state.loss = None;
            set_net(state.delay, state.loss);
        }
        Action::OneWay(from, to) => cluster.clog(from, to),
        Action::Bridge(left, _, right) => {
            cluster.clog(left, right);
            cluster.clog(right, left);
        }
        Action::IsolateLeader => {
            return Some(match cluster.leader().await {
                Some(l) => {
                    cluster.partition(&[l]);
                    format!("n{}", l + 1)
                }
                None => "no leader".to_string(),
            });
        }
        Action::Clog(a, b) => cluster.clog(&[*a], &[*b]),
        Action::Unclog(a, b) => cluster.unclog(*a, *b),
        Action::AddLearner(j) => return Some(cluster.add_learner(*j).await),
        Action::Promote(j) => return Some(cluster.promote(*j).await),
        Action::Remove(i) => return Some(cluster.remove(*i).await),
        // The members were started with it (see the runner).
        Action::AutoCompaction(_) => {}
    }
    None
}
