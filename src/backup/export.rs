//! What a member's applied state is in etcd's backend layout: the content of the snapshot
//! `Maintenance.Snapshot` streams.
//!
//! Everything is read while the store's write lock is held off ([`Store::with_records`]), so
//! the keys, leases, auth store, alarms, membership and applied index are of one applied log
//! index — the snapshot's `consistent_index`, as etcd records it.
//!
//! [`Store::with_records`]: crate::mvcc::Store::with_records

use crate::raft::RaftNode;

use super::etcd_db::{Content, Lease, Member, Revision, RevisionEntry};

/// The cluster version a snapshot records: detcd speaks etcd 3.4's cluster protocol, and etcd
/// 3.4 refuses to start on a data dir of a newer cluster version.
pub const CLUSTER_VERSION: &str = "3.4.0";

/// The applied state of `node` as etcd's backend content.
pub fn content(node: &RaftNode) -> Content {
    node.store().with_records(|records, compacted| {
        let revisions = records
            .into_iter()
            .map(|(rev, key, kv)| {
                let revision = Revision {
                    main: rev.main,
                    sub: rev.sub,
                };
                match kv {
                    Some(kv) => RevisionEntry::put(revision, kv),
                    None => RevisionEntry::tombstone(revision, key),
                }
            })
            .collect();
        let lessor = node.lessor();
        let leases = lessor
            .ids()
            .into_iter()
            .filter_map(|id| {
                lessor.get(id).map(|l| Lease {
                    id,
                    ttl: l.ttl,
                    remaining_ttl: l.remaining,
                })
            })
            .collect();
        let members = node
            .applied_members()
            .into_iter()
            .map(|m| Member {
                is_learner: m.reported_learner(),
                id: m.id,
                peer_urls: m.member.peer_urls,
                name: m.member.name,
                client_urls: m.member.client_urls,
            })
            .collect();
        let (auth_enabled, auth_revision, users, roles) = node.auth().export();
        let compacted = (compacted > 0).then_some(compacted);
        Content {
            revisions,
            consistent_index: node.applied_index().unwrap_or(0),
            scheduled_compact: compacted,
            finished_compact: compacted,
            leases,
            members,
            removed_members: Vec::new(),
            cluster_version: Some(CLUSTER_VERSION.to_string()),
            auth_enabled,
            auth_revision,
            users,
            roles,
            alarms: node.alarms().get(0),
        }
    })
}
