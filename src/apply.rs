//! The applier: what a committed write does to the member's replicated state (etcd's
//! `apply.go`). Pure — no raft, no disk I/O, no clock reading — so every request kind is
//! unit-tested here.
//!
//! One [`Applier`] spans one batch of committed log entries. It owns the mvcc [`Writer`] (the
//! store's write lock) and with it the batch's single [`WriteBatch`]: key revisions and lease
//! records changed by the same entries go into that one batch, which the state machine
//! persists atomically together with its applied index.

use crate::error::Error;
use crate::io::clock::Instant;
use crate::io::disk::WriteBatch;
use crate::lease::Lessor;
use crate::mvcc::{Store, Writer};
use crate::proto::detcdpb::raft_request::Request as Req;
use crate::proto::detcdpb::RaftRequest;
use crate::proto::etcdserverpb::{
    CompactionResponse, DeleteRangeResponse, LeaseCheckpointResponse, LeaseGrantResponse,
    LeaseRevokeResponse, PutResponse, ResponseHeader, TxnResponse,
};
use crate::proto::mvccpb::Event;

/// The result of applying one log entry: etcd's response message for its request, header
/// carrying only the revision (the member fills the rest when it answers).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Applied {
    /// A blank or membership entry.
    #[default]
    Empty,
    /// A put.
    Put(PutResponse),
    /// A delete-range.
    DeleteRange(DeleteRangeResponse),
    /// A txn.
    Txn(TxnResponse),
    /// A compaction.
    Compaction(CompactionResponse),
    /// A lease grant.
    LeaseGrant(LeaseGrantResponse),
    /// A lease revoke (its keys deleted in one revision).
    LeaseRevoke(LeaseRevokeResponse),
    /// A lease checkpoint.
    LeaseCheckpoint(LeaseCheckpointResponse),
    /// The request was rejected when applied (e.g. an unknown lease); the store is unchanged.
    Rejected(Error),
    /// The results of a batch of requests, in order.
    Batch(Vec<Applied>),
}

/// Applies committed requests to the store and the lessor; see the module docs.
pub struct Applier<'a> {
    writer: Writer<'a>,
    lessor: &'a Lessor,
    /// The member's clock when the batch is applied: a primary lessor starts new leases' expiry
    /// from it (followers keep no expiries, so replicated state never depends on it).
    now: Instant,
}

impl<'a> Applier<'a> {
    /// Starts a batch: takes the store's write lock until [`Applier::finish`]. Events are built
    /// for the watchers only if `watched`.
    pub fn new(store: &'a Store, lessor: &'a Lessor, now: Instant, watched: bool) -> Self {
        let writer = store.writer();
        Applier {
            writer: if watched {
                writer
            } else {
                writer.without_events()
            },
            lessor,
            now,
        }
    }

    /// Applies one committed request. A request the state refuses (an unknown lease, a
    /// compacted revision, …) changes nothing and yields [`Applied::Rejected`] — on every
    /// member alike, since the decision depends only on the replicated state.
    pub fn apply(&mut self, r: RaftRequest) -> Applied {
        if let Some(Req::Batch(batch)) = r.request {
            // Each request of a batch applies as if it were its own entry.
            return Applied::Batch(batch.requests.into_iter().map(|r| self.apply(r)).collect());
        }
        let w = &mut self.writer;
        let lessor = self.lessor;
        let result = match r.request {
            Some(Req::Put(p)) => w.put(&p, lessor).map(Applied::Put),
            Some(Req::DeleteRange(d)) => Ok(Applied::DeleteRange(w.delete_range(&d))),
            Some(Req::Txn(t)) => w.txn(&t, lessor).map(Applied::Txn),
            Some(Req::Compaction(c)) => w.compact(&c).map(|rev| {
                Applied::Compaction(CompactionResponse {
                    header: header(rev),
                })
            }),
            // The proposer raised the TTL to the minimum and chose the ID, so every member
            // applies the same grant.
            Some(Req::LeaseGrant(g)) => lessor.grant(g.id, g.ttl, self.now, w.batch()).map(|()| {
                Applied::LeaseGrant(LeaseGrantResponse {
                    header: header(w.current_revision()),
                    id: g.id,
                    ttl: g.ttl,
                    error: String::new(),
                })
            }),
            Some(Req::LeaseRevoke(r)) => {
                if lessor.exists(r.id) {
                    // Every attached key goes in one revision, then the lease itself.
                    let rev = w.delete_leased(r.id);
                    lessor.revoke(r.id, w.batch()).map(|()| {
                        Applied::LeaseRevoke(LeaseRevokeResponse {
                            header: header(rev),
                        })
                    })
                } else {
                    Err(Error::LeaseNotFound)
                }
            }
            Some(Req::LeaseCheckpoint(c)) => {
                for cp in &c.checkpoints {
                    lessor.checkpoint(cp.id, cp.remaining_ttl, w.batch());
                }
                Ok(Applied::LeaseCheckpoint(LeaseCheckpointResponse {
                    header: header(w.current_revision()),
                }))
            }
            Some(Req::Batch(_)) => unreachable!("batches are taken apart above"),
            None => Ok(Applied::Empty),
        };
        result.unwrap_or_else(Applied::Rejected)
    }

