//! Watch: streams of the store's changes.
//!
//! [`Hub`] is where the apply path hands over the events of every revision it creates, in
//! revision order; the Watch service (`server::watch`) serves etcd's bidirectional Watch stream
//! from it. Each stream is a [`session::Session`]: its watchers follow the hub live and read
//! the store's history ([`crate::mvcc::history`]) when they start in the past or fall behind.
//!
//! - [`filter`]: a watcher's key range and event filters.
//! - [`fragment`]: splitting large responses for watchers that allow it.
//! - [`progress`]: the progress-notification interval.
//! - [`session`]: one stream's watchers (synchronous, tested step by step).
//!
//! Each member serves watches from its own applied state: nothing here assumes it is the leader.

pub mod filter;
pub mod fragment;
pub mod progress;
pub mod session;

use std::sync::Mutex;

use crate::proto::mvccpb::Event;

/// The events of one revision. A revision published with no events is a marker from
/// [`Hub::store_replaced`]: its events (and those of any revision before it that the feed did not
/// carry) are in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionEvents {
    /// The store revision that made them.
    pub revision: i64,
    /// Its changes, in sub-revision order.
    pub events: Vec<Event>,
}

impl RevisionEvents {
    /// Splits a writer's events (in order) into one group per revision.
    pub fn group(events: Vec<Event>) -> Vec<RevisionEvents> {
        let mut out: Vec<RevisionEvents> = Vec::new();
        for e in events {
            let rev = e.kv.as_ref().map_or(0, |kv| kv.mod_revision);
            match out.last_mut() {
                Some(last) if last.revision == rev => last.events.push(e),
                _ => out.push(RevisionEvents {
                    revision: rev,
                    events: vec![e],
                }),
            }
        }
        out
    }
}

/// Apply batches the fan-out buffer holds before a slow watcher lags.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Receives the events of every applied revision, in order, and fans them out to watchers.
/// Publishing never blocks and never waits for a watcher.
#[derive(Debug)]
pub struct Hub {
    sender: tokio::sync::broadcast::Sender<std::sync::Arc<Vec<RevisionEvents>>>,
    /// Highest revision published (watchers joining later catch up from the store).
    published: Mutex<i64>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    /// A hub with a bounded fan-out buffer; a watcher that falls behind it catches up from the
    /// store's history instead of slowing writers down.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// A hub whose fan-out buffer holds `capacity` apply batches (tests use tiny ones to
    /// exercise the catch-up path).
    pub fn with_capacity(capacity: usize) -> Self {
        let (sender, _) = tokio::sync::broadcast::channel(capacity);
        Hub {
            sender,
            published: Mutex::new(0),
        }
    }

    /// Publishes the events of one apply batch (one or more revisions, in order).
    pub fn publish(&self, batch: Vec<RevisionEvents>) {
        if batch.is_empty() {
            return;
        }
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        for r in &batch {
            assert!(
                r.revision > *published,
                "events are published in revision order"
            );
            *published = r.revision;
        }
        // No receivers is fine: nobody is watching.
        let _ = self.sender.send(std::sync::Arc::new(batch));
    }

    /// Tells watchers the store was replaced (a snapshot was installed) and now ends at
    /// `revision`: they read what they missed from its history. Without this they would only
    /// notice at the next published revision.
    pub fn store_replaced(&self, revision: i64) {
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        if revision <= *published {
            return;
        }
        *published = revision;
        // An empty revision is the marker: "up to here, read the store".
        let _ = self.sender.send(std::sync::Arc::new(vec![RevisionEvents {
            revision,
            events: Vec::new(),
        }]));
    }

    /// Subscribes to events published from now on.
    pub fn subscribe(
        &self,
    ) -> tokio::sync::broadcast::Receiver<std::sync::Arc<Vec<RevisionEvents>>> {
        self.sender.subscribe()
    }

    /// The highest revision published so far.
    /// Whether any watch stream follows the hub now.
    pub fn has_watchers(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Revisions up to `revision` were applied while nobody watched, so their events were never
    /// built: a stream that starts meanwhile reads them from the store (the same marker as
    /// [`Hub::store_replaced`]).
    pub fn applied_unwatched(&self, revision: i64) {
        self.store_replaced(revision);
    }

    /// The highest revision published so far.
    pub fn published_revision(&self) -> i64 {
        *self.published.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mvccpb::KeyValue;

    fn event(rev: i64) -> Event {
        Event {
            kv: Some(KeyValue {
                mod_revision: rev,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn group_splits_by_revision() {
        let g = RevisionEvents::group(vec![event(2), event(2), event(3)]);
        assert_eq!(
            g.iter()
                .map(|r| (r.revision, r.events.len()))
                .collect::<Vec<_>>(),
            vec![(2, 2), (3, 1)]
        );
    }

    #[test]
    fn markers_move_the_published_revision_forward_only() {
        let hub = Hub::with_capacity(4);
        let mut rx = hub.subscribe();
        hub.publish(RevisionEvents::group(vec![event(2)]));
        hub.store_replaced(2);
        hub.store_replaced(5);
        assert_eq!(hub.published_revision(), 5);
        assert_eq!(rx.try_recv().unwrap()[0].revision, 2);
        let marker = rx.try_recv().unwrap();
        assert_eq!((marker[0].revision, marker[0].events.len()), (5, 0));
        assert!(rx.try_recv().is_err());
    }
}
