//! The scenario's own faults: clock rate changes that keep each member's monotonic clock
//! continuous, and a leader killer.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::time::Duration;

use detcd::io::clock::{set_node_skew, Skew};
use rand::Rng;
use tokio::time::Instant;

use super::MAX_RATE_PPM;
use crate::cluster::{status, SimCluster};

/// A mirror of the skews this scenario set, so a rate change can keep the member's monotonic
/// clock continuous: the new offset is exactly the offset the clock has accumulated. It
/// follows `detcd::io::clock`: local = global + offset + (global − origin) × rate, and a new
/// offset never moves the monotonic clock back (it takes the larger of the two).
#[derive(Default)]
pub(super) struct Skews {
    /// Per member: (origin, monotonic offset in ns, rate in ppm).
    clocks: BTreeMap<usize, (Instant, i128, i64)>,
}

impl Skews {
    /// The offset member `node`'s monotonic clock has at `now`.
    fn offset(&self, node: usize, now: Instant) -> i128 {
        self.clocks.get(&node).map_or(0, |&(origin, offset, rate)| {
            offset + (now - origin).as_nanos() as i128 * rate as i128 / 1_000_000
        })
    }

    /// Sets member `node`'s clock offset (the monotonic clock never goes back) and rate.
    pub(super) fn set(
        &mut self,
        cluster: &SimCluster,
        node: usize,
        offset_nanos: i128,
        rate_ppm: i64,
    ) {
        let now = Instant::now();
        set_node_skew(
            cluster.node_id(node),
            Skew {
                offset_nanos: offset_nanos as i64,
                rate_ppm,
            },
        );
        let offset = self.offset(node, now).max(offset_nanos);
        self.clocks.insert(node, (now, offset, rate_ppm));
    }

    /// A new rate for `node`, from now on, without moving its clock.
    fn change_rate(&mut self, cluster: &SimCluster, node: usize, rate_ppm: i64) {
        let offset = self.offset(node, Instant::now());
        self.set(cluster, node, offset, rate_ppm);
    }
}

/// What the scenario's own faults did.
pub(super) struct Disorder {
    /// What it did, for the trace.
    pub(super) log: Vec<String>,
    /// Leaders it power-cut.
    pub(super) kills: usize,
}

/// The scenario's own faults over the faulty phase: rate changes (continuous clocks) on random
/// members, and — if `kill_leaders` — power cuts of the current leader, each restarted after
/// a while; everything it cut is back up when the phase ends.
pub(super) async fn disorder(
    cluster: &SimCluster,
    skews: &mut Skews,
    start: Instant,
    duration: Duration,
    kill_leaders: bool,
) -> Disorder {
    let mut out = Disorder {
        log: Vec::new(),
        kills: 0,
    };
    let urls = cluster.client_urls();
    let n = urls.len();
    // (member, restart at).
    let mut down: Option<(usize, Instant)> = None;
    let mut next_kill = start + Duration::from_millis(1500);
    loop {
        let wait = madsim::rand::thread_rng().gen_range(200..800);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let t = start.elapsed();
        if t >= duration {
            break;
        }
        let (node, ppm) = {
            let mut rng = madsim::rand::thread_rng();
            (
                rng.gen_range(0..n),
                rng.gen_range(-MAX_RATE_PPM..=MAX_RATE_PPM),
            )
        };
        skews.change_rate(cluster, node, ppm);
        out.log.push(format!(
            "{} ms n{} clock rate {ppm} ppm",
            t.as_millis(),
            node + 1
        ));
        if let Some((i, at)) = down {
            if Instant::now() >= at {
                cluster.restart(i);
                out.log
                    .push(format!("{} ms restart leader n{}", t.as_millis(), i + 1));
                down = None;
            }
        } else if kill_leaders && Instant::now() >= next_kill {
            let u = urls.clone();
            let leader = cluster.client(async move { find_leader(&u).await }).await;
            if let Some(i) = leader {
                // A paused member must run again before it can be killed and restarted cleanly.
                cluster.resume(i);
                cluster.crash(i);
                out.kills += 1;
                let back = madsim::rand::thread_rng().gen_range(300..1500);
                down = Some((i, Instant::now() + Duration::from_millis(back)));
                out.log.push(format!(
                    "{} ms crash leader n{}",
                    start.elapsed().as_millis(),
                    i + 1
                ));
            }
            let gap = madsim::rand::thread_rng().gen_range(2500..4500);
            next_kill = Instant::now() + Duration::from_millis(gap);
        }
    }
    if let Some((i, _)) = down {
        cluster.restart(i);
        out.log.push(format!("end: restart leader n{}", i + 1));
    }
    out
}

/// The member that says it leads (the highest term wins), if any answers.
async fn find_leader(urls: &[String]) -> Option<usize> {
    let mut best: Option<(u64, usize)> = None;
    for (i, url) in urls.iter().enumerate() {
        if let Ok(Some((me, leader, term))) =
            tokio::time::timeout(Duration::from_millis(500), status(url)).await
        {
            if me == leader && best.is_none_or(|(t, _)| term > t) {
                best = Some((term, i));
            }
        }
    }
    best.map(|(_, i)| i)
}
