//! Locks under seeded faults: clients contend for one lock through etcd's Lock service on
//! random members, guard a resource with the lock's fencing token, and release; the nemesis
//! crashes, partitions, pauses, skews and jumps clocks, slows disks and networks meanwhile.
//! detcd-jepsen's lock checker then judges the history ([`detcd_jepsen::lock`]).
//!
//! # What a client records
//!
//! - **Acquisition**: the Lock call's invoke and completion; the token is the lock key's create
//!   revision, read right after (that read also proves the key existed at its invoke time).
//!   A lock whose key is already gone by then (its lease expired) is recorded as nothing: the
//!   history cannot name its token.
//! - **Access**: the guarded resource is an etcd key written by a txn that succeeds only while
//!   the lock key still has the token as create revision — fencing inside etcd. An access the
//!   cluster accepted is recorded with its interval.
//! - **Release**: half the seeds release through a txn deleting the key only if it still carries
//!   the token, which tells whether the holder still held the lock until then (the checker then
//!   verifies mutual exclusion over the whole hold); the other half call the Lock service's
//!   Unlock, whose answer does not say it (token order, uniqueness and fencing are checked).
//!
//! Each client keeps its own lease alive in the background; when the lease is found gone, it
//! grants a new one. A client whose release may not have happened (no answer) retires its
//! lease: locking again with it would find the old key and hold the lock under the same token
//! again (etcd's locks are re-entrant per lease), which the history could not tell from a
//! duplicate token. Clock jumps may expire a lease early on a leader whose clock leaps: that
//! frees the lock legitimately, and fencing is what keeps the stale holder out.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use detcd::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use detcd::proto::etcdserverpb::kv_client::KvClient;
use detcd::proto::etcdserverpb::lease_client::LeaseClient;
use detcd::proto::etcdserverpb::request_op::Request as Op;
use detcd::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, LeaseGrantRequest, RangeRequest, RequestOp, TxnRequest,
};
use detcd::proto::v3lockpb::lock_client::LockClient;
use detcd::proto::v3lockpb::{LockRequest, UnlockRequest};
use detcd_jepsen::lock::{Access, LockHold, Release};
use detcd_jepsen::{check_locks, LockHistory};
use rand::Rng;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::cluster::{wait_leader, SimCluster};
use crate::nemesis::{apply, generate, FaultKind, Schedule};
use crate::trace::Trace;
use crate::workloads::client::{channel, keep_alive_once, nanos_since, put_request, random_member};
use crate::workloads::scenario::{self, run_seed, Passed};

/// The lock's name.
pub const LOCK: &str = "lock";
/// The guarded resource's key.
pub const RESOURCE: &str = "resource";
/// Per-request timeout of the clients; a Lock call waits for its turn at most this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// The clients' lease TTL in seconds; they renew every third of it.
const TTL: i64 = 3;

/// The shape of one run.
#[derive(Debug, Clone)]
pub struct Params {
    /// Members.
    pub nodes: usize,
    /// Clients contending for the lock.
    pub clients: u64,
    /// Length of the faulty phase.
    pub duration: Duration,
    /// The nemesis's fault kinds the seed may enable.
    pub faults: BTreeSet<FaultKind>,
}

impl Default for Params {
    /// Three members, four clients, eight seconds, and every fault that leaves the membership
    /// as it is.
    fn default() -> Self {
        Params {
            nodes: 3,
            clients: 4,
            duration: Duration::from_secs(8),
            faults: [
                FaultKind::Crash,
                FaultKind::Partition,
                FaultKind::Pause,
                FaultKind::ClockSkew,
                FaultKind::ClockJump,
                FaultKind::SlowDisk,
                FaultKind::NetDelay,
                FaultKind::NetLoss,
                FaultKind::IsolateLeader,
            ]
            .into_iter()
            .collect(),
        }
    }
}

/// What a passing run measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Acquisitions recorded (with a token).
    pub holds: usize,
    /// Accesses the fenced resource accepted.
    pub accesses: usize,
    /// Releases proven to have held the lock until they were sent.
    pub held_releases: usize,
    /// Lock calls that failed or timed out.
    pub failed_locks: usize,
}

/// A passing run of this scenario.
pub type Outcome = Passed<Stats>;

