//! Watch workloads (`--workload watch`): how fast a put reaches its watchers, and how the server
//! fans one put out to many watchers of one prefix.
//!
//! Every case is the same experiment with a different shape: `watchers` watchers on a fresh
//! prefix, spread over `streams` Watch streams (each on its own connection), all created before
//! the first put; then `writers` writers (each on its own connection) do `--puts` puts under the
//! prefix between them, each writer sequentially, optionally paced at a fixed rate. For every put
//! the writer records the revision, when it sent it and when its ack arrived; every stream
//! records when each revision reached each of its watchers.
//!
//! - **Latency** (`ack→all`): per put, from its ack at the writer until the last watcher
//!   received its event (0 when every watcher had it before the ack — both servers notify
//!   watchers as they apply, which can precede the ack). p50/p99/max over the puts. Also from
//!   the put's *send* to the last watcher (`put->all`), which includes the commit.
//! - **Throughput**: events delivered (puts × watchers) per second, from the first put sent
//!   until the last event received. An unpaced writer's rate is bounded by the server's put
//!   latency, so it is printed too; the paced fan-out cases offer both servers the same load.
//! - **Correctness**: every watcher must receive exactly the revisions the writers were
//!   acknowledged, each once, in increasing order — anything else is reported as an error and
//!   fails the run, since a benchmark that loses events measures nothing.
//! - **Cost**: server CPU (all members, from `/proc`) per delivered event, including the
//!   writes; events per response (a server that batches revisions into one response per
//!   watcher sends fewer, larger messages); the time to create the watchers and the server RSS
//!   they add.
//!
//! With several members, watcher streams start on the second member and writers on the first
//! (both round-robin), so a single watcher sees writes that another member acknowledged.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use detcd::proto::etcdserverpb::kv_client::KvClient;
use detcd::proto::etcdserverpb::watch_client::WatchClient;
use detcd::proto::etcdserverpb::watch_request::RequestUnion;
use detcd::proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest, WatchResponse};
use detcd::proto::mvccpb::event::EventType;
use tokio::sync::mpsc;

use crate::{ready_channel, Args, Server};

/// How long every watcher of a case may take to be created.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);

/// A stream still missing events gives up after this long without a response (events lost).
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// After its watchers have every event, a stream keeps listening this long to catch duplicates
/// or stray events arriving late.
const GRACE: Duration = Duration::from_millis(300);

/// One experiment: its shape (see the module docs).
#[derive(Debug, Clone)]
struct Case {
    name: String,
    streams: usize,
    watchers: usize,
    writers: usize,
    /// Puts per second for a single paced writer (`None`: as fast as acks come back).
    rate: Option<f64>,
}

impl Case {
    /// Watchers on stream `i`: as even a split as possible.
    fn watchers_on(&self, i: usize) -> usize {
        self.watchers / self.streams + usize::from(i < self.watchers % self.streams)
    }
}

/// What one case measured on one server.
struct Outcome {
    /// Events delivered per second (all watchers).
    events_per_sec: f64,
    /// Per put, ack→all latency, sorted.
    latency: Vec<Duration>,
    /// The writers' puts per second.
    puts_per_sec: f64,
    /// p50 and p99 of put-sent→all, which includes the put's own commit.
    from_sent_p50: Duration,
    from_sent_p99: Duration,
    /// Puts whose event had reached every watcher before the writer got the ack.
    before_ack: usize,
    /// Time to open the streams and create every watcher.
    create: Duration,
    /// Server CPU time (all members) from the first put until every stream finished.
    server_cpu: Option<Duration>,
    /// Events delivered (all watchers).
    delivered: usize,
    /// Responses that carried them.
    event_responses: usize,
    /// Server RSS (all members, KiB) before opening the streams and after creating the
    /// watchers.
    rss_kib: Option<(u64, u64)>,
    /// Correctness violations (empty when every watcher got every event once, in order).
    errors: Vec<String>,
}

