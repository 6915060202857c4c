//! Liveness: once nobody keeps anything alive, every lease and leased key must go.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use detcd::proto::etcdserverpb::{LeaseLeasesRequest, RangeRequest};
use tokio::time::Instant;

use super::{CONNECT_TIMEOUT, PREFIX, REQUEST_TIMEOUT};
use crate::cluster::status;
use crate::workloads::client::{connect_kv, connect_lease, prefix_request, text};

/// Waits (up to `limit`) until no leased key and no lease is left, asked through a member that
/// answers linearizably; `Err` names what is left.
pub(super) async fn all_gone(urls: &[String], limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut left = String::from("nothing could be read");
    while Instant::now() < deadline {
        for url in urls {
            let (Some(mut kv), Some(mut lc)) = (
                connect_kv(url, CONNECT_TIMEOUT).await,
                connect_lease(url, CONNECT_TIMEOUT).await,
            ) else {
                continue;
            };
            let req = RangeRequest {
                keys_only: true,
                ..prefix_request(PREFIX)
            };
            let Ok(Ok(keys)) = tokio::time::timeout(REQUEST_TIMEOUT, kv.range(req)).await else {
                continue;
            };
            // After the linearizable read, this member has applied every revocation up to it.
            let Ok(Ok(leases)) =
                tokio::time::timeout(REQUEST_TIMEOUT, lc.lease_leases(LeaseLeasesRequest {})).await
            else {
                continue;
            };
            let keys: Vec<String> = keys
                .into_inner()
                .kvs
                .iter()
                .map(|kv| text(&kv.key))
                .collect();
            let leases: Vec<String> = leases
                .into_inner()
                .leases
                .iter()
                .map(|l| format!("{:x}", l.id))
                .collect();
            if keys.is_empty() && leases.is_empty() {
                return Ok(());
            }
            left = format!("keys {keys:?} and leases {leases:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // What each member says of itself: (member, leader, term), for the report.
    let mut states = Vec::new();
    for url in urls {
        states.push(
            tokio::time::timeout(Duration::from_secs(1), status(url))
                .await
                .ok()
                .flatten(),
        );
    }
    Err(format!("{left} (member status: {states:?})"))
}
