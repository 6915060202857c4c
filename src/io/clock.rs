//! Time as one node sees it — an explicitly **ambient** clock.
//!
//! Why ambient, not a value handed down: openraft reads `Instant::now()` and arms its timers
//! through the [`AsyncRuntime`](openraft::AsyncRuntime) with no context at all, so the clock
//! raft's elections run on is necessarily looked up from where the code runs (the current madsim
//! node in the simulator, nothing in production). A `Clock` value threaded through the rest of
//! the server would only pretend otherwise: every copy would read the same table. So there is
//! one clock per node, reached through the free functions of this module — [`now`], [`sleep`],
//! [`sleep_until`], [`timeout`], [`timeout_at`], [`unix_nanos`] — and nothing outside `src/io/`
//! touches the runtime's clock (clippy's `disallowed-methods` enforces it). Pure cores (the
//! lessor, the watch session) take `now` as data and never read a clock themselves.
//!
//! Monotonic instants drive raft timers, lease expiry and request deadlines; the wall clock only
//! feeds human-facing fields and IDs. Both read the node's [`Skew`]: a constant offset plus a
//! rate error in parts per million, which the simulator sets per node to model clock skew and
//! drift. In a production build the skew is always zero.

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

/// A node's clock state: local monotonic time is
/// `global + offset + (global - origin) * rate_ppm / 1e6`, and the wall clock adds `wall_offset`
/// instead of `offset`. Changing the skew keeps the monotonic clock continuous: it may jump
/// forward, never back (openraft, like any raft, relies on that); the wall clock may go back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeClock {
    origin: tokio::time::Instant,
    offset_nanos: i128,
    rate_ppm: i64,
    wall_offset_nanos: i128,
}

impl NodeClock {
    fn drift(&self, global: tokio::time::Instant) -> i128 {
        signed_since(global, self.origin) * self.rate_ppm as i128 / 1_000_000
    }

    fn local_offset(&self, global: tokio::time::Instant) -> i128 {
        self.offset_nanos + self.drift(global)
    }
}

#[cfg(madsim)]
mod table {
    use super::{NodeClock, Skew};
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    pub use madsim::task::NodeId;

    thread_local! {
        /// Per-node clocks of the simulation running on this thread (a madsim runtime runs all
        /// its nodes on the thread that called `block_on`), so runtimes in one process —
        /// parallel tests, even with the same seed — never see each other's skews. Only the
        /// simulator writes.
        static CLOCKS: RefCell<BTreeMap<NodeId, NodeClock>> = const { RefCell::new(BTreeMap::new()) };
    }

    pub fn set(node: NodeId, skew: Skew) {
        let now = tokio::time::Instant::now();
        CLOCKS.with(|c| {
            let mut clocks = c.borrow_mut();
            let before = clocks.get(&node).map_or(0, |c| c.local_offset(now));
            let wanted = skew.offset_nanos as i128;
            clocks.insert(
                node,
                NodeClock {
                    origin: now,
                    offset_nanos: before.max(wanted),
                    rate_ppm: skew.rate_ppm.max(-999_999),
                    wall_offset_nanos: wanted,
                },
            );
        });
    }

    pub fn clear() {
        CLOCKS.with(|c| c.borrow_mut().clear());
    }

    pub fn get() -> Option<NodeClock> {
        madsim::runtime::Handle::try_current().ok()?;
        let node = madsim::plugin::node();
        CLOCKS.with(|c| c.borrow().get(&node).copied())
    }
}

/// Sets the skew of simulated node `node`, from now on (simulation only). The monotonic clock
/// stays continuous (a backward offset change does not move it back); the wall clock takes the
/// new offset as is.
#[cfg(madsim)]
pub fn set_node_skew(node: table::NodeId, skew: Skew) {
    table::set(node, skew);
}

/// Forgets every skew set by the simulation on this thread (a new simulated cluster starts with
/// true clocks).
#[cfg(madsim)]
pub fn reset_skews() {
    table::clear();
}

#[cfg(madsim)]
fn current_clock() -> Option<NodeClock> {
    table::get()
}

#[cfg(not(madsim))]
fn current_clock() -> Option<NodeClock> {
    None
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
        match current_clock() {
            None => Instant(global),
            Some(c) => Instant(shift(global, c.local_offset(global))),
        }
    }

    /// The global (runtime) instant at which this node's clock reads `self`; timers are armed
    /// on the runtime's clock, so a skewed deadline has to be converted back.
    pub fn to_runtime(self) -> tokio::time::Instant {
        match current_clock() {
            None => self.0,
            Some(c) => {
                // local - origin = (g - origin) * (1 + r) + offset, solved for g.
                let local = signed_since(self.0, c.origin);
                let r = c.rate_ppm as i128;
                let g = (local - c.offset_nanos) * 1_000_000 / (1_000_000 + r);
                shift(c.origin, g)
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

/// Now, on this node's monotonic clock.
pub fn now() -> Instant {
    Instant::now()
}

/// Wall-clock time as Unix nanoseconds, with the node's skew (which may move it back).
pub fn unix_nanos() -> i128 {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    match current_clock() {
        None => wall,
        Some(c) => wall + c.wall_offset_nanos + c.drift(tokio::time::Instant::now()),
    }
}

/// Sleeps until this node's clock reads `deadline`.
pub async fn sleep_until(deadline: Instant) {
    tokio::time::sleep_until(deadline.to_runtime()).await
}

/// Sleeps for `d` on this node's clock (a node whose clock runs fast wakes early).
pub async fn sleep(d: Duration) {
    sleep_until(now() + d).await
}

/// Bounds `future` by `deadline` on this node's clock.
pub fn timeout_at<F: std::future::Future>(
    deadline: Instant,
    future: F,
) -> super::runtime::Timeout<F> {
    super::runtime::timeout_at(deadline.to_runtime(), future)
}

/// Bounds `future` by `d` from now on this node's clock.
pub fn timeout<F: std::future::Future>(d: Duration, future: F) -> super::runtime::Timeout<F> {
    timeout_at(now() + d, future)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_is_linear_in_elapsed_time_and_invertible() {
        let origin = tokio::time::Instant::now();
        let c = NodeClock {
            origin,
            offset_nanos: -5,
            rate_ppm: 1000,
            wall_offset_nanos: -5,
        };
        assert_eq!(
            c.local_offset(origin + Duration::from_secs(1)),
            1_000_000 - 5
        );
        assert_eq!(c.local_offset(origin), -5);
        let plain = NodeClock {
            origin,
            offset_nanos: 0,
            rate_ppm: 0,
            wall_offset_nanos: 0,
        };
        assert_eq!(plain.local_offset(origin + Duration::from_secs(9)), 0);
    }
}
