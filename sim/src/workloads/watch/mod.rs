//! Watch guarantees under faults: writers change keys under [`PREFIX`] (puts, deletes and
//! multi-key transactions) through random members while watchers follow the prefix through
//! other members, and the nemesis crashes, partitions, pauses, skews clocks and slows disks.
//!
//! Each watcher behaves as etcd's clients do: when its stream breaks (the member crashed, was
//! paused, or ended a require-leader stream for want of a leader) or goes silent, it opens a new
//! one on another member, starting at the revision after the newest one it was told about (its
//! last event's, or a progress notification's). Some watchers ask for `prev_kv`, some for
//! progress notifications, some set etcd's require-leader metadata; one replays from revision 1.
//! Watchers also ask for progress now and then in the middle of a busy stream, and writers
//! leave the prefix alone for a while every 1.5 s, so bookmarks come both between events and
//! past the last one.
//!
//! After the faults heal and the writers stop, the run reads the final revision `R` and every
//! watcher asks for progress until it is told about `R`. Then:
//!
//! - the store's own history up to `R` (or up to the newest revision a watcher was told about,
//!   if a write its writer gave up on committed later) is rebuilt by reading the prefix at every
//!   revision (an independent path: the key index, not the watch feed or the history reader)
//!   and must contain every acknowledged write, whole, at the revision its response named;
//! - every watcher's streams are judged by detcd-jepsen's
//!   [`check_resumed_watches`](detcd_jepsen::watch::check_resumed_watches) against that history
//!   — ordered, unique, atomic, reliable (complete up to `R`), resumable, bookmarkable;
//! - every `prev_kv` delivered must be the key's previous state in that history;
//! - every watcher must have caught up to `R` (liveness after healing).

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use detcd::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use detcd::proto::etcdserverpb::request_op::Request as Op;
use detcd::proto::etcdserverpb::response_op::Response as OpResponse;
use detcd::proto::etcdserverpb::watch_client::WatchClient;
use detcd::proto::etcdserverpb::watch_request::RequestUnion;
use detcd::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, RangeRequest, RequestOp, TxnRequest, WatchCreateRequest,
    WatchProgressRequest, WatchRequest,
};
use detcd::proto::mvccpb::event::EventType;
use detcd::proto::mvccpb::Event;
use detcd_jepsen::watch::{
    check_resumed_watches, EventKind, ResumedWatch, WatchEvent, WatchResponse as Seen, WatchStream,
};
use rand::seq::SliceRandom;
use rand::Rng;
use tokio::time::Instant;

use crate::cluster::{wait_leader, SimCluster};
use crate::nemesis::{apply, generate, FaultKind, Schedule, ALL_FAULTS};
use crate::trace::Trace;
use crate::workloads::client::{
    channel, connect_kv, delete_op, get_request, prefix_request, put_op, put_request, revision,
    text,
};
use crate::workloads::scenario::{self, run_seed, Passed};

/// The watched prefix.
pub const PREFIX: &str = "w/";
/// The keys writers change under [`PREFIX`].
pub const KEYS: [&str; 5] = ["w/a", "w/b", "w/c", "w/d", "w/e"];
/// Writers also put keys under this prefix: revisions the watchers must not see.
const OUTSIDE: &str = "x/";

/// The members' `--experimental-watch-progress-notify-interval`: short, so quiet watchers get
/// notifications within a run.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(300);
/// A stream that delivered nothing for this long is asked for progress.
const SILENT: Duration = Duration::from_millis(700);
/// A stream that answered nothing (not even a progress request) for this long is taken for dead:
/// its member crashed or froze. etcd's clients detect this with gRPC keep-alive pings.
const DEAD: Duration = Duration::from_secs(2);
/// How long watchers get, after the final revision is known, to be told about it.
const CATCH_UP: Duration = Duration::from_secs(30);
/// Per-request timeout of the clients.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a client waits for a member to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The shape of one run.
#[derive(Debug, Clone)]
pub struct Params {
    /// Members.
    pub nodes: usize,
    /// Concurrent writers.
    pub writers: u64,
    /// Concurrent watchers (each a resumed watch on the whole prefix).
    pub watchers: usize,
    /// Length of the faulty phase; writers write for this long.
    pub duration: Duration,
    /// The fault kinds the seed may enable.
    pub faults: BTreeSet<FaultKind>,
}

