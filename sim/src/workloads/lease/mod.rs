//! Leases under clock skew: a key whose lease was kept alive is never deleted before the TTL
//! the lease was last renewed with has elapsed, even while members' clocks disagree, leaders
//! crash and the network splits; and a lease no longer kept alive does expire once the faults
//! heal.
//!
//! # The property, and why it is the right one
//!
//! A client learns a lease's TTL only from a response: the grant's, or a keep-alive's (`ttl`,
//! 0 when the lease is gone). etcd's leader renews a lease by setting its expiry to *now + TTL
//! on the leader's own monotonic clock*, and a newly elected leader gives every lease its full
//! TTL again from its election. A renewal the client sent at (true) time `t` happened at or
//! after `t` — on the leader that answered, or, if leadership changed since, a later leader
//! restarted the TTL even later; and a deposed leader's revocations cannot commit, while one
//! already in the new leader's log is applied before the new leader renews anything. So if
//! the leader's clock runs at most `ρ` fast, the lease cannot expire before `t + TTL / (1 + ρ)`
//! in true time, and its keys (deleted only by the revocation) are in every linearizable read
//! that completes before then. Only keep-alives that *succeeded* count: a client cut off from
//! the leader sees its keep-alives fail, and its lease may legitimately expire.
//!
//! The check: every linearizable read of the prefix that started after the key was known to
//! exist (its put acknowledged, or an earlier read saw it) and completed before
//! `t + TTL / (1 + ρ)` for some successful renewal sent at `t` must contain the key; and no
//! keep-alive may answer "gone" (TTL 0) before then. Besides readers throughout, each lease is
//! probed by a read just before its last renewal's protection ends, where an early expiry
//! shows. Liveness: once the faults heal and keep-alives stop, every lease and key is gone
//! within the longest TTL (plus the rate margin) and `EXPIRY_SLACK`.
//!
//! # The clock skew, and the bound chosen
//!
//! Every member gets a random clock offset of up to ±2 s and a rate error of up to ±2%
//! ([`MAX_OFFSET_MS`], [`MAX_RATE_PPM`]) before it first reads its clock (the wall clock takes
//! the offset as is; a monotonic clock, which the seam never lets start below true time, takes
//! its forward part); during the run members' rates change, with their monotonic clocks kept
//! continuous. etcd's leases measure durations on one member's monotonic
//! clock and never compare instants across members, so offsets must not matter at all (a bug
//! comparing instants across members would show). The rate error is what the design tolerates
//! by margin: it shortens a TTL to `TTL / (1 + ρ)` in true time, which the check accounts
//! for, and clients renew every TTL/3, far inside it. ±2% is already far beyond real hardware
//! (quartz drifts by tens of ppm, NTP slews by at most 500 ppm) while keeping leases of a few
//! seconds meaningful. What the design does *not* tolerate is a monotonic clock jumping forward
//! (a leader whose clock steps ahead expires leases early, in etcd as here); real monotonic
//! clocks never step, so this scenario does not use the nemesis's clock steps.
//!
//! Faults besides skew: the nemesis's partitions, pauses and slow disks on random members, and
//! a leader killer that power-cuts whichever member currently leads and restarts it a moment
//! later (it replaces the nemesis's random crashes, see [`Params::default`]).

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use detcd::io::clock::{set_node_skew, Skew};
use detcd::proto::etcdserverpb::{LeaseGrantRequest, LeaseLeasesRequest, PutRequest, RangeRequest};
use rand::Rng;
use tokio::time::Instant;

use crate::cluster::{status, wait_leader, SimCluster};
use crate::nemesis::{apply, generate, FaultKind, Schedule};
use crate::trace::Trace;
use crate::workloads::client::{
    connect_kv, connect_lease, keep_alive_once, ms_since, prefix_request, put_request,
    random_member, text,
};
use crate::workloads::scenario::{self, run_seed, Passed};

