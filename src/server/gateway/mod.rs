//! etcd's JSON gateway on the client URLs: `POST /v3/kv/put` with a JSON request is the `Put`
//! call, answered in JSON (the paths are in [`table`], the mapping in [`json`]). Each call goes
//! through the member's own gRPC services in-process, so checks, auth and errors are theirs: the
//! `Authorization` header (and any `Grpc-Metadata-*` header) becomes gRPC metadata, and the
//! connection's client certificate stays the caller's.
//!
//! Streams as etcd streams them: a streaming request body is a sequence of JSON requests (sent
//! as they arrive, the stream half-closed at the body's end); a streaming answer is one
//! `{"result":…}` line per message, and `{"error":…}` if the call fails once it has begun.

pub mod codec;
pub mod json;
pub mod table;

use std::convert::Infallible;

use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::Request;
use axum::http::header::{HeaderMap, HeaderName, CONTENT_TYPE};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use futures::{Stream, StreamExt};
use prost_reflect::{DynamicMessage, MessageDescriptor, MethodDescriptor};
use tonic::metadata::{KeyAndValueRef, MetadataKey, MetadataMap, MetadataValue};
use tonic::{Status, Streaming};
use tower::util::MapResponseLayer;

use super::http;
use crate::io::net::ConnInfo;
use codec::DynamicCodec;
use table::ROUTES;

/// The prefixes the gateway answers under: `/v3/`, and 3.4's deprecated `/v3beta/`.
const PREFIXES: [&str; 2] = ["/v3/", "/v3beta/"];

/// The header prefix grpc-gateway passes on as gRPC metadata.
const METADATA_HEADER_PREFIX: &str = "grpc-metadata-";

/// The gateway's routes, calling the services of `grpc` (the member's gRPC router). A request
/// body may be up to `max_body` bytes (unary calls; streams are read as they come).
pub fn routes(grpc: Router, max_body: usize) -> Router {
    let mut router = Router::new();
    for route in ROUTES {
        let method = json::method(route).expect("every gateway route names a compiled method");
        let call = Call {
            grpc: grpc.clone(),
            path: PathAndQuery::from_maybe_shared(format!("/{}/{}", route.service, route.method))
                .expect("service and method names form a path"),
            method,
            max_body,
        };
        for prefix in PREFIXES {
            let call = call.clone();
            router = router.route(
                &format!("{prefix}{}", route.path),
                post(move |req: Request| call.clone().run(req)).fallback(method_not_allowed),
            );
        }
    }
    for prefix in PREFIXES {
        router = router.route(&format!("{prefix}{{*rest}}"), any(not_found));
    }
    router.layer(MapResponseLayer::new(http::with_cors))
}

/// A gateway path asked with another method than `POST`.
async fn method_not_allowed() -> Response {
    text_reply(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n")
}

/// A path under the gateway's prefixes that names no method.
async fn not_found() -> Response {
    text_reply(StatusCode::NOT_FOUND, "Not Found\n")
}

/// One gateway path, bound to the method it calls.
#[derive(Clone)]
struct Call {
    grpc: Router,
    path: PathAndQuery,
    method: MethodDescriptor,
    max_body: usize,
}

impl Call {
    async fn run(self, req: Request) -> Response {
        match self.call(req).await {
            Ok(resp) => resp,
            Err(status) => json_reply(json::http_status(status.code()), json::error(&status)),
        }
    }

    async fn call(self, req: Request) -> Result<Response, Status> {
        let (parts, body) = req.into_parts();
        let metadata = metadata(&parts.headers);
        let mut extensions = tonic::Extensions::new();
        if let Some(conn) = parts.extensions.get::<ConnInfo>() {
            extensions.insert(conn.clone());
        }
        let mut client = tonic::client::Grpc::new(self.grpc.clone());
        client
            .ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let codec = DynamicCodec::new(self.method.output());
        let input = self.method.input();
        if self.method.is_client_streaming() {
            let mut requests = RequestReader::new(body, input);
            // A first request that does not parse fails the call, as with grpc-gateway; later
            // ones end the stream.
            let first = requests
                .next()
                .await
                .transpose()
                .map_err(|e| Status::unknown(e.message().to_string()))?;
            let stream = futures::stream::iter(first).chain(requests.into_stream());
            let req = tonic::Request::from_parts(metadata, extensions, stream);
            let answers = client.streaming(req, self.path, codec).await?;
            return Ok(stream_reply(answers));
        }
        let body = axum::body::to_bytes(body, self.max_body)
            .await
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let msg = json::request(&input, &body)?;
        let req = tonic::Request::from_parts(metadata, extensions, msg);
        if self.method.is_server_streaming() {
            let answers = client.server_streaming(req, self.path, codec).await?;
            return Ok(stream_reply(answers));
        }
        let answer = client.unary(req, self.path, codec).await?;
        let mut resp = json_reply(StatusCode::OK, json::to_json(answer.get_ref()));
        forward_metadata(answer.metadata(), resp.headers_mut());
        Ok(resp)
    }
}

/// The gRPC metadata a gateway request carries: its `Authorization` (etcd's token) and every
/// `Grpc-Metadata-*` header.
fn metadata(headers: &HeaderMap) -> MetadataMap {
    let mut md = MetadataMap::new();
    for (name, value) in headers {
        let key = if name == axum::http::header::AUTHORIZATION {
            "authorization"
        } else if let Some(key) = name.as_str().strip_prefix(METADATA_HEADER_PREFIX) {
            key
        } else {
            continue;
        };
        let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_bytes()),
        ) else {
            continue;
        };
        md.append(key, value);
    }
    md
}

