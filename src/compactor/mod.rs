//! Auto-compaction (`--auto-compaction-mode`, `--auto-compaction-retention`) as etcd 3.4 runs it,
//! as a policy that decides *when* and *to which revision*; the leader's loop that samples the
//! store and proposes the compactions is `crate::raft::auto_compaction`.
//!
//! - **periodic** keeps `retention` of history: every tenth of the retention (at most 6 min) the
//!   current revision is sampled; once a retention (then every min(retention, 1 h)) has passed
//!   since the last success, the store is compacted to the oldest sample in the window, the
//!   revision of about one retention ago.
//! - **revision** keeps `retention` revisions: every 5 minutes, compact to `current - retention`
//!   unless that is not positive or was the last one done.
//!
//! Only the leader compacts (its followers' samples keep being taken, so a new leader starts
//! with a full window). A compaction that finds the revision already compacted counts as done.
//! Time is a `Duration` since the loop started, so the policy is pure and tested here.

use std::collections::VecDeque;
use std::time::Duration;

use crate::watch::progress::parse_go_duration;

/// How often revision mode looks (etcd's fixed interval).
pub const REVISION_INTERVAL: Duration = Duration::from_secs(300);
/// The longest periodic interval between compactions.
const MAX_PERIODIC_INTERVAL: Duration = Duration::from_secs(3600);
/// Periodic mode samples this many times per interval.
const SAMPLES_PER_INTERVAL: u32 = 10;

/// What the flags ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Keep this much history, by time.
    Periodic(Duration),
    /// Keep this many revisions.
    Revision(i64),
}

impl Policy {
    /// The policy `--auto-compaction-mode mode --auto-compaction-retention retention` set, as
    /// etcd 3.4 reads them: an integer retention is hours (periodic) or revisions (revision),
    /// anything else a Go duration (in revision mode, its nanoseconds count as revisions, as
    /// in etcd). `None` when the retention is zero: auto-compaction is off.
    pub fn parse(mode: &str, retention: &str) -> Result<Option<Policy>, String> {
        if mode != "periodic" && mode != "revision" {
            return Err(format!("unknown auto-compaction-mode {mode:?}"));
        }
        let amount: u64 = match retention.parse::<i64>() {
            Ok(n) if n >= 0 => {
                if mode == "periodic" {
                    (n as u64).saturating_mul(3600 * 1_000_000_000)
                } else {
                    n as u64
                }
            }
            _ => match parse_go_duration(retention) {
                Ok(Some(d)) => d.as_nanos().min(u64::MAX as u128) as u64,
                Ok(None) => 0,
                Err(e) => return Err(format!("error parsing CompactionRetention: {e}")),
            },
        };
        Ok(match (mode, amount) {
            (_, 0) => None,
            ("periodic", n) => Some(Policy::Periodic(Duration::from_nanos(n))),
            (_, n) => Some(Policy::Revision(n.min(i64::MAX as u64) as i64)),
        })
    }
}

/// The policy's memory: the revisions sampled and the last compaction done.
#[derive(Debug)]
pub struct Compactor {
    policy: Policy,
    /// Periodic: revisions sampled, oldest first, spanning about one retention.
    samples: VecDeque<i64>,
    /// Periodic: when the last compaction succeeded (at first, when the loop started).
    last_success: Duration,
    /// Periodic: the time that must pass after `last_success` (a full retention at first).
    wait_for: Duration,
    /// Revision: the last revision compacted to.
    prev: i64,
}

impl Compactor {
    /// A compactor starting now (time zero).
    pub fn new(policy: Policy) -> Self {
        Compactor {
            policy,
            samples: VecDeque::new(),
            last_success: Duration::ZERO,
            wait_for: match policy {
                Policy::Periodic(retention) => retention,
                Policy::Revision(_) => REVISION_INTERVAL,
            },
            prev: 0,
        }
    }

    /// How long to sleep between looks.
    pub fn tick(&self) -> Duration {
        match self.policy {
            Policy::Periodic(retention) => (retention.min(MAX_PERIODIC_INTERVAL)
                / SAMPLES_PER_INTERVAL)
                .max(Duration::from_nanos(1)),
            Policy::Revision(_) => REVISION_INTERVAL,
        }
    }

    /// Notes the store's current revision before a sleep (periodic mode keeps a window).
    pub fn sample(&mut self, current: i64) {
        if let Policy::Periodic(retention) = self.policy {
            self.samples.push_back(current);
            let window = (retention.as_nanos() / self.tick().as_nanos()).max(1) as usize;
            while self.samples.len() > window {
                self.samples.pop_front();
            }
        }
    }

