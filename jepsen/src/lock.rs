//! Lock safety: mutual exclusion of lock holders, judged with fencing
//! tokens.
//!
//! With etcd's lock service a holder owns a key whose creation revision is
//! its **fencing token**; holders are served in token order. A lease can
//! expire without the holder noticing, so "two clients believed they held
//! the lock" is not by itself a bug; what must hold is:
//!
//! * **unique tokens**: no two acquisitions get the same token;
//! * **token order**: an acquisition that completed before another was
//!   invoked has the smaller token;
//! * **mutual exclusion**, where the history proves how long a holder's
//!   key existed: no holder with a larger token than `A` completed its
//!   acquisition before a time at which `A`'s lock key is known to have
//!   still existed. The key existed continuously from its creation until:
//!   - the invoke of `A`'s unlock, when that unlock deleted the key
//!     ([`Release::still_held`]);
//!   - [`LockHold::key_seen_at`], the invoke time of a later operation
//!     that observed the key still existing (for example a get at the end
//!     of the test, for a holder that never released).
//!
//!   A holder with neither (it never released, its unlock timed out or is
//!   unknown, or its key was already gone at unlock) is **not** checked for
//!   overlap: its lease may have expired at any moment, which freed the
//!   lock legitimately, and the history does not say when. Such holders
//!   are still covered by token uniqueness, token order and fencing;
//! * **fencing**: the guarded resource never accepts an access with an
//!   older token after it completed an access with a newer token (an
//!   access of `A` that starts after an access of `B` ended, with
//!   `A.token < B.token`, is a stale holder getting through);
//! * accesses happen only after the holder invoked its acquisition.

use crate::checker::Verdict;
use crate::report::Section;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A successful release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// When the unlock was sent.
    pub invoke: u64,
    /// When it returned.
    pub complete: u64,
    /// True when the unlock deleted the holder's lock key (the key still
    /// existed, so the holder still held the lock until then); false when
    /// the key was already gone (lease expired).
    pub still_held: bool,
}

/// An access to the guarded resource accepted under a token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// When the access was sent.
    pub start: u64,
    /// When it was acknowledged.
    pub end: u64,
}

/// One acquisition of the lock and what the holder did with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHold {
    /// The client.
    pub process: u64,
    /// The fencing token: the lock key's creation revision.
    pub token: u64,
    /// When the lock request was sent.
    pub acquire_invoke: u64,
    /// When the lock was granted.
    pub acquire_complete: u64,
    /// The release, if it completed successfully.
    #[serde(default)]
    pub release: Option<Release>,
    /// Accesses accepted by the guarded resource under this token.
    #[serde(default)]
    pub accesses: Vec<Access>,
    /// Evidence that the lock key still existed: the invoke time of an
    /// operation, invoked after the acquisition completed, that observed
    /// the key (for example a get of it, or a keep-alive of its lease
    /// answered with a TTL > 0 before any unlock was sent). Record it for
    /// holders that never released or whose unlock outcome is unknown;
    /// without it their overlap with later holders is not checked. A value
    /// before `acquire_complete` proves nothing and is ignored.
    #[serde(default)]
    pub key_seen_at: Option<u64>,
}

impl LockHold {
    /// A time until which this holder's lock key provably existed (see
    /// the module docs), if the history proves one.
    pub fn key_existed_until(&self) -> Option<u64> {
        let released = self
            .release
            .as_ref()
            .filter(|r| r.still_held)
            .map(|r| r.invoke);
        let seen = self.key_seen_at.filter(|&t| t >= self.acquire_complete);
        released.max(seen)
    }
}

/// All acquisitions of one lock.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHistory {
    /// The holds, in any order.
    pub holds: Vec<LockHold>,
}

impl LockHistory {
    /// Checks that every recorded interval is well formed: acquisitions,
    /// releases and accesses end no earlier than they start, and an unlock
    /// is sent only after the acquisition completed.
    pub fn validate(&self) -> Result<(), String> {
        for (i, h) in self.holds.iter().enumerate() {
            let bad = |what: &str, a: u64, b: u64| {
                Err(format!(
                    "malformed history: hold {i} (process {}): {what} ends at {b} before it starts at {a}",
                    h.process
                ))
            };
            if h.acquire_complete < h.acquire_invoke {
                return bad("acquisition", h.acquire_invoke, h.acquire_complete);
            }
            if let Some(r) = &h.release {
                if r.complete < r.invoke {
                    return bad("release", r.invoke, r.complete);
                }
                if r.invoke < h.acquire_complete {
                    return Err(format!(
                        "malformed history: hold {i} (process {}): unlock sent at {} before the lock was granted at {}",
                        h.process, r.invoke, h.acquire_complete
                    ));
                }
            }
            for x in &h.accesses {
                if x.end < x.start {
                    return bad("an access", x.start, x.end);
                }
            }
        }
        Ok(())
    }
}

