//! The sequential specification a history is checked against.
//!
//! A [`Model`] is a deterministic state machine: from a state, an input and
//! an observed output it either yields the next state or says the step is
//! illegal. Deterministic models keep the search simple and fast; every
//! model in this crate (register, etcd-style KV) is deterministic.

use std::fmt::Debug;
use std::hash::Hash;

/// Which part of the data an operation touches, for P-compositional
/// partitioning (Horn and Kroening): operations on disjoint keys are checked
/// separately, and an operation that touches several keys joins their
/// partitions.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Footprint {
    /// The keys read or written.
    pub keys: Vec<String>,
    /// True when the operation observes (or is constrained by) state shared
    /// by all keys, such as etcd's global revision. When any operation in a
    /// history is global, the history is checked as one partition, because
    /// checking keys separately would then be unsound.
    pub global: bool,
}

/// A sequential specification.
pub trait Model: Sync {
    /// What a client asks for.
    type Input: Clone + Debug + PartialEq + Send + Sync;
    /// What a client gets back from an `Ok` operation.
    type Output: Clone + Debug + PartialEq + Send + Sync;
    /// The model state. `Hash` and `Eq` drive memoization, so two states
    /// must be equal exactly when no future operation can tell them apart.
    type State: Clone + Debug + Eq + Hash + Send + Sync;

    /// The initial state of the whole system.
    fn init(&self) -> Self::State;

    /// The initial state of a partition that only holds these keys. The
    /// default is [`Model::init`]; models may drop unrelated keys to keep
    /// states small.
    fn init_partition(&self, keys: &[String]) -> Self::State {
        let _ = keys;
        self.init()
    }

    /// Applies an operation whose output is known. Returns the next state,
    /// or `None` if the output is impossible from `state`.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Self::State>;

    /// Applies an operation whose outcome is unknown (`Info`), assuming it
    /// took effect. Returns `None` when taking effect is impossible or
    /// would leave the state unchanged: not linearizing the operation at
    /// all covers both cases, so the search can skip it.
    fn step_unknown(&self, state: &Self::State, input: &Self::Input) -> Option<Self::State>;

    /// True for operations that never change state (reads). An `Info` read
    /// constrains nothing and is dropped before the search.
    fn is_read_only(&self, input: &Self::Input) -> bool {
        let _ = input;
        false
    }

    /// True when an `Ok` operation with this input and output never
    /// changes the state: from every state, `step` either rejects it or
    /// returns the same state (reads, a cas whose compare failed). The
    /// checker linearizes such operations as early as possible instead of
    /// branching on them, so this must not claim purity wrongly; the
    /// default is [`Model::is_read_only`].
    fn is_pure(&self, input: &Self::Input, output: &Self::Output) -> bool {
        let _ = output;
        self.is_read_only(input)
    }

    /// A measure of progress that never decreases along any step, such as
    /// etcd's global revision; see [`Model::progress_bound`]. The default
    /// (constant 0) disables the pruning.
    fn progress(&self, state: &Self::State) -> u64 {
        let _ = state;
        0
    }

    /// The largest [`Model::progress`] a state may have for this completed
    /// operation to be legal in it (a put that returned revision `r` needs
    /// a store at revision `r - 1`). The checker prunes any configuration
    /// whose state has run past the bound of an operation still to be
    /// placed: progress never decreases, so that operation could never be
    /// placed. Must be exact or an over-estimate; the default is no bound.
    fn progress_bound(&self, input: &Self::Input, output: &Self::Output) -> u64 {
        let _ = (input, output);
        u64::MAX
    }

    /// The keys an operation touches; see [`Footprint`]. The default puts
    /// everything in one partition.
    fn footprint(&self, input: &Self::Input, output: Option<&Self::Output>) -> Footprint {
        let _ = (input, output);
        Footprint {
            keys: Vec::new(),
            global: true,
        }
    }

    /// A short human-readable description of an operation, for reports.
    fn describe_op(&self, input: &Self::Input, output: Option<&Self::Output>) -> String {
        match output {
            Some(o) => format!("{input:?} -> {o:?}"),
            None => format!("{input:?} -> ?"),
        }
    }

    /// A short human-readable description of a state, for reports.
    fn describe_state(&self, state: &Self::State) -> String {
        format!("{state:?}")
    }

    /// Why `step` rejects this operation in this state, in words. Used
    /// only for explanations; the default restates the operation and state.
    fn explain_illegal(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> String {
        format!(
            "{} is not possible in state {}",
            self.describe_op(input, output),
            self.describe_state(state)
        )
    }
}