/// Runs every watch case against etcd and detcd and prints the comparison; false if any
/// watcher missed, repeated or reordered an event.
pub async fn run(args: &Args, etcd: &Server, detcd: &Server) -> bool {
    let mut cases = vec![
        Case {
            name: "latency 1w seq".to_string(),
            streams: 1,
            watchers: 1,
            writers: 1,
            rate: None,
        },
        Case {
            name: format!("latency 1w c{}", args.writers),
            streams: 1,
            watchers: 1,
            writers: args.writers,
            rate: None,
        },
    ];
    for &s in &args.streams {
        assert!(
            s >= 1 && s <= args.watchers,
            "--streams: each of 1..=--watchers"
        );
        // A paced writer offers both servers the same load, so their latencies compare; a
        // sequential writer goes as fast as its acks (which differ between the servers);
        // concurrent writers push puts faster than a fan-out of this size may deliver them.
        let modes = [
            (1, Some(args.rate), format!("p{}", args.rate)),
            (1, None, "seq".to_string()),
            (args.writers, None, format!("c{}", args.writers)),
        ];
        for (writers, rate, mode) in modes {
            cases.push(Case {
                name: format!("fanout {}x{} {mode}", s, args.watchers.div_ceil(s)),
                streams: s,
                watchers: args.watchers,
                writers,
                rate: rate.map(|r| r as f64),
            });
        }
    }
    println!(
        "watch: {} puts per case, {}-byte values, {} member(s); etcd = {}, detcd = {}",
        args.puts, args.value_size, args.members[0], args.etcd, args.detcd
    );
    println!(
        "(fanout SxW: S streams, each on its own connection, of W watchers on one prefix; pR: 1 \
         writer paced at R puts/s, seq: 1 writer, cN: N concurrent writers. Latency: a put's ack \
         -> its event at every watcher.)"
    );
    println!(
        "{:<22} {:>11} {:>11} {:>7}   {:>22} {:>22} {:>8}",
        "case",
        "etcd ev/s",
        "detcd ev/s",
        "ratio",
        "etcd p50/p99/max ms",
        "detcd p50/p99/max ms",
        "p99 x"
    );
    let mut details = Vec::new();
    let mut ok = true;
    for (n, case) in cases.iter().enumerate() {
        let e = run_case(etcd, case, args, &format!("e{n}")).await;
        let d = run_case(detcd, case, args, &format!("d{n}")).await;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let triple = |o: &Outcome| {
            format!(
                "{:.2}/{:.2}/{:.2}",
                ms(pct(&o.latency, 50)),
                ms(pct(&o.latency, 99)),
                ms(o.latency.last().copied().unwrap_or_default())
            )
        };
        let p99 = |o: &Outcome| ms(pct(&o.latency, 99));
        println!(
            "{:<22} {:>11.0} {:>11.0} {:>6.2}x   {:>22} {:>22} {:>7.2}x",
            case.name,
            e.events_per_sec,
            d.events_per_sec,
            d.events_per_sec / e.events_per_sec,
            triple(&e),
            triple(&d),
            // A p99 of 0 (every event before its ack) would divide by zero.
            p99(&d).max(0.001) / p99(&e).max(0.001)
        );
        for (server, o) in [("etcd", &e), ("detcd", &d)] {
            for err in &o.errors {
                ok = false;
                eprintln!("ERROR {server} {}: {err}", case.name);
            }
        }
        details.push((case.name.clone(), e, d));
    }
    print_details(&details);
    if ok {
        println!("every watcher received every event exactly once, in revision order");
    } else {
        eprintln!("ERROR: watchers lost, repeated or reordered events (see above)");
    }
    ok
}

