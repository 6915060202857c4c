//! Lock and Election (etcd's v3lock and v3election services) with real clients:
//!
//! - two `etcdctl lock` processes never hold a lock together (`etcdctl lock` runs its command while
//!   holding the lock; the commands record entry and exit, and their intervals must not overlap);
//! - `etcdctl elect` hands leadership over when the leader's process dies;
//! - a raw gRPC script over the Lock and Election services (campaign, proclaim, leader, observe,
//!   resign, lock, unlock, their errors) prints what real etcd 3.4 prints.
//!
//! Set `DETCD_SKIP_ETCD_DIFF=1` to skip the comparison when `/usr/bin/etcd` is not installed.

// Real processes and real sockets: not part of the simulator build.
#![cfg(not(madsim))]
// Real processes driven in real time: the seam rule is for the server.
#![allow(clippy::disallowed_methods)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::etcdctl_process::EtcdctlProcess;
use common::{Builder, Kind, Server};

mod raw {
    use std::time::Duration;

    use detcd::proto::etcdserverpb::lease_client::LeaseClient;
    use detcd::proto::etcdserverpb::{LeaseGrantRequest, LeaseRevokeRequest, ResponseHeader};
    use detcd::proto::v3electionpb::election_client::ElectionClient;
    use detcd::proto::v3electionpb::{
        CampaignRequest, LeaderKey, LeaderRequest, ProclaimRequest, ResignRequest,
    };
    use detcd::proto::v3lockpb::lock_client::LockClient;
    use detcd::proto::v3lockpb::{LockRequest, UnlockRequest};
    use tonic::transport::Channel;

    fn status(s: &tonic::Status) -> String {
        format!("{:?}: {}", s.code(), s.message())
    }

