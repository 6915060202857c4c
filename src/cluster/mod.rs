//! Cluster membership facts: members as etcd describes them, and the member and cluster IDs
//! derived exactly as etcd derives them, so `etcdctl` prints the same hex IDs for the same flags.

pub mod membership;

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

/// A cluster member: the raft node type, and what `MemberList` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// `--name`.
    pub name: String,
    /// `--initial-advertise-peer-urls`.
    pub peer_urls: Vec<String>,
    /// `--advertise-client-urls`.
    pub client_urls: Vec<String>,
    /// MemberAdd asked for a voter, but raft holds the member as a learner until it has caught
    /// up, and then promotes it. Under joint consensus a voter added to a one-voter cluster
    /// could not commit without the new member running, so the add would wait for it; etcd
    /// commits the addition at once. `MemberList` reports such a member as a voter, as etcd.
    #[serde(default)]
    pub added_as_voter: bool,
}

impl Member {
    /// Whether `other` has the same name and URLs (what a member publishes about itself).
    pub fn same_attributes(&self, other: &Member) -> bool {
        (&self.name, &self.peer_urls, &self.client_urls)
            == (&other.name, &other.peer_urls, &other.client_urls)
    }
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.peer_urls.join(","))
    }
}

fn first_u64(hash: &[u8]) -> u64 {
    u64::from_be_bytes(hash[..8].try_into().expect("sha1 is 20 bytes"))
}

/// etcd's member ID: the first 8 bytes (big-endian) of SHA-1 over the sorted peer URLs
/// concatenated, followed by the cluster token.
pub fn member_id(peer_urls: &[String], cluster_token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut h = Sha1::new();
    for u in &urls {
        h.update(u.as_bytes());
    }
    h.update(cluster_token.as_bytes());
    first_u64(&h.finalize())
}

/// etcd's cluster ID: SHA-1 over the sorted member IDs as 8-byte big-endian integers.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    first_u64(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_etcds_defaults() {
        // `etcd` with no flags: member 8e9e05c52164694d in cluster cdf818194e3a8c32.
        let m = member_id(&["http://localhost:2380".to_string()], "etcd-cluster");
        assert_eq!(format!("{m:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[m])), "cdf818194e3a8c32");
    }
}
