//! Parsers for the Jepsen histories shipped with porcupine (see
//! `shared/jepsen/porcupine-data/README.md`): the etcd register logs and the
//! EDN key/value logs. Both are in real-time order without timestamps, so
//! an event's time is its line position.

use crate::history::{Event, History, HistoryError, Outcome};
use crate::kv::{KvInput, KvOutput};
use crate::register::{RegisterInput, RegisterOutput};
use std::collections::HashMap;

fn perr(line: usize, message: impl Into<String>) -> HistoryError {
    HistoryError::Parse {
        line,
        message: message.into(),
    }
}

fn parse_reg_value(line: usize, s: &str) -> Result<Option<i64>, HistoryError> {
    if s == "nil" {
        Ok(None)
    } else {
        s.parse::<i64>()
            .map(Some)
            .map_err(|_| perr(line, format!("bad register value {s:?}")))
    }
}

fn parse_pair(line: usize, s: &str) -> Result<(i64, i64), HistoryError> {
    let inner = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| perr(line, format!("expected [A B], got {s:?}")))?;
    let mut it = inner.split_whitespace();
    let a = it
        .next()
        .ok_or_else(|| perr(line, "missing cas old value"))?;
    let b = it
        .next()
        .ok_or_else(|| perr(line, "missing cas new value"))?;
    let a = a
        .parse()
        .map_err(|_| perr(line, format!("bad number {a:?}")))?;
    let b = b
        .parse()
        .map_err(|_| perr(line, format!("bad number {b:?}")))?;
    Ok((a, b))
}

/// Parses a Jepsen etcd register log (`INFO  jepsen.util - <process>
/// <type> <f> <value>` lines, tabs or spaces).
///
/// * `:fail :cas` is what Jepsen's etcd register client records when the
///   compare did not match: the operation completed and wrote nothing
///   because the value differed. It becomes a completed CAS with
///   `succeeded: false`, which requires the register to differ from the
///   expected old value at its linearization point.
/// * Any other `:fail` (in these logs only `:fail :read :timed-out`) means
///   the operation did not take effect; it is dropped.
/// * `:info` means unknown; an invocation that never completes is also
///   unknown.
pub fn parse_etcd_log(text: &str) -> Result<History<RegisterInput, RegisterOutput>, HistoryError> {
    let mut events = Vec::new();
    let mut open: HashMap<u64, RegisterInput> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let Some(pos) = raw.find("jepsen.util - ") else {
            if raw.trim().is_empty() {
                continue;
            }
            return Err(perr(line, "expected `jepsen.util - ` prefix"));
        };
        let rest = &raw[pos + "jepsen.util - ".len()..];
        let mut it = rest.split_whitespace();
        let process: u64 = it
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| perr(line, "bad process"))?;
        let kind = it.next().ok_or_else(|| perr(line, "missing type"))?;
        let f = it.next().ok_or_else(|| perr(line, "missing function"))?;
        let value: String = it.collect::<Vec<_>>().join(" ");
        match kind {
            ":invoke" => {
                let input = match f {
                    ":read" => RegisterInput::Read,
                    ":write" => RegisterInput::Write {
                        value: parse_reg_value(line, &value)?
                            .ok_or_else(|| perr(line, "write of nil"))?,
                    },
                    ":cas" => {
                        let (from, to) = parse_pair(line, &value)?;
                        RegisterInput::Cas { from, to }
                    }
                    other => return Err(perr(line, format!("unknown function {other}"))),
                };
                open.insert(process, input.clone());
                events.push(Event::Invoke { process, input });
            }
            ":ok" => {
                let input = open
                    .remove(&process)
                    .ok_or_else(|| perr(line, "completion without invoke"))?;
                let output = match input {
                    RegisterInput::Read => RegisterOutput::Read {
                        value: parse_reg_value(line, &value)?,
                    },
                    RegisterInput::Write { .. } => RegisterOutput::Write,
                    RegisterInput::Cas { .. } => RegisterOutput::Cas { succeeded: true },
                };
                events.push(Event::Complete {
                    process,
                    outcome: Outcome::Ok(output),
                });
            }
            ":fail" | ":info" => {
                let input = open
                    .remove(&process)
                    .ok_or_else(|| perr(line, "completion without invoke"))?;
                let outcome = match (kind, input) {
                    (":fail", RegisterInput::Cas { .. }) => {
                        Outcome::Ok(RegisterOutput::Cas { succeeded: false })
                    }
                    (":fail", _) => Outcome::Fail,
                    _ => Outcome::Info,
                };
                events.push(Event::Complete { process, outcome });
            }
            other => return Err(perr(line, format!("unknown type {other}"))),
        }
    }
    History::from_events(events)
}

