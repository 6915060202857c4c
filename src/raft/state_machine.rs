//! The raft state machine: applies committed entries to the mvcc [`Store`].
//!
//! Each `apply` call turns its whole batch of entries into one disk write that also records the
//! last applied log id, so after a crash the store and its applied index agree and no entry is
//! applied twice. It is not synced here: the log is, and anything lost is re-applied from it.
//!
//! A snapshot is the store itself: the disk records of the mvcc store and the state machine's
//! metadata, framed as (u32 length, key, u32 length, value) pairs, taken under the store's
//! read lock so it is consistent with the applied log id it names.
//!
//! Leases are applied here too: the lessor's replicated state changes in log order, and its
//! records (`s/lease/…`) go into the same batch, so snapshots and restarts carry them.

use std::io::{self, Cursor};
use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};

use crate::cluster::Member;
use crate::error::Error;
use crate::io::disk::{prefix_end, WriteBatch, WriteOp};
use crate::io::{Clock, Disk};
use crate::lease::Lessor;
use crate::mvcc::{Store, Writer};
use crate::proto::detcdpb::raft_request::Request as Req;
use crate::proto::detcdpb::RaftRequest;
use crate::proto::etcdserverpb::{
    CompactionResponse, LeaseCheckpointResponse, LeaseGrantResponse, LeaseRevokeResponse,
    ResponseHeader,
};
use crate::watch::{Hub, RevisionEvents};

use super::types::{Request, Response, TypeConfig};

const APPLIED: &[u8] = b"s/applied";
const MEMBERSHIP: &[u8] = b"s/membership";
/// Prefixes that make up the state machine's part of the disk.
const SM_PREFIXES: [&[u8]; 3] = [b"k", b"m/", b"s/"];

/// What the state machine knows besides the store.
#[derive(Debug, Clone, Default)]
struct Meta {
    /// Last applied log id. Invariant: never decreases (except by installing a newer snapshot).
    applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, Member>,
    /// Counter making snapshot ids unique.
    snapshots_built: u64,
}

/// The state machine; clones share the same store.
#[derive(Clone, Debug)]
pub struct StateMachine {
    disk: Disk,
    store: Arc<Store>,
    meta: Arc<Mutex<Meta>>,
    /// Where applied events go (watchers).
    hub: Arc<Hub>,
    /// The leases, applied in log order with the store.
    lessor: Arc<Lessor>,
}

fn sm_err(e: io::Error) -> StorageError<u64> {
    StorageIOError::write_state_machine(&e).into()
}

fn bad_data(m: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m.to_string())
}

impl StateMachine {
    /// The membership of the last applied membership entry: committed, unlike the latest one in
    /// the log, which a new leader may still roll back.
    pub fn applied_membership(&self) -> openraft::Membership<u64, Member> {
        self.meta
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .membership
            .membership()
            .clone()
    }

    /// Opens the state machine on `disk`, rebuilding the store from it; applied events go to `hub`.
    pub fn open(disk: Disk, hub: Arc<Hub>) -> io::Result<Self> {
        let store = Arc::new(Store::open(&disk)?);
        let json = |key: &[u8]| -> io::Result<Option<Bytes>> { disk.get(key) };
        let applied = match json(APPLIED)? {
            Some(v) => serde_json::from_slice(&v).map_err(bad_data)?,
            None => None,
        };
        let membership = match json(MEMBERSHIP)? {
            Some(v) => serde_json::from_slice(&v).map_err(bad_data)?,
            None => StoredMembership::default(),
        };
        let meta = Meta {
            applied,
            membership,
            snapshots_built: 0,
        };
        let lessor = Arc::new(Lessor::new());
        lessor.load(&disk, Clock.now())?;
        Ok(StateMachine {
            disk,
            store,
            meta: Arc::new(Mutex::new(meta)),
            hub,
            lessor,
        })
    }

    /// The lessor this state machine applies lease requests to.
    pub fn lessor(&self) -> Arc<Lessor> {
        self.lessor.clone()
    }

    /// The store this state machine applies to (shared with the read path).
    pub fn store(&self) -> Arc<Store> {
        self.store.clone()
    }

    fn meta(&self) -> std::sync::MutexGuard<'_, Meta> {
        self.meta.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies one request; lease records to persist are appended to `lease_ops`.
    fn apply_request(
        w: &mut Writer<'_>,
        lessor: &Lessor,
        lease_ops: &mut Vec<WriteOp>,
        r: RaftRequest,
    ) -> Response {
        let result = match r.request {
            Some(Req::Put(p)) => w.put(&p, lessor).map(Response::Put),
            Some(Req::DeleteRange(d)) => Ok(Response::DeleteRange(w.delete_range(&d))),
            Some(Req::Txn(t)) => w.txn(&t, lessor).map(Response::Txn),
            Some(Req::Compaction(c)) => w.compact(&c).map(|rev| {
                Response::Compaction(CompactionResponse {
                    header: header(rev),
                })
            }),
            // The TTL was raised to the minimum and the ID chosen before proposing, so every
            // member applies the same grant.
            Some(Req::LeaseGrant(g)) => {
                lessor.grant(g.id, g.ttl, Clock.now(), lease_ops).map(|()| {
                    Response::LeaseGrant(LeaseGrantResponse {
                        header: header(w.current_revision()),
                        id: g.id,
                        ttl: g.ttl,
                        error: String::new(),
                    })
                })
            }
            Some(Req::LeaseRevoke(r)) => {
                if lessor.exists(r.id) {
                    let rev = w.delete_leased(r.id);
                    lessor.revoke(r.id, lease_ops).map(|()| {
                        Response::LeaseRevoke(LeaseRevokeResponse {
                            header: header(rev),
                        })
                    })
                } else {
                    Err(Error::LeaseNotFound)
                }
            }
            Some(Req::LeaseCheckpoint(c)) => {
                for cp in &c.checkpoints {
                    lessor.checkpoint(cp.id, cp.remaining_ttl, lease_ops);
                }
                Ok(Response::LeaseCheckpoint(LeaseCheckpointResponse {
                    header: header(w.current_revision()),
                }))
            }
            None => Ok(Response::Empty),
        };
        result.unwrap_or_else(Response::Rejected)
    }