    /// After a sleep, on the leader at `now` with the store at `current`: the revision to
    /// compact to, if one is due.
    pub fn due(&self, now: Duration, current: i64) -> Option<i64> {
        match self.policy {
            Policy::Periodic(_) => {
                if now.saturating_sub(self.last_success) < self.wait_for {
                    return None;
                }
                self.samples.front().copied()
            }
            Policy::Revision(retention) => {
                let rev = current.saturating_sub(retention);
                (rev > 0 && rev != self.prev).then_some(rev)
            }
        }
    }

    /// Records that compacting to `rev` at `now` succeeded (or found it already compacted).
    pub fn done(&mut self, now: Duration, rev: i64) {
        match self.policy {
            Policy::Periodic(retention) => {
                self.last_success = now;
                self.wait_for = retention.min(MAX_PERIODIC_INTERVAL);
            }
            Policy::Revision(_) => self.prev = rev,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);

    #[test]
    fn flags_parse_as_etcd_reads_them() {
        let p = Policy::parse;
        assert_eq!(p("periodic", "0"), Ok(None));
        assert_eq!(p("periodic", "1"), Ok(Some(Policy::Periodic(H))));
        assert_eq!(
            p("periodic", "30m"),
            Ok(Some(Policy::Periodic(Duration::from_secs(1800))))
        );
        assert_eq!(p("revision", "1000"), Ok(Some(Policy::Revision(1000))));
        assert_eq!(p("revision", "0"), Ok(None));
        assert_eq!(
            p("revision", "1us"),
            Ok(Some(Policy::Revision(1000))),
            "a duration's nanoseconds, as etcd"
        );
        assert!(p("daily", "1")
            .unwrap_err()
            .contains("unknown auto-compaction-mode"));
        assert!(p("periodic", "soon")
            .unwrap_err()
            .starts_with("error parsing CompactionRetention"));
    }

    /// Runs `c` for `until`, the store's revision growing by one per `per_rev`; the compactions
    /// made, as (time, revision).
    fn run(mut c: Compactor, until: Duration, per_rev: Duration) -> Vec<(Duration, i64)> {
        let mut now = Duration::ZERO;
        let mut out = Vec::new();
        let rev_at = |t: Duration| 1 + (t.as_nanos() / per_rev.as_nanos()) as i64;
        while now < until {
            c.sample(rev_at(now));
            now += c.tick();
            if let Some(rev) = c.due(now, rev_at(now)) {
                out.push((now, rev));
                c.done(now, rev);
            }
        }
        out
    }

    #[test]
    fn periodic_keeps_about_one_retention_of_history() {
        let retention = Duration::from_secs(600);
        let made = run(
            Compactor::new(Policy::Periodic(retention)),
            Duration::from_secs(3600),
            Duration::from_secs(1),
        );
        // First after a full retention, then every retention (it is under an hour).
        assert_eq!(made.first().map(|m| m.0), Some(retention));
        assert_eq!(made.len(), 6);
        for (t, rev) in made {
            // The revision of about one retention ago (one tick of slack).
            let ago = t.as_secs() as i64 - (rev - 1);
            assert!((540..=600).contains(&ago), "at {t:?} compacted to {rev}");
        }
    }

    #[test]
    fn periodic_over_an_hour_compacts_hourly_after_the_first_retention() {
        let made = run(
            Compactor::new(Policy::Periodic(5 * H)),
            12 * H,
            Duration::from_secs(60),
        );
        let times: Vec<u64> = made.iter().map(|m| m.0.as_secs() / 3600).collect();
        assert_eq!(times, vec![5, 6, 7, 8, 9, 10, 11, 12]);
        for (t, rev) in made {
            let ago_min = t.as_secs() as i64 / 60 - (rev - 1);
            assert!((294..=300).contains(&ago_min), "{ago_min} minutes");
        }
    }

    #[test]
    fn revision_mode_keeps_retention_revisions_and_skips_repeats() {
        let mut c = Compactor::new(Policy::Revision(100));
        assert_eq!(c.tick(), REVISION_INTERVAL);
        assert_eq!(c.due(REVISION_INTERVAL, 50), None, "nothing to compact yet");
        assert_eq!(c.due(REVISION_INTERVAL, 150), Some(50));
        c.done(REVISION_INTERVAL, 50);
        assert_eq!(c.due(2 * REVISION_INTERVAL, 150), None, "no writes since");
        assert_eq!(c.due(2 * REVISION_INTERVAL, 151), Some(51));
    }
}