impl Default for Params {
    /// Three members, three writers, four watchers, six seconds, every fault.
    fn default() -> Self {
        Params {
            nodes: 3,
            writers: 3,
            watchers: 4,
            duration: Duration::from_secs(6),
            faults: ALL_FAULTS.into_iter().collect(),
        }
    }
}

/// What a passing run measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Writes acknowledged to the writers (puts, effective deletes, transactions).
    pub acked_writes: usize,
    /// The store's revision at the end.
    pub final_revision: u64,
    /// Watch streams opened (and created) over all watchers.
    pub streams: usize,
    /// Streams opened to resume a watch.
    pub resumptions: usize,
    /// Events delivered over all streams.
    pub events: usize,
    /// Progress notifications received (ticks and answers to progress requests).
    pub progress: usize,
}

/// A passing run of this scenario.
pub type Outcome = Passed<Stats>;

/// Runs one seed in a fresh simulator; `Err` describes every broken guarantee, with the
/// schedule, so the seed can be replayed.
pub fn run(seed: u64, params: &Params) -> Result<Outcome, String> {
    run_seed("watch", seed, scenario(seed, params.clone()))
}

/// One acknowledged write: the revision its response named and the changes it made under
/// [`PREFIX`] (empty for a write outside it).
#[derive(Debug, Clone)]
struct Acked {
    revision: u64,
    events: Vec<WatchEvent>,
    what: String,
}

/// A `prev_kv` a watcher received: (stream, revision, key, previous (value, mod revision)).
type PrevSeen = (String, u64, String, Option<(String, u64)>);

/// An event's `prev_kv`: (revision, key, previous (value, mod revision)).
type PrevKv = (u64, String, Option<(String, u64)>);

/// What one watcher recorded.
struct WatcherLog {
    watch: ResumedWatch,
    prev_kvs: Vec<PrevSeen>,
    /// The newest revision it was told about.
    reported: Option<u64>,
    caught_up: bool,
}

/// The final revision every watcher must be told about, and until when; `None` while the
/// writers may still write.
type Target = Arc<Mutex<Option<(u64, Instant)>>>;

/// How a watcher watches.
#[derive(Debug, Clone, Copy)]
struct Spec {
    id: usize,
    prev_kv: bool,
    progress_notify: bool,
    require_leader: bool,
    /// Replays the whole history (start revision 1) instead of starting from now.
    from_start: bool,
}

impl Spec {
    fn new(id: usize) -> Spec {
        Spec {
            id,
            prev_kv: id & 1 == 0,
            progress_notify: id % 3 != 2,
            require_leader: id & 1 == 1,
            from_start: id == 0,
        }
    }
}

