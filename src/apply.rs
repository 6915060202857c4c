//! The applier: what a committed write does to the member's replicated state (etcd's
//! `apply.go`). Pure — no raft, no disk I/O, no clock reading — so every request kind is
//! unit-tested here.
//!
//! One [`Applier`] spans one batch of committed log entries. It owns the mvcc [`Writer`] (the
//! store's write lock) and with it the batch's single [`WriteBatch`]: key revisions and lease
//! records changed by the same entries go into that one batch, which the state machine
//! persists atomically together with its applied index.
//!
//! Auth is applied here too: a write is judged against the identity its entry carries
//! ([`crate::auth::request`]) before it touches the store, and auth changes go to the
//! [`AuthStore`], their records into the same batch.

use crate::alarm::AlarmStore;
use crate::auth::{request, AuthInfo, AuthStore};
use crate::error::Error;
use crate::io::clock::Instant;
use crate::io::disk::WriteBatch;
use crate::lease::Lessor;
use crate::mvcc::{Store, Writer};
use crate::proto::detcdpb::raft_request::Request as Req;
use crate::proto::detcdpb::{AuthApplied, RaftRequest};
use crate::proto::etcdserverpb::alarm_request::AlarmAction;
use crate::proto::etcdserverpb::request_op::Request as Op;
use crate::proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, CompactionResponse, DeleteRangeResponse,
    LeaseCheckpointResponse, LeaseGrantResponse, LeaseRevokeResponse, PutResponse, ResponseHeader,
    TxnRequest, TxnResponse,
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
    /// An auth change (or Authenticate's token).
    Auth(AuthApplied),
    /// An alarm raised, cleared or listed.
    Alarm(AlarmResponse),
    /// The request was rejected when applied (e.g. an unknown lease); the store is unchanged.
    Rejected(Error),
    /// The results of a batch of requests, in order.
    Batch(Vec<Applied>),
}

/// Applies committed requests to the store and the lessor; see the module docs.
pub struct Applier<'a> {
    writer: Writer<'a>,
    lessor: &'a Lessor,
    auth: &'a AuthStore,
    alarms: &'a AlarmStore,
    clock: ApplyClock,
}

/// The member's clocks when a batch is applied. Replicated state never depends on them: a
/// primary lessor starts new leases' expiry from `now` (followers keep no expiries), and tokens
/// issued here expire by `unix_secs` (tokens are each member's own).
#[derive(Debug, Clone, Copy)]
pub struct ApplyClock {
    /// The monotonic clock.
    pub now: Instant,
    /// Wall-clock time, Unix seconds.
    pub unix_secs: u64,
}

/// Whether a txn puts in either branch (a txn that only reads and deletes takes no space).
fn txn_puts(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .any(|op| match &op.request {
            Some(Op::RequestPut(_)) => true,
            Some(Op::RequestTxn(t)) => txn_puts(t),
            _ => false,
        })
}

/// The identity an entry was proposed with; `Err(())` for the member's own housekeeping.
fn identity(r: &RaftRequest) -> Result<Option<AuthInfo>, ()> {
    match &r.auth {
        Some(a) if a.system => Err(()),
        Some(a) => Ok(Some(AuthInfo {
            username: a.username.clone(),
            revision: a.revision,
        })),
        None => Ok(None),
    }
}

impl<'a> Applier<'a> {
    /// Starts a batch: takes the store's write lock until [`Applier::finish`]. Events are built
    /// for the watchers only if `watched`.
    pub fn new(
        store: &'a Store,
        lessor: &'a Lessor,
        auth: &'a AuthStore,
        alarms: &'a AlarmStore,
        clock: ApplyClock,
        watched: bool,
    ) -> Self {
        let writer = store.writer();
        Applier {
            writer: if watched {
                writer
            } else {
                writer.without_events()
            },
            lessor,
            auth,
            alarms,
            clock,
        }
    }

