//! Which workload a run plays (`detcd-sim --workload`): plain data, so that the command line,
//! the worker's job and the summaries name workloads the same way in every build.
//!
//! `all` is swarm testing over workloads: each seed plays one workload, chosen by a hash of
//! the seed (not the seed modulo the number of workloads, which would give every shard of a
//! sharded sweep the same workload).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What the clients of a run do, and how their history is judged.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum Workload {
    /// Puts and gets on a few keys, judged linearizable, with every invariant and the
    /// convergence check.
    #[default]
    Register,
    /// Bank transfers by transactions: the total is conserved, the history linearizable.
    Txn,
    /// Watches followed across broken streams, judged by etcd's watch guarantees.
    Watch,
    /// Leases kept alive under clock skew must not expire early; abandoned ones must expire.
    Lease,
    /// Clients contend for a lock fenced by its token: holds never overlap.
    Lock,
    /// Permissions revoked and granted while clients write with tokens.
    Auth,
    /// Members crashed while their WAL rolls and purges segments; no acknowledged write lost.
    Storage,
    /// One of the others per seed.
    All,
}

/// Every workload `all` mixes, in the order of [`Workload::resolve`].
pub const MIXED: [Workload; 7] = [
    Workload::Register,
    Workload::Txn,
    Workload::Watch,
    Workload::Lease,
    Workload::Lock,
    Workload::Auth,
    Workload::Storage,
];

impl Workload {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Register => "register",
            Workload::Txn => "txn",
            Workload::Watch => "watch",
            Workload::Lease => "lease",
            Workload::Lock => "lock",
            Workload::Auth => "auth",
            Workload::Storage => "storage",
            Workload::All => "all",
        }
    }

    /// The workload `seed` plays: itself, or for [`Workload::All`] one of [`MIXED`] by a hash
    /// of the seed.
    pub fn resolve(self, seed: u64) -> Workload {
        match self {
            Workload::All => MIXED[(splitmix64(seed) % MIXED.len() as u64) as usize],
            w => w,
        }
    }
}

/// SplitMix64's output function: a fixed, well-mixed hash of a seed.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Workload {
    type Err = String;

    fn from_str(s: &str) -> Result<Workload, String> {
        MIXED
            .into_iter()
            .chain([Workload::All])
            .find(|w| w.name() == s.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = MIXED.iter().map(|w| w.name()).collect();
                format!("unknown workload {s:?}; known: {}, all", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for w in MIXED.into_iter().chain([Workload::All]) {
            assert_eq!(w.name().parse::<Workload>(), Ok(w));
        }
        assert!("bank".parse::<Workload>().is_err());
    }

    #[test]
    fn all_mixes_every_workload_and_the_others_stay_themselves() {
        let mut counts = [0usize; MIXED.len()];
        for seed in 0..7000 {
            let w = Workload::All.resolve(seed);
            assert_ne!(w, Workload::All);
            counts[MIXED.iter().position(|m| *m == w).unwrap()] += 1;
            assert_eq!(Workload::Lock.resolve(seed), Workload::Lock);
        }
        // Roughly even: each near 1000 of 7000.
        assert!(
            counts.iter().all(|&n| (800..1200).contains(&n)),
            "{counts:?}"
        );
        // A shard of every 7th seed still sees several workloads.
        let shard: std::collections::BTreeSet<Workload> = (0..700)
            .step_by(7)
            .map(|s| Workload::All.resolve(s))
            .collect();
        assert!(shard.len() >= 5, "{shard:?}");
    }
}