/// The prefix of the leased keys.
pub const PREFIX: &str = "l/";
/// Largest clock offset between a member and true time, in milliseconds.
pub const MAX_OFFSET_MS: i64 = 2_000;
/// Largest clock rate error, in parts per million (2%).
pub const MAX_RATE_PPM: i64 = 20_000;
/// Granted TTLs, in seconds (etcd's minimum with the default election timeout is 2 s).
const TTLS: std::ops::RangeInclusive<i64> = 2..=5;
/// Time allowed, after healing and beyond the longest TTL, for every abandoned lease to be
/// revoked: a leader election, an expiry tick, a lost revocation's retry, the commit.
const EXPIRY_SLACK: Duration = Duration::from_secs(15);
/// Per-request timeout of the clients.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client waits for a member to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The shape of one run.
#[derive(Debug, Clone)]
pub struct Params {
    /// Members.
    pub nodes: usize,
    /// Concurrent clients granting and keeping alive leases.
    pub clients: u64,
    /// Concurrent readers.
    pub readers: u64,
    /// Length of the faulty phase.
    pub duration: Duration,
    /// The nemesis's fault kinds the seed may enable (clock steps are never used; skew is this
    /// scenario's own, see the module docs).
    pub faults: BTreeSet<FaultKind>,
    /// Whether a leader killer runs besides the nemesis.
    pub kill_leaders: bool,
}

impl Default for Params {
    /// Three members, four clients, two readers, eight seconds, partitions, pauses, slow disks
    /// and the leader killer. (The nemesis's own crashes are left out: a member it believes
    /// crashed might be one the leader killer already restarted, and madsim's restart of a
    /// running member keeps the old incarnation's sockets.)
    fn default() -> Self {
        Params {
            nodes: 3,
            clients: 4,
            readers: 2,
            duration: Duration::from_secs(8),
            faults: [FaultKind::Partition, FaultKind::Pause, FaultKind::SlowDisk]
                .into_iter()
                .collect(),
            kill_leaders: true,
        }
    }
}

/// What a passing run measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Leases granted (acknowledged).
    pub leases: usize,
    /// Keep-alives that succeeded.
    pub renewals: usize,
    /// Keep-alives that failed (error, timeout, or TTL 0).
    pub failed_renewals: usize,
    /// Linearizable reads checked.
    pub reads: usize,
    /// (lease, read) pairs where the lease was protected and its key had to be present.
    pub protected_checks: usize,
    /// Leaders the leader killer power-cut.
    pub leaders_killed: usize,
    /// Simulated milliseconds from the end of the faulty phase until every lease was gone.
    pub expiry_ms: u64,
}

/// A passing run of this scenario.
pub type Outcome = Passed<Stats>;

/// Runs one seed in a fresh simulator; `Err` describes every violation, with the schedule.
pub fn run(seed: u64, params: &Params) -> Result<Outcome, String> {
    run_seed("lease", seed, scenario(seed, params.clone()))
}

/// Milliseconds since the start of the run (true, simulated time).
type Ms = u64;

/// A renewal the cluster acknowledged: the grant, or a keep-alive with a positive TTL.
#[derive(Debug, Clone, Copy)]
struct Renewal {
    sent: Ms,
    answered: Ms,
    ttl: i64,
}

/// One lease and what its client learned about it.
#[derive(Debug, Clone, Default)]
struct LeaseLog {
    id: i64,
    key: String,
    /// When the put of `key` was acknowledged, if it was.
    put_acked: Option<Ms>,
    renewals: Vec<Renewal>,
    /// Keep-alives that failed: (sent, why).
    failed: Vec<(Ms, String)>,
    /// When a keep-alive answered TTL 0 (the lease was gone).
    seen_gone: Option<Ms>,
}

/// A linearizable read of the prefix that succeeded.
#[derive(Debug, Clone)]
struct Read {
    invoked: Ms,
    completed: Ms,
    keys: BTreeSet<String>,
}

#[derive(Default)]
struct Logs {
    leases: Vec<LeaseLog>,
    reads: Vec<Read>,
}

type Shared = Arc<Mutex<Logs>>;

