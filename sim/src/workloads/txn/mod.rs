//! Multi-key transactions under seeded faults: bank transfers that must conserve the total.
//!
//! Four accounts start at 100 each (one txn before the clients start). Clients, through random
//! members, either read every account in one read-only txn, or transfer: read two accounts, then
//! a txn that writes both new balances only if neither changed since (compare `mod_revision`,
//! etcd's compare-and-swap). Every operation, txns included, is recorded for detcd-jepsen's etcd
//! KV model, which judges the whole history for linearizability; and every read of all accounts
//! must sum to 400 — a txn applied in part, or a read that sees half of one, breaks it.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use detcd::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use detcd::proto::etcdserverpb::kv_client::KvClient;
use detcd::proto::etcdserverpb::response_op::Response as RespOp;
use detcd::proto::etcdserverpb::{Compare, TxnRequest};
use detcd_jepsen::kv::{
    CmpOp, Compare as KvCompare, CompareTarget as KvTarget, TxnOp, TxnOpResult,
};
use detcd_jepsen::{KvInput, KvOutput, Op, Outcome as OpOutcome, Verdict};
use rand::Rng;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::cluster::{wait_leader, SimCluster};
use crate::nemesis::{apply, generate, FaultKind};
use crate::trace::Trace;
use crate::workloads::client::{connect_kv, get_op, nanos_since, put_op, revision, text};
use crate::workloads::register::{check, KvOp};
use crate::workloads::scenario::{failure, run_seed, Passed};

/// The accounts.
pub const ACCOUNTS: [&str; 4] = ["acct0", "acct1", "acct2", "acct3"];
/// Each account's opening balance.
pub const OPENING: i64 = 100;
/// Per-request timeout of the clients.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// The shape of one run.
#[derive(Debug, Clone)]
pub struct Params {
    /// Members.
    pub nodes: usize,
    /// Concurrent clients.
    pub clients: u64,
    /// Operations per client at most (keeps the checker's search small).
    pub ops_per_client: usize,
    /// Length of the faulty phase.
    pub duration: Duration,
    /// The nemesis's fault kinds the seed may enable.
    pub faults: BTreeSet<FaultKind>,
}

impl Default for Params {
    /// Three members, four clients of at most 40 operations, six seconds, crashes, partitions,
    /// pauses, clock skew and slow disks, message delay and loss.
    fn default() -> Self {
        Params {
            nodes: 3,
            clients: 4,
            ops_per_client: 40,
            duration: Duration::from_secs(6),
            faults: [
                FaultKind::Crash,
                FaultKind::Partition,
                FaultKind::Pause,
                FaultKind::ClockSkew,
                FaultKind::SlowDisk,
                FaultKind::NetDelay,
                FaultKind::NetLoss,
                FaultKind::IsolateLeader,
            ]
            .into_iter()
            .collect(),
        }
    }
}

/// What a passing run measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Operations checked.
    pub ops: usize,
    /// Transfers that committed.
    pub transfers: usize,
    /// Reads of every account (each summed to the total).
    pub audits: usize,
}

/// A passing run of this scenario.
pub type Outcome = Passed<Stats>;

/// Runs one seed in a fresh simulator; `Err` describes the violation, with the schedule.
pub fn run(seed: u64, params: &Params) -> Result<Outcome, String> {
    run_seed("txn", seed, scenario(seed, params.clone()))
}

#[derive(Default)]
struct Logs {
    ops: Vec<KvOp>,
    transfers: usize,
    audits: usize,
    /// Audits that did not sum to the total.
    broken: Vec<String>,
}

type Shared = Arc<Mutex<Logs>>;

