//! The write path: one [`Writer`] per apply batch holds the store's write lock, executes
//! requests with etcd's revision rules, and records every change both in memory and in the
//! caller's disk batch.
//!
//! Revision rules (as etcd): a request that changes anything creates exactly one new store
//! revision, shared by all its changes (sub-revisions order them); a request that changes nothing
//! (a delete of absent keys, a txn whose branch only reads) creates none.

use std::sync::RwLockWriteGuard;

use bytes::Bytes;
use prost::Message;

use crate::error::Error;
use crate::io::disk::WriteBatch;
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::response_op::Response;
use crate::proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RequestOp,
    ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use crate::proto::mvccpb::{event::EventType, Event, KeyValue};

use super::store::{keys_in, record_key, OpCounts, State, META_COMPACT, META_REV};
use super::{Revision, Store};

/// Answers whether a lease exists; the write path asks before attaching a key to it.
pub trait LeaseCheck {
    /// True if lease `id` is granted and not yet revoked.
    fn exists(&self, id: i64) -> bool;
}

/// No leases exist (until the lessor is wired in, every lease is unknown).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLeases;

impl LeaseCheck for NoLeases {
    fn exists(&self, _id: i64) -> bool {
        false
    }
}

/// Writes requests into the store; see the module docs. Dropping it without [`Writer::finish`]
/// still leaves memory and batch consistent, but the current revision is only persisted by
/// `finish`.
pub struct Writer<'a> {
    state: RwLockWriteGuard<'a, State>,
    counts: &'a OpCounts,
    batch: WriteBatch,
    /// Events of each revision created so far, in order (none are kept while nobody watches).
    events: Vec<Event>,
    /// Whether to keep events.
    keep_events: bool,
    /// Revision when the writer started.
    start_rev: i64,
}

/// One revision being built: its number and the next sub-revision.
struct Tx {
    main: i64,
    sub: i64,
}

impl Store {
    /// Starts a writer; changes go to memory at once and to a disk batch that
    /// [`Writer::finish`] hands to the caller to persist.
    pub fn writer(&self) -> Writer<'_> {
        let state = self.write_lock();
        let start_rev = state.current;
        Writer {
            state,
            counts: &self.counts,
            batch: WriteBatch::new(),
            events: Vec::new(),
            keep_events: true,
            start_rev,
        }
    }
}

impl Writer<'_> {
    /// Stops keeping events: nobody watches, so building them would be wasted work.
    pub fn without_events(mut self) -> Self {
        self.keep_events = false;
        self
    }
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

impl<'a> Writer<'a> {
    /// The disk batch this apply persists: other replicated state applied with the same log
    /// entries (leases) adds its records here, so one atomic write carries everything.
    pub fn batch(&mut self) -> &mut WriteBatch {
        &mut self.batch
    }

    /// Live keys attached to `lease`, in key order, including this writer's changes so far.
    pub fn keys_with_lease(&self, lease: i64) -> Vec<Bytes> {
        leased_keys(&self.state, lease)
    }

    /// The newest revision, including this writer's changes so far.
    pub fn current_revision(&self) -> i64 {
        self.state.current
    }

    /// Ends the writer: `persist` receives the disk batch of every change (plus the current
    /// revision) and runs while the write lock is still held, so readers never see memory ahead of
    /// a failed disk write without the caller knowing. Returns the events of every change, in order.
    pub fn finish<E>(
        mut self,
        persist: impl FnOnce(WriteBatch) -> Result<(), E>,
    ) -> Result<Vec<Event>, E> {
        if self.state.current != self.start_rev {
            self.batch.put(
                Bytes::from_static(META_REV),
                self.state.current.to_be_bytes().to_vec(),
            );
        }
        persist(std::mem::take(&mut self.batch))?;
        Ok(std::mem::take(&mut self.events))
    }

    fn begin(&self) -> Tx {
        Tx {
            main: self.state.current + 1,
            sub: 0,
        }
    }

    /// Ends a revision: it exists only if it changed something.
    fn commit(&mut self, tx: Tx) -> i64 {
        if tx.sub > 0 {
            assert!(
                tx.main == self.state.current + 1,
                "revisions advance by one"
            );
            self.state.current = tx.main;
        }
        self.state.current
    }

    /// The revision reads inside `tx` see: its own if it wrote, otherwise the current one.
    fn read_rev(&self, tx: &Tx) -> i64 {
        if tx.sub > 0 {
            tx.main
        } else {
            self.state.current
        }
    }

