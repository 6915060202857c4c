//! The JSON gateway with curl, as etcd's users script it: one script of calls across every
//! service family (KV, txn, compaction, lease, cluster, maintenance, auth with a token, election,
//! lock, streams) run against real etcd 3.4 and detcd on the same ports, answers compared as
//! JSON; errors (etcd's messages, grpc-gateway's bodies and HTTP statuses); a live watch; and a
//! snapshot streamed as JSON that is etcd's file.

// Real processes, real time: the seam rule (clippy.toml) is for the server.
#![allow(clippy::disallowed_methods)]
#![cfg(not(madsim))]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Builder, Kind, Server};
use serde_json::{json, Value};

/// What is compared of a step's answer.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Compare {
    /// The HTTP status and the whole JSON body.
    Exact,
    /// The HTTP status and the body's gRPC `code` (the parser's words differ: Go's and Rust's).
    Code,
}

/// One call of the script.
struct Step {
    path: &'static str,
    body: String,
    compare: Compare,
    /// A stream: read for this long, then every line compared.
    stream: Option<Duration>,
    /// Fields whose values differ between any two members (blanked before comparing).
    blank: &'static [&'static str],
    /// `GET` instead of `POST`.
    get: bool,
}

fn step(path: &'static str, body: Value) -> Step {
    Step {
        path,
        body: body.to_string(),
        compare: Compare::Exact,
        stream: None,
        blank: &[],
        get: false,
    }
}

fn raw(path: &'static str, body: &str, compare: Compare) -> Step {
    Step {
        body: body.to_string(),
        compare,
        ..step(path, Value::Null)
    }
}

fn stream(path: &'static str, body: Value) -> Step {
    Step {
        stream: Some(Duration::from_secs(2)),
        ..step(path, body)
    }
}

fn blanking(mut s: Step, fields: &'static [&'static str]) -> Step {
    s.blank = fields;
    s
}

fn b64(s: &str) -> String {
    common::base64_encode(s.as_bytes())
}