/// The second table: what explains the first (put rates, put->all, batching, CPU, memory).
fn print_details(details: &[(String, Outcome, Outcome)]) {
    println!();
    println!(
        "{:<22} {:>10} {:>10}   {:>15} {:>15}   {:>11}   {:>11}   {:>17}   {:>15} {:>15}",
        "case",
        "etcd put/s",
        "detcd put/s",
        "etcd put->all",
        "detcd put->all",
        "before ack",
        "ev/resp",
        "CPU us/ev (x)",
        "etcd create ms",
        "detcd create ms"
    );
    for (name, e, d) in details {
        let sent = |o: &Outcome| {
            format!(
                "{:.2}/{:.2}",
                o.from_sent_p50.as_secs_f64() * 1000.0,
                o.from_sent_p99.as_secs_f64() * 1000.0
            )
        };
        let early = |o: &Outcome| {
            format!(
                "{:.0}%",
                100.0 * o.before_ack as f64 / o.latency.len().max(1) as f64
            )
        };
        let create = |o: &Outcome| {
            let rss = match o.rss_kib {
                Some((before, after)) => format!(
                    "{:.0}MiB+{:.1}",
                    after as f64 / 1024.0,
                    (after as f64 - before as f64) / 1024.0
                ),
                None => "?".to_string(),
            };
            format!("{:.0}, {rss}", o.create.as_secs_f64() * 1000.0)
        };
        let per_response = |o: &Outcome| o.delivered as f64 / o.event_responses.max(1) as f64;
        let cpu = |o: &Outcome| {
            o.server_cpu
                .map(|c| c.as_secs_f64() * 1e6 / o.delivered.max(1) as f64)
        };
        let cpu = match (cpu(e), cpu(d)) {
            (Some(e), Some(d)) => format!("{e:.1}/{d:.1} ({:.2}x)", d / e.max(1e-9)),
            _ => "?".to_string(),
        };
        println!(
            "{:<22} {:>10.0} {:>10.0}   {:>15} {:>15}   {:>11}   {:>11}   {:>17}   {:>15} {:>15}",
            name,
            e.puts_per_sec,
            d.puts_per_sec,
            sent(e),
            sent(d),
            format!("{}/{}", early(e), early(d)),
            format!("{:.1}/{:.1}", per_response(e), per_response(d)),
            cpu,
            create(e),
            create(d)
        );
    }
    println!(
        "(put/s: the writers' rate; put->all p50/p99 ms: from sending a put to its event at every \
         watcher; before ack: puts whose event reached every watcher before the ack, etcd/detcd; \
         ev/resp: events per response carrying events, etcd/detcd (above 1: revisions batched); \
         CPU: server CPU time (all members, writes included) per delivered event, etcd/detcd; \
         create: ms to open the streams and create the watchers, then server RSS (all members) \
         and its growth since before the streams opened)"
    );
}