    /// Serializes the state machine's part of the disk, consistent with the returned meta.
    fn dump(&self) -> io::Result<(Vec<u8>, Meta)> {
        self.store.frozen(|| {
            let meta = self.meta().clone();
            let mut out = Vec::new();
            for p in SM_PREFIXES {
                for (k, v) in self.disk.scan(p, &prefix_end(p))? {
                    out.put_u32(k.len() as u32);
                    out.put_slice(&k);
                    out.put_u32(v.len() as u32);
                    out.put_slice(&v);
                }
            }
            Ok((out, meta))
        })
    }
}

/// A response header carrying only `revision` (the service fills in the cluster fields).
fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let (data, meta) = self
            .dump()
            .map_err(|e| StorageIOError::read_state_machine(&e))?;
        let n = {
            let mut m = self.meta();
            m.snapshots_built += 1;
            m.snapshots_built
        };
        let id = match meta.applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, n),
            None => format!("0-0-{n}"),
        };
        Ok(Snapshot {
            meta: SnapshotMeta {
                last_log_id: meta.applied,
                last_membership: meta.membership,
                snapshot_id: id,
            },
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, Member>), StorageError<u64>> {
        let m = self.meta();
        Ok((m.applied, m.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<u64>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut responses = Vec::new();
        let mut last = None;
        let mut membership = None;
        let mut w = self.store.writer();
        let mut lease_ops = Vec::new();
        for e in entries {
            responses.push(match e.payload {
                EntryPayload::Blank => Response::Empty,
                EntryPayload::Normal(Request(r)) => {
                    Self::apply_request(&mut w, &self.lessor, &mut lease_ops, r)
                }
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(e.log_id), m));
                    Response::Empty
                }
            });
            last = Some(e.log_id);
        }
        let Some(last) = last else {
            return Ok(responses);
        };
        let disk = &self.disk;
        let meta = &self.meta;
        let events = w
            .finish(|mut batch: WriteBatch| {
                let mut m = meta.lock().unwrap_or_else(|p| p.into_inner());
                assert!(m.applied < Some(last), "applied log id only moves forward");
                for op in lease_ops {
                    match op {
                        WriteOp::Put(k, v) => batch.put(k, v),
                        WriteOp::Delete(k) => batch.delete(k),
                    }
                }
                batch.put(
                    Bytes::from_static(APPLIED),
                    serde_json::to_vec(&Some(last)).expect("log id"),
                );
                if let Some(ms) = &membership {
                    batch.put(
                        Bytes::from_static(MEMBERSHIP),
                        serde_json::to_vec(ms).expect("membership"),
                    );
                }
                disk.write(batch)?;
                m.applied = Some(last);
                if let Some(ms) = membership {
                    m.membership = ms;
                }
                Ok::<_, io::Error>(())
            })
            .map_err(sm_err)?;
        self.hub.publish(RevisionEvents::group(events));
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, Member>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = Bytes::from(snapshot.into_inner());
        let install = async {
            let mut batch = WriteBatch::new();
            for p in SM_PREFIXES {
                for (k, _) in self.disk.scan(p, &prefix_end(p))? {
                    batch.delete(k);
                }
            }
            let mut buf = data;
            while buf.has_remaining() {
                if buf.remaining() < 4 {
                    return Err(bad_data("truncated snapshot"));
                }
                let kl = buf.get_u32() as usize;
                if buf.remaining() < kl + 4 {
                    return Err(bad_data("truncated snapshot"));
                }
                let k = buf.split_to(kl);
                let vl = buf.get_u32() as usize;
                if buf.remaining() < vl {
                    return Err(bad_data("truncated snapshot"));
                }
                batch.put(k, buf.split_to(vl));
            }
            batch.put(
                Bytes::from_static(APPLIED),
                serde_json::to_vec(&meta.last_log_id).expect("log id"),
            );
            batch.put(
                Bytes::from_static(MEMBERSHIP),
                serde_json::to_vec(&meta.last_membership).expect("membership"),
            );
            self.disk.write(batch)?;
            self.disk.sync().await?;
            self.store.reload(&self.disk)?;
            self.lessor.load(&self.disk, Clock.now())?;
            // Watchers resynchronise from the new store at once rather than at the next write.
            self.hub.store_replaced(self.store.current_revision());
            let mut m = self.meta();
            m.applied = meta.last_log_id;
            m.membership = meta.last_membership.clone();
            tracing::info!(snapshot = %meta.snapshot_id, "installed snapshot from the leader");
            Ok(())
        };
        install.await.map_err(|e: io::Error| {
            StorageIOError::write_snapshot(Some(meta.signature()), &e).into()
        })
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        // The live store is always a valid snapshot of everything applied so far.
        if self.meta().applied.is_none() {
            return Ok(None);
        }
        self.build_snapshot().await.map(Some)
    }
}