/// The script: `$TOKEN`, `$LEADER` and `$LOCK` in a body are the token, election leader and lock
/// key of the latest answer that had one.
fn script() -> Vec<Step> {
    let (k, k1, k_end) = (b64("foo"), b64("foo1"), b64("fop"));
    let mut s = vec![
        step("/v3/kv/put", json!({"key": k, "value": b64("bar")})),
        step(
            "/v3/kv/put",
            json!({"key": k, "value": b64("baz"), "prev_kv": true}),
        ),
        step("/v3/kv/put", json!({"key": k1, "value": b64("1")})),
        step("/v3/kv/put", json!({"key": b64("foo2"), "value": b64("2")})),
        step("/v3/kv/range", json!({"key": k, "range_end": k_end})),
        step(
            "/v3/kv/range",
            json!({"key": k, "range_end": k_end, "sort_order": "DESCEND",
                "sort_target": "KEY", "limit": 2, "keys_only": true}),
        ),
        step("/v3beta/kv/range", json!({"key": k, "count_only": true})),
        step("/v3/kv/range", json!({"key": k, "revision": 2})),
        step("/v3/kv/range", json!({"key": k, "revision": "100"})),
        step("/v3/kv/range", json!({"key": k, "nope": 1})),
        step(
            "/v3/kv/txn",
            json!({"compare": [{"key": k, "result": "EQUAL", "target": "VALUE",
                    "value": b64("baz")}],
                "success": [{"request_put": {"key": k1, "value": b64("x"), "prev_kv": true}},
                    {"request_range": {"key": k1}}],
                "failure": [{"request_range": {"key": k}}]}),
        ),
        step(
            "/v3/kv/txn",
            json!({"compare": [{"key": k, "result": "GREATER", "target": "VERSION",
                    "version": 10}],
                "failure": [{"request_delete_range": {"key": b64("foo2"), "prev_kv": true}}]}),
        ),
        step("/v3/kv/deleterange", json!({"key": k1, "prev_kv": true})),
        step("/v3/kv/compaction", json!({"revision": 3})),
        step("/v3/kv/range", json!({"key": k, "revision": 2})),
        // Leases, by IDs the script chooses (etcd's own are random).
        step("/v3/lease/grant", json!({"ID": 1000, "TTL": 60})),
        step("/v3/lease/grant", json!({"ID": 1000, "TTL": 60})),
        step("/v3/lease/grant", json!({"ID": 2000, "TTL": 60})),
        step(
            "/v3/kv/put",
            json!({"key": b64("leased"), "value": b64("v"), "lease": 1000}),
        ),
        blanking(
            step("/v3/lease/timetolive", json!({"ID": 1000, "keys": true})),
            &["TTL"],
        ),
        step("/v3/kv/lease/leases", json!({})),
        step("/v3/lease/leases", json!({})),
        stream("/v3/lease/keepalive", json!({"ID": 2000})),
        step("/v3/lease/revoke", json!({"ID": 1000})),
        step("/v3/kv/lease/revoke", json!({"ID": 1000})),
        step("/v3/kv/lease/timetolive", json!({"ID": 1000})),
        step("/v3/kv/range", json!({"key": b64("leased")})),
        // Streams: a watch from before the compaction is cancelled; one after it replays.
        stream(
            "/v3/watch",
            json!({"create_request": {"key": k, "range_end": k_end, "start_revision": 1}}),
        ),
        stream(
            "/v3/watch",
            json!({"create_request": {"key": k, "range_end": k_end, "start_revision": 4,
                "prev_kv": true}}),
        ),
        // Election and lock over lease 2000.
        step(
            "/v3/election/campaign",
            json!({"name": b64("ele"), "lease": 2000, "value": b64("v1")}),
        ),
        step("/v3/election/leader", json!({"name": b64("ele")})),
        raw(
            "/v3/election/proclaim",
            r#"{"leader":$LEADER,"value":"djI="}"#,
            Compare::Exact,
        ),
        stream("/v3/election/observe", json!({"name": b64("ele")})),
        raw(
            "/v3/election/resign",
            r#"{"leader":$LEADER}"#,
            Compare::Exact,
        ),
        step("/v3/election/leader", json!({"name": b64("ele")})),
        step("/v3/lock/lock", json!({"name": b64("lk"), "lease": 2000})),
        raw("/v3/lock/unlock", r#"{"key":$LOCK}"#, Compare::Exact),
        // Cluster and maintenance (what differs between any two servers blanked).
        step("/v3/cluster/member/list", json!({})),
        blanking(
            step("/v3/maintenance/status", json!({})),
            &[
                "version",
                "dbSize",
                "dbSizeInUse",
                "raftIndex",
                "raftAppliedIndex",
            ],
        ),
        step("/v3/maintenance/alarm", json!({"action": "GET"})),
        blanking(step("/v3/maintenance/hash", json!({})), &["hash"]),
        step("/v3/maintenance/defragment", json!({})),
        // Errors.
        step("/v3/kv/put", json!({"key": ""})),
        raw("/v3/kv/range", "", Compare::Exact),
        raw("/v3/kv/range", "{", Compare::Code),
        raw("/v3/kv/range", "[1]", Compare::Code),
        raw("/v3/kv/range", r#"{"key":5}"#, Compare::Code),
        raw("/v3/kv/range", r#"{"key":"!!"}"#, Compare::Code),
        raw(
            "/v3/kv/range",
            r#"{"key":"Zm9v","sort_order":"NOPE"}"#,
            Compare::Code,
        ),
        step("/v3/lease/revoke", json!({"ID": 99})),
        step("/v3/kv/nothing", json!({})),
        step("/v3/maintenance/hashkv", json!({})),
        Step {
            get: true,
            ..step("/v3/kv/range", json!({}))
        },
        // Auth, the way etcdctl enables it, then calls with and without a token.
        step(
            "/v3/auth/user/add",
            json!({"name": "root", "password": "pw"}),
        ),
        step(
            "/v3/auth/user/grant",
            json!({"user": "root", "role": "root"}),
        ),
        step("/v3/auth/role/add", json!({"name": "reader"})),
        step(
            "/v3/auth/role/grant",
            json!({"name": "reader", "perm": {"permType": "READ", "key": k, "range_end": k_end}}),
        ),
        step("/v3/auth/role/get", json!({"role": "reader"})),
        step("/v3/auth/user/get", json!({"name": "root"})),
        step("/v3/auth/user/list", json!({})),
        step("/v3/auth/role/list", json!({})),
        step("/v3/auth/enable", json!({})),
        step("/v3/kv/range", json!({"key": k})),
        step(
            "/v3/auth/authenticate",
            json!({"name": "root", "password": "nope"}),
        ),
        step(
            "/v3/auth/authenticate",
            json!({"name": "root", "password": "pw"}),
        ),
        raw("/v3/kv/range", r#"{"key":"Zm9v"}"#, Compare::Exact),
        raw("/v3/auth/disable", "{}", Compare::Exact),
        step("/v3/kv/range", json!({"key": k})),
    ];
    // Calls after the token came carry it.
    let authed = s
        .iter()
        .position(|st| st.path == "/v3/auth/authenticate" && st.body.contains("\"pw\""))
        .unwrap();
    for st in &mut s[authed + 1..] {
        if st.body == r#"{"key":"Zm9v"}"# || st.path == "/v3/auth/disable" {
            st.body = format!("TOKEN {}", st.body);
        }
    }
    s
}

/// The bindings of the script's placeholders.
#[derive(Default)]
struct Bindings {
    token: String,
    leader: String,
    lock: String,
}

impl Bindings {
    fn learn(&mut self, body: &Value) {
        if let Some(t) = body["token"].as_str() {
            self.token = t.to_string();
        }
        if body["leader"].is_object() {
            self.leader = body["leader"].to_string();
        }
        if let Some(k) = body["key"].as_str() {
            self.lock = format!("\"{k}\"");
        }
    }
}

/// One step's answer on `server`: the status and each JSON body (one per line for streams).
fn run_step(server: &Server, st: &Step, b: &mut Bindings) -> (u16, Vec<Value>) {
    let (token, body) = match st.body.strip_prefix("TOKEN ") {
        Some(rest) => (Some(b.token.clone()), rest),
        None => (None, st.body.as_str()),
    };
    let body = body.replace("$LEADER", &b.leader).replace("$LOCK", &b.lock);
    let url = format!("{}{}", server.client_url(), st.path);
    let mut cmd = Command::new("curl");
    let max = st.stream.unwrap_or(Duration::from_secs(10));
    cmd.args(["-s", "-N", "-w", "\n%{http_code}", "--max-time"])
        .arg(format!("{}", max.as_secs_f64()))
        .args([
            "-X",
            if st.get { "GET" } else { "POST" },
            "--data-binary",
            &body,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: {t}")]);
    }
    cmd.arg(&url);
    let out = common::run_bounded(cmd, None, max + Duration::from_secs(10));
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    let code = lines
        .pop()
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or_else(|| panic!("curl {url}: {out:?}"));
    let bodies: Vec<Value> = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| Value::String(l.to_string())))
        .collect();
    for v in &bodies {
        b.learn(v);
    }
    (code, bodies)
}

/// Blanks `fields` (and what differs between any two runs: raft terms, tokens) in `v`.
fn normalize(v: &mut Value, fields: &[&str]) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if fields.contains(&k.as_str())
                    || ["raft_term", "raftTerm", "token"].contains(&k.as_str())
                {
                    *x = Value::from("_");
                } else {
                    normalize(x, fields);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| normalize(x, fields)),
        _ => {}
    }
}

