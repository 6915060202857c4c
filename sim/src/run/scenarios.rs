//! The scenario workloads (txn, watch, lease, lock, auth, storage) as runs of the command line:
//! a [`RunConfig`] becomes the scenario's parameters, its verdict a [`RunReport`].
//!
//! Each scenario withstands only the fault kinds it was written against (a lock client, say,
//! does not follow a membership change): [`faults_of`] says which, and a run draws its schedule
//! from the kinds asked for that its workload withstands. The schedule is handed to the
//! scenario, so a replay from a file and a shrink play exactly the schedule given.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::time::Duration;

use detcd_jepsen::{Report, Section, Verdict};

use super::outcome::{first_line, violation_section, write_html};
use super::{panics, Failure, RunConfig, RunReport};
use crate::cluster::wal::WalStats;
use crate::nemesis::{FaultKind, Schedule, EVERY_FAULT};
use crate::workload::Workload;
use crate::workloads::scenario::Passed;
use crate::workloads::{auth, lease, lock, storage, txn, watch};

/// The fault kinds `workload` withstands: every kind for the register workload, the kinds its
/// tests use for a scenario, none for storage (whose crasher is its fault).
pub fn faults_of(workload: Workload) -> BTreeSet<FaultKind> {
    match workload {
        Workload::Register | Workload::All => EVERY_FAULT.into_iter().collect(),
        Workload::Txn => txn::Params::default().faults,
        Workload::Watch => watch::Params::default().faults,
        Workload::Lease => lease::Params::default().faults,
        Workload::Lock => lock::Params::default().faults,
        Workload::Auth => auth::Params::default().faults,
        Workload::Storage => BTreeSet::new(),
    }
}

/// Runs `config`'s seed with `schedule` under its (scenario) workload; a panic or a hang is a
/// failure like any violation.
pub(super) fn run(config: &RunConfig, schedule: &Schedule) -> RunReport {
    let workload = config.workload();
    let (seed, nodes, clients) = (config.seed, config.nodes, config.clients);
    let duration = Duration::from_millis(schedule.duration_ms);
    let faults = config.faults();
    let given = Some(schedule.clone());
    let played = panics::catching(|| match workload {
        Workload::Txn => {
            let p = txn::Params {
                nodes,
                clients,
                duration,
                faults,
                schedule: given,
                ..Default::default()
            };
            verdict(txn::run(seed, &p), Verdict::Linearizable, |s| s.ops)
        }
        Workload::Watch => {
            let p = watch::Params {
                nodes,
                writers: clients,
                duration,
                faults,
                schedule: given,
                ..Default::default()
            };
            verdict(watch::run(seed, &p), Verdict::Unknown, |s| {
                s.acked_writes + s.events
            })
        }
        Workload::Lease => {
            let p = lease::Params {
                nodes,
                clients,
                duration,
                faults,
                schedule: given,
                ..Default::default()
            };
            verdict(lease::run(seed, &p), Verdict::Unknown, |s| {
                s.leases + s.renewals + s.failed_renewals + s.reads
            })
        }
        Workload::Lock => {
            let p = lock::Params {
                nodes,
                clients,
                duration,
                faults,
                schedule: given,
            };
            verdict(lock::run(seed, &p), Verdict::Unknown, |s| {
                s.holds + s.accesses + s.failed_locks
            })
        }
        Workload::Auth => {
            let p = auth::Params {
                nodes,
                writers: clients,
                duration,
                faults,
                schedule: given,
            };
            verdict(auth::run(seed, &p), Verdict::Unknown, |s| {
                s.puts_ok + s.denied + s.stale + s.unknown + s.revokes + s.grants + s.passwords
            })
        }
        Workload::Storage => {
            let p = storage::Params {
                nodes,
                writers: clients,
                duration,
                ..Default::default()
            };
            let result = storage::run(seed, &p);
            let wal = result
                .as_ref()
                .map(|r| WalStats {
                    rolled: r.stats.rolled,
                    purged: r.stats.purged,
                })
                .ok();
            let mut v = verdict(result, Verdict::Unknown, |s| s.acked + s.unknown);
            if let (Ok(v), Some(wal)) = (&mut v, wal) {
                v.wal = wal;
            }
            v
        }
        Workload::Register | Workload::All => Err(format!("{workload} is not a scenario workload")),
    });
    let mut report = RunReport::empty(config, schedule);
    match played.and_then(|r| r) {
        Ok(v) => {
            report.trace_hash = v.trace_hash;
            report.trace = v.trace;
            report.ops = v.ops;
            report.verdict = v.verdict;
            report.faults_seen = v.faults_seen;
            report.simulated = v.simulated;
            report.stats = v.stats;
            report.wal = v.wal;
        }
        Err(why) => {
            let mut html = Report::new(format!("detcd-sim seed {seed} ({workload})"));
            html.sections.push(Section {
                title: "fault schedule".to_string(),
                verdict: Verdict::Linearizable,
                text: schedule.to_string(),
                html: String::new(),
            });
            html.sections
                .push(violation_section(&format!("{workload} checks"), &why));
            report.failure = Some(Failure {
                message: first_line(&why).to_string(),
                explanation: why,
                html_path: write_html(config, &html),
            });
        }
    }
    report
}

/// What a passing scenario run contributes to its report.
struct Verdicted {
    trace_hash: u64,
    trace: Vec<String>,
    ops: usize,
    verdict: Verdict,
    faults_seen: std::collections::BTreeMap<FaultKind, usize>,
    simulated: Duration,
    stats: String,
    /// WAL segments rolled and purged (the storage workload counts them).
    wal: WalStats,
}

/// A scenario's result as report fields: its operations counted by `ops`, its figures printed.
/// Only the txn scenario checks its history for linearizability (and passes only if it is);
/// the others pass `on_pass` = `Unknown`: their own checks held, no linearizability check ran.
fn verdict<S: Debug>(
    result: Result<Passed<S>, String>,
    on_pass: Verdict,
    ops: impl Fn(&S) -> usize,
) -> Result<Verdicted, String> {
    let p = result?;
    Ok(Verdicted {
        trace_hash: p.trace.hash(),
        trace: p.trace.events().to_vec(),
        ops: ops(&p.stats),
        verdict: on_pass,
        faults_seen: p.faults_seen,
        simulated: p.simulated,
        stats: format!("{:?}", p.stats),
        wal: WalStats::default(),
    })
}
