//! The verdict on an auth run, a pure function of what the clients recorded and what the
//! cluster holds at the end.
//!
//! Times are simulated nanoseconds since the clients started. An operation's effect happens at
//! some point of its interval: between its invoke and its acknowledgement, or any time after its
//! invoke if it was never acknowledged (a timed-out request may still be in flight and apply
//! later). Only a refusal the cluster judged (permission denied, old auth revision, invalid
//! token, ...) says an operation had no effect at all.

use std::collections::BTreeSet;

/// What an admin change did to the auth store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Revoked the role's permission on the writers' prefix.
    Revoke,
    /// Granted it again.
    Grant,
    /// Set the writers' user's password to this generation's.
    Password(u64),
}

/// One admin change: its interval and outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What it changes.
    pub kind: ChangeKind,
    /// When it was sent.
    pub invoke: u64,
    /// When it was acknowledged as done; `None` if it was not.
    pub ack: Option<u64>,
    /// Refused by the cluster: it certainly had no effect.
    pub refused: bool,
}

impl Change {
    /// Whether this change may have taken effect after time `after` and before time `before`.
    fn may_apply_between(&self, after: u64, before: u64) -> bool {
        !self.refused && self.invoke < before && self.ack.is_none_or(|a| a > after)
    }
}

/// How a writer's put ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// Acknowledged: the key was written.
    Ok,
    /// Refused by the cluster for auth's sake (denied, old revision, invalid token): nothing
    /// was written.
    Refused(String),
    /// No answer, or one that does not say whether it was written.
    Unknown(String),
}

/// One writer's put of a unique key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOp {
    /// The key (written once, by this put only).
    pub key: String,
    /// When it was sent.
    pub invoke: u64,
    /// When its answer (or timeout) came.
    pub complete: u64,
    /// How it ended.
    pub outcome: PutOutcome,
}

/// One authentication of the writers' user with a password generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthOp {
    /// The password generation tried.
    pub generation: u64,
    /// When it was sent.
    pub invoke: u64,
    /// When its answer (or timeout) came.
    pub complete: u64,
    /// `Some(true)`: a token; `Some(false)`: authentication failed; `None`: unknown.
    pub ok: Option<bool>,
}

/// Everything a run recorded, and the keys the converged cluster holds under the prefix.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// The admin's changes, in order (the admin waits for each before the next).
    pub changes: Vec<Change>,
    /// Every put.
    pub puts: Vec<PutOp>,
    /// Every authentication of the writers' user.
    pub auths: Vec<AuthOp>,
    /// The keys every member holds at the end.
    pub keys: BTreeSet<String>,
}

/// The acknowledged revocation that forbids put `p`, if one does: acknowledged before `p` was
/// sent, with no grant that may have taken effect between the two.
pub fn forbidding<'h>(h: &'h History, p: &PutOp) -> Option<&'h Change> {
    h.changes.iter().find(|r| {
        r.kind == ChangeKind::Revoke
            && r.ack.is_some_and(|a| a < p.invoke)
            && !h
                .changes
                .iter()
                .any(|g| g.kind == ChangeKind::Grant && g.may_apply_between(r.invoke, p.complete))
    })
}

