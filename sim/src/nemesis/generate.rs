//! Drawing a random [`Schedule`] from a seed.
//!
//! Generation is a pure function of (seed, members, duration, allowed faults), using its own
//! ChaCha generator rather than the simulator's: a schedule can be printed without running it,
//! and a run given an explicit schedule consumes the simulator's randomness exactly as the run
//! that generated it, so replaying a saved schedule reproduces the run bit for bit.

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Action, FaultKind, Schedule, Step};

/// Mixed into the seed so the schedule's stream differs from the simulator's own.
const SCHEDULE_STREAM: u64 = 0x6e65_6d65_7369_7321;

/// Accumulates steps, numbering episodes.
struct Builder {
    steps: Vec<Step>,
    episode: u32,
}

impl Builder {
    /// Starts a new episode; returns its number.
    fn begin(&mut self) -> u32 {
        self.episode += 1;
        self.episode
    }

    fn push(&mut self, episode: u32, kind: FaultKind, at_ms: u64, action: Action) {
        self.steps.push(Step {
            at_ms,
            episode,
            kind,
            action,
        });
    }
}

/// Per-generation state: which members exist, and until when each resource is busy (one
/// network fault, one membership change, one message-latency and one loss episode at a time;
/// a member is crashed or paused by one episode at a time, and has one episode of each kind of
/// disk fault at a time).
struct Plan {
    members: Vec<usize>,
    next_member: usize,
    down_until: Vec<u64>,
    disk_until: Vec<u64>,
    full_until: Vec<u64>,
    corrupt_until: Vec<u64>,
    net_until: u64,
    delay_until: u64,
    loss_until: u64,
    membership_until: u64,
}

impl Plan {
    fn grow(&mut self) -> usize {
        let j = self.next_member;
        self.next_member += 1;
        self.down_until.push(0);
        self.disk_until.push(0);
        self.full_until.push(0);
        self.corrupt_until.push(0);
        j
    }
}

/// A random schedule over `duration_ms` for `nodes` members. Swarm testing: a random non-empty
/// subset of `allowed` is enabled for this seed.
pub fn random(
    seed: u64,
    nodes: usize,
    duration_ms: u64,
    allowed: &BTreeSet<FaultKind>,
) -> Schedule {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ SCHEDULE_STREAM);
    let allowed: Vec<FaultKind> = allowed.iter().copied().collect();
    if allowed.is_empty() || nodes == 0 {
        return Schedule {
            kinds: BTreeSet::new(),
            duration_ms,
            steps: Vec::new(),
        };
    }
    let mut kinds: BTreeSet<FaultKind> = allowed
        .iter()
        .copied()
        .filter(|_| rng.gen_bool(0.6))
        .collect();
    if kinds.is_empty() {
        kinds.insert(*allowed.choose(&mut rng).expect("non-empty"));
    }
    let mut b = Builder {
        steps: Vec::new(),
        episode: 0,
    };
    // A setting for the whole run, not an episode in time.
    if kinds.contains(&FaultKind::AutoCompaction) {
        let e = b.begin();
        let retention = rng.gen_range(300..=3000);
        b.push(
            e,
            FaultKind::AutoCompaction,
            0,
            Action::AutoCompaction(retention),
        );
    }
    let enabled: Vec<FaultKind> = kinds
        .iter()
        .copied()
        .filter(|k| *k != FaultKind::AutoCompaction)
        .collect();
    // Swarm: each enabled kind also gets its own weight, so some seeds are dominated by one.
    let weights: Vec<u32> = enabled.iter().map(|_| rng.gen_range(1..=4)).collect();
    let mut p = Plan {
        members: (0..nodes).collect(),
        next_member: nodes,
        down_until: vec![0; nodes],
        disk_until: vec![0; nodes],
        full_until: vec![0; nodes],
        corrupt_until: vec![0; nodes],
        net_until: 0,
        delay_until: 0,
        loss_until: 0,
        membership_until: 0,
    };
    let mut t = 200;
    while t < duration_ms && !enabled.is_empty() {
        let total: u32 = weights.iter().sum();
        let mut pick = rng.gen_range(0..total);
        let mut k = 0;
        while pick >= weights[k] {
            pick -= weights[k];
            k += 1;
        }
        let kind = enabled[k];
        let back = t + rng.gen_range(300..2000);
        draw(&mut rng, &mut b, &mut p, kind, t, back);
        t += rng.gen_range(150..700);
    }
    b.steps.sort_by_key(|s| s.at_ms);
    Schedule {
        kinds,
        duration_ms,
        steps: b.steps,
    }
}