/// A parsed EDN scalar from a kv log line.
#[derive(Debug, Clone, PartialEq)]
enum Edn {
    Nil,
    Int(i64),
    Keyword(String),
    Str(String),
}

fn parse_edn_map(line: usize, s: &str) -> Result<HashMap<String, Edn>, HistoryError> {
    let s = s.trim();
    let inner = s
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(|| perr(line, "expected an EDN map {...}"))?;
    let chars: Vec<char> = inner.chars().collect();
    let mut i = 0;
    let mut tokens: Vec<Edn> = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() || c == ',' {
            i += 1;
        } else if c == '"' {
            let mut out = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(perr(line, "unterminated string")),
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some('\\') => {
                        let e = chars.get(i + 1).ok_or_else(|| perr(line, "bad escape"))?;
                        out.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            other => *other,
                        });
                        i += 2;
                    }
                    Some(&ch) => {
                        out.push(ch);
                        i += 1;
                    }
                }
            }
            tokens.push(Edn::Str(out));
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && chars[i] != ',' {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            tokens.push(if word == "nil" {
                Edn::Nil
            } else if let Some(k) = word.strip_prefix(':') {
                Edn::Keyword(k.to_string())
            } else if let Ok(n) = word.parse() {
                Edn::Int(n)
            } else {
                return Err(perr(line, format!("cannot parse EDN token {word:?}")));
            });
        }
    }
    if tokens.len() % 2 != 0 {
        return Err(perr(line, "odd number of map entries"));
    }
    let mut map = HashMap::new();
    for pair in tokens.chunks(2) {
        let Edn::Keyword(k) = &pair[0] else {
            return Err(perr(line, "map keys must be keywords"));
        };
        map.insert(k.clone(), pair[1].clone());
    }
    Ok(map)
}