/// A mirror of the skews this scenario set, so a rate change can keep the member's monotonic
/// clock continuous: the new offset is exactly the offset the clock has accumulated. It
/// follows `detcd::io::clock`: local = global + offset + (global − origin) × rate, and a new
/// offset never moves the monotonic clock back (it takes the larger of the two).
struct Skews {
    /// Per member: (origin, monotonic offset in ns, rate in ppm).
    clocks: BTreeMap<usize, (Instant, i128, i64)>,
}

impl Skews {
    /// The offset member `node`'s monotonic clock has at `now`.
    fn offset(&self, node: usize, now: Instant) -> i128 {
        self.clocks.get(&node).map_or(0, |&(origin, offset, rate)| {
            offset + (now - origin).as_nanos() as i128 * rate as i128 / 1_000_000
        })
    }

    fn set(&mut self, cluster: &SimCluster, node: usize, offset_nanos: i128, rate_ppm: i64) {
        let now = Instant::now();
        set_node_skew(
            cluster.node_id(node),
            Skew {
                offset_nanos: offset_nanos as i64,
                rate_ppm,
            },
        );
        let offset = self.offset(node, now).max(offset_nanos);
        self.clocks.insert(node, (now, offset, rate_ppm));
    }

    /// A new rate for `node`, from now on, without moving its clock.
    fn change_rate(&mut self, cluster: &SimCluster, node: usize, rate_ppm: i64) {
        let offset = self.offset(node, Instant::now());
        self.set(cluster, node, offset, rate_ppm);
    }
}

async fn scenario(seed: u64, p: Params) -> Result<Outcome, String> {
    let began = Instant::now();
    let cluster = SimCluster::new(p.nodes);
    let mut trace = Trace::default();
    // Skew every member before it has read its clock: offsets are then no step at all.
    let mut skews = Skews {
        clocks: BTreeMap::new(),
    };
    for i in 0..p.nodes {
        let (off, ppm) = {
            let mut rng = madsim::rand::thread_rng();
            (
                rng.gen_range(-MAX_OFFSET_MS..=MAX_OFFSET_MS),
                rng.gen_range(-MAX_RATE_PPM..=MAX_RATE_PPM),
            )
        };
        skews.set(&cluster, i, off as i128 * 1_000_000, ppm);
        trace.record(format!("n{} clock {off} ms at {ppm} ppm", i + 1));
    }
    let urls = cluster.client_urls();
    let u = urls.clone();
    cluster.client(async move { wait_leader(&u).await }).await;
    let schedule = generate::random(seed, p.nodes, p.duration.as_millis() as u64, &p.faults);
    trace.record(schedule.to_string());

    let logs: Shared = Arc::default();
    let start = Instant::now();
    let (l, u, until) = (logs.clone(), urls.clone(), p.duration);
    let (clients, readers) = (p.clients, p.readers);
    let work = cluster.spawn_client(async move {
        let mut tasks = Vec::new();
        for c in 0..clients {
            tasks.push(tokio::spawn(client(c, u.clone(), start, until, l.clone())));
        }
        for _ in 0..readers {
            tasks.push(tokio::spawn(reader(u.clone(), start, until, l.clone())));
        }
        for t in tasks {
            t.await.expect("lease client task");
        }
    });
    let (nemesis, disorder) = tokio::join!(
        apply::run(&schedule, &cluster),
        disorder(&cluster, &mut skews, start, p.duration, p.kill_leaders)
    );
    for line in nemesis.log.into_iter().chain(disorder.log) {
        trace.record(line);
    }
    work.await
        .map_err(|e| format!("lease client panicked: {e:?}"))?;
    let faulty_end = start.elapsed().as_millis() as Ms;

    // Liveness: nobody keeps anything alive now, so every lease must go.
    let u = urls.clone();
    let longest = Duration::from_secs(*TTLS.end() as u64);
    let limit = longest + longest * MAX_RATE_PPM as u32 / 1_000_000 + EXPIRY_SLACK;
    let gone = cluster
        .client(async move { all_gone(&u, limit).await })
        .await;
    let logs = std::mem::take(&mut *logs.lock().unwrap());
    let mut problems = check(&logs);
    let expiry_ms = match gone {
        Ok(()) => start.elapsed().as_millis() as Ms - faulty_end,
        Err(left) => {
            problems.push(format!(
                "[liveness] {left} still there {limit:?} after the faults healed and keep-alives \
                 stopped"
            ));
            0
        }
    };

    let mut stats = Stats {
        leases: logs.leases.len(),
        reads: logs.reads.len(),
        leaders_killed: disorder.kills,
        expiry_ms,
        ..Stats::default()
    };
    for l in &logs.leases {
        stats.renewals += l.renewals.len().saturating_sub(1);
        stats.failed_renewals += l.failed.len();
        trace.record(format!(
            "lease {:x} {} put {:?} renewals {:?} failed {:?} gone {:?}",
            l.id,
            l.key,
            l.put_acked,
            l.renewals
                .iter()
                .map(|r| (r.sent, r.answered, r.ttl))
                .collect::<Vec<_>>(),
            l.failed,
            l.seen_gone
        ));
    }
    stats.protected_checks = protected_pairs(&logs);
    if !problems.is_empty() {
        return Err(failure(seed, &schedule, &trace, &problems));
    }
    trace.record(format!("{stats:?}"));
    Ok(Passed {
        trace,
        simulated: began.elapsed(),
        stats,
    })
}

