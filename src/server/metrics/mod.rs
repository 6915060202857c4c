//! `/metrics`: etcd's metric names (a registry filled at each scrape from the member's state).
//!
//! Exported: `etcd_server_has_leader`, `etcd_server_is_leader`, `etcd_server_id`,
//! `etcd_server_version`, `etcd_cluster_version`, `etcd_server_leader_changes_seen_total`,
//! `etcd_server_proposals_applied_total`, `etcd_server_proposals_committed_total`,
//! `etcd_server_proposals_pending`, `etcd_server_proposals_failed_total` ([`crate::raft::
//! proposal_metrics`]), `etcd_server_quota_backend_bytes`, the operation
//! counters `etcd_mvcc_range_total`, `etcd_mvcc_put_total`, `etcd_mvcc_delete_total` and
//! `etcd_mvcc_txn_total`,
//! `etcd_mvcc_db_total_size_in_bytes`, `etcd_mvcc_db_total_size_in_use_in_bytes`,
//! `etcd_debugging_mvcc_keys_total`, `etcd_debugging_mvcc_current_revision`,
//! `etcd_debugging_mvcc_compact_revision`, `etcd_debugging_auth_revision`, the latency
//! histograms `etcd_disk_wal_fsync_duration_seconds` and
//! `etcd_disk_backend_commit_duration_seconds`, the raft traffic by peer
//! (`etcd_network_peer_sent_bytes_total`, `etcd_network_peer_received_bytes_total`,
//! `etcd_network_peer_sent_failures_total`, `etcd_network_peer_round_trip_time_seconds`; see
//! [`crate::raft::peer_metrics`]), and the gRPC server counters and, with `--metrics
//! extensive`, latency histograms ([`grpc`]).

use std::sync::atomic::Ordering;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::backup::export::CLUSTER_VERSION;
use crate::server::http::HttpState;
use crate::server::maintenance::ETCD_API_VERSION;

pub mod grpc;

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
    // etcd's proposal counts are gauges named `_total` (the failures are a counter).
    let proposals = node.proposal_metrics();
    gauge(
        &mut r,
        "etcd_server_proposals_applied_total",
        "The total number of consensus proposals applied",
        m.last_applied.map_or(0, |l| l.index as i64),
    );
    gauge(
        &mut r,
        "etcd_server_proposals_committed_total",
        "The total number of consensus proposals committed",
        proposals.committed.get(),
    );
    gauge(
        &mut r,
        "etcd_server_proposals_pending",
        "The current number of pending proposals to commit",
        proposals.pending.get(),
    );
    r.register(
        "etcd_server_proposals_failed",
        "The total number of failed proposals seen",
        proposals.failed.clone(),
    );
    let (ranges, puts, deletes, txns) = store.op_counts().get();
    counter(
        &mut r,
        "etcd_mvcc_range",
        "Total number of ranges seen by this member",
        ranges,
    );
    counter(
        &mut r,
        "etcd_mvcc_put",
        "Total number of puts seen by this member",
        puts,
    );
    counter(
        &mut r,
        "etcd_mvcc_delete",
        "Total number of deletes seen by this member",
        deletes,
    );
    counter(
        &mut r,
        "etcd_mvcc_txn",
        "Total number of txns seen by this member",
        txns,
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
    let disk = node.disk_metrics();
    r.register(
        "etcd_disk_wal_fsync_duration_seconds",
        "The latency distributions of fsync called by WAL",
        disk.wal_fsync.clone(),
    );
    r.register(
        "etcd_disk_backend_commit_duration_seconds",
        "The latency distributions of commit called by backend",
        disk.backend_commit.clone(),
    );
    let peers = node.peer_metrics();
    r.register(
        "etcd_network_peer_sent_bytes",
        "The total number of bytes sent to peers",
        peers.sent_bytes.clone(),
    );
    r.register(
        "etcd_network_peer_received_bytes",
        "The total number of bytes received from peers",
        peers.received_bytes.clone(),
    );
    r.register(
        "etcd_network_peer_sent_failures",
        "The total number of send failures from peers",
        peers.sent_failures.clone(),
    );
    r.register(
        "etcd_network_peer_round_trip_time_seconds",
        "Round-Trip-Time histogram between peers",
        peers.round_trip.clone(),
    );
    s.grpc.register(&mut r);
    let mut out = String::new();
    encode(&mut out, &r)?;
    Ok(out)
}
