//! One watch stream's watchers and how events reach them — the synchronous core of the Watch
//! service, free of gRPC and timers so it can be tested step by step.
//!
//! # Model
//!
//! A session follows the node's [`Hub`] through one broadcast receiver (the *feed*) and keeps a
//! `cursor`: every revision up to it has been handed to the session's watchers, and every revision
//! after it will arrive on the feed. Each watcher has a `next_rev`, the next revision it wants.
//!
//! - A watcher is **synced** when `next_rev > cursor`: live revisions reach it straight from the
//!   feed, one response per revision (all of that revision's matching events together).
//! - A watcher is **unsynced** when `next_rev <= cursor`: it reads `[next_rev, cursor]` from the
//!   store's history ([`crate::mvcc::history`]), in responses of at most
//!   [`MAX_REVISIONS_PER_RESPONSE`] revisions, like etcd's unsynced watchers, and is then synced.
//!   A watcher that wants history below the compacted revision gets etcd's compacted response
//!   (`compact_revision` set, `canceled`) instead and receives nothing more.
//!
//! Every public method ends with all live watchers synced. Watchers become unsynced when they
//! are created with a past `start_revision`, and when the cursor jumps: the feed lagged (the
//! session was too slow and the hub's buffer dropped batches) or skipped revisions (the store
//! was replaced by a snapshot). A jump moves the cursor to a revision the store already holds, and
//! live batches at or below the cursor are skipped, so no event is lost or delivered twice:
//!
//! - At start the session subscribes *before* reading the store's revision as its cursor. The
//!   apply path updates the store before it publishes, so a revision above the cursor is
//!   published after the subscription and arrives on the feed.
//! - After a lag the cursor becomes the store's current revision: everything the feed dropped was
//!   published, hence stored, before that read; everything newer arrives on the feed.
//! - A revision with no events on the feed ([`Hub::store_replaced`]) moves the cursor to it: the
//!   store holds everything up to it.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::TryRecvError};

use crate::mvcc::history::{self, HistoryQuery};
use crate::mvcc::Store;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::{
    ResponseHeader, WatchCancelRequest, WatchCreateRequest, WatchRequest, WatchResponse,
};
use crate::proto::mvccpb::Event;

use super::filter::{Filters, KeyRange};
use super::{fragment, Hub, RevisionEvents};

/// etcd's limit on the revisions one history response carries (`watchBatchMaxRevs`).
pub const MAX_REVISIONS_PER_RESPONSE: usize = 1000;

/// Live revisions waiting on the feed at which a stream stops sending one response per revision
/// and folds each watcher's events of the whole backlog into responses of up to
/// [`MAX_REVISIONS_PER_RESPONSE`] revisions — as etcd's slow-watcher path does. Below it, every
/// revision gets its own response with no delay.
pub const COALESCE_BACKLOG: usize = 16;

/// The watch ID etcd uses for responses tied to no watcher, and for failed creates.
pub const INVALID_WATCH_ID: i64 = -1;

/// The watch ID a create request uses to ask the server to choose one.
pub const AUTO_WATCH_ID: i64 = 0;

/// etcd's reason for refusing a client-chosen watch ID already in use on the stream.
pub const DUPLICATE_ID_REASON: &str = "mvcc: duplicate watch ID provided on the WatchStream";

/// Fills a response header for a revision (cluster, member and raft term come from the node).
pub type HeaderFn = Arc<dyn Fn(i64) -> ResponseHeader + Send + Sync>;

/// The feed a session follows.
pub type Feed = broadcast::Receiver<Arc<Vec<RevisionEvents>>>;

/// One watcher of a session.
#[derive(Debug, Clone)]
struct Watcher {
    range: KeyRange,
    filters: Filters,
    prev_kv: bool,
    fragment: bool,
    progress_notify: bool,
    /// The next revision this watcher wants. Invariant between public calls: `> cursor` unless
    /// `compacted`.
    next_rev: i64,
    /// No events were sent to it since the last progress tick (etcd's progress flag).
    quiet: bool,
    /// Canceled by compaction: it receives nothing more, but its ID stays taken until the client
    /// cancels it, as in etcd.
    compacted: bool,
}

impl Watcher {
    /// The events of `events` this watcher wants, shaped for it.
    fn select<'a>(&'a self, events: impl Iterator<Item = &'a Event> + 'a) -> Vec<Event> {
        events
            .filter(|e| {
                e.kv.as_ref().is_some_and(|kv| self.range.contains(&kv.key))
                    && self.filters.keeps(e)
            })
            .map(|e| {
                let mut e = e.clone();
                if !self.prev_kv {
                    e.prev_kv = None;
                }
                e
            })
            .collect()
    }
}

