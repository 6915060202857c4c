//! Membership changes through etcd's Cluster service, as an operator would make them with
//! `etcdctl member add/promote/remove`: the harness asks a live member, then starts (with
//! `--initial-cluster-state existing`) or forgets the simulated node.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use detcd::config::InitialMember;
use detcd::proto::etcdserverpb::cluster_client::ClusterClient;
use detcd::proto::etcdserverpb::{
    MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest,
};

use super::{addresses, SimCluster};

/// How long one membership call may take before the next member is asked.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts over the live members before giving up.
const ATTEMPTS: usize = 6;

/// Which membership call to make.
#[derive(Debug, Clone, Copy)]
enum Call {
    AddLearner,
    Promote,
    Remove,
}

/// A member as the cluster lists it: its ID, and whether it is a learner.
#[derive(Debug, Clone, Copy)]
struct Listed {
    id: u64,
    learner: bool,
}

/// Makes `call` about the member with `peer_url` / `id` through the first member of `urls`
/// that answers; `Ok` once it succeeded. Afterwards (also after an ambiguous failure) the
/// member list is read to learn whether the change is in force: returns the member as now
/// listed, if it is.
async fn call(
    urls: Vec<String>,
    what: Call,
    peer_url: String,
    id: u64,
) -> Result<Option<Listed>, String> {
    let mut last = String::from("no member to ask");
    for attempt in 0..ATTEMPTS {
        let url = &urls[attempt % urls.len()];
        let Ok(mut c) = ClusterClient::connect(url.clone()).await else {
            continue;
        };
        let r = match what {
            Call::AddLearner => tokio::time::timeout(
                CALL_TIMEOUT,
                c.member_add(MemberAddRequest {
                    peer_ur_ls: vec![peer_url.clone()],
                    is_learner: true,
                }),
            )
            .await
            .map(|r| r.map(|_| ())),
            Call::Promote => {
                tokio::time::timeout(CALL_TIMEOUT, c.member_promote(MemberPromoteRequest { id }))
                    .await
                    .map(|r| r.map(|_| ()))
            }
            Call::Remove => {
                tokio::time::timeout(CALL_TIMEOUT, c.member_remove(MemberRemoveRequest { id }))
                    .await
                    .map(|r| r.map(|_| ()))
            }
        };
        match r {
            Ok(Ok(())) => break,
            Ok(Err(status)) => last = status.message().to_string(),
            Err(_) => last = "timed out".to_string(),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Whatever the answers were, the member list says what is in force.
    for url in &urls {
        let Ok(mut c) = ClusterClient::connect(url.clone()).await else {
            continue;
        };
        let list = tokio::time::timeout(
            CALL_TIMEOUT,
            c.member_list(MemberListRequest { linearizable: true }),
        )
        .await;
        if let Ok(Ok(list)) = list {
            return Ok(list
                .into_inner()
                .members
                .iter()
                .find(|m| m.peer_ur_ls.contains(&peer_url))
                .map(|m| Listed {
                    id: m.id,
                    learner: m.is_learner,
                }));
        }
    }
    Err(format!(
        "no member answered the member list (last error: {last})"
    ))
}

/// The peer URLs of the members `url` lists; `None` if it does not answer.
async fn list(url: String) -> Option<Vec<String>> {
    let mut c = ClusterClient::connect(url).await.ok()?;
    let r = tokio::time::timeout(
        CALL_TIMEOUT,
        c.member_list(MemberListRequest { linearizable: true }),
    )
    .await
    .ok()?
    .ok()?;
    Some(
        r.into_inner()
            .members
            .into_iter()
            .flat_map(|m| m.peer_ur_ls)
            .collect(),
    )
}

impl SimCluster {
    /// The members the cluster itself lists, by number, with the number of the member that
    /// told: the leader if one says so, else the first live member that answers. (The
    /// harness' own view can be wrong after an ambiguous membership call, and a removed member
    /// that never learnt of its removal still lists itself.)
    pub async fn listed_members(&self) -> Option<(usize, Vec<usize>)> {
        let urls = self.client_urls();
        let mut ask = self.live();
        if let Some(l) = self.leader().await {
            ask.retain(|i| *i != l);
            ask.insert(0, l);
        }
        for i in ask {
            if let Some(peers) = self.client(list(urls[i].clone())).await {
                let listed = (0..self.len())
                    .filter(|j| peers.contains(&addresses(*j).1))
                    .collect();
                return Some((i, listed));
            }
        }
        None
    }

    fn live_urls(&self) -> Vec<String> {
        let urls = self.client_urls();
        self.live().into_iter().map(|i| urls[i].clone()).collect()
    }

    /// Adds member `j` (which must be the next number) as a learner and starts it with
    /// `--initial-cluster-state existing`. Returns what happened, for the trace.
    pub async fn add_learner(&self, j: usize) -> String {
        if j != self.len() {
            return format!("skipped: the next member is n{}", self.len() + 1);
        }
        let urls = self.live_urls();
        if urls.is_empty() {
            return "skipped: no live member".to_string();
        }
        let (name, peer_url, _) = addresses(j);
        let id = match self
            .client(call(urls, Call::AddLearner, peer_url.clone(), 0))
            .await
        {
            Ok(Some(listed)) => listed.id,
            Ok(None) => return "member add did not take effect".to_string(),
            Err(e) => return format!("member add unknown: {e}"),
        };
        let mut initial: Vec<InitialMember> = self
            .members()
            .into_iter()
            .map(|i| {
                let (name, peer, _) = addresses(i);
                InitialMember {
                    name,
                    peer_urls: vec![peer],
                }
            })
            .collect();
        initial.push(InitialMember {
            name,
            peer_urls: vec![peer_url],
        });
        self.spawn_member(initial, Some(id));
        "added as a learner and started".to_string()
    }

    /// Promotes learner `j` to a voting member, retrying while it is not yet in sync.
    pub async fn promote(&self, j: usize) -> String {
        let Some(node) = self.node(j) else {
            return "skipped: no such member".to_string();
        };
        for _ in 0..5 {
            let urls = self.live_urls();
            if urls.is_empty() {
                return "skipped: no live member".to_string();
            }
            match self
                .client(call(
                    urls,
                    Call::Promote,
                    node.peer_url.clone(),
                    node.member_id,
                ))
                .await
            {
                Ok(Some(Listed { learner: false, .. })) => return "promoted".to_string(),
                Ok(None) => return "skipped: not a member".to_string(),
                Ok(Some(Listed { learner: true, .. })) => {
                    tokio::time::sleep(Duration::from_millis(500)).await
                }
                Err(e) => return format!("promotion unknown: {e}"),
            }
        }
        "still a learner (not in sync)".to_string()
    }

    /// Removes member `i` from the cluster; its server stops by itself.
    pub async fn remove(&self, i: usize) -> String {
        let Some(node) = self.node(i) else {
            return "skipped: no such member".to_string();
        };
        let urls: Vec<String> = self
            .live_urls()
            .into_iter()
            .filter(|u| *u != node.client_url)
            .collect();
        if urls.is_empty() {
            return "skipped: no other live member".to_string();
        }
        match self
            .client(call(
                urls,
                Call::Remove,
                node.peer_url.clone(),
                node.member_id,
            ))
            .await
        {
            Ok(None) => {
                self.mark_removed(i);
                "removed".to_string()
            }
            Ok(Some(_)) => "still a member".to_string(),
            Err(e) => format!("removal unknown: {e}"),
        }
    }
}
