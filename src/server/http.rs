//! HTTP on the client URLs, beside gRPC on the same port (as etcd serves both): `/health`,
//! `/version`, `/livez`, `/readyz` and `/metrics` (etcd's `etcdhttp`), for load balancers,
//! dashboards and curl. HTTP/1.1 and HTTP/2 both work.
//!
//! `/health` is etcd 3.4's: `{"health":"true"}`, or 503 with `{"health":"false"}` when an alarm
//! is raised (unless `?exclude=NOSPACE|CORRUPT` names it), when the member knows no leader, or
//! when a linearizable read does not complete within a second. `/metrics` is Prometheus text
//! with etcd's names and labels for what detcd has (see [`metrics`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::backup::export::CLUSTER_VERSION;
use crate::io::clock;
use crate::proto::etcdserverpb::AlarmType;
use crate::raft::RaftNode;

use super::maintenance::ETCD_API_VERSION;

/// How long `/health`'s linearizable read may take.
const HEALTH_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// What the HTTP handlers read.
#[derive(Clone)]
pub struct HttpState {
    node: RaftNode,
    quota_bytes: Option<u64>,
    leader_changes: Arc<AtomicU64>,
}

impl HttpState {
    /// The HTTP surface of `node` (whose `--quota-backend-bytes` is `quota_bytes`); starts
    /// counting the leader changes this member sees.
    pub fn new(node: RaftNode, quota_bytes: Option<u64>) -> Self {
        let leader_changes = Arc::new(AtomicU64::new(0));
        tokio::spawn(count_leader_changes(node.clone(), leader_changes.clone()));
        HttpState {
            node,
            quota_bytes,
            leader_changes,
        }
    }
}

/// Counts every change of the leader this member knows to a new one (etcd's
/// `leader_changes_seen`), until raft stops.
async fn count_leader_changes(node: RaftNode, changes: Arc<AtomicU64>) {
    let mut metrics = node.raft().metrics();
    let mut last = None;
    loop {
        let leader = metrics.borrow().current_leader;
        if leader.is_some() && leader != last {
            changes.fetch_add(1, Ordering::Relaxed);
        }
        if leader.is_some() {
            last = leader;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// The HTTP routes, to serve beside the gRPC services.
pub fn routes(state: HttpState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// What a request for no route gets, once merged with the gRPC services: a gRPC call gets
/// `Unimplemented` naming what is unknown (as grpc-go says it), anything else etcd's 404.
pub async fn fallback(req: axum::extract::Request) -> Response {
    let grpc = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if !grpc {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "404 page not found\n".into(),
        );
    }
    let path = req.uri().path().trim_start_matches('/');
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    let message = if KNOWN_SERVICES.contains(&service) {
        format!("unknown method {method} for service {service}")
    } else {
        format!("unknown service {service}")
    };
    tonic::Status::unimplemented(message).into_http()
}

/// Rewrites a gRPC answer tonic words differently from grpc-go, which etcd's clients see: a
/// message over the receive limit is `ResourceExhausted` "grpc: received message larger than max
/// (N vs. M)" there, `OutOfRange` with tonic's wording here. Applied to every response of the
/// client port (only unary calls refused before their handler carry the status in headers).
pub fn grpc_go_statuses(resp: Response) -> Response {
    let out_of_range = resp
        .headers()
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == b"11");
    if !out_of_range {
        return resp;
    }
    let message = resp
        .headers()
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    match oversize(&message) {
        Some((found, limit)) => tonic::Status::resource_exhausted(format!(
            "grpc: received message larger than max ({found} vs. {limit})"
        ))
        .into_http(),
        None => resp,
    }
}

/// `(found, limit)` of tonic's "decoded message length too large" message.
fn oversize(message: &str) -> Option<(u64, u64)> {
    let rest = message.strip_prefix("Error, decoded message length too large: found ")?;
    let (found, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.strip_suffix(" bytes")?;
    Some((found.parse().ok()?, limit.parse().ok()?))
}

/// gRPC's percent-encoding of `grpc-message`, undone.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The gRPC services of the client port.
const KNOWN_SERVICES: &[&str] = &[
    "etcdserverpb.KV",
    "etcdserverpb.Watch",
    "etcdserverpb.Lease",
    "etcdserverpb.Cluster",
    "etcdserverpb.Maintenance",
    "etcdserverpb.Auth",
    "v3electionpb.Election",
    "v3lockpb.Lock",
];

/// A response with etcd's CORS headers (`--cors` defaults to `*`).
fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    with_cors(r)
}

/// `r` with etcd's CORS headers.
pub fn with_cors(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("accept, content-type, authorization"),
    );
    r
}

/// The alarm types `?exclude=…` names.
fn excluded(query: Option<&str>) -> Vec<i32> {
    query
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.strip_prefix("exclude="))
        .filter_map(AlarmType::from_str_name)
        .map(|t| t as i32)
        .collect()
}