    /// Applies one committed request. A request the state refuses (an unknown lease, a
    /// compacted revision, …) changes nothing and yields [`Applied::Rejected`] — on every
    /// member alike, since the decision depends only on the replicated state. `index` and
    /// `term` are the entry's log index and term.
    pub fn apply(&mut self, index: u64, term: u64, r: RaftRequest) -> Applied {
        if let Some(Req::Batch(batch)) = r.request {
            // Each request of a batch applies as if it were its own entry.
            return Applied::Batch(
                batch
                    .requests
                    .into_iter()
                    .map(|r| self.apply(index, term, r))
                    .collect(),
            );
        }
        if r.expired_in_term != 0 && r.expired_in_term != term {
            // A revocation its leader decided in an earlier term and appended in a later one:
            // the lease may have been renewed in between (found by the lease sweep, seed 624).
            return Applied::Empty;
        }
        let who = identity(&r);
        let Some(req) = r.request else {
            return Applied::Empty;
        };
        if let Ok(who) = &who {
            let w = &self.writer;
            if let Err(e) =
                request::check_write(self.auth, who.as_ref(), &req, &|id| w.keys_with_lease(id))
            {
                return Applied::Rejected(e);
            }
        }
        let who = who.unwrap_or(None);
        if let Req::Alarm(a) = req {
            return self.apply_alarm(a);
        }
        let result = match self.apply_auth(index, who.as_ref(), req) {
            Ok(done) => done,
            Err(req) => self.capped(&req).and_then(|()| self.apply_kv(req)),
        };
        result.unwrap_or_else(Applied::Rejected)
    }

    /// What a raised alarm refuses: with CORRUPT every key and lease write, with NOSPACE the
    /// writes that take space (puts, txns that put, lease grants).
    fn capped(&self, req: &Req) -> Result<(), Error> {
        if self.alarms.raised(AlarmType::Corrupt) {
            return match req {
                Req::Put(_)
                | Req::DeleteRange(_)
                | Req::Txn(_)
                | Req::Compaction(_)
                | Req::LeaseGrant(_)
                | Req::LeaseRevoke(_) => Err(Error::Corrupt),
                _ => Ok(()),
            };
        }
        if self.alarms.raised(AlarmType::Nospace) {
            return match req {
                Req::Put(_) | Req::LeaseGrant(_) => Err(Error::NoSpace),
                Req::Txn(t) if txn_puts(t) => Err(Error::NoSpace),
                _ => Ok(()),
            };
        }
        Ok(())
    }

    /// Raises, clears or lists alarms (etcd's `applierV3backend.Alarm`).
    fn apply_alarm(&mut self, a: AlarmRequest) -> Applied {
        let batch = self.writer.batch();
        let alarms = match AlarmAction::try_from(a.action) {
            Ok(AlarmAction::Get) => self.alarms.get(a.alarm),
            Ok(AlarmAction::Activate) => vec![self.alarms.activate(a.member_id, a.alarm, batch)],
            Ok(AlarmAction::Deactivate) => self
                .alarms
                .deactivate(a.member_id, a.alarm, batch)
                .into_iter()
                .collect(),
            Err(_) => Vec::new(),
        };
        Applied::Alarm(AlarmResponse {
            header: header(self.writer.current_revision()),
            alarms,
        })
    }

