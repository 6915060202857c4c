//! The words of the KV model's explanations: how an operation, a store
//! and a rejected step read when the checker explains why a history is not
//! linearizable (the text and HTML around them are in [`crate::explain`]).
//! Kept out of the model's rules, which they must never influence.

use super::model::KvModel;
use super::ops::{CompareTarget, KvInput, KvOutput, TxnOp};
use super::state::KvState;

/// One operation in a line: `put k="v" -> ok @5`, `txn if mod(k) == 0
/// then [put k="1"] else [] -> else @4`.
pub(super) fn op(input: &KvInput, output: Option<&KvOutput>) -> String {
    let rev = |r: &Option<u64>| r.map_or_else(String::new, |r| format!(" @{r}"));
    let inp = match input {
        KvInput::Get { key } => format!("get {key}"),
        KvInput::Put { key, value } => format!("put {key}={value:?}"),
        KvInput::Delete { key } => format!("delete {key}"),
        KvInput::Append { key, value } => format!("append {key}+={value:?}"),
        KvInput::Txn {
            compares,
            success,
            failure,
        } => {
            let c: Vec<String> = compares
                .iter()
                .map(|c| match &c.target {
                    CompareTarget::Value(v) => {
                        format!("value({}) {} {v:?}", c.key, c.op.symbol())
                    }
                    CompareTarget::ModRevision(r) => {
                        format!("mod({}) {} {r}", c.key, c.op.symbol())
                    }
                })
                .collect();
            let ops = |v: &Vec<TxnOp>| {
                v.iter()
                    .map(|o| match o {
                        TxnOp::Get { key } => format!("get {key}"),
                        TxnOp::Put { key, value } => format!("put {key}={value:?}"),
                        TxnOp::Delete { key } => format!("delete {key}"),
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            format!(
                "txn if {} then [{}] else [{}]",
                c.join(" && "),
                ops(success),
                ops(failure)
            )
        }
    };
    let out = match output {
        None => " -> ?".to_string(),
        Some(KvOutput::Get {
            value,
            mod_revision,
            revision,
        }) => format!(
            " -> {}{}{}",
            show(value),
            mod_revision.map_or_else(String::new, |m| format!(" (mod {m})")),
            rev(revision)
        ),
        Some(KvOutput::Put { revision }) | Some(KvOutput::Append { revision }) => {
            format!(" -> ok{}", rev(revision))
        }
        Some(KvOutput::Delete { deleted, revision }) => format!(
            " -> {}{}",
            deleted.map_or_else(|| "ok".to_string(), |d| format!("deleted {d}")),
            rev(revision)
        ),
        Some(KvOutput::Txn {
            succeeded,
            results,
            revision,
        }) => format!(
            " -> {}{}{}",
            if *succeeded { "then" } else { "else" },
            if results.is_empty() {
                String::new()
            } else {
                format!(" {results:?}")
            },
            rev(revision)
        ),
    };
    inp + &out
}

/// The store in a line: `{a="1"@2, b="x"@3} rev 3`, or `{a="1", b="x"}`
/// when revisions are not tracked (they would all read 0).
pub(super) fn store(model: &KvModel, state: &KvState) -> String {
    let kv: Vec<String> = state
        .iter()
        .map(|(k, v)| {
            if model.track_revisions {
                format!("{k}={:?}@{}", v.value, v.mod_revision)
            } else {
                format!("{k}={:?}", v.value)
            }
        })
        .collect();
    if model.track_revisions {
        format!("{{{}}} rev {}", kv.join(", "), state.revision)
    } else {
        format!("{{{}}}", kv.join(", "))
    }
}

/// Why the model rejects `input -> output` in `state`. A get that read
/// another value than the store holds says so plainly; anything else
/// restates the operation next to the store.
pub(super) fn why_illegal(
    model: &KvModel,
    state: &KvState,
    input: &KvInput,
    output: Option<&KvOutput>,
) -> String {
    if let (KvInput::Get { key }, Some(KvOutput::Get { value, .. })) = (input, output) {
        let cur = model.read(state, key).map(|k| k.value.as_str().to_string());
        if cur != *value {
            return format!(
                "get {key} returned {} but the store holds {}",
                show(value),
                show(&cur)
            );
        }
    }
    format!(
        "{} does not match the store {}",
        op(input, output),
        store(model, state)
    )
}

/// A read value as shown: quoted, or `∅` for an absent key.
fn show(v: &Option<String>) -> String {
    v.as_ref()
        .map_or_else(|| "∅".to_string(), |v| format!("{v:?}"))
}