    fn rev(h: &Option<ResponseHeader>) -> i64 {
        h.as_ref().map_or(-1, |h| h.revision)
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    fn leader_key(l: &Option<LeaderKey>) -> String {
        match l {
            Some(l) => format!(
                "name={} key={} rev={} lease={}",
                text(&l.name),
                text(&l.key),
                l.rev,
                l.lease
            ),
            None => "no leader key".to_string(),
        }
    }

    async fn campaign(
        e: &mut ElectionClient<Channel>,
        name: &str,
        lease: i64,
        value: &str,
    ) -> (String, Option<LeaderKey>) {
        let req = CampaignRequest {
            name: name.as_bytes().to_vec().into(),
            lease,
            value: value.as_bytes().to_vec().into(),
        };
        match e.campaign(req).await {
            Ok(r) => {
                let r = r.into_inner();
                (
                    format!("campaign rev={} {}", rev(&r.header), leader_key(&r.leader)),
                    r.leader,
                )
            }
            Err(s) => (status(&s), None),
        }
    }

    async fn leader(e: &mut ElectionClient<Channel>, name: &str) -> String {
        match e
            .leader(LeaderRequest {
                name: name.as_bytes().to_vec().into(),
            })
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                match r.kv {
                    Some(kv) => format!(
                        "leader rev={} key={} value={} create={} mod={} version={} lease={}",
                        rev(&r.header),
                        text(&kv.key),
                        text(&kv.value),
                        kv.create_revision,
                        kv.mod_revision,
                        kv.version,
                        kv.lease
                    ),
                    None => format!("leader rev={} no kv", rev(&r.header)),
                }
            }
            Err(s) => status(&s),
        }
    }

    async fn proclaim(
        e: &mut ElectionClient<Channel>,
        l: Option<LeaderKey>,
        value: &str,
    ) -> String {
        match e
            .proclaim(ProclaimRequest {
                leader: l,
                value: value.as_bytes().to_vec().into(),
            })
            .await
        {
            Ok(r) => format!("proclaim rev={}", rev(&r.into_inner().header)),
            Err(s) => status(&s),
        }
    }

    async fn resign(e: &mut ElectionClient<Channel>, l: Option<LeaderKey>) -> String {
        match e.resign(ResignRequest { leader: l }).await {
            Ok(r) => format!("resign rev={}", rev(&r.into_inner().header)),
            Err(s) => status(&s),
        }
    }

    async fn lock(l: &mut LockClient<Channel>, name: &str, lease: i64) -> (String, Vec<u8>) {
        match l
            .lock(LockRequest {
                name: name.as_bytes().to_vec().into(),
                lease,
            })
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                (
                    format!("lock rev={} key={}", rev(&r.header), text(&r.key)),
                    r.key.to_vec(),
                )
            }
            Err(s) => (status(&s), Vec::new()),
        }
    }

    async fn unlock(l: &mut LockClient<Channel>, key: &[u8]) -> String {
        match l
            .unlock(UnlockRequest {
                key: key.to_vec().into(),
            })
            .await
        {
            Ok(r) => format!("unlock rev={}", rev(&r.into_inner().header)),
            Err(s) => status(&s),
        }
    }

    /// The script's responses, as text.
    pub async fn script(endpoint: &str) -> Vec<String> {
        let ch = super::connect(endpoint).await;
        let mut leases = LeaseClient::new(ch.clone());
        let mut e = ElectionClient::new(ch.clone());
        let mut lk = LockClient::new(ch.clone());
        let mut out = Vec::new();
        for id in [1001, 1002, 1003] {
            let r = leases
                .lease_grant(LeaseGrantRequest { ttl: 100, id })
                .await
                .expect("grant");
            out.push(format!("grant {}", r.into_inner().id));
        }
        out.push(leader(&mut e, "e1").await);
        let (line, first) = campaign(&mut e, "e1", 1001, "v1").await;
        out.push(line);
        out.push(leader(&mut e, "e1").await);
        // Campaigning again with the same lease re-uses the key and proclaims the new value.
        let (line, _) = campaign(&mut e, "e1", 1001, "v1b").await;
        out.push(line);
        out.push(leader(&mut e, "e1").await);
        out.push(proclaim(&mut e, first.clone(), "v2").await);
        let mut wrong = first.clone().unwrap();
        wrong.rev += 100;
        out.push(proclaim(&mut e, Some(wrong.clone()), "v3").await);
        out.push(proclaim(&mut e, None, "v3").await);
        out.push(resign(&mut e, None).await);

        // An observer sees the leader, its proclamations, and the next leader.
        let mut obs = ElectionClient::new(ch.clone())
            .observe(LeaderRequest {
                name: b"e1".to_vec().into(),
            })
            .await
            .expect("observe")
            .into_inner();
        // A second candidate waits behind the first.
        let mut e2 = ElectionClient::new(ch.clone());
        let second = tokio::spawn(async move { campaign(&mut e2, "e1", 1002, "w").await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        out.push(format!(
            "second candidate done early: {}",
            second.is_finished()
        ));
        out.push(proclaim(&mut e, first.clone(), "v4").await);
        out.push(resign(&mut e, Some(wrong)).await);
        out.push(leader(&mut e, "e1").await);
        out.push(resign(&mut e, first.clone()).await);
        let (line, second_key) = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("second candidate elected after the resignation")
            .unwrap();
        out.push(line);
        out.push(leader(&mut e, "e1").await);
        for _ in 0..4 {
            match tokio::time::timeout(Duration::from_secs(5), obs.message()).await {
                Ok(Ok(Some(r))) => {
                    let kv = r.kv.unwrap_or_default();
                    out.push(format!(
                        "observe rev={} key={} value={} mod={}",
                        rev(&r.header),
                        text(&kv.key),
                        text(&kv.value),
                        kv.mod_revision
                    ));
                }
                other => out.push(format!("observe ended: {other:?}")),
            }
        }
        drop(obs);
        out.push(campaign(&mut e, "e2", 9999, "x").await.0);
        // Revoking the leader's lease ends its leadership.
        leases
            .lease_revoke(LeaseRevokeRequest { id: 1002 })
            .await
            .expect("revoke");
        out.push(leader(&mut e, "e1").await);
        out.push(resign(&mut e, second_key).await);

        // Locks: the second locker waits until the first unlocks.
        let (line, k1) = lock(&mut lk, "l1", 1001).await;
        out.push(line);
        let (line, _) = lock(&mut lk, "l1", 1001).await;
        out.push(format!("again: {line}"));
        let mut lk2 = LockClient::new(ch.clone());
        let waiter = tokio::spawn(async move { lock(&mut lk2, "l1", 1003).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        out.push(format!(
            "second locker done early: {}",
            waiter.is_finished()
        ));
        out.push(unlock(&mut lk, &k1).await);
        let (line, k2) = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("second locker gets the lock after the unlock")
            .unwrap();
        out.push(line);
        out.push(unlock(&mut lk, &k2).await);
        out.push(unlock(&mut lk, &k2).await);
        out.push(unlock(&mut lk, b"").await);
        out.push(lock(&mut lk, "l2", 9999).await.0);
        out.push(lock(&mut lk, "", 1001).await.0);
        // Lease 0: the server grants a lease of its own for the lock.
        let (line, key) = lock(&mut lk, "l3", 0).await;
        out.push(format!(
            "lock with no lease: {} key has a lease id: {}",
            line.split(" key=").next().unwrap_or_default(),
            key.len() > 3
        ));
        out
    }
}

/// A runtime for a test's raw gRPC clients.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A gRPC channel to `endpoint` (host:port).
async fn connect(endpoint: &str) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(format!("http://{endpoint}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A fresh lease of `ttl` seconds, server-chosen ID.
async fn grant(ch: &tonic::transport::Channel, ttl: i64) -> i64 {
    use detcd::proto::etcdserverpb::lease_client::LeaseClient;
    use detcd::proto::etcdserverpb::LeaseGrantRequest;
    LeaseClient::new(ch.clone())
        .lease_grant(LeaseGrantRequest { ttl, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id
}

fn run_script(s: &Server) -> Vec<String> {
    let rt = runtime();
    rt.block_on(raw::script(&s.endpoint()))
}

#[test]
fn raw_lock_and_election_requests_match_etcd() {
    if !common::etcd_available() {
        eprintln!("skipping: no etcd to compare with");
        return;
    }
    let etcd = Builder::new(Kind::Etcd).start();
    let theirs = run_script(&etcd);
    for l in &theirs {
        eprintln!("etcd: {l}");
    }
    let detcd = Server::detcd();
    let ours = run_script(&detcd);
    assert_eq!(ours, theirs);
}

/// Three shell loops take the same lock with `etcdctl lock <name> <command>` (etcdctl runs the
/// command while it holds the lock): every critical section appends "in" and, after a pause,
/// "out" to one file, with the fencing revision etcdctl hands the command (`ETCD_LOCK_REV`).
/// Sections never interleave and their fencing revisions only grow.
#[test]
fn etcdctl_lock_holders_never_overlap() {
    let s = Server::detcd();
    let log = s.dir().join("sections.log");
    let section = format!(
        "echo \"in $W $ETCD_LOCK_REV\" >> {0}; sleep 0.1; echo \"out $W\" >> {0}",
        log.display()
    );
    let workers: Vec<std::process::Child> = (0..3)
        .map(|w| {
            let script = format!(
                "for i in 1 2 3 4; do ETCDCTL_API=3 {etcdctl} --endpoints={ep} lock shared -- sh -c '{section}' || exit 1; done",
                etcdctl = common::ETCDCTL_BIN,
                ep = s.endpoint(),
            );
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .env("W", w.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn worker")
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for mut w in workers {
        loop {
            if let Some(st) = w.try_wait().unwrap() {
                assert!(st.success(), "a worker's etcdctl lock failed");
                break;
            }
            if Instant::now() > deadline {
                let _ = w.kill();
                panic!("workers did not finish in time");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 24, "12 sections: {lines:?}");
    let mut last_rev = 0;
    for pair in lines.chunks(2) {
        let inside: Vec<&str> = pair[0].split(' ').collect();
        assert_eq!(inside[0], "in", "{lines:?}");
        assert_eq!(
            pair[1],
            format!("out {}", inside[1]),
            "sections overlap: {lines:?}"
        );
        let rev: i64 = inside[2].parse().expect("ETCD_LOCK_REV is a revision");
        assert!(rev > last_rev, "fencing revisions must grow: {lines:?}");
        last_rev = rev;
    }
}

/// A holder killed with SIGKILL releases nothing; its lock frees when its lease expires, and the
/// waiter then holds it under a new key.
#[test]
fn etcdctl_lock_passes_on_when_the_holder_dies() {
    let s = Server::detcd();
    let mut a = EtcdctlProcess::spawn(&s, "lock", &["--ttl=2", "door"]);
    let a_key = a.lines(1).remove(0);
    assert!(a_key.starts_with("door/"), "{a_key}");
    let b = EtcdctlProcess::spawn(&s, "lock", &["door"]);
    assert_eq!(b.line(Duration::from_secs(1)), None, "the lock is held");
    a.kill_9();
    let b_key = b.lines_within(1, Duration::from_secs(15)).remove(0);
    assert!(b_key.starts_with("door/") && b_key != a_key, "{b_key}");
    let created = |key: &str| {
        let out = s.ok(&["get", key, "-w", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["kvs"][0]["create_revision"].as_i64()
    };
    assert_eq!(created(&a_key), None, "the dead holder's key is gone");
    assert!(created(&b_key).is_some());
}

/// `etcdctl elect`: the leader proclaims its value; an observer (`elect -l`) follows it. A
/// leader interrupted with Ctrl-C resigns at once; a leader killed with SIGKILL is replaced when
/// its lease (etcdctl's 60 s session) expires.
#[test]
fn etcdctl_elect_hands_leadership_over() {
    let s = Server::detcd();
    let observer = EtcdctlProcess::spawn(&s, "elect", &["-l", "chair"]);
    let alpha = EtcdctlProcess::spawn(&s, "elect", &["chair", "alpha"]);
    let lines = alpha.lines(2);
    assert!(
        lines[0].starts_with("chair/") && lines[1] == "alpha",
        "{lines:?}"
    );
    assert_eq!(observer.lines(2)[1], "alpha");
    let mut beta = EtcdctlProcess::spawn(&s, "elect", &["chair", "beta"]);
    assert_eq!(beta.line(Duration::from_millis(800)), None, "alpha leads");
    let gamma = EtcdctlProcess::spawn(&s, "elect", &["chair", "gamma"]);
    // Ctrl-C: alpha resigns and beta, first in line, leads.
    alpha.interrupt();
    let lines = beta.lines(2);
    assert_eq!(lines[1], "beta", "{lines:?}");
    assert_eq!(observer.lines(2)[1], "beta");
    assert_eq!(gamma.line(Duration::from_millis(500)), None, "beta leads");
    // SIGKILL: beta's lease must expire first (etcdctl's session TTL is 60 s).
    beta.kill_9();
    let lines = gamma.lines_within(2, Duration::from_secs(90));
    assert_eq!(lines[1], "gamma", "{lines:?}");
    assert_eq!(observer.lines(2)[1], "gamma");
}

/// The Lock service under contention from raw gRPC clients: four clients, five rounds each, on
/// one lock. No two hold it at once, and the fencing token (the lock key's create revision)
/// grows with every acquisition.
#[test]
fn lock_service_excludes_and_fences() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use detcd::proto::etcdserverpb::kv_client::KvClient;
    use detcd::proto::etcdserverpb::RangeRequest;
    use detcd::proto::v3lockpb::lock_client::LockClient;
    use detcd::proto::v3lockpb::{LockRequest, UnlockRequest};

    let s = Server::detcd();
    let rt = runtime();
    let tokens = rt.block_on(async {
        let ch = connect(&s.endpoint()).await;
        let busy = Arc::new(AtomicBool::new(false));
        let tokens = Arc::new(Mutex::new(Vec::new()));
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let (ch, busy, tokens) = (ch.clone(), busy.clone(), tokens.clone());
                tokio::spawn(async move {
                    let lease = grant(&ch, 30).await;
                    let mut locks = LockClient::new(ch.clone());
                    let mut kv = KvClient::new(ch);
                    for _ in 0..5 {
                        let key = locks
                            .lock(LockRequest {
                                name: b"mutex".to_vec().into(),
                                lease,
                            })
                            .await
                            .unwrap()
                            .into_inner()
                            .key;
                        assert!(!busy.swap(true, Ordering::SeqCst), "two holders at once");
                        let got = kv
                            .range(RangeRequest {
                                key: key.clone(),
                                ..Default::default()
                            })
                            .await
                            .unwrap()
                            .into_inner();
                        tokens.lock().unwrap().push(got.kvs[0].create_revision);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        busy.store(false, Ordering::SeqCst);
                        locks.unlock(UnlockRequest { key }).await.unwrap();
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.expect("worker");
        }
        let t = tokens.lock().unwrap().clone();
        t
    });
    assert_eq!(tokens.len(), 20);
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "fencing tokens must grow: {tokens:?}"
    );
}

/// A Lock request whose client gives up while waiting leaves no key behind: otherwise the lock
/// would pass to a waiter nobody listens to, and stay taken until its lease expires.
#[test]
fn an_abandoned_lock_request_withdraws_its_key() {
    use detcd::proto::etcdserverpb::kv_client::KvClient;
    use detcd::proto::etcdserverpb::RangeRequest;
    use detcd::proto::v3lockpb::lock_client::LockClient;
    use detcd::proto::v3lockpb::{LockRequest, UnlockRequest};

    let s = Server::detcd();
    let rt = runtime();
    rt.block_on(async {
        let ch = connect(&s.endpoint()).await;
        let mut kv = KvClient::new(ch.clone());
        let mut locks = LockClient::new(ch.clone());
        let (holder, quitter, next) = (
            grant(&ch, 60).await,
            grant(&ch, 60).await,
            grant(&ch, 60).await,
        );
        let lock = |lease| LockRequest {
            name: b"gate".to_vec().into(),
            lease,
        };
        let held = locks.lock(lock(holder)).await.unwrap().into_inner().key;
        let gave_up =
            tokio::time::timeout(Duration::from_millis(500), locks.lock(lock(quitter))).await;
        assert!(gave_up.is_err(), "the lock is held: the request waits");
        let quitter_key = format!("gate/{quitter:x}");
        let mut gone = false;
        for _ in 0..50 {
            let r = kv
                .range(RangeRequest {
                    key: quitter_key.clone().into_bytes().into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            if r.kvs.is_empty() {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(gone, "the abandoned waiter's key {quitter_key} stays");
        locks.unlock(UnlockRequest { key: held }).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), locks.lock(lock(next)))
            .await
            .expect("the lock is free")
            .unwrap()
            .into_inner();
        assert_eq!(got.key, format!("gate/{next:x}").into_bytes());
    });
}

/// A member stops on SIGTERM even while calls that never end by themselves are in progress: a
/// Lock waiting behind a held lock, an Observe stream and a Watch stream. (A graceful shutdown
/// waits for every call; these must end when the member stops.)
#[test]
fn sigterm_ends_waiting_locks_and_open_streams() {
    use detcd::proto::etcdserverpb::watch_client::WatchClient;
    use detcd::proto::etcdserverpb::watch_request::RequestUnion;
    use detcd::proto::etcdserverpb::{WatchCreateRequest, WatchRequest};
    use detcd::proto::v3electionpb::election_client::ElectionClient;
    use detcd::proto::v3electionpb::LeaderRequest;
    use detcd::proto::v3lockpb::lock_client::LockClient;
    use detcd::proto::v3lockpb::LockRequest;
    use futures::StreamExt;

    let mut s = Server::detcd();
    let rt = runtime();
    let endpoint = s.endpoint();
    let waiting = rt.block_on(async move {
        let ch = connect(&endpoint).await;
        let (holder, waiter) = (grant(&ch, 60).await, grant(&ch, 60).await);
        let lock = |lease| LockRequest {
            name: b"busy".to_vec().into(),
            lease,
        };
        LockClient::new(ch.clone())
            .lock(lock(holder))
            .await
            .unwrap();
        let mut l = LockClient::new(ch.clone());
        let waiting = tokio::spawn(async move { l.lock(lock(waiter)).await });
        let observe = ElectionClient::new(ch.clone())
            .observe(LeaderRequest {
                name: b"nobody".to_vec().into(),
            })
            .await
            .unwrap();
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: b"w".to_vec().into(),
                ..Default::default()
            })),
        };
        let watch = WatchClient::new(ch)
            .watch(futures::stream::iter(vec![create]).chain(futures::stream::pending()))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !waiting.is_finished(),
            "the lock is held: the second Lock waits"
        );
        (waiting, observe, watch)
    });
    // Server::stop panics if the member has not exited within its bound after SIGTERM.
    let status = s.stop();
    assert!(status.success(), "detcd exited with {status}");
    let (waiting, _observe, _watch) = waiting;
    let answer =
        rt.block_on(async move { tokio::time::timeout(Duration::from_secs(5), waiting).await });
    assert!(
        matches!(answer, Ok(Ok(Err(_)))),
        "the waiting Lock fails when the member stops: {answer:?}"
    );
}