    /// Applies a request to the store and the lessor.
    fn apply_kv(&mut self, req: Req) -> Result<Applied, Error> {
        let w = &mut self.writer;
        let lessor = self.lessor;
        match req {
            Req::Put(p) => w.put(&p, lessor).map(Applied::Put),
            Req::DeleteRange(d) => Ok(Applied::DeleteRange(w.delete_range(&d))),
            Req::Txn(t) => w.txn(&t, lessor).map(Applied::Txn),
            Req::Compaction(c) => w.compact(&c).map(|rev| {
                Applied::Compaction(CompactionResponse {
                    header: header(rev),
                })
            }),
            // The proposer raised the TTL to the minimum and chose the ID, so every member
            // applies the same grant.
            Req::LeaseGrant(g) => lessor
                .grant(g.id, g.ttl, self.clock.now, w.batch())
                .map(|()| {
                    Applied::LeaseGrant(LeaseGrantResponse {
                        header: header(w.current_revision()),
                        id: g.id,
                        ttl: g.ttl,
                        error: String::new(),
                    })
                }),
            Req::LeaseRevoke(r) => {
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
            Req::LeaseCheckpoint(c) => {
                for cp in &c.checkpoints {
                    lessor.checkpoint(cp.id, cp.remaining_ttl, w.batch());
                }
                Ok(Applied::LeaseCheckpoint(LeaseCheckpointResponse {
                    header: header(w.current_revision()),
                }))
            }
            Req::Batch(_) => unreachable!("batches are taken apart above"),
            _ => unreachable!("auth changes are applied by apply_auth"),
        }
    }

    /// Applies an auth change (`Err(req)` back if `req` is not one). Each needs the root role
    /// of `who` (the store checks), except Authenticate, whose password the proposer checked:
    /// it fails if the auth revision moved since, so the proposer checks again.
    fn apply_auth(
        &mut self,
        index: u64,
        who: Option<&AuthInfo>,
        req: Req,
    ) -> Result<Result<Applied, Error>, Req> {
        let (auth, batch) = (self.auth, self.writer.batch());
        let done = |r: Result<(), Error>| r.map(|()| String::new());
        let token = match req {
            Req::AuthEnable(_) => done(auth.enable(who, batch)),
            Req::AuthDisable(_) => done(auth.disable(who, batch)),
            Req::Authenticate(a) => {
                if a.checked_revision != auth.revision() {
                    Err(Error::AuthOldRevision)
                } else {
                    let now = self.clock.unix_secs;
                    auth.authenticate(&a.name, &a.simple_token, index, now)
                }
            }
            Req::UserAdd(u) => {
                let no_password = u.options.is_some_and(|o| o.no_password);
                done(auth.user_add(who, &u.name, &u.hashed_password, no_password, batch))
            }
            Req::UserDelete(u) => done(auth.user_delete(who, &u.name, batch)),
            Req::UserChangePassword(u) => {
                done(auth.user_change_password(who, &u.name, &u.hashed_password, batch))
            }
            Req::UserGrantRole(g) => done(auth.user_grant_role(who, &g.user, &g.role, batch)),
            Req::UserRevokeRole(r) => done(auth.user_revoke_role(who, &r.name, &r.role, batch)),
            Req::RoleAdd(r) => done(auth.role_add(who, &r.name, batch)),
            Req::RoleDelete(r) => done(auth.role_delete(who, &r.role, batch)),
            Req::RoleGrantPermission(g) => match g.perm {
                Some(perm) => done(auth.role_grant_permission(who, &g.name, perm, batch)),
                None => Err(Error::PermissionNotGiven),
            },
            Req::RoleRevokePermission(r) => {
                done(auth.role_revoke_permission(who, &r.role, &r.key, &r.range_end, batch))
            }
            other => return Err(other),
        };
        let revision = self.writer.current_revision();
        Ok(token.map(|token| {
            Applied::Auth(AuthApplied {
                header: header(revision),
                token,
            })
        }))
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
        AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest, AuthRoleGrantPermissionRequest,
        AuthUserAddRequest, AuthUserGrantRoleRequest, CompactionRequest, LeaseCheckpoint,
        LeaseCheckpointRequest, LeaseGrantRequest, LeaseRevokeRequest, PutRequest, RangeRequest,
        TxnRequest,
    };

    fn request(r: Req) -> RaftRequest {
        RaftRequest::anonymous(r)
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
        apply_with(store, lessor, &AuthStore::default(), reqs)
    }

    /// As [`apply_all`], with `auth`; entry `i` of `reqs` has log index `i + 1`.
    fn apply_with(
        store: &Store,
        lessor: &Lessor,
        auth: &AuthStore,
        reqs: Vec<RaftRequest>,
    ) -> (Vec<Applied>, Vec<WriteOp>) {
        apply_alarmed(store, lessor, auth, &AlarmStore::default(), reqs)
    }

    /// As [`apply_with`], with `alarms`.
    fn apply_alarmed(
        store: &Store,
        lessor: &Lessor,
        auth: &AuthStore,
        alarms: &AlarmStore,
        reqs: Vec<RaftRequest>,
    ) -> (Vec<Applied>, Vec<WriteOp>) {
        let clock = ApplyClock {
            now: Instant::now(),
            unix_secs: 1000,
        };
        let mut a = Applier::new(store, lessor, auth, alarms, clock, true);
        let results = reqs
            .into_iter()
            .enumerate()
            .map(|(i, r)| a.apply(i as u64 + 1, 1, r))
            .collect();
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
        let (results, written) = apply_all(&store, &lessor, vec![RaftRequest::default()]);
        assert_eq!(results, vec![Applied::Empty]);
        assert!(written.is_empty());
    }

    #[test]
    fn an_expiry_decided_in_another_term_revokes_nothing() {
        let (store, lessor) = (Store::new(), Lessor::new());
        let revoke = |term| {
            let mut r = RaftRequest::system(Req::LeaseRevoke(LeaseRevokeRequest { id: 5 }));
            r.expired_in_term = term;
            r
        };
        // The entries apply in term 1: the expiry decided in term 2 is stale, the one decided
        // in term 1 revokes.
        let (results, _) = apply_all(
            &store,
            &lessor,
            vec![grant(5, 10), put(b"k", 5), revoke(2), revoke(1)],
        );
        assert_eq!(results[2], Applied::Empty);
        assert!(matches!(results[3], Applied::LeaseRevoke(_)));
        assert!(!lessor.exists(5));
    }

    fn as_user(user: &str, revision: u64, r: Req) -> RaftRequest {
        RaftRequest {
            request: Some(r),
            auth: Some(crate::proto::detcdpb::RequestAuth {
                username: user.into(),
                revision,
                system: false,
            }),
            ..Default::default()
        }
    }

    /// Sets up, through applied entries: root, alice with write on `[a, c)`, auth on.
    fn secured(store: &Store, lessor: &Lessor, auth: &AuthStore) -> Vec<WriteOp> {
        use crate::proto::authpb::{permission::Type, Permission};
        let setup = vec![
            request(Req::UserAdd(AuthUserAddRequest {
                name: "root".into(),
                hashed_password: "h".into(),
                ..Default::default()
            })),
            request(Req::UserGrantRole(AuthUserGrantRoleRequest {
                user: "root".into(),
                role: "root".into(),
            })),
            request(Req::UserAdd(AuthUserAddRequest {
                name: "alice".into(),
                hashed_password: "h".into(),
                ..Default::default()
            })),
            request(Req::RoleAdd(AuthRoleAddRequest { name: "w".into() })),
            request(Req::RoleGrantPermission(AuthRoleGrantPermissionRequest {
                name: "w".into(),
                perm: Some(Permission {
                    perm_type: Type::Write as i32,
                    key: b"a".as_slice().into(),
                    range_end: b"c".as_slice().into(),
                }),
            })),
            request(Req::UserGrantRole(AuthUserGrantRoleRequest {
                user: "alice".into(),
                role: "w".into(),
            })),
            request(Req::AuthEnable(AuthEnableRequest {})),
        ];
        let (results, written) = apply_with(store, lessor, auth, setup);
        assert!(
            results.iter().all(|r| matches!(r, Applied::Auth(_))),
            "{results:?}"
        );
        assert!(auth.enabled());
        written
    }

    #[test]
    fn auth_changes_are_applied_into_the_same_batch() {
        let (store, lessor, auth) = (Store::new(), Lessor::new(), AuthStore::default());
        let written = secured(&store, &lessor, &auth);
        assert!(written.iter().any(|op| matches!(op,
            WriteOp::Put(k, _) if k.starts_with(b"s/auth/user/alice"))));
        // Auth changes do not move the key revision.
        assert_eq!(store.current_revision(), 1);
    }

    #[test]
    fn writes_are_judged_by_the_identity_their_entry_carries() {
        let (store, lessor, auth) = (Store::new(), Lessor::new(), AuthStore::default());
        secured(&store, &lessor, &auth);
        let rev = auth.revision();
        let put_as = |user: &str, revision, key: &'static [u8]| {
            let Some(Req::Put(p)) = put(key, 0).request else {
                unreachable!()
            };
            as_user(user, revision, Req::Put(p))
        };
        let (results, _) = apply_with(
            &store,
            &lessor,
            &auth,
            vec![
                put(b"a", 0),
                put_as("alice", rev, b"b"),
                put_as("alice", rev, b"x"),
                put_as("alice", rev - 1, b"b"),
                put_as("root", rev, b"x"),
            ],
        );
        assert_eq!(results[0], Applied::Rejected(Error::UserEmpty));
        assert_eq!(revision_of(&results[1]), 2);
        assert_eq!(results[2], Applied::Rejected(Error::PermissionDenied));
        assert_eq!(results[3], Applied::Rejected(Error::AuthOldRevision));
        assert_eq!(revision_of(&results[4]), 3);
        // A txn is judged by every op, nested ones too; alice may not read.
        let txn = TxnRequest {
            success: vec![crate::proto::etcdserverpb::RequestOp {
                request: Some(crate::proto::etcdserverpb::request_op::Request::RequestTxn(
                    TxnRequest {
                        failure: vec![crate::proto::etcdserverpb::RequestOp {
                            request: Some(
                                crate::proto::etcdserverpb::request_op::Request::RequestPut(
                                    PutRequest {
                                        key: b"zz".as_slice().into(),
                                        ..Default::default()
                                    },
                                ),
                            ),
                        }],
                        ..Default::default()
                    },
                )),
            }],
            ..Default::default()
        };
        let (results, _) = apply_with(
            &store,
            &lessor,
            &auth,
            vec![as_user("alice", rev, Req::Txn(txn))],
        );
        assert_eq!(results[0], Applied::Rejected(Error::PermissionDenied));
        assert_eq!(store.current_revision(), 3);
    }

