//! A single read/write/compare-and-set register, the model of Jepsen's etcd
//! register test (and of porcupine's etcd histories).

use crate::model::Model;
use serde::{Deserialize, Serialize};

/// A register operation's request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "lowercase")]
pub enum RegisterInput {
    /// Read the current value.
    Read,
    /// Overwrite the value.
    Write {
        /// The new value.
        value: i64,
    },
    /// If the value equals `from`, set it to `to`.
    Cas {
        /// The expected current value.
        from: i64,
        /// The value to store on a match.
        to: i64,
    },
}

/// A register operation's response (for `Ok` operations).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "lowercase")]
pub enum RegisterOutput {
    /// The value read; `None` means the register was never written.
    Read {
        /// The value, or `None` for absent.
        value: Option<i64>,
    },
    /// The write took effect.
    Write,
    /// The compare-and-set ran; `succeeded` says whether the compare
    /// matched. (Jepsen's etcd register test records a failed compare as
    /// `:fail :cas`; [`crate::porcupine::parse_etcd_log`] turns that into
    /// `succeeded: false`.)
    Cas {
        /// Whether the compare matched and the new value was stored.
        succeeded: bool,
    },
}

/// The register model. The state is the current value, `None` until the
/// first write. A compare-and-set on an absent register never matches.
#[derive(Clone, Copy, Debug, Default)]
pub struct RegisterModel;

impl Model for RegisterModel {
    type Input = RegisterInput;
    type Output = RegisterOutput;
    type State = Option<i64>;

    fn init(&self) -> Option<i64> {
        None
    }

    fn step(
        &self,
        state: &Option<i64>,
        input: &RegisterInput,
        output: &RegisterOutput,
    ) -> Option<Option<i64>> {
        match (input, output) {
            (RegisterInput::Read, RegisterOutput::Read { value }) => {
                (value == state).then_some(*state)
            }
            (RegisterInput::Write { value }, RegisterOutput::Write) => Some(Some(*value)),
            (RegisterInput::Cas { from, to }, RegisterOutput::Cas { succeeded }) => {
                let matches = *state == Some(*from);
                match (matches, succeeded) {
                    (true, true) => Some(Some(*to)),
                    (false, false) => Some(*state),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn step_unknown(&self, state: &Option<i64>, input: &RegisterInput) -> Option<Option<i64>> {
        match input {
            RegisterInput::Read => None,
            RegisterInput::Write { value } => (*state != Some(*value)).then_some(Some(*value)),
            RegisterInput::Cas { from, to } => {
                (*state == Some(*from) && from != to).then_some(Some(*to))
            }
        }
    }

    fn is_read_only(&self, input: &RegisterInput) -> bool {
        matches!(input, RegisterInput::Read)
    }

    fn is_pure(&self, input: &RegisterInput, output: &RegisterOutput) -> bool {
        match (input, output) {
            (RegisterInput::Read, _) => true,
            (RegisterInput::Cas { .. }, RegisterOutput::Cas { succeeded: false }) => true,
            (RegisterInput::Cas { from, to }, _) => from == to,
            (RegisterInput::Write { .. }, _) => false,
        }
    }

    fn describe_op(&self, input: &RegisterInput, output: Option<&RegisterOutput>) -> String {
        let show = |v: &Option<i64>| v.map_or_else(|| "nil".to_string(), |v| v.to_string());
        match (input, output) {
            (RegisterInput::Read, Some(RegisterOutput::Read { value })) => {
                format!("read -> {}", show(value))
            }
            (RegisterInput::Read, _) => "read -> ?".into(),
            (RegisterInput::Write { value }, Some(_)) => format!("write {value}"),
            (RegisterInput::Write { value }, None) => format!("write {value} (unknown outcome)"),
            (RegisterInput::Cas { from, to }, Some(RegisterOutput::Cas { succeeded: true })) => {
                format!("cas {from}->{to} ok")
            }
            (RegisterInput::Cas { from, to }, Some(_)) => {
                format!("cas {from}->{to} failed compare")
            }
            (RegisterInput::Cas { from, to }, None) => {
                format!("cas {from}->{to} (unknown outcome)")
            }
        }
    }

    fn describe_state(&self, state: &Option<i64>) -> String {
        state.map_or_else(|| "nil".to_string(), |v| v.to_string())
    }

    fn explain_illegal(
        &self,
        state: &Option<i64>,
        input: &RegisterInput,
        output: Option<&RegisterOutput>,
    ) -> String {
        let s = self.describe_state(state);
        match (input, output) {
            (RegisterInput::Read, Some(RegisterOutput::Read { value })) => format!(
                "read returned {} but the register holds {s}",
                value.map_or_else(|| "nil".to_string(), |v| v.to_string())
            ),
            (RegisterInput::Cas { from, .. }, Some(RegisterOutput::Cas { succeeded: true })) => {
                format!("cas expected {from} but the register holds {s}")
            }
            (RegisterInput::Cas { from, .. }, Some(RegisterOutput::Cas { succeeded: false })) => {
                format!("cas reported a failed compare against {from} but the register holds {s}")
            }
            (_, None) => format!(
                "{} would not change the register ({s})",
                self.describe_op(input, output)
            ),
            _ => format!(
                "{} does not match in state {s}",
                self.describe_op(input, output)
            ),
        }
    }
}
