//! Shrinking a failing schedule: delta debugging over fault episodes, then over the length of
//! the faulty phase, keeping each change only while the failure persists.
//!
//! Steps are removed a whole episode at a time (a crash with its restart, a partition with its
//! heal), so a candidate never restarts a member that was not crashed; and playing a schedule
//! tolerates anything left unpaired anyway. The search is greedy and budgeted: each candidate
//! is a full simulated run.

use std::collections::BTreeSet;

use crate::nemesis::Schedule;

/// Candidates a shrink may try before it settles for what it has.
pub const DEFAULT_BUDGET: usize = 150;

/// The shortest faulty phase worth trying.
const MIN_DURATION_MS: u64 = 500;

/// The result of a shrink.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The smallest failing schedule found.
    pub schedule: Schedule,
    /// Candidates tried.
    pub tries: usize,
}

/// Shrinks `schedule`, which must make `fails` true, to a smaller schedule that still does,
/// trying at most `budget` candidates.
pub fn shrink(
    schedule: &Schedule,
    mut fails: impl FnMut(&Schedule) -> bool,
    budget: usize,
) -> Shrunk {
    let mut best = schedule.clone();
    let mut tries = 0;
    let mut attempt = |candidate: &Schedule, tries: &mut usize| -> bool {
        if *tries >= budget {
            return false;
        }
        *tries += 1;
        fails(candidate)
    };
    loop {
        let before = (best.steps.len(), best.duration_ms);
        best = remove_episodes(best, &mut |c| attempt(c, &mut tries));
        best = shorten(best, &mut |c| attempt(c, &mut tries));
        if (best.steps.len(), best.duration_ms) == before || tries >= budget {
            break;
        }
    }
    Shrunk {
        schedule: best,
        tries,
    }
}

/// Greedy chunk removal: halves of the episodes, then quarters, … then single episodes.
fn remove_episodes(mut best: Schedule, fails: &mut impl FnMut(&Schedule) -> bool) -> Schedule {
    let mut chunk = best.episodes().len().div_ceil(2).max(1);
    loop {
        let episodes = best.episodes();
        if episodes.is_empty() {
            return best;
        }
        let mut i = 0;
        let mut removed_any = false;
        while i < episodes.len() {
            let drop: BTreeSet<u32> = episodes[i..(i + chunk).min(episodes.len())]
                .iter()
                .copied()
                .collect();
            let candidate = best.without(&drop);
            if candidate.steps.len() < best.steps.len() && fails(&candidate) {
                best = candidate;
                removed_any = true;
            }
            i += chunk;
        }
        if chunk == 1 && !removed_any {
            return best;
        }
        if chunk > 1 {
            chunk = chunk.div_ceil(2);
        }
    }
}

/// Binary search for a shorter faulty phase that still fails.
fn shorten(mut best: Schedule, fails: &mut impl FnMut(&Schedule) -> bool) -> Schedule {
    let mut lo = MIN_DURATION_MS;
    while best.duration_ms > lo + MIN_DURATION_MS / 2 {
        let mid = lo + (best.duration_ms - lo) / 2;
        let candidate = best.truncated(mid);
        if fails(&candidate) {
            best = candidate;
        } else {
            lo = mid + 1;
        }
    }
    best
}

#[cfg(madsim)]
mod print {
    use std::io::Write;
    use std::path::Path;

    use super::shrink;
    use crate::cli::replay_command;
    use crate::nemesis::Schedule;
    use crate::run::isolated::run_isolated;
    use crate::run::RunConfig;

    /// The part of a failure message that names the kind of failure ("panic", "invariant
    /// violated", …): a smaller schedule must fail the same way.
    fn category(message: &str) -> &str {
        message.split(':').next().unwrap_or(message)
    }

