//! The linearizability checker: Wing–Gong–Lowe depth-first search with a
//! memo of (set of linearized operations, model state), per partition.
//!
//! What makes it fast and small, beyond the textbook algorithm:
//!
//! * `Fail` operations are dropped (they did not happen), and so are `Info`
//!   reads (they constrain nothing).
//! * `Info` operations are **optional**: the search succeeds once every `Ok`
//!   operation is linearized, and an `Info` operation is only placed where
//!   it changes the state. Porcupine instead closes them at +infinity and
//!   has to linearize all of them.
//! * Symmetry: of several `Info` operations with the same input, the search
//!   only ever uses the earliest-invoked unused one (swapping two such
//!   operations in a linearization keeps it legal), which shrinks the
//!   memo by the number of ways to pick among equals.
//! * Candidates are kept in invoke order in a doubly linked list with
//!   O(1) unlink/relink (undo is free), and the earliest completion among
//!   unlinearized operations is tracked by a pointer saved on the stack,
//!   so finding the next candidate never scans linearized operations.
//! * The memo is keyed by an incrementally maintained Zobrist hash of the
//!   bitset mixed with a fast state hash; keys store their hash.
//! * Partitions (P-compositionality) are checked concurrently; the first
//!   violation cancels the partitions after it, which keeps the reported
//!   explanation deterministic.
//!
//! The answer is never wrong: `Unknown` is returned if the timeout (or the
//! memo size cap) is hit before the search finishes.
//!
//! # Files
//!
//! * this file: the entry points ([`check`], [`check_with`]), their options
//!   and result, and running partitions on worker threads;
//! * `partition.rs`: splitting a history into independent partitions;
//! * `search.rs`: the search over one partition;
//! * `memo.rs`: the memo of explored configurations and its compact keys;
//! * `explanation.rs`: turning a failed search into an [`Explanation`].

mod explanation;
mod memo;
mod partition;
mod search;

#[cfg(test)]
mod tests;

use crate::explain::Explanation;
use crate::history::History;
use crate::model::Model;
use partition::partition;
use search::search;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The verdict on a history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// There is a legal sequential order consistent with real time.
    Linearizable,
    /// There is none; see the explanation.
    NotLinearizable,
    /// The checker gave up (timeout or memory cap) before deciding.
    Unknown,
}

impl Verdict {
    /// `Some(true)` for linearizable, `Some(false)` for not, `None` for
    /// unknown; the `valid` field of the CLI's JSON output.
    pub fn as_valid(self) -> Option<bool> {
        match self {
            Verdict::Linearizable => Some(true),
            Verdict::NotLinearizable => Some(false),
            Verdict::Unknown => None,
        }
    }
}

/// Knobs for [`check_with`].
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Give up with `Unknown` after this long (`None` = no limit; so is a
    /// duration too large to add to the current instant).
    pub timeout: Option<Duration>,
    /// Give up with `Unknown` once a partition's memo holds this many
    /// configurations (bounds memory: an entry is roughly 60 bytes plus
    /// the model state; the default of 10 million stays around 1 GB for
    /// small states).
    pub max_states: usize,
    /// Worker threads for partitions; 0 means the number of CPUs. Use 1
    /// when calling from inside a deterministic simulation (madsim), where
    /// spawning OS threads may be refused; verdicts and explanations do not
    /// depend on this setting. (The timeout is measured with
    /// `std::time::Instant`, which is virtual time inside such a simulation.)
    pub threads: usize,
    /// Build an [`Explanation`] when the history is not linearizable.
    pub explain: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            timeout: None,
            max_states: 10_000_000,
            threads: 0,
            explain: true,
        }
    }
}

/// The result of a check.
#[derive(Clone, Debug)]
pub struct CheckResult {
    /// The verdict.
    pub verdict: Verdict,
    /// For `NotLinearizable` (when requested): why.
    pub explanation: Option<Explanation>,
    /// How many operations the history has.
    pub ops: usize,
    /// How many partitions it was split into.
    pub partitions: usize,
    /// Configurations memoized, summed over partitions (a cost measure).
    pub states: u64,
    /// Wall time of the check.
    pub elapsed: Duration,
}

