//! Multi-member clusters of real detcd processes on loopback, driven by the real etcdctl:
//! membership, any member serving any request, and surviving `kill -9` of the leader.

// Real processes and real time: not part of the simulator build.
#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use common::{free_ports, member_status, start_cluster, wait_leader, Builder, Kind, Server};

/// A cluster of `n` detcd members; members are killed and temp dirs removed on drop.
struct Cluster {
    members: Vec<Server>,
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        Cluster {
            members: start_cluster(n, &[]),
        }
    }

    /// (member id, leader id, raft term) as member `i` reports it.
    fn status(&self, i: usize) -> Option<(u64, u64, u64)> {
        member_status(&self.members[i])
    }

    /// Waits until every member in `alive` agrees on one leader among them; returns its index.
    fn wait_leader(&self, alive: &[usize]) -> usize {
        wait_leader(&self.members, alive)
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
    // `--cluster` dials every member by the URL in the member list (etcdctl then sends the URL as
    // the HTTP/2 authority).
    let st = c.members[0].ok(&["endpoint", "status", "--cluster", "-w", "json"]);
    let st: serde_json::Value = serde_json::from_str(&st).unwrap();
    let st = st.as_array().unwrap();
    assert_eq!(st.len(), 3, "{st:?}");
    let leaders = st
        .iter()
        .filter(|e| e["Status"]["leader"] == e["Status"]["header"]["member_id"])
        .count();
    assert_eq!(leaders, 1, "{st:?}");
    let health = c.members[1].etcdctl(&["endpoint", "health", "--cluster"], None);
    assert!(health.success(), "{health:?}");
    assert_eq!(
        health.stderr.matches("is healthy").count() + health.stdout.matches("is healthy").count(),
        3
    );
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

/// Starts one more member that joins the running cluster `c` (after `member add`).
fn join(c: &Cluster, name: &str, ports: (u16, u16), extra: &[&str]) -> Server {
    let mut ic: Vec<String> = c
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| format!("m{}={}", i + 1, m.peer_url()))
        .collect();
    ic.push(format!("{name}=http://127.0.0.1:{}", ports.1));
    let mut s = Builder::new(Kind::Detcd)
        .name(name)
        .ports(ports.0, ports.1)
        .initial_cluster(ic.join(","))
        .args(["--initial-cluster-state", "existing"])
        .args(extra.iter().copied())
        .spawn();
    s.wait_until_ready();
    s
}

