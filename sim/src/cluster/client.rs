//! Asking members from the client node: their status, an agreed leader, a KV client.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use detcd::proto::etcdserverpb::kv_client::KvClient;
use detcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use detcd::proto::etcdserverpb::StatusRequest;
use tonic::transport::Channel;

/// Asks member `url` for its status: (member id, leader id, raft term); `None` if it does not
/// answer.
pub async fn status(url: &str) -> Option<(u64, u64, u64)> {
    let mut c = MaintenanceClient::connect(url.to_string()).await.ok()?;
    let s = c.status(StatusRequest {}).await.ok()?.into_inner();
    Some((s.header?.member_id, s.leader, s.raft_term))
}

/// Waits (bounded, in simulated time) until the members at `urls` agree on a leader among them;
/// returns its position in `urls`.
pub async fn wait_leader(urls: &[String]) -> usize {
    for _ in 0..200 {
        let mut st = Vec::new();
        for u in urls {
            st.push(status(u).await);
        }
        if let Some(first) = st.first().copied().flatten() {
            let leader = first.1;
            if leader != 0 && st.iter().all(|s| s.is_some_and(|s| s.1 == leader)) {
                if let Some(pos) = st.iter().position(|s| s.is_some_and(|s| s.0 == leader)) {
                    return pos;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no agreed leader among {urls:?} within 20 simulated seconds");
}

/// Connects a KV client to `url`, retrying while the member boots (bounded).
pub async fn kv_client(url: &str) -> KvClient<Channel> {
    for _ in 0..100 {
        if let Ok(c) = KvClient::connect(url.to_string()).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not connect to {url} within 10 simulated seconds");
}
