//! `detcd snapshot restore`: a new data dir from a snapshot in etcd's format — taken from real
//! etcd 3.4/3.5 (`etcdctl snapshot save`) or from detcd — the migration path from an etcd cluster.
//! As with `etcdctl snapshot restore`, the snapshot's keys (with their history), compaction,
//! leases, users, roles and alarms are kept and its membership is replaced by the one the flags
//! name; every member of the new cluster is restored from the same file with the same flags.
//!
//! The data dir is written as if its member had applied the log up to the snapshot's
//! `consistent_index` (at term 1) and purged it there: raft starts from that index, and the new
//! cluster elects a leader in term 2.

use std::collections::{BTreeMap, BTreeSet};

use openraft::storage::RaftLogStorage;
use openraft::{CommittedLeaderId, LogId, Membership, StoredMembership};

use crate::auth::AuthStore;
use crate::cluster::{cluster_id, member_id, Member};
use crate::config::InitialMember;
use crate::io::disk::WriteBatch;
use crate::io::Disk;
use crate::lease::lessor;
use crate::mvcc::{store as mvcc_store, Revision};
use crate::raft::log_store::LogStore;
use crate::raft::{state_machine, wal};

use super::etcd_db;

/// What `detcd snapshot restore` is asked for (etcdctl's restore flags).
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// `--name`: the member this data dir is for.
    pub name: String,
    /// `--initial-cluster`.
    pub initial_cluster: Vec<InitialMember>,
    /// `--initial-cluster-token`.
    pub initial_cluster_token: String,
    /// `--initial-advertise-peer-urls`.
    pub initial_advertise_peer_urls: Vec<String>,
    /// `--skip-hash-check`: accept a snapshot without its SHA-256 trailer (a copied `db` file).
    pub skip_hash_check: bool,
}

/// What a restore wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// This member's ID.
    pub member_id: u64,
    /// The new cluster's ID.
    pub cluster_id: u64,
    /// The store revision restored.
    pub revision: i64,
    /// The raft index the member starts after.
    pub index: u64,
}

/// Restores `snapshot` onto `disk`, which must hold nothing yet.
pub async fn restore(
    snapshot: &[u8],
    opts: &RestoreOptions,
    disk: &Disk,
) -> Result<Restored, String> {
    let db = if opts.skip_hash_check {
        super::db_part(snapshot).map_err(|e| e.to_string())?
    } else {
        super::split_checksum(snapshot).map_err(|e| e.to_string())?
    };
    let content = etcd_db::read(db).map_err(|e| format!("reading the snapshot: {e}"))?;
    if disk.get(b"s/applied").map_err(|e| e.to_string())?.is_some()
        || !disk.scan(b"k", b"l").map_err(|e| e.to_string())?.is_empty()
    {
        return Err("the data dir already holds data; restore into a new one".into());
    }
    let mut members = BTreeMap::new();
    for m in &opts.initial_cluster {
        let id = member_id(&m.peer_urls, &opts.initial_cluster_token);
        let member = Member {
            name: m.name.clone(),
            peer_urls: m.peer_urls.clone(),
            client_urls: vec![],
            added_as_voter: false,
        };
        if members.insert(id, member).is_some() {
            return Err(format!(
                "--initial-cluster has duplicate peer URLs for {}",
                m.name
            ));
        }
    }
    let me = member_id(
        &opts.initial_advertise_peer_urls,
        &opts.initial_cluster_token,
    );
    if members.get(&me).is_none_or(|m| m.name != opts.name) {
        return Err(format!(
            "member {} with peer URLs {} is not in --initial-cluster",
            opts.name,
            opts.initial_advertise_peer_urls.join(",")
        ));
    }
    let ids: Vec<u64> = members.keys().copied().collect();
    let cid = cluster_id(&ids);

    let mut b = WriteBatch::new();
    let mut revision = 1;
    for r in &content.revisions {
        let rev = Revision {
            main: r.revision.main,
            sub: r.revision.sub,
        };
        mvcc_store::restore_record(&mut b, rev, &r.kv, r.tombstone);
        revision = revision.max(rev.main);
    }
    let compacted = content.finished_compact.unwrap_or(0).min(revision);
    mvcc_store::restore_meta(&mut b, revision, compacted);
    for l in &content.leases {
        lessor::restore_record(&mut b, l.id, l.ttl, l.remaining_ttl);
    }
    AuthStore::restore_records(
        &mut b,
        content.auth_enabled,
        content.auth_revision,
        &content.users,
        &content.roles,
    );
    let alarms = crate::alarm::AlarmStore::default();
    for a in &content.alarms {
        alarms.activate(a.member_id, a.alarm, &mut b);
    }
    crate::member::identity::identity_records(&mut b, me, cid);
    let index = content.consistent_index.max(1);
    let applied = LogId::new(CommittedLeaderId::new(1, me), index);
    let voters: BTreeSet<u64> = ids.iter().copied().collect();
    let membership = StoredMembership::new(Some(applied), Membership::new(vec![voters], members));
    state_machine::restore_records(&mut b, applied, membership);
    disk.write(b).map_err(|e| e.to_string())?;
    disk.sync().await.map_err(|e| e.to_string())?;
    // The log starts after the snapshot: nothing to replay, nothing before it to ask for.
    let mut log = LogStore::open(disk.clone(), wal::DEFAULT_SEGMENT_BYTES)
        .await
        .map_err(|e| e.to_string())?;
    log.purge(applied).await.map_err(|e| e.to_string())?;
    Ok(Restored {
        member_id: me,
        cluster_id: cid,
        revision,
        index,
    })
}
