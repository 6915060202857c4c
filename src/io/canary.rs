//! Canaries: deliberately wrong behaviours, compiled in only for the simulator, that measure
//! its power. A canary switched on makes the server break one guarantee the way real systems
//! have broken it; the simulator's sweeps must notice within a bounded number of seeds
//! (`sim/tests/canaries.rs`). In the normal build [`on`] is the constant `false` and every
//! canary compiles away.
//!
//! The switch is per thread: a madsim runtime runs all its nodes on the thread that called
//! `block_on`, so a test enables canaries for exactly the runs it makes, and parallel tests on
//! other threads are unaffected.

use std::fmt;
use std::str::FromStr;

/// A deliberately wrong behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Canary {
    /// Linearizable reads skip the read index and serve whatever the member has applied.
    StaleReads,
    /// The raft log acknowledges appends without syncing them.
    AckBeforeFsync,
    /// A new leader does not give leases a fresh TTL: it counts them from a grant it knows of
    /// and keep-alives it never saw, so they expire at once.
    NoLeaseExtension,
    /// A watcher catching up from history loses the first event it reads there.
    WatchLosesCatchUpEvent,
    /// Lock grants the lock without waiting for the keys ahead of it.
    LockSkipsQueue,
    /// Compaction also drops each key's newest version at or below the compacted revision when
    /// a newer one exists: the present reads right, but a read at the compacted revision
    /// misses the key (etcd's key index keeps that version).
    CompactionDropsNewest,
}

/// Every canary.
pub const ALL: [Canary; 6] = [
    Canary::StaleReads,
    Canary::AckBeforeFsync,
    Canary::NoLeaseExtension,
    Canary::WatchLosesCatchUpEvent,
    Canary::LockSkipsQueue,
    Canary::CompactionDropsNewest,
];

impl Canary {
    /// The canary's name on command lines.
    pub fn name(self) -> &'static str {
        match self {
            Canary::StaleReads => "stale-reads",
            Canary::AckBeforeFsync => "ack-before-fsync",
            Canary::NoLeaseExtension => "no-lease-extension",
            Canary::WatchLosesCatchUpEvent => "watch-loses-catch-up-event",
            Canary::LockSkipsQueue => "lock-skips-queue",
            Canary::CompactionDropsNewest => "compaction-drops-newest",
        }
    }
}

impl fmt::Display for Canary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Canary {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL.into_iter().find(|c| c.name() == s).ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|c| c.name()).collect();
            format!("unknown canary {s:?}; known: {}", names.join(","))
        })
    }
}

#[cfg(madsim)]
thread_local! {
    static ENABLED: std::cell::RefCell<std::collections::BTreeSet<Canary>> =
        const { std::cell::RefCell::new(std::collections::BTreeSet::new()) };
}

/// Whether `canary` is switched on for this thread's simulation. Always false in the normal build.
#[inline]
pub fn on(canary: Canary) -> bool {
    #[cfg(madsim)]
    {
        ENABLED.with(|e| e.borrow().contains(&canary))
    }
    #[cfg(not(madsim))]
    {
        let _ = canary;
        false
    }
}

/// Canaries switched on until this guard is dropped (simulator build only).
#[cfg(madsim)]
pub struct Enabled {
    before: std::collections::BTreeSet<Canary>,
}

/// Switches `canaries` on for this thread until the returned guard is dropped.
#[cfg(madsim)]
pub fn enable(canaries: impl IntoIterator<Item = Canary>) -> Enabled {
    let before = ENABLED.with(|e| {
        let mut e = e.borrow_mut();
        let before = e.clone();
        e.extend(canaries);
        before
    });
    Enabled { before }
}

#[cfg(madsim)]
impl Drop for Enabled {
    fn drop(&mut self) {
        let before = std::mem::take(&mut self.before);
        ENABLED.with(|e| *e.borrow_mut() = before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in ALL {
            assert_eq!(c.name().parse::<Canary>(), Ok(c));
        }
        assert!("nope".parse::<Canary>().is_err());
    }

    #[test]
    fn canaries_are_off_unless_enabled() {
        assert!(ALL.iter().all(|c| !on(*c)));
    }
}
