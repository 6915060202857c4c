//! The gRPC server counters etcd exports (go-grpc-prometheus's names and labels):
//! `grpc_server_started_total`, `grpc_server_handled_total` (with `grpc_code`),
//! `grpc_server_msg_received_total` and `grpc_server_msg_sent_total`, by `grpc_type`,
//! `grpc_service` and `grpc_method`, every method of the client services present from the start
//! (and every code, for handled) as etcd's are.
//!
//! Counted by a middleware on the client port's gRPC router, so JSON gateway calls (which go
//! through that router) count too, as they do in etcd, whose gateway dials its own gRPC port.
//! Messages are counted from gRPC's framing of the request and response bodies; a call's code
//! is its `grpc-status` (in the trailers, or in the headers of a trailers-only answer), or
//! `Canceled` when the answer is dropped before it ends. With `--metrics extensive`, also
//! `grpc_server_handling_seconds` (from the request to the call's end, Prometheus's default
//! buckets), as etcd.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use prost_reflect::MethodDescriptor;

use crate::io::clock;
use crate::server::descriptors;

type Labels = Vec<(String, String)>;
type Counters = Family<Labels, Counter>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Prometheus's default buckets, which go-grpc-prometheus's handling-time histogram uses.
const HANDLING_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn handling_histogram() -> Histogram {
    Histogram::new(HANDLING_BUCKETS)
}

/// gRPC's codes by number, as Go names them.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The counters, shared by the middleware and the scrapes.
#[derive(Clone)]
pub struct GrpcMetrics {
    started: Counters,
    handled: Counters,
    received: Counters,
    sent: Counters,
    /// `--metrics extensive`: how long calls take.
    handling: Option<Histograms>,
    /// Each client method's own counters, by request path (`/etcdserverpb.KV/Range`), looked
    /// up once here so a call touches no label sets.
    methods: Arc<BTreeMap<String, Arc<Method>>>,
}

/// One method's series of every family.
struct Method {
    started: Counter,
    received: Counter,
    sent: Counter,
    /// By code number ([`CODES`]).
    handled: Vec<Counter>,
    handling: Option<Histogram>,
}

impl GrpcMetrics {
    /// Counters at zero for every method of the client services (and with `extensive`, the
    /// handling-time histograms).
    pub fn new(extensive: bool) -> Self {
        let started = Counters::default();
        let handled = Counters::default();
        let received = Counters::default();
        let sent = Counters::default();
        let handling = extensive.then(|| Histograms::new_with_constructor(handling_histogram));
        let methods = descriptors::client_methods()
            .into_iter()
            .map(|d| {
                let l = labels(&d);
                let method = Method {
                    started: started.get_or_create(&l).clone(),
                    received: received.get_or_create(&l).clone(),
                    sent: sent.get_or_create(&l).clone(),
                    handled: CODES
                        .iter()
                        .map(|code| handled.get_or_create(&with_code(&l, code)).clone())
                        .collect(),
                    handling: handling.as_ref().map(|h| h.get_or_create(&l).clone()),
                };
                let path = format!("/{}/{}", d.parent_service().full_name(), d.name());
                (path, Arc::new(method))
            })
            .collect();
        GrpcMetrics {
            started,
            handled,
            received,
            sent,
            handling,
            methods: Arc::new(methods),
        }
    }

    /// Adds the counters to a scrape's registry.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "grpc_server_started",
            "Total number of RPCs started on the server",
            self.started.clone(),
        );
        r.register(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure",
            self.handled.clone(),
        );
        r.register(
            "grpc_server_msg_received",
            "Total number of RPC stream messages received on the server",
            self.received.clone(),
        );
        r.register(
            "grpc_server_msg_sent",
            "Total number of gRPC stream messages sent by the server",
            self.sent.clone(),
        );
        if let Some(h) = &self.handling {
            r.register(
                "grpc_server_handling_seconds",
                "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server",
                h.clone(),
            );
        }
    }
}

/// The middleware: counts each call to a client method as it starts, its messages each way,
/// and its code when it ends.
pub async fn track(State(m): State<GrpcMetrics>, req: Request, next: Next) -> Response {
    let Some(method) = m.methods.get(req.uri().path()).cloned() else {
        return next.run(req).await;
    };
    let start = clock::now();
    method.started.inc();
    let received = method.received.clone();
    let req = req.map(|b| Body::new(Counted::new(b, received, None)));
    let resp = next.run(req).await;
    let sent = method.sent.clone();
    let end = Handled { method, start };
    // A trailers-only answer carries its status in the headers.
    let end = match status_code(resp.headers()) {
        Some(code) => {
            end.record(code);
            None
        }
        None => Some(end),
    };
    resp.map(|b| Body::new(Counted::new(b, sent, end)))
}