    #[test]
    fn a_revoke_needs_write_on_every_attached_key_but_expiry_does_not() {
        let (store, lessor, auth) = (Store::new(), Lessor::new(), AuthStore::default());
        secured(&store, &lessor, &auth);
        let rev = auth.revision();
        let root = |r| as_user("root", rev, r);
        let Some(Req::Put(outside)) = put(b"x", 7).request else {
            unreachable!()
        };
        apply_with(
            &store,
            &lessor,
            &auth,
            vec![
                root(Req::LeaseGrant(LeaseGrantRequest { ttl: 60, id: 7 })),
                root(Req::Put(outside)),
            ],
        );
        let revoke = Req::LeaseRevoke(LeaseRevokeRequest { id: 7 });
        let (results, _) = apply_with(
            &store,
            &lessor,
            &auth,
            vec![as_user("alice", rev, revoke.clone())],
        );
        assert_eq!(results[0], Applied::Rejected(Error::PermissionDenied));
        assert!(lessor.exists(7));
        let (results, _) = apply_with(&store, &lessor, &auth, vec![RaftRequest::system(revoke)]);
        assert!(matches!(results[0], Applied::LeaseRevoke(_)), "{results:?}");
        assert!(!lessor.exists(7));
    }

    #[test]
    fn authenticate_issues_a_token_only_at_the_checked_revision() {
        use crate::proto::detcdpb::InternalAuthenticateRequest;
        let (store, lessor, auth) = (Store::new(), Lessor::new(), AuthStore::default());
        secured(&store, &lessor, &auth);
        let login = |checked_revision| {
            request(Req::Authenticate(InternalAuthenticateRequest {
                name: "alice".into(),
                simple_token: "tok".into(),
                checked_revision,
            }))
        };
        let rev = auth.revision();
        let (results, _) = apply_with(&store, &lessor, &auth, vec![login(rev - 1), login(rev)]);
        assert_eq!(results[0], Applied::Rejected(Error::AuthOldRevision));
        let Applied::Auth(a) = &results[1] else {
            panic!("{results:?}")
        };
        // The token names the entry's log index (the second entry of this batch).
        assert_eq!(a.token, "tok.2");
        assert_eq!(
            auth.tokens().resolve("tok.2", 1001).map(|b| b.username),
            Some("alice".to_string())
        );
    }

