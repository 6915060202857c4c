//! Model test: random sequences of put / delete / txn / compact / range run against the store
//! and against a deliberately naive model that keeps every version of every key in a list.
//! Responses and revisions must be identical; and a store reopened from its disk must answer
//! every read the live one answers.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use crate::error::Error;
use crate::io::disk::{Disk, SimDisk};
use crate::mvcc::txn::NoLeases;
use crate::mvcc::Store;
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::response_op::Response;
use crate::proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use crate::proto::mvccpb::KeyValue;

/// Every version of every key; `None` marks a deletion.
#[derive(Default)]
struct Model {
    versions: BTreeMap<Vec<u8>, Vec<(i64, Option<KeyValue>)>>,
    rev: i64,
    compacted: i64,
}

impl Model {
    fn new() -> Self {
        Model {
            rev: 1,
            ..Default::default()
        }
    }

    fn get(&self, k: &[u8], at: i64) -> Option<KeyValue> {
        self.versions
            .get(k)?
            .iter()
            .rev()
            .find(|(r, _)| *r <= at)
            .and_then(|(_, kv)| kv.clone())
    }

    fn keys_in(&self, k: &[u8], end: &[u8]) -> Vec<Vec<u8>> {
        self.versions
            .keys()
            .filter(|key| {
                if end.is_empty() {
                    key.as_slice() == k
                } else if end == [0] {
                    key.as_slice() >= k
                } else {
                    key.as_slice() >= k && key.as_slice() < end
                }
            })
            .cloned()
            .collect()
    }

    /// Writes `ops` as one revision (a put or delete alone is a one-op list).
    fn write(&mut self, ops: &[Op]) {
        let rev = self.rev + 1;
        let mut changed = false;
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    let prev = self.get(k, rev);
                    let kv = KeyValue {
                        key: Bytes::copy_from_slice(k),
                        create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
                        mod_revision: rev,
                        version: prev.as_ref().map_or(1, |p| p.version + 1),
                        value: Bytes::copy_from_slice(v),
                        lease: 0,
                    };
                    self.versions
                        .entry(k.clone())
                        .or_default()
                        .push((rev, Some(kv)));
                    changed = true;
                }
                Op::Delete(k, end) => {
                    for key in self.keys_in(k, end) {
                        if self.get(&key, rev).is_some() {
                            self.versions.get_mut(&key).unwrap().push((rev, None));
                            changed = true;
                        }
                    }
                }
                _ => unreachable!(),
            }
        }
        if changed {
            self.rev = rev;
        }
    }

    fn range(
        &self,
        k: &[u8],
        end: &[u8],
        at: i64,
        limit: i64,
    ) -> Result<(Vec<KeyValue>, i64, bool), Error> {
        if at > self.rev {
            return Err(Error::FutureRevision);
        }
        let at = if at <= 0 { self.rev } else { at };
        if at < self.compacted {
            return Err(Error::Compacted);
        }
        let mut kvs: Vec<KeyValue> = self
            .keys_in(k, end)
            .iter()
            .filter_map(|key| self.get(key, at))
            .collect();
        let count = kvs.len() as i64;
        let more = limit > 0 && kvs.len() > limit as usize;
        if more {
            kvs.truncate(limit as usize);
        }
        Ok((kvs, count, more))
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>, Vec<u8>),
    /// if value(key) == value then ops else ops.
    Txn(Vec<u8>, Vec<u8>, Vec<Op>, Vec<Op>),
    Compact(i64),
    Range(Vec<u8>, Vec<u8>, i64, i64),
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec!["a", "b", "ba", "c", "d"]).prop_map(|s| s.as_bytes().to_vec())
}

fn end() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec!["", "", "b", "c", "e", "\0"]).prop_map(|s| s.as_bytes().to_vec())
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec!["x", "y", "z"]).prop_map(|s| s.as_bytes().to_vec())
}

fn write_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (key(), value()).prop_map(|(k, v)| Op::Put(k, v)),
        (key(), end()).prop_map(|(k, e)| Op::Delete(k, e)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (key(), value()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (key(), end()).prop_map(|(k, e)| Op::Delete(k, e)),
        2 => (key(), value(), prop::collection::vec(write_op(), 0..3), prop::collection::vec(write_op(), 0..3))
            .prop_map(|(k, v, t, e)| Op::Txn(k, v, t, e)),
        1 => (0i64..30).prop_map(Op::Compact),
        3 => (key(), end(), -1i64..30, 0i64..3).prop_map(|(k, e, r, l)| Op::Range(k, e, r, l)),
    ]
}

/// etcd rejects a txn branch that puts one key twice or puts a key it also deletes.
fn branch_is_valid(ops: &[Op]) -> bool {
    let mut puts: Vec<&Vec<u8>> = Vec::new();
    for op in ops {
        if let Op::Put(k, _) = op {
            if puts.contains(&k) {
                return false;
            }
            puts.push(k);
        }
    }
    ops.iter().all(|op| match op {
        Op::Delete(k, e) => puts.iter().all(|p| {
            if e.is_empty() {
                *p != k
            } else {
                !(p.as_slice() >= k.as_slice() && p.as_slice() < e.as_slice())
            }
        }),
        _ => true,
    })
}