/// Runs one seed in a fresh simulator; `Err` describes the violations, with the schedule.
pub fn run(seed: u64, params: &Params) -> Result<Outcome, String> {
    run_seed("lock", seed, scenario(seed, params.clone()))
}

#[derive(Default)]
struct Logs {
    holds: Vec<LockHold>,
    failed_locks: usize,
}

type Shared = Arc<Mutex<Logs>>;

async fn scenario(seed: u64, p: Params) -> Result<Outcome, String> {
    let began = Instant::now();
    let cluster = SimCluster::new(p.nodes);
    let mut trace = Trace::default();
    let urls = cluster.client_urls();
    let u = urls.clone();
    cluster.client(async move { wait_leader(&u).await }).await;
    let schedule = generate::random(seed, p.nodes, p.duration.as_millis() as u64, &p.faults);
    trace.record(schedule.to_string());
    let fenced_release = madsim::rand::thread_rng().gen_bool(0.5);
    trace.record(format!("fenced release: {fenced_release}"));

    let logs: Shared = Arc::default();
    let start = Instant::now();
    let (l, u, until) = (logs.clone(), urls.clone(), p.duration);
    let clients = p.clients;
    let work = cluster.spawn_client(async move {
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                tokio::spawn(client(
                    c,
                    u.clone(),
                    start,
                    until,
                    fenced_release,
                    l.clone(),
                ))
            })
            .collect();
        for t in tasks {
            t.await.expect("lock client task");
        }
    });
    let applied = apply::run(&schedule, &cluster).await;
    for line in applied.log {
        trace.record(line);
    }
    work.await
        .map_err(|e| format!("lock client panicked: {e:?}"))?;

    let logs = std::mem::take(&mut *logs.lock().unwrap());
    let history = LockHistory {
        holds: logs.holds.clone(),
    };
    let stats = Stats {
        holds: history.holds.len(),
        accesses: history.holds.iter().map(|h| h.accesses.len()).sum(),
        held_releases: history
            .holds
            .iter()
            .filter(|h| h.release.as_ref().is_some_and(|r| r.still_held))
            .count(),
        failed_locks: logs.failed_locks,
    };
    for h in &history.holds {
        trace.record(format!(
            "p{} token {} acquired [{}, {}] accesses {} release {:?} seen {:?}",
            h.process,
            h.token,
            h.acquire_invoke,
            h.acquire_complete,
            h.accesses.len(),
            h.release
                .as_ref()
                .map(|r| (r.invoke, r.complete, r.still_held)),
            h.key_seen_at
        ));
    }
    if let Err(e) = history.validate() {
        return Err(failure(seed, &schedule, &e));
    }
    let report = check_locks(&history);
    if !report.is_valid() {
        let text = report.to_section("locks").text;
        return Err(failure(seed, &schedule, &text));
    }
    if stats.holds == 0 {
        return Err(failure(seed, &schedule, "no client ever held the lock"));
    }
    trace.record(format!("{stats:?}"));
    Ok(Passed {
        trace,
        simulated: began.elapsed(),
        stats,
    })
}

fn failure(seed: u64, schedule: &Schedule, problem: &str) -> String {
    let problems = [problem.to_string()];
    scenario::failure("lock", seed, "lock", &problems, schedule, None)
}

/// Connects to a random member within the request timeout.
async fn any_member(urls: &[String]) -> Option<Channel> {
    channel(&urls[random_member(urls)], REQUEST_TIMEOUT).await
}

/// A lease of [`TTL`] and the flag that stops its keep-alive task.
struct KeptLease {
    id: i64,
    stop: Arc<AtomicBool>,
}

impl Drop for KeptLease {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

async fn grant(urls: &[String]) -> Option<KeptLease> {
    let ch = any_member(urls).await?;
    let req = LeaseGrantRequest { ttl: TTL, id: 0 };
    let id = tokio::time::timeout(REQUEST_TIMEOUT, LeaseClient::new(ch).lease_grant(req))
        .await
        .ok()?
        .ok()?
        .into_inner()
        .id;
    let stop = Arc::new(AtomicBool::new(false));
    tokio::spawn(keep_alive(urls.to_vec(), id, stop.clone()));
    Some(KeptLease { id, stop })
}

/// Renews lease `id` every third of its TTL through random members until stopped or gone.
async fn keep_alive(urls: Vec<String>, id: i64, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(TTL as u64 * 1000 / 3)).await;
        let Some(ch) = any_member(&urls).await else {
            continue;
        };
        let mut lc = LeaseClient::new(ch);
        if let Ok(Ok(0)) = tokio::time::timeout(REQUEST_TIMEOUT, keep_alive_once(&mut lc, id)).await
        {
            return; // the lease is gone
        }
    }
}

