//! Membership changes as etcd defines them (MemberAdd, MemberRemove, MemberUpdate,
//! MemberPromote, and a member publishing its attributes): each is checked against the current
//! members with etcd's rules and planned as openraft membership steps ([`plan`], pure). The
//! leader executes the plan (`raft::membership`): only it knows how far each learner has
//! replicated, and only it can commit the change; a follower forwards the whole operation.

use std::collections::{BTreeMap, BTreeSet};

use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};

use crate::error::Error;

use super::Member;

/// One membership operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MembershipOp {
    /// Add a member (as a learner, or as a voter).
    Add {
        /// The new member's ID.
        id: u64,
        /// Its peer URLs.
        peer_urls: Vec<String>,
        /// Added as a learner (else as a voter).
        learner: bool,
    },
    /// Remove a member.
    Remove {
        /// The member.
        id: u64,
    },
    /// Change a member's peer URLs.
    Update {
        /// The member.
        id: u64,
        /// Its new peer URLs.
        peer_urls: Vec<String>,
    },
    /// Make a learner a voter.
    Promote {
        /// The learner.
        id: u64,
    },
    /// A member announces its name and client URLs.
    Publish {
        /// The member.
        id: u64,
        /// Its name and URLs.
        member: Member,
    },
}

/// A member, and its place in raft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Member ID.
    pub id: u64,
    /// Name, URLs.
    pub member: Member,
    /// Not (yet) a voter in raft.
    pub learner: bool,
}

impl MemberInfo {
    /// Whether etcd would call it a learner: one added as a voter is a voter to etcd while raft
    /// still holds it as a learner (see [`Member::added_as_voter`]).
    pub fn reported_learner(&self) -> bool {
        self.learner && !self.member.added_as_voter
    }
}

/// What a member removed from the cluster is told by its former peers (etcd's words), and
/// what it says when it stops.
pub const MEMBER_REMOVED: &str = "the member has been permanently removed from the cluster";

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

/// How far the cluster's log has replicated, as the leader knows it (for promotions).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// The leader's last log index.
    pub leader_last: u64,
    /// The last log index each member is known to hold.
    pub matched: BTreeMap<u64, u64>,
}

/// One openraft membership change of a plan, and whether removed voters stay as learners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The change.
    pub change: ChangeMembers<u64, Member>,
    /// openraft's `retain`: keep removed voters as learners.
    pub retain: bool,
}

fn step(change: ChangeMembers<u64, Member>, retain: bool) -> Step {
    Step { change, retain }
}

/// Checks `op` against the `current` members with etcd's rules and plans it as openraft steps,
/// committed one after the other.
pub fn plan(
    op: MembershipOp,
    current: &[MemberInfo],
    progress: &Progress,
) -> Result<Vec<Step>, Error> {
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
    Ok(match op {
        MembershipOp::Add {
            id,
            peer_urls,
            learner,
        } => {
            check_urls(&peer_urls)?;
            if url_taken(&peer_urls, None) {
                return Err(Error::PeerUrlExists);
            }
            if learner && current.iter().any(MemberInfo::reported_learner) {
                return Err(Error::TooManyLearners);
            }
            // A voter that joint consensus could not commit without (the only voter now plus
            // the new one) starts as a learner and is promoted once caught up.
            let voters = current.iter().filter(|m| !m.learner).count();
            let added_as_voter = !learner && voters == 1;
            let member = Member {
                name: String::new(),
                peer_urls,
                client_urls: vec![],
                added_as_voter,
            };
            let mut steps = vec![step(
                ChangeMembers::AddNodes(BTreeMap::from([(id, member)])),
                true,
            )];
            if !learner && !added_as_voter {
                steps.push(step(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true));
            }
            steps
        }
        MembershipOp::Remove { id } => {
            if find(id)?.learner {
                vec![step(
                    ChangeMembers::RemoveNodes(BTreeSet::from([id])),
                    false,
                )]
            } else {
                if current.iter().filter(|m| !m.learner).count() == 1 {
                    return Err(Error::NotEnoughStartedMembers);
                }
                vec![step(
                    ChangeMembers::RemoveVoters(BTreeSet::from([id])),
                    false,
                )]
            }
        }
        MembershipOp::Update { id, peer_urls } => {
            check_urls(&peer_urls)?;
            let m = find(id)?.member.clone();
            if url_taken(&peer_urls, Some(id)) {
                return Err(Error::PeerUrlExists);
            }
            let updated = Member { peer_urls, ..m };
            vec![step(
                ChangeMembers::SetNodes(BTreeMap::from([(id, updated)])),
                true,
            )]
        }
        MembershipOp::Promote { id } => {
            if !find(id)?.reported_learner() {
                return Err(Error::MemberNotLearner);
            }
            // etcd's rule: the learner must have replicated at least 90% of the leader's log.
            if !caught_up(progress, id) {
                return Err(Error::LearnerNotReady);
            }
            vec![step(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)]
        }
        MembershipOp::Publish { id, mut member } => {
            // Publishing says nothing about the member's place in raft.
            member.added_as_voter = find(id)?.member.added_as_voter;
            vec![step(
                ChangeMembers::SetNodes(BTreeMap::from([(id, member)])),
                true,
            )]
        }
    })
}

/// The members added as voters that raft still holds as learners and that have caught up
/// (etcd's rule for a promotion: 90% of the leader's log): the leader promotes them.
pub fn due_promotions(current: &[MemberInfo], progress: &Progress) -> Vec<u64> {
    current
        .iter()
        .filter(|m| m.learner && m.member.added_as_voter)
        .filter(|m| caught_up(progress, m.id))
        .map(|m| m.id)
        .collect()
}