    #[test]
    fn auth_changes_by_a_non_root_user_are_refused() {
        let (store, lessor, auth) = (Store::new(), Lessor::new(), AuthStore::default());
        secured(&store, &lessor, &auth);
        let rev = auth.revision();
        let (results, _) = apply_with(
            &store,
            &lessor,
            &auth,
            vec![
                as_user("alice", rev, Req::AuthDisable(AuthDisableRequest {})),
                request(Req::RoleAdd(AuthRoleAddRequest { name: "x".into() })),
            ],
        );
        assert_eq!(results[0], Applied::Rejected(Error::PermissionDenied));
        assert_eq!(results[1], Applied::Rejected(Error::UserEmpty));
        assert!(auth.enabled());
    }

    fn alarm(action: AlarmAction, alarm: AlarmType) -> RaftRequest {
        request(Req::Alarm(AlarmRequest {
            action: action as i32,
            member_id: 9,
            alarm: alarm as i32,
        }))
    }

    #[test]
    fn nospace_refuses_what_takes_space_and_corrupt_refuses_every_write() {
        let (store, lessor, auth) = (Store::new(), Lessor::new(), AuthStore::default());
        let alarms = AlarmStore::default();
        let run = |reqs| apply_alarmed(&store, &lessor, &auth, &alarms, reqs).0;
        let delete = request(Req::DeleteRange(
            crate::proto::etcdserverpb::DeleteRangeRequest {
                key: b"a".as_slice().into(),
                ..Default::default()
            },
        ));
        let deleting_txn = request(Req::Txn(TxnRequest {
            success: vec![crate::proto::etcdserverpb::RequestOp {
                request: Some(Op::RequestDeleteRange(Default::default())),
            }],
            ..Default::default()
        }));
        let results = run(vec![
            put(b"a", 0),
            alarm(AlarmAction::Activate, AlarmType::Nospace),
            put(b"a", 0),
            grant(1, 60),
            delete.clone(),
            deleting_txn,
            alarm(AlarmAction::Get, AlarmType::None),
        ]);
        assert_eq!(revision_of(&results[0]), 2);
        assert!(matches!(&results[1], Applied::Alarm(r) if r.alarms.len() == 1));
        assert_eq!(results[2], Applied::Rejected(Error::NoSpace));
        assert_eq!(results[3], Applied::Rejected(Error::NoSpace));
        assert!(
            matches!(results[4], Applied::DeleteRange(_)),
            "{:?}",
            results[4]
        );
        assert!(matches!(results[5], Applied::Txn(_)), "{:?}", results[5]);
        assert!(matches!(&results[6], Applied::Alarm(r) if r.alarms[0].member_id == 9));
        let results = run(vec![
            alarm(AlarmAction::Deactivate, AlarmType::Nospace),
            alarm(AlarmAction::Deactivate, AlarmType::Nospace),
            put(b"a", 0),
            alarm(AlarmAction::Activate, AlarmType::Corrupt),
            delete,
        ]);
        assert!(matches!(&results[0], Applied::Alarm(r) if r.alarms.len() == 1));
        assert!(matches!(&results[1], Applied::Alarm(r) if r.alarms.is_empty()));
        assert!(matches!(results[2], Applied::Put(_)));
        assert_eq!(results[4], Applied::Rejected(Error::Corrupt));
    }
}
