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

use crate::backup::export::CLUSTER_VERSION;
use crate::io::clock;
use crate::proto::etcdserverpb::AlarmType;
use crate::raft::RaftNode;

use super::descriptors::CLIENT_SERVICES;
use super::maintenance::ETCD_API_VERSION;
use super::metrics::{self, grpc::GrpcMetrics};

/// How long `/health`'s linearizable read may take.
const HEALTH_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// What the HTTP handlers read.
#[derive(Clone)]
pub struct HttpState {
    pub(crate) node: RaftNode,
    pub(crate) quota_bytes: Option<u64>,
    pub(crate) leader_changes: Arc<AtomicU64>,
    pub(crate) grpc: GrpcMetrics,
}

impl HttpState {
    /// The HTTP surface of `node` (whose `--quota-backend-bytes` is `quota_bytes`, whose gRPC
    /// calls `grpc` counts); starts counting the leader changes this member sees.
    pub fn new(node: RaftNode, quota_bytes: Option<u64>, grpc: GrpcMetrics) -> Self {
        let leader_changes = Arc::new(AtomicU64::new(0));
        tokio::spawn(count_leader_changes(node.clone(), leader_changes.clone()));
        HttpState {
            node,
            quota_bytes,
            leader_changes,
            grpc,
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

/// What `--listen-metrics-urls` serve: `/metrics` and `/health`.
pub fn metrics_routes(state: HttpState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> Response {
    reply(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "404 page not found\n".into(),
    )
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
        return not_found().await;
    }
    let path = req.uri().path().trim_start_matches('/');
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    let message = if CLIENT_SERVICES.contains(&service) {
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
