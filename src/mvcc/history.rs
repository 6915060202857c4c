//! History reads: the events of a key range over a span of revisions, as watchers replay them.
//!
//! A watcher that starts in the past, or falls behind the live feed, reads here what it missed:
//! every change with a revision in `[from, to]` to a key in `[key, range_end)`, in revision
//! order, shaped as the events the write path publishes (a put carries the key-value it wrote, a
//! delete carries the key and its revision). With `prev_kv` each event that is not a creation
//! also carries the key-value just before it, read from the same retained history, as etcd reads
//! it at `mod_revision - 1`.
//!
//! Compaction sets the floor: a read from below the compacted revision fails with
//! [`Compacted`]. A read from exactly the compacted revision succeeds and sees every change at
//! that revision, deletions included (compaction keeps a tombstone at its revision, as etcd does
//! since etcd-io/etcd#18274), but not the key-value before a change at that revision: it is gone.

use crate::proto::mvccpb::{event::EventType, Event, KeyValue};

use super::key_index::Change;
use super::store::keys_in;
use super::{Revision, Store};

/// What to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery<'a> {
    /// First key (or the only key, when `range_end` is empty).
    pub key: &'a [u8],
    /// etcd's range end: empty for the single key, `"\0"` for every key `>= key`, otherwise
    /// exclusive.
    pub range_end: &'a [u8],
    /// First revision to read (inclusive).
    pub from: i64,
    /// Last revision to read (inclusive); capped at the store's current revision.
    pub to: i64,
    /// Attach the previous key-value to each event that is not a key's creation.
    pub prev_kv: bool,
}

/// The events a history read found.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// Matching events in revision order (sub-revision order within a revision).
    pub events: Vec<Event>,
    /// The last revision the read covered: `min(query.to, current revision)`.
    pub to: i64,
}

/// The requested start is below the compacted revision: that part of history is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("etcdserver: mvcc: required revision has been compacted")]
pub struct Compacted {
    /// The store's compacted revision at the time of the read.
    pub compacted: i64,
}

/// Reads every retained event of `q`'s key range with a revision in `[q.from, q.to]`, under one
/// read lock (a consistent cut of the store).
pub fn read(store: &Store, q: &HistoryQuery<'_>) -> Result<History, Compacted> {
    let s = store.read();
    if q.from < s.compacted {
        return Err(Compacted {
            compacted: s.compacted,
        });
    }
    let to = q.to.min(s.current);
    let from = q.from.max(1);
    let mut found: Vec<(Revision, Event)> = Vec::new();
    if from <= to {
        for (key, h) in keys_in(&s.index, q.key, q.range_end) {
            let mut prev: Option<&Change> = None;
            for c in h.changes() {
                if c.rev.main > to {
                    break;
                }
                if c.rev.main >= from {
                    found.push((c.rev, event(key, c, prev, q.prev_kv)));
                }
                prev = Some(c);
            }
        }
    }
    // Revisions are unique across keys, so this is a total order.
    found.sort_unstable_by_key(|(rev, _)| *rev);
    Ok(History {
        events: found.into_iter().map(|(_, e)| e).collect(),
        to,
    })
}