/// A broken lock guarantee. Holds are named by their index in
/// [`LockHistory::holds`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LockViolation {
    /// Two holds got the same token.
    DuplicateToken {
        /// First hold.
        a: usize,
        /// Second hold.
        b: usize,
        /// The token.
        token: u64,
    },
    /// `earlier` was granted before `later` asked, yet has the larger token.
    TokenOrder {
        /// Hold granted first.
        earlier: usize,
        /// Hold requested afterwards.
        later: usize,
    },
    /// `later` acquired while `holder` still held its lock key.
    Overlap {
        /// The hold that still held the key.
        holder: usize,
        /// The hold that acquired meanwhile.
        later: usize,
    },
    /// The resource accepted `stale`'s access after `newer`'s completed.
    StaleAccess {
        /// The older-token hold.
        stale: usize,
        /// The newer-token hold.
        newer: usize,
    },
    /// An access started before its holder even requested the lock.
    AccessOutsideHold {
        /// The hold.
        hold: usize,
    },
}

impl fmt::Display for LockViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockViolation::DuplicateToken { a, b, token } => {
                write!(f, "[unique token] holds {a} and {b} both got token {token}")
            }
            LockViolation::TokenOrder { earlier, later } => write!(
                f,
                "[token order] hold {earlier} was granted before hold {later} asked, but has the larger token"
            ),
            LockViolation::Overlap { holder, later } => write!(
                f,
                "[mutual exclusion] hold {later} acquired while hold {holder} still held its lock key"
            ),
            LockViolation::StaleAccess { stale, newer } => write!(
                f,
                "[fencing] the resource accepted hold {stale}'s older token after hold {newer}'s newer one"
            ),
            LockViolation::AccessOutsideHold { hold } => {
                write!(f, "[mutual exclusion] hold {hold} accessed the resource before requesting the lock")
            }
        }
    }
}

/// The result of [`check_locks`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LockReport {
    /// Holds checked.
    pub holds: usize,
    /// Everything that went wrong (empty = safe).
    pub violations: Vec<LockViolation>,
}

impl LockReport {
    /// True when no guarantee was broken.
    pub fn is_valid(&self) -> bool {
        self.violations.is_empty()
    }

    /// A report section (verdict plus one line per violation).
    pub fn to_section(&self, title: impl Into<String>) -> Section {
        let mut text = format!("{} lock holds", self.holds);
        for v in &self.violations {
            text.push('\n');
            text.push_str(&v.to_string());
        }
        Section {
            title: title.into(),
            verdict: if self.is_valid() {
                Verdict::Linearizable
            } else {
                Verdict::NotLinearizable
            },
            text,
            html: String::new(),
        }
    }
}

/// Checks lock safety (see the module docs).
pub fn check_locks(h: &LockHistory) -> LockReport {
    let holds = &h.holds;
    let mut v = Vec::new();
    for (i, a) in holds.iter().enumerate() {
        if a.accesses.iter().any(|x| x.start < a.acquire_invoke) {
            v.push(LockViolation::AccessOutsideHold { hold: i });
        }
        for (j, b) in holds.iter().enumerate() {
            if i == j {
                continue;
            }
            if i < j && a.token == b.token {
                v.push(LockViolation::DuplicateToken {
                    a: i,
                    b: j,
                    token: a.token,
                });
                continue;
            }
            if a.acquire_complete < b.acquire_invoke && a.token > b.token {
                v.push(LockViolation::TokenOrder {
                    earlier: i,
                    later: j,
                });
            }
            if a.token < b.token {
                if a.key_existed_until()
                    .is_some_and(|t| b.acquire_complete < t)
                {
                    v.push(LockViolation::Overlap {
                        holder: i,
                        later: j,
                    });
                }
                let stale = a
                    .accesses
                    .iter()
                    .any(|x| b.accesses.iter().any(|y| x.start > y.end));
                if stale {
                    v.push(LockViolation::StaleAccess { stale: i, newer: j });
                }
            }
        }
    }
    LockReport {
        holds: holds.len(),
        violations: v,
    }
}