    /// Executes a put as its own revision.
    pub fn put(&mut self, r: &PutRequest, leases: &dyn LeaseCheck) -> Result<PutResponse, Error> {
        self.check_put(r, leases)?;
        let mut tx = self.begin();
        let mut resp = self.put_in(&mut tx, r);
        resp.header = header(self.commit(tx));
        OpCounts::add(&self.counts.put, 1);
        Ok(resp)
    }

    /// Executes a delete-range as its own revision (none if nothing was deleted).
    pub fn delete_range(&mut self, r: &DeleteRangeRequest) -> DeleteRangeResponse {
        let mut tx = self.begin();
        let mut resp = self.delete_in(&mut tx, r);
        resp.header = header(self.commit(tx));
        OpCounts::add(&self.counts.delete, 1);
        resp
    }

    /// Executes a txn: compares (all of them, nested ones included) are evaluated first against
    /// the state before the txn, then the chosen branch is checked and executed as one revision.
    pub fn txn(&mut self, r: &TxnRequest, leases: &dyn LeaseCheck) -> Result<TxnResponse, Error> {
        let mut path = Vec::new();
        super::txn_read::compare_path(&self.state, r, &mut path);
        let mut cursor = 0;
        self.check_txn(r, &path, &mut cursor, leases)?;
        let mut tx = self.begin();
        let mut cursor = 0;
        let mut resp = self.txn_in(&mut tx, r, &path, &mut cursor);
        resp.header = header(self.commit(tx));
        self.counts.txn(&resp);
        Ok(resp)
    }

    /// Compacts history: reads below `rev` will fail with `Compacted` from now on.
    pub fn compact(&mut self, r: &CompactionRequest) -> Result<i64, Error> {
        let rev = r.revision;
        if rev <= self.state.compacted {
            return Err(Error::Compacted);
        }
        if rev > self.state.current {
            return Err(Error::FutureRevision);
        }
        let mut removed = Vec::new();
        let mut emptied = Vec::new();
        for (key, h) in self.state.index.iter_mut() {
            let before = removed.len();
            h.compact(rev, &mut removed);
            if removed.len() != before && h.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.state.index.remove(&key);
        }
        for (r, tombstone) in removed {
            self.batch.delete(record_key(r, tombstone));
        }
        self.state.compacted = rev;
        assert!(
            self.state.compacted <= self.state.current,
            "the compacted revision never passes the current one"
        );
        self.batch
            .put(Bytes::from_static(META_COMPACT), rev.to_be_bytes().to_vec());
        Ok(self.state.current)
    }

    /// Deletes every live key attached to lease `lease` as one revision (sub-revisions in key
    /// order), as etcd does when a lease is revoked; none if no key is attached. Returns the
    /// revision afterwards.
    pub fn delete_leased(&mut self, lease: i64) -> i64 {
        let keys = leased_keys(&self.state, lease);
        let mut tx = self.begin();
        for key in keys {
            self.delete_in(
                &mut tx,
                &DeleteRangeRequest {
                    key,
                    ..Default::default()
                },
            );
        }
        self.commit(tx)
    }

    fn check_put(&self, r: &PutRequest, leases: &dyn LeaseCheck) -> Result<(), Error> {
        if (r.ignore_value || r.ignore_lease)
            && self
                .state
                .index
                .get(&r.key)
                .and_then(|h| h.latest())
                .is_none()
        {
            return Err(Error::KeyNotFound);
        }
        if r.lease != 0 && !leases.exists(r.lease) {
            return Err(Error::LeaseNotFound);
        }
        Ok(())
    }

    fn put_in(&mut self, tx: &mut Tx, r: &PutRequest) -> PutResponse {
        let rev = Revision::new(tx.main, tx.sub);
        tx.sub += 1;
        let prev = self
            .state
            .index
            .get(&r.key)
            .and_then(|h| h.latest())
            .cloned();
        let kv = KeyValue {
            key: r.key.clone(),
            create_revision: prev.as_ref().map_or(rev.main, |p| p.create_revision),
            mod_revision: rev.main,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value: if r.ignore_value {
                prev.as_ref().map(|p| p.value.clone()).unwrap_or_default()
            } else {
                r.value.clone()
            },
            lease: if r.ignore_lease {
                prev.as_ref().map_or(0, |p| p.lease)
            } else {
                r.lease
            },
        };
        self.batch.put(record_key(rev, false), kv.encode_to_vec());
        self.state
            .index
            .entry(kv.key.clone())
            .or_default()
            .put(rev, kv.clone());
        if self.keep_events {
            self.events.push(Event {
                r#type: EventType::Put as i32,
                kv: Some(kv),
                prev_kv: prev.clone(),
            });
        }
        PutResponse {
            header: header(tx.main),
            prev_kv: if r.prev_kv { prev } else { None },
        }
    }