async fn scenario(seed: u64, p: Params) -> Result<Outcome, String> {
    let began = Instant::now();
    let cluster = SimCluster::new(p.nodes);
    let urls = cluster.client_urls();
    let u = urls.clone();
    cluster.client(async move { wait_leader(&u).await }).await;
    let schedule = generate::random(seed, p.nodes, p.duration.as_millis() as u64, &p.faults);
    let mut trace = Trace::default();
    trace.record(schedule.to_string());

    let logs: Shared = Arc::default();
    let start = Instant::now();
    // Open the accounts, recorded as the history's first operation.
    let (l, u) = (logs.clone(), urls.clone());
    let opened = cluster
        .client(async move { open_accounts(&u, start, &l).await })
        .await;
    if !opened {
        return Err(format!("txn seed {seed}: could not open the accounts"));
    }
    let (l, u, until) = (logs.clone(), urls.clone(), p.duration);
    let (clients, per_client) = (p.clients, p.ops_per_client);
    let work = cluster.spawn_client(async move {
        let tasks: Vec<_> = (0..clients)
            .map(|c| tokio::spawn(client(c, u.clone(), start, until, per_client, l.clone())))
            .collect();
        for t in tasks {
            t.await.expect("txn client task");
        }
    });
    let applied = apply::run(&schedule, &cluster).await;
    for line in applied.log {
        trace.record(line);
    }
    work.await
        .map_err(|e| format!("txn client panicked: {e:?}"))?;

    let logs = std::mem::take(&mut *logs.lock().unwrap());
    if !logs.broken.is_empty() {
        return Err(failure("txn", seed, "txn", &logs.broken, &schedule, None));
    }
    let n = logs.ops.len();
    let result = check(logs.ops);
    if result.verdict != Verdict::Linearizable {
        let why = result
            .explanation
            .as_ref()
            .map(|e| e.summary())
            .unwrap_or_default();
        let problem = format!("{:?}: {why}", result.verdict);
        return Err(failure("txn", seed, "txn", &[problem], &schedule, None));
    }
    trace.record(format!(
        "{n} ops linearizable; {} transfers, {} audits",
        logs.transfers, logs.audits
    ));
    Ok(Passed {
        trace,
        simulated: began.elapsed(),
        stats: Stats {
            ops: n,
            transfers: logs.transfers,
            audits: logs.audits,
        },
    })
}

async fn open_accounts(urls: &[String], start: Instant, logs: &Shared) -> bool {
    for _ in 0..50 {
        let Some(mut kv) = connect_kv(&urls[0], REQUEST_TIMEOUT).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let invoke = nanos_since(start);
        let t = TxnRequest {
            success: ACCOUNTS
                .iter()
                .map(|a| put_op(a, &OPENING.to_string()))
                .collect(),
            ..Default::default()
        };
        if let Ok(Ok(r)) = tokio::time::timeout(REQUEST_TIMEOUT, kv.txn(t)).await {
            let r = r.into_inner();
            logs.lock().unwrap().ops.push(Op {
                process: 1_000,
                invoke,
                complete: nanos_since(start),
                input: KvInput::Txn {
                    compares: Vec::new(),
                    success: ACCOUNTS
                        .iter()
                        .map(|a| TxnOp::Put {
                            key: a.to_string(),
                            value: OPENING.to_string(),
                        })
                        .collect(),
                    failure: Vec::new(),
                },
                outcome: OpOutcome::Ok(KvOutput::Txn {
                    succeeded: true,
                    results: Vec::new(),
                    revision: r.header.map(|h| h.revision as u64),
                }),
            });
            return true;
        }
    }
    false
}

/// Reads `keys` in one read-only txn: (value, mod_revision) per key, and the header revision.
async fn read(
    kv: &mut KvClient<Channel>,
    keys: &[&str],
) -> Option<(Vec<(Option<String>, u64)>, u64)> {
    let t = TxnRequest {
        success: keys.iter().map(|k| get_op(k)).collect(),
        ..Default::default()
    };
    let r = tokio::time::timeout(REQUEST_TIMEOUT, kv.txn(t))
        .await
        .ok()?
        .ok()?
        .into_inner();
    let mut out = Vec::new();
    for resp in &r.responses {
        let Some(RespOp::ResponseRange(g)) = &resp.response else {
            return None;
        };
        let kv = g.kvs.first();
        out.push((
            kv.map(|kv| text(&kv.value)),
            kv.map_or(0, |kv| kv.mod_revision as u64),
        ));
    }
    Some((out, revision(r.header)))
}

fn read_input(keys: &[&str]) -> KvInput {
    KvInput::Txn {
        compares: Vec::new(),
        success: keys
            .iter()
            .map(|k| TxnOp::Get { key: k.to_string() })
            .collect(),
        failure: Vec::new(),
    }
}

fn read_output(got: &[(Option<String>, u64)], revision: u64) -> KvOutput {
    KvOutput::Txn {
        succeeded: true,
        results: got
            .iter()
            .map(|(value, m)| TxnOpResult::Get {
                value: value.clone(),
                mod_revision: Some(*m),
            })
            .collect(),
        revision: Some(revision),
    }
}