fn member_id(list: &str, peer_url: &str) -> String {
    list.lines()
        .find(|l| l.contains(peer_url))
        .unwrap_or_else(|| panic!("{peer_url} not in\n{list}"))
        .split(',')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn learner_joins_is_promoted_and_members_are_removed() {
    let mut c = Cluster::start(3);
    c.members[0].ok(&["put", "before-join", "1"]);
    let ports = free_ports();
    let peer = format!("http://127.0.0.1:{}", ports.1);
    let added = c.members[1].ok(&[
        "member",
        "add",
        "m4",
        "--learner",
        &format!("--peer-urls={peer}"),
    ]);
    assert!(
        added.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{added}"
    );
    let list = c.members[0].ok(&["member", "list"]);
    let id = member_id(&list, &peer);
    assert!(
        list.lines()
            .any(|l| l.starts_with(&id) && l.contains("unstarted") && l.ends_with("true")),
        "{list}"
    );
    // etcd's errors: the same peer URL again, an unknown member, promoting a voter.
    assert!(c.members[0]
        .err(
            &["member", "add", "x", &format!("--peer-urls={peer}")],
            None
        )
        .contains("etcdserver: Peer URLs already exists"));
    assert!(c.members[0]
        .err(&["member", "remove", "1234"], None)
        .contains("etcdserver: member not found"));
    let voter = member_id(&list, &c.members[0].peer_url());
    assert!(c.members[0]
        .err(&["member", "promote", &voter], None)
        .contains("etcdserver: can only promote a learner member"));

    let mut m4 = join(&c, "m4", ports, &[]);
    assert_eq!(
        lines(&m4.ok(&[
            "get",
            "before-join",
            "--consistency=s",
            "--print-value-only"
        ])),
        ["1"]
    );
    assert!(m4
        .ok(&["endpoint", "status", "-w", "json"])
        .contains("\"isLearner\":true"));
    // Promotion succeeds once the learner has caught up.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = c.members[0].etcdctl(&["member", "promote", &id], None);
        if out.success() {
            break;
        }
        assert!(out.stderr.contains("in sync with leader"), "{out:?}");
        assert!(Instant::now() < deadline, "learner never became promotable");
        std::thread::sleep(Duration::from_millis(200));
    }
    let list = c.members[0].ok(&["member", "list"]);
    assert!(
        list.lines().filter(|l| l.ends_with("false")).count() == 4,
        "{list}"
    );
    // Remove one of the founders; the other three keep serving, and the removed member stops:
    // from its log if the leader replicated the removal to it, else told by a former peer
    // once it campaigns.
    c.members[0].ok(&[
        "member",
        "remove",
        &member_id(&list, &c.members[2].peer_url()),
    ]);
    let list = m4.ok(&["member", "list"]);
    assert_eq!(lines(&list).len(), 3, "{list}");
    assert_eq!(m4.ok(&["put", "after-remove", "1"]).trim(), "OK");
    assert!(
        c.members[2].wait_exit(Duration::from_secs(30)).is_some(),
        "the removed member kept running"
    );
    // Started again, it stops again: it refuses to start if it applied its removal, else a
    // former peer tells it once more.
    if c.members[2].try_restart().is_ok() {
        let exit = c.members[2].wait_exit(Duration::from_secs(30));
        assert!(
            exit.is_some(),
            "the removed member kept running once restarted"
        );
    }
    let second_start = c.members[2].log();
    let second_start = second_start.rsplit("start #2").next().unwrap_or_default();
    assert!(
        second_start.contains("the member has been permanently removed from the cluster"),
        "{second_start}"
    );
    m4.kill_9();
}

#[test]
fn hashkv_is_equal_everywhere_and_leadership_moves() {
    let c = Cluster::start(3);
    for i in 0..20 {
        c.members[i % 3].ok(&["put", &format!("k{i}"), "v"]);
    }
    c.members[0].ok(&["compaction", "5"]);
    c.members[1].ok(&["del", "k1"]);
    let want = c.members[0].revision();
    let mut hashes = Vec::new();
    for m in &c.members {
        // Wait until the member applied everything, then compare hashes at that revision.
        let deadline = Instant::now() + Duration::from_secs(10);
        while m
            .etcdctl(
                &["get", "k", "--prefix", "--consistency=s", "-w", "json"],
                None,
            )
            .json()["header"]["revision"]
            != want
        {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = m.ok(&["endpoint", "hashkv", "-w", "json"]);
        hashes.push(
            out.split("\"hash\":")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .to_string(),
        );
    }
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");

    let leader = c.wait_leader(&[0, 1, 2]);
    let target = (leader + 1) % 3;
    let list = c.members[0].ok(&["member", "list"]);
    let target_id = member_id(&list, &c.members[target].peer_url());
    let out = c.members[leader].ok(&["move-leader", &target_id]);
    assert!(out.contains("Leadership transferred"), "{out}");
    assert_eq!(c.wait_leader(&[0, 1, 2]), target);
}

#[test]
fn member_down_past_a_snapshot_catches_up_by_snapshot() {
    let members = start_cluster(3, &["--snapshot-count", "20"]);
    let c = Cluster { members };
    let leader = c.wait_leader(&[0, 1, 2]);
    let down = (leader + 1) % 3;
    let up = (leader + 2) % 3;
    let mut c = c;
    c.members[down].kill_9();
    // Far more writes than --snapshot-count: the leader snapshots and purges its log.
    let script: String = (0..150).map(|i| format!("put key{i:03} v{i}\n")).collect();
    for line in script.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        c.members[up].ok(&parts);
    }
    c.members[down].restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = c.members[down].etcdctl(
            &["get", "key", "--prefix", "--keys-only", "--consistency=s"],
            None,
        );
        if got.success() && lines(&got.stdout).len() == 150 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lagging member never caught up: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        c.members[down]
            .log()
            .contains("installed snapshot from the leader"),
        "expected a snapshot install:\n{}",
        c.members[down].log()
    );
}

