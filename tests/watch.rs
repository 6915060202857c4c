//! The Watch service against the real `etcdctl watch` (3.4) and, where the
//! behaviour is deterministic, against real etcd 3.4: the same script runs on
//! both (same ports, so the same member and cluster ids) and the outputs must
//! match after normalizing the raft term (etcd's first term is 2, detcd's 1).
//!
//! `etcdctl watch` runs until killed: it is spawned with piped stdout, its
//! lines are read with a bounded timeout, and it is killed when done. Requests
//! etcdctl cannot make (client-chosen watch IDs, filters, fragments, progress
//! notifications, cancel) go through a raw gRPC Watch stream.
//!
//! Set `DETCD_SKIP_ETCD_DIFF=1` to skip the comparisons when `/usr/bin/etcd`
//! is not installed; otherwise a missing etcd fails them.

// Real processes and real sockets: not part of the simulator build.
#![cfg(not(madsim))]
// Real processes driven in real time: the seam rule is for the server.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{base64_encode, Builder, Kind, Server};
use detcd::proto::etcdserverpb::kv_client::KvClient;
use detcd::proto::etcdserverpb::watch_client::WatchClient;
use detcd::proto::etcdserverpb::watch_create_request::FilterType;
use detcd::proto::etcdserverpb::watch_request::RequestUnion;
use detcd::proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, PutRequest, WatchCancelRequest, WatchCreateRequest,
    WatchProgressRequest, WatchRequest, WatchResponse,
};
use detcd::proto::mvccpb::Event;
use serde_json::Value;

use common::etcdctl_process::{EtcdctlProcess as EtcdctlWatch, EXPECT, QUIET};

// ---------------------------------------------------------------------------
// etcdctl watch as a long-running process

