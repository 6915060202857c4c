//! Who this member is in which cluster: read back from the data dir if it was bootstrapped
//! before (flags like the cluster token only matter at bootstrap, as in etcd), derived from the
//! flags for a new cluster, or learned from the running members when joining one.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::cluster::membership::MemberInfo;
use crate::cluster::{cluster_id, member_id, Member};
use crate::config::Config;
use crate::io::disk::WriteBatch;
use crate::io::net::Dialer;
use crate::io::Disk;
use crate::raft::RaftNode;

use super::StartError;

const MEMBER_ID_KEY: &[u8] = b"c/member_id";
const CLUSTER_ID_KEY: &[u8] = b"c/cluster_id";
/// Present when this member joined a running cluster: it must never bootstrap a membership of
/// its own, even if it restarts before the leader first replicated to it.
const JOINED_KEY: &[u8] = b"c/joined";

/// The member and cluster identity: from disk if this data dir was bootstrapped before (flags
/// like the cluster token only matter at bootstrap, as in etcd), else derived from the flags.
pub(super) async fn identity(
    cfg: &Config,
    disk: &Disk,
    dialer: &Dialer,
) -> Result<(u64, u64, BTreeMap<u64, Member>), StartError> {
    // Every member must bootstrap the same first membership entry, so it holds only what all of
    // them know from the flags; each member publishes its client URLs once it runs.
    let mut members = BTreeMap::new();
    for m in &cfg.initial_cluster {
        let id = member_id(&m.peer_urls, &cfg.initial_cluster_token);
        let member = Member {
            name: m.name.clone(),
            peer_urls: m.peer_urls.clone(),
            client_urls: vec![],
            added_as_voter: false,
        };
        if members.insert(id, member).is_some() {
            return Err(format!(
                "--initial-cluster has duplicate peer URLs for member {}",
                m.name
            )
            .into());
        }
    }
    let read = |k: &[u8]| -> Result<Option<u64>, StartError> {
        Ok(disk
            .get(k)?
            .and_then(|v| v[..].try_into().ok().map(u64::from_be_bytes)))
    };
    if let (Some(me), Some(cid)) = (read(MEMBER_ID_KEY)?, read(CLUSTER_ID_KEY)?) {
        if disk.get(JOINED_KEY)?.is_some() {
            // It learns the membership from the leader, however it was started this time.
            return Ok((me, cid, BTreeMap::new()));
        }
        return Ok((me, cid, members));
    }
    if !cfg.initial_cluster_new {
        // Joining a running cluster (after `etcdctl member add`): learn the cluster and our own
        // ID from the other members, by our peer URLs, as etcd does.
        let others: Vec<String> = cfg
            .initial_cluster
            .iter()
            .filter(|m| m.name != cfg.name)
            .flat_map(|m| m.peer_urls.clone())
            .collect();
        let mut mine = cfg.initial_advertise_peer_urls.clone();
        mine.sort();
        let is_me = |m: &MemberInfo| {
            let mut urls = m.member.peer_urls.clone();
            urls.sort();
            urls == mine
        };
        let (cid, current) =
            RaftNode::cluster_info(dialer, &others, |ms| ms.iter().any(is_me)).await?;
        let me = current
            .iter()
            .find(|m| is_me(m))
            .map(|m| m.id)
            .ok_or_else(|| {
                format!(
                    "member with peer URLs {} has not been added to cluster {cid:x}; run `etcdctl member add` first",
                    mine.join(",")
                )
            })?;
        persist_identity(disk, me, cid, true).await?;
        return Ok((me, cid, BTreeMap::new()));
    }
    let me = member_id(&cfg.initial_advertise_peer_urls, &cfg.initial_cluster_token);
    let ids: Vec<u64> = members.keys().copied().collect();
    let cid = cluster_id(&ids);
    persist_identity(disk, me, cid, false).await?;
    Ok((me, cid, members))
}

/// The records naming this data dir's member `me` of cluster `cid` (for a founding member, or
/// one restored from a snapshot).
pub fn identity_records(b: &mut WriteBatch, me: u64, cid: u64) {
    b.put(Bytes::from_static(MEMBER_ID_KEY), me.to_be_bytes().to_vec());
    b.put(
        Bytes::from_static(CLUSTER_ID_KEY),
        cid.to_be_bytes().to_vec(),
    );
}

async fn persist_identity(disk: &Disk, me: u64, cid: u64, joined: bool) -> Result<(), StartError> {
    let mut b = WriteBatch::new();
    if joined {
        b.put(Bytes::from_static(JOINED_KEY), vec![1]);
    }
    identity_records(&mut b, me, cid);
    disk.write(b)?;
    disk.sync().await?;
    Ok(())
}
