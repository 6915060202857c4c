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

use crate::explain::{Blocked, Explanation, OpView, PrefixStep};
use crate::hash::{fast_hash, splitmix64, BuildPassThrough};
use crate::history::{History, Outcome};
use crate::model::Model;
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
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

/// One group of operations checked independently.
#[derive(Clone, Debug)]
pub(crate) struct Partition {
    /// The keys (empty when unpartitioned).
    pub keys: Vec<String>,
    /// Indices into the history, in history order.
    pub ops: Vec<usize>,
}

/// Splits a history P-compositionally (see [`crate::model::Footprint`]).
/// `Fail` operations and `Info` reads are left out: they cannot constrain
/// the verdict.
pub(crate) fn partition<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
) -> Vec<Partition> {
    let relevant: Vec<usize> = history
        .ops
        .iter()
        .enumerate()
        .filter(|(_, op)| match op.outcome {
            Outcome::Ok(_) => true,
            Outcome::Fail => false,
            Outcome::Info => !model.is_read_only(&op.input),
        })
        .map(|(i, _)| i)
        .collect();
    let footprints: Vec<_> = relevant
        .iter()
        .map(|&i| model.footprint(&history.ops[i].input, history.ops[i].outcome.output()))
        .collect();
    if footprints.iter().any(|f| f.global || f.keys.is_empty()) {
        let mut keys: Vec<String> = footprints
            .iter()
            .flat_map(|f| f.keys.iter().cloned())
            .collect();
        keys.sort();
        keys.dedup();
        return vec![Partition {
            keys,
            ops: relevant,
        }];
    }
    // Union-find over keys.
    let mut key_id: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &footprints {
        for k in &f.keys {
            let n = key_id.len();
            key_id.entry(k.as_str()).or_insert(n);
        }
    }
    let mut parent: Vec<usize> = (0..key_id.len()).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for f in &footprints {
        let first = key_id[f.keys[0].as_str()];
        for k in &f.keys[1..] {
            let a = find(&mut parent, first);
            let b = find(&mut parent, key_id[k.as_str()]);
            if a != b {
                parent[b] = a;
            }
        }
    }
    let mut by_root: BTreeMap<usize, usize> = BTreeMap::new(); // root -> partition index
    let mut parts: Vec<Partition> = Vec::new();
    for (j, &i) in relevant.iter().enumerate() {
        let root = find(&mut parent, key_id[footprints[j].keys[0].as_str()]);
        let idx = *by_root.entry(root).or_insert_with(|| {
            parts.push(Partition {
                keys: Vec::new(),
                ops: Vec::new(),
            });
            parts.len() - 1
        });
        parts[idx].ops.push(i);
    }
    for (k, &id) in &key_id {
        let root = find(&mut parent, id);
        if let Some(&idx) = by_root.get(&root) {
            parts[idx].keys.push((*k).to_string());
        }
    }
    parts
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

struct PartResult {
    verdict: Verdict,
    explanation: Option<Explanation>,
    states: u64,
}

/// An operation prepared for the search.
struct SOp<'a, M: Model> {
    input: &'a M::Input,
    /// `None` for `Info` (optional, output unknown).
    output: Option<&'a M::Output>,
    inv: u64,
    ret: u64,
    /// Index into the history.
    orig: usize,
    /// For `Info` ops: the previous (in invoke order) `Info` op with an
    /// equal input; this op may only be used once that one is.
    prev_same: Option<usize>,
    /// Completed and [`Model::is_pure`].
    pure: bool,
}

/// The set of linearized ops as stored in the memo. Ops are numbered in
/// invoke order and mostly placed in that order, so the set is stored as
/// "all ops in the first `start` words" plus the words after that up to the
/// last set bit; short remainders are stored inline. The encoding is
/// canonical (equal sets give equal keys) and keeps memo entries small even
/// for histories with tens of thousands of ops.
#[derive(PartialEq, Eq)]
enum Bits {
    Inline { start: u32, words: [u64; 3] },
    Heap { start: u32, words: Box<[u64]> },
}

impl Bits {
    fn from_words(w: &[u64]) -> Bits {
        let start = w.iter().position(|&x| x != u64::MAX).unwrap_or(w.len());
        let end = w
            .iter()
            .rposition(|&x| x != 0)
            .map_or(start, |e| (e + 1).max(start));
        let rest = &w[start..end];
        let start = start as u32;
        if rest.len() <= 3 {
            let mut words = [0u64; 3];
            words[..rest.len()].copy_from_slice(rest);
            Bits::Inline { start, words }
        } else {
            Bits::Heap {
                start,
                words: rest.to_vec().into_boxed_slice(),
            }
        }
    }
}

