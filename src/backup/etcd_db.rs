//! etcd 3.4's backend database (`member/snap/db`, and what a snapshot carries): its buckets and
//! how each key and value is encoded, over the bbolt file of [`super::bbolt`].
//!
//! | bucket | key | value |
//! | --- | --- | --- |
//! | `key` | revision: main u64 BE, `_`, sub u64 BE (17 bytes), + `t` for a tombstone | `mvccpb.KeyValue` (a tombstone's holds only the key) |
//! | `meta` | `consistent_index` | u64 BE |
//! | `meta` | `scheduledCompactRev`, `finishedCompactRev` | a 17-byte revision (sub 0) |
//! | `lease` | lease id, i64 BE | `leasepb.Lease` {ID, TTL, RemainingTTL} |
//! | `members` | member id in lower-case hex | JSON {"id","peerURLs","isLearner"?,"name"?,"clientURLs"?} |
//! | `members_removed` | member id in hex | `removed` |
//! | `cluster` | `clusterVersion` | e.g. `3.4.0` |
//! | `auth` | `authEnabled` / `authRevision` | one byte 1 or 0 (absent until auth is first enabled; written here only when on) / u64 BE |
//! | `authUsers`, `authRoles` | name | `authpb.User`, `authpb.Role` |
//! | `alarm` | `etcdserverpb.AlarmMember` | empty |
//!
//! Reading ignores buckets and meta keys it does not know (etcd 3.5 adds some).

use bytes::Bytes;
use prost::Message;
use serde::{Deserialize, Serialize};

use super::bbolt::{self, Bucket};
use crate::proto::{authpb, etcdserverpb, mvccpb};

const KEY: &[u8] = b"key";
const META: &[u8] = b"meta";
const LEASE: &[u8] = b"lease";
const MEMBERS: &[u8] = b"members";
const MEMBERS_REMOVED: &[u8] = b"members_removed";
const CLUSTER: &[u8] = b"cluster";
const AUTH: &[u8] = b"auth";
const AUTH_USERS: &[u8] = b"authUsers";
const AUTH_ROLES: &[u8] = b"authRoles";
const ALARM: &[u8] = b"alarm";

const CONSISTENT_INDEX: &[u8] = b"consistent_index";
const SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";
const FINISHED_COMPACT: &[u8] = b"finishedCompactRev";
const CLUSTER_VERSION: &[u8] = b"clusterVersion";
const AUTH_ENABLED: &[u8] = b"authEnabled";
const AUTH_REVISION: &[u8] = b"authRevision";
const TOMBSTONE: u8 = b't';
const REMOVED: &[u8] = b"removed";

/// Why a file is not an etcd database this module understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not a readable bbolt file.
    #[error(transparent)]
    Bbolt(#[from] bbolt::Error),
    /// A key or value of a known bucket is not encoded as etcd 3.4 encodes it.
    #[error("bad {bucket} entry: {why}")]
    Entry {
        /// The bucket.
        bucket: &'static str,
        /// What is wrong.
        why: String,
    },
}

fn bad(bucket: &'static str, why: impl Into<String>) -> Error {
    Error::Entry {
        bucket,
        why: why.into(),
    }
}

/// Everything an etcd 3.4 backend database holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Content {
    /// Every revision kept in the `key` bucket, in revision order.
    pub revisions: Vec<RevisionEntry>,
    /// The raft index the database has applied (`meta/consistent_index`).
    pub consistent_index: u64,
    /// The main revision of the last compaction scheduled, if any.
    pub scheduled_compact: Option<i64>,
    /// The main revision of the last compaction finished, if any.
    pub finished_compact: Option<i64>,
    /// Granted leases.
    pub leases: Vec<Lease>,
    /// The cluster's members.
    pub members: Vec<Member>,
    /// Ids of removed members.
    pub removed_members: Vec<u64>,
    /// The cluster version (`3.4.0`), once decided.
    pub cluster_version: Option<String>,
    /// Whether auth is on (`authEnabled` is 1).
    pub auth_enabled: bool,
    /// The auth store's revision.
    pub auth_revision: u64,
    /// Users, with their bcrypt password hashes.
    pub users: Vec<authpb::User>,
    /// Roles.
    pub roles: Vec<authpb::Role>,
    /// Raised alarms.
    pub alarms: Vec<etcdserverpb::AlarmMember>,
}

/// An mvcc revision: the main revision of a write and the index of a change within it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Revision {
    /// The store revision of the write.
    pub main: i64,
    /// The change's index within that write.
    pub sub: i64,
}

