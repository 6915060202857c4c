//! The watch workload's watchers: one watch on the prefix, resumed over as many streams as it
//! takes, the way etcd's clients resume theirs.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use bytes::Bytes;
use detcd::proto::etcdserverpb::watch_client::WatchClient;
use detcd::proto::etcdserverpb::watch_request::RequestUnion;
use detcd::proto::etcdserverpb::{WatchCreateRequest, WatchProgressRequest, WatchRequest};
use detcd_jepsen::watch::{ResumedWatch, WatchResponse as Seen, WatchStream};
use rand::Rng;
use tokio::time::Instant;

use super::events::convert;
use super::{PrevSeen, Target, WatcherLog, CONNECT_TIMEOUT, DEAD, PREFIX, SILENT};
use crate::workloads::client::{channel, revision};

/// How a watcher watches.
#[derive(Debug, Clone, Copy)]
pub(super) struct Spec {
    /// Which watcher (the options below follow from it, and so does its first member).
    id: usize,
    /// Asks for each event's previous key-value.
    prev_kv: bool,
    /// Asks for progress notifications.
    progress_notify: bool,
    /// Sets etcd's require-leader metadata: the stream ends while its member has no leader.
    require_leader: bool,
    /// Replays the whole history (start revision 1) instead of starting from now.
    from_start: bool,
}

impl Spec {
    /// Watcher `id`'s options: an even mix over the watchers.
    pub(super) fn new(id: usize) -> Spec {
        Spec {
            id,
            prev_kv: id & 1 == 0,
            progress_notify: id % 3 != 2,
            require_leader: id & 1 == 1,
            from_start: id == 0,
        }
    }
}

/// One watcher: a watch on [`PREFIX`] kept going over as many streams as it takes, until it has
/// been told about the final revision (once `target` holds it) or `CATCH_UP` has passed.
pub(super) async fn watcher(spec: Spec, urls: Vec<String>, target: Target) -> WatcherLog {
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
            // Canceled because its start was compacted: go on from the oldest revision left.
            if let Some(c) = stream.compacted {
                log.reported = log.reported.max(Some(c - 1));
            }
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
    let compacted = |r: &detcd::proto::etcdserverpb::WatchResponse| {
        (r.canceled && r.compact_revision > 0).then_some(r.compact_revision as u64)
    };
    let mut stream = WatchStream {
        name: name.clone(),
        key: PREFIX.to_string(),
        range_end: Some(WatchStream::prefix_end(PREFIX)),
        start_revision,
        created_revision: (start_revision == 0).then(|| revision(created.header)),
        responses: Vec::new(),
        compacted: compacted(&created),
    };
    if stream.compacted.is_some() {
        return Some((stream, Vec::new()));
    }
    if !created.created || created.canceled {
        return None;
    }
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
                    stream.compacted = compacted(&r);
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

/// A request for a progress notification on the stream.
fn progress_request() -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
    }
}