struct CacheKey<S> {
    hash: u64,
    bits: Bits,
    state: S,
}

impl<S> Hash for CacheKey<S> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.hash);
    }
}

impl<S: Eq> PartialEq for CacheKey<S> {
    fn eq(&self, o: &Self) -> bool {
        self.hash == o.hash && self.bits == o.bits && self.state == o.state
    }
}

impl<S: Eq> Eq for CacheKey<S> {}

struct Frame<S> {
    op: usize,
    prev_state: S,
    prev_ret_ptr: usize,
    prev_bound_ptr: usize,
    forced: bool,
}

/// Records the configuration "current set plus op `c`, in state `ns`" in
/// the memo; false if it was already there (already explored).
fn memo_insert<S: Clone + Eq + Hash>(
    cache: &mut HashSet<CacheKey<S>, BuildPassThrough>,
    lin: &mut [u64],
    zob: u64,
    c: usize,
    ns: &S,
) -> bool {
    lin[c / 64] |= 1 << (c % 64);
    let key = CacheKey {
        hash: zob ^ fast_hash(ns),
        bits: Bits::from_words(lin),
        state: ns.clone(),
    };
    lin[c / 64] &= !(1 << (c % 64));
    cache.insert(key)
}

#[allow(clippy::too_many_arguments)]
fn search<M: Model>(
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

#[allow(clippy::too_many_arguments)]
fn build_explanation<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    part: &Partition,
    part_index: usize,
    ops: &[SOp<'_, M>],
    by_ret: &[usize],
    best_path: &[usize],
    init: &M::State,
) -> Explanation {
    let views: Vec<OpView> = ops
        .iter()
        .map(|o| {
            let h = &history.ops[o.orig];
            OpView {
                history_index: o.orig,
                process: h.process,
                invoke: o.inv,
                complete: (o.ret != u64::MAX).then_some(o.ret),
                outcome: h.outcome.kind().to_string(),
                description: model.describe_op(o.input, o.output),
            }
        })
        .collect();
    let mut state = init.clone();
    let mut lin = vec![false; ops.len()];
    let mut prefix = Vec::new();
    for &j in best_path {
        let o = &ops[j];
        let before = model.describe_state(&state);
        state = match o.output {
            Some(out) => model.step(&state, o.input, out),
            None => model.step_unknown(&state, o.input),
        }
        .expect("replaying a path the search found legal");
        lin[j] = true;
        prefix.push(PrefixStep {
            op: j,
            state_before: before,
            state_after: model.describe_state(&state),
        });
    }
    let frontier = by_ret.iter().copied().find(|&j| !lin[j]);
    let mut blocked = Vec::new();
    if let Some(f) = frontier {
        let min_ret = ops[f].ret;
        for (j, o) in ops.iter().enumerate() {
            if lin[j] || o.output.is_none() || o.inv > min_ret {
                continue;
            }
            let reason = match model.step(&state, o.input, o.output.expect("required op")) {
                None => model.explain_illegal(&state, o.input, o.output),
                Some(_) => "legal here, but every continuation after it fails".to_string(),
            };
            blocked.push(Blocked { op: j, reason });
        }
    }
    Explanation {
        partition: part_index,
        partition_keys: part.keys.clone(),
        ops: views,
        initial_state: model.describe_state(init),
        prefix,
        stuck_state: model.describe_state(&state),
        frontier,
        blocked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Op;
    use crate::register::{RegisterInput as I, RegisterModel, RegisterOutput as O};

    fn op(p: u64, inv: u64, ret: u64, i: I, o: Outcome<O>) -> Op<I, O> {
        Op {
            process: p,
            invoke: inv,
            complete: ret,
            input: i,
            outcome: o,
        }
    }

    fn read(p: u64, inv: u64, ret: u64, v: i64) -> Op<I, O> {
        op(
            p,
            inv,
            ret,
            I::Read,
            Outcome::Ok(O::Read { value: Some(v) }),
        )
    }

    #[test]
    fn two_identical_info_writes_can_both_take_effect() {
        let h = History {
            ops: vec![
                op(0, 0, 0, I::Write { value: 1 }, Outcome::Info),
                op(1, 1, 2, I::Write { value: 2 }, Outcome::Ok(O::Write)),
                op(2, 1, 0, I::Write { value: 1 }, Outcome::Info),
                read(3, 3, 4, 1),
                read(3, 5, 6, 2),
                read(3, 7, 8, 1),
            ],
        };
        assert_eq!(
            check(&RegisterModel, &h, None).verdict,
            Verdict::NotLinearizable
        );
        // The second read of 2 needs the ok write after the first info
        // write; the last read of 1 needs the other info write after it.
        let mut h2 = h.clone();
        h2.ops[1] = op(1, 1, 5, I::Write { value: 2 }, Outcome::Ok(O::Write));
        assert_eq!(
            check(&RegisterModel, &h2, None).verdict,
            Verdict::Linearizable
        );
        // With only one info write of 1 it is impossible.
        h2.ops.remove(2);
        assert_eq!(
            check(&RegisterModel, &h2, None).verdict,
            Verdict::NotLinearizable
        );
    }

    /// `n` overlapping writes of distinct values followed by a read of a
    /// value nobody wrote: the search must refute every subset order.
    fn hard(n: i64) -> History<I, O> {
        let mut ops: Vec<Op<I, O>> = (0..n)
            .map(|v| {
                op(
                    v as u64,
                    0,
                    100,
                    I::Write { value: v },
                    Outcome::Ok(O::Write),
                )
            })
            .collect();
        ops.push(read(99, 0, 100, -1));
        History { ops }
    }

    #[test]
    fn timeout_gives_unknown_never_a_wrong_answer() {
        let h = hard(22);
        let r = check(&RegisterModel, &h, Some(Duration::ZERO));
        assert_eq!(r.verdict, Verdict::Unknown);
        assert!(r.explanation.is_none());
        let r = check(&RegisterModel, &hard(10), Some(Duration::from_secs(60)));
        assert_eq!(r.verdict, Verdict::NotLinearizable);
    }

    #[test]
    fn huge_timeout_means_no_deadline() {
        for t in [Duration::MAX, Duration::from_secs(u64::MAX / 2)] {
            let r = check(&RegisterModel, &hard(10), Some(t));
            assert_eq!(r.verdict, Verdict::NotLinearizable, "timeout {t:?}");
        }
    }

    #[test]
    fn memo_cap_gives_unknown() {
        let opts = CheckOptions {
            max_states: 10,
            ..CheckOptions::default()
        };
        assert_eq!(
            check_with(&RegisterModel, &hard(16), &opts).verdict,
            Verdict::Unknown
        );
    }

    #[test]
    fn explanation_names_the_stuck_read() {
        let h = History {
            ops: vec![
                op(0, 0, 1, I::Write { value: 1 }, Outcome::Ok(O::Write)),
                op(1, 2, 3, I::Write { value: 2 }, Outcome::Ok(O::Write)),
                read(2, 4, 5, 1),
                op(3, 0, 0, I::Write { value: 7 }, Outcome::Fail),
            ],
        };
        let r = check(&RegisterModel, &h, None);
        assert_eq!(r.verdict, Verdict::NotLinearizable);
        let e = r.explanation.expect("explanation");
        assert_eq!(e.ops.len(), 3, "the failed write is left out");
        assert_eq!(e.prefix.len(), 2);
        assert_eq!(e.stuck_state, "2");
        assert_eq!(e.blocked.len(), 1);
        assert_eq!(e.ops[e.blocked[0].op].history_index, 2);
        assert!(e.blocked[0]
            .reason
            .contains("read returned 1 but the register holds 2"));
        let text = e.summary();
        assert!(text.contains("places 2 of 3"), "{text}");
        let html = e.html_fragment();
        assert!(html.contains("class=\"bar bad front\""), "{html}");
        assert_eq!(
            html.matches("class=\"lane\"").count(),
            3,
            "one lane per process"
        );
    }

    #[test]
    fn empty_and_all_info_histories_are_linearizable() {
        assert_eq!(
            check(&RegisterModel, &History::new(), None).verdict,
            Verdict::Linearizable
        );
        let h = History {
            ops: vec![op(0, 0, 0, I::Write { value: 1 }, Outcome::Info)],
        };
        assert_eq!(
            check(&RegisterModel, &h, None).verdict,
            Verdict::Linearizable
        );
    }
}
