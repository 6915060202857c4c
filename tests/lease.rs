//! Leases through the real `etcdctl` 3.4: grant, attach, expiry, keep-alive, time-to-live,
//! revoke, list and errors — compared with real etcd 3.4 where the output is deterministic —
//! and a lease kept alive through a follower while the leader is killed.
//!
//! Set `DETCD_SKIP_ETCD_DIFF=1` to skip the comparison when `/usr/bin/etcd` is not installed.

// Real processes and real time: not part of the simulator build.
#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Builder, Kind, Server};

/// The lease ID in `lease <hex> granted with TTL(..)`.
fn granted_id(out: &str) -> String {
    let id = out
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no lease id in {out:?}"));
    assert!(out.contains("granted with TTL("), "{out}");
    id.to_string()
}

/// Polls `f` every 100 ms until it holds or `limit` passes; returns whether it held.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Number of keys under `prefix` (a linearizable read).
fn count(s: &Server, prefix: &str) -> i64 {
    let v = s.etcdctl(
        &["get", prefix, "--prefix", "--keys-only", "-w", "json"],
        None,
    );
    assert!(v.success(), "{v:?}");
    v.json()["count"].as_i64().unwrap_or(0)
}

/// `etcdctl lease keep-alive <id>` against `endpoints`, running until killed.
struct KeepAlive(Child);

