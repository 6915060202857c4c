//! Session tests: a real [`Store`] and [`Hub`] driven the way the apply path drives them.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::mvcc::txn::NoLeases;
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::watch_create_request::FilterType;
use crate::proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, WatchProgressRequest,
};
use crate::proto::mvccpb::event::EventType;

struct Rig {
    store: Arc<Store>,
    hub: Hub,
    /// Every published event, in order.
    log: Vec<Event>,
}

fn b(s: &str) -> Bytes {
    Bytes::from(s.to_string())
}

impl Rig {
    fn new(capacity: usize) -> Rig {
        Rig {
            store: Arc::new(Store::new()),
            hub: Hub::with_capacity(capacity),
            log: Vec::new(),
        }
    }

    fn session(&self) -> (Session, Feed) {
        let header: HeaderFn = Arc::new(|revision| ResponseHeader {
            revision,
            ..Default::default()
        });
        Session::start(self.store.clone(), &self.hub, header, 1 << 20)
    }

    /// Runs `f` in one writer and publishes its events as the apply path does.
    fn write(&mut self, f: impl FnOnce(&mut crate::mvcc::Writer<'_>)) {
        let mut w = self.store.writer();
        f(&mut w);
        let events = w.finish(|_| Ok::<_, ()>(())).unwrap();
        self.log.extend(events.iter().cloned());
        self.hub.publish(RevisionEvents::group(events));
    }

    fn put(&mut self, k: &str, v: &str) {
        self.write(|w| {
            w.put(
                &PutRequest {
                    key: b(k),
                    value: b(v),
                    ..Default::default()
                },
                &NoLeases,
            )
            .unwrap();
        });
    }

    fn del(&mut self, k: &str, end: &str) {
        self.write(|w| {
            w.delete_range(&DeleteRangeRequest {
                key: b(k),
                range_end: b(end),
                ..Default::default()
            });
        });
    }

    fn txn_puts(&mut self, keys: &[&str], v: &str) {
        let ops = keys
            .iter()
            .map(|k| RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: b(k),
                    value: b(v),
                    ..Default::default()
                })),
            })
            .collect();
        self.write(|w| {
            w.txn(
                &TxnRequest {
                    success: ops,
                    ..Default::default()
                },
                &NoLeases,
            )
            .unwrap();
        });
    }

    fn compact(&mut self, rev: i64) {
        self.write(|w| {
            w.compact(&CompactionRequest {
                revision: rev,
                ..Default::default()
            })
            .unwrap();
        });
    }
}

fn create(key: &str, end: &str, start: i64) -> WatchCreateRequest {
    WatchCreateRequest {
        key: b(key),
        range_end: b(end),
        start_revision: start,
        ..Default::default()
    }
}

fn req(c: WatchCreateRequest) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(c)),
    }
}

fn cancel_req(id: i64) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest {
            watch_id: id,
        })),
    }
}

fn progress_req() -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
    }
}

/// `(key, mod_revision, is_delete)` of each event, for compact assertions.
fn summary(r: &WatchResponse) -> Vec<(String, i64, bool)> {
    r.events
        .iter()
        .map(|e| {
            let kv = e.kv.as_ref().unwrap();
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                kv.mod_revision,
                e.r#type == EventType::Delete as i32,
            )
        })
        .collect()
}

fn rev(r: &WatchResponse) -> i64 {
    r.header.as_ref().unwrap().revision
}

/// Handles `r` after draining the feed, as the service does.
fn step(s: &mut Session, feed: &mut Feed, r: WatchRequest) -> Vec<WatchResponse> {
    let mut out = Vec::new();
    s.drain(feed, &mut out);
    s.handle(r, &mut out);
    out
}

fn drained(s: &mut Session, feed: &mut Feed) -> Vec<WatchResponse> {
    let mut out = Vec::new();
    s.drain(feed, &mut out);
    out
}

/// Puts `values` to `key` straight into the store, bypassing the hub (as a snapshot install
/// does).
fn bypass_hub(rig: &Rig, key: &str, values: &[&str]) {
    for v in values {
        let mut w = rig.store.writer();
        w.put(
            &PutRequest {
                key: b(key),
                value: b(v),
                ..Default::default()
            },
            &NoLeases,
        )
        .unwrap();
        w.finish(|_| Ok::<_, ()>(())).unwrap();
    }
}

