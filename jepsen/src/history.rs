//! Histories: operations with a process, an invoke time, a completion time
//! and an outcome, plus our JSON-lines encoding of them.
//!
//! Times are plain `u64` ticks. They may be nanoseconds from a real clock,
//! simulated ticks, or simply the position of an event in a log that is known
//! to be in real-time order. Intervals are **closed**: operation `a` precedes
//! operation `b` in real time only if `a.complete < b.invoke`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::BufRead;

/// How an operation ended, as observed by the client that issued it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome<O> {
    /// The operation completed and returned this output. It took effect
    /// exactly once somewhere between its invoke and its completion.
    Ok(O),
    /// The operation definitely did not take effect (for example the server
    /// rejected it before doing anything). Checkers drop such operations.
    Fail,
    /// The outcome is unknown (a timeout, a lost connection). The operation
    /// may take effect at any time after its invoke, or never. Its completion
    /// time is treated as +infinity.
    Info,
}

impl<O> Outcome<O> {
    /// The output if the operation completed with `Ok`.
    pub fn output(&self) -> Option<&O> {
        match self {
            Outcome::Ok(o) => Some(o),
            _ => None,
        }
    }

    /// A short lowercase name: `ok`, `fail` or `info` (Jepsen's vocabulary).
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Ok(_) => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        }
    }
}

/// One client operation: what was asked, by whom, when, and what came back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op<I, O> {
    /// The client (Jepsen "process") that issued the operation. A process
    /// has at most one operation open at a time; this is only used for
    /// display and sanity checks, never for ordering.
    pub process: u64,
    /// When the client sent the request.
    pub invoke: u64,
    /// When the client received the response. Ignored (treated as
    /// +infinity) when the outcome is [`Outcome::Info`]. Must not be
    /// before `invoke` ([`History::validate`] checks this; the checker
    /// treats such an op as completing at its invoke).
    pub complete: u64,
    /// The request, typed by the model (for example a register write).
    pub input: I,
    /// The response.
    pub outcome: Outcome<O>,
}

impl<I, O> Op<I, O> {
    /// An operation that completed with `output`.
    pub fn ok(process: u64, invoke: u64, complete: u64, input: I, output: O) -> Self {
        Op {
            process,
            invoke,
            complete,
            input,
            outcome: Outcome::Ok(output),
        }
    }

    /// An operation that definitely did not take effect.
    pub fn fail(process: u64, invoke: u64, complete: u64, input: I) -> Self {
        Op {
            process,
            invoke,
            complete,
            input,
            outcome: Outcome::Fail,
        }
    }

    /// An operation whose outcome is unknown (open until +infinity).
    pub fn info(process: u64, invoke: u64, input: I) -> Self {
        Op {
            process,
            invoke,
            complete: u64::MAX,
            input,
            outcome: Outcome::Info,
        }
    }

    /// Completion time with `Info` mapped to `u64::MAX` (+infinity).
    pub fn effective_complete(&self) -> u64 {
        match self.outcome {
            Outcome::Info => u64::MAX,
            _ => self.complete,
        }
    }
}

/// A history: a set of operations. The order of `ops` carries no meaning;
/// real-time order comes from the invoke and completion times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History<I, O> {
    /// The operations.
    pub ops: Vec<Op<I, O>>,
}

impl<I, O> Default for History<I, O> {
    fn default() -> Self {
        History { ops: Vec::new() }
    }
}

/// One event of a history recorded in real-time order: either a call or
/// the matching return. Used by [`History::from_events`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<I, O> {
    /// Process `process` invoked an operation with this input.
    Invoke {
        /// The invoking process.
        process: u64,
        /// The request.
        input: I,
    },
    /// The process's open operation completed with this outcome.
    Complete {
        /// The completing process.
        process: u64,
        /// The response.
        outcome: Outcome<O>,
    },
}