    fn delete_in(&mut self, tx: &mut Tx, r: &DeleteRangeRequest) -> DeleteRangeResponse {
        let live: Vec<KeyValue> = keys_in(&self.state.index, &r.key, &r.range_end)
            .filter_map(|(_, h)| h.latest().cloned())
            .collect();
        for prev in &live {
            let rev = Revision::new(tx.main, tx.sub);
            tx.sub += 1;
            let tomb = KeyValue {
                key: prev.key.clone(),
                mod_revision: rev.main,
                ..Default::default()
            };
            self.batch.put(record_key(rev, true), tomb.encode_to_vec());
            self.state
                .index
                .get_mut(&prev.key)
                .expect("live key is indexed")
                .tombstone(rev);
            if self.keep_events {
                self.events.push(Event {
                    r#type: EventType::Delete as i32,
                    kv: Some(tomb),
                    prev_kv: Some(prev.clone()),
                });
            }
        }
        let rev = self.read_rev(tx);
        DeleteRangeResponse {
            header: header(rev),
            deleted: live.len() as i64,
            prev_kvs: if r.prev_kv { live } else { Vec::new() },
        }
    }

    fn check_txn(
        &self,
        r: &TxnRequest,
        path: &[bool],
        cursor: &mut usize,
        leases: &dyn LeaseCheck,
    ) -> Result<(), Error> {
        let ok = path[*cursor];
        *cursor += 1;
        for op in if ok { &r.success } else { &r.failure } {
            match &op.request {
                Some(Request::RequestPut(p)) => self.check_put(p, leases)?,
                Some(Request::RequestRange(q)) => {
                    if q.revision > 0 {
                        self.state.read_rev(q.revision)?;
                    }
                }
                Some(Request::RequestTxn(t)) => self.check_txn(t, path, cursor, leases)?,
                Some(Request::RequestDeleteRange(_)) | None => {}
            }
        }
        Ok(())
    }

    fn txn_in(
        &mut self,
        tx: &mut Tx,
        r: &TxnRequest,
        path: &[bool],
        cursor: &mut usize,
    ) -> TxnResponse {
        let ok = path[*cursor];
        *cursor += 1;
        let ops: &[RequestOp] = if ok { &r.success } else { &r.failure };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match &op.request {
                Some(Request::RequestRange(q)) => {
                    let mut resp = self
                        .state
                        .range(q, self.read_rev(tx))
                        .expect("txn ranges are checked before execution");
                    resp.header = header(self.read_rev(tx));
                    Some(Response::ResponseRange(resp))
                }
                Some(Request::RequestPut(p)) => Some(Response::ResponsePut(self.put_in(tx, p))),
                Some(Request::RequestDeleteRange(d)) => {
                    Some(Response::ResponseDeleteRange(self.delete_in(tx, d)))
                }
                Some(Request::RequestTxn(t)) => {
                    let mut resp = self.txn_in(tx, t, path, cursor);
                    resp.header = header(self.read_rev(tx));
                    Some(Response::ResponseTxn(resp))
                }
                None => None,
            };
            responses.push(ResponseOp { response });
        }
        TxnResponse {
            header: None,
            succeeded: ok,
            responses,
        }
    }
}

/// Live keys whose latest version is attached to `lease`, in key order.
fn leased_keys(state: &State, lease: i64) -> Vec<Bytes> {
    state
        .index
        .iter()
        .filter(|(_, h)| h.latest().is_some_and(|kv| kv.lease == lease))
        .map(|(k, _)| k.clone())
        .collect()
}

impl Store {
    /// Live keys attached to `lease`, in key order (a scan of the index: lease operations that
    /// need the keys — revoke, time-to-live with keys — are rare next to puts).
    pub fn keys_with_lease(&self, lease: i64) -> Vec<Bytes> {
        leased_keys(&self.read(), lease)
    }
}
