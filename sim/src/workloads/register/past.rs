//! Reads of the past and compactions: what the register clients record besides the KV history,
//! and the checks that judge it.
//!
//! A read at revision `at` sees the store as it was then, which no later write may change: it
//! must agree with every other read at `at`, show the acknowledged write that set the value it
//! returns, and miss no acknowledged write of the key at or before `at`. A compaction to `C`
//! takes the history below `C` away — once it is acknowledged, a read below `C` must answer
//! `compacted` — but keeps every key's newest version at `C`, so a read at `C` or later still
//! sees keys last written long before. A `compacted` answer needs a compaction above the read
//! revision that someone asked for (or auto-compaction).

use std::collections::BTreeMap;

use detcd_jepsen::kv::TxnOp;
use detcd_jepsen::{KvInput, KvOutput, Outcome};

use super::KvOp;

/// What a read of the past answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PastAnswer {
    /// The key existed at the revision, with this value, last written at `mod_revision`.
    Found {
        /// The value.
        value: String,
        /// The revision that wrote it.
        mod_revision: u64,
    },
    /// The key did not exist at the revision.
    Absent,
    /// `etcdserver: mvcc: required revision has been compacted`.
    Compacted,
    /// No answer, or an error that tells nothing about the revision (judged by nothing).
    Failed,
}

/// One read of `key` at revision `at`.
#[derive(Debug, Clone)]
pub struct PastRead {
    /// The client.
    pub process: u64,
    /// When it was sent and answered (simulated nanoseconds since the workload started).
    pub invoke: u64,
    /// See `invoke`.
    pub complete: u64,
    /// The key.
    pub key: String,
    /// The revision read.
    pub at: u64,
    /// The answer.
    pub answer: PastAnswer,
}

/// What a compaction answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactAnswer {
    /// Acknowledged: the history below the revision is gone.
    Done,
    /// Refused: the store was already compacted at or above the revision.
    AlreadyCompacted,
    /// No answer (timeout, lost leader): it may or may not take effect.
    Unknown,
}

/// One compaction asked for.
#[derive(Debug, Clone)]
pub struct Compaction {
    /// When it was sent and answered.
    pub invoke: u64,
    /// See `invoke`.
    pub complete: u64,
    /// The revision to compact to.
    pub revision: u64,
    /// The answer.
    pub answer: CompactAnswer,
}

/// Reads of the past, compactions, and what the clients saw that is wrong on its face.
#[derive(Debug, Default)]
pub struct PastLog {
    /// Every read of the past.
    pub reads: Vec<PastRead>,
    /// Every compaction asked for.
    pub compactions: Vec<Compaction>,
    /// Answers wrong whatever else happened (e.g. `future revision` for a revision a response
    /// had already named).
    pub problems: Vec<String>,
}

impl PastLog {
    /// What the log holds, in one line: reads of the past by answer, compactions by answer.
    pub fn summary(&self) -> String {
        let reads = |f: fn(&PastAnswer) -> bool| self.reads.iter().filter(|r| f(&r.answer)).count();
        let compactions = |a| self.compactions.iter().filter(|c| c.answer == a).count();
        format!(
            "reads of the past: {} found, {} absent, {} compacted, {} failed; compactions: {} \
             done, {} refused as compacted, {} unanswered",
            reads(|a| matches!(a, PastAnswer::Found { .. })),
            reads(|a| *a == PastAnswer::Absent),
            reads(|a| *a == PastAnswer::Compacted),
            reads(|a| *a == PastAnswer::Failed),
            compactions(CompactAnswer::Done),
            compactions(CompactAnswer::AlreadyCompacted),
            compactions(CompactAnswer::Unknown),
        )
    }
}

/// A write of a key the KV history shows.
#[derive(Debug, Clone)]
struct Write {
    /// When it was sent.
    invoke: u64,
    /// Its revision, when acknowledged.
    revision: Option<u64>,
    /// The value put; `None` for a delete.
    value: Option<String>,
}