#[test]
fn live_events_arrive_one_response_per_revision() {
    let mut rig = Rig::new(16);
    rig.put("other", "x");
    let (mut s, mut feed) = rig.session();
    let out = step(&mut s, &mut feed, req(create("k", "l", 0)));
    assert_eq!(out.len(), 1);
    assert!(out[0].created && !out[0].canceled);
    assert_eq!((out[0].watch_id, rev(&out[0])), (0, 2));

    rig.txn_puts(&["k1", "k2", "z"], "v");
    rig.put("other", "y");
    rig.del("k1", "");
    let out = drained(&mut s, &mut feed);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(
        summary(&out[0]),
        vec![("k1".into(), 3, false), ("k2".into(), 3, false)]
    );
    assert_eq!(rev(&out[0]), 3);
    assert_eq!(summary(&out[1]), vec![("k1".into(), 5, true)]);
    assert_eq!(rev(&out[1]), 5);
    // No prev_kv unless asked, though the hub carries it.
    assert!(out[1].events[0].prev_kv.is_none());
    assert_eq!(s.cursor(), 5);
}

#[test]
fn start_revision_replays_history_then_continues_live() {
    let mut rig = Rig::new(16);
    rig.put("foo", "a");
    rig.put("foo", "b");
    rig.put("foo2", "c");
    rig.del("foo", "");
    let (mut s, mut feed) = rig.session();
    let mut c = create("foo", "", 1);
    c.prev_kv = true;
    let out = step(&mut s, &mut feed, req(c));
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out[0].created);
    assert_eq!(rev(&out[0]), 5);
    // History comes as one response (as etcd batches it), header at the current revision.
    assert_eq!(
        summary(&out[1]),
        vec![
            ("foo".into(), 2, false),
            ("foo".into(), 3, false),
            ("foo".into(), 5, true)
        ]
    );
    assert_eq!(rev(&out[1]), 5);
    assert!(out[1].events[0].prev_kv.is_none());
    assert_eq!(out[1].events[1].prev_kv.as_ref().unwrap().value, b("a"));
    assert_eq!(out[1].events[2].prev_kv.as_ref().unwrap().value, b("b"));

    rig.put("foo", "d");
    let out = drained(&mut s, &mut feed);
    assert_eq!(summary(&out[0]), vec![("foo".into(), 6, false)]);
}

#[test]
fn future_start_revision_waits_for_it() {
    let mut rig = Rig::new(16);
    let (mut s, mut feed) = rig.session();
    let out = step(&mut s, &mut feed, req(create("a", "", 4)));
    assert!(out[0].created && out.len() == 1);
    rig.put("a", "2");
    rig.put("a", "3");
    rig.put("a", "4");
    let out = drained(&mut s, &mut feed);
    assert_eq!(out.len(), 1);
    assert_eq!(summary(&out[0]), vec![("a".into(), 4, false)]);
}

#[test]
fn history_responses_hold_at_most_a_thousand_revisions() {
    let mut rig = Rig::new(4096);
    for i in 0..2500 {
        rig.put(if i % 2 == 0 { "a" } else { "b" }, "v");
    }
    let (mut s, mut feed) = rig.session();
    let out = step(&mut s, &mut feed, req(create("a", "", 1)));
    let sizes: Vec<usize> = out[1..].iter().map(|r| r.events.len()).collect();
    assert_eq!(sizes, vec![1000, 250]);
    assert!(out[1..].iter().all(|r| rev(r) == 2501));
}

#[test]
fn compacted_start_gets_etcds_compacted_response() {
    let mut rig = Rig::new(16);
    rig.put("foo", "a");
    rig.put("foo", "b");
    rig.put("foo", "c");
    rig.compact(3);
    let (mut s, mut feed) = rig.session();
    let out = step(&mut s, &mut feed, req(create("foo", "", 2)));
    assert_eq!(out.len(), 2);
    assert!(out[0].created);
    let c = &out[1];
    assert_eq!(
        (c.watch_id, c.compact_revision, c.canceled, rev(c)),
        (0, 3, true, 0)
    );
    assert!(c.events.is_empty() && c.cancel_reason.is_empty());
    // The compacted watcher gets nothing more, but keeps its ID until canceled.
    rig.put("foo", "d");
    assert!(drained(&mut s, &mut feed).is_empty());
    let mut dup = create("foo", "", 0);
    dup.watch_id = 0;
    let out = step(&mut s, &mut feed, req(dup));
    assert_eq!(out[0].watch_id, 1, "auto IDs skip the compacted watcher's");
    let out = step(&mut s, &mut feed, cancel_req(0));
    assert!(out[0].canceled && out[0].watch_id == 0);
    // From the compacted revision itself is fine.
    let out = step(&mut s, &mut feed, req(create("foo", "", 3)));
    assert_eq!(
        summary(&out[1]),
        vec![
            ("foo".into(), 3, false),
            ("foo".into(), 4, false),
            ("foo".into(), 5, false)
        ]
    );
}