/// Parses porcupine's EDN key/value logs (`{:process 0, :type :invoke, :f
/// :append, :key "4", :value "x 0 1 y"}`). Keys start out as the empty
/// string; a `get` that returns `""` is recorded as "absent", and the
/// model should be [`crate::kv::KvModel::empty_is_absent`].
pub fn parse_kv_log(text: &str) -> Result<History<KvInput, KvOutput>, HistoryError> {
    let mut events = Vec::new();
    let mut open: HashMap<u64, KvInput> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let m = parse_edn_map(line, raw)?;
        let process = match m.get("process") {
            Some(Edn::Int(p)) if *p >= 0 => *p as u64,
            _ => return Err(perr(line, "missing or bad :process")),
        };
        let kw = |name: &str| match m.get(name) {
            Some(Edn::Keyword(k)) => Ok(k.clone()),
            _ => Err(perr(line, format!("missing keyword :{name}"))),
        };
        let kind = kw("type")?;
        let f = kw("f")?;
        let key = match m.get("key") {
            Some(Edn::Str(s)) => s.clone(),
            Some(Edn::Int(n)) => n.to_string(),
            _ => return Err(perr(line, "missing :key")),
        };
        let value = match m.get("value") {
            Some(Edn::Str(s)) => Some(s.clone()),
            Some(Edn::Int(n)) => Some(n.to_string()),
            Some(Edn::Nil) | None => None,
            Some(other) => return Err(perr(line, format!("bad :value {other:?}"))),
        };
        match kind.as_str() {
            "invoke" => {
                let input = match f.as_str() {
                    "get" => KvInput::Get { key },
                    "put" => KvInput::Put {
                        key,
                        value: value.ok_or_else(|| perr(line, "put without value"))?,
                    },
                    "append" => KvInput::Append {
                        key,
                        value: value.ok_or_else(|| perr(line, "append without value"))?,
                    },
                    other => return Err(perr(line, format!("unknown function {other}"))),
                };
                open.insert(process, input.clone());
                events.push(Event::Invoke { process, input });
            }
            "ok" => {
                let input = open
                    .remove(&process)
                    .ok_or_else(|| perr(line, "completion without invoke"))?;
                let output = match input {
                    KvInput::Get { .. } => KvOutput::Get {
                        value: value.filter(|v| !v.is_empty()),
                        mod_revision: None,
                        revision: None,
                    },
                    KvInput::Put { .. } => KvOutput::Put { revision: None },
                    KvInput::Append { .. } => KvOutput::Append { revision: None },
                    _ => unreachable!("only get/put/append are parsed"),
                };
                events.push(Event::Complete {
                    process,
                    outcome: Outcome::Ok(output),
                });
            }
            "fail" | "info" => {
                open.remove(&process)
                    .ok_or_else(|| perr(line, "completion without invoke"))?;
                events.push(Event::Complete {
                    process,
                    outcome: if kind == "fail" {
                        Outcome::Fail
                    } else {
                        Outcome::Info
                    },
                });
            }
            other => return Err(perr(line, format!("unknown type {other}"))),
        }
    }
    History::from_events(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{check, RegisterModel, Verdict};

    fn log(lines: &[&str]) -> String {
        lines
            .iter()
            .map(|l| format!("INFO  jepsen.util - {l}\n"))
            .collect()
    }

    #[test]
    fn a_failed_cas_is_a_completed_compare_that_did_not_match() {
        // The register holds 1 and nothing else runs: a cas 1->2 cannot
        // find a different value, so `:fail` (compare failed) is a violation.
        let bad = log(&[
            "0\t:invoke\t:write\t1",
            "0\t:ok\t:write\t1",
            "1\t:invoke\t:cas\t[1 2]",
            "1\t:fail\t:cas\t[1 2]",
        ]);
        let h = parse_etcd_log(&bad).expect("parses");
        assert_eq!(
            h.ops[1].outcome,
            Outcome::Ok(RegisterOutput::Cas { succeeded: false })
        );
        let r = check(&RegisterModel, &h, None);
        assert_eq!(r.verdict, Verdict::NotLinearizable);
        let text = r.explanation.expect("explanation").summary();
        assert!(text.contains("failed compare against 1"), "{text}");
        // With a different value in the register the failed compare is fine.
        let ok = log(&[
            "0\t:invoke\t:write\t3",
            "0\t:ok\t:write\t3",
            "1\t:invoke\t:cas\t[1 2]",
            "1\t:fail\t:cas\t[1 2]",
            "1\t:invoke\t:read\tnil",
            "1\t:ok\t:read\t3",
        ]);
        let h = parse_etcd_log(&ok).expect("parses");
        assert_eq!(
            check(&RegisterModel, &h, None).verdict,
            Verdict::Linearizable
        );
        // A failed (timed-out) read did not happen and constrains nothing.
        let read = log(&[
            "0\t:invoke\t:write\t1",
            "0\t:ok\t:write\t1",
            "1\t:invoke\t:read\tnil",
            "1\t:fail\t:read\t:timed-out",
        ]);
        let h = parse_etcd_log(&read).expect("parses");
        assert_eq!(h.ops[1].outcome, Outcome::Fail);
    }
}