    /// Shrinks a failing run of `config` (each candidate run in a fresh `worker` process) and
    /// prints the minimal schedule, where it was saved, and the command that replays it.
    pub fn shrink_and_print(
        config: &RunConfig,
        schedule: &Schedule,
        worker: &Path,
        budget: usize,
        out: &mut impl Write,
    ) {
        let original = run_isolated(worker, config, schedule);
        let Some(failure) = original.failure else {
            let _ = writeln!(
                out,
                "shrink: seed {} passes with this schedule",
                config.seed
            );
            return;
        };
        let want = category(&failure.message).to_string();
        let _ = writeln!(
            out,
            "\nshrinking seed {} ({} steps, {} ms; failure: {want})",
            config.seed,
            schedule.steps.len(),
            schedule.duration_ms
        );
        let fails = |s: &Schedule| {
            run_isolated(worker, config, s)
                .failure
                .is_some_and(|f| category(&f.message) == want)
        };
        let shrunk = shrink(schedule, fails, budget);
        let name = format!("seed-{}.min.schedule.json", config.seed);
        let path = config.report_dir.join(&name);
        let saved = std::fs::create_dir_all(&config.report_dir).is_ok()
            && std::fs::write(&path, shrunk.schedule.to_json()).is_ok();
        let _ = write!(
            out,
            "minimal schedule after {} tries ({} steps):\n{}",
            shrunk.tries,
            shrunk.schedule.steps.len(),
            shrunk.schedule
        );
        let _ = writeln!(
            out,
            "replay: {}",
            replay_command(config, saved.then_some(path.as_path()))
        );
    }
}

#[cfg(madsim)]
pub use print::shrink_and_print;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::{generate, Action, FaultKind, EVERY_FAULT};

    fn big() -> Schedule {
        let all: BTreeSet<FaultKind> = EVERY_FAULT.into_iter().collect();
        (0..100)
            .map(|seed| generate::random(seed, 3, 10_000, &all))
            .find(|s| {
                s.steps.len() > 12
                    && s.steps
                        .iter()
                        .any(|st| matches!(st.action, Action::Crash(1)))
            })
            .expect("some seed crashes n2 among many faults")
    }

    #[test]
    fn a_synthetic_failure_shrinks_to_the_one_episode_that_causes_it() {
        let s = big();
        // "Fails" whenever n2 is crashed at some point.
        let fails = |c: &Schedule| {
            c.steps
                .iter()
                .any(|st| matches!(st.action, Action::Crash(1)))
        };
        let shrunk = shrink(&s, fails, 500);
        let left = shrunk.schedule.episodes();
        assert_eq!(left.len(), 1, "{}", shrunk.schedule);
        assert!(fails(&shrunk.schedule));
        // The phase was cut down to just past that crash.
        let crash_at = shrunk.schedule.steps[0].at_ms;
        assert!(shrunk.schedule.duration_ms > crash_at);
        assert!(shrunk.schedule.duration_ms < s.duration_ms);
    }

    #[test]
    fn a_failure_needing_two_faults_keeps_both() {
        let s = big();
        let kinds: Vec<FaultKind> = s.steps.iter().map(|st| st.kind).collect();
        let (a, b) = (
            kinds[0],
            *kinds.iter().find(|k| **k != kinds[0]).unwrap_or(&kinds[0]),
        );
        let fails = |c: &Schedule| {
            c.steps.iter().any(|st| st.kind == a) && c.steps.iter().any(|st| st.kind == b)
        };
        let shrunk = shrink(&s, fails, 500);
        assert!(fails(&shrunk.schedule));
        assert!(shrunk.schedule.episodes().len() <= 2, "{}", shrunk.schedule);
    }

    #[test]
    fn the_budget_bounds_the_work() {
        let s = big();
        let mut calls = 0;
        let shrunk = shrink(
            &s,
            |_| {
                calls += 1;
                false
            },
            7,
        );
        assert_eq!(calls, 7);
        assert_eq!(shrunk.tries, 7);
        assert_eq!(shrunk.schedule, s);
    }
}