/// etcd commits a voter's addition to a one-member cluster at once. Under joint consensus the
/// new voter would have to run for the change to commit, so detcd adds it as a learner (listed
/// as a voter, as etcd lists it) and promotes it once it has caught up.
#[test]
fn a_voter_added_to_one_member_is_answered_at_once_and_promoted_when_caught_up() {
    let c = Cluster::start(1);
    c.members[0].ok(&["put", "before-join", "1"]);
    let ports = free_ports();
    let peer = format!("http://127.0.0.1:{}", ports.1);
    // etcdctl's 5 s command timeout would fail the add if it waited for the new member.
    let added = c.members[0].ok(&["member", "add", "m2", &format!("--peer-urls={peer}")]);
    assert!(
        added.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{added}"
    );
    let list = c.members[0].ok(&["member", "list"]);
    let id = member_id(&list, &peer);
    assert!(
        list.lines()
            .any(|l| l.starts_with(&id) && l.contains("unstarted") && l.ends_with("false")),
        "listed as an unstarted voter: {list}"
    );
    assert!(c.members[0]
        .err(&["member", "promote", &id], None)
        .contains("etcdserver: can only promote a learner member"));
    // Unlike etcd's, the one-member cluster keeps its quorum until the new member is there.
    c.members[0].ok(&["put", "while-added", "2"]);

    let m2 = join(&c, "m2", ports, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    // etcdctl's JSON leaves out a false isLearner.
    while m2
        .ok(&["endpoint", "status", "-w", "json"])
        .contains("\"isLearner\":true")
    {
        assert!(Instant::now() < deadline, "never promoted");
        std::thread::sleep(Duration::from_millis(200));
    }
    let list = m2.ok(&["member", "list"]);
    assert!(
        lines(&list).len() == 2
            && list
                .lines()
                .all(|l| l.contains("started") && l.ends_with("false")),
        "{list}"
    );
    // Both are voters now: the cluster needs both, and both serve.
    assert_eq!(m2.ok(&["put", "after-join", "3"]).trim(), "OK");
    assert_eq!(
        lines(&c.members[0].ok(&["get", "--prefix", "", "--keys-only"])),
        ["after-join", "before-join", "while-added"]
    );
}

#[test]
fn a_member_removed_while_down_is_told_by_its_peers_and_stops() {
    let mut c = Cluster::start(3);
    c.wait_leader(&[0, 1, 2]);
    let list = c.members[0].ok(&["member", "list"]);
    let gone = member_id(&list, &c.members[2].peer_url());
    // m3 is down while the others remove it, so it never applies its removal.
    c.members[2].kill_9();
    c.wait_leader(&[0, 1]);
    c.members[0].ok(&["member", "remove", &gone]);
    // Started again with its data dir, it still believes it is a member and campaigns; the
    // others answer as etcd's peers do, and it stops, as etcd's removed members do.
    // (It may stop before it is ready to serve clients, or after.)
    if c.members[2].try_restart().is_ok() {
        let exit = c.members[2].wait_exit(Duration::from_secs(30));
        assert!(exit.is_some(), "the removed member kept running");
    }
    let log = c.members[2].log();
    assert!(
        log.contains("the member has been permanently removed from the cluster"),
        "{log}"
    );
    // The others were not disturbed by its campaign.
    let leader = c.wait_leader(&[0, 1]);
    assert_eq!(c.members[leader].ok(&["put", "after", "1"]).trim(), "OK");
    assert_eq!(lines(&c.members[0].ok(&["member", "list"])).len(), 2);
}

#[test]
fn removing_the_last_voter_is_refused_as_etcd_does() {
    let s = Builder::new(Kind::Detcd).start();
    let list = s.ok(&["member", "list"]);
    let id = member_id(&list, &s.peer_url());
    let before = s.revision();
    assert!(s
        .err(&["member", "remove", &id], None)
        .contains("etcdserver: re-configuration failed due to not enough started members"));
    assert_eq!(s.ok(&["member", "list"]), list, "membership unchanged");
    assert_eq!(s.revision(), before);
}

#[test]
fn a_member_of_another_cluster_is_refused() {
    // Three members named in one --initial-cluster, but m3 has another cluster token: its member
    // and cluster IDs differ, so the other two refuse its raft traffic, and it never joins.
    let ports: Vec<(u16, u16)> = (0..3).map(|_| free_ports()).collect();
    let ic = ports
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("m{}=http://127.0.0.1:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut members: Vec<Server> = ports
        .iter()
        .enumerate()
        .map(|(i, (cp, pp))| {
            let token = if i == 2 {
                "other-cluster"
            } else {
                "this-cluster"
            };
            Builder::new(Kind::Detcd)
                .name(format!("m{}", i + 1))
                .ports(*cp, *pp)
                .initial_cluster(ic.clone())
                .args(["--initial-cluster-token", token])
                .spawn()
        })
        .collect();
    members[0].wait_until_ready();
    members[1].wait_until_ready();
    assert_eq!(members[0].ok(&["put", "k", "v"]).trim(), "OK");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !members[2].log().contains("cluster ID mismatch") {
        assert!(
            Instant::now() < deadline,
            "m3 was not refused:\n{}",
            members[2].log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // m3 serves no client: it never got a quorum for its own cluster.
    let out = members[2].etcdctl(&["get", "k"], None);
    assert!(!out.success(), "{out:?}");
    members[2].kill_9();
}

/// Member `s`'s metric `name`, from its `/metrics` (read with curl).
fn metric(s: &Server, name: &str) -> f64 {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            &format!("{}/metrics", s.client_url()),
        ])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            let (n, v) = l.rsplit_once(' ')?;
            (n == name).then(|| v.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// Waits (bounded) until `f` holds.
fn eventually(what: &str, within: Duration, f: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_write_without_a_quorum_is_a_pending_then_a_failed_proposal() {
    let mut c = Cluster::start(3);
    let leader = c.wait_leader(&[0, 1, 2]);
    c.members[leader].ok(&["put", "a", "1"]);
    let s = leader;
    let applied = metric(&c.members[s], "etcd_server_proposals_applied_total");
    assert!(applied >= 2.0, "the bootstrap and the put: {applied}");
    assert!(metric(&c.members[s], "etcd_server_proposals_committed_total") >= applied);
    assert_eq!(metric(&c.members[s], "etcd_server_proposals_pending"), 0.0);
    assert_eq!(
        metric(&c.members[s], "etcd_server_proposals_failed_total"),
        0.0
    );
    for i in (0..3).filter(|&i| i != s) {
        c.members[i].kill_9();
    }
    // A write that cannot commit: pending while the leader waits for a quorum, failed once it
    // gives up (etcdctl gives up first; the member's own deadline ends the proposal).
    let endpoint = c.members[s].endpoint();
    let put = std::thread::spawn(move || {
        common::run_etcdctl(
            &[
                "--endpoints".to_string(),
                endpoint,
                "--command-timeout=3s".to_string(),
                "put".to_string(),
                "b".to_string(),
                "2".to_string(),
            ],
            None,
        )
    });
    let m = &c.members[s];
    eventually("the put pending", Duration::from_secs(3), || {
        metric(m, "etcd_server_proposals_pending") == 1.0
    });
    assert!(!put.join().unwrap().success(), "no quorum, no put");
    eventually("the put failed", Duration::from_secs(15), || {
        metric(m, "etcd_server_proposals_failed_total") == 1.0
    });
    assert_eq!(metric(m, "etcd_server_proposals_pending"), 0.0);
}