fn labels(d: &MethodDescriptor) -> Labels {
    let kind = match (d.is_client_streaming(), d.is_server_streaming()) {
        (false, false) => "unary",
        (true, false) => "client_stream",
        (false, true) => "server_stream",
        (true, true) => "bidi_stream",
    };
    vec![
        ("grpc_method".into(), d.name().into()),
        ("grpc_service".into(), d.parent_service().full_name().into()),
        ("grpc_type".into(), kind.into()),
    ]
}

fn with_code(l: &Labels, code: &str) -> Labels {
    let mut l = l.clone();
    l.insert(0, ("grpc_code".into(), code.into()));
    l
}

/// The code number of a `grpc-status` header, if `headers` has one (an unknown number is
/// `Unknown`).
fn status_code(headers: &HeaderMap) -> Option<usize> {
    let n: usize = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    Some(if n < CODES.len() { n } else { UNKNOWN })
}

/// `Unknown`'s number, for a status that cannot be read.
const UNKNOWN: usize = 2;
/// `Canceled`'s number, for an answer dropped before it ended.
const CANCELED: usize = 1;

/// Where a call's end is recorded.
struct Handled {
    method: Arc<Method>,
    start: clock::Instant,
}

impl Handled {
    fn record(self, code: usize) {
        self.method.handled[code].inc();
        if let Some(h) = &self.method.handling {
            let took = clock::now().saturating_duration_since(self.start);
            h.observe(took.as_secs_f64());
        }
    }
}

/// Counts the gRPC messages in a stream of data chunks: each is a 5-byte prefix (flag, 4-byte
/// big-endian length) and that many bytes.
#[derive(Default)]
struct FrameCounter {
    /// Bytes of the current prefix seen so far.
    prefix: Vec<u8>,
    /// Bytes of the current message still to come.
    remaining: usize,
}

impl FrameCounter {
    /// Feeds `data`; the number of messages whose prefix completed in it.
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut started = 0;
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                continue;
            }
            let n = (5 - self.prefix.len()).min(data.len());
            self.prefix.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.prefix.len() == 5 {
                let len = u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]);
                self.remaining = len as usize;
                self.prefix.clear();
                started += 1;
            }
        }
        started
    }
}

/// A body whose messages are counted and whose end (trailers, or being dropped unfinished)
/// records the call's code.
struct Counted {
    inner: Body,
    frames: FrameCounter,
    messages: Counter,
    end: Option<Handled>,
}

impl Counted {
    fn new(inner: Body, messages: Counter, end: Option<Handled>) -> Self {
        Counted {
            inner,
            frames: FrameCounter::default(),
            messages,
            end,
        }
    }
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.messages.inc_by(this.frames.feed(data));
            }
            if let Some(trailers) = frame.trailers_ref() {
                if let Some(end) = this.end.take() {
                    end.record(status_code(trailers).unwrap_or(UNKNOWN));
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(end) = self.end.take() {
            end.record(CANCELED);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: u32) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend(std::iter::repeat_n(7, len as usize));
        m
    }

    #[test]
    fn frames_are_counted_across_any_chunking() {
        let mut stream = message(3);
        stream.extend(message(0));
        stream.extend(message(300));
        for chunk in [1, 2, 5, 7, 64, stream.len()] {
            let mut c = FrameCounter::default();
            let n: u64 = stream.chunks(chunk).map(|p| c.feed(p)).sum();
            assert_eq!(n, 3, "chunks of {chunk}");
        }
    }

    #[test]
    fn code_numbers_name_their_codes() {
        assert_eq!((CODES[UNKNOWN], CODES[CANCELED]), ("Unknown", "Canceled"));
        let mut h = HeaderMap::new();
        h.insert("grpc-status", "16".parse().unwrap());
        assert_eq!(status_code(&h).map(|c| CODES[c]), Some("Unauthenticated"));
        h.insert("grpc-status", "99".parse().unwrap());
        assert_eq!(status_code(&h), Some(UNKNOWN));
    }

    #[test]
    fn every_method_and_code_starts_at_zero() {
        let m = GrpcMetrics::new(false);
        let mut r = Registry::default();
        m.register(&mut r);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        assert!(text.contains(
            r#"grpc_server_started_total{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 0"#
        ), "{text}");
        assert!(text.contains(
            r#"grpc_server_handled_total{grpc_code="Unauthenticated",grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 0"#
        ));
        assert!(text.contains(r#"grpc_method="Observe",grpc_service="v3electionpb.Election",grpc_type="server_stream""#));
        assert!(
            !text.contains("grpc_server_handling_seconds"),
            "basic has no histograms"
        );
        let m = GrpcMetrics::new(true);
        let mut r = Registry::default();
        m.register(&mut r);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        assert!(text.contains(
            r#"grpc_server_handling_seconds_bucket{le="0.005",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 0"#
        ), "{text}");
    }
}