fn failure(seed: u64, schedule: &Schedule, trace: &Trace, problems: &[String]) -> String {
    scenario::failure(
        "lease",
        seed,
        "watch_lease lease",
        problems,
        schedule,
        Some(trace),
    )
}

/// The latest instant a renewal protects its lease until: `sent + ttl / (1 + ρ)`, in ms.
fn protected_until(r: &Renewal) -> Ms {
    r.sent + (r.ttl as u64 * 1_000 * 1_000_000) / (1_000_000 + MAX_RATE_PPM as u64)
}

/// When a lease's key was first known to exist: its put was acknowledged, or a read saw it.
fn known_from(l: &LeaseLog, reads: &[Read]) -> Option<Ms> {
    let seen = reads
        .iter()
        .filter(|r| r.keys.contains(&l.key))
        .map(|r| r.completed)
        .min();
    l.put_acked.into_iter().chain(seen).min()
}

/// The safety check (see the module docs), and its twin on keep-alives: one answered "gone"
/// (TTL 0) before an earlier renewal's protection ended means the lease was revoked early.
fn check(logs: &Logs) -> Vec<String> {
    let mut problems = Vec::new();
    for l in &logs.leases {
        if let Some(gone) = l.seen_gone {
            if let Some(r) = l.renewals.iter().find(|r| gone < protected_until(r)) {
                problems.push(format!(
                    "[lease] a keep-alive of lease {:x} answered at {gone} ms that it was gone, \
                     but a renewal sent at {} ms with TTL {} s protects it until {} ms",
                    l.id,
                    r.sent,
                    r.ttl,
                    protected_until(r)
                ));
            }
        }
    }
    for l in &logs.leases {
        let Some(known) = known_from(l, &logs.reads) else {
            continue;
        };
        for read in logs.reads.iter().filter(|r| r.invoked >= known) {
            if read.keys.contains(&l.key) {
                continue;
            }
            if let Some(r) = l
                .renewals
                .iter()
                .find(|r| read.completed < protected_until(r))
            {
                problems.push(format!(
                    "[lease] key {} of lease {:x} missing from a linearizable read at \
                     [{}, {}] ms, but a renewal sent at {} ms (answered at {} ms) with TTL {} s \
                     protects it until {} ms",
                    l.key,
                    l.id,
                    read.invoked,
                    read.completed,
                    r.sent,
                    r.answered,
                    r.ttl,
                    protected_until(r)
                ));
            }
        }
    }
    problems
}