/// The `p`th percentile of sorted durations.
fn pct(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// The smallest key above every key starting with `prefix` (etcd's prefix range end).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// One put as its writer saw it.
struct Put {
    revision: i64,
    sent: Instant,
    acked: Instant,
}

/// Runs `case` on `server` under a prefix unique to `tag`.
async fn run_case(server: &Server, case: &Case, args: &Args, tag: &str) -> Outcome {
    let urls = &server.urls;
    let prefix = Bytes::from(format!("/watchbench/{tag}/"));
    let range_end = Bytes::from(prefix_end(&prefix));

    // Writers connect first, so the watchers' RSS is measured with the writers' connections
    // already open on both sides of the comparison.
    let mut writers = Vec::new();
    for w in 0..case.writers {
        writers.push(KvClient::new(ready_channel(&urls[w % urls.len()]).await));
    }

    let rss_before = server.rss_kib();
    let create_start = Instant::now();
    let (ready_tx, mut ready_rx) = mpsc::channel(case.streams);
    let mut streams = Vec::new();
    for i in 0..case.streams {
        let url = urls[(i + 1) % urls.len()].clone();
        streams.push(tokio::spawn(watch_stream(
            url,
            prefix.clone(),
            range_end.clone(),
            case.watchers_on(i),
            args.puts,
            ready_tx.clone(),
        )));
    }
    drop(ready_tx);
    for _ in 0..case.streams {
        let ready = tokio::time::timeout(CREATE_TIMEOUT, ready_rx.recv()).await;
        assert!(
            matches!(ready, Ok(Some(()))),
            "{tag}: watchers not created within {CREATE_TIMEOUT:?}"
        );
    }
    let create = create_start.elapsed();
    let rss_kib = rss_before.zip(server.rss_kib());

    let value = Bytes::from(vec![b'v'; args.value_size]);
    let cpu_before = server.cpu_time();
    let write_start = Instant::now();
    let mut tasks = Vec::new();
    for (w, mut kv) in writers.into_iter().enumerate() {
        // The puts split as evenly as the watchers do.
        let n = args.puts / case.writers + usize::from(w < args.puts % case.writers);
        let prefix = prefix.clone();
        let value = value.clone();
        let rate = case.rate;
        tasks.push(tokio::spawn(async move {
            let mut puts = Vec::with_capacity(n);
            for i in 0..n {
                if let Some(rate) = rate {
                    // A put that fell behind its slot goes at once: the rate is an upper bound.
                    let slot = write_start + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(slot.into()).await;
                }
                let mut key = prefix.to_vec();
                key.extend_from_slice(format!("{w:03}-{i:06}").as_bytes());
                let sent = Instant::now();
                let resp = kv
                    .put(PutRequest {
                        key: Bytes::from(key),
                        value: value.clone(),
                        ..Default::default()
                    })
                    .await
                    .expect("put")
                    .into_inner();
                let acked = Instant::now();
                let revision = resp.header.expect("a put response has a header").revision;
                puts.push(Put {
                    revision,
                    sent,
                    acked,
                });
            }
            puts
        }));
    }
    let mut puts = Vec::new();
    for t in tasks {
        puts.extend(t.await.expect("writer task"));
    }
    let mut results = Vec::new();
    for s in streams {
        results.push(s.await.expect("watch stream task"));
    }
    let server_cpu = cpu_before
        .zip(server.cpu_time())
        .map(|(before, after)| after.saturating_sub(before));
    let mut outcome = summarize(puts, results, write_start, case);
    outcome.create = create;
    outcome.rss_kib = rss_kib;
    outcome.server_cpu = server_cpu;
    outcome
}

/// Turns the writers' and streams' records into an [`Outcome`] (without the server-side
/// figures, which the caller fills in), checking every watcher.
fn summarize(
    mut puts: Vec<Put>,
    results: Vec<StreamResult>,
    write_start: Instant,
    case: &Case,
) -> Outcome {
    puts.sort_by_key(|p| p.revision);
    let expected: Vec<i64> = puts.iter().map(|p| p.revision).collect();
    let mut errors = Vec::new();
    if expected.windows(2).any(|w| w[0] == w[1]) {
        errors.push("two puts were acknowledged with the same revision".to_string());
    }

    // When each revision had reached every watcher: the latest arrival over all streams.
    let mut reached_all: HashMap<i64, Instant> = HashMap::new();
    let mut delivered = 0usize;
    let mut event_responses = 0usize;
    let mut wrong = 0usize;
    for (s, r) in results.into_iter().enumerate() {
        event_responses += r.event_responses;
        errors.extend(r.problems.into_iter().map(|p| format!("stream {s}: {p}")));
        for (rev, at) in r.last_arrival {
            let e = reached_all.entry(rev).or_insert(at);
            *e = (*e).max(at);
        }
        for (w, got) in r.received.iter().enumerate() {
            delivered += got.len();
            if *got != expected {
                wrong += 1;
                if wrong <= 5 {
                    errors.push(format!(
                        "stream {s} watcher #{w}: {}",
                        describe_mismatch(got, &expected)
                    ));
                }
            }
        }
    }
    if wrong > 0 {
        errors.push(format!(
            "{wrong} of {} watchers did not receive exactly the {} acknowledged puts in order",
            case.watchers,
            expected.len()
        ));
    }

    let mut latency = Vec::with_capacity(puts.len());
    let mut from_sent = Vec::with_capacity(puts.len());
    let mut before_ack = 0;
    let mut last = write_start;
    let mut last_ack = write_start;
    for p in &puts {
        last_ack = last_ack.max(p.acked);
        let Some(&at) = reached_all.get(&p.revision) else {
            continue;
        };
        if at < p.acked {
            before_ack += 1;
        }
        latency.push(at.saturating_duration_since(p.acked));
        from_sent.push(at.saturating_duration_since(p.sent));
        last = last.max(at);
    }
    latency.sort();
    from_sent.sort();
    let rate = |n: usize, until: Instant| {
        let secs = until.duration_since(write_start).as_secs_f64();
        if secs > 0.0 {
            n as f64 / secs
        } else {
            0.0
        }
    };
    Outcome {
        events_per_sec: rate(delivered, last),
        puts_per_sec: rate(puts.len(), last_ack),
        from_sent_p50: pct(&from_sent, 50),
        from_sent_p99: pct(&from_sent, 99),
        latency,
        before_ack,
        create: Duration::ZERO,
        server_cpu: None,
        delivered,
        event_responses,
        rss_kib: None,
        errors,
    }
}

/// How a watcher's revisions differ from the acknowledged ones, for the error report.
fn describe_mismatch(got: &[i64], expected: &[i64]) -> String {
    let want: std::collections::HashSet<i64> = expected.iter().copied().collect();
    let mut seen = std::collections::HashSet::new();
    let duplicates = got.iter().filter(|r| !seen.insert(**r)).count();
    let missing = want.difference(&seen).count();
    let foreign = seen.difference(&want).count();
    let reordered = got.windows(2).filter(|w| w[0] >= w[1]).count();
    format!(
        "received {} events (expected {}): {missing} missing, {duplicates} duplicated, \
         {foreign} never acknowledged, {reordered} out of revision order",
        got.len(),
        expected.len()
    )
}

/// What one stream saw.
struct StreamResult {
    /// Per revision, when the last of this stream's watchers received it (arrivals are in time
    /// order, so the last write wins).
    last_arrival: HashMap<i64, Instant>,
    /// Per watcher (in creation order), the revisions of its events in arrival order.
    received: Vec<Vec<i64>>,
    /// Responses that carried events.
    event_responses: usize,
    /// Responses that should not happen: refused creates, cancellations, stray events, a
    /// stream that ended or went silent.
    problems: Vec<String>,
}

/// One stream's bookkeeping while it runs.
struct StreamState {
    prefix: Bytes,
    /// Events each watcher must receive.
    want: usize,
    /// Watch ID → index in `received`.
    index: HashMap<i64, usize>,
    created: usize,
    /// Watchers that have all their events, or will never get more (refused or canceled).
    finished: usize,
    result: StreamResult,
}

impl StreamState {
    fn on_response(&mut self, r: WatchResponse, at: Instant) {
        let problems = &mut self.result.problems;
        if r.created {
            self.created += 1;
            if r.canceled {
                problems.push(format!("create refused: {}", r.cancel_reason));
                self.finished += 1;
            } else if self
                .index
                .insert(r.watch_id, self.result.received.len())
                .is_some()
            {
                problems.push(format!("watch ID {} created twice", r.watch_id));
                self.finished += 1;
            } else {
                self.result.received.push(Vec::with_capacity(self.want));
                if self.want == 0 {
                    self.finished += 1;
                }
            }
            return;
        }
        let Some(&w) = self.index.get(&r.watch_id) else {
            if !r.events.is_empty() || r.canceled {
                problems.push(format!("a response for unknown watch ID {}", r.watch_id));
            }
            return;
        };
        if !r.events.is_empty() {
            self.result.event_responses += 1;
        }
        let got = &mut self.result.received[w];
        let before = got.len();
        for e in &r.events {
            let Some(kv) = &e.kv else {
                problems.push("an event without a key-value".to_string());
                continue;
            };
            if !kv.key.starts_with(&self.prefix) || e.r#type != EventType::Put as i32 {
                problems.push(format!(
                    "unexpected event (type {}) on key {:?}",
                    e.r#type, kv.key
                ));
            }
            got.push(kv.mod_revision);
            self.result.last_arrival.insert(kv.mod_revision, at);
        }
        if before < self.want && got.len() >= self.want {
            self.finished += 1;
        }
        if r.canceled {
            problems.push(format!(
                "watcher {} canceled by the server (compact revision {}, reason {:?})",
                r.watch_id, r.compact_revision, r.cancel_reason
            ));
            if got.len() < self.want {
                self.finished += 1;
            }
        }
    }

    fn complete(&self) -> bool {
        self.finished >= self.created
    }
}