impl CheckResult {
    /// A short text: the verdict, the size and cost of the check, and for
    /// a violation the explanation's summary.
    pub fn summary(&self) -> String {
        let verdict = match self.verdict {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable => "not linearizable",
            Verdict::Unknown => "unknown (gave up)",
        };
        let mut s = format!(
            "{verdict}: {} ops in {} partition(s), {} configurations, {:.3} ms\n",
            self.ops,
            self.partitions,
            self.states,
            self.elapsed.as_secs_f64() * 1e3
        );
        if let Some(e) = &self.explanation {
            s.push_str(&e.summary());
        }
        s
    }
}

/// Checks a history against a model with default options and an optional
/// timeout. This is the main entry point.
///
/// ```
/// use detcd_jepsen::{check, History, Op, RegisterInput, RegisterModel, RegisterOutput, Verdict};
/// let mut h = History::new();
/// h.push(Op::ok(0, 0, 1, RegisterInput::Write { value: 1 }, RegisterOutput::Write));
/// h.push(Op::ok(1, 2, 3, RegisterInput::Read, RegisterOutput::Read { value: Some(2) }));
/// h.push(Op::info(2, 0, RegisterInput::Write { value: 3 }));
/// let r = check(&RegisterModel, &h, None);
/// assert_eq!(r.verdict, Verdict::NotLinearizable);
/// assert!(r.summary().contains("read returned 2 but the register holds"));
/// ```
pub fn check<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    timeout: Option<Duration>,
) -> CheckResult {
    check_with(
        model,
        history,
        &CheckOptions {
            timeout,
            ..CheckOptions::default()
        },
    )
}

/// Checks a history with explicit options.
pub fn check_with<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    opts: &CheckOptions,
) -> CheckResult {
    let start = Instant::now();
    // A timeout too large to represent as an instant means no deadline.
    let deadline = opts.timeout.and_then(|t| start.checked_add(t));
    let parts = partition(model, history);
    let lowest_illegal = AtomicUsize::new(usize::MAX);
    let run = |i: usize| -> PartResult {
        let p = &parts[i];
        let res = search(
            model,
            history,
            p,
            deadline,
            opts.max_states,
            &lowest_illegal,
            i,
            opts.explain,
        );
        if res.verdict == Verdict::NotLinearizable {
            lowest_illegal.fetch_min(i, Ordering::SeqCst);
        }
        res
    };
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    };
    let mut results: Vec<Option<PartResult>> = (0..parts.len()).map(|_| None).collect();
    if parts.len() <= 1 || threads <= 1 {
        for (i, slot) in results.iter_mut().enumerate() {
            *slot = Some(run(i));
        }
    } else {
        // Biggest partitions first for load balance; results by index.
        let mut order: Vec<usize> = (0..parts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(parts[i].ops.len()));
        let next = AtomicUsize::new(0);
        let collected = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..threads.min(parts.len()) {
                s.spawn(|| loop {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    if k >= order.len() {
                        break;
                    }
                    let i = order[k];
                    let r = run(i);
                    collected
                        .lock()
                        .expect("no panics while holding the lock")
                        .push((i, r));
                });
            }
        });
        for (i, r) in collected.into_inner().expect("threads joined") {
            results[i] = Some(r);
        }
    }
    let mut verdict = Verdict::Linearizable;
    let mut explanation = None;
    let mut states = 0;
    for r in results.into_iter().flatten() {
        states += r.states;
        match r.verdict {
            Verdict::NotLinearizable if verdict != Verdict::NotLinearizable => {
                verdict = Verdict::NotLinearizable;
                explanation = r.explanation;
            }
            Verdict::Unknown if verdict == Verdict::Linearizable => verdict = Verdict::Unknown,
            _ => {}
        }
    }
    CheckResult {
        verdict,
        explanation,
        ops: history.ops.len(),
        partitions: parts.len(),
        states,
        elapsed: start.elapsed(),
    }
}

/// What the search concluded about one partition.
struct PartResult {
    verdict: Verdict,
    explanation: Option<Explanation>,
    states: u64,
}