#[test]
fn watch_ids_duplicates_and_empty_ranges() {
    let rig = Rig::new(16);
    let (mut s, mut feed) = rig.session();
    let mut c = create("a", "", 0);
    c.watch_id = 1;
    let out = step(&mut s, &mut feed, req(c.clone()));
    assert_eq!(
        (out[0].watch_id, out[0].created, out[0].canceled),
        (1, true, false)
    );
    let out = step(&mut s, &mut feed, req(c));
    assert_eq!(
        (out[0].watch_id, out[0].created, out[0].canceled),
        (INVALID_WATCH_ID, true, true)
    );
    assert_eq!(out[0].cancel_reason, DUPLICATE_ID_REASON);
    let ids: Vec<i64> = (0..3)
        .map(|_| step(&mut s, &mut feed, req(create("a", "", 0)))[0].watch_id)
        .collect();
    assert_eq!(ids, vec![0, 2, 3]);
    let out = step(&mut s, &mut feed, req(create("b", "a", 0)));
    assert_eq!(out[0].watch_id, INVALID_WATCH_ID);
    assert_eq!(out[0].cancel_reason, "mvcc: watcher range is empty");
    assert_eq!(s.len(), 4);
    // Unknown IDs are ignored; known ones answered.
    assert!(step(&mut s, &mut feed, cancel_req(42)).is_empty());
    let out = step(&mut s, &mut feed, cancel_req(2));
    assert_eq!(
        (out[0].watch_id, out[0].canceled, out[0].created),
        (2, true, false)
    );
    assert_eq!(s.len(), 3);
    // Requests without a body are ignored.
    assert!(step(&mut s, &mut feed, WatchRequest::default()).is_empty());
}

#[test]
fn progress_requests_and_ticks() {
    let mut rig = Rig::new(16);
    let (mut s, mut feed) = rig.session();
    rig.put("x", "1");
    let out = step(&mut s, &mut feed, progress_req());
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].watch_id, rev(&out[0])), (INVALID_WATCH_ID, 2));
    assert!(out[0].events.is_empty() && !out[0].created && !out[0].canceled);

    let mut c = create("a", "", 0);
    c.progress_notify = true;
    step(&mut s, &mut feed, req(c));
    step(&mut s, &mut feed, req(create("b", "", 0)));
    let mut out = Vec::new();
    s.progress_tick(&mut out);
    assert_eq!(out.len(), 1, "only the progress_notify watcher");
    assert_eq!((out[0].watch_id, rev(&out[0])), (0, 2));
    // A watcher that got events since the last tick is not notified at this one.
    rig.put("a", "1");
    let mut out = drained(&mut s, &mut feed);
    assert_eq!(out.len(), 1);
    out.clear();
    s.progress_tick(&mut out);
    assert!(out.is_empty());
    rig.put("zzz", "1");
    let mut out = drained(&mut s, &mut feed);
    assert!(out.is_empty());
    s.progress_tick(&mut out);
    assert_eq!((out[0].watch_id, rev(&out[0])), (0, 4));
}

#[test]
fn filters_and_prev_kv() {
    let mut rig = Rig::new(16);
    rig.put("a", "1");
    let (mut s, mut feed) = rig.session();
    let mut no_put = create("a", "", 0);
    no_put.filters = vec![FilterType::Noput as i32];
    no_put.prev_kv = true;
    let mut no_del = create("a", "", 0);
    no_del.filters = vec![FilterType::Nodelete as i32];
    no_del.prev_kv = true;
    step(&mut s, &mut feed, req(no_put));
    step(&mut s, &mut feed, req(no_del));
    rig.put("a", "2");
    rig.del("a", "");
    let out = drained(&mut s, &mut feed);
    assert_eq!(out.len(), 2);
    assert_eq!(
        (out[0].watch_id, summary(&out[0])),
        (1, vec![("a".into(), 3, false)])
    );
    assert_eq!(out[0].events[0].prev_kv.as_ref().unwrap().value, b("1"));
    assert_eq!(
        (out[1].watch_id, summary(&out[1])),
        (0, vec![("a".into(), 4, true)])
    );
    assert_eq!(out[1].events[0].prev_kv.as_ref().unwrap().value, b("2"));
}