/// Every write per key from the KV history: acknowledged ones with their revisions, and those
/// with no answer (they may have taken effect at some unknown revision). Failed writes, deletes
/// that deleted nothing and compare-and-swaps whose compare failed wrote nothing.
fn writes(ops: &[KvOp]) -> BTreeMap<&str, Vec<Write>> {
    let mut w: BTreeMap<&str, Vec<Write>> = BTreeMap::new();
    for op in ops {
        let (acked, revision) = match &op.outcome {
            Outcome::Ok(KvOutput::Put { revision }) => (true, *revision),
            Outcome::Ok(KvOutput::Delete { deleted, revision }) => {
                (deleted.unwrap_or(1) > 0, *revision)
            }
            Outcome::Ok(KvOutput::Txn {
                succeeded,
                revision,
                ..
            }) => (*succeeded, *revision),
            Outcome::Info => (true, None),
            _ => (false, None),
        };
        if !acked {
            continue;
        }
        match &op.input {
            KvInput::Put { key, value } => w.entry(key).or_default().push(Write {
                invoke: op.invoke,
                revision,
                value: Some(value.clone()),
            }),
            KvInput::Delete { key } => w.entry(key).or_default().push(Write {
                invoke: op.invoke,
                revision,
                value: None,
            }),
            KvInput::Txn { success, .. } => {
                for t in success {
                    let (key, value) = match t {
                        TxnOp::Put { key, value } => (key, Some(value.clone())),
                        TxnOp::Delete { key } => (key, None),
                        TxnOp::Get { .. } => continue,
                    };
                    w.entry(key).or_default().push(Write {
                        invoke: op.invoke,
                        revision,
                        value,
                    });
                }
            }
            _ => {}
        }
    }
    w
}

