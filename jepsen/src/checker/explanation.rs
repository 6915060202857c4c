//! Turning a failed search into an [`Explanation`]: the longest
//! linearizable prefix the search found is replayed through the model to
//! get its states, and each operation that could come next is asked why it
//! cannot (the model's [`Model::explain_illegal`]). Runs once, after the
//! search, so it may be slow and simple.

use super::partition::Partition;
use super::search::SOp;
use crate::explain::{Blocked, Explanation, OpView, PrefixStep};
use crate::history::History;
use crate::model::Model;

/// The explanation for partition `part` (number `part_index`): `ops` as the
/// search prepared them (invoke order), `by_ret` the completed ones by
/// completion, and `best_path` the longest prefix found (indices into `ops`).
#[allow(clippy::too_many_arguments)]
pub(super) fn build_explanation<M: Model>(
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
