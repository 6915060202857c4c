//! The crasher: follows every member's WAL from outside and strikes while a roll or a purge is
//! under way, right after a truncation, and now and then at random; one member down at a time.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::Crashes;
use crate::cluster::wal::{WalEvent, WalWatch};
use crate::cluster::SimCluster;

/// How often the crasher looks at the WAL directories.
const POLL: Duration = Duration::from_millis(1);
/// Chance of striking at a random moment, per poll.
const RANDOM_STRIKE: f64 = 1.0 / 1500.0;

/// What made the crasher strike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// The last segment nearly full.
    NearlyFull,
    /// A new segment.
    Rolled,
    /// A purge record written.
    PurgeRecord,
    /// Segments removed.
    Removal,
    /// A truncation record written.
    Truncation,
    /// Nothing: a random moment.
    Random,
}

/// The crasher's state: who is down, what is planned, what it did.
struct Crasher<'a> {
    cluster: &'a SimCluster,
    start: Instant,
    /// One fsync's latency: the scale of the delays before a strike.
    fsync: Duration,
    watches: Vec<WalWatch>,
    /// The member down, and when it comes back.
    down: Option<(usize, Instant)>,
    /// The next strike: member, when, why.
    planned: Option<(usize, Instant, Trigger)>,
    /// No strike is planned before this (the last member restarted catches up meanwhile).
    calm_until: Instant,
    crashes: Crashes,
    log: Vec<String>,
}

/// A random whole number of milliseconds in `range`.
fn draw_ms(range: std::ops::RangeInclusive<u64>) -> Duration {
    Duration::from_millis(madsim::rand::thread_rng().gen_range(range))
}

impl Crasher<'_> {
    /// Milliseconds since the writers started, for the log.
    fn ms(&self) -> u128 {
        self.start.elapsed().as_millis()
    }

    /// Whether to strike after `event` (its member), and after what delay.
    fn decide(&self, event: WalEvent) -> Option<(Trigger, Duration)> {
        let fsync = self.fsync.as_millis() as u64;
        let (trigger, chance, within) = match event {
            WalEvent::NearlyFull => (Trigger::NearlyFull, 0.25, 3 * fsync),
            WalEvent::Rolled(_) => (Trigger::Rolled, 0.15, fsync),
            WalEvent::Purging(_) => (Trigger::PurgeRecord, 0.9, fsync),
            WalEvent::Purged(_) => (Trigger::Removal, 0.15, fsync),
            // Rare, and the moment recovery must replay exactly: strike almost always.
            WalEvent::Truncated(_) => (Trigger::Truncation, 0.9, fsync),
        };
        madsim::rand::thread_rng()
            .gen_bool(chance)
            .then(|| (trigger, draw_ms(0..=within)))
    }

    /// Plans a strike on member `i` after `delay` (at once if there is none).
    fn plan(&mut self, i: usize, trigger: Trigger, delay: Duration) {
        self.planned = Some((i, Instant::now() + delay, trigger));
        if delay.is_zero() {
            self.strike();
        }
    }

    /// Power-cuts (most of the time) or kills the planned member; notes what it was doing.
    fn strike(&mut self) {
        let Some((i, _, trigger)) = self.planned.take() else {
            return;
        };
        let Some(node) = self.cluster.node(i) else {
            return;
        };
        let dir = node.disk.files();
        self.watches[i].poll(&dir);
        let rolling = self.watches[i].roll_due();
        let purging = self.watches[i].purge_unfinished(&dir);
        let c = &mut self.crashes;
        *match trigger {
            Trigger::NearlyFull => &mut c.after_nearly_full,
            Trigger::Rolled => &mut c.after_roll,
            Trigger::PurgeRecord => &mut c.after_purge_record,
            Trigger::Removal => &mut c.after_removal,
            Trigger::Truncation => &mut c.after_truncation,
            Trigger::Random => &mut c.at_random,
        } += 1;
        c.during_roll += u64::from(rolling);
        c.during_purge += u64::from(purging);
        let cut = madsim::rand::thread_rng().gen_bool(0.7);
        let how = if cut {
            c.power_cuts += 1;
            let unsynced = node.disk.unsynced_batches();
            let lost = self.cluster.crash(i);
            c.state_lost += u64::from(lost > 0);
            c.state_torn += u64::from(lost > 0 && lost < unsynced);
            format!("power cut ({lost} of {unsynced} unsynced state batches lost)")
        } else {
            c.kills += 1;
            self.cluster.kill(i);
            "kill".to_string()
        };
        let mut line = format!("{} ms n{} {how} after {trigger:?}", self.ms(), i + 1);
        if rolling {
            line.push_str(", during a roll");
        }
        if purging {
            line.push_str(", during a purge");
        }
        self.log.push(line);
        self.down = Some((i, Instant::now() + draw_ms(100..=500)));
    }

    /// Restarts the member down, if any, and keeps the next strike off for a while.
    fn bring_back(&mut self) {
        let Some((i, _)) = self.down.take() else {
            return;
        };
        self.cluster.restart(i);
        self.watches[i].reset();
        self.calm_until = Instant::now() + draw_ms(100..=500);
        self.log
            .push(format!("{} ms n{} restarted", self.ms(), i + 1));
    }

    /// Whether a strike may be planned: none is, nobody is down, the calm is over.
    fn quiet(&self) -> bool {
        self.planned.is_none() && self.down.is_none() && Instant::now() >= self.calm_until
    }

    /// One look at every member that is up; may plan (or make) a strike.
    fn look(&mut self) {
        let n = self.cluster.len();
        // From a random member on: the first to show an event is the one struck.
        let first = madsim::rand::thread_rng().gen_range(0..n);
        for i in (first..n).chain(0..first) {
            if self.down.is_some_and(|(d, _)| d == i) {
                continue;
            }
            let Some(node) = self.cluster.node(i) else {
                continue;
            };
            let events = self.watches[i].poll(&node.disk.files());
            for e in events {
                if !self.quiet() {
                    break;
                }
                if let Some((trigger, delay)) = self.decide(e) {
                    self.plan(i, trigger, delay);
                }
            }
        }
        if self.quiet() && madsim::rand::thread_rng().gen_bool(RANDOM_STRIKE) {
            let i = madsim::rand::thread_rng().gen_range(0..n);
            self.plan(i, Trigger::Random, Duration::ZERO);
        }
    }
}

/// Strikes until `until`, then brings the member down back; returns what it did and its log
/// (times from `start`). `fsync` is the members' fsync latency; `margin` the free bytes under
/// which a segment counts as nearly full.
pub(super) async fn run(
    cluster: &SimCluster,
    start: Instant,
    until: Instant,
    fsync: Duration,
    margin: u64,
) -> (Crashes, Vec<String>) {
    let mut c = Crasher {
        cluster,
        start,
        fsync,
        watches: vec![WalWatch::new(margin); cluster.len()],
        down: None,
        planned: None,
        calm_until: Instant::now(),
        crashes: Crashes::default(),
        log: Vec::new(),
    };
    while Instant::now() < until {
        tokio::time::sleep(POLL).await;
        if c.down.is_some_and(|(_, at)| Instant::now() >= at) {
            c.bring_back();
        }
        if c.planned.is_some_and(|(_, at, _)| Instant::now() >= at) {
            c.strike();
        }
        c.look();
    }
    c.planned = None;
    c.bring_back();
    (c.crashes, c.log)
}