/// Passes the gRPC answer's header metadata on as `Grpc-Metadata-*` headers, as grpc-gateway
/// does.
fn forward_metadata(md: &MetadataMap, headers: &mut HeaderMap) {
    for entry in md.iter() {
        if let KeyAndValueRef::Ascii(key, value) = entry {
            let name = format!("{METADATA_HEADER_PREFIX}{}", key.as_str());
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value.as_encoded_bytes()),
            ) {
                headers.append(name, value);
            }
        }
    }
}

/// The requests of a streaming body, each as soon as its JSON is complete.
struct RequestReader {
    chunks: BodyDataStream,
    split: json::ValueSplitter,
    input: MessageDescriptor,
}

impl RequestReader {
    fn new(body: Body, input: MessageDescriptor) -> Self {
        RequestReader {
            chunks: body.into_data_stream(),
            split: json::ValueSplitter::default(),
            input,
        }
    }

    /// The next request; `None` at the body's end.
    async fn next(&mut self) -> Option<Result<DynamicMessage, Status>> {
        loop {
            match self.split.next_value() {
                Ok(Some(value)) => return Some(json::from_value(&self.input, value)),
                Ok(None) => {}
                Err(e) => return Some(Err(Status::invalid_argument(e.to_string()))),
            }
            match self.chunks.next().await {
                Some(Ok(chunk)) => self.split.push(&chunk),
                _ => return None,
            }
        }
    }

    /// The rest of the requests; the stream ends (the call half-closes) at the body's end or
    /// at the first request that does not parse, as grpc-gateway does.
    fn into_stream(self) -> impl Stream<Item = DynamicMessage> + Send + 'static {
        futures::stream::unfold(self, |mut reader| async move {
            match reader.next().await? {
                Ok(msg) => Some((msg, reader)),
                Err(e) => {
                    tracing::debug!("gateway: a streamed request does not parse: {e}");
                    None
                }
            }
        })
    }
}

/// A streaming answer: one `{"result":…}` line per message, an `{"error":…}` line if the call
/// fails.
fn stream_reply(answers: tonic::Response<Streaming<DynamicMessage>>) -> Response {
    let mut headers = HeaderMap::new();
    forward_metadata(answers.metadata(), &mut headers);
    let lines = futures::stream::unfold(Some(answers.into_inner()), |answers| async move {
        let mut answers = answers?;
        let (line, rest) = match answers.next().await? {
            Ok(msg) => (json::result_line(&msg), Some(answers)),
            Err(status) => (json::stream_error(&status), None),
        };
        Some((Ok::<_, Infallible>(Bytes::from(line)), rest))
    });
    let mut resp = Body::from_stream(lines).into_response();
    resp.headers_mut().extend(headers);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A JSON answer.
fn json_reply(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A plain-text answer.
fn text_reply(status: StatusCode, body: &'static str) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