/// Errors from building or reading a history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// A process invoked an operation while one was still open.
    #[error("event {index}: process {process} invoked while an operation was still open")]
    DoubleInvoke {
        /// Position of the offending event.
        index: usize,
        /// The process.
        process: u64,
    },
    /// A completion arrived for a process with nothing open.
    #[error("event {index}: process {process} completed without an open operation")]
    UnmatchedCompletion {
        /// Position of the offending event.
        index: usize,
        /// The process.
        process: u64,
    },
    /// An operation completes before it was invoked.
    #[error(
        "malformed history: op {index} (process {process}, {outcome}) completes at {complete} before its invoke at {invoke}"
    )]
    TimeTravel {
        /// Index of the op.
        index: usize,
        /// Its process.
        process: u64,
        /// Its outcome (`ok` or `fail`).
        outcome: &'static str,
        /// Invoke time.
        invoke: u64,
        /// Completion time.
        complete: u64,
    },
    /// A line could not be parsed.
    #[error("line {line}: {message}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What went wrong.
        message: String,
    },
    /// Reading the input failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl<I, O> History<I, O> {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an operation.
    pub fn push(&mut self, op: Op<I, O>) {
        self.ops.push(op);
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when there are no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Builds a history from events in real-time order; the time of an event
    /// is its position. Operations still open at the end become `Info`
    /// (their effect is unknown), which is what Jepsen means by a crash.
    pub fn from_events(
        events: impl IntoIterator<Item = Event<I, O>>,
    ) -> Result<Self, HistoryError> {
        let mut open: HashMap<u64, (u64, I)> = HashMap::new();
        let mut ops = Vec::new();
        let mut order: Vec<u64> = Vec::new();
        for (index, ev) in events.into_iter().enumerate() {
            let t = index as u64;
            match ev {
                Event::Invoke { process, input } => {
                    if open.contains_key(&process) {
                        return Err(HistoryError::DoubleInvoke { index, process });
                    }
                    open.insert(process, (t, input));
                    order.push(process);
                }
                Event::Complete { process, outcome } => {
                    let Some((invoke, input)) = open.remove(&process) else {
                        return Err(HistoryError::UnmatchedCompletion { index, process });
                    };
                    ops.push(Op {
                        process,
                        invoke,
                        complete: t,
                        input,
                        outcome,
                    });
                }
            }
        }
        // Deterministic order for the leftovers: by invoke time.
        let mut rest: Vec<(u64, (u64, I))> = open.into_iter().collect();
        rest.sort_by_key(|(_, (inv, _))| *inv);
        for (process, (invoke, input)) in rest {
            ops.push(Op {
                process,
                invoke,
                complete: u64::MAX,
                input,
                outcome: Outcome::Info,
            });
        }
        Ok(History { ops })
    }

    /// Checks basic well-formedness: every non-`Info` op completes no
    /// earlier than it is invoked.
    pub fn validate(&self) -> Result<(), HistoryError> {
        for (index, op) in self.ops.iter().enumerate() {
            if !matches!(op.outcome, Outcome::Info) && op.complete < op.invoke {
                return Err(HistoryError::TimeTravel {
                    index,
                    process: op.process,
                    outcome: op.outcome.kind(),
                    invoke: op.invoke,
                    complete: op.complete,
                });
            }
        }
        Ok(())
    }
}

/// The JSON-lines record for one operation (see the crate README).
///
/// `{"process":0,"invoke":10,"complete":12,"type":"ok","input":{...},"output":{...}}`
/// where `type` is `ok`, `fail` or `info`, `output` is required for `ok`
/// and absent otherwise, and `complete` may be omitted for `info`.
#[derive(Serialize, Deserialize)]
struct OpRecord<I, O> {
    process: u64,
    invoke: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    complete: Option<u64>,
    #[serde(rename = "type")]
    kind: String,
    input: I,
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    output: Option<O>,
}

fn none<T>() -> Option<T> {
    None
}