/// How many (lease, read) pairs the check actually constrained: the key was known and some
/// renewal protected the lease when the read completed (a sweep where this stays 0 tests
/// nothing).
fn protected_pairs(logs: &Logs) -> usize {
    logs.leases
        .iter()
        .filter_map(|l| Some((l, known_from(l, &logs.reads)?)))
        .map(|(l, known)| {
            logs.reads
                .iter()
                .filter(|r| {
                    r.invoked >= known
                        && l.renewals.iter().any(|n| r.completed < protected_until(n))
                })
                .count()
        })
        .sum()
}

/// One client: grants leases (client-chosen IDs, so even a grant whose answer was lost is
/// known), puts a key with each, and keeps most of them alive — every TTL/3, through a random
/// member each time — until the faulty phase ends; some it abandons at once, some after a few
/// renewals.
async fn client(c: u64, urls: Vec<String>, start: Instant, until: Duration, logs: Shared) {
    let mut keepers = Vec::new();
    let mut n = 0i64;
    while start.elapsed() < until {
        n += 1;
        let id = ((c as i64 + 1) << 32) | n;
        let (ttl, renewals, pause) = {
            let mut rng = madsim::rand::thread_rng();
            let renewals = match rng.gen_range(0..10) {
                0..=1 => 0,
                2..=4 => rng.gen_range(1..4),
                _ => usize::MAX,
            };
            (rng.gen_range(TTLS), renewals, rng.gen_range(300..1200))
        };
        if let Some(lease) = grant(&urls, start, id, ttl).await {
            let key = lease.key.clone();
            let index = {
                let mut l = logs.lock().unwrap();
                l.leases.push(lease);
                l.leases.len() - 1
            };
            put(&urls, start, &key, id, index, &logs).await;
            keepers.push(tokio::spawn(keep_alive(
                urls.clone(),
                start,
                until,
                index,
                renewals,
                logs.clone(),
            )));
        }
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    for k in keepers {
        k.await.expect("keep-alive task");
    }
}

async fn grant(urls: &[String], start: Instant, id: i64, ttl: i64) -> Option<LeaseLog> {
    let mut lc = connect_lease(&urls[random_member(urls)], CONNECT_TIMEOUT).await?;
    let sent = ms_since(start);
    let r = tokio::time::timeout(
        REQUEST_TIMEOUT,
        lc.lease_grant(LeaseGrantRequest { ttl, id }),
    )
    .await
    .ok()?
    .ok()?
    .into_inner();
    Some(LeaseLog {
        id,
        key: format!("{PREFIX}{id:x}"),
        renewals: vec![Renewal {
            sent,
            answered: ms_since(start),
            ttl: r.ttl,
        }],
        ..LeaseLog::default()
    })
}

async fn put(urls: &[String], start: Instant, key: &str, lease: i64, index: usize, logs: &Shared) {
    let Some(mut kv) = connect_kv(&urls[random_member(urls)], CONNECT_TIMEOUT).await else {
        return;
    };
    let req = PutRequest {
        lease,
        ..put_request(key, "alive")
    };
    if let Ok(Ok(_)) = tokio::time::timeout(REQUEST_TIMEOUT, kv.put(req)).await {
        logs.lock().unwrap().leases[index].put_acked = Some(ms_since(start));
    }
}

/// Renews lease `index` every TTL/3 until the faulty phase ends, `renewals` renewals were sent,
/// or the cluster answers that the lease is gone; then probes it.
async fn keep_alive(
    urls: Vec<String>,
    start: Instant,
    until: Duration,
    index: usize,
    renewals: usize,
    logs: Shared,
) {
    renew_for(&urls, start, until, index, renewals, &logs).await;
    probe(&urls, start, index, &logs).await;
}

/// How long before the end of a lease's protection its probe reads.
const PROBE_LEAD: Duration = Duration::from_millis(250);

/// A linearizable read of the prefix shortly before the last renewal's protection ends, where
/// a lease that expires early is most likely gone already (a read that completes too late does
/// not constrain anything, and is recorded all the same).
async fn probe(urls: &[String], start: Instant, index: usize, logs: &Shared) {
    let until = {
        let l = logs.lock().unwrap();
        l.leases[index].renewals.iter().map(protected_until).max()
    };
    let Some(until) = until else { return };
    let at = start + Duration::from_millis(until) - PROBE_LEAD;
    tokio::time::sleep_until(at).await;
    read_once(urls, start, logs).await;
}

async fn renew_for(
    urls: &[String],
    start: Instant,
    until: Duration,
    index: usize,
    mut renewals: usize,
    logs: &Shared,
) {
    let (id, mut ttl) = {
        let l = logs.lock().unwrap();
        let lease = &l.leases[index];
        (lease.id, lease.renewals[0].ttl)
    };
    while renewals > 0 {
        tokio::time::sleep(Duration::from_millis(ttl as u64 * 1000 / 3)).await;
        if start.elapsed() >= until {
            return;
        }
        renewals -= 1;
        let sent = ms_since(start);
        let answer = renew(&urls[random_member(urls)], id, ttl).await;
        let mut l = logs.lock().unwrap();
        let lease = &mut l.leases[index];
        match answer {
            Ok(t) if t > 0 => {
                ttl = t;
                lease.renewals.push(Renewal {
                    sent,
                    answered: ms_since(start),
                    ttl: t,
                });
            }
            Ok(_) => {
                lease.failed.push((sent, "gone".into()));
                lease.seen_gone = Some(ms_since(start));
                return;
            }
            Err(why) => lease.failed.push((sent, why)),
        }
    }
}

/// One keep-alive on a fresh stream through `url`: the TTL answered (0: the lease is gone), or
/// why it failed (no connection, an error, no answer within a third of the TTL).
async fn renew(url: &str, id: i64, ttl: i64) -> Result<i64, String> {
    let mut lc = connect_lease(url, CONNECT_TIMEOUT)
        .await
        .ok_or("no connection")?;
    let wait = Duration::from_millis(ttl as u64 * 1000 / 3);
    tokio::time::timeout(wait, keep_alive_once(&mut lc, id))
        .await
        .map_err(|_| "timeout".to_string())?
}

/// Linearizable reads of the prefix through random members until the faulty phase ends.
async fn reader(urls: Vec<String>, start: Instant, until: Duration, logs: Shared) {
    while start.elapsed() < until {
        read_once(&urls, start, &logs).await;
        let pause = madsim::rand::thread_rng().gen_range(20..150);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// One linearizable read of the prefix through a random member, recorded if it succeeds.
async fn read_once(urls: &[String], start: Instant, logs: &Shared) {
    let Some(mut kv) = connect_kv(&urls[random_member(urls)], CONNECT_TIMEOUT).await else {
        return;
    };
    let req = RangeRequest {
        keys_only: true,
        ..prefix_request(PREFIX)
    };
    let invoked = ms_since(start);
    if let Ok(Ok(r)) = tokio::time::timeout(REQUEST_TIMEOUT, kv.range(req)).await {
        let keys = r.into_inner().kvs.iter().map(|kv| text(&kv.key)).collect();
        logs.lock().unwrap().reads.push(Read {
            invoked,
            completed: ms_since(start),
            keys,
        });
    }
}

/// Waits (up to `limit`) until no leased key and no lease is left, asked through a member that
/// answers linearizably; `Err` names what is left.
async fn all_gone(urls: &[String], limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut left = String::from("nothing could be read");
    while Instant::now() < deadline {
        for url in urls {
            let (Some(mut kv), Some(mut lc)) = (
                connect_kv(url, CONNECT_TIMEOUT).await,
                connect_lease(url, CONNECT_TIMEOUT).await,
            ) else {
                continue;
            };
            let req = RangeRequest {
                keys_only: true,
                ..prefix_request(PREFIX)
            };
            let Ok(Ok(keys)) = tokio::time::timeout(REQUEST_TIMEOUT, kv.range(req)).await else {
                continue;
            };
            // After the linearizable read, this member has applied every revocation up to it.
            let Ok(Ok(leases)) =
                tokio::time::timeout(REQUEST_TIMEOUT, lc.lease_leases(LeaseLeasesRequest {})).await
            else {
                continue;
            };
            let keys: Vec<String> = keys
                .into_inner()
                .kvs
                .iter()
                .map(|kv| text(&kv.key))
                .collect();
            let leases: Vec<String> = leases
                .into_inner()
                .leases
                .iter()
                .map(|l| format!("{:x}", l.id))
                .collect();
            if keys.is_empty() && leases.is_empty() {
                return Ok(());
            }
            left = format!("keys {keys:?} and leases {leases:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // What each member says of itself: (member, leader, term), for the report.
    let mut states = Vec::new();
    for url in urls {
        states.push(
            tokio::time::timeout(Duration::from_secs(1), status(url))
                .await
                .ok()
                .flatten(),
        );
    }
    Err(format!("{left} (member status: {states:?})"))
}

/// What the scenario's own faults did.
struct Disorder {
    log: Vec<String>,
    kills: usize,
}

/// The scenario's own faults over the faulty phase: rate changes (continuous clocks) on random
/// members, and — if `kill_leaders` — power cuts of the current leader, each restarted after
/// a while; everything it cut is back up when the phase ends.
async fn disorder(
    cluster: &SimCluster,
    skews: &mut Skews,
    start: Instant,
    duration: Duration,
    kill_leaders: bool,
) -> Disorder {
    let mut out = Disorder {
        log: Vec::new(),
        kills: 0,
    };
    let urls = cluster.client_urls();
    let n = urls.len();
    // (member, restart at).
    let mut down: Option<(usize, Instant)> = None;
    let mut next_kill = start + Duration::from_millis(1500);
    loop {
        let wait = madsim::rand::thread_rng().gen_range(200..800);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let t = start.elapsed();
        if t >= duration {
            break;
        }
        let (node, ppm) = {
            let mut rng = madsim::rand::thread_rng();
            (
                rng.gen_range(0..n),
                rng.gen_range(-MAX_RATE_PPM..=MAX_RATE_PPM),
            )
        };
        skews.change_rate(cluster, node, ppm);
        out.log.push(format!(
            "{} ms n{} clock rate {ppm} ppm",
            t.as_millis(),
            node + 1
        ));
        if let Some((i, at)) = down {
            if Instant::now() >= at {
                cluster.restart(i);
                out.log
                    .push(format!("{} ms restart leader n{}", t.as_millis(), i + 1));
                down = None;
            }
        } else if kill_leaders && Instant::now() >= next_kill {
            let u = urls.clone();
            let leader = cluster.client(async move { find_leader(&u).await }).await;
            if let Some(i) = leader {
                // A paused member must run again before it can be killed and restarted cleanly.
                cluster.resume(i);
                cluster.crash(i);
                out.kills += 1;
                let back = madsim::rand::thread_rng().gen_range(300..1500);
                down = Some((i, Instant::now() + Duration::from_millis(back)));
                out.log.push(format!(
                    "{} ms crash leader n{}",
                    start.elapsed().as_millis(),
                    i + 1
                ));
            }
            let gap = madsim::rand::thread_rng().gen_range(2500..4500);
            next_kill = Instant::now() + Duration::from_millis(gap);
        }
    }
    if let Some((i, _)) = down {
        cluster.restart(i);
        out.log.push(format!("end: restart leader n{}", i + 1));
    }
    out
}

/// The member that says it leads (the highest term wins), if any answers.
async fn find_leader(urls: &[String]) -> Option<usize> {
    let mut best: Option<(u64, usize)> = None;
    for (i, url) in urls.iter().enumerate() {
        if let Ok(Some((me, leader, term))) =
            tokio::time::timeout(Duration::from_millis(500), status(url)).await
        {
            if me == leader && best.is_none_or(|(t, _)| term > t) {
                best = Some((term, i));
            }
        }
    }
    best.map(|(_, i)| i)
}