/// Opens one Watch stream to `url`, creates `watchers` watchers on the prefix `[key,
/// range_end)`, reports on `ready` once all are created, then records events until each has
/// `want` of them (plus a short grace to catch extras) or the stream goes silent.
async fn watch_stream(
    url: String,
    key: Bytes,
    range_end: Bytes,
    watchers: usize,
    want: usize,
    ready: mpsc::Sender<()>,
) -> StreamResult {
    let mut client = WatchClient::new(ready_channel(&url).await);
    // Every create request is queued before the call starts; the sender stays open for the
    // whole run (closing it would half-close the stream).
    let (tx, rx) = mpsc::channel::<WatchRequest>(watchers.max(1));
    for _ in 0..watchers {
        let create = WatchCreateRequest {
            key: key.clone(),
            range_end: range_end.clone(),
            ..Default::default()
        };
        tx.send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(create)),
        })
        .await
        .expect("the request queue is open");
    }
    let requests =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let mut responses = client.watch(requests).await.expect("watch").into_inner();
    let mut st = StreamState {
        prefix: key,
        want,
        index: HashMap::new(),
        created: 0,
        finished: 0,
        result: StreamResult {
            last_arrival: HashMap::new(),
            received: Vec::with_capacity(watchers),
            event_responses: 0,
            problems: Vec::new(),
        },
    };
    while st.created < watchers {
        match tokio::time::timeout(CREATE_TIMEOUT, responses.message()).await {
            Ok(Ok(Some(r))) => st.on_response(r, Instant::now()),
            other => panic!("watch stream to {url} failed while creating watchers: {other:?}"),
        }
    }
    // The coordinator may have given up already; then nobody listens, which is fine.
    let _ = ready.send(()).await;
    loop {
        let wait = if st.complete() { GRACE } else { IDLE_TIMEOUT };
        match tokio::time::timeout(wait, responses.message()).await {
            Ok(Ok(Some(r))) => st.on_response(r, Instant::now()),
            Ok(Ok(None)) => {
                st.result
                    .problems
                    .push("the server ended the stream".to_string());
                break;
            }
            Ok(Err(status)) => {
                st.result.problems.push(format!("stream failed: {status}"));
                break;
            }
            Err(_) => {
                if !st.complete() {
                    st.result.problems.push(format!(
                        "no response for {IDLE_TIMEOUT:?} while {} watchers still miss events",
                        st.created - st.finished
                    ));
                }
                break;
            }
        }
    }
    drop(tx);
    st.result
}