impl KeepAlive {
    fn start(endpoints: &str, id: &str) -> KeepAlive {
        let child = Command::new(common::ETCDCTL_BIN)
            .env("ETCDCTL_API", "3")
            .args([
                &format!("--endpoints={endpoints}"),
                "lease",
                "keep-alive",
                id,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn etcdctl lease keep-alive");
        KeepAlive(child)
    }

    fn running(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the lease script on `s`; returns each command's (success, stdout, stderr) with lease
/// IDs replaced by `L1`, `L2`… in order of grant, and lines of `lease list` sorted (etcd lists
/// by expiry, detcd by ID).
fn lease_script(s: &Server) -> Vec<(bool, String, String)> {
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    let out = std::cell::RefCell::new(Vec::new());
    let run = |args: Vec<String>, ids: &mut BTreeMap<String, String>| -> String {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = s.etcdctl(&a, None);
        if a.len() >= 2 && a[0] == "lease" && a[1] == "grant" && o.success() {
            let id = granted_id(&o.stdout);
            let n = format!("L{}", ids.len() + 1);
            ids.insert(id, n);
        }
        let norm = |t: &str| {
            let mut t = t.to_string();
            for (id, n) in ids.iter() {
                t = t.replace(id.as_str(), n);
            }
            t
        };
        let mut stdout = norm(&o.stdout);
        if a.len() >= 2 && a[1] == "list" {
            let mut lines: Vec<&str> = stdout.lines().collect();
            lines[1..].sort();
            stdout = lines.join("\n");
        }
        out.borrow_mut()
            .push((o.success(), stdout, norm(&o.stderr_clean())));
        o.stdout
    };
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let l1 = granted_id(&run(v(&["lease", "grant", "60"]), &mut ids));
    // Below the minimum (1.5 election timeouts rounded up = 2 s): raised.
    run(v(&["lease", "grant", "1"]), &mut ids);
    run(v(&["lease", "grant", "9000000001"]), &mut ids);
    run(v(&["put", "a", "1", &format!("--lease={l1}")]), &mut ids);
    run(v(&["put", "b", "2", &format!("--lease={l1}")]), &mut ids);
    run(v(&["put", "d", "4", &format!("--lease={l1}")]), &mut ids);
    run(v(&["put", "c", "3", "--lease=1234"]), &mut ids);
    run(v(&["get", "c"]), &mut ids);
    run(v(&["lease", "timetolive", "1234"]), &mut ids);
    run(v(&["lease", "list"]), &mut ids);
    run(v(&["lease", "keep-alive", "--once", &l1]), &mut ids);
    run(v(&["lease", "keep-alive", "--once", "1234"]), &mut ids);
    // A later put without a lease detaches the key.
    run(v(&["put", "b", "3"]), &mut ids);
    let before = s.revision();
    run(v(&["lease", "revoke", &l1]), &mut ids);
    run(v(&["lease", "revoke", &l1]), &mut ids);
    run(v(&["lease", "revoke", "1234"]), &mut ids);
    // One revision for the whole revoke: `a` and `d` exist just before it, not at it.
    let after = s.revision();
    out.borrow_mut()
        .push((true, format!("revision +{}", after - before), String::new()));
    run(
        v(&["get", "a", &format!("--rev={before}"), "--print-value-only"]),
        &mut ids,
    );
    run(
        v(&["get", "a", &format!("--rev={after}"), "--print-value-only"]),
        &mut ids,
    );
    run(
        v(&["get", "d", &format!("--rev={before}"), "--print-value-only"]),
        &mut ids,
    );
    run(
        v(&["get", "d", &format!("--rev={after}"), "--print-value-only"]),
        &mut ids,
    );
    run(v(&["get", "b", "--print-value-only"]), &mut ids);
    run(v(&["lease", "list"]), &mut ids);
    out.into_inner()
}

#[test]
fn lease_commands_match_etcd() {
    let detcd = Server::detcd();
    let ours = lease_script(&detcd);
    // What must hold whether or not etcd is here to compare with.
    let expect = |i: usize, ok: bool, needle: &str| {
        let (s, o, e) = &ours[i];
        assert_eq!(*s, ok, "step {i}: {ours:#?}");
        assert!(
            o.contains(needle) || e.contains(needle),
            "step {i}: {ours:#?}"
        );
    };
    expect(0, true, "lease L1 granted with TTL(60s)");
    expect(1, true, "lease L2 granted with TTL(2s)");
    expect(2, false, "etcdserver: too large lease TTL");
    expect(6, false, "etcdserver: requested lease not found");
    assert_eq!(ours[7].1, "", "{ours:#?}");
    expect(8, true, "lease 0000000000001234 already expired");
    expect(9, true, "found 2 leases");
    expect(10, true, "lease L1 keepalived with TTL(60)");
    expect(11, false, "etcdserver: requested lease not found");
    expect(13, true, "lease L1 revoked");
    expect(14, false, "etcdserver: requested lease not found");
    expect(16, true, "revision +1");
    expect(17, true, "1");
    assert_eq!(ours[18].1, "", "{ours:#?}");
    expect(19, true, "4");
    assert_eq!(ours[20].1, "", "{ours:#?}");
    expect(21, true, "3");
    expect(22, true, "found 1 leases");
    if !common::etcd_available() {
        if std::env::var("DETCD_SKIP_ETCD_DIFF").as_deref() == Ok("1") {
            eprintln!("{} not installed; comparison skipped", common::ETCD_BIN);
            return;
        }
        panic!("{} is needed for the comparison", common::ETCD_BIN);
    }
    let etcd = Builder::new(Kind::Etcd).start();
    let theirs = lease_script(&etcd);
    assert_eq!(ours.len(), theirs.len());
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "step {i} differs (detcd, etcd)");
    }
}

#[test]
fn time_to_live_reports_remaining_granted_and_keys() {
    let s = Server::detcd();
    let id = granted_id(&s.ok(&["lease", "grant", "30"]));
    s.ok(&["put", "k2", "v", &format!("--lease={id}")]);
    s.ok(&["put", "k1", "v", &format!("--lease={id}")]);
    let out = s.ok(&["lease", "timetolive", &id, "--keys"]);
    let remaining: i64 = out
        .split("remaining(")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!((27..=30).contains(&remaining), "{out}");
    assert!(
        out.contains(&format!("lease {id} granted with TTL(30s)")),
        "{out}"
    );
    assert!(out.contains("attached keys([k1 k2])"), "{out}");
    let j = s
        .etcdctl(&["lease", "timetolive", &id, "-w", "json"], None)
        .json();
    assert_eq!(j["granted-ttl"], 30);
    assert_eq!(j["keys"], serde_json::Value::Null);
    let unknown = s
        .etcdctl(&["lease", "timetolive", "1234", "-w", "json"], None)
        .json();
    assert_eq!(
        (unknown["ttl"].as_i64(), unknown["granted-ttl"].as_i64()),
        (Some(-1), Some(0))
    );
}

#[test]
fn an_expired_lease_deletes_its_keys() {
    let s = Server::detcd();
    let granted = Instant::now();
    let id = granted_id(&s.ok(&["lease", "grant", "2"]));
    s.ok(&["put", "e/1", "v", &format!("--lease={id}")]);
    s.ok(&["put", "e/2", "v", &format!("--lease={id}")]);
    s.ok(&["put", "e/3", "v"]);
    assert_eq!(count(&s, "e/"), 3);
    assert!(
        eventually(Duration::from_secs(10), || count(&s, "e/") == 1),
        "leased keys still there"
    );
    assert!(
        granted.elapsed() >= Duration::from_millis(1500),
        "expired early"
    );
    let out = s.ok(&["lease", "timetolive", &id]);
    assert!(out.contains("already expired"), "{out}");
    assert!(!s.ok(&["lease", "list"]).contains(&id));
}

#[test]
fn keep_alive_keeps_a_lease_past_its_ttl() {
    let s = Server::detcd();
    let id = granted_id(&s.ok(&["lease", "grant", "2"]));
    s.ok(&["put", "ka", "v", &format!("--lease={id}")]);
    let mut ka = KeepAlive::start(&s.endpoint(), &id);
    std::thread::sleep(Duration::from_secs(5));
    assert!(ka.running(), "etcdctl lease keep-alive exited");
    assert_eq!(count(&s, "ka"), 1, "key deleted while kept alive");
    drop(ka);
    assert!(
        eventually(Duration::from_secs(10), || count(&s, "ka") == 0),
        "key outlived its lease"
    );
}

#[test]
fn leases_survive_a_restart() {
    let mut s = Server::detcd();
    let id = granted_id(&s.ok(&["lease", "grant", "60"]));
    s.ok(&["put", "r", "v", &format!("--lease={id}")]);
    s.stop();
    s.restart();
    assert!(s.ok(&["lease", "list"]).contains(&id));
    let out = s.ok(&["lease", "timetolive", &id, "--keys"]);
    assert!(out.contains("attached keys([r])"), "{out}");
    s.ok(&["lease", "revoke", &id]);
    assert_eq!(count(&s, "r"), 0);
}

/// A cluster of `n` detcd members (the pattern of tests/cluster.rs).
struct Cluster {
    members: Vec<Server>,
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        Cluster::start_with(n, &[])
    }

    fn start_with(n: usize, extra: &[&str]) -> Cluster {
        Cluster {
            members: common::start_cluster(n, extra),
        }
    }

    /// Waits until every member in `alive` agrees on one leader among them; returns its index.
    fn wait_leader(&self, alive: &[usize]) -> usize {
        common::wait_leader(&self.members, alive)
    }
}

#[test]
fn a_lease_kept_alive_through_a_follower_survives_the_leaders_death() {
    let mut c = Cluster::start(3);
    let leader = c.wait_leader(&[0, 1, 2]);
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let f = &c.members[follower];
    // Granted and attached through a follower; every member knows the lease.
    let id = granted_id(&f.ok(&["lease", "grant", "4"]));
    f.ok(&["put", "held", "v", &format!("--lease={id}")]);
    for m in &c.members {
        assert!(m.ok(&["lease", "list"]).contains(&id));
    }
    let mut ka = KeepAlive::start(&f.endpoint(), &id);
    std::thread::sleep(Duration::from_secs(2));
    c.members[leader].kill_9();
    let killed = Instant::now();
    let new_leader = c.wait_leader(&[follower, other]);
    // Well past the TTL counted from the kill or from the new leader's promotion: the
    // keep-alive, forwarded by the follower to whichever member leads, keeps the key.
    while killed.elapsed() < Duration::from_secs(12) {
        assert_eq!(
            count(&c.members[other], "held"),
            1,
            "key deleted while kept alive"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(ka.running(), "etcdctl lease keep-alive gave up");
    let ttl = c.members[other].ok(&["lease", "timetolive", &id]);
    assert!(ttl.contains("granted with TTL(4s)"), "{ttl}");
    // Without the keep-alive, the new leader expires it.
    drop(ka);
    assert!(
        eventually(Duration::from_secs(12), || count(
            &c.members[new_leader],
            "held"
        ) == 0),
        "key outlived its lease after the keep-alive stopped"
    );
}

/// Leases travel in snapshots: a member that missed a grant and the puts after it, caught up by
/// snapshot install, knows the lease (its lessor reloads) and its attached key.
#[test]
fn a_member_caught_up_by_snapshot_knows_the_leases() {
    let mut c = Cluster::start_with(3, &["--snapshot-count", "20"]);
    let leader = c.wait_leader(&[0, 1, 2]);
    let down = (leader + 1) % 3;
    let up = (leader + 2) % 3;
    c.members[down].kill_9();
    let id = granted_id(&c.members[up].ok(&["lease", "grant", "600"]));
    c.members[up].ok(&["put", "snap", "v", &format!("--lease={id}")]);
    for i in 0..60 {
        c.members[up].ok(&["put", &format!("fill/{}", i % 7), "v"]);
    }
    c.members[down].restart();
    let m = &c.members[down];
    assert!(
        eventually(Duration::from_secs(20), || m
            .ok(&["lease", "list"])
            .contains(&id)),
        "the caught-up member does not know the lease"
    );
    assert!(
        m.log().contains("installed snapshot"),
        "no snapshot install"
    );
    let out = m.ok(&["lease", "timetolive", &id, "--keys"]);
    assert!(out.contains("attached keys([snap])"), "{out}");
    // Revoking through it deletes the key everywhere.
    m.ok(&["lease", "revoke", &id]);
    assert_eq!(count(&c.members[up], "snap"), 0);
}

// ---------------------------------------------------------------------------
// Raw gRPC: what etcdctl cannot send (client-chosen IDs, a stream of keep-alives, txns).

mod raw {
    use detcd::proto::etcdserverpb::lease_client::LeaseClient;
    use detcd::proto::etcdserverpb::request_op::Request as Op;
    use detcd::proto::etcdserverpb::{
        kv_client::KvClient, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseLeasesRequest,
        LeaseRevokeRequest, LeaseTimeToLiveRequest, PutRequest, RequestOp, TxnRequest,
    };
    use tonic::transport::Channel;

    fn status(s: &tonic::Status) -> String {
        format!("{:?}: {}", s.code(), s.message())
    }

    fn rev(h: &Option<detcd::proto::etcdserverpb::ResponseHeader>) -> i64 {
        h.as_ref().map_or(-1, |h| h.revision)
    }

    async fn grant(c: &mut LeaseClient<Channel>, ttl: i64, id: i64) -> String {
        match c.lease_grant(LeaseGrantRequest { ttl, id }).await {
            Ok(r) => {
                let r = r.into_inner();
                format!(
                    "grant id={} ttl={} rev={} error={:?}",
                    r.id,
                    r.ttl,
                    rev(&r.header),
                    r.error
                )
            }
            Err(s) => status(&s),
        }
    }

    async fn txn_put(kv: &mut KvClient<Channel>, key: &str, lease: i64) -> String {
        let put = PutRequest {
            key: key.as_bytes().to_vec().into(),
            value: b"v".to_vec().into(),
            lease,
            ..Default::default()
        };
        let t = TxnRequest {
            success: vec![RequestOp {
                request: Some(Op::RequestPut(put)),
            }],
            ..Default::default()
        };
        match kv.txn(t).await {
            Ok(r) => format!("txn rev={}", rev(&r.into_inner().header)),
            Err(s) => status(&s),
        }
    }

    /// The script's responses, as text.
    pub async fn script(endpoint: &str) -> Vec<String> {
        let ch = Channel::from_shared(format!("http://{endpoint}"))
            .unwrap()
            .connect()
            .await
            .expect("connect");
        let mut c = LeaseClient::new(ch.clone());
        let mut kv = KvClient::new(ch);
        let mut out = vec![
            grant(&mut c, 100, 77).await,
            grant(&mut c, 100, 77).await,
            grant(&mut c, 0, 78).await,
            grant(&mut c, 9_000_000_000, 79).await,
            grant(&mut c, 9_000_000_001, 80).await,
            txn_put(&mut kv, "t1", 999).await,
            txn_put(&mut kv, "t1", 77).await,
            txn_put(&mut kv, "t2", 77).await,
        ];
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let reqs =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
        // etcd sends a stream's response headers with its first response: ask before waiting.
        for id in [77, 999, 78] {
            tx.send(LeaseKeepAliveRequest { id }).await.unwrap();
        }
        let mut resps = c
            .lease_keep_alive(reqs)
            .await
            .expect("keep-alive")
            .into_inner();
        for id in [77, 999, 78] {
            let r = tokio::time::timeout(std::time::Duration::from_secs(5), resps.message())
                .await
                .unwrap_or_else(|_| panic!("no keep-alive response for {id}: {out:?}"))
                .expect("keep-alive response")
                .expect("open");
            out.push(format!(
                "keep-alive id={} ttl={} rev={}",
                r.id,
                r.ttl,
                rev(&r.header)
            ));
        }
        drop(tx);
        for (id, keys) in [(77, true), (999, true), (78, false)] {
            let r = c
                .lease_time_to_live(LeaseTimeToLiveRequest { id, keys })
                .await
                .expect("time-to-live")
                .into_inner();
            let keys: Vec<String> = r
                .keys
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect();
            // Remaining TTL depends on timing: only its range is compared.
            let ttl = if r.ttl > 0 && r.ttl + 5 >= r.granted_ttl {
                "near granted".to_string()
            } else {
                r.ttl.to_string()
            };
            out.push(format!(
                "ttl id={} ttl={ttl} granted={} keys={keys:?}",
                r.id, r.granted_ttl
            ));
        }
        let mut ids: Vec<i64> = c
            .lease_leases(LeaseLeasesRequest {})
            .await
            .expect("leases")
            .into_inner()
            .leases
            .iter()
            .map(|l| l.id)
            .collect();
        ids.sort();
        out.push(format!("leases {ids:?}"));
        for id in [77, 77, 999] {
            out.push(match c.lease_revoke(LeaseRevokeRequest { id }).await {
                Ok(r) => format!("revoke rev={}", rev(&r.into_inner().header)),
                Err(s) => status(&s),
            });
        }
        out
    }
}

#[test]
fn raw_lease_requests_match_etcd() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let detcd = Server::detcd();
    let ours = rt.block_on(raw::script(&detcd.endpoint()));
    let expected_here = [
        "grant id=77 ttl=100 rev=1 error=\"\"",
        "FailedPrecondition: etcdserver: lease already exists",
        "grant id=78 ttl=2 rev=1 error=\"\"",
        "grant id=79 ttl=9000000000 rev=1 error=\"\"",
        "OutOfRange: etcdserver: too large lease TTL",
        "NotFound: etcdserver: requested lease not found",
        "txn rev=2",
        "txn rev=3",
        "keep-alive id=77 ttl=100 rev=3",
        "keep-alive id=999 ttl=0 rev=3",
        "keep-alive id=78 ttl=2 rev=3",
        "ttl id=77 ttl=near granted granted=100 keys=[\"t1\", \"t2\"]",
        "ttl id=999 ttl=-1 granted=0 keys=[]",
        "ttl id=78 ttl=near granted granted=2 keys=[]",
        "leases [77, 78, 79]",
        "revoke rev=4",
        "NotFound: etcdserver: requested lease not found",
        "NotFound: etcdserver: requested lease not found",
    ];
    assert_eq!(ours, expected_here);
    if !common::etcd_available() {
        assert_eq!(std::env::var("DETCD_SKIP_ETCD_DIFF").as_deref(), Ok("1"));
        return;
    }
    let etcd = Builder::new(Kind::Etcd).start();
    let theirs = rt.block_on(raw::script(&etcd.endpoint()));
    // etcd lists attached keys from a hash map: in no fixed order.
    let sorted = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .map(|l| l.replace("[\"t2\", \"t1\"]", "[\"t1\", \"t2\"]"))
            .collect()
    };
    assert_eq!(ours, sorted(theirs));
}
