//! The accounts: opening them, reading several in one read-only txn, and how such a read is
//! recorded for the checker.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use detcd::proto::etcdserverpb::kv_client::KvClient;
use detcd::proto::etcdserverpb::response_op::Response as RespOp;
use detcd::proto::etcdserverpb::TxnRequest;
use detcd_jepsen::kv::{TxnOp, TxnOpResult};
use detcd_jepsen::{KvInput, KvOutput, Op, Outcome as OpOutcome};
use tokio::time::Instant;
use tonic::transport::Channel;

use super::{Shared, ACCOUNTS, OPENING, REQUEST_TIMEOUT};
use crate::workloads::client::{connect_kv, get_op, nanos_since, put_op, revision, text};

/// Opens every account at [`OPENING`] in one txn through the first member (retrying for a
/// while), recorded as the history's first operation; false if the cluster never answered.
pub(super) async fn open_accounts(urls: &[String], start: Instant, logs: &Shared) -> bool {
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
pub(super) async fn read(
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

/// A read of `keys` in one txn, as the checker sees its input.
pub(super) fn read_input(keys: &[&str]) -> KvInput {
    KvInput::Txn {
        compares: Vec::new(),
        success: keys
            .iter()
            .map(|k| TxnOp::Get { key: k.to_string() })
            .collect(),
        failure: Vec::new(),
    }
}

/// What a read of several keys returned (`got`, at `revision`), as the checker sees it.
pub(super) fn read_output(got: &[(Option<String>, u64)], revision: u64) -> KvOutput {
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

/// An account's balance from its value (0 if absent or unreadable).
pub(super) fn balance(v: &Option<String>) -> i64 {
    v.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0)
}