/// A random split of `members` into two non-empty sides (sorted).
fn split(rng: &mut ChaCha8Rng, members: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut m = members.to_vec();
    m.shuffle(rng);
    let size = rng.gen_range(1..m.len());
    let (mut a, mut b) = (m[..size].to_vec(), m[size..].to_vec());
    a.sort_unstable();
    b.sort_unstable();
    (a, b)
}

/// Adds one episode of `kind` starting at `t` (undone at `back`), if its resource is free.
fn draw(rng: &mut ChaCha8Rng, b: &mut Builder, p: &mut Plan, kind: FaultKind, t: u64, back: u64) {
    let node = *p.members.choose(rng).expect("at least one member");
    let many = p.members.len() > 1;
    let net_free = p.net_until <= t && many;
    match kind {
        FaultKind::Crash | FaultKind::Kill | FaultKind::Pause if p.down_until[node] <= t => {
            let e = b.begin();
            let (down, up) = match kind {
                FaultKind::Crash => (Action::Crash(node), Action::Restart(node)),
                FaultKind::Kill => (Action::Kill(node), Action::Restart(node)),
                _ => (Action::Pause(node), Action::Resume(node)),
            };
            b.push(e, kind, t, down);
            b.push(e, kind, back, up);
            p.down_until[node] = back;
        }
        FaultKind::Partition | FaultKind::OneWay if net_free => {
            let (side, rest) = split(rng, &p.members);
            let e = b.begin();
            let cut = if kind == FaultKind::Partition {
                Action::Partition(side)
            } else {
                Action::OneWay(side, rest)
            };
            b.push(e, kind, t, cut);
            b.push(e, kind, back, Action::Heal);
            p.net_until = back;
        }
        FaultKind::Bridge if net_free && p.members.len() >= 3 => {
            let mut m = p.members.clone();
            m.shuffle(rng);
            let bridge = m[0];
            let (left, right) = split(rng, &m[1..]);
            let e = b.begin();
            b.push(e, kind, t, Action::Bridge(left, bridge, right));
            b.push(e, kind, back, Action::Heal);
            p.net_until = back;
        }
        FaultKind::IsolateLeader if net_free => {
            let e = b.begin();
            b.push(e, kind, t, Action::IsolateLeader);
            b.push(e, kind, back, Action::Heal);
            p.net_until = back;
        }
        FaultKind::Swizzle if net_free => {
            let mut links: Vec<(usize, usize)> = p
                .members
                .iter()
                .flat_map(|a| {
                    p.members
                        .iter()
                        .filter(move |b| *b != a)
                        .map(move |b| (*a, *b))
                })
                .collect();
            links.shuffle(rng);
            links.truncate(rng.gen_range(1..=links.len()));
            let e = b.begin();
            let mut at = t;
            for (x, y) in &links {
                b.push(e, kind, at, Action::Clog(*x, *y));
                at += rng.gen_range(20..150);
            }
            at += rng.gen_range(200..1000);
            links.shuffle(rng);
            for (x, y) in &links {
                b.push(e, kind, at, Action::Unclog(*x, *y));
                at += rng.gen_range(20..150);
            }
            p.net_until = at;
        }
        FaultKind::ClockSkew => {
            let offset = rng.gen_range(-2000..=2000);
            let ppm = rng.gen_range(-20_000..=20_000);
            let e = b.begin();
            b.push(e, kind, t, Action::Skew(node, offset, ppm));
        }
        FaultKind::ClockJump => {
            let mut ms: i64 = rng.gen_range(100..=5000);
            if rng.gen_bool(0.5) {
                ms = -ms;
            }
            let e = b.begin();
            b.push(e, kind, t, Action::ClockJump(node, ms));
        }
        FaultKind::SlowDisk => {
            let e = b.begin();
            b.push(e, kind, t, Action::SlowDisk(node, rng.gen_range(0..30)));
        }
        FaultKind::NetDelay if p.delay_until <= t => {
            let lo = rng.gen_range(1..20);
            let hi = lo + rng.gen_range(10..300);
            let e = b.begin();
            b.push(e, kind, t, Action::Delay(lo, hi));
            b.push(e, kind, back, Action::DelayEnd);
            p.delay_until = back;
        }
        FaultKind::NetLoss if p.loss_until <= t => {
            let e = b.begin();
            b.push(e, kind, t, Action::Loss(rng.gen_range(10..150)));
            b.push(e, kind, back, Action::LossEnd);
            p.loss_until = back;
        }
        FaultKind::DiskError if p.disk_until[node] <= t => {
            let (w, s) = match rng.gen_range(0..3) {
                0 => (rng.gen_range(1..100), 0),
                1 => (0, rng.gen_range(1..100)),
                _ => (rng.gen_range(1..100), rng.gen_range(1..100)),
            };
            let e = b.begin();
            b.push(e, kind, t, Action::DiskErrors(node, w, s));
            b.push(e, kind, back, Action::DiskOk(node));
            p.disk_until[node] = back;
        }
        FaultKind::DiskFull if p.full_until[node] <= t => {
            let e = b.begin();
            b.push(e, kind, t, Action::DiskFull(node));
            b.push(e, kind, back, Action::DiskSpace(node));
            p.full_until[node] = back;
        }
        FaultKind::CorruptRead if p.corrupt_until[node] <= t => {
            let e = b.begin();
            b.push(
                e,
                kind,
                t,
                Action::CorruptReads(node, rng.gen_range(20..=500)),
            );
            let mut end = back;
            // A member reads its WAL back when it recovers it: it goes down and comes back
            // while the reads are bad (unless another episode has it down already).
            if p.down_until[node] <= t {
                let down = t + rng.gen_range(0..200);
                let up = down + rng.gen_range(50..500);
                let cut = if rng.gen_bool(0.5) {
                    Action::Crash(node)
                } else {
                    Action::Kill(node)
                };
                b.push(e, kind, down, cut);
                b.push(e, kind, up, Action::Restart(node));
                p.down_until[node] = up;
                end = end.max(up + rng.gen_range(100..1000));
            }
            b.push(e, kind, end, Action::ReadsOk(node));
            p.corrupt_until[node] = end;
        }
        FaultKind::Membership if p.membership_until <= t && p.members.len() >= 3 => {
            let old = node;
            let new = p.grow();
            let e = b.begin();
            let end = if rng.gen_bool(0.5) {
                // Replace: remove a member, then add a fresh one and promote it.
                let add = t + rng.gen_range(300..800);
                let promote = add + rng.gen_range(1000..2500);
                b.push(e, kind, t, Action::Remove(old));
                b.push(e, kind, add, Action::AddLearner(new));
                b.push(e, kind, promote, Action::Promote(new));
                promote
            } else {
                // Grow, then shrink: add a learner, promote it, remove an old member.
                let promote = t + rng.gen_range(1000..2500);
                let remove = promote + rng.gen_range(200..800);
                b.push(e, kind, t, Action::AddLearner(new));
                b.push(e, kind, promote, Action::Promote(new));
                b.push(e, kind, remove, Action::Remove(old));
                remove
            };
            p.members.retain(|m| *m != old);
            p.members.push(new);
            p.membership_until = end;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::EVERY_FAULT;

    #[test]
    fn the_same_seed_draws_the_same_schedule_and_others_differ() {
        let all: BTreeSet<FaultKind> = EVERY_FAULT.into_iter().collect();
        let a = random(7, 3, 6000, &all);
        assert_eq!(a, random(7, 3, 6000, &all));
        assert_ne!(a, random(8, 3, 6000, &all));
        assert!(a.steps.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        assert!(a.kinds.iter().all(|k| all.contains(k)));
    }

    #[test]
    fn only_allowed_kinds_are_drawn() {
        let only: BTreeSet<FaultKind> = [FaultKind::Pause].into_iter().collect();
        for seed in 0..20 {
            let s = random(seed, 3, 6000, &only);
            assert!(s.steps.iter().all(|st| st.kind == FaultKind::Pause));
        }
    }

    #[test]
    fn disk_full_and_corrupt_read_episodes_are_undone_and_corrupt_reads_see_a_restart() {
        let kinds: BTreeSet<FaultKind> = [FaultKind::DiskFull, FaultKind::CorruptRead]
            .into_iter()
            .collect();
        let (mut full, mut corrupt, mut restarted) = (0, 0, 0);
        for seed in 0..20 {
            let s = random(seed, 3, 6000, &kinds);
            for e in s.episodes() {
                let steps: Vec<&Action> = s
                    .steps
                    .iter()
                    .filter(|st| st.episode == e)
                    .map(|st| &st.action)
                    .collect();
                match (steps[0], steps[steps.len() - 1]) {
                    (Action::DiskFull(i), Action::DiskSpace(j)) if i == j => full += 1,
                    (Action::CorruptReads(i, pm), Action::ReadsOk(j)) if i == j => {
                        assert!((20..=500).contains(pm));
                        corrupt += 1;
                        // Down and back up while the reads are bad, if anything.
                        match &steps[1..steps.len() - 1] {
                            [] => {}
                            [Action::Crash(a) | Action::Kill(a), Action::Restart(b)] => {
                                assert!(a == i && b == i, "{steps:?}");
                                restarted += 1;
                            }
                            other => panic!("unexpected steps {other:?}"),
                        }
                    }
                    other => panic!("episode {e} of seed {seed}: {other:?}"),
                }
            }
        }
        assert!(full > 0 && corrupt > 0 && restarted > 0);
    }
}
