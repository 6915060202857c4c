//! The search over one partition: Wing–Gong–Lowe depth-first search for
//! a legal order of the partition's operations, with the reductions listed
//! in the [`checker`](super) module docs (pure operations placed eagerly,
//! interchangeable `Info` operations used in order, progress pruning), a
//! linked list of candidates with free undo, and the memo in `memo.rs`.

use super::explanation::build_explanation;
use super::memo::{memo_insert, CacheKey};
use super::partition::Partition;
use super::{PartResult, Verdict};
use crate::hash::{splitmix64, BuildPassThrough};
use crate::history::History;
use crate::model::Model;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// An operation prepared for the search.
pub(super) struct SOp<'a, M: Model> {
    /// What the client asked.
    pub(super) input: &'a M::Input,
    /// `None` for `Info` (optional, output unknown).
    pub(super) output: Option<&'a M::Output>,
    /// Invoke time.
    pub(super) inv: u64,
    /// Completion time; `u64::MAX` for `Info` (open forever).
    pub(super) ret: u64,
    /// Index into the history.
    pub(super) orig: usize,
    /// For `Info` ops: the previous (in invoke order) `Info` op with an
    /// equal input; this op may only be used once that one is.
    prev_same: Option<usize>,
    /// Completed and [`Model::is_pure`].
    pure: bool,
}

/// One linearized operation on the search stack, with what undoing it
/// restores.
struct Frame<S> {
    op: usize,
    prev_state: S,
    prev_ret_ptr: usize,
    prev_bound_ptr: usize,
    forced: bool,
}

