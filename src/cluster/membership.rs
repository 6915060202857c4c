//! Membership changes as etcd defines them (MemberAdd, MemberRemove, MemberUpdate,
//! MemberPromote, and a member publishing its attributes), validated and executed on the leader:
//! only the leader knows how far each learner has replicated, and only it can commit the change.
//! A follower forwards the whole operation.

use std::collections::{BTreeMap, BTreeSet};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, Raft};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::raft::TypeConfig;

use super::Member;

/// One membership operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MembershipOp {
    /// Add a member (as a learner, or as a voter).
    Add {
        id: u64,
        peer_urls: Vec<String>,
        learner: bool,
    },
    /// Remove a member.
    Remove { id: u64 },
    /// Change a member's peer URLs.
    Update { id: u64, peer_urls: Vec<String> },
    /// Make a learner a voter.
    Promote { id: u64 },
    /// A member announces its name and client URLs.
    Publish { id: u64, member: Member },
}

/// A member as `MemberList` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Member ID.
    pub id: u64,
    /// Name, URLs.
    pub member: Member,
    /// Not (yet) a voter.
    pub learner: bool,
}

/// The members of a raft node's current (latest, possibly not yet committed) membership, in ID
/// order: what membership changes are validated against.
pub fn members(raft: &Raft<TypeConfig>) -> Vec<MemberInfo> {
    let metrics = raft.metrics().borrow().clone();
    members_of(metrics.membership_config.membership())
}

/// The members of membership `m`, in ID order.
pub fn members_of(m: &openraft::Membership<u64, Member>) -> Vec<MemberInfo> {
    let voters: BTreeSet<u64> = m.voter_ids().collect();
    m.nodes()
        .map(|(id, node)| MemberInfo {
            id: *id,
            member: node.clone(),
            learner: !voters.contains(id),
        })
        .collect()
}

/// Checks that peer URLs parse as etcd URLs (scheme, host, port).
pub fn check_urls(urls: &[String]) -> Result<(), Error> {
    if urls.is_empty() {
        return Err(Error::MemberBadUrls);
    }
    for u in urls {
        let rest = u
            .strip_prefix("http://")
            .or_else(|| u.strip_prefix("https://"))
            .ok_or(Error::MemberBadUrls)?;
        let (host, port) = rest
            .trim_end_matches('/')
            .rsplit_once(':')
            .ok_or(Error::MemberBadUrls)?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(Error::MemberBadUrls);
        }
    }
    Ok(())
}

fn change_error(e: RaftError<u64, ClientWriteError<u64, Member>>) -> Error {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => Error::NoLeader,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            tracing::info!("membership change refused: {e}");
            Error::NotEnoughStartedMembers
        }
        RaftError::Fatal(_) => Error::Stopped,
    }
}

async fn commit(
    raft: &Raft<TypeConfig>,
    change: ChangeMembers<u64, Member>,
    retain: bool,
) -> Result<(), Error> {
    raft.change_membership(change, retain)
        .await
        .map(|_| ())
        .map_err(change_error)
}

/// Validates and commits `op`; must run on the leader (answers `NoLeader` elsewhere). Returns
/// the members afterwards.
pub async fn execute(raft: &Raft<TypeConfig>, op: MembershipOp) -> Result<Vec<MemberInfo>, Error> {
    let metrics = raft.metrics().borrow().clone();
    if metrics.current_leader != Some(metrics.id) {
        return Err(Error::NoLeader);
    }
    let current = members(raft);
    let find = |id: u64| {
        current
            .iter()
            .find(|m| m.id == id)
            .ok_or(Error::MemberNotFound)
    };
    let url_taken = |urls: &[String], except: Option<u64>| {
        current
            .iter()
            .any(|m| Some(m.id) != except && m.member.peer_urls.iter().any(|u| urls.contains(u)))
    };
    match op {
        MembershipOp::Add {
            id,
            peer_urls,
            learner,
        } => {
            check_urls(&peer_urls)?;
            if url_taken(&peer_urls, None) {
                return Err(Error::PeerUrlExists);
            }
            if learner && current.iter().any(|m| m.learner) {
                return Err(Error::TooManyLearners);
            }
            let member = Member {
                name: String::new(),
                peer_urls,
                client_urls: vec![],
            };
            commit(
                raft,
                ChangeMembers::AddNodes(BTreeMap::from([(id, member)])),
                true,
            )
            .await?;
            if !learner {
                commit(raft, ChangeMembers::AddVoterIds(BTreeSet::from([id])), true).await?;
            }
        }
        MembershipOp::Remove { id } => {
            let m = find(id)?;
            if m.learner {
                commit(
                    raft,
                    ChangeMembers::RemoveNodes(BTreeSet::from([id])),
                    false,
                )
                .await?;
            } else {
                if current.iter().filter(|m| !m.learner).count() == 1 {
                    return Err(Error::NotEnoughStartedMembers);
                }
                commit(
                    raft,
                    ChangeMembers::RemoveVoters(BTreeSet::from([id])),
                    false,
                )
                .await?;
            }
        }
        MembershipOp::Update { id, peer_urls } => {
            check_urls(&peer_urls)?;
            let m = find(id)?.member.clone();
            if url_taken(&peer_urls, Some(id)) {
                return Err(Error::PeerUrlExists);
            }
            let updated = Member { peer_urls, ..m };
            commit(
                raft,
                ChangeMembers::SetNodes(BTreeMap::from([(id, updated)])),
                true,
            )
            .await?;
        }
        MembershipOp::Promote { id } => {
            if !find(id)?.learner {
                return Err(Error::MemberNotLearner);
            }
            // etcd's rule: the learner must have replicated at least 90% of the leader's log.
            let leader_last = metrics.last_log_index.unwrap_or(0);
            let matched = metrics
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).copied().flatten())
                .map_or(0, |l| l.index);
            if leader_last == 0 || matched * 100 < leader_last * 90 {
                return Err(Error::LearnerNotReady);
            }
            commit(raft, ChangeMembers::AddVoterIds(BTreeSet::from([id])), true).await?;
        }
        MembershipOp::Publish { id, member } => {
            find(id)?;
            commit(
                raft,
                ChangeMembers::SetNodes(BTreeMap::from([(id, member)])),
                true,
            )
            .await?;
        }
    }
    Ok(members(raft))
}

/// etcd's ID for a member added at runtime: SHA-1 over its sorted peer URLs and the time of the
/// request (Unix seconds), first 8 bytes big-endian.
pub fn new_member_id(peer_urls: &[String], unix_secs: i64) -> u64 {
    super::member_id(peer_urls, &unix_secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_validation() {
        assert!(check_urls(&["http://127.0.0.1:2380".into()]).is_ok());
        assert_eq!(check_urls(&[]), Err(Error::MemberBadUrls));
        assert_eq!(
            check_urls(&["127.0.0.1:2380".into()]),
            Err(Error::MemberBadUrls)
        );
        assert_eq!(
            check_urls(&["http://127.0.0.1".into()]),
            Err(Error::MemberBadUrls)
        );
        assert_eq!(
            check_urls(&["http://:80".into()]),
            Err(Error::MemberBadUrls)
        );
    }
}