/// Puts `key` until the watch prints something, then drains what the probes
/// caused: afterwards the watch is known to be registered on the server.
fn established(server: &Server, w: &EtcdctlWatch, key: &str) {
    for i in 0..50 {
        server.ok(&["put", key, &format!("probe{i}")]);
        if w.line(Duration::from_millis(300)).is_some() {
            w.until_quiet();
            return;
        }
    }
    panic!(
        "watch never saw the probe key {key}; stderr: {}",
        w.stderr()
    );
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// `(type, key, value, mod_revision)` of each event of a `-w json` line.
fn events(v: &Value) -> Vec<(String, String, String, i64)> {
    v["Events"]
        .as_array()
        .unwrap_or_else(|| panic!("no Events in {v}"))
        .iter()
        .map(|e| {
            let ty = if e["type"].as_i64() == Some(1) {
                "DELETE"
            } else {
                "PUT"
            };
            let s = |f: &Value| {
                String::from_utf8(common::base64_decode(f.as_str().unwrap_or(""))).unwrap()
            };
            (
                ty.to_string(),
                s(&e["kv"]["key"]),
                s(&e["kv"]["value"]),
                e["kv"]["mod_revision"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn ev(ty: &str, k: &str, v: &str, rev: i64) -> (String, String, String, i64) {
    (ty.to_string(), k.to_string(), v.to_string(), rev)
}

// ---------------------------------------------------------------------------
// detcd alone: etcdctl watch

#[test]
fn watch_key_from_now_json() {
    let s = Server::detcd();
    let w = EtcdctlWatch::spawn(&s, "watch", &["foo", "-w", "json"]);
    established(&s, &w, "foo");
    let r = s.revision();
    s.ok(&["put", "foo", "v1"]);
    s.ok(&["put", "bar", "x"]);
    s.ok(&["put", "foo", "v2"]);
    s.ok(&["del", "foo"]);
    let txn = s.etcdctl(&["txn"], Some("\nput foo v3\nput foo2 y\n\n\n"));
    assert!(txn.success(), "{txn:?}");
    let lines = w.lines(4);
    let got: Vec<Value> = lines.iter().map(|l| json(l)).collect();
    assert_eq!(events(&got[0]), vec![ev("PUT", "foo", "v1", r + 1)]);
    assert_eq!(events(&got[1]), vec![ev("PUT", "foo", "v2", r + 3)]);
    assert_eq!(events(&got[2]), vec![ev("DELETE", "foo", "", r + 4)]);
    assert_eq!(events(&got[3]), vec![ev("PUT", "foo", "v3", r + 5)]);
    for (v, rev) in got.iter().zip([r + 1, r + 3, r + 4, r + 5]) {
        assert_eq!(v["Header"]["revision"].as_i64(), Some(rev), "{v}");
        assert_eq!(v["Canceled"], Value::Bool(false));
        assert_eq!(v["Created"], Value::Bool(false));
        assert_eq!(v["CompactRevision"].as_i64(), Some(0));
    }
    // The delete event carries only the key and its revision.
    let del = &got[2]["Events"][0]["kv"];
    assert_eq!(
        del.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["key", "mod_revision"]
    );
    assert_eq!(w.line(QUIET), None, "no duplicates or extra events");
}

#[test]
fn watch_prefix_and_range_simple_output() {
    let s = Server::detcd();
    let pre = EtcdctlWatch::spawn(&s, "watch", &["--prefix", "fo"]);
    established(&s, &pre, "fo-probe");
    let range = EtcdctlWatch::spawn(&s, "watch", &["foa", "fop"]);
    established(&s, &range, "foo");
    pre.until_quiet();
    s.ok(&["put", "foo", "1"]);
    s.ok(&["put", "bar", "2"]);
    s.ok(&["put", "fox", "3"]);
    s.ok(&["del", "--prefix", "fo"]);
    assert_eq!(
        pre.lines(15),
        [
            "PUT", "foo", "1", "PUT", "fox", "3", "DELETE", "fo-probe", "", "DELETE", "foo", "",
            "DELETE", "fox", ""
        ]
    );
    assert_eq!(range.lines(6), ["PUT", "foo", "1", "DELETE", "foo", ""]);
    assert_eq!(pre.line(QUIET), None);
    assert_eq!(range.line(Duration::from_millis(100)), None);
}

#[test]
fn watch_rev_replays_history_then_continues_live() {
    let s = Server::detcd();
    s.ok(&["put", "foo", "a"]); // 2
    s.ok(&["put", "foo", "b"]); // 3
    s.ok(&["put", "foo2", "c"]); // 4
    s.ok(&["del", "foo"]); // 5
    let w = EtcdctlWatch::spawn(&s, "watch", &["foo", "--rev=2", "-w", "json"]);
    // All of history in one response, at the current revision.
    let first = json(&w.lines(1)[0]);
    assert_eq!(
        events(&first),
        vec![
            ev("PUT", "foo", "a", 2),
            ev("PUT", "foo", "b", 3),
            ev("DELETE", "foo", "", 5)
        ]
    );
    assert_eq!(first["Header"]["revision"].as_i64(), Some(5));
    s.ok(&["put", "foo", "d"]);
    let next = json(&w.lines(1)[0]);
    assert_eq!(events(&next), vec![ev("PUT", "foo", "d", 6)]);
    assert_eq!(w.line(QUIET), None);
}

#[test]
fn watch_prev_kv() {
    let s = Server::detcd();
    s.ok(&["put", "k", "old"]);
    let w = EtcdctlWatch::spawn(&s, "watch", &["k", "--prev-kv", "-w", "json"]);
    established(&s, &w, "k");
    s.ok(&["put", "k", "new"]);
    s.ok(&["del", "k"]);
    s.ok(&["put", "k", "again"]);
    let got: Vec<Value> = w.lines(3).iter().map(|l| json(l)).collect();
    let prev = |v: &Value| v["Events"][0]["prev_kv"]["value"].clone();
    assert!(prev(&got[0]).as_str().unwrap().starts_with("cHJvYmU")); // "probe…"
    assert_eq!(prev(&got[1]), Value::String(base64_encode(b"new")));
    assert_eq!(
        got[2]["Events"][0].get("prev_kv"),
        None,
        "a re-creation has none"
    );
}

#[test]
fn interactive_many_watches_on_one_stream() {
    let s = Server::detcd();
    let mut w = EtcdctlWatch::spawn(&s, "watch", &["-i", "-w", "json"]);
    w.send("watch i/a");
    w.send("watch --prefix i/ --prev-kv");
    w.send("progress");
    // One progress notification per watcher: both are registered.
    let r = s.revision();
    let lines = w.lines(4);
    let notes = lines
        .iter()
        .filter(|l| l.starts_with("progress notify:"))
        .count();
    assert_eq!(notes, 2, "{lines:?}");
    assert!(lines.contains(&format!("progress notify: {r}")));
    s.ok(&["put", "i/a", "1"]);
    s.ok(&["put", "i/b", "2"]);
    let got: Vec<Value> = w.lines(3).iter().map(|l| json(l)).collect();
    let mut all: Vec<_> = got.iter().flat_map(events).collect();
    all.sort();
    assert_eq!(
        all,
        vec![
            ev("PUT", "i/a", "1", r + 1),
            ev("PUT", "i/a", "1", r + 1),
            ev("PUT", "i/b", "2", r + 2)
        ]
    );
    // A third watch on the same stream, from history.
    w.send(&format!("watch i/ --prefix --rev={}", r + 1));
    let h = json(&w.lines(1)[0]);
    assert_eq!(
        events(&h),
        vec![ev("PUT", "i/a", "1", r + 1), ev("PUT", "i/b", "2", r + 2)]
    );
    w.send("bogus");
    std::thread::sleep(Duration::from_millis(300));
    assert!(w
        .stderr()
        .contains("Invalid command bogus (only support watch)"));
}

#[test]
fn watch_from_a_compacted_revision_is_canceled_as_in_etcd() {
    let s = Server::detcd();
    for v in ["a", "b", "c"] {
        s.ok(&["put", "foo", v]);
    }
    s.ok(&["compact", "3"]);
    let mut w = EtcdctlWatch::spawn(&s, "watch", &["foo", "--rev=1", "-w", "json"]);
    let st = w.wait_exit();
    assert_eq!(st.code(), Some(5));
    let v = json(&w.lines(1)[0]);
    assert_eq!(v["CompactRevision"].as_i64(), Some(3));
    assert_eq!(v["Canceled"], Value::Bool(true));
    assert_eq!(v["Header"].get("revision"), None);
    assert_eq!(
        w.stderr(),
        "watch was canceled (etcdserver: mvcc: required revision has been compacted)\n\
         Error: watch is canceled by the server\n"
    );
    // From the compacted revision itself it works.
    let w = EtcdctlWatch::spawn(&s, "watch", &["foo", "--rev=3", "-w", "json"]);
    let v = json(&w.lines(1)[0]);
    assert_eq!(
        events(&v),
        vec![ev("PUT", "foo", "b", 3), ev("PUT", "foo", "c", 4)]
    );
}

/// A deletion at exactly the compacted revision is still delivered to a watch from that
/// revision, and survives a restart. (etcd lost it until etcd-io/etcd#18274, backported to 3.4
/// and 3.5; Debian's etcd 3.4.23 predates the fix, so this is not compared with it. The
/// simulator's watch workload found the same loss in detcd.)
#[test]
fn a_deletion_at_the_compacted_revision_reaches_a_watch_from_it() {
    let mut s = Server::detcd();
    s.ok(&["put", "gone", "1"]);
    s.ok(&["put", "other", "1"]);
    s.ok(&["del", "gone"]); // revision 4
    s.ok(&["put", "other", "2"]);
    s.ok(&["compact", "4"]);
    let want = vec![ev("DELETE", "gone", "", 4)];
    let w = EtcdctlWatch::spawn(&s, "watch", &["gone", "--rev=4", "-w", "json"]);
    assert_eq!(events(&json(&w.lines(1)[0])), want);
    drop(w);
    s.stop();
    s.restart();
    let w = EtcdctlWatch::spawn(&s, "watch", &["gone", "--rev=4", "-w", "json"]);
    assert_eq!(events(&json(&w.lines(1)[0])), want, "after a restart");
    drop(w);
    // The next compaction takes the tombstone.
    s.ok(&["compact", "5"]);
    assert_eq!(s.ok(&["get", "gone", "--rev=5"]), "");
}

// ---------------------------------------------------------------------------
// Raw gRPC

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn channel(server_endpoint: &str) -> tonic::transport::Channel {
    // Small HTTP/2 windows: a client that stops reading pushes back on the
    // server soon (the default windows would buffer megabytes).
    tonic::transport::Channel::from_shared(format!("http://{server_endpoint}"))
        .unwrap()
        .initial_stream_window_size(Some(65_535))
        .initial_connection_window_size(Some(65_535))
        .connect()
        .await
        .expect("connect")
}

/// One raw Watch stream.
struct RawWatch {
    /// `None` once the client closed its sending side.
    tx: Option<tokio::sync::mpsc::Sender<WatchRequest>>,
    rx: tonic::Streaming<WatchResponse>,
}

impl RawWatch {
    /// Opens a stream whose first request is `first` (etcd sends the
    /// response headers only with the first response).
    async fn open(endpoint: &str, first: WatchRequest) -> RawWatch {
        let mut client =
            WatchClient::new(channel(endpoint).await).max_decoding_message_size(64 << 20);
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tx.send(first).await.unwrap();
        let requests =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
        let rx = client.watch(requests).await.expect("watch").into_inner();
        RawWatch { tx: Some(tx), rx }
    }

    async fn send(&self, r: WatchRequest) {
        self.tx.as_ref().expect("open").send(r).await.unwrap();
    }

    /// Closes the client's sending side (the call stays open).
    fn close_send(&mut self) {
        self.tx = None;
    }

    async fn next(&mut self, t: Duration) -> Option<WatchResponse> {
        match tokio::time::timeout(t, self.rx.message()).await {
            Ok(r) => r.expect("watch stream failed"),
            Err(_) => None,
        }
    }

    /// The next `n` responses (waiting up to [`EXPECT`] for them), then any
    /// that follow within a short quiet period: a step's complete output,
    /// robust to a loaded machine.
    async fn take(&mut self, n: usize) -> Vec<WatchResponse> {
        let deadline = tokio::time::Instant::now() + EXPECT;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(r) => out.push(r),
                None => break,
            }
        }
        out.extend(self.until_quiet(Duration::from_millis(300)).await);
        out
    }

    /// Responses until none arrives for `quiet`.
    async fn until_quiet(&mut self, quiet: Duration) -> Vec<WatchResponse> {
        let mut out = Vec::new();
        while let Some(r) = self.next(quiet).await {
            out.push(r);
        }
        out
    }
}

fn create_req(c: WatchCreateRequest) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(c)),
    }
}

fn watch(key: &str, end: &str) -> WatchCreateRequest {
    WatchCreateRequest {
        key: Bytes::from(key.to_string()),
        range_end: Bytes::from(end.to_string()),
        ..Default::default()
    }
}

fn cancel_req(id: i64) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest {
            watch_id: id,
        })),
    }
}