#[test]
fn fragments_large_responses_for_watchers_that_allow_it() {
    let mut rig = Rig::new(16);
    let header: HeaderFn = Arc::new(|revision| ResponseHeader {
        revision,
        ..Default::default()
    });
    let (mut s, mut feed) = Session::start(rig.store.clone(), &rig.hub, header, 300);
    let mut c = create("k", "l", 0);
    c.fragment = true;
    step(&mut s, &mut feed, req(c));
    step(&mut s, &mut feed, req(create("k", "l", 0)));
    let big = "v".repeat(200);
    rig.txn_puts(&["k1", "k2", "k3"], &big);
    let out = drained(&mut s, &mut feed);
    let frags: Vec<(i64, usize, bool)> = out
        .iter()
        .map(|r| (r.watch_id, r.events.len(), r.fragment))
        .collect();
    assert_eq!(
        frags,
        vec![(0, 1, true), (0, 1, true), (0, 1, false), (1, 3, false)]
    );
}

#[test]
fn a_lagging_session_catches_up_from_history_without_gaps_or_duplicates() {
    // A hub that holds only two batches: any burst makes the session lag.
    let mut rig = Rig::new(2);
    let (mut s, mut feed) = rig.session();
    step(&mut s, &mut feed, req(create("k", "l", 0)));
    for i in 0..50 {
        rig.put(&format!("k{}", i % 7), &i.to_string());
        if i % 5 == 0 {
            rig.put("other", "x");
        }
    }
    let out = drained(&mut s, &mut feed);
    let got: Vec<i64> = out.iter().flat_map(summary).map(|(_, r, _)| r).collect();
    let want: Vec<i64> = rig
        .log
        .iter()
        .filter(|e| e.kv.as_ref().unwrap().key.starts_with(b"k"))
        .map(|e| e.kv.as_ref().unwrap().mod_revision)
        .collect();
    assert_eq!(got, want);
    assert_eq!(s.cursor(), rig.store.current_revision());
    // And live delivery resumes.
    rig.put("k0", "after");
    let out = drained(&mut s, &mut feed);
    assert_eq!(summary(&out[0]), vec![("k0".into(), 62, false)]);
}

#[test]
fn revisions_the_feed_never_carried_are_read_from_history() {
    let mut rig = Rig::new(16);
    let (mut s, mut feed) = rig.session();
    step(&mut s, &mut feed, req(create("a", "", 0)));
    // Writes that bypass the hub (as a snapshot install does), then a published one.
    bypass_hub(&rig, "a", &["1", "2"]);
    rig.put("a", "3");
    let out = drained(&mut s, &mut feed);
    let revs: Vec<Vec<i64>> = out
        .iter()
        .map(|r| summary(r).into_iter().map(|(_, r, _)| r).collect())
        .collect();
    assert_eq!(revs, vec![vec![2, 3], vec![4]]);
}

#[test]
fn a_replaced_store_is_read_from_history_at_once() {
    let mut rig = Rig::new(16);
    let (mut s, mut feed) = rig.session();
    step(&mut s, &mut feed, req(create("a", "", 0)));
    // Writes that bypass the hub, as a snapshot install does, then the hub's marker.
    bypass_hub(&rig, "a", &["1", "2"]);
    rig.hub.store_replaced(rig.store.current_revision());
    let out = drained(&mut s, &mut feed);
    assert_eq!(out.len(), 1);
    assert_eq!(
        summary(&out[0]),
        vec![("a".into(), 2, false), ("a".into(), 3, false)]
    );
    assert_eq!(s.cursor(), 3);
    // A stale marker is ignored; live delivery continues.
    rig.hub.store_replaced(2);
    rig.put("a", "4");
    let out = drained(&mut s, &mut feed);
    assert_eq!(summary(&out[0]), vec![("a".into(), 4, false)]);
}