/// What is compared of one step's answer.
fn digest(st: &Step, (code, mut bodies): (u16, Vec<Value>)) -> String {
    bodies.iter_mut().for_each(|b| normalize(b, st.blank));
    let bodies: Vec<Value> = match st.compare {
        Compare::Exact => bodies,
        Compare::Code => bodies.iter().map(|b| b["code"].clone()).collect(),
    };
    format!("{code} {}", Value::from(bodies))
}

fn run(server: &Server, steps: &[Step]) -> Vec<String> {
    let mut b = Bindings::default();
    steps
        .iter()
        .map(|st| digest(st, run_step(server, st, &mut b)))
        .collect()
}

#[test]
fn gateway_script_matches_real_etcd() {
    let steps = script();
    if !common::etcd_available() {
        assert_eq!(
            std::env::var("DETCD_SKIP_ETCD_DIFF").as_deref(),
            Ok("1"),
            "real etcd is not installed: apt-get install etcd-server, or set \
             DETCD_SKIP_ETCD_DIFF=1 to skip"
        );
        return;
    }
    // Same ports, so the same member and cluster IDs.
    let mut attempt = 0;
    let (expected, actual) = loop {
        attempt += 1;
        let etcd = Builder::new(Kind::Etcd).start();
        let ports = (etcd.client_port, etcd.peer_port);
        let expected = run(&etcd, &steps);
        drop(etcd);
        let detcd = Builder::new(Kind::Detcd).ports(ports.0, ports.1).start();
        if (detcd.client_port, detcd.peer_port) == ports {
            break (expected, run(&detcd, &steps));
        }
        assert!(attempt < 3, "could not run detcd on etcd's ports {ports:?}");
    };
    let mut diffs = String::new();
    for ((st, e), a) in steps.iter().zip(&expected).zip(&actual) {
        if e != a {
            diffs.push_str(&format!(
                "\n=== POST {} {}\n--- etcd:  {e}\n--- detcd: {a}\n",
                st.path, st.body
            ));
        }
    }
    assert!(diffs.is_empty(), "etcd and detcd differ:{diffs}");
    // Not vacuous: answers succeed and fail, streams stream.
    let ok = expected.iter().filter(|e| e.starts_with("200 ")).count();
    assert!(ok > 30 && ok < steps.len() - 8, "{ok} of {}", steps.len());
    assert!(expected.iter().any(|e| e.contains("\"events\"")));
}

