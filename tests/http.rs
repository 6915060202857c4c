//! HTTP on the client port, with curl as operators use it: `/health` (etcd 3.4's answers: 200,
//! 503 on an alarm unless excluded, 503 without a leader), `/version`, `/livez`, `/readyz`,
//! `/metrics` (etcd's names, values that move), etcd's 404, CORS headers; and gRPC's answer for
//! an unknown service or method on the same port.

// Real processes, real time: the seam rule (clippy.toml) is for the server.
#![allow(clippy::disallowed_methods)]
#![cfg(not(madsim))]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Builder, Kind, Server};

/// `curl -s -i URL` (plus `extra`): the status code, the headers (lower-cased), the body.
fn curl(url: &str, extra: &[&str]) -> (u16, String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "--max-time", "10"])
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = common::run_bounded(cmd, None, Duration::from_secs(15));
    assert!(out.success(), "curl {url}: {out:?}");
    let text = out.stdout.replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    (status, head.to_lowercase(), body.to_string())
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            let (n, v) = l.rsplit_once(' ')?;
            (n == name).then(|| v.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn health_version_probes_and_metrics() {
    let s = Server::detcd();
    let base = s.client_url();
    let (code, head, body) = curl(&format!("{base}/health"), &[]);
    assert_eq!((code, body.as_str()), (200, r#"{"health":"true"}"#));
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    let (code, _, body) = curl(&format!("{base}/version"), &[]);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(code, 200);
    assert!(
        v["etcdserver"].is_string() && v["etcdcluster"].is_string(),
        "{body}"
    );
    assert_eq!(curl(&format!("{base}/livez"), &[]).0, 200);
    assert_eq!(curl(&format!("{base}/readyz"), &[]).0, 200);
    let (code, _, body) = curl(&format!("{base}/no/such/path"), &[]);
    assert_eq!((code, body.as_str()), (404, "404 page not found\n"));

    let (code, _, before) = curl(&format!("{base}/metrics"), &[]);
    assert_eq!(code, 200);
    for (name, kind) in [
        ("etcd_server_has_leader", "gauge"),
        ("etcd_server_is_leader", "gauge"),
        ("etcd_server_leader_changes_seen", "counter"),
        // etcd's proposal counts are gauges named `_total`.
        ("etcd_server_proposals_applied_total", "gauge"),
        ("etcd_server_proposals_committed_total", "gauge"),
        ("etcd_server_proposals_pending", "gauge"),
        ("etcd_server_proposals_failed", "counter"),
        ("etcd_mvcc_db_total_size_in_bytes", "gauge"),
        ("etcd_debugging_mvcc_keys_total", "gauge"),
        ("etcd_server_quota_backend_bytes", "gauge"),
    ] {
        assert!(
            before.contains(&format!("# TYPE {name} {kind}")),
            "{name}:\n{before}"
        );
    }
    // prometheus-client ends each HELP text with a period itself; etcd's end with one.
    for l in before.lines().filter(|l| l.starts_with("# HELP")) {
        assert!(!l.ends_with(".."), "{l}");
    }
    assert!(
        before.contains(
            "# HELP etcd_server_proposals_failed The total number of failed proposals seen.\n"
        ),
        "{before}"
    );
    assert_eq!(metric(&before, "etcd_server_has_leader"), 1.0);
    assert_eq!(
        metric(&before, "etcd_server_leader_changes_seen_total"),
        1.0
    );
    assert_eq!(
        metric(&before, "etcd_server_quota_backend_bytes"),
        2147483648.0
    );
    for i in 0..5 {
        s.ok(&["put", &format!("k{i}"), "v"]);
    }
    let (_, _, after) = curl(&format!("{base}/metrics"), &[]);
    assert_eq!(metric(&after, "etcd_debugging_mvcc_keys_total"), 5.0);
    assert_eq!(metric(&after, "etcd_debugging_mvcc_current_revision"), 6.0);
    assert!(
        metric(&after, "etcd_server_proposals_applied_total")
            >= metric(&before, "etcd_server_proposals_applied_total") + 5.0
    );
    assert!(
        metric(&after, "etcd_server_proposals_committed_total")
            >= metric(&before, "etcd_server_proposals_applied_total") + 5.0
    );
    assert_eq!(metric(&after, "etcd_server_proposals_pending"), 0.0);
    assert_eq!(metric(&after, "etcd_server_proposals_failed_total"), 0.0);
    assert!(after.contains("etcd_server_id{server_id=\""), "{after}");
    // etcd's operation counters: 5 puts, then a get, a delete and a txn of two operations.
    s.ok(&["get", "k0"]);
    s.ok(&["del", "k1"]);
    let txn = s.etcdctl(
        &["txn"],
        Some("value(\"k0\") = \"v\"\n\nput k2 w\nget k2\n\n\n"),
    );
    assert!(txn.stdout.starts_with("SUCCESS"), "{txn:?}");
    let (_, _, ops) = curl(&format!("{base}/metrics"), &[]);
    let delta = |name: &str| metric(&ops, name) - metric(&before, name);
    assert_eq!(delta("etcd_mvcc_put_total"), 6.0, "{ops}");
    assert_eq!(delta("etcd_mvcc_delete_total"), 1.0, "{ops}");
    assert_eq!(delta("etcd_mvcc_txn_total"), 1.0, "{ops}");
    assert!(delta("etcd_mvcc_range_total") >= 2.0, "{ops}");
    for name in [
        "etcd_disk_wal_fsync_duration_seconds",
        "etcd_disk_backend_commit_duration_seconds",
    ] {
        assert!(
            after.contains(&format!("# TYPE {name} histogram")),
            "{name}:\n{after}"
        );
    }
    // Every acknowledged put waited for a WAL fsync.
    assert!(
        metric(&after, "etcd_disk_wal_fsync_duration_seconds_count")
            >= metric(&before, "etcd_disk_wal_fsync_duration_seconds_count") + 5.0
    );

    // gRPC on the same port: an unknown service or method is Unimplemented, named.
    let grpc = [
        "--http2-prior-knowledge",
        "-X",
        "POST",
        "-H",
        "content-type: application/grpc",
    ];
    let (_, head, _) = curl(&format!("{base}/foo.Bar/Baz"), &grpc);
    assert!(head.contains("grpc-status: 12"), "{head}");
    assert!(
        head.contains("grpc-message: unknown%20service%20foo.bar"),
        "{head}"
    );
    // (An unknown method of a known service is answered by tonic's generated service:
    // Unimplemented without a message.)
    let (_, head, _) = curl(&format!("{base}/etcdserverpb.KV/Nope"), &grpc);
    assert!(head.contains("grpc-status: 12"), "{head}");
}

#[test]
fn health_is_503_with_an_alarm_unless_excluded() {
    let s = Builder::new(Kind::Detcd)
        .args(["--quota-backend-bytes", "200000"])
        .start();
    let value = "x".repeat(3000);
    for i in 0..200 {
        if !s
            .etcdctl(&["put", &format!("k{i}"), &value], None)
            .success()
        {
            break;
        }
    }
    assert!(s.ok(&["alarm", "list"]).contains("alarm:NOSPACE"));
    let base = s.client_url();
    let (code, _, body) = curl(&format!("{base}/health"), &[]);
    assert_eq!((code, body.as_str()), (503, r#"{"health":"false"}"#));
    let (code, _, body) = curl(&format!("{base}/health?exclude=NOSPACE"), &[]);
    assert_eq!((code, body.as_str()), (200, r#"{"health":"true"}"#));
    s.ok(&["alarm", "disarm"]);
    // Still over the quota, but no alarm until the next write refused for space.
    assert_eq!(curl(&format!("{base}/health"), &[]).0, 200);
}

#[test]
fn health_is_503_without_a_quorum() {
    let mut members = common::start_cluster(3, &[]);
    let base = members[0].client_url();
    assert_eq!(curl(&format!("{base}/health"), &[]).0, 200);
    members[1].kill_9();
    members[2].kill_9();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, _, body) = curl(&format!("{base}/health"), &[]);
        if code == 503 {
            assert_eq!(body, r#"{"health":"false"}"#);
            break;
        }
        assert!(Instant::now() < deadline, "still healthy without a quorum");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(curl(&format!("{base}/readyz"), &[]).0, 503);
    assert_eq!(curl(&format!("{base}/livez"), &[]).0, 200);
}

#[test]
fn grpc_counters_move_and_the_metrics_listener_serves_them() {
    let (metrics_port, _) = common::free_ports();
    let metrics_url = format!("http://127.0.0.1:{metrics_port}");
    let s = Builder::new(Kind::Detcd)
        .args(["--listen-metrics-urls", &metrics_url])
        .start();
    let put = |labels: &str| {
        format!(
            "{{{labels}grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"}}"
        )
    };
    let watch =
        r#"{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"}"#;
    let scrape = || curl(&format!("{metrics_url}/metrics"), &[]).2;
    let before = scrape();
    for i in 0..3 {
        s.ok(&["put", &format!("k{i}"), "v"]);
    }
    // Through the gateway, refused by the handler: counted as the gRPC call it is.
    let (code, _, _) = curl(
        &format!("{}/v3/kv/put", s.client_url()),
        &["-X", "POST", "-d", r#"{"key":""}"#],
    );
    assert_eq!(code, 400);
    // A watch that replays three events, then its client goes away.
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-N", "--max-time", "1", "-X", "POST", "-d"])
        .arg(r#"{"create_request":{"key":"aw==","range_end":"bA==","start_revision":"1"}}"#)
        .arg(format!("{}/v3/watch", s.client_url()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = common::run_bounded(cmd, None, Duration::from_secs(10));
    assert!(out.stdout.contains("\"events\""), "{out:?}");
    // The watch's end is counted once the server has seen the client go.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let after = scrape();
        let name = format!(
            "grpc_server_handled_total{{grpc_code=\"Canceled\",{}",
            &watch[1..]
        );
        if metric(&after, &name) > metric(&before, &name) || Instant::now() > deadline {
            break after;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let delta = |name: String| metric(&after, &name) - metric(&before, &name);
    assert_eq!(delta(format!("grpc_server_started_total{}", put(""))), 4.0);
    assert_eq!(
        delta(format!("grpc_server_msg_received_total{}", put(""))),
        4.0
    );
    assert_eq!(delta(format!("grpc_server_msg_sent_total{}", put(""))), 3.0);
    assert_eq!(
        delta(format!(
            "grpc_server_handled_total{}",
            put("grpc_code=\"OK\",")
        )),
        3.0
    );
    assert_eq!(
        delta(format!(
            "grpc_server_handled_total{}",
            put("grpc_code=\"InvalidArgument\",")
        )),
        1.0
    );
    assert_eq!(delta(format!("grpc_server_started_total{watch}")), 1.0);
    assert_eq!(delta(format!("grpc_server_msg_received_total{watch}")), 1.0);
    // created, then the replayed events
    assert!(delta(format!("grpc_server_msg_sent_total{watch}")) >= 2.0);
    assert_eq!(
        delta(format!(
            "grpc_server_handled_total{{grpc_code=\"Canceled\",{}",
            &watch[1..]
        )),
        1.0
    );

    // The metrics listener serves /health too, and nothing else.
    let (code, _, body) = curl(&format!("{metrics_url}/health"), &[]);
    assert_eq!((code, body.as_str()), (200, r#"{"health":"true"}"#));
    let (code, _, _) = curl(&format!("{metrics_url}/v3/kv/range"), &["-X", "POST"]);
    assert_eq!(code, 404);
}

#[test]
fn metrics_extensive_adds_grpc_handling_time_histograms() {
    let put = r#"grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary""#;
    let basic = Server::detcd();
    basic.ok(&["put", "k", "v"]);
    let text = curl(&format!("{}/metrics", basic.client_url()), &[]).2;
    assert!(!text.contains("grpc_server_handling_seconds"), "{text}");
    let extensive = Builder::new(Kind::Detcd)
        .args(["--metrics", "extensive"])
        .start();
    for _ in 0..3 {
        extensive.ok(&["put", "k", "v"]);
    }
    let text = curl(&format!("{}/metrics", extensive.client_url()), &[]).2;
    assert!(
        text.contains("# TYPE grpc_server_handling_seconds histogram"),
        "{text}"
    );
    let count = metric(
        &text,
        &format!("grpc_server_handling_seconds_count{{{put}}}"),
    );
    assert!(count >= 3.0, "{count}");
    // Every put took less than Prometheus's largest bucket.
    let slowest = metric(
        &text,
        &format!("grpc_server_handling_seconds_bucket{{le=\"10.0\",{put}}}"),
    );
    assert_eq!(slowest, count);
}

#[test]
fn raft_traffic_is_counted_by_peer() {
    let members = common::start_cluster(3, &[]);
    let leader = common::wait_leader(&members, &[0, 1, 2]);
    for i in 0..5 {
        members[leader].ok(&["put", &format!("k{i}"), "v"]);
    }
    let id = |i: usize| format!("{:x}", common::member_status(&members[i]).unwrap().0);
    let scrape = |i: usize| curl(&format!("{}/metrics", members[i].client_url()), &[]).2;
    let text = scrape(leader);
    for name in [
        "etcd_network_peer_sent_bytes",
        "etcd_network_peer_received_bytes",
        "etcd_network_peer_sent_failures",
    ] {
        assert!(text.contains(&format!("# TYPE {name} counter")), "{text}");
    }
    assert!(
        text.contains("# TYPE etcd_network_peer_round_trip_time_seconds histogram"),
        "{text}"
    );
    for f in (0..3).filter(|&i| i != leader) {
        let to = format!("{{To=\"{}\"}}", id(f));
        assert!(
            metric(&text, &format!("etcd_network_peer_sent_bytes_total{to}")) > 0.0,
            "{text}"
        );
        assert!(
            metric(
                &text,
                &format!("etcd_network_peer_round_trip_time_seconds_count{to}")
            ) >= 5.0,
            "{text}"
        );
        let from = format!("{{From=\"{}\"}}", id(leader));
        let received = metric(
            &scrape(f),
            &format!("etcd_network_peer_received_bytes_total{from}"),
        );
        assert!(received > 0.0, "follower {f} received nothing");
    }
}