/// Whether the member is healthy as etcd 3.4 judges it; the reason if not.
async fn check(node: &RaftNode, excluded: &[i32]) -> Result<(), &'static str> {
    let raised = node.alarms().get(AlarmType::None as i32);
    if raised.iter().any(|a| !excluded.contains(&a.alarm)) {
        return Err("alarm activated");
    }
    if node.leader().is_none() {
        return Err("no leader");
    }
    match clock::timeout(HEALTH_READ_TIMEOUT, node.read_barrier()).await {
        Ok(Ok(())) => Ok(()),
        _ => Err("linearizable read failed"),
    }
}

async fn health(State(s): State<HttpState>, RawQuery(q): RawQuery) -> Response {
    match check(&s.node, &excluded(q.as_deref())).await {
        Ok(()) => reply(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            r#"{"health":"true"}"#.into(),
        ),
        Err(why) => {
            tracing::warn!("/health error: {why}");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                r#"{"health":"false"}"#.into(),
            )
        }
    }
}

async fn version() -> Response {
    reply(
        StatusCode::OK,
        "application/json",
        format!(r#"{{"etcdserver":"{ETCD_API_VERSION}","etcdcluster":"{CLUSTER_VERSION}"}}"#),
    )
}

async fn livez() -> Response {
    reply(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into())
}

async fn readyz(State(s): State<HttpState>, RawQuery(q): RawQuery) -> Response {
    match check(&s.node, &excluded(q.as_deref())).await {
        Ok(()) => reply(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()),
        Err(why) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            format!("[-]{why}\nreadyz check failed\n"),
        ),
    }
}

async fn metrics(State(s): State<HttpState>) -> Response {
    match metrics::render(&s) {
        Ok(text) => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            text,
        ),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("encoding metrics: {e}\n"),
        ),
    }
}

/// `/metrics`: etcd's metric names (a registry filled at each scrape from the member's state).
///
/// Exported: `etcd_server_has_leader`, `etcd_server_is_leader`, `etcd_server_id`,
/// `etcd_server_version`, `etcd_cluster_version`, `etcd_server_leader_changes_seen_total`,
/// `etcd_server_proposals_applied_total`, `etcd_server_quota_backend_bytes`,
/// `etcd_mvcc_db_total_size_in_bytes`, `etcd_mvcc_db_total_size_in_use_in_bytes`,
/// `etcd_debugging_mvcc_keys_total`, `etcd_debugging_mvcc_current_revision`,
/// `etcd_debugging_mvcc_compact_revision`, `etcd_debugging_auth_revision`. Not yet: latency
/// histograms (WAL fsync, backend commit), per-method gRPC counters, peer network counters.
pub mod metrics {
    use super::*;

    fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
        let g: Gauge = Gauge::default();
        g.set(value);
        registry.register(name, help, g);
    }

    fn labelled(registry: &mut Registry, name: &str, help: &str, label: &str, value: String) {
        let f: Family<Vec<(String, String)>, Gauge> = Family::default();
        f.get_or_create(&vec![(label.to_string(), value)]).set(1);
        registry.register(name, help, f);
    }

    fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
        let c: Counter = Counter::default();
        c.inc_by(value);
        registry.register(name, help, c);
    }

    /// The metrics of the member behind `s`, as text.
    pub fn render(s: &HttpState) -> Result<String, std::fmt::Error> {
        let node = &s.node;
        let m = node.raft().metrics().borrow().clone();
        let store = node.store();
        let db = node.disk().size_on_disk() as i64;
        let mut r = Registry::default();
        gauge(
            &mut r,
            "etcd_server_has_leader",
            "Whether or not a leader exists. 1 is existence, 0 is not",
            m.current_leader.is_some() as i64,
        );
        gauge(
            &mut r,
            "etcd_server_is_leader",
            "Whether or not this member is a leader. 1 if is, 0 otherwise",
            (m.current_leader == Some(node.id())) as i64,
        );
        labelled(
            &mut r,
            "etcd_server_id",
            "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID",
            "server_id",
            format!("{:x}", node.id()),
        );
        labelled(
            &mut r,
            "etcd_server_version",
            "Which version is running. 1 for 'server_version' label with current version",
            "server_version",
            ETCD_API_VERSION.to_string(),
        );
        labelled(
            &mut r,
            "etcd_cluster_version",
            "Which version is running. 1 for 'cluster_version' label with current cluster version",
            "cluster_version",
            CLUSTER_VERSION
                .rsplit_once('.')
                .map_or(CLUSTER_VERSION, |(v, _)| v)
                .to_string(),
        );
        counter(
            &mut r,
            "etcd_server_leader_changes_seen",
            "The number of leader changes seen",
            s.leader_changes.load(Ordering::Relaxed),
        );
        counter(
            &mut r,
            "etcd_server_proposals_applied",
            "The total number of consensus proposals applied",
            m.last_applied.map_or(0, |l| l.index),
        );
        gauge(
            &mut r,
            "etcd_server_quota_backend_bytes",
            "Current backend storage quota size in bytes",
            s.quota_bytes.map_or(-1, |q| q as i64),
        );
        gauge(
            &mut r,
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes",
            db,
        );
        gauge(
            &mut r,
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Total size of the underlying database logically in use in bytes",
            db,
        );
        gauge(
            &mut r,
            "etcd_debugging_mvcc_keys_total",
            "Total number of keys",
            store.key_count() as i64,
        );
        gauge(
            &mut r,
            "etcd_debugging_mvcc_current_revision",
            "The current revision of store",
            store.current_revision(),
        );
        gauge(
            &mut r,
            "etcd_debugging_mvcc_compact_revision",
            "The revision of the last compaction in store",
            store.compacted_revision(),
        );
        gauge(
            &mut r,
            "etcd_debugging_auth_revision",
            "The current revision of auth store",
            node.auth().revision() as i64,
        );
        let mut out = String::new();
        encode(&mut out, &r)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonics_oversize_status_becomes_grpc_gos() {
        let msg = "Error, decoded message length too large: found 4194325 bytes, the limit is: 2097152 bytes";
        assert_eq!(oversize(msg), Some((4194325, 2097152)));
        assert_eq!(oversize("something else"), None);
        assert_eq!(percent_decode("a%2C%20b%3A%zz%2"), "a, b:%zz%2");
        let resp = tonic::Status::out_of_range(msg).into_http::<axum::body::Body>();
        let fixed = grpc_go_statuses(resp.map(axum::body::Body::new));
        assert_eq!(fixed.headers()["grpc-status"], "8");
        let other =
            tonic::Status::out_of_range("etcdserver: mvcc: required revision is a future revision")
                .into_http::<axum::body::Body>();
        assert_eq!(
            grpc_go_statuses(other.map(axum::body::Body::new)).headers()["grpc-status"],
            "11"
        );
    }

    #[test]
    fn exclude_names_alarm_types() {
        assert_eq!(
            excluded(Some("exclude=NOSPACE")),
            vec![AlarmType::Nospace as i32]
        );
        assert_eq!(
            excluded(Some("exclude=NOSPACE&exclude=CORRUPT&x=1")),
            vec![AlarmType::Nospace as i32, AlarmType::Corrupt as i32]
        );
        assert!(excluded(Some("exclude=BOGUS")).is_empty());
        assert!(excluded(None).is_empty());
    }
}
