//! Time as one node sees it.
//!
//! Monotonic instants drive raft timers and (later) lease expiry; the wall clock only feeds
//! human-facing fields. Both read the node's [`Skew`]: a constant offset plus a rate error in
//! parts per million, which the simulator sets per node to model clock skew and drift. In a
//! production build the skew is always zero.
//!
//! openraft asks for `Instant::now()` without any context, so the skew table is looked up by the
//! current madsim node; outside the simulator there is nothing to look up.

// The seam itself: the only place that reads the runtime's clock.
#![allow(clippy::disallowed_methods)]

use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::time::Duration;

/// A node's clock error relative to the simulator's global clock.
///
/// local(t) = t + offset + (t - origin) * rate_ppm / 1e6
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skew {
    /// Constant offset added to the global time, in nanoseconds (may be negative).
    pub offset_nanos: i64,
    /// Rate error in parts per million: +100 means this node's clock runs 0.01% fast.
    pub rate_ppm: i64,
}

#[cfg(madsim)]
mod table {
    use super::Skew;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    pub use madsim::task::NodeId;

    /// Per-node skews, keyed by madsim node id. Only the simulator writes here.
    static SKEWS: Mutex<BTreeMap<NodeId, (Skew, tokio::time::Instant)>> =
        Mutex::new(BTreeMap::new());

    fn current_node() -> Option<NodeId> {
        madsim::runtime::Handle::try_current().ok()?;
        Some(madsim::plugin::node())
    }

    pub fn set(node: NodeId, skew: Skew) {
        let origin = tokio::time::Instant::now();
        SKEWS.lock().unwrap().insert(node, (skew, origin));
    }

    pub fn current() -> Option<(Skew, tokio::time::Instant)> {
        let node = current_node()?;
        SKEWS.lock().unwrap().get(&node).copied()
    }
}

/// Sets the skew of simulated node `node`. Simulation only.
#[cfg(madsim)]
pub fn set_node_skew(node: table::NodeId, skew: Skew) {
    table::set(node, skew);
}

#[cfg(madsim)]
fn current_skew() -> Option<(Skew, tokio::time::Instant)> {
    table::current()
}

#[cfg(not(madsim))]
fn current_skew() -> Option<(Skew, tokio::time::Instant)> {
    None
}

fn skew_nanos(skew: &Skew, since_origin: Duration) -> i128 {
    skew.offset_nanos as i128 + since_origin.as_nanos() as i128 * skew.rate_ppm as i128 / 1_000_000
}

/// A monotonic instant on this node's (possibly skewed) clock.
///
/// It implements [`openraft::Instant`], so election timeouts and heartbeats read the same skewed
/// clock as everything else on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(tokio::time::Instant);

impl Instant {
    /// Now, on the current node's clock.
    pub fn now() -> Self {
        let global = tokio::time::Instant::now();
        match current_skew() {
            None => Instant(global),
            Some((skew, origin)) => {
                let delta = skew_nanos(&skew, global.saturating_duration_since(origin));
                Instant(shift(global, delta))
            }
        }
    }

    /// The global (runtime) instant at which this node's clock reads `self`; timers are armed
    /// on the runtime's clock, so a skewed deadline has to be converted back.
    pub fn to_runtime(self) -> tokio::time::Instant {
        match current_skew() {
            None => self.0,
            Some((skew, origin)) => {
                // Solve local = g + offset + (g - origin) * r for g, in nanoseconds from origin.
                let local = signed_since(self.0, origin);
                let r = skew.rate_ppm as i128;
                let g = (local - skew.offset_nanos as i128) * 1_000_000 / (1_000_000 + r);
                shift(origin, g)
            }
        }
    }

    /// Time elapsed since `earlier`, zero if `earlier` is later.
    pub fn saturating_duration_since(&self, earlier: Instant) -> Duration {
        self.0.saturating_duration_since(earlier.0)
    }
}

fn signed_since(t: tokio::time::Instant, origin: tokio::time::Instant) -> i128 {
    if t >= origin {
        (t - origin).as_nanos() as i128
    } else {
        -((origin - t).as_nanos() as i128)
    }
}

fn shift(t: tokio::time::Instant, nanos: i128) -> tokio::time::Instant {
    if nanos >= 0 {
        t + Duration::from_nanos(nanos as u64)
    } else {
        t.checked_sub(Duration::from_nanos((-nanos) as u64))
            .unwrap_or(t)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0 + rhs)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        self.0 += rhs;
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, rhs: Duration) -> Instant {
        Instant(self.0 - rhs)
    }
}

impl SubAssign<Duration> for Instant {
    fn sub_assign(&mut self, rhs: Duration) {
        self.0 -= rhs;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.0.saturating_duration_since(rhs.0)
    }
}

impl openraft::Instant for Instant {
    fn now() -> Self {
        Instant::now()
    }
}

/// The node's clock, handed to the components that need time (no ambient clock elsewhere).
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock;

impl Clock {
    /// A monotonic instant on this node's clock.
    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// Wall-clock time as Unix nanoseconds, skewed like the monotonic clock.
    pub fn unix_nanos(&self) -> i128 {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        match current_skew() {
            None => wall,
            Some((skew, origin)) => {
                let since = tokio::time::Instant::now().saturating_duration_since(origin);
                wall + skew_nanos(&skew, since)
            }
        }
    }

    /// Sleeps until this node's clock reads `deadline`.
    pub async fn sleep_until(&self, deadline: Instant) {
        tokio::time::sleep_until(deadline.to_runtime()).await
    }

    /// Sleeps for `d` on this node's clock.
    pub async fn sleep(&self, d: Duration) {
        self.sleep_until(self.now() + d).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_is_linear_in_elapsed_time() {
        let s = Skew {
            offset_nanos: -5,
            rate_ppm: 1000,
        };
        assert_eq!(skew_nanos(&s, Duration::from_secs(1)), 1_000_000 - 5);
        assert_eq!(skew_nanos(&Skew::default(), Duration::from_secs(9)), 0);
    }
}
