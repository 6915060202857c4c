//! What every workload's clients do alike: connect to a member, pick one at random, build the
//! usual requests, read a response's revision, renew a lease once, and tell simulated time.
//!
//! Each helper does exactly what the workloads' own copies did (the same awaits, timeouts and
//! random draws, in the same order), so moving a workload onto them leaves its runs unchanged
//! seed for seed.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use bytes::Bytes;
use detcd::proto::etcdserverpb::kv_client::KvClient;
use detcd::proto::etcdserverpb::lease_client::LeaseClient;
use detcd::proto::etcdserverpb::request_op::Request;
use detcd::proto::etcdserverpb::{
    DeleteRangeRequest, LeaseKeepAliveRequest, PutRequest, RangeRequest, RequestOp, ResponseHeader,
};
use detcd_jepsen::watch::WatchStream;
use rand::Rng;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

/// Connects to the member at `url`, waiting as long as it takes (a refused connection fails at
/// once; a member that does not answer keeps the caller waiting).
pub async fn dial(url: &str) -> Option<Channel> {
    Endpoint::from_shared(url.to_string())
        .ok()?
        .connect()
        .await
        .ok()
}

/// Connects to the member at `url`, giving up after `within` (a crashed or paused member never
/// answers, and a client must move on to another).
pub async fn channel(url: &str, within: Duration) -> Option<Channel> {
    tokio::time::timeout(within, dial(url)).await.ok()?
}

/// A KV client on the member at `url`, connected within `within`.
pub async fn connect_kv(url: &str, within: Duration) -> Option<KvClient<Channel>> {
    channel(url, within).await.map(KvClient::new)
}

/// A Lease client on the member at `url`, connected within `within`.
pub async fn connect_lease(url: &str, within: Duration) -> Option<LeaseClient<Channel>> {
    channel(url, within).await.map(LeaseClient::new)
}

/// A member chosen at random (one draw of the simulator's generator): its position in `urls`.
pub fn random_member(urls: &[String]) -> usize {
    madsim::rand::thread_rng().gen_range(0..urls.len())
}

/// Simulated nanoseconds since `start`: the time scale of detcd-jepsen's histories.
pub fn nanos_since(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

/// Simulated milliseconds since `start`.
pub fn ms_since(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

/// Bytes as text (the workloads' keys and values are UTF-8).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The revision a response's header names; 0 if it has no header.
pub fn revision(header: Option<ResponseHeader>) -> u64 {
    header.unwrap_or_default().revision as u64
}

/// A put of `value` at `key`.
pub fn put_request(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: Bytes::from(key.to_string()),
        value: Bytes::from(value.to_string()),
        ..Default::default()
    }
}

/// A read of `key` (linearizable, at the newest revision).
pub fn get_request(key: &str) -> RangeRequest {
    RangeRequest {
        key: Bytes::from(key.to_string()),
        ..Default::default()
    }
}

/// A read of every key under `prefix` (linearizable, at the newest revision).
pub fn prefix_request(prefix: &str) -> RangeRequest {
    RangeRequest {
        key: Bytes::from(prefix.to_string()),
        range_end: Bytes::from(WatchStream::prefix_end(prefix)),
        ..Default::default()
    }
}

/// A put inside a transaction.
pub fn put_op(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(put_request(key, value))),
    }
}

/// A read inside a transaction.
pub fn get_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestRange(get_request(key))),
    }
}

/// A delete of one key.
pub fn delete_request(key: &str) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: Bytes::from(key.to_string()),
        ..Default::default()
    }
}

/// A delete of one key inside a transaction.
pub fn delete_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestDeleteRange(delete_request(key))),
    }
}

/// One keep-alive of lease `id` on a fresh stream: the TTL the cluster answered (0: the lease
/// is gone), or why there was no answer. Unbounded in time: the caller sets the timeout.
pub async fn keep_alive_once(lc: &mut LeaseClient<Channel>, id: i64) -> Result<i64, String> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    // etcd sends a stream's response headers with its first response: ask before waiting.
    tx.send(LeaseKeepAliveRequest { id })
        .await
        .map_err(|_| "send")?;
    let requests =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let answer = {
        let mut responses = lc
            .lease_keep_alive(requests)
            .await
            .map_err(|e| e.message().to_string())?
            .into_inner();
        match responses.message().await {
            Ok(Some(r)) => Ok(r.ttl),
            Ok(None) => Err("stream closed".to_string()),
            Err(e) => Err(e.message().to_string()),
        }
    };
    // The response stream goes first (it stops the task sending our requests), the request
    // channel after: the order the simulator's seeds were recorded with.
    drop(tx);
    answer
}
