//! Watch: streams of the store's changes.
//!
//! [`Hub`] is where the apply path hands over the events of every revision it creates, in
//! revision order; the Watch service ([`service`]) serves etcd's bidirectional Watch stream
//! from it.

pub mod service;

use std::sync::Mutex;

use crate::proto::mvccpb::Event;

/// The events of one revision.
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
        let (sender, _) = tokio::sync::broadcast::channel(1024);
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

    /// Subscribes to events published from now on.
    pub fn subscribe(
        &self,
    ) -> tokio::sync::broadcast::Receiver<std::sync::Arc<Vec<RevisionEvents>>> {
        self.sender.subscribe()
    }

    /// The highest revision published so far.
    pub fn published_revision(&self) -> i64 {
        *self.published.lock().unwrap_or_else(|p| p.into_inner())
    }
}
