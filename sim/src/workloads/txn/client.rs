//! The txn workload's clients: audits of every account and compare-and-swap transfers.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use bytes::Bytes;
use detcd::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use detcd::proto::etcdserverpb::kv_client::KvClient;
use detcd::proto::etcdserverpb::{Compare, TxnRequest};
use detcd_jepsen::kv::{CmpOp, Compare as KvCompare, CompareTarget as KvTarget, TxnOp};
use detcd_jepsen::{KvInput, KvOutput, Op, Outcome as OpOutcome};
use rand::Rng;
use tokio::time::Instant;
use tonic::transport::Channel;

use super::accounts::{balance, read, read_input, read_output};
use super::{Shared, ACCOUNTS, OPENING, REQUEST_TIMEOUT};
use crate::workloads::client::{connect_kv, nanos_since, put_op};

/// One client: audits and transfers through member `c % n`, moving on after a failure.
pub(super) async fn client(
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
