//! How long the member's durability takes, as etcd's dashboards read it: each fsync of the raft
//! log (`etcd_disk_wal_fsync_duration_seconds`) and each commit of the state store
//! (`etcd_disk_backend_commit_duration_seconds`; detcd's state store is made durable when the log
//! that could replay it is purged, as etcd's backend commits before its WAL is released).

use std::future::Future;

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use crate::io::clock;

/// The two latency histograms, shared by the log store and the scrapes.
#[derive(Clone, Debug)]
pub struct DiskMetrics {
    /// Each fsync of the raft log.
    pub wal_fsync: Histogram,
    /// Each commit of the state store.
    pub backend_commit: Histogram,
}

impl Default for DiskMetrics {
    fn default() -> Self {
        // etcd's buckets: 1 ms doubling to 8 s.
        DiskMetrics {
            wal_fsync: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            backend_commit: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
        }
    }
}

/// Runs `f`, recording how long it took in `h` (in seconds, on the member's clock).
pub async fn timed<T>(h: &Histogram, f: impl Future<Output = T>) -> T {
    let start = clock::now();
    let out = f.await;
    h.observe(clock::now().saturating_duration_since(start).as_secs_f64());
    out
}
