//! The lease checks: no lease gone while a renewal still protects it, and how many reads the
//! check actually constrained.

use super::{LeaseLog, Logs, Ms, Read, Renewal, MAX_RATE_PPM};

/// The latest instant a renewal protects its lease until: `sent + ttl / (1 + ρ)`, in ms.
pub(super) fn protected_until(r: &Renewal) -> Ms {
    r.sent + (r.ttl as u64 * 1_000 * 1_000_000) / (1_000_000 + MAX_RATE_PPM as u64)
}

/// When a lease's key was first known to exist: its put was acknowledged, or a read saw it.
fn known_from(l: &LeaseLog, reads: &[Read]) -> Option<Ms> {
    let seen = reads
        .iter()
        .filter(|r| r.keys.contains(&l.key))
        .map(|r| r.completed)
        .min();
    l.put_acked.into_iter().chain(seen).min()
}

/// The safety check (see the module docs), and its twin on keep-alives: one answered "gone"
/// (TTL 0) before an earlier renewal's protection ended means the lease was revoked early.
pub(super) fn check(logs: &Logs) -> Vec<String> {
    let mut problems = Vec::new();
    for l in &logs.leases {
        if let Some(gone) = l.seen_gone {
            if let Some(r) = l.renewals.iter().find(|r| gone < protected_until(r)) {
                problems.push(format!(
                    "[lease] a keep-alive of lease {:x} answered at {gone} ms that it was gone, \
                     but a renewal sent at {} ms with TTL {} s protects it until {} ms",
                    l.id,
                    r.sent,
                    r.ttl,
                    protected_until(r)
                ));
            }
        }
    }
    for l in &logs.leases {
        let Some(known) = known_from(l, &logs.reads) else {
            continue;
        };
        for read in logs.reads.iter().filter(|r| r.invoked >= known) {
            if read.keys.contains(&l.key) {
                continue;
            }
            if let Some(r) = l
                .renewals
                .iter()
                .find(|r| read.completed < protected_until(r))
            {
                problems.push(format!(
                    "[lease] key {} of lease {:x} missing from a linearizable read at \
                     [{}, {}] ms, but a renewal sent at {} ms (answered at {} ms) with TTL {} s \
                     protects it until {} ms",
                    l.key,
                    l.id,
                    read.invoked,
                    read.completed,
                    r.sent,
                    r.answered,
                    r.ttl,
                    protected_until(r)
                ));
            }
        }
    }
    problems
}

/// How many (lease, read) pairs the check actually constrained: the key was known and some
/// renewal protected the lease when the read completed (a sweep where this stays 0 tests
/// nothing).
pub(super) fn protected_pairs(logs: &Logs) -> usize {
    logs.leases
        .iter()
        .filter_map(|l| Some((l, known_from(l, &logs.reads)?)))
        .map(|(l, known)| {
            logs.reads
                .iter()
                .filter(|r| {
                    r.invoked >= known
                        && l.renewals.iter().any(|n| r.completed < protected_until(n))
                })
                .count()
        })
        .sum()
}