/// Judges the reads of the past and the compactions in `log` against the KV history `ops`;
/// with `auto_compaction`, members also compact on their own, so a `compacted` answer needs no
/// client's compaction. Returns the violations.
pub fn check(ops: &[KvOp], log: &PastLog, auto_compaction: bool) -> Vec<String> {
    let mut problems = log.problems.clone();
    let writes = writes(ops);
    let none = Vec::new();
    let mut agreed: BTreeMap<(&str, u64), &PastRead> = BTreeMap::new();
    for r in log.reads.iter().filter(|r| r.answer != PastAnswer::Failed) {
        let w = writes.get(r.key.as_str()).unwrap_or(&none);
        let what = format!(
            "read of {} at revision {} by client {}",
            r.key, r.at, r.process
        );
        if r.answer == PastAnswer::Compacted {
            let asked = log
                .compactions
                .iter()
                .any(|c| c.revision > r.at && c.invoke < r.complete);
            if !asked && !auto_compaction {
                problems.push(format!(
                    "{what} answered compacted, but nobody compacted above {}",
                    r.at
                ));
            }
            continue;
        }
        if let Some(c) = log
            .compactions
            .iter()
            .find(|c| c.answer == CompactAnswer::Done && c.revision > r.at && c.complete < r.invoke)
        {
            problems.push(format!(
                "{what} succeeded ({:?}) after the compaction to {} was acknowledged",
                r.answer, c.revision
            ));
        }
        match agreed.get(&(r.key.as_str(), r.at)) {
            Some(other) if other.answer != r.answer => problems.push(format!(
                "{what} answered {:?}, but client {}'s read at the same revision answered {:?}",
                r.answer, other.process, other.answer
            )),
            Some(_) => {}
            None => {
                agreed.insert((r.key.as_str(), r.at), r);
            }
        }
        match &r.answer {
            PastAnswer::Found {
                value,
                mod_revision: m,
            } => {
                if *m > r.at {
                    problems.push(format!("{what} found a value written later, at {m}"));
                }
                match w.iter().find(|x| x.revision == Some(*m)) {
                    Some(x) if x.value.as_ref() != Some(value) => problems.push(format!(
                        "{what} found {value:?} from revision {m}, which wrote {:?}",
                        x.value
                    )),
                    Some(_) => {}
                    None if !w.iter().any(|x| x.value.as_ref() == Some(value)) => {
                        problems.push(format!("{what} found {value:?}, which no client wrote"))
                    }
                    None => {}
                }
                if let Some(x) = w
                    .iter()
                    .find(|x| x.revision.is_some_and(|rev| *m < rev && rev <= r.at))
                {
                    problems.push(format!(
                        "{what} found {value:?} from revision {m}, missing the acknowledged \
                         write {:?} at {}",
                        x.value,
                        x.revision.unwrap_or(0)
                    ));
                }
            }
            PastAnswer::Absent => {
                // The newest acknowledged put at or before `at` needs a delete after it.
                let put = w
                    .iter()
                    .filter(|x| x.value.is_some())
                    .filter_map(|x| x.revision.filter(|rev| *rev <= r.at))
                    .max();
                if let Some(p) = put {
                    // A delete with no answer counts only if sent before the read ended.
                    let deleted = w.iter().any(|x| {
                        x.value.is_none()
                            && match x.revision {
                                Some(d) => p < d && d <= r.at,
                                None => x.invoke < r.complete,
                            }
                    });
                    if !deleted {
                        problems.push(format!(
                            "{what} found no key, but a put acknowledged at {p} set it and no \
                             delete followed"
                        ));
                    }
                }
            }
            PastAnswer::Compacted | PastAnswer::Failed => {}
        }
    }
    for c in &log.compactions {
        if c.answer != CompactAnswer::AlreadyCompacted || auto_compaction {
            continue;
        }
        let other = log.compactions.iter().any(|o| {
            o.answer != CompactAnswer::AlreadyCompacted
                && o.revision >= c.revision
                && o.invoke < c.complete
        });
        if !other {
            problems.push(format!(
                "the compaction to {} answered compacted, but nobody compacted that far",
                c.revision
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::register::acked::{delete, put};

    fn read(key: &str, at: u64, invoke: u64, answer: PastAnswer) -> PastRead {
        PastRead {
            process: 1,
            invoke,
            complete: invoke + 1,
            key: key.into(),
            at,
            answer,
        }
    }

    fn found(value: &str, mod_revision: u64) -> PastAnswer {
        PastAnswer::Found {
            value: value.into(),
            mod_revision,
        }
    }

    fn compaction(revision: u64, complete: u64, answer: CompactAnswer) -> Compaction {
        Compaction {
            invoke: complete - 1,
            complete,
            revision,
            answer,
        }
    }

    #[test]
    fn reads_that_match_the_history_pass() {
        let ops = vec![put("x", "a", 2), put("x", "b", 4), delete("x", 6)];
        let log = PastLog {
            reads: vec![
                read("x", 1, 10, PastAnswer::Absent),
                read("x", 3, 10, found("a", 2)),
                read("x", 5, 10, found("b", 4)),
                read("x", 5, 30, found("b", 4)),
                read("x", 7, 10, PastAnswer::Absent),
                // Compacted to 5: reading at 5 still sees the put at 4.
                read("x", 4, 30, PastAnswer::Compacted),
            ],
            compactions: vec![compaction(5, 20, CompactAnswer::Done)],
            problems: Vec::new(),
        };
        assert_eq!(check(&ops, &log, false), Vec::<String>::new());
    }

    #[test]
    fn wrong_reads_of_the_past_are_found() {
        let ops = vec![put("x", "a", 2), put("x", "b", 4)];
        let cases = [
            (
                read("x", 5, 10, found("a", 2)),
                "missing the acknowledged write",
            ),
            (read("x", 5, 10, found("c", 4)), "which wrote"),
            (read("x", 3, 10, found("b", 4)), "written later"),
            (read("x", 3, 10, PastAnswer::Absent), "no delete followed"),
            (read("x", 3, 10, PastAnswer::Compacted), "nobody compacted"),
            (read("x", 3, 30, found("a", 2)), "after the compaction"),
        ];
        for (r, why) in cases {
            let log = PastLog {
                reads: vec![r.clone()],
                compactions: vec![compaction(4, 20, CompactAnswer::Done)],
                problems: Vec::new(),
            };
            let found = check(&ops, &log, false);
            assert!(
                found.iter().any(|p| p.contains(why)),
                "{r:?}: expected {why:?} in {found:?}"
            );
        }
        // Two reads of one revision disagree.
        let log = PastLog {
            reads: vec![
                read("x", 5, 10, found("b", 4)),
                read("x", 5, 12, PastAnswer::Absent),
            ],
            ..Default::default()
        };
        assert!(check(&ops, &log, false)
            .iter()
            .any(|p| p.contains("same revision")));
        // A refused compaction needs one that went as far.
        let log = PastLog {
            compactions: vec![compaction(3, 20, CompactAnswer::AlreadyCompacted)],
            ..Default::default()
        };
        assert_eq!(check(&ops, &log, false).len(), 1);
        assert!(check(&ops, &log, true).is_empty());
    }
}