/// Searches partition `part` (number `my_index`) for a linearization.
/// Gives up with `Unknown` at the deadline, at `max_states` memo entries,
/// or once a partition with a lower index is known to be illegal (its
/// explanation is the one reported, which keeps reports deterministic).
#[allow(clippy::too_many_arguments)]
pub(super) fn search<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    part: &Partition,
    deadline: Option<Instant>,
    max_states: usize,
    lowest_illegal: &AtomicUsize,
    my_index: usize,
    explain: bool,
) -> PartResult {
    // Prepare ops sorted by invoke time.
    let mut ops: Vec<SOp<'_, M>> = part
        .ops
        .iter()
        .map(|&i| {
            let op = &history.ops[i];
            SOp {
                input: &op.input,
                output: op.outcome.output(),
                inv: op.invoke,
                // A completion before the invoke is malformed (see
                // `History::validate`); treat it as instantaneous rather
                // than letting it block every other op.
                ret: op.effective_complete().max(op.invoke),
                orig: i,
                prev_same: None,
                pure: op
                    .outcome
                    .output()
                    .is_some_and(|out| model.is_pure(&op.input, out)),
            }
        })
        .collect();
    ops.sort_by_key(|o| (o.inv, o.ret, o.orig));
    let n = ops.len();
    for j in 0..n {
        if ops[j].output.is_none() {
            ops[j].prev_same = (0..j)
                .rev()
                .find(|&k| ops[k].output.is_none() && ops[k].input == ops[j].input);
        }
    }
    let mut by_ret: Vec<usize> = (0..n).filter(|&j| ops[j].output.is_some()).collect();
    by_ret.sort_by_key(|&j| (ops[j].ret, j));
    let zkeys: Vec<u64> = (0..n as u64).map(|j| splitmix64(j ^ 0x5eed)).collect();

    // Two circular doubly linked lists in invoke order: completed ops
    // (sentinel `head`) and unknown-outcome ops (sentinel `head_info`).
    // Completed ops are tried first; the often numerous `Info` ops, which
    // stay candidates forever, are only tried when those run out.
    let head = n;
    let head_info = n + 1;
    let mut next = vec![0usize; n + 2];
    let mut prev = vec![0usize; n + 2];
    for sentinel in [head, head_info] {
        let mut last = sentinel;
        for j in (0..n).filter(|&j| (ops[j].output.is_some()) == (sentinel == head)) {
            next[last] = j;
            prev[j] = last;
            last = j;
        }
        next[last] = sentinel;
        prev[sentinel] = last;
    }

    let words = n.div_ceil(64).max(1);
    let mut lin = vec![0u64; words];
    let mut zob = 0u64;
    let keys = &part.keys;
    let init = model.init_partition(keys);
    let mut state = init.clone();
    let mut stack: Vec<Frame<M::State>> = Vec::new();
    let mut ret_ptr = 0usize;
    // Required ops by progress bound (see `Model::progress_bound`).
    let bounds: Vec<u64> = ops
        .iter()
        .map(|o| {
            o.output
                .map_or(u64::MAX, |out| model.progress_bound(o.input, out))
        })
        .collect();
    let mut by_bound: Vec<usize> = (0..n)
        .filter(|&j| ops[j].output.is_some() && bounds[j] != u64::MAX)
        .collect();
    by_bound.sort_by_key(|&j| (bounds[j], j));
    let mut bound_ptr = 0usize;
    let placed = |lin: &[u64], j: usize| lin[j / 64] >> (j % 64) & 1 == 1;
    let mut required_left = by_ret.len();
    let mut cache: HashSet<CacheKey<M::State>, BuildPassThrough> =
        HashSet::with_hasher(BuildPassThrough);
    let mut best_required = 0usize;
    let mut best_path: Vec<usize> = Vec::new();
    // The lowest stack depth since the last `best_path` snapshot: below it,
    // the stack still equals `best_path`.
    let mut low_water = 0usize;
    let mut cur = next[head];
    let mut fresh = true;
    let mut iters: u64 = 0;

    let verdict = loop {
        if required_left == 0 {
            break Verdict::Linearizable;
        }
        iters += 1;
        if iters & 1023 == 0 {
            if deadline.is_some_and(|d| Instant::now() >= d)
                || lowest_illegal.load(Ordering::Relaxed) < my_index
            {
                break Verdict::Unknown;
            }
            if cache.len() >= max_states {
                break Verdict::Unknown;
            }
        }
        let min_ret = ops[by_ret[ret_ptr]].ret;
        // The op to linearize next, its resulting state, and whether it was
        // forced (then no alternative needs to be tried at this config).
        let mut target: Option<(usize, M::State, bool)> = None;
        let mut dead = false;
        if fresh {
            // Partial-order reduction: a completed candidate that is pure
            // (never changes any state: a read, a failed cas) and legal
            // now can be linearized right now without loss of generality:
            // moving it earlier breaks no real-time constraint (it is a
            // candidate) and changes no state anywhere. So if one exists,
            // it is the only branch explored from this configuration.
            let mut c = next[head];
            while c != head && ops[c].inv <= min_ret {
                if let (Some(out), true) = (ops[c].output, ops[c].pure) {
                    if let Some(ns) = model.step(&state, ops[c].input, out) {
                        debug_assert!(ns == state, "a pure op changed the state");
                        if memo_insert(&mut cache, &mut lin, zob ^ zkeys[c], c, &ns) {
                            target = Some((c, ns, true));
                        } else {
                            dead = true;
                        }
                        break;
                    }
                }
                c = next[c];
            }
        }
        if target.is_none() && !dead {
            loop {
                if cur == head {
                    // Completed candidates exhausted: on to the Info ops.
                    cur = next[head_info];
                    continue;
                }
                if cur == head_info {
                    break;
                }
                let o = &ops[cur];
                if o.inv > min_ret {
                    if o.output.is_some() {
                        cur = head;
                        continue;
                    }
                    break;
                }
                let allowed = o.prev_same.is_none_or(|p| lin[p / 64] >> (p % 64) & 1 == 1);
                if allowed {
                    let ns = match o.output {
                        Some(out) => model.step(&state, o.input, out),
                        None => model.step_unknown(&state, o.input).filter(|s| *s != state),
                    };
                    // Progress pruning: the smallest bound among the other
                    // unplaced ops must not be exceeded by the new state.
                    let ns = ns.filter(|ns| {
                        by_bound.len() == bound_ptr || {
                            let p = model.progress(ns);
                            by_bound[bound_ptr..]
                                .iter()
                                .find(|&&j| j != cur && !placed(&lin, j))
                                .is_none_or(|&j| p <= bounds[j])
                        }
                    });
                    if let Some(ns) = ns {
                        if memo_insert(&mut cache, &mut lin, zob ^ zkeys[cur], cur, &ns) {
                            target = Some((cur, ns, false));
                            break;
                        }
                    }
                }
                cur = next[cur];
            }
        }
        if let Some((c, ns, forced)) = target {
            lin[c / 64] |= 1 << (c % 64);
            zob ^= zkeys[c];
            stack.push(Frame {
                op: c,
                prev_state: std::mem::replace(&mut state, ns),
                prev_ret_ptr: ret_ptr,
                prev_bound_ptr: bound_ptr,
                forced,
            });
            // Unlink.
            let (p, nx) = (prev[c], next[c]);
            next[p] = nx;
            prev[nx] = p;
            if ops[c].output.is_some() {
                required_left -= 1;
                while bound_ptr < by_bound.len() && placed(&lin, by_bound[bound_ptr]) {
                    bound_ptr += 1;
                }
                while ret_ptr < by_ret.len()
                    && lin[by_ret[ret_ptr] / 64] >> (by_ret[ret_ptr] % 64) & 1 == 1
                {
                    ret_ptr += 1;
                }
                let done = by_ret.len() - required_left;
                if explain && done > best_required {
                    // Copy only the part of the stack that changed since
                    // the last snapshot (keeps a forward run linear).
                    best_required = done;
                    best_path.truncate(low_water);
                    best_path.extend(stack[low_water..].iter().map(|f| f.op));
                    low_water = stack.len();
                }
            }
            cur = next[head];
            fresh = true;
        } else {
            let Some(f) = stack.pop() else {
                break Verdict::NotLinearizable;
            };
            let j = f.op;
            low_water = low_water.min(stack.len());
            // Relink (LIFO, so neighbours are exactly as when unlinked).
            next[prev[j]] = j;
            prev[next[j]] = j;
            lin[j / 64] &= !(1 << (j % 64));
            zob ^= zkeys[j];
            state = f.prev_state;
            ret_ptr = f.prev_ret_ptr;
            bound_ptr = f.prev_bound_ptr;
            if ops[j].output.is_some() {
                required_left += 1;
            }
            // After a forced step there is nothing else to try here.
            cur = if f.forced { head_info } else { next[j] };
            fresh = false;
        }
    };
    let states = cache.len() as u64;
    drop(cache);
    let explanation = (verdict == Verdict::NotLinearizable && explain).then(|| {
        build_explanation(
            model, history, part, my_index, &ops, &by_ret, &best_path, &init,
        )
    });
    PartResult {
        verdict,
        explanation,
        states,
    }
}