impl<I: Serialize + DeserializeOwned, O: Serialize + DeserializeOwned> History<I, O> {
    /// Parses our JSON-lines history format: one operation per line, blank
    /// lines and lines starting with `#` ignored.
    pub fn from_jsonl(reader: impl BufRead) -> Result<Self, HistoryError> {
        let mut ops = Vec::new();
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let err = |message: String| HistoryError::Parse {
                line: i + 1,
                message,
            };
            let rec: OpRecord<I, O> =
                serde_json::from_str(trimmed).map_err(|e| err(e.to_string()))?;
            let outcome = match (rec.kind.as_str(), rec.output) {
                ("ok", Some(o)) => Outcome::Ok(o),
                ("ok", None) => return Err(err("an ok op needs an output".into())),
                ("fail", _) => Outcome::Fail,
                ("info", _) => Outcome::Info,
                (other, _) => {
                    return Err(err(format!("unknown type {other:?}, want ok|fail|info")))
                }
            };
            let complete = match (&outcome, rec.complete) {
                (Outcome::Info, c) => c.unwrap_or(u64::MAX),
                (_, Some(c)) => c,
                (_, None) => return Err(err("ok/fail ops need a complete time".into())),
            };
            ops.push(Op {
                process: rec.process,
                invoke: rec.invoke,
                complete,
                input: rec.input,
                outcome,
            });
        }
        let h = History { ops };
        h.validate()?;
        Ok(h)
    }

    /// Writes the history in our JSON-lines format.
    pub fn to_jsonl(&self, mut w: impl std::io::Write) -> std::io::Result<()>
    where
        I: Clone,
        O: Clone,
    {
        for op in &self.ops {
            let rec = OpRecord {
                process: op.process,
                invoke: op.invoke,
                complete: match op.outcome {
                    Outcome::Info => None,
                    _ => Some(op.complete),
                },
                kind: op.outcome.kind().to_string(),
                input: op.input.clone(),
                output: op.outcome.output().cloned(),
            };
            serde_json::to_writer(&mut w, &rec)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{KvInput, KvOutput};
    use crate::register::{RegisterInput, RegisterOutput};

    #[test]
    fn jsonl_round_trips_register_and_kv() {
        let text = r#"
# a comment
{"process":0,"invoke":0,"complete":3,"type":"ok","input":{"f":"write","value":1},"output":{"f":"write"}}
{"process":1,"invoke":1,"type":"info","input":{"f":"cas","from":1,"to":2}}
{"process":2,"invoke":2,"complete":4,"type":"ok","input":{"f":"read"},"output":{"f":"read","value":null}}
{"process":3,"invoke":5,"complete":6,"type":"fail","input":{"f":"write","value":9}}
"#;
        let h: History<RegisterInput, RegisterOutput> =
            History::from_jsonl(text.as_bytes()).expect("parses");
        assert_eq!(h.len(), 4);
        assert_eq!(h.ops[1].outcome, Outcome::Info);
        assert_eq!(h.ops[1].effective_complete(), u64::MAX);
        assert_eq!(
            h.ops[2].outcome,
            Outcome::Ok(RegisterOutput::Read { value: None })
        );
        let mut buf = Vec::new();
        h.to_jsonl(&mut buf).expect("writes");
        let back: History<RegisterInput, RegisterOutput> =
            History::from_jsonl(&buf[..]).expect("re-parses");
        assert_eq!(back, h);

        let kv = r#"{"process":0,"invoke":0,"complete":1,"type":"ok","input":{"f":"put","key":"a","value":"x"},"output":{"f":"put","revision":2}}
{"process":0,"invoke":2,"complete":3,"type":"ok","input":{"f":"get","key":"a"},"output":{"f":"get","value":"x","mod_revision":2}}"#;
        let h: History<KvInput, KvOutput> = History::from_jsonl(kv.as_bytes()).expect("parses kv");
        assert_eq!(
            h.ops[1].outcome,
            Outcome::Ok(KvOutput::Get {
                value: Some("x".into()),
                mod_revision: Some(2),
                revision: None
            })
        );
    }

    #[test]
    fn jsonl_rejects_bad_records() {
        let missing_output =
            r#"{"process":0,"invoke":0,"complete":3,"type":"ok","input":{"f":"read"}}"#;
        let r: Result<History<RegisterInput, RegisterOutput>, _> =
            History::from_jsonl(missing_output.as_bytes());
        assert!(matches!(r, Err(HistoryError::Parse { line: 1, .. })));
        let backwards = r#"{"process":0,"invoke":5,"complete":3,"type":"ok","input":{"f":"write","value":1},"output":{"f":"write"}}"#;
        let r: Result<History<RegisterInput, RegisterOutput>, _> =
            History::from_jsonl(backwards.as_bytes());
        assert!(matches!(r, Err(HistoryError::TimeTravel { .. })));
    }

    #[test]
    fn validate_rejects_completions_before_invokes() {
        let mut h: History<RegisterInput, RegisterOutput> = History::new();
        h.push(Op::info(0, 9, RegisterInput::Read));
        h.push(Op {
            complete: 2,
            ..Op::info(1, 9, RegisterInput::Write { value: 1 })
        });
        assert!(h.validate().is_ok(), "an info op's completion is ignored");
        h.push(Op::fail(2, 7, 6, RegisterInput::Write { value: 2 }));
        let e = h
            .validate()
            .expect_err("a fail op completes before its invoke");
        assert!(
            matches!(
                e,
                HistoryError::TimeTravel {
                    index: 2,
                    process: 2,
                    invoke: 7,
                    complete: 6,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().starts_with("malformed history"), "{e}");
    }

    #[test]
    fn from_events_pairs_calls_and_returns() {
        let h = History::from_events(vec![
            Event::Invoke {
                process: 0,
                input: RegisterInput::Read,
            },
            Event::Invoke {
                process: 1,
                input: RegisterInput::Write { value: 1 },
            },
            Event::Complete {
                process: 0,
                outcome: Outcome::Ok(RegisterOutput::Read { value: None }),
            },
        ])
        .expect("well formed");
        assert_eq!(h.ops[0].invoke, 0);
        assert_eq!(h.ops[0].complete, 2);
        assert_eq!(h.ops[1].outcome, Outcome::Info);
        let bad: Result<History<RegisterInput, RegisterOutput>, _> =
            History::from_events(vec![Event::Complete {
                process: 3,
                outcome: Outcome::Fail,
            }]);
        assert!(matches!(bad, Err(HistoryError::UnmatchedCompletion { .. })));
    }
}