/// One step of the randomized scenario.
#[derive(Debug, Clone)]
enum Op {
    Put(u8),
    Delete(u8, u8),
    Txn(u8, u8),
    /// Let the session take what the feed holds.
    Drain,
    /// Take what the feed holds as the service does: all at once, folding a backlog.
    DrainAtOnce,
    /// Create a watcher: key, range shape, start (0 = now, else that far back from current).
    Create(u8, u8, u8, bool, u8),
    Cancel(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<u8>().prop_map(Op::Put),
        2 => (any::<u8>(), 0u8..3).prop_map(|(k, n)| Op::Delete(k, n)),
        2 => (any::<u8>(), 1u8..4).prop_map(|(k, d)| Op::Txn(k, d)),
        2 => Just(Op::Drain),
        1 => Just(Op::DrainAtOnce),
        2 => (any::<u8>(), 0u8..3, 0u8..12, any::<bool>(), 0u8..3)
            .prop_map(|(k, sh, st, p, f)| Op::Create(k, sh, st, p, f)),
        1 => any::<u8>().prop_map(Op::Cancel),
    ]
}

fn k(i: u8) -> String {
    format!("k{}", i % 5)
}

/// What a watcher asked for, to compute what it should have received.
struct Expect {
    range: KeyRange,
    filters: Filters,
    prev_kv: bool,
    from: i64,
    /// The cursor when it was canceled: nothing after it may arrive.
    until: i64,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    /// Random writes, creates (past, present), cancels and drains against a hub that holds
    /// two batches: every watcher receives exactly the matching events from its start, in order,
    /// each revision whole in one response.
    #[test]
    fn every_watcher_sees_exactly_its_events(
        capacity in prop_oneof![1usize..4, 24usize..64],
        fold_at in 1usize..5,
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mut rig = Rig::new(capacity);
        let (mut s, mut feed) = rig.session();
        s.fold_backlogs_from(fold_at);
        let mut expect: BTreeMap<i64, Expect> = BTreeMap::new();
        let mut got: BTreeMap<i64, Vec<WatchResponse>> = BTreeMap::new();
        let record = |out: Vec<WatchResponse>, got: &mut BTreeMap<i64, Vec<WatchResponse>>| {
            for r in out {
                if !r.events.is_empty() {
                    got.entry(r.watch_id).or_default().push(r);
                }
            }
        };
        for o in &ops {
            match o {
                Op::Put(i) => rig.put(&k(*i), &i.to_string()),
                Op::Delete(i, n) => {
                    let end = if *n == 0 { String::new() } else { k(i.wrapping_add(*n)) };
                    if end.is_empty() || end > k(*i) {
                        rig.del(&k(*i), &end);
                    }
                }
                Op::Txn(i, d) => rig.txn_puts(&[&k(*i), &k(i % 5 + d)], "t"),
                Op::Drain => {
                    let out = drained(&mut s, &mut feed);
                    record(out, &mut got);
                }
                Op::DrainAtOnce => {
                    let mut batches = Vec::new();
                    let mut lagged = false;
                    loop {
                        match feed.try_recv() {
                            Ok(b) => batches.push(b),
                            Err(TryRecvError::Lagged(_)) => {
                                lagged = true;
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let mut out = Vec::new();
                    s.on_batches(&batches, &mut out);
                    if lagged {
                        s.on_lagged(&mut out);
                    }
                    record(out, &mut got);
                }
                Op::Create(i, shape, back, prev_kv, filter) => {
                    let (key, end) = match shape {
                        0 => (k(*i), String::new()),
                        1 => (k(*i), "\0".to_string()),
                        _ => ("k".to_string(), "l".to_string()),
                    };
                    let mut c = create(&key, &end, 0);
                    if *back > 0 {
                        c.start_revision = (rig.store.current_revision() - i64::from(*back) + 1).max(1);
                    }
                    c.prev_kv = *prev_kv;
                    c.filters = match filter {
                        0 => vec![],
                        1 => vec![FilterType::Noput as i32],
                        _ => vec![FilterType::Nodelete as i32],
                    };
                    let out = step(&mut s, &mut feed, req(c.clone()));
                    let created = out.iter().find(|r| r.created).unwrap();
                    prop_assert!(created.created && !created.canceled);
                    let from = if c.start_revision == 0 { rev(created) + 1 } else { c.start_revision };
                    expect.insert(created.watch_id, Expect {
                        range: KeyRange::new(c.key.clone(), c.range_end.clone()).unwrap(),
                        filters: Filters::from_request(&c.filters),
                        prev_kv: *prev_kv,
                        from,
                        until: i64::MAX,
                    });
                    record(out, &mut got);
                }
                Op::Cancel(i) => {
                    let ids: Vec<i64> = expect.iter().filter(|(_, e)| e.until == i64::MAX).map(|(id, _)| *id).collect();
                    if !ids.is_empty() {
                        let id = ids[*i as usize % ids.len()];
                        let out = step(&mut s, &mut feed, cancel_req(id));
                        prop_assert!(out.last().unwrap().canceled);
                        // Everything up to the cursor was delivered before the cancel; nothing after.
                        expect.get_mut(&id).unwrap().until = s.cursor();
                        record(out, &mut got);
                    }
                }
            }
        }
        let out = drained(&mut s, &mut feed);
        record(out, &mut got);
        prop_assert_eq!(s.cursor(), rig.store.current_revision());

        for (id, e) in &expect {
            let until = e.until;
            let want: Vec<Event> = rig.log.iter()
                .filter(|ev| {
                    let kv = ev.kv.as_ref().unwrap();
                    kv.mod_revision >= e.from && kv.mod_revision <= until
                        && e.range.contains(&kv.key) && e.filters.keeps(ev)
                })
                .map(|ev| {
                    let mut ev = ev.clone();
                    if !e.prev_kv { ev.prev_kv = None; }
                    ev
                })
                .collect();
            let resps = got.get(id).cloned().unwrap_or_default();
            let have: Vec<Event> = resps.iter().flat_map(|r| r.events.clone()).collect();
            prop_assert_eq!(&have, &want, "watcher {}", id);
            // A revision is never split across responses.
            let mut seen_in: BTreeMap<i64, usize> = BTreeMap::new();
            for (i, r) in resps.iter().enumerate() {
                for ev in &r.events {
                    let rv = ev.kv.as_ref().unwrap().mod_revision;
                    let first = *seen_in.entry(rv).or_insert(i);
                    prop_assert_eq!(first, i, "revision {} split", rv);
                }
            }
        }
    }
}

#[test]
fn a_backlog_is_folded_into_one_response_per_watcher() {
    let mut rig = Rig::new(64);
    let (mut s, mut feed) = rig.session();
    step(&mut s, &mut feed, req(create("k", "l", 0)));
    step(&mut s, &mut feed, req(create("k2", "", 0)));
    for i in 0..COALESCE_BACKLOG {
        rig.put("k1", &format!("v{i}"));
    }
    rig.put("k2", "x");
    let mut batches = Vec::new();
    while let Ok(b) = feed.try_recv() {
        batches.push(b);
    }
    let mut out = Vec::new();
    s.on_batches(&batches, &mut out);
    assert_eq!(out.len(), 2, "{out:?}");
    // Watcher 0 (k..l) gets every revision in one response, in order; its header is the last
    // revision it covers.
    let revs: Vec<i64> = summary(&out[0]).iter().map(|e| e.1).collect();
    assert_eq!(revs, (2..=COALESCE_BACKLOG as i64 + 2).collect::<Vec<_>>());
    assert_eq!(
        (out[0].watch_id, rev(&out[0])),
        (0, COALESCE_BACKLOG as i64 + 2)
    );
    assert_eq!(out[1].watch_id, 1);
    assert_eq!(out[1].events.len(), 1);
    assert_eq!(s.cursor(), COALESCE_BACKLOG as i64 + 2);
}

#[test]
fn a_short_backlog_keeps_one_response_per_revision() {
    let mut rig = Rig::new(64);
    let (mut s, mut feed) = rig.session();
    step(&mut s, &mut feed, req(create("k", "", 0)));
    for i in 0..3 {
        rig.put("k", &format!("v{i}"));
    }
    let mut batches = Vec::new();
    while let Ok(b) = feed.try_recv() {
        batches.push(b);
    }
    let mut out = Vec::new();
    s.on_batches(&batches, &mut out);
    assert_eq!(out.iter().map(rev).collect::<Vec<_>>(), vec![2, 3, 4]);
}

#[test]
fn folded_events_go_out_before_history_read_for_a_gap() {
    let mut rig = Rig::new(16);
    let (mut s, mut feed) = rig.session();
    s.fold_backlogs_from(1);
    step(&mut s, &mut feed, req(create("a", "", 0)));
    rig.put("a", "live");
    // Writes that bypass the hub (as a snapshot install does), then a published one.
    bypass_hub(&rig, "a", &["1", "2"]);
    rig.put("a", "3");
    let mut batches = Vec::new();
    while let Ok(b) = feed.try_recv() {
        batches.push(b);
    }
    let mut out = Vec::new();
    s.on_batches(&batches, &mut out);
    let revs: Vec<i64> = out
        .iter()
        .flat_map(|r| summary(r).into_iter().map(|(_, r, _)| r))
        .collect();
    assert_eq!(revs, vec![2, 3, 4, 5]);
}
