//! Watch guarantees under faults: writers change keys under [`PREFIX`] (puts, deletes and
//! multi-key transactions) through random members while watchers follow the prefix through
//! other members, and the nemesis crashes, partitions, pauses, skews clocks and slows disks.
//!
//! Each watcher behaves as etcd's clients do: when its stream breaks (the member crashed, was
//! paused, or ended a require-leader stream for want of a leader) or goes silent, it opens a new
//! one on another member, starting at the revision after the newest one it was told about (its
//! last event's, or a progress notification's). Some watchers ask for `prev_kv`, some for
//! progress notifications, some set etcd's require-leader metadata; one replays from revision 1.
//! Watchers also ask for progress now and then in the middle of a busy stream, and writers
//! leave the prefix alone for a while every 1.5 s, so bookmarks come both between events and
//! past the last one.
//!
//! After the faults heal and the writers stop, the run reads the final revision `R` and every
//! watcher asks for progress until it is told about `R`. Then:
//!
//! - the store's own history up to `R` (or up to the newest revision a watcher was told about,
//!   if a write its writer gave up on committed later) is rebuilt by reading the prefix at every
//!   revision (an independent path: the key index, not the watch feed or the history reader)
//!   and must contain every acknowledged write, whole, at the revision its response named;
//! - every watcher's streams are judged by detcd-jepsen's
//!   [`check_resumed_watches`](detcd_jepsen::watch::check_resumed_watches) against that history
//!   — ordered, unique, atomic, reliable (complete up to `R`), resumable, bookmarkable;
//! - every `prev_kv` delivered must be the key's previous state in that history;
//! - every watcher must have caught up to `R` (liveness after healing).
//!
//! The run is in `scenario.rs`; the writers in `writer.rs`, the watchers in `watcher.rs`; the
//! changes a write makes, as watch events, in `events.rs`; the store's own history in
//! `history.rs`; and the checks beyond detcd-jepsen's in `check.rs`.

mod check;
mod events;
mod history;
mod scenario;
mod watcher;
mod writer;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use detcd_jepsen::watch::{ResumedWatch, WatchEvent};
use tokio::time::Instant;

use crate::nemesis::{FaultKind, Schedule, ALL_FAULTS};
use crate::workloads::scenario::{run_seed, Passed};

/// The watched prefix.
pub const PREFIX: &str = "w/";
/// The keys writers change under [`PREFIX`].
pub const KEYS: [&str; 5] = ["w/a", "w/b", "w/c", "w/d", "w/e"];
/// Writers also put keys under this prefix: revisions the watchers must not see.
const OUTSIDE: &str = "x/";
/// The members' `--experimental-watch-progress-notify-interval`: short, so quiet watchers get
/// notifications within a run.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(300);
/// A stream that delivered nothing for this long is asked for progress.
const SILENT: Duration = Duration::from_millis(700);
/// A stream that answered nothing (not even a progress request) for this long is taken for dead:
/// its member crashed or froze. etcd's clients detect this with gRPC keep-alive pings.
const DEAD: Duration = Duration::from_secs(2);
/// How long watchers get, after the final revision is known, to be told about it.
const CATCH_UP: Duration = Duration::from_secs(30);
/// Per-request timeout of the clients.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a client waits for a member to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The shape of one run.
#[derive(Debug, Clone)]
pub struct Params {
    /// Members.
    pub nodes: usize,
    /// Concurrent writers.
    pub writers: u64,
    /// Concurrent watchers (each a resumed watch on the whole prefix).
    pub watchers: usize,
    /// Length of the faulty phase; writers write for this long.
    pub duration: Duration,
    /// The fault kinds the seed may enable.
    pub faults: BTreeSet<FaultKind>,
    /// Play this schedule instead of drawing one from `faults` (a replay or a shrink).
    pub schedule: Option<Schedule>,
}

impl Default for Params {
    /// Three members, three writers, four watchers, six seconds, the first catalogue of faults
    /// (crash, partition, pause, clock skew, slow disk) and compaction behind the history.
    fn default() -> Self {
        Params {
            nodes: 3,
            writers: 3,
            watchers: 4,
            duration: Duration::from_secs(6),
            faults: ALL_FAULTS
                .into_iter()
                .chain([FaultKind::AutoCompaction])
                .collect(),
            schedule: None,
        }
    }
}

/// What a passing run measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Writes acknowledged to the writers (puts, effective deletes, transactions).
    pub acked_writes: usize,
    /// The store's revision at the end.
    pub final_revision: u64,
    /// Watch streams opened (and created) over all watchers.
    pub streams: usize,
    /// Streams opened to resume a watch.
    pub resumptions: usize,
    /// Streams canceled because the revision they needed was compacted.
    pub compacted: usize,
    /// Events delivered over all streams.
    pub events: usize,
    /// Progress notifications received (ticks and answers to progress requests).
    pub progress: usize,
}

/// A passing run of this scenario.
pub type Outcome = Passed<Stats>;

/// Runs one seed in a fresh simulator; `Err` describes every broken guarantee, with the
/// schedule, so the seed can be replayed.
pub fn run(seed: u64, params: &Params) -> Result<Outcome, String> {
    run_seed("watch", seed, scenario::scenario(seed, params.clone()))
}

/// One acknowledged write: the revision its response named and the changes it made under
/// [`PREFIX`] (empty for a write outside it).
#[derive(Debug, Clone)]
struct Acked {
    revision: u64,
    events: Vec<WatchEvent>,
    what: String,
}

/// A `prev_kv` a watcher received: (stream, revision, key, previous (value, mod revision)).
type PrevSeen = (String, u64, String, Option<(String, u64)>);

/// An event's `prev_kv`: (revision, key, previous (value, mod revision)).
type PrevKv = (u64, String, Option<(String, u64)>);

/// What one watcher recorded.
struct WatcherLog {
    watch: ResumedWatch,
    prev_kvs: Vec<PrevSeen>,
    /// The newest revision it was told about.
    reported: Option<u64>,
    caught_up: bool,
}

/// The final revision every watcher must be told about, and until when; `None` while the
/// writers may still write.
type Target = Arc<Mutex<Option<(u64, Instant)>>>;