fn fenced(key: &Bytes, token: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.clone(),
        range_end: Bytes::new(),
        target_union: Some(TargetUnion::CreateRevision(token)),
    }
}

/// A txn that runs `then` only while `key` still carries `token`; `Some(succeeded)` if answered.
async fn fenced_txn(kv: &mut KvClient<Channel>, key: &Bytes, token: i64, then: Op) -> Option<bool> {
    let t = TxnRequest {
        compare: vec![fenced(key, token)],
        success: vec![RequestOp {
            request: Some(then),
        }],
        failure: Vec::new(),
    };
    let r = tokio::time::timeout(REQUEST_TIMEOUT, kv.txn(t))
        .await
        .ok()?
        .ok()?;
    Some(r.into_inner().succeeded)
}

/// One client: lock, read the token, access the resource under it, release; until `until`.
async fn client(
    c: u64,
    urls: Vec<String>,
    start: Instant,
    until: Duration,
    fenced_release: bool,
    logs: Shared,
) {
    let mut lease: Option<KeptLease> = None;
    while start.elapsed() < until {
        if lease.is_none() {
            lease = grant(&urls).await;
            if lease.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        let id = lease.as_ref().map_or(0, |l| l.id);
        let Some(ch) = any_member(&urls).await else {
            continue;
        };
        let mut locks = LockClient::new(ch.clone());
        let mut kv = KvClient::new(ch);
        let acquire_invoke = nanos_since(start);
        let req = LockRequest {
            name: Bytes::from_static(LOCK.as_bytes()),
            lease: id,
        };
        let key = match tokio::time::timeout(REQUEST_TIMEOUT, locks.lock(req)).await {
            Ok(Ok(r)) => r.into_inner().key,
            Ok(Err(s)) => {
                logs.lock().unwrap().failed_locks += 1;
                if s.message().contains("lease not found") || s.message().contains("expired") {
                    lease = None;
                }
                continue;
            }
            Err(_) => {
                logs.lock().unwrap().failed_locks += 1;
                continue;
            }
        };
        let acquire_complete = nanos_since(start);
        // The token: the key's create revision (this read also shows the key still exists).
        let seen_at = nanos_since(start);
        let read = RangeRequest {
            key: key.clone(),
            ..Default::default()
        };
        let token = match tokio::time::timeout(REQUEST_TIMEOUT, kv.range(read)).await {
            Ok(Ok(r)) => r.into_inner().kvs.first().map(|kv| kv.create_revision),
            _ => None,
        };
        let Some(token) = token else {
            // Lost already, or unknown: nothing checkable. Retire the lease too, or the next
            // Lock with it would find its old key and hold under the same token again.
            lease = None;
            continue;
        };
        let mut hold = LockHold {
            process: c,
            token: token as u64,
            acquire_invoke,
            acquire_complete,
            release: None,
            accesses: Vec::new(),
            key_seen_at: Some(seen_at),
        };
        // The guarded access.
        let access_start = nanos_since(start);
        let write = Op::RequestPut(put_request(RESOURCE, &format!("{c}:{token}")));
        if fenced_txn(&mut kv, &key, token, write).await == Some(true) {
            hold.accesses.push(Access {
                start: access_start,
                end: nanos_since(start),
            });
        }
        let pause = madsim::rand::thread_rng().gen_range(0..50);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        // The release.
        let invoke = nanos_since(start);
        if fenced_release {
            let delete = Op::RequestDeleteRange(DeleteRangeRequest {
                key: key.clone(),
                ..Default::default()
            });
            match fenced_txn(&mut kv, &key, token, delete).await {
                Some(still_held) => {
                    hold.release = Some(Release {
                        invoke,
                        complete: nanos_since(start),
                        still_held,
                    })
                }
                None => lease = None,
            }
        } else {
            let unlock = locks.unlock(UnlockRequest { key });
            if !matches!(
                tokio::time::timeout(REQUEST_TIMEOUT, unlock).await,
                Ok(Ok(_))
            ) {
                lease = None;
            }
        }
        logs.lock().unwrap().holds.push(hold);
    }
}
