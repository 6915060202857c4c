//! The clients' leases: granted through a random member and kept alive in the background
//! until dropped or gone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use detcd::proto::etcdserverpb::lease_client::LeaseClient;
use detcd::proto::etcdserverpb::LeaseGrantRequest;

use super::{any_member, REQUEST_TIMEOUT, TTL};
use crate::workloads::client::keep_alive_once;

/// A lease of [`TTL`] and the flag that stops its keep-alive task.
pub(super) struct KeptLease {
    /// The lease.
    pub(super) id: i64,
    /// Set when the lease is dropped: its keep-alive task stops.
    stop: Arc<AtomicBool>,
}

impl Drop for KeptLease {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Grants a lease of [`TTL`] through a random member and starts keeping it alive.
pub(super) async fn grant(urls: &[String]) -> Option<KeptLease> {
    let ch = any_member(urls).await?;
    let req = LeaseGrantRequest { ttl: TTL, id: 0 };
    let id = tokio::time::timeout(REQUEST_TIMEOUT, LeaseClient::new(ch).lease_grant(req))
        .await
        .ok()?
        .ok()?
        .into_inner()
        .id;
    let stop = Arc::new(AtomicBool::new(false));
    tokio::spawn(keep_alive(urls.to_vec(), id, stop.clone()));
    Some(KeptLease { id, stop })
}

/// Renews lease `id` every third of its TTL through random members until stopped or gone.
async fn keep_alive(urls: Vec<String>, id: i64, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(TTL as u64 * 1000 / 3)).await;
        let Some(ch) = any_member(&urls).await else {
            continue;
        };
        let mut lc = LeaseClient::new(ch);
        if let Ok(Ok(0)) = tokio::time::timeout(REQUEST_TIMEOUT, keep_alive_once(&mut lc, id)).await
        {
            return; // the lease is gone
        }
    }
}
