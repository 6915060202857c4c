//! etcd's proposal metrics: how far this member's log is committed
//! (`etcd_server_proposals_committed_total`, a gauge of the committed index as the log store
//! last recorded it), how many proposals made here wait for their outcome
//! (`etcd_server_proposals_pending`), and how many failed — timed out, lost their leader, or
//! found the member stopping, or was abandoned by its client (`etcd_server_proposals_failed_total`).
//! A proposal the state refused when it applied (a compacted revision, a missing lease) is not a
//! failure: it was committed and applied, as etcd counts it.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

/// The three metrics, shared by the log store, the proposers and the scrapes (clones share).
#[derive(Clone, Debug, Default)]
pub struct ProposalMetrics {
    /// The committed index, as last recorded in the log.
    pub committed: Gauge,
    /// Proposals made on this member and not answered yet.
    pub pending: Gauge,
    /// Proposals that ended without an outcome from the log.
    pub failed: Counter,
}

/// One proposal, pending until [`Pending::finish`]ed or dropped; dropped unfinished (its client
/// gave up and the request's future went with it), it failed.
pub struct Pending<'a> {
    metrics: &'a ProposalMetrics,
    finished: bool,
}

impl ProposalMetrics {
    /// Marks a proposal pending for as long as the returned guard lives.
    pub fn pending(&self) -> Pending<'_> {
        self.pending.inc();
        Pending {
            metrics: self,
            finished: false,
        }
    }
}

impl Pending<'_> {
    /// The proposal ended: with an outcome from the log (`ok`), or failed.
    pub fn finish(mut self, ok: bool) {
        self.finished = ok;
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.metrics.pending.dec();
        if !self.finished {
            self.metrics.failed.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_proposal_counts_until_it_ends_and_fails_unless_answered() {
        let m = ProposalMetrics::default();
        let (a, b, c) = (m.pending(), m.pending(), m.pending());
        assert_eq!(m.pending.get(), 3);
        a.finish(true);
        assert_eq!((m.pending.get(), m.failed.get()), (2, 0));
        b.finish(false);
        assert_eq!((m.pending.get(), m.failed.get()), (1, 1));
        drop(c);
        assert_eq!((m.pending.get(), m.failed.get()), (0, 2));
    }
}