#[test]
fn answers_keep_etcds_field_order_and_headers() {
    let s = Server::detcd();
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "10", "-X", "POST", "-d"])
        .arg(json!({"key": b64("k"), "value": b64("v")}).to_string())
        .arg(format!("{}/v3/kv/put", s.client_url()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("content-type: application/json"), "{text}");
    assert!(text.contains("access-control-allow-origin: *"), "{text}");
    assert!(
        text.contains("{\"header\":{\"cluster_id\":\""),
        "fields in field order: {text}"
    );
    // --enable-grpc-gateway=false turns it off, and only it.
    let off = Builder::new(Kind::Detcd)
        .arg("--enable-grpc-gateway=false")
        .start();
    let code = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .arg(format!("{}/v3/kv/range", off.client_url()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&code.stdout), "404");
    assert_eq!(
        off.etcdctl(&["put", "k", "v"], None).stdout.trim(),
        "OK",
        "gRPC still served"
    );
}

#[test]
fn a_live_watch_sees_puts_made_through_the_gateway() {
    let s = Server::detcd();
    let mut watch = Command::new("curl")
        .args(["-s", "-N", "--max-time", "30", "-X", "POST", "-d"])
        .arg(json!({"create_request": {"key": b64("w")}}).to_string())
        .arg(format!("{}/v3/watch", s.client_url()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let line = |what: &str| -> Value {
        let l = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no {what} line"));
        serde_json::from_str(&l).unwrap()
    };
    assert_eq!(line("created")["result"]["created"], json!(true));
    for v in ["1", "2"] {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "10", "-X", "POST", "-d"])
            .arg(json!({"key": b64("w"), "value": b64(v)}).to_string())
            .arg(format!("{}/v3/kv/put", s.client_url()))
            .output()
            .unwrap();
        assert!(out.status.success());
        let ev = line("event");
        assert_eq!(
            ev["result"]["events"][0]["kv"]["value"],
            json!(b64(v)),
            "{ev}"
        );
    }
    let _ = watch.kill();
    let _ = watch.wait();
}

#[test]
fn a_snapshot_through_the_gateway_is_etcds_file() {
    let s = Server::detcd();
    s.etcdctl(&["put", "k", "v"], None);
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20", "-X", "POST", "-d", "{}"])
        .arg(format!("{}/v3/maintenance/snapshot", s.client_url()))
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut file = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let blob = v["result"]["blob"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"));
        file.extend(common::base64_decode(blob));
    }
    let path = s.dir().join("gateway.db");
    std::fs::write(&path, &file).unwrap();
    let mut cmd = Command::new(common::ETCDCTL_BIN);
    cmd.args(["snapshot", "status", "-w", "json"])
        .arg(&path)
        .env("ETCDCTL_API", "3")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let status = common::run_bounded(cmd, None, Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    assert!(
        status.json()["totalKey"].as_u64().unwrap() >= 1,
        "{status:?}"
    );
}