fn caught_up(progress: &Progress, id: u64) -> bool {
    let matched = progress.matched.get(&id).copied().unwrap_or(0);
    progress.leader_last > 0 && matched * 100 >= progress.leader_last * 90
}

/// etcd's ID for a member added at runtime: SHA-1 over its sorted peer URLs and the time of the
/// request (Unix seconds), first 8 bytes big-endian.
pub fn new_member_id(peer_urls: &[String], unix_secs: i64) -> u64 {
    super::member_id(peer_urls, &unix_secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, port: u16, learner: bool) -> MemberInfo {
        MemberInfo {
            id,
            member: Member {
                name: format!("m{id}"),
                peer_urls: vec![format!("http://127.0.0.1:{port}")],
                client_urls: vec![],
                added_as_voter: false,
            },
            learner,
        }
    }

    #[test]
    fn a_voter_added_to_one_voter_waits_as_a_learner_until_caught_up() {
        let one = vec![member(1, 1, false)];
        let none = Progress::default();
        let add = MembershipOp::Add {
            id: 2,
            peer_urls: vec!["http://127.0.0.1:2".into()],
            learner: false,
        };
        let steps = plan(add, &one, &none).unwrap();
        let [Step {
            change: ChangeMembers::AddNodes(nodes),
            ..
        }] = &steps[..]
        else {
            panic!("one step adding a node: {steps:?}");
        };
        assert!(nodes[&2].added_as_voter);
        // Reported as a voter, so etcd's rules for learners do not apply to it.
        let pending = MemberInfo {
            id: 2,
            member: nodes[&2].clone(),
            learner: true,
        };
        assert!(!pending.reported_learner());
        let both = vec![one[0].clone(), pending];
        assert!(plan(
            MembershipOp::Add {
                id: 3,
                peer_urls: vec!["http://127.0.0.1:3".into()],
                learner: true
            },
            &both,
            &none
        )
        .is_ok());
        assert_eq!(
            plan(MembershipOp::Promote { id: 2 }, &both, &none),
            Err(Error::MemberNotLearner)
        );
        // Publishing its name keeps the flag.
        let publish = MembershipOp::Publish {
            id: 2,
            member: Member {
                name: "two".into(),
                ..Member::default()
            },
        };
        let steps = plan(publish, &both, &none).unwrap();
        assert!(matches!(&steps[0].change, ChangeMembers::SetNodes(n) if n[&2].added_as_voter));
        // Promoted by the leader once caught up, by etcd's 90% rule.
        let behind = Progress {
            leader_last: 100,
            matched: BTreeMap::from([(2, 50)]),
        };
        assert!(due_promotions(&both, &behind).is_empty());
        let close = Progress {
            leader_last: 100,
            matched: BTreeMap::from([(2, 95)]),
        };
        assert_eq!(due_promotions(&both, &close), vec![2]);
        // With two voters a voter is added at once (joint consensus commits without it).
        let two = vec![member(1, 1, false), member(3, 3, false)];
        let add = MembershipOp::Add {
            id: 2,
            peer_urls: vec!["http://127.0.0.1:2".into()],
            learner: false,
        };
        assert_eq!(plan(add, &two, &none).unwrap().len(), 2);
    }

    #[test]
    fn plans_follow_etcds_rules() {
        let voters = vec![member(1, 1, false), member(2, 2, false)];
        let none = Progress::default();
        let add = |id, port: u16, learner| MembershipOp::Add {
            id,
            peer_urls: vec![format!("http://127.0.0.1:{port}")],
            learner,
        };
        assert_eq!(
            plan(add(3, 2, false), &voters, &none),
            Err(Error::PeerUrlExists)
        );
        assert_eq!(
            plan(add(3, 3, false), &voters, &none).unwrap().len(),
            2,
            "learner, then voter"
        );
        assert_eq!(plan(add(3, 3, true), &voters, &none).unwrap().len(), 1);
        let with_learner = vec![member(1, 1, false), member(4, 4, true)];
        assert_eq!(
            plan(add(3, 3, true), &with_learner, &none),
            Err(Error::TooManyLearners)
        );
        assert_eq!(
            plan(MembershipOp::Remove { id: 1 }, &with_learner, &none),
            Err(Error::NotEnoughStartedMembers),
            "the last voter stays"
        );
        assert_eq!(
            plan(MembershipOp::Remove { id: 9 }, &voters, &none),
            Err(Error::MemberNotFound)
        );
        assert_eq!(
            plan(MembershipOp::Promote { id: 1 }, &with_learner, &none),
            Err(Error::MemberNotLearner)
        );
        let behind = Progress {
            leader_last: 100,
            matched: BTreeMap::from([(4, 89)]),
        };
        assert_eq!(
            plan(MembershipOp::Promote { id: 4 }, &with_learner, &behind),
            Err(Error::LearnerNotReady)
        );
        let caught_up = Progress {
            leader_last: 100,
            matched: BTreeMap::from([(4, 90)]),
        };
        assert!(plan(MembershipOp::Promote { id: 4 }, &with_learner, &caught_up).is_ok());
        let update = MembershipOp::Update {
            id: 1,
            peer_urls: vec!["http://127.0.0.1:2".into()],
        };
        assert_eq!(plan(update, &voters, &none), Err(Error::PeerUrlExists));
    }

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