fn request_op(op: &Op) -> RequestOp {
    let request = match op {
        Op::Put(k, v) => Request::RequestPut(PutRequest {
            key: Bytes::copy_from_slice(k),
            value: Bytes::copy_from_slice(v),
            ..Default::default()
        }),
        Op::Delete(k, e) => Request::RequestDeleteRange(DeleteRangeRequest {
            key: Bytes::copy_from_slice(k),
            range_end: Bytes::copy_from_slice(e),
            ..Default::default()
        }),
        _ => unreachable!(),
    };
    RequestOp {
        request: Some(request),
    }
}

fn apply(store: &Store, disk: &Disk, model: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    let mut w = store.writer();
    match op {
        Op::Put(k, v) => {
            let r = w
                .put(
                    &PutRequest {
                        key: k.clone().into(),
                        value: v.clone().into(),
                        prev_kv: true,
                        ..Default::default()
                    },
                    &NoLeases,
                )
                .unwrap();
            let prev = model.get(k, model.rev);
            model.write(std::slice::from_ref(op));
            prop_assert_eq!(r.prev_kv, prev);
            prop_assert_eq!(r.header.unwrap().revision, model.rev);
        }
        Op::Delete(k, e) => {
            let expected: Vec<KeyValue> = model
                .keys_in(k, e)
                .iter()
                .filter_map(|key| model.get(key, model.rev))
                .collect();
            let r = w.delete_range(&DeleteRangeRequest {
                key: k.clone().into(),
                range_end: e.clone().into(),
                prev_kv: true,
            });
            model.write(std::slice::from_ref(op));
            prop_assert_eq!(r.prev_kvs, expected);
            prop_assert_eq!(r.header.unwrap().revision, model.rev);
        }
        Op::Txn(k, v, then, els) => {
            let holds = model
                .get(k, model.rev)
                .is_some_and(|kv| kv.value.as_ref() == v.as_slice());
            let req = TxnRequest {
                compare: vec![Compare {
                    result: CompareResult::Equal as i32,
                    target: CompareTarget::Value as i32,
                    key: k.clone().into(),
                    target_union: Some(TargetUnion::Value(v.clone().into())),
                    range_end: Bytes::new(),
                }],
                success: then.iter().map(request_op).collect(),
                failure: els.iter().map(request_op).collect(),
            };
            let r = w.txn(&req, &NoLeases).unwrap();
            prop_assert_eq!(r.succeeded, holds);
            model.write(if holds { then } else { els });
            prop_assert_eq!(r.header.unwrap().revision, model.rev);
            for resp in &r.responses {
                match &resp.response {
                    Some(Response::ResponsePut(p)) => {
                        prop_assert_eq!(p.header.as_ref().unwrap().revision, model.rev)
                    }
                    Some(Response::ResponseDeleteRange(_)) => {}
                    other => prop_assert!(false, "unexpected response {:?}", other),
                }
            }
        }
        Op::Compact(rev) => {
            let expected = if *rev <= model.compacted {
                Err(Error::Compacted)
            } else if *rev > model.rev {
                Err(Error::FutureRevision)
            } else {
                model.compacted = *rev;
                Ok(model.rev)
            };
            prop_assert_eq!(
                w.compact(&CompactionRequest {
                    revision: *rev,
                    physical: true
                }),
                expected
            );
        }
        Op::Range(..) => unreachable!(),
    }
    let batch_disk = disk.clone();
    w.finish(|b| batch_disk.write(b)).unwrap();
    Ok(())
}

fn check_range(
    store: &Store,
    model: &Model,
    k: &[u8],
    e: &[u8],
    at: i64,
    limit: i64,
) -> Result<(), TestCaseError> {
    let got = store.range(&RangeRequest {
        key: k.to_vec().into(),
        range_end: e.to_vec().into(),
        revision: at,
        limit,
        ..Default::default()
    });
    match (got, model.range(k, e, at, limit)) {
        (Ok(r), Ok((kvs, count, more))) => {
            prop_assert_eq!(r.kvs, kvs);
            prop_assert_eq!(r.count, count);
            prop_assert_eq!(r.more, more);
            prop_assert_eq!(r.header.unwrap().revision, model.rev);
        }
        (Err(a), Err(b)) => prop_assert_eq!(a, b),
        (a, b) => prop_assert!(false, "store {:?} vs model {:?}", a, b),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn store_matches_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let disk = Disk::Sim(SimDisk::new());
        let store = Store::new();
        let mut model = Model::new();
        for op in &ops {
            match op {
                Op::Range(k, e, at, limit) => check_range(&store, &model, k, e, *at, *limit)?,
                Op::Txn(_, _, t, e) if !branch_is_valid(t) || !branch_is_valid(e) => {}
                _ => apply(&store, &disk, &mut model, op)?,
            }
            prop_assert_eq!(store.current_revision(), model.rev);
        }
        // A store rebuilt from disk answers every still-readable revision the same way.
        let reopened = Store::open(&disk).unwrap();
        prop_assert_eq!(reopened.current_revision(), model.rev);
        prop_assert_eq!(reopened.compacted_revision(), model.compacted);
        for at in model.compacted.max(1)..=model.rev {
            check_range(&reopened, &model, b"\0", b"\0", at, 0)?;
        }
        // Compaction physically removed what no read can see any more.
        let retained = reopened.record_count();
        prop_assert_eq!(retained, store.record_count());
    }
}
