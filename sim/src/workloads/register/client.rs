//! The register workload's client: random reads, puts, deletes, compare-and-swaps, reads of the
//! past and compactions through one member at a time.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use bytes::Bytes;
use detcd::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use detcd::proto::etcdserverpb::kv_client::KvClient;
use detcd::proto::etcdserverpb::response_op::Response;
use detcd::proto::etcdserverpb::{CompactionRequest, Compare, RangeRequest, TxnRequest};
use detcd_jepsen::kv::{
    CmpOp, Compare as KvCompare, CompareTarget as KvTarget, TxnOp, TxnOpResult,
};
use detcd_jepsen::{KvInput, KvOutput, Op, Outcome};
use rand::Rng;
use tonic::transport::Channel;

use super::past::{CompactAnswer, Compaction, PastAnswer, PastRead};
use super::{Shared, KEYS};
use crate::workloads::client::{
    delete_request, dial, get_op, get_request, nanos_since, put_op, put_request, revision, text,
};

/// How long a client waits for an answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// etcd's answer to a read below the compacted revision (and to a compaction not above it).
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
/// etcd's answer to a read or compaction above the store's revision.
const FUTURE: &str = "etcdserver: mvcc: required revision is a future revision";

/// Connects to the first member that accepts, starting at `*target` and moving on (members
/// may be down, stopped or removed); `None` after ten simulated seconds of refusals.
async fn connect_any(urls: &[String], target: &mut usize) -> Option<KvClient<Channel>> {
    for _ in 0..100 {
        if let Some(c) = dial(&urls[*target]).await {
            return Some(KvClient::new(c));
        }
        *target = (*target + 1) % urls.len();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// What one client kind of operation does.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Get,
    Put,
    Delete,
    Cas,
    ReadPast,
    Compact,
}

/// A client's memory between operations.
#[derive(Default)]
struct Seen {
    /// The newest revision any response named.
    revision: u64,
    /// The newest revision this client compacted to (or was told is compacted).
    compacted: u64,
    /// Per key, the value it last read (`None`: absent or never read).
    values: std::collections::BTreeMap<String, Option<String>>,
}

/// One client (`process`): random operations on random keys through member `process % n`,
/// moving to another member after a failure, until it has done `ops` operations or `until` has
/// passed. Reads of the present and writes go to the KV history with their outcomes (a write
/// that failed or timed out is `Info`: it may still take effect; a failed read is `Fail`);
/// reads of the past and compactions go to the past log.
pub async fn client(
    process: u64,
    urls: Vec<String>,
    start: tokio::time::Instant,
    until: Duration,
    ops: usize,
    log: Shared,
) {
    let mut target = process as usize % urls.len();
    let Some(kv) = connect_any(&urls, &mut target).await else {
        return;
    };
    let mut c = Client {
        kv,
        process,
        start,
        log,
        seen: Seen::default(),
    };
    for i in 0..ops {
        if tokio::time::Instant::now().duration_since(start) >= until {
            return;
        }
        let (key, kind) = {
            let mut rng = madsim::rand::thread_rng();
            let key = KEYS[rng.gen_range(0..KEYS.len())].to_string();
            let kind = match rng.gen_range(0..100) {
                0..35 => Kind::Get,
                35..60 => Kind::Put,
                60..70 => Kind::Delete,
                70..82 => Kind::Cas,
                82..95 => Kind::ReadPast,
                _ => Kind::Compact,
            };
            (key, kind)
        };
        // Nothing to read in the past or compact before a response named a revision.
        let kind = match kind {
            Kind::ReadPast | Kind::Compact if c.seen.revision < 2 => Kind::Get,
            k => k,
        };
        let value = format!("{process}-{i}");
        let answered = match kind {
            Kind::Get => c.get(&key).await,
            Kind::Put => c.put(&key, &value).await,
            Kind::Delete => c.delete(&key).await,
            Kind::Cas => c.cas(&key, &value).await,
            Kind::ReadPast => c.read_past(&key).await,
            Kind::Compact => c.compact().await,
        };
        if !answered {
            target = (target + 1) % urls.len();
            match connect_any(&urls, &mut target).await {
                Some(kv) => c.kv = kv,
                None => return,
            }
        }
    }
}

/// One client's connection, identity and memory.
struct Client {
    kv: KvClient<Channel>,
    process: u64,
    /// When the workload started: the time scale of the history.
    start: tokio::time::Instant,
    log: Shared,
    seen: Seen,
}

impl Client {
    /// Appends a KV operation to the history; returns whether it got an answer.
    fn record(&self, invoke: u64, input: KvInput, outcome: Outcome<KvOutput>) -> bool {
        let answered = matches!(outcome, Outcome::Ok(_));
        self.log.lock().unwrap().ops.push(Op {
            process: self.process,
            invoke,
            complete: nanos_since(self.start),
            input,
            outcome,
        });
        answered
    }

    /// A linearizable read of `key` at the newest revision.
    async fn get(&mut self, key: &str) -> bool {
        let invoke = nanos_since(self.start);
        let outcome =
            match tokio::time::timeout(REQUEST_TIMEOUT, self.kv.range(get_request(key))).await {
                Ok(Ok(r)) => {
                    let r = r.into_inner();
                    let found = r.kvs.first();
                    let value = found.map(|kv| text(&kv.value));
                    let rev = revision(r.header);
                    self.seen.revision = self.seen.revision.max(rev);
                    self.seen.values.insert(key.to_string(), value.clone());
                    Outcome::Ok(KvOutput::Get {
                        value,
                        mod_revision: Some(found.map_or(0, |kv| kv.mod_revision as u64)),
                        revision: Some(rev),
                    })
                }
                _ => Outcome::Fail,
            };
        let input = KvInput::Get {
            key: key.to_string(),
        };
        self.record(invoke, input, outcome)
    }

    /// A put of `value` at `key`.
    async fn put(&mut self, key: &str, value: &str) -> bool {
        let invoke = nanos_since(self.start);
        let outcome =
            match tokio::time::timeout(REQUEST_TIMEOUT, self.kv.put(put_request(key, value))).await
            {
                Ok(Ok(r)) => {
                    let rev = revision(r.into_inner().header);
                    self.seen.revision = self.seen.revision.max(rev);
                    Outcome::Ok(KvOutput::Put {
                        revision: Some(rev),
                    })
                }
                _ => Outcome::Info,
            };
        let input = KvInput::Put {
            key: key.to_string(),
            value: value.to_string(),
        };
        self.record(invoke, input, outcome)
    }

    /// A delete of `key`.
    async fn delete(&mut self, key: &str) -> bool {
        let req = delete_request(key);
        let invoke = nanos_since(self.start);
        let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, self.kv.delete_range(req)).await {
            Ok(Ok(r)) => {
                let r = r.into_inner();
                let rev = revision(r.header);
                self.seen.revision = self.seen.revision.max(rev);
                Outcome::Ok(KvOutput::Delete {
                    deleted: Some(r.deleted as u64),
                    revision: Some(rev),
                })
            }
            _ => Outcome::Info,
        };
        let input = KvInput::Delete {
            key: key.to_string(),
        };
        self.record(invoke, input, outcome)
    }

    /// A compare-and-swap: if `key` still holds the value this client last read (or is still
    /// absent), put `value`; otherwise read it.
    async fn cas(&mut self, key: &str, value: &str) -> bool {
        let expected = self.seen.values.get(key).cloned().flatten();
        // The value last read, or (none read, or the key was absent) that it does not exist.
        let (target, union, kv_compare) = match &expected {
            Some(v) => (
                CompareTarget::Value,
                TargetUnion::Value(Bytes::from(v.clone())),
                KvTarget::Value(v.clone()),
            ),
            None => (
                CompareTarget::Mod,
                TargetUnion::ModRevision(0),
                KvTarget::ModRevision(0),
            ),
        };
        let compare = Compare {
            result: CompareResult::Equal as i32,
            target: target as i32,
            key: Bytes::from(key.to_string()),
            range_end: Bytes::new(),
            target_union: Some(union),
        };
        let t = TxnRequest {
            compare: vec![compare],
            success: vec![put_op(key, value)],
            failure: vec![get_op(key)],
        };
        let input = KvInput::Txn {
            compares: vec![KvCompare {
                key: key.to_string(),
                op: CmpOp::Equal,
                target: kv_compare,
            }],
            success: vec![TxnOp::Put {
                key: key.to_string(),
                value: value.to_string(),
            }],
            failure: vec![TxnOp::Get {
                key: key.to_string(),
            }],
        };
        let invoke = nanos_since(self.start);
        let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, self.kv.txn(t)).await {
            Ok(Ok(r)) => {
                let r = r.into_inner();
                let rev = revision(r.header);
                self.seen.revision = self.seen.revision.max(rev);
                let results = if r.succeeded {
                    self.seen
                        .values
                        .insert(key.to_string(), Some(value.to_string()));
                    vec![TxnOpResult::Put]
                } else {
                    let found = r.responses.first().and_then(|op| match &op.response {
                        Some(Response::ResponseRange(range)) => Some(range.kvs.first().cloned()),
                        _ => None,
                    });
                    match found {
                        Some(found) => {
                            let v = found.as_ref().map(|kv| text(&kv.value));
                            self.seen.values.insert(key.to_string(), v.clone());
                            vec![TxnOpResult::Get {
                                value: v,
                                mod_revision: Some(found.map_or(0, |kv| kv.mod_revision as u64)),
                            }]
                        }
                        None => Vec::new(),
                    }
                };
                Outcome::Ok(KvOutput::Txn {
                    succeeded: r.succeeded,
                    results,
                    revision: Some(rev),
                })
            }
            _ => Outcome::Info,
        };
        self.record(invoke, input, outcome)
    }

    /// A read of `key` at a recent revision: around the newest compaction this client knows of
    /// half of the time (just below, at, just after it), else among the last revisions it saw.
    async fn read_past(&mut self, key: &str) -> bool {
        let at = {
            let mut rng = madsim::rand::thread_rng();
            if self.seen.compacted > 1 && rng.gen_bool(0.5) {
                self.seen.compacted - 1 + rng.gen_range(0..3)
            } else {
                self.seen.revision - rng.gen_range(0..self.seen.revision.min(12))
            }
        }
        .min(self.seen.revision);
        let req = RangeRequest {
            key: Bytes::from(key.to_string()),
            revision: at as i64,
            ..Default::default()
        };
        let invoke = nanos_since(self.start);
        let (answer, answered) =
            match tokio::time::timeout(REQUEST_TIMEOUT, self.kv.range(req)).await {
                Ok(Ok(r)) => {
                    let r = r.into_inner();
                    self.seen.revision = self.seen.revision.max(revision(r.header));
                    let found = match r.kvs.first() {
                        Some(found) => PastAnswer::Found {
                            value: text(&found.value),
                            mod_revision: found.mod_revision as u64,
                        },
                        None => PastAnswer::Absent,
                    };
                    (found, true)
                }
                Ok(Err(e)) if e.message() == COMPACTED => (PastAnswer::Compacted, true),
                Ok(Err(e)) if e.message() == FUTURE => {
                    self.log.lock().unwrap().past.problems.push(format!(
                        "client {}: a read at revision {at} answered {FUTURE:?}, though a \
                     response had named revision {} before",
                        self.process, self.seen.revision
                    ));
                    (PastAnswer::Failed, true)
                }
                _ => (PastAnswer::Failed, false),
            };
        self.log.lock().unwrap().past.reads.push(PastRead {
            process: self.process,
            invoke,
            complete: nanos_since(self.start),
            key: key.to_string(),
            at,
            answer,
        });
        answered
    }

    /// A compaction to a revision a little below the newest this client saw (physical or not, at
    /// random).
    async fn compact(&mut self) -> bool {
        let (to, physical) = {
            let mut rng = madsim::rand::thread_rng();
            (
                self.seen.revision - rng.gen_range(0..self.seen.revision.min(6)),
                rng.gen_bool(0.5),
            )
        };
        let req = CompactionRequest {
            revision: to as i64,
            physical,
        };
        let invoke = nanos_since(self.start);
        let (answer, answered) =
            match tokio::time::timeout(REQUEST_TIMEOUT, self.kv.compact(req)).await {
                Ok(Ok(r)) => {
                    self.seen.revision = self.seen.revision.max(revision(r.into_inner().header));
                    self.seen.compacted = self.seen.compacted.max(to);
                    (CompactAnswer::Done, true)
                }
                Ok(Err(e)) if e.message() == COMPACTED => {
                    self.seen.compacted = self.seen.compacted.max(to);
                    (CompactAnswer::AlreadyCompacted, true)
                }
                Ok(Err(e)) if e.message() == FUTURE => {
                    self.log.lock().unwrap().past.problems.push(format!(
                        "a compaction to {to} answered {FUTURE:?}, though a response had named \
                     revision {} before",
                        self.seen.revision
                    ));
                    (CompactAnswer::Unknown, true)
                }
                _ => (CompactAnswer::Unknown, false),
            };
        self.log.lock().unwrap().past.compactions.push(Compaction {
            invoke,
            complete: nanos_since(self.start),
            revision: to,
            answer,
        });
        answered
    }
}