fn balance(v: &Option<String>) -> i64 {
    v.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// One client: audits and transfers through member `c % n`, moving on after a failure.
async fn client(
    c: u64,
    urls: Vec<String>,
    start: Instant,
    until: Duration,
    max_ops: usize,
    logs: Shared,
) {
    let mut target = c as usize % urls.len();
    let mut kv = None;
    let mut done = 0;
    while done < max_ops && start.elapsed() < until {
        if kv.is_none() {
            kv = connect_kv(&urls[target], REQUEST_TIMEOUT).await;
            if kv.is_none() {
                target = (target + 1) % urls.len();
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        }
        let k = kv.as_mut().expect("connected");
        let (audit, from, to, amount) = {
            let mut rng = madsim::rand::thread_rng();
            let from = rng.gen_range(0..ACCOUNTS.len());
            let to = (from + rng.gen_range(1..ACCOUNTS.len())) % ACCOUNTS.len();
            (rng.gen_bool(0.4), from, to, rng.gen_range(1..=30))
        };
        done += 1;
        let ok = if audit {
            let invoke = nanos_since(start);
            let got = read(k, &ACCOUNTS).await;
            let mut l = logs.lock().unwrap();
            let outcome = match &got {
                Some((values, rev)) => {
                    let total: i64 = values.iter().map(|(v, _)| balance(v)).sum();
                    if total != OPENING * ACCOUNTS.len() as i64 {
                        l.broken.push(format!(
                            "[conservation] client {c} read a total of {total} at revision {rev}: {values:?}"
                        ));
                    }
                    l.audits += 1;
                    OpOutcome::Ok(read_output(values, *rev))
                }
                None => OpOutcome::Fail,
            };
            l.ops.push(Op {
                process: c,
                invoke,
                complete: nanos_since(start),
                input: read_input(&ACCOUNTS),
                outcome,
            });
            got.is_some()
        } else {
            let keys = [ACCOUNTS[from], ACCOUNTS[to]];
            let invoke = nanos_since(start);
            let got = read(k, &keys).await;
            logs.lock().unwrap().ops.push(Op {
                process: c,
                invoke,
                complete: nanos_since(start),
                input: read_input(&keys),
                outcome: match &got {
                    Some((values, rev)) => OpOutcome::Ok(read_output(values, *rev)),
                    None => OpOutcome::Fail,
                },
            });
            match got {
                None => false,
                Some((values, _)) => transfer(k, c, start, &keys, &values, amount, &logs).await,
            }
        };
        if !ok {
            kv = None;
            target = (target + 1) % urls.len();
        }
    }
}

/// Moves `amount` from `keys[0]` to `keys[1]` if neither changed since `read`; records it.
/// Returns false if the cluster did not answer.
async fn transfer(
    kv: &mut KvClient<Channel>,
    c: u64,
    start: Instant,
    keys: &[&str; 2],
    read: &[(Option<String>, u64)],
    amount: i64,
    logs: &Shared,
) -> bool {
    let (from_balance, to_balance) = (balance(&read[0].0), balance(&read[1].0));
    let new = [
        (from_balance - amount).to_string(),
        (to_balance + amount).to_string(),
    ];
    let cas = |k: &str, rev: u64| Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Mod as i32,
        key: Bytes::from(k.to_string()),
        range_end: Bytes::new(),
        target_union: Some(TargetUnion::ModRevision(rev as i64)),
    };
    let t = TxnRequest {
        compare: vec![cas(keys[0], read[0].1), cas(keys[1], read[1].1)],
        success: vec![put_op(keys[0], &new[0]), put_op(keys[1], &new[1])],
        failure: Vec::new(),
    };
    let input = KvInput::Txn {
        compares: (0..2)
            .map(|i| KvCompare {
                key: keys[i].to_string(),
                op: CmpOp::Equal,
                target: KvTarget::ModRevision(read[i].1),
            })
            .collect(),
        success: (0..2)
            .map(|i| TxnOp::Put {
                key: keys[i].to_string(),
                value: new[i].clone(),
            })
            .collect(),
        failure: Vec::new(),
    };
    let invoke = nanos_since(start);
    let answer = tokio::time::timeout(REQUEST_TIMEOUT, kv.txn(t)).await;
    let mut l = logs.lock().unwrap();
    let (outcome, answered) = match answer {
        Ok(Ok(r)) => {
            let r = r.into_inner();
            if r.succeeded {
                l.transfers += 1;
            }
            (
                OpOutcome::Ok(KvOutput::Txn {
                    succeeded: r.succeeded,
                    results: Vec::new(),
                    revision: r.header.map(|h| h.revision as u64),
                }),
                true,
            )
        }
        // It may still take effect.
        _ => (OpOutcome::Info, false),
    };
    l.ops.push(Op {
        process: c,
        invoke,
        complete: nanos_since(start),
        input,
        outcome,
    });
    answered
}