impl Revision {
    /// etcd's 17-byte key for the revision: main u64 big-endian, `_`, sub u64 big-endian.
    pub fn to_bytes(self) -> [u8; 17] {
        let mut b = [0u8; 17];
        b[..8].copy_from_slice(&(self.main as u64).to_be_bytes());
        b[8] = b'_';
        b[9..].copy_from_slice(&(self.sub as u64).to_be_bytes());
        b
    }

    /// Parses the first 17 bytes of a revision key.
    pub fn from_bytes(b: &[u8]) -> Option<Revision> {
        if b.len() < 17 {
            return None;
        }
        Some(Revision {
            main: i64::from_be_bytes(b[..8].try_into().ok()?),
            sub: i64::from_be_bytes(b[9..17].try_into().ok()?),
        })
    }
}

/// One entry of the `key` bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RevisionEntry {
    /// Where the change happened.
    pub revision: Revision,
    /// A deletion (its `kv` carries only the key).
    pub tombstone: bool,
    /// The key's state written at that revision.
    pub kv: mvccpb::KeyValue,
}

impl RevisionEntry {
    /// A put at `revision`.
    pub fn put(revision: Revision, kv: mvccpb::KeyValue) -> RevisionEntry {
        RevisionEntry {
            revision,
            tombstone: false,
            kv,
        }
    }

    /// A deletion of `key` at `revision`, encoded as etcd encodes it.
    pub fn tombstone(revision: Revision, key: impl Into<Bytes>) -> RevisionEntry {
        RevisionEntry {
            revision,
            tombstone: true,
            kv: mvccpb::KeyValue {
                key: key.into(),
                ..Default::default()
            },
        }
    }
}

/// etcd's `leasepb.Lease`, as the `lease` bucket stores it.
#[derive(Clone, Copy, PartialEq, Eq, Message)]
pub struct Lease {
    /// The lease id.
    #[prost(int64, tag = "1")]
    pub id: i64,
    /// Its granted TTL in seconds.
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    /// Remaining TTL from the last checkpoint (0: none; etcd 3.4 checkpoints only with
    /// `--experimental-enable-lease-checkpoint`).
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}

/// A cluster member as the `members` bucket stores it (etcd's membership.Member as JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member id (a JSON number).
    pub id: u64,
    /// Peer URLs.
    #[serde(rename = "peerURLs", default, deserialize_with = "null_as_empty")]
    pub peer_urls: Vec<String>,
    /// A learner (non-voting) member.
    #[serde(rename = "isLearner", default, skip_serializing_if = "is_false")]
    pub is_learner: bool,
    /// The name; empty until the member published its attributes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Client URLs; empty until the member published its attributes.
    #[serde(
        rename = "clientURLs",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub client_urls: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Go marshals a nil slice as `null`.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// The bbolt file holding `content`, with every bucket etcd 3.4 creates (empty ones too).
pub fn write(content: &Content) -> Vec<u8> {
    bbolt::write(&to_buckets(content))
}

/// The buckets of `content`.
pub fn to_buckets(c: &Content) -> Bucket {
    let mut root = Bucket::new();
    let key = root.bucket_mut(KEY);
    for r in &c.revisions {
        let mut k = r.revision.to_bytes().to_vec();
        if r.tombstone {
            k.push(TOMBSTONE);
        }
        key.put(k, r.kv.encode_to_vec());
    }
    let meta = root.bucket_mut(META);
    meta.put(CONSISTENT_INDEX, c.consistent_index.to_be_bytes());
    for (name, rev) in [
        (SCHEDULED_COMPACT, c.scheduled_compact),
        (FINISHED_COMPACT, c.finished_compact),
    ] {
        if let Some(main) = rev {
            meta.put(name, Revision { main, sub: 0 }.to_bytes());
        }
    }
    let lease = root.bucket_mut(LEASE);
    for l in &c.leases {
        lease.put(l.id.to_be_bytes(), l.encode_to_vec());
    }
    let members = root.bucket_mut(MEMBERS);
    for m in &c.members {
        let json = serde_json::to_vec(m).expect("a member always serializes");
        members.put(format!("{:x}", m.id), json);
    }
    let removed = root.bucket_mut(MEMBERS_REMOVED);
    for id in &c.removed_members {
        removed.put(format!("{id:x}"), REMOVED);
    }
    let cluster = root.bucket_mut(CLUSTER);
    if let Some(v) = &c.cluster_version {
        cluster.put(CLUSTER_VERSION, v.as_bytes());
    }
    let auth = root.bucket_mut(AUTH);
    if c.auth_enabled {
        auth.put(AUTH_ENABLED, [1u8]);
    }
    auth.put(AUTH_REVISION, c.auth_revision.to_be_bytes());
    let users = root.bucket_mut(AUTH_USERS);
    for u in &c.users {
        users.put(u.name.to_vec(), u.encode_to_vec());
    }
    let roles = root.bucket_mut(AUTH_ROLES);
    for r in &c.roles {
        roles.put(r.name.to_vec(), r.encode_to_vec());
    }
    let alarm = root.bucket_mut(ALARM);
    for a in &c.alarms {
        alarm.put(a.encode_to_vec(), Vec::new());
    }
    root
}