#[cfg(test)]
mod tests {
    use super::*;
    use detcd::proto::mvccpb::{Event, KeyValue};

    fn state(want: usize) -> StreamState {
        StreamState {
            prefix: Bytes::from_static(b"/p/"),
            want,
            index: HashMap::new(),
            created: 0,
            finished: 0,
            result: StreamResult {
                last_arrival: HashMap::new(),
                received: Vec::new(),
                event_responses: 0,
                problems: Vec::new(),
            },
        }
    }

    fn created(id: i64) -> WatchResponse {
        WatchResponse {
            created: true,
            watch_id: id,
            ..Default::default()
        }
    }

    fn events(id: i64, revs: &[i64]) -> WatchResponse {
        WatchResponse {
            watch_id: id,
            events: revs
                .iter()
                .map(|r| Event {
                    r#type: EventType::Put as i32,
                    kv: Some(KeyValue {
                        key: Bytes::from(format!("/p/{r}")),
                        mod_revision: *r,
                        ..Default::default()
                    }),
                    prev_kv: None,
                })
                .collect(),
            ..Default::default()
        }
    }

    fn case(watchers: usize) -> Case {
        Case {
            name: "t".to_string(),
            streams: 1,
            watchers,
            writers: 1,
            rate: None,
        }
    }

