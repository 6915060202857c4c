//! Raft traffic between members, as etcd's dashboards read it: bytes of raft messages sent to
//! and received from each peer, failed sends, and each message's round trip
//! (`etcd_network_peer_*`, peers named by their hex IDs as etcd names them). etcd measures the
//! round trip with dedicated probes; here every raft message (heartbeat, append, vote, snapshot
//! chunk) is a round trip and is timed.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// A peer's label: `To` or `From`, and its ID in hex.
pub type PeerLabel = Vec<(&'static str, String)>;

fn round_trip_histogram() -> Histogram {
    // etcd's buckets: 0.1 ms doubling, 16 of them.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// The peer counters, shared by the raft network (sending) and the peer service (receiving).
#[derive(Clone, Debug)]
pub struct PeerMetrics {
    /// Bytes of raft messages sent, by `To`.
    pub sent_bytes: Family<PeerLabel, Counter>,
    /// Bytes of raft messages received, by `From`.
    pub received_bytes: Family<PeerLabel, Counter>,
    /// Raft messages that could not be sent or got no answer, by `To`.
    pub sent_failures: Family<PeerLabel, Counter>,
    /// Seconds from sending a raft message to its answer, by `To`.
    pub round_trip: Family<PeerLabel, Histogram, fn() -> Histogram>,
}

impl Default for PeerMetrics {
    fn default() -> Self {
        PeerMetrics {
            sent_bytes: Family::default(),
            received_bytes: Family::default(),
            sent_failures: Family::default(),
            round_trip: Family::new_with_constructor(round_trip_histogram),
        }
    }
}

/// The label naming peer `id` in direction `dir` (`To` or `From`).
pub fn peer(dir: &'static str, id: u64) -> PeerLabel {
    vec![(dir, format!("{id:x}"))]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_labelled_by_hex_id() {
        let m = PeerMetrics::default();
        m.sent_bytes.get_or_create(&peer("To", 0xabc)).inc_by(7);
        m.round_trip
            .get_or_create(&peer("To", 0xabc))
            .observe(0.001);
        let mut r = prometheus_client::registry::Registry::default();
        r.register("etcd_network_peer_sent_bytes", "", m.sent_bytes.clone());
        r.register(
            "etcd_network_peer_round_trip_time_seconds",
            "",
            m.round_trip,
        );
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
        assert!(
            out.contains("etcd_network_peer_sent_bytes_total{To=\"abc\"} 7"),
            "{out}"
        );
        assert!(
            out.contains("etcd_network_peer_round_trip_time_seconds_count{To=\"abc\"} 1"),
            "{out}"
        );
    }
}