async fn scenario(seed: u64, p: Params) -> Result<Outcome, String> {
    let began = Instant::now();
    let cluster = SimCluster::with_config(p.nodes, |c| {
        c.watch_progress_notify_interval = Some(PROGRESS_INTERVAL);
    });
    let urls = cluster.client_urls();
    let u = urls.clone();
    cluster.client(async move { wait_leader(&u).await }).await;
    let schedule = generate::random(seed, p.nodes, p.duration.as_millis() as u64, &p.faults);
    let mut trace = Trace::default();
    trace.record(schedule.to_string());

    let acked = Arc::new(Mutex::new(Vec::new()));
    let target: Target = Arc::new(Mutex::new(None));
    let start = Instant::now();
    let (a, u, until, writers) = (acked.clone(), urls.clone(), p.duration, p.writers);
    let writing = cluster.spawn_client(async move {
        let tasks: Vec<_> = (0..writers)
            .map(|w| tokio::spawn(writer(w, u.clone(), start, until, a.clone())))
            .collect();
        for t in tasks {
            t.await.expect("writer task");
        }
    });
    let watching: Vec<_> = (0..p.watchers)
        .map(|w| cluster.spawn_client(watcher(Spec::new(w), urls.clone(), target.clone())))
        .collect();
    let applied = apply::run(&schedule, &cluster).await;
    for line in applied.log {
        trace.record(line);
    }
    writing
        .await
        .map_err(|e| format!("writer panicked: {e:?}"))?;

    let u = urls.clone();
    let last = cluster
        .client(async move { final_revision(&u).await })
        .await;
    let last = last.ok_or_else(|| failure(seed, &schedule, &["no final revision".into()]))?;
    *target.lock().unwrap() = Some((last, Instant::now() + CATCH_UP));
    trace.record(format!("final revision {last}"));
    let mut logs = Vec::new();
    for w in watching {
        logs.push(w.await.map_err(|e| format!("watcher panicked: {e:?}"))?);
    }
    // A write whose writer gave up on it may still commit after `last` was read, and a watcher
    // may have seen it: the history must reach as far as any watcher was told about.
    let upto = logs.iter().filter_map(|l| l.reported).fold(last, u64::max);
    let u = urls.clone();
    let truth = cluster
        .client(async move { store_history(&u, upto).await })
        .await
        .map_err(|e| failure(seed, &schedule, &[e]))?;
    trace.record(format!("store history to {upto}: {} events", truth.len()));

    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let mut problems = check_acked(&acked, &truth);
    let watches: Vec<ResumedWatch> = logs
        .iter()
        .map(|l| {
            let mut w = l.watch.clone();
            w.caught_up_to = l.caught_up.then_some(last);
            w
        })
        .collect();
    let report = check_resumed_watches(&truth, &watches);
    problems.extend(report.violations.iter().map(|v| v.to_string()));
    problems.extend(check_prev_kvs(&logs, &truth));
    for l in &logs {
        if !l.caught_up {
            problems.push(format!(
                "[liveness] {} was not told about the final revision {last} within {CATCH_UP:?} \
                 after healing (newest revision it heard of: {:?})",
                l.watch.name, l.reported
            ));
        }
    }

    let mut stats = Stats {
        acked_writes: acked.len(),
        final_revision: last,
        ..Stats::default()
    };
    for l in &logs {
        stats.streams += l.watch.segments.len();
        stats.resumptions += l.watch.segments.len().saturating_sub(1);
        for s in &l.watch.segments {
            trace.record(describe(s));
            for r in &s.responses {
                match r {
                    Seen::Events { events } => stats.events += events.len(),
                    Seen::Progress { .. } => stats.progress += 1,
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(failure(seed, &schedule, &problems));
    }
    trace.record(format!("{stats:?}"));
    Ok(Passed {
        trace,
        simulated: began.elapsed(),
        stats,
    })
}

fn failure(seed: u64, schedule: &Schedule, problems: &[String]) -> String {
    scenario::failure("watch", seed, "watch_lease watch", problems, schedule, None)
}

/// One line per stream for the trace.
fn describe(s: &WatchStream) -> String {
    let mut line = format!(
        "{} start {} created {:?}:",
        s.name, s.start_revision, s.created_revision
    );
    for r in &s.responses {
        match r {
            Seen::Events { events } => {
                let revs: BTreeSet<u64> = events.iter().map(|e| e.revision).collect();
                line.push_str(&format!(" e{revs:?}"));
            }
            Seen::Progress { revision } => line.push_str(&format!(" p{revision}")),
        }
    }
    line
}

fn put_event(revision: u64, key: &str, value: &str) -> WatchEvent {
    WatchEvent {
        revision,
        key: key.to_string(),
        kind: EventKind::Put,
        value: Some(value.to_string()),
    }
}

fn delete_event(revision: u64, key: &str) -> WatchEvent {
    WatchEvent {
        revision,
        key: key.to_string(),
        kind: EventKind::Delete,
        value: None,
    }
}

/// The changes a transaction branch made, from its operations and their responses.
fn branch_events(revision: u64, ops: &[RequestOp], resps: &[OpResponse]) -> Vec<WatchEvent> {
    ops.iter()
        .zip(resps)
        .filter_map(|(op, resp)| match (&op.request, resp) {
            (Some(Op::RequestPut(p)), OpResponse::ResponsePut(_)) => {
                Some(put_event(revision, &text(&p.key), &text(&p.value)))
            }
            (Some(Op::RequestDeleteRange(d)), OpResponse::ResponseDeleteRange(r))
                if r.deleted > 0 =>
            {
                Some(delete_event(revision, &text(&d.key)))
            }
            _ => None,
        })
        .collect()
}

/// One writer: puts, deletes and transactions on the prefix (and puts outside it) through a
/// random member per request, until `until` has passed. Only acknowledged writes are recorded;
/// one that failed or timed out may or may not have happened, and the store's history decides.
async fn writer(
    w: u64,
    urls: Vec<String>,
    start: Instant,
    until: Duration,
    acked: Arc<Mutex<Vec<Acked>>>,
) {
    let mut i = 0u64;
    while start.elapsed() < until {
        i += 1;
        let (member, choice, keys, pause_ms) = {
            let mut rng = madsim::rand::thread_rng();
            let keys: Vec<&str> = KEYS.choose_multiple(&mut rng, 3).copied().collect();
            (
                rng.gen_range(0..urls.len()),
                // In quiet windows only outside the prefix (see `QUIET_EVERY`).
                if quiet(start.elapsed()) {
                    99
                } else {
                    rng.gen_range(0..100)
                },
                keys,
                rng.gen_range(10..120),
            )
        };
        let value = format!("{w}.{i}");
        if let Some(mut kv) = connect_kv(&urls[member], CONNECT_TIMEOUT).await {
            let done = match choice {
                0..=39 => {
                    let req = put_request(keys[0], &value);
                    match tokio::time::timeout(REQUEST_TIMEOUT, kv.put(req)).await {
                        Ok(Ok(r)) => {
                            let rev = revision(r.into_inner().header);
                            Some(Acked {
                                revision: rev,
                                events: vec![put_event(rev, keys[0], &value)],
                                what: format!("put {}={value}", keys[0]),
                            })
                        }
                        _ => None,
                    }
                }
                40..=54 => {
                    let req = DeleteRangeRequest {
                        key: Bytes::from(keys[0].to_string()),
                        ..Default::default()
                    };
                    match tokio::time::timeout(REQUEST_TIMEOUT, kv.delete_range(req)).await {
                        // Deleting nothing makes no revision: nothing to record.
                        Ok(Ok(r)) if r.get_ref().deleted > 0 => {
                            let rev = revision(r.into_inner().header);
                            Some(Acked {
                                revision: rev,
                                events: vec![delete_event(rev, keys[0])],
                                what: format!("delete {}", keys[0]),
                            })
                        }
                        _ => None,
                    }
                }
                55..=87 => {
                    // If keys[2] exists: put keys[0], delete keys[1]; else put keys[0] and
                    // keys[1], then create keys[2] — several events at one revision either way.
                    let success = vec![put_op(keys[0], &value), delete_op(keys[1])];
                    let failure = vec![
                        put_op(keys[0], &value),
                        put_op(keys[1], &value),
                        put_op(keys[2], &value),
                    ];
                    let req = TxnRequest {
                        compare: vec![Compare {
                            result: CompareResult::Greater as i32,
                            target: CompareTarget::Version as i32,
                            key: Bytes::from(keys[2].to_string()),
                            target_union: Some(TargetUnion::Version(0)),
                            ..Default::default()
                        }],
                        success: success.clone(),
                        failure: failure.clone(),
                    };
                    match tokio::time::timeout(REQUEST_TIMEOUT, kv.txn(req)).await {
                        Ok(Ok(r)) => {
                            let r = r.into_inner();
                            let rev = revision(r.header);
                            let resps: Vec<OpResponse> =
                                r.responses.into_iter().filter_map(|o| o.response).collect();
                            let ops = if r.succeeded { &success } else { &failure };
                            Some(Acked {
                                revision: rev,
                                events: branch_events(rev, ops, &resps),
                                what: format!("txn {keys:?} succeeded={}", r.succeeded),
                            })
                        }
                        _ => None,
                    }
                }
                _ => {
                    let key = format!("{OUTSIDE}{w}");
                    let req = put_request(&key, &value);
                    match tokio::time::timeout(REQUEST_TIMEOUT, kv.put(req)).await {
                        Ok(Ok(r)) => Some(Acked {
                            revision: revision(r.into_inner().header),
                            events: Vec::new(),
                            what: format!("put {key}={value}"),
                        }),
                        _ => None,
                    }
                }
            };
            if let Some(a) = done {
                acked.lock().unwrap().push(a);
            }
        }
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    }
}

/// The final revision, from a linearizable read through any member (bounded retries).
async fn final_revision(urls: &[String]) -> Option<u64> {
    wait_leader(urls).await;
    for _ in 0..50 {
        for url in urls {
            let Some(mut kv) = connect_kv(url, CONNECT_TIMEOUT).await else {
                continue;
            };
            let req = get_request("\0");
            if let Ok(Ok(r)) = tokio::time::timeout(REQUEST_TIMEOUT, kv.range(req)).await {
                return Some(revision(r.into_inner().header));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// The store's history of [`PREFIX`] up to revision `last`, rebuilt from the prefix's contents
/// at every revision: a key whose `mod_revision` is `r` was put at `r`; a key present at `r - 1`
/// and gone at `r` was deleted at `r`.
async fn store_history(urls: &[String], last: u64) -> Result<Vec<WatchEvent>, String> {
    let mut errors = Vec::new();
    for url in urls {
        match history_from(url, last).await {
            Ok(h) => return Ok(h),
            Err(e) => errors.push(format!("{url}: {e}")),
        }
    }
    Err(format!(
        "could not read the store's history: {}",
        errors.join("; ")
    ))
}

async fn history_from(url: &str, last: u64) -> Result<Vec<WatchEvent>, String> {
    let mut kv = connect_kv(url, CONNECT_TIMEOUT)
        .await
        .ok_or("no connection")?;
    let range = |revision: u64, serializable: bool| RangeRequest {
        revision: revision as i64,
        serializable,
        ..prefix_request(PREFIX)
    };
    // A linearizable read first: afterwards this member has applied `last`, so local reads of
    // every earlier revision are complete.
    tokio::time::timeout(REQUEST_TIMEOUT, kv.range(range(last, false)))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let mut events = Vec::new();
    let mut before: BTreeMap<String, (String, i64)> = BTreeMap::new();
    for rev in 1..=last {
        let r = tokio::time::timeout(REQUEST_TIMEOUT, kv.range(range(rev, true)))
            .await
            .map_err(|_| format!("timeout at revision {rev}"))?
            .map_err(|e| format!("revision {rev}: {e}"))?
            .into_inner();
        let now: BTreeMap<String, (String, i64)> = r
            .kvs
            .iter()
            .map(|kv| (text(&kv.key), (text(&kv.value), kv.mod_revision)))
            .collect();
        for (key, (value, m)) in &now {
            if *m == rev as i64 {
                events.push(put_event(rev, key, value));
            } else if before.get(key) != Some(&(value.clone(), *m)) {
                return Err(format!(
                    "key {key} changed at revision {rev} without a new mod_revision"
                ));
            }
        }
        for key in before.keys().filter(|k| !now.contains_key(*k)) {
            events.push(delete_event(rev, key));
        }
        before = now;
    }
    Ok(events)
}

/// Every acknowledged write is in the store's history at the revision its response named, whole
/// (a transaction's changes all at that revision, and nothing else there).
fn check_acked(acked: &[Acked], truth: &[WatchEvent]) -> Vec<String> {
    let mut at: BTreeMap<u64, BTreeSet<(String, EventKind, Option<String>)>> = BTreeMap::new();
    for e in truth {
        at.entry(e.revision)
            .or_default()
            .insert((e.key.clone(), e.kind, e.value.clone()));
    }
    let mut problems = Vec::new();
    let mut seen_revisions = BTreeMap::new();
    for a in acked {
        let want: BTreeSet<(String, EventKind, Option<String>)> = a
            .events
            .iter()
            .map(|e| (e.key.clone(), e.kind, e.value.clone()))
            .collect();
        let got = at.get(&a.revision).cloned().unwrap_or_default();
        if want != got {
            problems.push(format!(
                "[durable] acknowledged {} at revision {}: the store's history has {got:?} there, \
                 expected {want:?}",
                a.what, a.revision
            ));
        }
        if let Some(other) = seen_revisions.insert(a.revision, a.what.clone()) {
            problems.push(format!(
                "[durable] {} and {other} were both acknowledged at revision {}",
                a.what, a.revision
            ));
        }
    }
    problems
}

/// Every `prev_kv` delivered is the key's state just before the event, per the store's history.
fn check_prev_kvs(logs: &[WatcherLog], truth: &[WatchEvent]) -> Vec<String> {
    let mut history: BTreeMap<&str, Vec<&WatchEvent>> = BTreeMap::new();
    for e in truth {
        history.entry(e.key.as_str()).or_default().push(e);
    }
    let mut problems = Vec::new();
    for l in logs {
        for (stream, rev, key, prev) in &l.prev_kvs {
            let expected = history.get(key.as_str()).and_then(|h| {
                h.iter()
                    .rev()
                    .find(|e| e.revision < *rev)
                    .filter(|e| e.kind == EventKind::Put)
                    .map(|e| (e.value.clone().unwrap_or_default(), e.revision))
            });
            if *prev != expected {
                problems.push(format!(
                    "[prev_kv] {stream}: event {key}@{rev} carried prev_kv {prev:?}, but the key \
                     was {expected:?} before it"
                ));
            }
        }
    }
    problems
}

/// The events of a response, as the checker sees them, and their `prev_kv`s.
fn convert(events: &[Event]) -> (Vec<WatchEvent>, Vec<PrevKv>) {
    let mut seen = Vec::new();
    let mut prevs = Vec::new();
    for e in events {
        let Some(kv) = &e.kv else { continue };
        let key = text(&kv.key);
        let rev = kv.mod_revision as u64;
        let kind = if e.r#type == EventType::Delete as i32 {
            EventKind::Delete
        } else {
            EventKind::Put
        };
        seen.push(WatchEvent {
            revision: rev,
            key: key.clone(),
            kind,
            value: (kind == EventKind::Put).then(|| text(&kv.value)),
        });
        let prev = e
            .prev_kv
            .as_ref()
            .map(|p| (text(&p.value), p.mod_revision as u64));
        prevs.push((rev, key, prev));
    }
    (seen, prevs)
}

fn progress_request() -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
    }
}

/// Writers leave the prefix alone for the last `QUIET_FOR` of every `QUIET_EVERY` (writing
/// only outside it), so watchers fall quiet and get progress notifications whose revision is
/// past their last event.
const QUIET_EVERY: Duration = Duration::from_millis(1500);
/// See `QUIET_EVERY`.
const QUIET_FOR: Duration = Duration::from_millis(600);

fn quiet(elapsed: Duration) -> bool {
    elapsed.as_millis() % QUIET_EVERY.as_millis() >= (QUIET_EVERY - QUIET_FOR).as_millis()
}

/// One watcher: a watch on [`PREFIX`] kept going over as many streams as it takes, until it has
/// been told about the final revision (once `target` holds it) or `CATCH_UP` has passed.
async fn watcher(spec: Spec, urls: Vec<String>, target: Target) -> WatcherLog {
    let name = format!("watcher{}", spec.id);
    let mut log = WatcherLog {
        watch: ResumedWatch {
            name: name.clone(),
            segments: Vec::new(),
            caught_up_to: None,
        },
        prev_kvs: Vec::new(),
        reported: spec.from_start.then_some(0),
        caught_up: false,
    };
    let mut member = spec.id % urls.len();
    let mut attempt = 0;
    loop {
        if let Some((goal, deadline)) = *target.lock().unwrap() {
            if log.reported.is_some_and(|r| r >= goal) {
                log.caught_up = true;
                return log;
            }
            if Instant::now() >= deadline {
                return log;
            }
        }
        let start_revision = log.reported.map_or(0, |r| r + 1);
        let stream_name = format!("{name}.{attempt}@n{}", member + 1);
        attempt += 1;
        if let Some((stream, prevs)) =
            follow(spec, &urls[member], stream_name, start_revision, &target).await
        {
            let reported = stream
                .created_revision
                .into_iter()
                .chain(stream.responses.iter().map(|r| match r {
                    Seen::Events { events } => events.iter().map(|e| e.revision).max().unwrap_or(0),
                    Seen::Progress { revision } => *revision,
                }))
                .max();
            log.reported = log.reported.max(reported);
            if spec.prev_kv {
                log.prev_kvs.extend(prevs);
            }
            log.watch.segments.push(stream);
        }
        // Resume on another member, after a short pause.
        let pause = {
            let mut rng = madsim::rand::thread_rng();
            member = (member + rng.gen_range(1..urls.len().max(2))) % urls.len();
            rng.gen_range(20..200)
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// Opens one stream on `url` and follows it until it breaks, goes silent for `DEAD`, the
/// watcher decides to move (now and then, to resume without a fault too), or it reports the
/// final revision (or runs out of time to). `None` if the watch was never created (nothing was
/// delivered).
async fn follow(
    spec: Spec,
    url: &str,
    name: String,
    start_revision: u64,
    target: &Target,
) -> Option<(WatchStream, Vec<PrevSeen>)> {
    let mut client = WatchClient::new(channel(url, CONNECT_TIMEOUT).await?);
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: Bytes::from_static(PREFIX.as_bytes()),
            range_end: Bytes::from(WatchStream::prefix_end(PREFIX)),
            start_revision: start_revision as i64,
            progress_notify: spec.progress_notify,
            prev_kv: spec.prev_kv,
            ..Default::default()
        })),
    };
    // etcd sends a stream's response headers with its first response: ask before waiting.
    tx.send(create).await.ok()?;
    let requests =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let mut request = tonic::Request::new(requests);
    if spec.require_leader {
        request.metadata_mut().insert(
            "hasleader",
            tonic::metadata::MetadataValue::from_static("true"),
        );
    }
    let mut responses = tokio::time::timeout(DEAD, client.watch(request))
        .await
        .ok()?
        .ok()?
        .into_inner();
    let created = tokio::time::timeout(DEAD, responses.message())
        .await
        .ok()?
        .ok()??;
    if !created.created || created.canceled {
        return None;
    }
    let mut stream = WatchStream {
        name: name.clone(),
        key: PREFIX.to_string(),
        range_end: Some(WatchStream::prefix_end(PREFIX)),
        start_revision,
        created_revision: (start_revision == 0).then(|| revision(created.header)),
        responses: Vec::new(),
    };
    let mut prevs = Vec::new();
    let mut reported = stream
        .created_revision
        .unwrap_or(start_revision.saturating_sub(1));
    let mut heard = Instant::now();
    let mut asked: Option<Instant> = None;
    loop {
        let goal = *target.lock().unwrap();
        if goal.is_some_and(|(g, deadline)| reported >= g || Instant::now() >= deadline) {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(300), responses.message()).await {
            Ok(Ok(Some(r))) => {
                heard = Instant::now();
                if r.canceled {
                    break;
                }
                if r.created {
                    continue;
                }
                if r.events.is_empty() {
                    let revision = revision(r.header);
                    reported = reported.max(revision);
                    stream.responses.push(Seen::Progress { revision });
                } else {
                    let (events, p) = convert(&r.events);
                    reported = reported.max(events.iter().map(|e| e.revision).max().unwrap_or(0));
                    prevs.extend(
                        p.into_iter()
                            .map(|(rev, key, prev)| (name.clone(), rev, key, prev)),
                    );
                    stream.responses.push(Seen::Events { events });
                    let (leave, ask) = {
                        let mut rng = madsim::rand::thread_rng();
                        (rng.gen_bool(0.02), rng.gen_bool(0.1))
                    };
                    if leave {
                        break;
                    }
                    // A bookmark in the middle of a busy stream: every event up to the
                    // revision it names must have arrived before it.
                    if ask {
                        if tx.send(progress_request()).await.is_err() {
                            break;
                        }
                        asked = Some(Instant::now());
                    }
                }
            }
            // The stream ended (member gone, or no leader for a require-leader stream).
            Ok(Ok(None)) | Ok(Err(_)) => break,
            Err(_) => {
                if heard.elapsed() >= DEAD {
                    break;
                }
                let due = asked.is_none_or(|t| t.elapsed() >= Duration::from_millis(300));
                if due && (goal.is_some() || heard.elapsed() >= SILENT) {
                    if tx.send(progress_request()).await.is_err() {
                        break;
                    }
                    asked = Some(Instant::now());
                }
            }
        }
    }
    Some((stream, prevs))
}
