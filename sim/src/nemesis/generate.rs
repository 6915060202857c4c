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
    let enabled: Vec<FaultKind> = kinds.iter().copied().collect();
    let mut b = Builder {
        steps: Vec::new(),
        episode: 0,
    };
    // Member i is unavailable (crashed or paused) until down_until[i].
    let mut down_until = vec![0u64; nodes];
    let mut partitioned_until = 0u64;
    let mut t = 200;
    while t < duration_ms {
        let kind = *enabled.choose(&mut rng).expect("non-empty");
        let node = rng.gen_range(0..nodes);
        let back = t + rng.gen_range(300..2000);
        match kind {
            FaultKind::Crash if down_until[node] <= t => {
                let e = b.begin();
                b.push(e, kind, t, Action::Crash(node));
                b.push(e, kind, back, Action::Restart(node));
                down_until[node] = back;
            }
            FaultKind::Pause if down_until[node] <= t => {
                let e = b.begin();
                b.push(e, kind, t, Action::Pause(node));
                b.push(e, kind, back, Action::Resume(node));
                down_until[node] = back;
            }
            FaultKind::Partition if partitioned_until <= t && nodes > 1 => {
                let mut members: Vec<usize> = (0..nodes).collect();
                members.shuffle(&mut rng);
                let size = rng.gen_range(1..nodes);
                let mut side: Vec<usize> = members[..size].to_vec();
                side.sort_unstable();
                let e = b.begin();
                b.push(e, kind, t, Action::Partition(side));
                b.push(e, kind, back, Action::Heal);
                partitioned_until = back;
            }
            FaultKind::ClockSkew => {
                let offset = rng.gen_range(-2000..=2000);
                let ppm = rng.gen_range(-20_000..=20_000);
                let e = b.begin();
                b.push(e, kind, t, Action::Skew(node, offset, ppm));
            }
            FaultKind::SlowDisk => {
                let e = b.begin();
                b.push(e, kind, t, Action::SlowDisk(node, rng.gen_range(0..30)));
            }
            _ => {}
        }
        t += rng.gen_range(150..700);
    }
    b.steps.sort_by_key(|s| s.at_ms);
    Schedule {
        kinds,
        duration_ms,
        steps: b.steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::ALL_FAULTS;

    #[test]
    fn the_same_seed_draws_the_same_schedule_and_others_differ() {
        let all: BTreeSet<FaultKind> = ALL_FAULTS.into_iter().collect();
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
}
