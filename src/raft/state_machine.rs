//! The raft state machine: openraft's side of applying. What each committed request does is the
//! [`Applier`]'s business; this file keeps the applied log id and membership, persists each
//! batch atomically, publishes its events to the watchers, and builds and installs snapshots.
//!
//! Each `apply` call turns its whole batch of entries into one disk write that also records the
//! last applied log id, so after a crash the store and its applied index agree and no entry is
//! applied twice. It is not synced here: the log is, and anything lost is re-applied from it.
//!
//! A snapshot is the store itself: every disk record of the state machine ([`snapshot`]'s
//! framing), taken under the store's read lock so it is consistent with the applied log id it
//! names.

use std::collections::BTreeSet;
use std::io::{self, Cursor};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};

use crate::alarm::AlarmStore;
use crate::apply::{Applier, ApplyClock};
use crate::auth::AuthStore;
use crate::cluster::Member;
use crate::io::disk::{prefix_end, WriteBatch};
use crate::io::{clock, Disk};
use crate::lease::Lessor;
use crate::mvcc::Store;
use crate::watch::{Hub, RevisionEvents};

use super::snapshot;
use super::types::{Applied, Command, TypeConfig};

const APPLIED: &[u8] = b"s/applied";
const MEMBERSHIP: &[u8] = b"s/membership";
/// The IDs of members removed from the cluster, as etcd's `members_removed`: they are never
/// members again, and peers tell them so.
const REMOVED: &[u8] = b"s/removed";
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
    /// The id of the last snapshot built, and the applied log id it was built at: a snapshot of
    /// the same applied state is the same snapshot and keeps its id (openraft relies on the
    /// current snapshot being the one last built).
    last_snapshot: Option<(Option<LogId<u64>>, String)>,
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
    /// Users, roles and permissions, applied in log order with the store.
    auth: Arc<AuthStore>,
    /// The raised alarms, applied in log order with the store.
    alarms: Arc<AlarmStore>,
    /// Members removed by an applied membership change (persisted under [`REMOVED`]). Apart
    /// from `meta`, whose lock an apply holds across its disk write: the peer service asks on
    /// every raft message.
    removed: Arc<RwLock<BTreeSet<u64>>>,
    /// How far it has applied, or that it failed: what a log purge waits on.
    progress: Arc<tokio::sync::watch::Sender<Progress>>,
}

/// What [`StateMachine::wait_applied`] watches.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    applied: Option<u64>,
    failed: bool,
}

fn sm_err(e: io::Error) -> StorageError<u64> {
    StorageIOError::write_state_machine(&e).into()
}

fn bad_data(m: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m.to_string())
}

/// The state machine's records saying it applied the log up to `applied`, with `membership`:
/// for restoring a snapshot into an empty data dir.
pub fn restore_records(
    batch: &mut WriteBatch,
    applied: LogId<u64>,
    membership: StoredMembership<u64, Member>,
) {
    batch.put(
        Bytes::from_static(APPLIED),
        serde_json::to_vec(&Some(applied)).expect("log id"),
    );
    batch.put(
        Bytes::from_static(MEMBERSHIP),
        serde_json::to_vec(&membership).expect("membership"),
    );
}

fn load_removed(disk: &Disk) -> io::Result<BTreeSet<u64>> {
    match disk.get(REMOVED)? {
        Some(v) => serde_json::from_slice(&v).map_err(bad_data),
        None => Ok(BTreeSet::new()),
    }
}

fn member_ids(m: &openraft::Membership<u64, Member>) -> BTreeSet<u64> {
    m.nodes().map(|(id, _)| *id).collect()
}

