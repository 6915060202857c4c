//! Multi-member clusters of real detcd processes on loopback, driven by the real etcdctl:
//! membership, any member serving any request, and surviving `kill -9` of the leader.

// Real processes and real time: not part of the simulator build.
#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use common::{free_ports, Builder, Kind, Server};

/// A cluster of `n` detcd members; members are killed and temp dirs removed on drop.
struct Cluster {
    members: Vec<Server>,
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| free_ports()).collect();
        let ic = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{}=http://127.0.0.1:{peer}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("test-{}", ports[0].0);
        let mut members: Vec<Server> = ports
            .iter()
            .enumerate()
            .map(|(i, (client, peer))| {
                Builder::new(Kind::Detcd)
                    .name(format!("m{}", i + 1))
                    .ports(*client, *peer)
                    .initial_cluster(ic.clone())
                    .args(["--initial-cluster-token", token.as_str()])
                    .spawn()
            })
            .collect();
        for m in &mut members {
            m.wait_until_ready();
        }
        Cluster { members }
    }

    /// (member id, leader id, raft term) as each running member reports it.
    fn status(&self, i: usize) -> Option<(u64, u64, u64)> {
        let out = self.members[i].etcdctl(&["endpoint", "status", "-w", "json"], None);
        if !out.success() {
            return None;
        }
        let v = out.json();
        let s = &v[0]["Status"];
        Some((
            s["header"]["member_id"].as_u64()?,
            s["leader"].as_u64()?,
            s["raft_term"].as_u64().unwrap_or(0),
        ))
    }

    /// Waits until every member in `alive` agrees on one leader among them; returns its index.
    fn wait_leader(&self, alive: &[usize]) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let st: Vec<_> = alive.iter().map(|&i| self.status(i)).collect();
            if st.iter().all(Option::is_some) {
                let st: Vec<_> = st.into_iter().map(Option::unwrap).collect();
                let leader = st[0].1;
                if leader != 0 && st.iter().all(|s| s.1 == leader) {
                    if let Some(pos) = st.iter().position(|s| s.0 == leader) {
                        return alive[pos];
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader among {alive:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.is_empty()).collect()
}

#[test]
fn three_members_list_status_and_serve_any_request() {
    let c = Cluster::start(3);
    // member list: three started members with their names and URLs.
    let table = c.members[0].ok(&["member", "list", "-w", "table"]);
    for (i, m) in c.members.iter().enumerate() {
        let row = table
            .lines()
            .find(|l| l.contains(&format!(" m{} |", i + 1)))
            .unwrap_or_else(|| panic!("m{} missing:\n{table}", i + 1));
        assert!(row.contains("started"), "{row}");
        assert!(
            row.contains(&m.peer_url()) && row.contains(&m.client_url()),
            "{row}"
        );
    }
    let leader = c.wait_leader(&[0, 1, 2]);
    let (_, leader_id, term) = c.status(leader).unwrap();
    for i in 0..3 {
        let (id, l, t) = c.status(i).unwrap();
        assert_eq!((l, t), (leader_id, term), "member {i} disagrees");
        assert_eq!(id == leader_id, i == leader);
    }
    // Writes through every member (followers forward), reads from every member.
    for (i, m) in c.members.iter().enumerate() {
        assert_eq!(
            m.ok(&["put", &format!("k{i}"), &format!("v{i}")]).trim(),
            "OK"
        );
    }
    for m in &c.members {
        assert_eq!(
            lines(&m.ok(&["get", "k", "--prefix"])),
            ["k0", "v0", "k1", "v1", "k2", "v2"]
        );
        // A serializable read right after this member's own write sees it.
        m.ok(&["put", "mine", "x"]);
        assert_eq!(
            lines(&m.ok(&["get", "mine", "--consistency=s", "--print-value-only"])),
            ["x"]
        );
    }
    // Every member is at the same revision.
    let revs: Vec<i64> = c.members.iter().map(Server::revision).collect();
    assert!(revs.iter().all(|r| *r == revs[0]), "{revs:?}");
}

#[test]
fn leader_kill_9_new_leader_writes_continue_and_it_catches_up() {
    let mut c = Cluster::start(3);
    let old = c.wait_leader(&[0, 1, 2]);
    c.members[old].ok(&["put", "before", "1"]);
    c.members[old].kill_9();
    let alive: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let new = c.wait_leader(&alive);
    assert_ne!(new, old);
    for &i in &alive {
        assert_eq!(
            c.members[i].ok(&["put", &format!("after{i}"), "2"]).trim(),
            "OK"
        );
    }
    for &i in &alive {
        assert_eq!(
            lines(&c.members[i].ok(&["get", "after", "--prefix", "--keys-only"])).len(),
            2
        );
    }
    // The old leader comes back, rejoins as a follower and catches up.
    c.members[old].restart();
    let want = c.members[new].revision();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = c.members[old].etcdctl(
            &["get", "", "--from-key", "--keys-only", "--consistency=s"],
            None,
        );
        if got.success()
            && lines(&got.stdout)
                == [
                    "after".to_string() + &alive[0].to_string(),
                    "after".to_string() + &alive[1].to_string(),
                    "before".to_string(),
                ]
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old leader did not catch up: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(c.members[old].revision(), want);
    assert_eq!(
        c.wait_leader(&[0, 1, 2]),
        new,
        "a restarted member does not disrupt the leader"
    );
}