/// The content of an etcd backend database file (without a snapshot's checksum trailer; see
/// [`super::split_checksum`]). Missing buckets read as empty.
pub fn read(file: &[u8]) -> Result<Content, Error> {
    from_buckets(&bbolt::read(file)?)
}

/// The content of etcd's buckets under `root`.
pub fn from_buckets(root: &Bucket) -> Result<Content, Error> {
    let empty = Bucket::new();
    let bucket = |name: &[u8]| root.bucket(name).unwrap_or(&empty);
    let mut c = Content::default();

    for (k, v) in bucket(KEY).values() {
        let tombstone = match k.len() {
            17 => false,
            18 if k[17] == TOMBSTONE => true,
            _ => return Err(bad("key", format!("revision key {k:?}"))),
        };
        let revision = Revision::from_bytes(k).ok_or_else(|| bad("key", "short key"))?;
        let kv = mvccpb::KeyValue::decode(v).map_err(|e| bad("key", e.to_string()))?;
        c.revisions.push(RevisionEntry {
            revision,
            tombstone,
            kv,
        });
    }

    let meta = bucket(META);
    if let Some(v) = meta.get(CONSISTENT_INDEX) {
        c.consistent_index = u64_be(v).ok_or_else(|| bad("meta", "consistent_index"))?;
    }
    for (name, slot) in [
        (SCHEDULED_COMPACT, &mut c.scheduled_compact),
        (FINISHED_COMPACT, &mut c.finished_compact),
    ] {
        if let Some(v) = meta.get(name) {
            let rev = Revision::from_bytes(v).ok_or_else(|| bad("meta", "compact revision"))?;
            *slot = Some(rev.main);
        }
    }

    for (_, v) in bucket(LEASE).values() {
        c.leases
            .push(Lease::decode(v).map_err(|e| bad("lease", e.to_string()))?);
    }
    for (_, v) in bucket(MEMBERS).values() {
        let m: Member = serde_json::from_slice(v).map_err(|e| bad("members", e.to_string()))?;
        c.members.push(m);
    }
    for (k, _) in bucket(MEMBERS_REMOVED).values() {
        let id = std::str::from_utf8(k)
            .ok()
            .and_then(|s| u64::from_str_radix(s, 16).ok())
            .ok_or_else(|| bad("members_removed", format!("member id {k:?}")))?;
        c.removed_members.push(id);
    }
    if let Some(v) = bucket(CLUSTER).get(CLUSTER_VERSION) {
        let v = String::from_utf8(v.to_vec()).map_err(|e| bad("cluster", e.to_string()))?;
        c.cluster_version = Some(v);
    }
    let auth = bucket(AUTH);
    c.auth_enabled = auth.get(AUTH_ENABLED) == Some(&[1u8][..]);
    if let Some(v) = auth.get(AUTH_REVISION) {
        c.auth_revision = u64_be(v).ok_or_else(|| bad("auth", "authRevision"))?;
    }
    for (_, v) in bucket(AUTH_USERS).values() {
        c.users
            .push(authpb::User::decode(v).map_err(|e| bad("authUsers", e.to_string()))?);
    }
    for (_, v) in bucket(AUTH_ROLES).values() {
        c.roles
            .push(authpb::Role::decode(v).map_err(|e| bad("authRoles", e.to_string()))?);
    }
    for (k, _) in bucket(ALARM).values() {
        let a = etcdserverpb::AlarmMember::decode(k).map_err(|e| bad("alarm", e.to_string()))?;
        c.alarms.push(a);
    }
    Ok(c)
}

fn u64_be(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

#[cfg(test)]
#[path = "etcd_db_tests.rs"]
mod tests;