/// Every violation in `h`; empty if it passes.
///
/// - No put succeeds whose whole interval lies after a revocation was acknowledged unless a
///   grant may have taken effect between that revocation and the put.
/// - No authentication with an old password succeeds after a change to a newer one was
///   acknowledged, unless a change back to it may have taken effect in between.
/// - The store holds every acknowledged put's key, no refused put's key, and no key no put
///   wrote.
pub fn judge(h: &History) -> Vec<String> {
    let mut problems = Vec::new();
    for p in h.puts.iter().filter(|p| p.outcome == PutOutcome::Ok) {
        if let Some(r) = forbidding(h, p) {
            problems.push(format!(
                "put {} [{}, {}] succeeded after the revocation [{}, {}] with no grant since",
                p.key,
                p.invoke,
                p.complete,
                r.invoke,
                r.ack.unwrap_or_default()
            ));
        }
    }
    for a in h.auths.iter().filter(|a| a.ok == Some(true)) {
        for c in &h.changes {
            let ChangeKind::Password(newer) = c.kind else {
                continue;
            };
            let Some(changed) = c.ack.filter(|&t| t < a.invoke) else {
                continue;
            };
            if newer == a.generation {
                continue;
            }
            let back = h.changes.iter().any(|d| {
                d.kind == ChangeKind::Password(a.generation)
                    && d.may_apply_between(c.invoke, a.complete)
            });
            if !back {
                problems.push(format!(
                    "authentication with password {} [{}, {}] succeeded after the change to \
                     password {newer} [{}, {changed}]",
                    a.generation, a.invoke, a.complete, c.invoke
                ));
                break;
            }
        }
    }
    let mut written = BTreeSet::new();
    for p in &h.puts {
        written.insert(p.key.as_str());
        let present = h.keys.contains(&p.key);
        match &p.outcome {
            PutOutcome::Ok if !present => {
                problems.push(format!("acknowledged put {} is missing", p.key))
            }
            PutOutcome::Refused(why) if present => problems.push(format!(
                "put {} was refused ({why}) but its key is there",
                p.key
            )),
            _ => {}
        }
    }
    for k in h.keys.iter().filter(|k| !written.contains(k.as_str())) {
        problems.push(format!("key {k} was written by no put"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(kind: ChangeKind, invoke: u64, ack: Option<u64>) -> Change {
        Change {
            kind,
            invoke,
            ack,
            refused: false,
        }
    }

    fn put(key: &str, invoke: u64, complete: u64, outcome: PutOutcome) -> PutOp {
        PutOp {
            key: key.to_string(),
            invoke,
            complete,
            outcome,
        }
    }

    fn history(changes: Vec<Change>, puts: Vec<PutOp>) -> History {
        let keys = puts
            .iter()
            .filter(|p| p.outcome == PutOutcome::Ok)
            .map(|p| p.key.clone())
            .collect();
        History {
            changes,
            puts,
            auths: Vec::new(),
            keys,
        }
    }

    #[test]
    fn a_put_inside_a_revoked_window_is_a_violation() {
        let h = history(
            vec![
                change(ChangeKind::Revoke, 10, Some(20)),
                change(ChangeKind::Grant, 50, Some(60)),
            ],
            vec![put("p/a", 25, 30, PutOutcome::Ok)],
        );
        let problems = judge(&h);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("p/a"));
    }

    #[test]
    fn puts_that_may_follow_a_grant_or_precede_the_revocation_pass() {
        let h = history(
            vec![
                change(ChangeKind::Revoke, 10, Some(20)),
                change(ChangeKind::Grant, 50, Some(60)),
                change(ChangeKind::Revoke, 70, None),
                change(ChangeKind::Grant, 90, None),
            ],
            vec![
                // Overlaps the revocation: may have applied before it.
                put("p/a", 5, 15, PutOutcome::Ok),
                // Completes after the grant was sent: may have applied after it.
                put("p/b", 25, 55, PutOutcome::Ok),
                // After the grant was acknowledged.
                put("p/c", 65, 68, PutOutcome::Ok),
                // The second revocation was never acknowledged.
                put("p/d", 80, 85, PutOutcome::Ok),
                put("p/e", 30, 40, PutOutcome::Refused("denied".into())),
            ],
        );
        assert_eq!(judge(&h), Vec::<String>::new());
    }

    #[test]
    fn an_unacknowledged_grant_may_apply_late_but_a_refused_one_never() {
        let mut h = history(
            vec![
                change(ChangeKind::Grant, 0, None),
                change(ChangeKind::Revoke, 10, Some(20)),
            ],
            vec![put("p/a", 25, 30, PutOutcome::Ok)],
        );
        assert!(judge(&h).is_empty());
        h.changes[0].refused = true;
        assert_eq!(judge(&h).len(), 1);
    }

    #[test]
    fn an_old_password_after_an_acknowledged_change_is_a_violation() {
        let mut h = history(
            vec![change(ChangeKind::Password(1), 10, Some(20))],
            Vec::new(),
        );
        let auth = |generation, invoke, ok| AuthOp {
            generation,
            invoke,
            complete: invoke + 5,
            ok: Some(ok),
        };
        h.auths = vec![auth(0, 5, true), auth(0, 25, false), auth(1, 25, true)];
        assert!(judge(&h).is_empty());
        h.auths.push(auth(0, 30, true));
        let problems = judge(&h);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("password 0"));
    }

    #[test]
    fn the_store_must_match_the_acknowledged_and_refused_puts() {
        let mut h = history(
            Vec::new(),
            vec![
                put("p/a", 1, 2, PutOutcome::Ok),
                put("p/b", 3, 4, PutOutcome::Refused("denied".into())),
                put("p/c", 5, 6, PutOutcome::Unknown("timeout".into())),
            ],
        );
        assert!(judge(&h).is_empty());
        h.keys = ["p/b", "p/c", "p/z"].map(String::from).into();
        let problems = judge(&h);
        assert_eq!(problems.len(), 3, "{problems:?}");
    }
}