/// The watchers of one Watch stream and their position in the store's history.
pub struct Session {
    store: Arc<Store>,
    header: HeaderFn,
    /// Responses at or above this encoded size are fragmented for watchers that allow it.
    fragment_limit: usize,
    /// Every revision up to here has been handed to the watchers. Never decreases.
    cursor: i64,
    watchers: BTreeMap<i64, Watcher>,
    /// Where the search for the next automatic watch ID starts.
    next_id: i64,
    /// While a backlog is folded: each watcher's events not sent yet (see [`COALESCE_BACKLOG`]).
    folding: Option<BTreeMap<i64, Folded>>,
    /// Backlog (in revisions) from which batches are folded.
    fold_at: usize,
}

/// A watcher's events of a folded backlog, not sent yet.
struct Folded {
    events: Vec<Event>,
    revisions: usize,
    last_revision: i64,
    fragment: bool,
}

impl Session {
    /// Starts a session on `hub` and `store`; returns it with the feed to pass back to
    /// [`Session::on_batch`] / [`Session::drain`].
    pub fn start(
        store: Arc<Store>,
        hub: &Hub,
        header: HeaderFn,
        fragment_limit: usize,
    ) -> (Session, Feed) {
        // Subscribe first, then read the cursor (see the module docs).
        let feed = hub.subscribe();
        let cursor = store.current_revision();
        let session = Session {
            store,
            header,
            fragment_limit,
            cursor,
            watchers: BTreeMap::new(),
            next_id: 0,
            folding: None,
            fold_at: COALESCE_BACKLOG,
        };
        (session, feed)
    }

    /// The revision every watcher has been brought up to.
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// Number of watchers (including ones canceled by compaction and not yet canceled by the
    /// client).
    pub fn len(&self) -> usize {
        self.watchers.len()
    }

    /// True when the session has no watchers.
    pub fn is_empty(&self) -> bool {
        self.watchers.is_empty()
    }