fn progress_req() -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
    }
}

fn bytes_summary(b: &[u8]) -> String {
    if b.len() > 40 {
        format!("<{} bytes>", b.len())
    } else {
        format!("{:?}", String::from_utf8_lossy(b))
    }
}

fn event_summary(e: &Event) -> String {
    let kv = |kv: &detcd::proto::mvccpb::KeyValue| {
        format!(
            "{}={} c{} m{} v{} l{}",
            bytes_summary(&kv.key),
            bytes_summary(&kv.value),
            kv.create_revision,
            kv.mod_revision,
            kv.version,
            kv.lease
        )
    };
    format!(
        "{} {}{}",
        if e.r#type == 1 { "DELETE" } else { "PUT" },
        e.kv.as_ref().map(kv).unwrap_or_default(),
        e.prev_kv
            .as_ref()
            .map(|p| format!(" prev[{}]", kv(p)))
            .unwrap_or_default()
    )
}

/// A response as text, without the raft term.
fn summary(r: &WatchResponse) -> String {
    let h = r.header.unwrap_or_default();
    format!(
        "id={} rev={} cluster={:x} member={:x} created={} canceled={} compact={} reason={:?} \
         fragment={} events=[{}]",
        r.watch_id,
        h.revision,
        h.cluster_id,
        h.member_id,
        r.created,
        r.canceled,
        r.compact_revision,
        r.cancel_reason,
        r.fragment,
        r.events
            .iter()
            .map(event_summary)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Responses as text; across watchers the order is etcd's map order (random),
/// so they are grouped by watch ID, keeping each watcher's own order.
fn summaries(mut rs: Vec<WatchResponse>) -> Vec<String> {
    rs.sort_by_key(|r| r.watch_id);
    rs.iter().map(summary).collect()
}

/// Flags both servers get in the raw comparison.
const RAW_FLAGS: &[&str] = &["--experimental-watch-progress-notify-interval", "300ms"];

/// The raw script: each step's responses, as text.
async fn raw_script(endpoint: &str) -> Vec<(String, Vec<String>)> {
    let mut kv = KvClient::new(channel(endpoint).await);
    let put = |k: &str, v: Vec<u8>| PutRequest {
        key: Bytes::from(k.to_string()),
        value: Bytes::from(v),
        ..Default::default()
    };
    for (k, v) in [("a", "1"), ("a", "2"), ("b", "1")] {
        kv.put(put(k, v.into())).await.unwrap();
    }
    kv.delete_range(DeleteRangeRequest {
        key: Bytes::from_static(b"a"),
        ..Default::default()
    })
    .await
    .unwrap();
    kv.put(put("c", b"1".to_vec())).await.unwrap(); // revision 6

    let mut steps = Vec::new();
    let mut w = RawWatch::open(endpoint, create_req(watch("a", ""))).await;
    steps.push(("create a".to_string(), summaries(w.take(1).await)));

    let mut c = watch("a", "");
    c.start_revision = 2;
    c.prev_kv = true;
    w.send(create_req(c)).await;
    steps.push(("create a from 2 prev_kv".into(), summaries(w.take(2).await)));

    let mut all = watch("", "\0");
    all.watch_id = 7;
    all.filters = vec![FilterType::Noput as i32];
    w.send(create_req(all.clone())).await;
    steps.push((
        "create id 7 all keys NOPUT".into(),
        summaries(w.take(1).await),
    ));
    w.send(create_req(all)).await;
    steps.push(("create id 7 again".into(), summaries(w.take(1).await)));

    w.send(create_req(watch("b", "a"))).await;
    steps.push(("create empty range".into(), summaries(w.take(1).await)));

    let mut future = watch("b", "c");
    future.start_revision = 9;
    future.filters = vec![FilterType::Nodelete as i32];
    w.send(create_req(future)).await;
    steps.push((
        "create auto, future start".into(),
        summaries(w.take(1).await),
    ));

    w.send(progress_req()).await;
    steps.push(("progress".into(), summaries(w.take(1).await)));

    w.send(cancel_req(42)).await;
    steps.push(("cancel unknown".into(), summaries(w.take(0).await)));

    kv.put(put("a", b"3".to_vec())).await.unwrap(); // 7
    kv.put(put("b", b"2".to_vec())).await.unwrap(); // 8
    steps.push(("put a, put b".into(), summaries(w.take(2).await)));
    kv.put(put("b", b"3".to_vec())).await.unwrap(); // 9
    kv.delete_range(DeleteRangeRequest {
        key: Bytes::from_static(b"a"),
        range_end: Bytes::from_static(b"z"),
        ..Default::default()
    })
    .await
    .unwrap(); // 10
    steps.push(("put b, delete a..z".into(), summaries(w.take(4).await)));

    w.send(cancel_req(2)).await;
    steps.push(("cancel 2".into(), summaries(w.take(1).await)));

    kv.compact(CompactionRequest {
        revision: 6,
        physical: false,
    })
    .await
    .unwrap();
    let mut old = watch("a", "");
    old.start_revision = 3;
    w.send(create_req(old)).await;
    steps.push(("create from compacted 3".into(), summaries(w.take(2).await)));
    w.send(cancel_req(3)).await;
    steps.push((
        "cancel the compacted watcher".into(),
        summaries(w.take(1).await),
    ));
    let mut at = watch("a", "b");
    at.start_revision = 6;
    at.prev_kv = true;
    w.send(create_req(at)).await;
    steps.push((
        "create from the compacted revision".into(),
        summaries(w.take(2).await),
    ));

    // Fragments: history of three ~700 KB values; the limit is
    // --max-request-bytes + 512 KiB = 2 MiB.
    let first = 11;
    for k in ["f1", "f2", "f3"] {
        kv.put(put(k, vec![b'x'; 700_000])).await.unwrap();
    }
    let mut frag = watch("f", "g");
    frag.start_revision = first;
    frag.fragment = true;
    frag.watch_id = 100;
    w.send(create_req(frag.clone())).await;
    steps.push(("fragmenting watcher".into(), summaries(w.take(3).await)));
    frag.fragment = false;
    frag.watch_id = 101;
    w.send(create_req(frag)).await;
    steps.push(("same, not fragmenting".into(), summaries(w.take(2).await)));

    // A client that closes its sending side still gets events (etcd ends the
    // stream only when the call is canceled).
    w.close_send();
    tokio::time::sleep(Duration::from_millis(200)).await;
    kv.put(put("a", b"4".to_vec())).await.unwrap(); // 14
    steps.push((
        "after closing the send side".into(),
        summaries(w.take(3).await),
    ));

    // Progress notifications (--experimental-watch-progress-notify-interval
    // 300ms) go to a quiet progress_notify watcher, on its own stream.
    let mut p = watch("quiet", "");
    p.progress_notify = true;
    let mut pw = RawWatch::open(endpoint, create_req(p)).await;
    let created = pw.next(EXPECT).await.expect("created");
    assert!(created.created);
    let note = pw
        .next(Duration::from_secs(3))
        .await
        .expect("a progress notification");
    steps.push(("progress notification".into(), vec![summary(&note)]));
    steps
}

#[test]
fn raw_watch_requests_match_real_etcd() {
    if !etcd_or_skip() {
        return;
    }
    let rt = runtime();
    let (expected, actual) = on_both(RAW_FLAGS, |s| rt.block_on(raw_script(&s.endpoint())));
    compare(&expected, &actual);
    // Not vacuous: the script saw created, history, events and fragments.
    let all: String = actual.iter().flat_map(|(_, r)| r.clone()).collect();
    assert!(all.contains("created=true") && all.contains("fragment=true"));
    assert!(all.contains("compact=6"));
    assert!(
        all.contains("m14"),
        "events after the client closed its sending side"
    );
}

/// A watcher whose client does not read falls behind the hub's buffer; when
/// the client reads again it gets every event exactly once, in order.
#[test]
fn a_client_that_stops_reading_loses_nothing() {
    let s = Server::detcd();
    let rt = runtime();
    rt.block_on(async {
        let ep = s.endpoint();
        let mut w = RawWatch::open(&ep, create_req(watch("lag/", "lag0"))).await;
        let created = w.next(EXPECT).await.unwrap();
        let start = created.header.unwrap().revision;
        let mut kv = KvClient::new(channel(&ep).await);
        let n = 2500;
        let value = Bytes::from(vec![b'v'; 1024]);
        for i in 0..n {
            kv.put(PutRequest {
                key: Bytes::from(format!("lag/{}", i % 10)),
                value: value.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let mut revs = Vec::new();
        while revs.len() < n {
            let r = w
                .next(EXPECT)
                .await
                .unwrap_or_else(|| panic!("stream stopped after {} events", revs.len()));
            revs.extend(r.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision));
        }
        let want: Vec<i64> = (start + 1..=start + n as i64).collect();
        assert_eq!(revs, want);
        assert!(w.next(QUIET).await.is_none());
    });
    assert!(
        s.log().contains("catching up from history"),
        "the test did not make the stream lag"
    );
}

// ---------------------------------------------------------------------------
// etcdctl against both servers

/// The etcdctl script: each step's output, as text.
fn etcdctl_script(s: &Server) -> Vec<(String, Vec<String>)> {
    let mut steps = Vec::new();
    for (k, v) in [("h/a", "1"), ("h/b", "1"), ("h/a", "2"), ("x", "1")] {
        s.ok(&["put", k, v]);
    }
    s.ok(&["del", "h/b"]);
    let txn = s.etcdctl(&["txn"], Some("\nput h/a 3\nput h/c 1\n\n\n"));
    assert!(txn.success(), "{txn:?}");
    // Revisions 2..=7.

    let run = |name: &str, args: &[&str], lines: Option<usize>| {
        let w = EtcdctlWatch::spawn(s, "watch", args);
        let mut out = match lines {
            Some(n) => w.lines(n),
            None => Vec::new(),
        };
        out.extend(w.until_quiet());
        (name.to_string(), normalize(out))
    };
    steps.push(run(
        "prefix from 2, json",
        &["--prefix", "h/", "--rev=2", "-w", "json"],
        Some(1),
    ));
    steps.push(run(
        "key from 3, prev-kv",
        &["h/a", "--rev=3", "--prev-kv"],
        Some(1),
    ));
    steps.push(run(
        "range from 1, prev-kv json",
        &["h/a", "h/c", "--rev=1", "--prev-kv", "-w", "json"],
        Some(1),
    ));
    steps.push(run("future revision", &["h/a", "--rev=100"], None));
    steps.push(run(
        "fields",
        &["h/", "--prefix", "--rev=6", "-w", "fields"],
        Some(1),
    ));

    // Interactive: live events on one stream with several watchers. The
    // progress notification marks the watchers as registered.
    let mut w = EtcdctlWatch::spawn(s, "watch", &["-i", "-w", "json"]);
    w.send("watch h/a");
    w.send("watch --prefix h/ --prev-kv");
    w.send("progress");
    let mut out = w.lines(4);
    s.ok(&["put", "h/a", "4"]);
    s.ok(&["del", "--prefix", "h/"]);
    out.extend(w.lines(4));
    w.send("watch h/ --prefix --rev=7");
    out.extend(w.lines(1));
    w.send("bogus");
    w.send("watch");
    out.extend(w.until_quiet());
    out.sort();
    steps.push(("interactive".into(), normalize(out)));
    let mut err: Vec<String> = w.stderr().lines().map(String::from).collect();
    err.sort();
    steps.push(("interactive stderr".into(), err));

    // Compaction.
    s.ok(&["compact", "5"]);
    let mut w = EtcdctlWatch::spawn(s, "watch", &["h/a", "--rev=4", "-w", "json"]);
    let st = w.wait_exit();
    let mut out = vec![format!("exit {:?}", st.code())];
    out.extend(w.until_quiet());
    out.extend(w.stderr().lines().map(String::from));
    steps.push(("compacted".into(), normalize(out)));
    steps.push(run(
        "from the compacted revision",
        &["--prefix", "h/", "--rev=5", "-w", "json"],
        Some(1),
    ));
    steps
}

/// The raft term is the one legitimate difference (etcd's first leader is
/// elected at term 2, detcd's at 1).
fn normalize(lines: Vec<String>) -> Vec<String> {
    lines
        .into_iter()
        .map(|l| {
            let mut out = String::new();
            let mut rest = l.as_str();
            // `-w json` and `-w fields` spell it differently.
            let pos = ["\"raft_term\":", "\"RaftTerm\" : "]
                .iter()
                .find_map(|m| rest.find(m).map(|i| i + m.len()));
            if let Some(end) = pos {
                let (head, tail) = rest.split_at(end);
                out.push_str(head);
                out.push('N');
                rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
            }
            out.push_str(rest);
            out
        })
        .collect()
}

#[test]
fn etcdctl_watch_matches_real_etcd() {
    if !etcd_or_skip() {
        return;
    }
    let (expected, actual) = on_both(&[], etcdctl_script);
    compare(&expected, &actual);
    assert!(actual
        .iter()
        .any(|(_, o)| o.iter().any(|l| l.contains("\"Events\":[{"))));
}

// ---------------------------------------------------------------------------
// Differential plumbing

fn etcd_or_skip() -> bool {
    if common::etcd_available() {
        return true;
    }
    if std::env::var("DETCD_SKIP_ETCD_DIFF").as_deref() == Ok("1") {
        eprintln!(
            "{} not installed; skipped (DETCD_SKIP_ETCD_DIFF=1)",
            common::ETCD_BIN
        );
        return false;
    }
    panic!(
        "{} is not installed: this test needs real etcd (apt-get install etcd-server), \
         or set DETCD_SKIP_ETCD_DIFF=1 to skip it",
        common::ETCD_BIN
    );
}

/// Runs `script` on a fresh etcd, then on a fresh detcd on the same ports (so
/// member and cluster ids match).
fn on_both<T>(flags: &[&str], mut script: impl FnMut(&Server) -> T) -> (T, T) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let etcd = Builder::new(Kind::Etcd).args(flags.iter().copied()).start();
        let ports = (etcd.client_port, etcd.peer_port);
        let expected = script(&etcd);
        drop(etcd);
        let detcd = Builder::new(Kind::Detcd)
            .args(flags.iter().copied())
            .ports(ports.0, ports.1)
            .start();
        if (detcd.client_port, detcd.peer_port) == ports {
            return (expected, script(&detcd));
        }
        assert!(attempt < 3, "could not run detcd on etcd's ports {ports:?}");
    }
}

fn compare(expected: &[(String, Vec<String>)], actual: &[(String, Vec<String>)]) {
    assert_eq!(expected.len(), actual.len());
    let mut diffs = String::new();
    for ((name, e), (_, a)) in expected.iter().zip(actual) {
        if e != a {
            diffs.push_str(&format!(
                "\n=== {name}\n--- etcd:\n{}\n--- detcd:\n{}\n",
                e.join("\n"),
                a.join("\n")
            ));
        }
    }
    assert!(diffs.is_empty(), "detcd differs from etcd:{diffs}");
}

// ---------------------------------------------------------------------------
// Clusters: every member serves watches from its own applied state

/// Starts `n` detcd members with short election timeouts.
fn cluster(n: usize) -> Vec<Server> {
    cluster_with(n, &[])
}

/// Starts `n` detcd members with short election timeouts and `flags`.
fn cluster_with(n: usize, flags: &[&str]) -> Vec<Server> {
    let mut all = vec!["--heartbeat-interval", "50", "--election-timeout", "500"];
    all.extend_from_slice(flags);
    common::start_cluster(n, &all)
}

/// Index of the member the others agree is the leader.
fn leader_index(members: &[Server]) -> usize {
    let status = |m: &Server| {
        let v = m
            .etcdctl(&["endpoint", "status", "-w", "json"], None)
            .json();
        let s = &v[0]["Status"];
        (
            s["header"]["member_id"].as_u64().unwrap(),
            s["leader"].as_u64().unwrap(),
        )
    };
    let leader = status(&members[0]).1;
    members
        .iter()
        .position(|m| status(m).0 == leader)
        .expect("the leader is a member")
}

#[test]
fn every_member_serves_watches_and_a_leaderless_member_ends_them() {
    let mut members = cluster(3);
    // One watch per member, all from the same revision; writes go to member 1.
    let r = members[0].revision();
    let watches: Vec<EtcdctlWatch> = members
        .iter()
        .map(|m| EtcdctlWatch::spawn(m, "watch", &["--prefix", "c/", &format!("--rev={}", r + 1)]))
        .collect();
    for i in 0..5 {
        members[0].ok(&["put", &format!("c/{i}"), &i.to_string()]);
    }
    members[0].ok(&["del", "--prefix", "c/"]);
    let want: Vec<String> = (0..5)
        .flat_map(|i| ["PUT".to_string(), format!("c/{i}"), i.to_string()])
        .chain((0..5).flat_map(|i| ["DELETE".to_string(), format!("c/{i}"), String::new()]))
        .collect();
    for (i, w) in watches.iter().enumerate() {
        assert_eq!(w.lines(want.len()), want, "member {}", i + 1);
    }
    // The leader and one follower go away: the other follower has no leader;
    // after three election timeouts its require-leader streams end as etcd
    // ends them.
    let leader = leader_index(&members);
    let survivor = (leader + 1) % 3;
    for (i, m) in members.iter_mut().enumerate() {
        if i != survivor {
            m.kill_9();
        }
    }
    let mut w = watches.into_iter().nth(survivor).unwrap();
    let st = w.wait_exit();
    assert_eq!(st.code(), Some(5), "stderr: {}", w.stderr());
    assert_eq!(
        w.stderr(),
        "watch was canceled (etcdserver: no leader)\nError: watch is canceled by the server\n"
    );
    // And a new require-leader watch is refused at once.
    let mut again = EtcdctlWatch::spawn(&members[survivor], "watch", &["c/0"]);
    let st = again.wait_exit();
    assert_ne!(st.code(), Some(0));
    assert!(
        again.stderr().contains("etcdserver: no leader"),
        "{}",
        again.stderr()
    );
}

/// A member that was down while the others moved past `--snapshot-count`
/// catches up by snapshot; the snapshot carries the store's history, so a
/// watch from an old revision on it replays what the others replay.
#[test]
fn a_member_caught_up_by_snapshot_replays_the_same_history() {
    let mut members = cluster_with(3, &["--snapshot-count", "20"]);
    let leader = leader_index(&members);
    let down = (leader + 1) % 3;
    let up = (leader + 2) % 3;
    members[down].kill_9();
    for i in 0..60 {
        members[up].ok(&["put", &format!("s/{}", i % 7), &i.to_string()]);
        if i % 10 == 9 {
            members[up].ok(&["del", &format!("s/{}", i % 7)]);
        }
    }
    members[down].restart();
    let want = members[up].revision();
    let deadline = Instant::now() + EXPECT * 3;
    while members[down]
        .etcdctl(&["get", "x", "--consistency=s", "-w", "json"], None)
        .json()["header"]["revision"]
        .as_i64()
        != Some(want)
    {
        assert!(Instant::now() < deadline, "the member never caught up");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(members[down].log().contains("installed snapshot"));
    let replay = |m: &Server| {
        let w = EtcdctlWatch::spawn(m, "watch", &["--prefix", "s/", "--rev=2", "-w", "json"]);
        let v = json(&w.lines(1)[0]);
        (v["Header"]["revision"].as_i64(), events(&v))
    };
    let (rev, evs) = replay(&members[up]);
    assert_eq!(rev, Some(want));
    assert_eq!(evs.len(), 66);
    assert_eq!(replay(&members[down]), (rev, evs));
}

/// etcd refuses stream RPCs on a learner; once promoted it serves watches.
#[test]
fn a_learner_refuses_watches_until_promoted() {
    let members = cluster(1);
    let ports = common::free_ports();
    let peer = format!("http://127.0.0.1:{}", ports.1);
    let added = members[0].ok(&[
        "member",
        "add",
        "m2",
        "--learner",
        &format!("--peer-urls={peer}"),
    ]);
    // "Member <id> added to cluster <id>": IDs are hex without leading zeros, so the word after
    // "Member", whatever its length.
    let id = added
        .split_whitespace()
        .skip_while(|w| *w != "Member")
        .nth(1)
        .filter(|w| w.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no member id in {added}"))
        .to_string();
    let mut learner = Builder::new(Kind::Detcd)
        .name("m2")
        .ports(ports.0, ports.1)
        .initial_cluster(format!("m1={},m2={peer}", members[0].peer_url()))
        .args(["--initial-cluster-state", "existing"])
        .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
        .spawn();
    learner.wait_until_ready();
    let rt = runtime();
    let ep = learner.endpoint();
    let refused = rt.block_on(async {
        let mut client = WatchClient::new(channel(&ep).await);
        let first = create_req(watch("k", ""));
        client.watch(futures::stream::iter(vec![first])).await.err()
    });
    let st = refused.expect("a learner refuses the watch");
    assert_eq!(st.code(), tonic::Code::Unavailable);
    assert_eq!(st.message(), "etcdserver: rpc not supported for learner");

    let deadline = Instant::now() + EXPECT;
    while !members[0]
        .etcdctl(&["member", "promote", &id], None)
        .success()
    {
        assert!(Instant::now() < deadline, "the learner was never promoted");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    let created = rt.block_on(async {
        let mut w = RawWatch::open(&ep, create_req(watch("k", ""))).await;
        w.next(EXPECT).await
    });
    assert!(created.expect("created").created);
}

/// A leader cut off from its followers counts as leaderless (etcd's leader
/// steps down when it loses its quorum): its watch streams end too, while a
/// leader that still has a quorum keeps them.
#[test]
fn an_isolated_leader_ends_its_watches() {
    let mut members = cluster(3);
    let leader = leader_index(&members);
    let mut w = EtcdctlWatch::spawn(&members[leader], "watch", &["--prefix", "l/"]);
    established(&members[leader], &w, "l/probe");
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    // One follower down: still a quorum, the stream stays.
    members[followers[0]].kill_9();
    std::thread::sleep(Duration::from_secs(3));
    members[leader].ok(&["put", "l/x", "1"]);
    assert_eq!(w.lines(3), ["PUT", "l/x", "1"]);
    // Both down: no quorum, the stream ends.
    members[followers[1]].kill_9();
    let st = w.wait_exit();
    assert_eq!(st.code(), Some(5), "stderr: {}", w.stderr());
    assert!(
        w.stderr()
            .contains("watch was canceled (etcdserver: no leader)"),
        "{}",
        w.stderr()
    );
}

/// Progress notifications keep coming to a quiet watcher while the store is
/// busy with other keys, and their revisions advance with the store.
#[test]
fn progress_notifications_under_a_busy_store() {
    let s = Builder::new(Kind::Detcd)
        .args(["--experimental-watch-progress-notify-interval", "200ms"])
        .start();
    let rt = runtime();
    let ep = s.endpoint();
    rt.block_on(async {
        let mut quiet = watch("quiet", "");
        quiet.progress_notify = true;
        let mut w = RawWatch::open(&ep, create_req(quiet)).await;
        assert!(w.next(EXPECT).await.unwrap().created);
        let writer = tokio::spawn({
            let ep = ep.clone();
            async move {
                let mut kv = KvClient::new(channel(&ep).await);
                let until = tokio::time::Instant::now() + Duration::from_secs(2);
                while tokio::time::Instant::now() < until {
                    kv.put(PutRequest {
                        key: Bytes::from_static(b"busy"),
                        value: Bytes::from_static(b"v"),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                }
            }
        });
        let mut revs = Vec::new();
        let until = tokio::time::Instant::now() + Duration::from_secs(2);
        while tokio::time::Instant::now() < until {
            if let Some(r) = w.next(Duration::from_millis(500)).await {
                assert!(r.events.is_empty() && r.watch_id == 0, "{r:?}");
                revs.push(r.header.unwrap().revision);
            }
        }
        writer.await.unwrap();
        assert!(revs.len() >= 4, "too few notifications: {revs:?}");
        assert!(revs.windows(2).all(|p| p[0] <= p[1]), "{revs:?}");
        assert!(
            revs.last() > revs.first(),
            "bookmarks must advance: {revs:?}"
        );
    });
}