impl StateMachine {
    /// Whether `id` was removed from the cluster by a membership change this member applied.
    pub fn is_removed(&self, id: u64) -> bool {
        self.removed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&id)
    }

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

    /// The index of the last applied entry (`None` before the first).
    pub fn applied_index(&self) -> Option<u64> {
        self.meta().applied.map(|l| l.index)
    }

    /// Waits until entry `index` is applied (in memory; the next disk sync makes it durable).
    /// Fails once applying or installing a snapshot has failed: raft is stopping then.
    pub async fn wait_applied(&self, index: u64) -> io::Result<()> {
        let mut rx = self.progress.subscribe();
        loop {
            {
                let p = *rx.borrow_and_update();
                if p.failed {
                    return Err(io::Error::other(
                        "the state machine failed to apply or install a snapshot",
                    ));
                }
                if p.applied.is_some_and(|a| a >= index) {
                    return Ok(());
                }
            }
            if rx.changed().await.is_err() {
                return Err(io::Error::other("the state machine is gone"));
            }
        }
    }

    fn progressed(&self, applied: Option<LogId<u64>>) {
        self.progress
            .send_modify(|p| p.applied = applied.map(|l| l.index));
    }

    fn failed(&self) {
        self.progress.send_modify(|p| p.failed = true);
    }

    /// Opens the state machine on `disk`, rebuilding the store, the leases and `auth` from it;
    /// applied events go to `hub`.
    pub fn open(disk: Disk, hub: Arc<Hub>, auth: Arc<AuthStore>) -> io::Result<Self> {
        let store = Arc::new(Store::open(&disk)?);
        let json = |key: &[u8]| -> io::Result<Option<Bytes>> { disk.get(key) };
        let applied = match json(APPLIED)? {
            Some(v) => super::compat::from_json(&v).map_err(bad_data)?,
            None => None,
        };
        let membership = match json(MEMBERSHIP)? {
            Some(v) => super::compat::from_json(&v).map_err(bad_data)?,
            None => StoredMembership::default(),
        };
        let meta = Meta {
            applied,
            membership,
            snapshots_built: 0,
            last_snapshot: None,
        };
        let lessor = Arc::new(Lessor::new());
        lessor.load(&disk, clock::now())?;
        auth.load(&disk)?;
        let alarms = Arc::new(AlarmStore::default());
        alarms.load(&disk)?;
        let progress = Progress {
            applied: meta.applied.map(|l| l.index),
            failed: false,
        };
        Ok(StateMachine {
            removed: Arc::new(RwLock::new(load_removed(&disk)?)),
            progress: Arc::new(tokio::sync::watch::Sender::new(progress)),
            disk,
            store,
            meta: Arc::new(Mutex::new(meta)),
            hub,
            lessor,
            auth,
            alarms,
        })
    }

    /// The lessor this state machine applies lease requests to.
    pub fn lessor(&self) -> Arc<Lessor> {
        self.lessor.clone()
    }

    /// The alarms this state machine applies alarm requests to.
    pub fn alarms(&self) -> Arc<AlarmStore> {
        self.alarms.clone()
    }

    /// The store this state machine applies to (shared with the read path).
    pub fn store(&self) -> Arc<Store> {
        self.store.clone()
    }

    fn meta(&self) -> std::sync::MutexGuard<'_, Meta> {
        self.meta.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serializes the state machine's part of the disk, consistent with the returned meta.
    fn dump(&self) -> io::Result<(Vec<u8>, Meta)> {
        self.store.frozen(|| {
            let meta = self.meta().clone();
            let mut out = Vec::new();
            for p in SM_PREFIXES {
                for (k, v) in self.disk.scan(p, &prefix_end(p))? {
                    snapshot::put_record(&mut out, &k, &v);
                }
            }
            Ok((out, meta))
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let (data, meta) = self
            .dump()
            .map_err(|e| StorageIOError::read_state_machine(&e))?;
        let id = {
            let mut m = self.meta();
            match &m.last_snapshot {
                Some((at, id)) if *at == meta.applied => id.clone(),
                _ => {
                    m.snapshots_built += 1;
                    let n = m.snapshots_built;
                    let id = match meta.applied {
                        Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, n),
                        None => format!("0-0-{n}"),
                    };
                    m.last_snapshot = Some((meta.applied, id.clone()));
                    id
                }
            }
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

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<u64>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut responses = Vec::new();
        let mut last = None;
        let mut membership = None;
        // Members present before a membership entry and absent after it are removed for good.
        let mut members: Option<BTreeSet<u64>> = None;
        let mut removed = Vec::new();
        // Events only if someone watches (checked before the store changes: a stream that starts
        // later gets the revisions from the store, see `Hub::applied_unwatched`).
        let watched = self.hub.has_watchers();
        let clock = ApplyClock {
            now: clock::now(),
            unix_secs: (clock::unix_nanos() / 1_000_000_000).max(0) as u64,
        };
        let mut applier = Applier::new(
            &self.store,
            &self.lessor,
            &self.auth,
            &self.alarms,
            clock,
            watched,
        );
        for e in entries {
            if let Some(prev) = last {
                assert!(e.log_id > prev, "entries are applied in log order");
            }
            responses.push(match e.payload {
                EntryPayload::Blank => Applied::Empty,
                EntryPayload::Normal(Command(r)) => {
                    applier.apply(e.log_id.index, e.log_id.leader_id.term, r)
                }
                EntryPayload::Membership(m) => {
                    let before = members
                        .take()
                        .unwrap_or_else(|| member_ids(self.meta().membership.membership()));
                    let after = member_ids(&m);
                    removed.extend(before.difference(&after).copied());
                    members = Some(after);
                    membership = Some(StoredMembership::new(Some(e.log_id), m));
                    Applied::Empty
                }
            });
            last = Some(e.log_id);
        }
        let Some(last) = last else {
            return Ok(responses);
        };
        let disk = &self.disk;
        let meta = &self.meta;
        let events = applier
            .finish(|mut batch: WriteBatch| {
                let mut m = meta.lock().unwrap_or_else(|p| p.into_inner());
                assert!(m.applied < Some(last), "applied log id only moves forward");
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
                let gone = (!removed.is_empty()).then(|| {
                    let mut gone = self
                        .removed
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    gone.extend(removed.iter().copied());
                    batch.put(
                        Bytes::from_static(REMOVED),
                        serde_json::to_vec(&gone).expect("removed members"),
                    );
                    gone
                });
                disk.write(batch)?;
                if let Some(gone) = gone {
                    *self.removed.write().unwrap_or_else(|p| p.into_inner()) = gone;
                }
                m.applied = Some(last);
                if let Some(ms) = membership {
                    m.membership = ms;
                }
                Ok::<_, io::Error>(())
            })
            .map_err(sm_err)
            .inspect_err(|_| self.failed())?;
        self.progressed(Some(last));
        if watched {
            self.hub.publish(RevisionEvents::group(events));
        } else {
            self.hub.applied_unwatched(self.store.current_revision());
        }
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
            for (k, v) in snapshot::records(data)? {
                batch.put(k, v);
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
            self.lessor.load(&self.disk, clock::now())?;
            self.auth.load(&self.disk)?;
            self.alarms.load(&self.disk)?;
            // Watchers resynchronise from the new store at once rather than at the next write.
            self.hub.store_replaced(self.store.current_revision());
            let removed = load_removed(&self.disk)?;
            // The snapshot carries the removed members with the rest of the state.
            *self.removed.write().unwrap_or_else(|p| p.into_inner()) = removed;
            let mut m = self.meta();
            m.applied = meta.last_log_id;
            m.membership = meta.last_membership.clone();
            tracing::info!(snapshot = %meta.snapshot_id, "installed snapshot from the leader");
            Ok::<(), io::Error>(())
        };
        match install.await {
            Ok(()) => {
                self.progressed(meta.last_log_id);
                Ok(())
            }
            Err(e) => {
                self.failed();
                Err(StorageIOError::write_snapshot(Some(meta.signature()), &e).into())
            }
        }
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