/// The event of change `c` to `key`; `prev` is the change retained just before it.
fn event(key: &bytes::Bytes, c: &Change, prev: Option<&Change>, with_prev: bool) -> Event {
    let (ty, kv, creation) = match &c.kv {
        Some(kv) => (
            EventType::Put,
            kv.clone(),
            kv.create_revision == kv.mod_revision,
        ),
        None => (
            EventType::Delete,
            KeyValue {
                key: key.clone(),
                mod_revision: c.rev.main,
                ..Default::default()
            },
            false,
        ),
    };
    // The key-value at `mod_revision - 1` is the previous change when that was a put; a
    // tombstone before (or no retained change) means there was none readable.
    let prev_kv = if with_prev && !creation {
        prev.and_then(|p| p.kv.clone())
    } else {
        None
    };
    Event {
        r#type: ty as i32,
        kv: Some(kv),
        prev_kv,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::txn::NoLeases;
    use crate::proto::etcdserverpb::request_op::Request;
    use crate::proto::etcdserverpb::{
        CompactionRequest, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest,
    };
    use bytes::Bytes;
    use proptest::prelude::*;

    /// One write against the store.
    #[derive(Debug, Clone)]
    enum Op {
        Put(u8, u8),
        Delete(u8, u8),
        /// A txn putting two distinct keys in one revision.
        Txn(u8, u8, u8),
        Compact(u8),
    }

    fn key(k: u8) -> Bytes {
        Bytes::from(vec![b'a' + k % 6])
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..6, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
            2 => (0u8..6, 0u8..3).prop_map(|(k, n)| Op::Delete(k, n)),
            1 => (0u8..6, 1u8..5, any::<u8>()).prop_map(|(k, d, v)| Op::Txn(k, d, v)),
            1 => any::<u8>().prop_map(Op::Compact),
        ]
    }

    /// Applies `ops`, returning every published event and the final compacted revision.
    fn apply(store: &Store, ops: &[Op]) -> (Vec<Event>, i64) {
        let mut all = Vec::new();
        let mut compacted = 0;
        for o in ops {
            let mut w = store.writer();
            match o {
                Op::Put(k, v) => {
                    w.put(
                        &PutRequest {
                            key: key(*k),
                            value: Bytes::from(vec![*v]),
                            ..Default::default()
                        },
                        &NoLeases,
                    )
                    .unwrap();
                }
                Op::Delete(k, n) => {
                    let range_end = if *n == 0 {
                        Bytes::new()
                    } else {
                        Bytes::from(vec![b'a' + (k % 6) + n])
                    };
                    w.delete_range(&DeleteRangeRequest {
                        key: key(*k),
                        range_end,
                        ..Default::default()
                    });
                }
                Op::Txn(k, d, v) => {
                    let put = |k: Bytes| RequestOp {
                        request: Some(Request::RequestPut(PutRequest {
                            key: k,
                            value: Bytes::from(vec![*v]),
                            ..Default::default()
                        })),
                    };
                    w.txn(
                        &TxnRequest {
                            success: vec![put(key(*k)), put(key(k + d))],
                            ..Default::default()
                        },
                        &NoLeases,
                    )
                    .unwrap();
                }
                Op::Compact(at) => {
                    let cur = w.current_revision();
                    let rev = 1 + i64::from(*at) % cur;
                    if w.compact(&CompactionRequest {
                        revision: rev,
                        ..Default::default()
                    })
                    .is_ok()
                    {
                        compacted = rev;
                    }
                }
            }
            all.extend(w.finish(|_| Ok::<_, ()>(())).unwrap());
        }
        (all, compacted)
    }

    fn in_range(k: &[u8], key: &[u8], end: &[u8]) -> bool {
        if end.is_empty() {
            k == key
        } else if end == [0] {
            k >= key
        } else {
            k >= key && k < end
        }
    }

    fn rev_of(e: &Event) -> i64 {
        e.kv.as_ref().unwrap().mod_revision
    }

    /// The naive model: filter the published events; compaction at `c` drops the previous
    /// key-value of any change at `c`.
    fn model(all: &[Event], q: &HistoryQuery<'_>, compacted: i64) -> Vec<Event> {
        all.iter()
            .filter(|e| {
                let r = rev_of(e);
                r >= q.from
                    && r <= q.to
                    && in_range(&e.kv.as_ref().unwrap().key, q.key, q.range_end)
            })
            .map(|e| {
                let mut e = e.clone();
                if !q.prev_kv || rev_of(&e) == compacted {
                    e.prev_kv = None;
                }
                e
            })
            .collect()
    }

    proptest! {
        #[test]
        fn reads_match_the_published_events(
            ops in proptest::collection::vec(op(), 1..60),
            k in 0u8..6,
            shape in 0u8..3,
            span in (0i64..70, 0i64..70),
            prev_kv in any::<bool>(),
            from_compacted in any::<bool>(),
        ) {
            let store = Store::new();
            let (all, compacted) = apply(&store, &ops);
            let key = key(k);
            let range_end: Vec<u8> = match shape {
                0 => vec![],
                1 => vec![0],
                _ => vec![key[0] + 2],
            };
            // Often start right at the compacted revision: the edge compaction shapes.
            let from = if from_compacted { compacted } else { span.0.min(span.1) };
            let q = HistoryQuery {
                key: &key,
                range_end: &range_end,
                from,
                to: span.0.max(span.1),
                prev_kv,
            };
            match read(&store, &q) {
                Err(c) => {
                    prop_assert_eq!(c.compacted, compacted);
                    prop_assert!(q.from < compacted);
                }
                Ok(h) => {
                    prop_assert!(q.from >= compacted);
                    prop_assert_eq!(h.to, q.to.min(store.current_revision()));
                    prop_assert_eq!(h.events, model(&all, &q, compacted));
                }
            }
        }
    }

    #[test]
    fn deletes_and_prev_kvs() {
        let store = Store::new();
        let (all, _) = apply(
            &store,
            &[
                Op::Put(0, 1),
                Op::Put(0, 2),
                Op::Delete(0, 0),
                Op::Put(0, 3),
            ],
        );
        assert_eq!(all.len(), 4);
        let h = read(
            &store,
            &HistoryQuery {
                key: b"a",
                range_end: b"",
                from: 1,
                to: 100,
                prev_kv: true,
            },
        )
        .unwrap();
        assert_eq!(h.to, 5);
        assert_eq!(h.events, all);
        let del = &h.events[2];
        assert_eq!(del.r#type, EventType::Delete as i32);
        let kv = del.kv.as_ref().unwrap();
        assert_eq!(
            (kv.key.as_ref(), kv.mod_revision, kv.version),
            (&b"a"[..], 4, 0)
        );
        assert_eq!(del.prev_kv.as_ref().unwrap().value.as_ref(), [2]);
        // A re-creation has no previous key-value.
        assert!(h.events[3].prev_kv.is_none());
        assert!(h.events[1].prev_kv.is_some());
    }

    #[test]
    fn compacted_start_is_refused_and_the_compacted_revision_itself_is_readable() {
        let store = Store::new();
        apply(
            &store,
            &[Op::Put(0, 1), Op::Put(0, 2), Op::Put(1, 3), Op::Compact(2)],
        );
        assert_eq!(store.compacted_revision(), 3);
        let q = |from| HistoryQuery {
            key: b"a",
            range_end: &[0],
            from,
            to: i64::MAX,
            prev_kv: true,
        };
        assert_eq!(read(&store, &q(2)), Err(Compacted { compacted: 3 }));
        let h = read(&store, &q(3)).unwrap();
        assert_eq!(h.events.len(), 2);
        assert!(
            h.events[0].prev_kv.is_none(),
            "the value at 2 was compacted"
        );
        assert_eq!(read(&store, &q(5)).unwrap().events, vec![]);
    }
}