    /// Ends the batch: `persist` gets the one write batch of everything applied (to which it adds
    /// its own records, e.g. the applied index) and runs while the store's write lock is still
    /// held. Returns the events of every new revision, in order, for the watchers.
    pub fn finish<E>(
        self,
        persist: impl FnOnce(WriteBatch) -> Result<(), E>,
    ) -> Result<Vec<Event>, E> {
        self.writer.finish(persist)
    }
}

/// A response header carrying only `revision` (the member fills in the cluster fields).
fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::disk::WriteOp;
    use crate::proto::etcdserverpb::{
        CompactionRequest, LeaseCheckpoint, LeaseCheckpointRequest, LeaseGrantRequest,
        LeaseRevokeRequest, PutRequest, RangeRequest,
    };

    fn request(r: Req) -> RaftRequest {
        RaftRequest { request: Some(r) }
    }

    fn put(key: &'static [u8], lease: i64) -> RaftRequest {
        request(Req::Put(PutRequest {
            key: key.into(),
            value: b"v".as_slice().into(),
            lease,
            ..Default::default()
        }))
    }

    fn grant(id: i64, ttl: i64) -> RaftRequest {
        request(Req::LeaseGrant(LeaseGrantRequest { ttl, id }))
    }

    /// Applies `reqs` in one batch; returns the results and the batch's disk writes.
    fn apply_all(
        store: &Store,
        lessor: &Lessor,
        reqs: Vec<RaftRequest>,
    ) -> (Vec<Applied>, Vec<WriteOp>) {
        let mut a = Applier::new(store, lessor, Instant::now(), true);
        let results = reqs.into_iter().map(|r| a.apply(r)).collect();
        let mut written = Vec::new();
        a.finish(|b| {
            written = b.ops().to_vec();
            Ok::<_, ()>(())
        })
        .unwrap();
        (results, written)
    }

    fn revision_of(a: &Applied) -> i64 {
        match a {
            Applied::Put(r) => r.header.as_ref().unwrap().revision,
            Applied::LeaseRevoke(r) => r.header.as_ref().unwrap().revision,
            Applied::LeaseGrant(r) => r.header.as_ref().unwrap().revision,
            Applied::Compaction(r) => r.header.as_ref().unwrap().revision,
            other => panic!("no revision in {other:?}"),
        }
    }

    #[test]
    fn a_put_with_an_unknown_lease_is_rejected_and_changes_nothing() {
        let (store, lessor) = (Store::new(), Lessor::new());
        let (results, written) = apply_all(&store, &lessor, vec![put(b"a", 7)]);
        assert_eq!(results, vec![Applied::Rejected(Error::LeaseNotFound)]);
        assert!(written.is_empty(), "nothing persisted: {written:?}");
        assert_eq!(store.current_revision(), 1);
    }

    #[test]
    fn lease_records_and_key_revisions_share_one_batch() {
        let (store, lessor) = (Store::new(), Lessor::new());
        let (results, written) = apply_all(&store, &lessor, vec![grant(7, 60), put(b"a", 7)]);
        assert!(matches!(results[0], Applied::LeaseGrant(ref g) if g.id == 7 && g.ttl == 60));
        assert_eq!(revision_of(&results[1]), 2);
        let keys: Vec<&[u8]> = written
            .iter()
            .map(|op| match op {
                WriteOp::Put(k, _) | WriteOp::Delete(k) => &k[..],
            })
            .collect();
        assert!(keys.iter().any(|k| k.starts_with(b"s/lease/")), "{keys:?}");
        assert!(keys.iter().any(|k| k.starts_with(b"k")), "{keys:?}");
    }

    #[test]
    fn revoking_a_lease_deletes_its_keys_in_one_revision() {
        let (store, lessor) = (Store::new(), Lessor::new());
        apply_all(
            &store,
            &lessor,
            vec![grant(7, 60), put(b"a", 7), put(b"b", 7), put(b"c", 0)],
        );
        assert_eq!(store.current_revision(), 4);
        let revoke = request(Req::LeaseRevoke(LeaseRevokeRequest { id: 7 }));
        let (results, _) = apply_all(&store, &lessor, vec![revoke.clone()]);
        assert_eq!(revision_of(&results[0]), 5);
        assert!(!lessor.exists(7));
        let all = store
            .range(&RangeRequest {
                key: b"a".as_slice().into(),
                range_end: b"d".as_slice().into(),
                ..Default::default()
            })
            .unwrap();
        let left: Vec<&[u8]> = all.kvs.iter().map(|kv| &kv.key[..]).collect();
        assert_eq!(left, vec![b"c".as_slice()]);
        let (again, _) = apply_all(&store, &lessor, vec![revoke]);
        assert_eq!(again, vec![Applied::Rejected(Error::LeaseNotFound)]);
    }

    #[test]
    fn a_second_grant_of_one_id_is_refused() {
        let (store, lessor) = (Store::new(), Lessor::new());
        let (results, _) = apply_all(&store, &lessor, vec![grant(3, 10), grant(3, 20)]);
        assert_eq!(results[1], Applied::Rejected(Error::LeaseExist));
        assert_eq!(lessor.get(3).map(|l| l.ttl), Some(10));
    }

    #[test]
    fn checkpoints_record_the_remaining_ttl_of_known_leases_only() {
        let (store, lessor) = (Store::new(), Lessor::new());
        let cp = request(Req::LeaseCheckpoint(LeaseCheckpointRequest {
            checkpoints: vec![
                LeaseCheckpoint {
                    id: 1,
                    remaining_ttl: 40,
                },
                LeaseCheckpoint {
                    id: 2,
                    remaining_ttl: 5,
                },
            ],
        }));
        let (results, _) = apply_all(&store, &lessor, vec![grant(1, 600), cp]);
        assert!(matches!(results[1], Applied::LeaseCheckpoint(_)));
        assert_eq!(lessor.get(1).map(|l| l.remaining), Some(40));
        assert!(!lessor.exists(2));
    }

    #[test]
    fn compaction_answers_with_the_current_revision_and_refuses_the_past() {
        let (store, lessor) = (Store::new(), Lessor::new());
        apply_all(&store, &lessor, vec![put(b"a", 0), put(b"a", 0)]);
        let compact = |revision| {
            request(Req::Compaction(CompactionRequest {
                revision,
                physical: false,
            }))
        };
        let (results, _) = apply_all(&store, &lessor, vec![compact(2), compact(2), compact(9)]);
        assert_eq!(revision_of(&results[0]), 3);
        assert_eq!(results[1], Applied::Rejected(Error::Compacted));
        assert_eq!(results[2], Applied::Rejected(Error::FutureRevision));
        assert_eq!(store.compacted_revision(), 2);
    }

    #[test]
    fn a_batch_applies_each_request_as_its_own_revision() {
        let (store, lessor) = (Store::new(), Lessor::new());
        let batch = request(Req::Batch(crate::proto::detcdpb::RaftBatch {
            requests: vec![put(b"a", 0), put(b"b", 9), put(b"c", 0)],
        }));
        let (results, _) = apply_all(&store, &lessor, vec![batch]);
        let Applied::Batch(each) = &results[0] else {
            panic!("{results:?}")
        };
        assert_eq!(revision_of(&each[0]), 2);
        assert_eq!(each[1], Applied::Rejected(Error::LeaseNotFound));
        assert_eq!(revision_of(&each[2]), 3);
        assert_eq!(store.current_revision(), 3);
    }

    #[test]
    fn an_empty_request_is_applied_as_nothing() {
        let (store, lessor) = (Store::new(), Lessor::new());
        let (results, written) = apply_all(&store, &lessor, vec![RaftRequest { request: None }]);
        assert_eq!(results, vec![Applied::Empty]);
        assert!(written.is_empty());
    }
}