    /// Puts at revisions `revs`, acknowledged `ack_ms` after `t0`.
    fn puts(t0: Instant, revs: &[i64], ack_ms: u64) -> Vec<Put> {
        revs.iter()
            .map(|r| Put {
                revision: *r,
                sent: t0,
                acked: t0 + Duration::from_millis(ack_ms),
            })
            .collect()
    }

    #[test]
    fn whole_in_order_delivery_passes_and_times_the_last_watcher() {
        let t0 = Instant::now();
        let mut st = state(3);
        st.on_response(created(0), t0);
        st.on_response(created(1), t0);
        st.on_response(events(0, &[5, 6]), t0 + Duration::from_millis(2));
        assert!(!st.complete());
        st.on_response(events(1, &[5]), t0 + Duration::from_millis(3));
        st.on_response(events(1, &[6]), t0 + Duration::from_millis(4));
        st.on_response(events(0, &[7]), t0 + Duration::from_millis(5));
        st.on_response(events(1, &[7]), t0 + Duration::from_millis(9));
        assert!(st.complete());
        let o = summarize(puts(t0, &[5, 6, 7], 1), vec![st.result], t0, &case(2));
        assert!(o.errors.is_empty(), "{:?}", o.errors);
        assert_eq!((o.delivered, o.event_responses), (6, 5));
        // Revision 7 reached its last watcher 8 ms after its ack.
        assert_eq!(o.latency.last(), Some(&Duration::from_millis(8)));
    }

    #[test]
    fn lost_repeated_or_reordered_events_are_errors() {
        let t0 = Instant::now();
        for (got, what) in [
            (vec![5, 7], "1 missing"),
            (vec![5, 6, 6, 7], "1 duplicated"),
            (vec![5, 7, 6], "1 out of revision order"),
            (vec![5, 6, 7, 8], "1 never acknowledged"),
        ] {
            let mut st = state(3);
            st.on_response(created(0), t0);
            for r in got {
                st.on_response(events(0, &[r]), t0);
            }
            let o = summarize(puts(t0, &[5, 6, 7], 0), vec![st.result], t0, &case(1));
            assert!(
                o.errors.iter().any(|e| e.contains(what)),
                "{what}: {:?}",
                o.errors
            );
        }
    }

    #[test]
    fn refused_or_canceled_watchers_are_reported_and_do_not_hang_the_stream() {
        let t0 = Instant::now();
        let mut st = state(2);
        st.on_response(
            WatchResponse {
                canceled: true,
                cancel_reason: "no".to_string(),
                ..created(-1)
            },
            t0,
        );
        st.on_response(created(3), t0);
        st.on_response(
            WatchResponse {
                canceled: true,
                compact_revision: 4,
                ..events(3, &[])
            },
            t0,
        );
        assert!(st.complete());
        assert_eq!(st.result.problems.len(), 2);
    }

    #[test]
    fn prefix_ends_as_etcd_computes_them() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