    /// Handles one client request, appending the responses to send.
    pub fn handle(&mut self, req: WatchRequest, out: &mut Vec<WatchResponse>) {
        match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => self.create(c, out),
            Some(RequestUnion::CancelRequest(c)) => self.cancel(c, out),
            Some(RequestUnion::ProgressRequest(_)) => {
                // Every watcher is synced at `cursor` here, so this is a true bookmark.
                out.push(self.response(self.cursor, INVALID_WATCH_ID));
            }
            // etcd ignores requests it does not know.
            None => {}
        }
        self.sync(out);
    }

    /// Hands a batch from the feed to the watchers.
    pub fn on_batch(&mut self, batch: &[RevisionEvents], out: &mut Vec<WatchResponse>) {
        for r in batch {
            if r.revision <= self.cursor {
                // Already read from history.
                continue;
            }
            if r.events.is_empty() {
                // The store was replaced up to here: read everything from history.
                self.advance_cursor(r.revision);
                self.sync(out);
                continue;
            }
            if r.revision > self.cursor + 1 {
                // Revisions the feed never carried (a snapshot replaced the store): history.
                self.advance_cursor(r.revision - 1);
                self.sync(out);
            }
            self.deliver(r, out);
            self.advance_cursor(r.revision);
        }
        self.sync(out);
    }

    /// Moves the cursor to `to`. Invariant: the cursor never goes back — every revision up to
    /// it has been handed to the watchers, and going back would hand some out twice.
    fn advance_cursor(&mut self, to: i64) {
        assert!(to >= self.cursor, "a watch cursor never goes back");
        self.cursor = to;
    }

    /// Hands several batches from the feed to the watchers. A backlog of at least
    /// [`COALESCE_BACKLOG`] revisions is folded: each watcher gets its events of many revisions
    /// in one response (every revision still whole, in order), so a stream that fell behind
    /// catches up with fewer, larger responses instead of falling further behind.
    pub fn on_batches(
        &mut self,
        batches: &[Arc<Vec<RevisionEvents>>],
        out: &mut Vec<WatchResponse>,
    ) {
        let revisions: usize = batches.iter().map(|b| b.len()).sum();
        if revisions >= self.fold_at {
            self.folding = Some(BTreeMap::new());
        }
        for b in batches {
            self.on_batch(b, out);
        }
        self.unfold(out);
        self.folding = None;
    }

    /// Folds backlogs of `revisions` or more from now on (default [`COALESCE_BACKLOG`]; tests
    /// lower it to fold small backlogs).
    pub fn fold_backlogs_from(&mut self, revisions: usize) {
        self.fold_at = revisions.max(1);
    }

    /// Sends every folded response.
    fn unfold(&mut self, out: &mut Vec<WatchResponse>) {
        let Some(folded) = self.folding.as_mut().map(std::mem::take) else {
            return;
        };
        let mut headers: BTreeMap<i64, ResponseHeader> = BTreeMap::new();
        for (id, f) in folded {
            let header = *headers
                .entry(f.last_revision)
                .or_insert_with(|| (self.header)(f.last_revision));
            let resp = WatchResponse {
                header: Some(header),
                watch_id: id,
                events: f.events,
                ..Default::default()
            };
            self.emit(id, f.fragment, resp, out);
        }
    }

    /// The feed dropped batches: catch every watcher up from history to the store's current
    /// revision; the feed's next batches are newer.
    pub fn on_lagged(&mut self, out: &mut Vec<WatchResponse>) {
        self.advance_cursor(self.cursor.max(self.store.current_revision()));
        self.sync(out);
    }

    /// Takes everything the feed already holds without waiting, so the cursor is as fresh as the
    /// hub (used before answering a request, like etcd reading the current revision).
    pub fn drain(&mut self, feed: &mut Feed, out: &mut Vec<WatchResponse>) {
        loop {
            match feed.try_recv() {
                Ok(batch) => self.on_batch(&batch, out),
                Err(TryRecvError::Lagged(_)) => self.on_lagged(out),
                Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => break,
            }
        }
    }

    /// A progress tick: every `progress_notify` watcher that got no events since the previous
    /// tick is told the revision it is synced to.
    pub fn progress_tick(&mut self, out: &mut Vec<WatchResponse>) {
        let cursor = self.cursor;
        let mut due = Vec::new();
        for (id, w) in self.watchers.iter_mut() {
            if !w.progress_notify || w.compacted {
                continue;
            }
            if w.quiet {
                due.push(*id);
            }
            w.quiet = true;
        }
        for id in due {
            out.push(self.response(cursor, id));
        }
    }

    fn response(&self, revision: i64, watch_id: i64) -> WatchResponse {
        WatchResponse {
            header: Some((self.header)(revision)),
            watch_id,
            ..Default::default()
        }
    }

    fn create(&mut self, c: WatchCreateRequest, out: &mut Vec<WatchResponse>) {
        let refuse = |s: &Session, reason: String| WatchResponse {
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..s.response(s.cursor, INVALID_WATCH_ID)
        };
        let range = match KeyRange::new(c.key, c.range_end) {
            Ok(r) => r,
            Err(e) => return out.push(refuse(self, e.to_string())),
        };
        let id = if c.watch_id == AUTO_WATCH_ID {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id += 1;
            self.next_id - 1
        } else if self.watchers.contains_key(&c.watch_id) {
            return out.push(refuse(self, DUPLICATE_ID_REASON.to_string()));
        } else {
            c.watch_id
        };
        // 0 means "after the current revision"; a start above the cursor waits for the feed;
        // anything else is read from history by the next sync.
        let next_rev = if c.start_revision == 0 {
            self.cursor + 1
        } else {
            c.start_revision
        };
        self.watchers.insert(
            id,
            Watcher {
                range,
                filters: Filters::from_request(&c.filters),
                prev_kv: c.prev_kv,
                fragment: c.fragment,
                progress_notify: c.progress_notify,
                next_rev,
                quiet: true,
                compacted: false,
            },
        );
        out.push(WatchResponse {
            created: true,
            ..self.response(self.cursor, id)
        });
    }

    fn cancel(&mut self, c: WatchCancelRequest, out: &mut Vec<WatchResponse>) {
        // etcd answers nothing for an unknown ID.
        if self.watchers.remove(&c.watch_id).is_some() {
            out.push(WatchResponse {
                canceled: true,
                ..self.response(self.cursor, c.watch_id)
            });
        }
    }

    /// Pushes a response for watcher `id`, fragmented if it asked for that.
    fn emit(&self, id: i64, fragment: bool, resp: WatchResponse, out: &mut Vec<WatchResponse>) {
        debug_assert_eq!(resp.watch_id, id);
        if fragment {
            out.extend(fragment::split(resp, self.fragment_limit));
        } else {
            out.push(resp);
        }
    }

    /// Hands live revision `r` (the one after the cursor) to the synced watchers that want it.
    fn deliver(&mut self, r: &RevisionEvents, out: &mut Vec<WatchResponse>) {
        debug_assert_eq!(r.revision, self.cursor + 1);
        let mut sends = Vec::new();
        for (id, w) in self.watchers.iter_mut() {
            if w.compacted || w.next_rev > r.revision {
                continue;
            }
            debug_assert_eq!(w.next_rev, r.revision, "watcher {id} was not synced");
            w.next_rev = r.revision + 1;
            let events = w.select(r.events.iter());
            if !events.is_empty() {
                w.quiet = false;
                sends.push((*id, w.fragment, events));
            }
        }
        if sends.is_empty() {
            return;
        }
        if self.folding.is_some() {
            let mut full = false;
            let folding = self.folding.as_mut().expect("checked");
            for (id, fragment, events) in sends {
                let f = folding.entry(id).or_insert_with(|| Folded {
                    events: Vec::new(),
                    revisions: 0,
                    last_revision: 0,
                    fragment,
                });
                f.events.extend(events);
                f.revisions += 1;
                f.last_revision = r.revision;
                full |= f.revisions >= MAX_REVISIONS_PER_RESPONSE;
            }
            if full {
                self.unfold(out);
                self.folding = Some(BTreeMap::new());
            }
            return;
        }
        let header = (self.header)(r.revision);
        for (id, fragment, events) in sends {
            let resp = WatchResponse {
                header: Some(header),
                watch_id: id,
                events,
                ..Default::default()
            };
            self.emit(id, fragment, resp, out);
        }
    }

    /// Brings every unsynced watcher up to the cursor from history.
    fn sync(&mut self, out: &mut Vec<WatchResponse>) {
        let cursor = self.cursor;
        let behind: Vec<i64> = self
            .watchers
            .iter()
            .filter(|(_, w)| !w.compacted && w.next_rev <= cursor)
            .map(|(id, _)| *id)
            .collect();
        if !behind.is_empty() && self.folding.is_some() {
            // Folded events come before anything read from history.
            self.unfold(out);
            self.folding = Some(BTreeMap::new());
        }
        for id in behind {
            let w = self.watchers.get(&id).expect("listed above").clone();
            let read = history::read(
                &self.store,
                &HistoryQuery {
                    key: &w.range.key,
                    range_end: &w.range.range_end,
                    from: w.next_rev,
                    to: cursor,
                    prev_kv: w.prev_kv,
                },
            );
            let h = match read {
                Ok(h) => h,
                Err(c) => {
                    // etcd's compacted response carries no revision in its header.
                    out.push(WatchResponse {
                        compact_revision: c.compacted,
                        canceled: true,
                        ..self.response(0, id)
                    });
                    self.watchers.get_mut(&id).expect("listed above").compacted = true;
                    continue;
                }
            };
            debug_assert_eq!(
                h.to, cursor,
                "the store holds every revision up to the cursor"
            );
            let mut events = h.events;
            if crate::io::canary::on(crate::io::canary::Canary::WatchLosesCatchUpEvent)
                && !events.is_empty()
            {
                events.remove(0);
            }
            let mut sent = false;
            for batch in by_revisions(events, MAX_REVISIONS_PER_RESPONSE) {
                let events = w.select(batch.iter());
                if events.is_empty() {
                    continue;
                }
                sent = true;
                let resp = WatchResponse {
                    events,
                    ..self.response(cursor, id)
                };
                self.emit(id, w.fragment, resp, out);
            }
            let w = self.watchers.get_mut(&id).expect("listed above");
            w.next_rev = cursor + 1;
            if sent {
                w.quiet = false;
            }
        }
    }
}

/// Splits events (in revision order) into runs of at most `max_revs` distinct revisions, never
/// splitting a revision.
fn by_revisions(events: Vec<Event>, max_revs: usize) -> Vec<Vec<Event>> {
    let mut out: Vec<Vec<Event>> = Vec::new();
    let mut revs_in_last = 0;
    let mut last_rev = None;
    for e in events {
        let rev = e.kv.as_ref().map_or(0, |kv| kv.mod_revision);
        if last_rev != Some(rev) {
            if out.is_empty() || revs_in_last == max_revs {
                out.push(Vec::new());
                revs_in_last = 0;
            }
            revs_in_last += 1;
            last_rev = Some(rev);
        }
        out.last_mut().expect("pushed above").push(e);
    }
    out
}

#[cfg(test)]
mod tests;
