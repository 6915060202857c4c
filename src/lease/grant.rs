//! What the member receiving a LeaseGrant decides before proposing it: the lease ID (when the
//! client leaves it to the server) and the TTL raised to etcd's minimum. Every member then
//! applies the same grant.

use std::sync::Mutex;
use std::time::Duration;

use crate::error::Error;
use crate::proto::etcdserverpb::LeaseGrantRequest;

use super::lessor::MAX_LEASE_TTL;

/// The shortest TTL a lease gets, in seconds, for an election timeout: 1.5 election timeouts
/// rounded up (2 s with etcd's defaults), so a lease cannot expire while a new leader is being
/// elected.
pub fn min_ttl(election: Duration) -> i64 {
    let ms = election.as_millis() as i64;
    ((ms * 3 / 2 + 999) / 1000).max(1)
}

/// Server-chosen lease IDs: the member ID's low 16 bits, then a 48-bit counter that starts at
/// the wall clock's milliseconds (shifted left 8 bits), as etcd's request IDs are made. Unique
/// across members (the prefix) and across restarts (the clock moves on); positive.
#[derive(Debug)]
pub struct IdGen {
    prefix: u64,
    next: Mutex<u64>,
}

const SUFFIX_BITS: u32 = 48;

impl IdGen {
    /// A generator for `member_id`, starting from wall-clock time `unix_nanos`.
    pub fn new(member_id: u64, unix_nanos: i128) -> Self {
        let millis = (unix_nanos.max(0) / 1_000_000) as u64;
        IdGen {
            prefix: (member_id & 0xffff) << SUFFIX_BITS,
            next: Mutex::new((millis & ((1 << 40) - 1)) << 8),
        }
    }

    /// The next ID (never 0, always positive).
    pub fn next(&self) -> i64 {
        let mut n = self.next.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            *n = n.wrapping_add(1);
            let id = ((self.prefix | (*n & ((1 << SUFFIX_BITS) - 1))) & (i64::MAX as u64)) as i64;
            if id != 0 {
                return id;
            }
        }
    }
}

/// Checks a grant and fills in what the server decides: the TTL raised to `min_ttl`, and an
/// ID from `next_id` (skipping IDs `taken`) when the client left it 0.
pub fn check_grant(
    r: &LeaseGrantRequest,
    min_ttl: i64,
    next_id: impl Fn() -> i64,
    taken: impl Fn(i64) -> bool,
) -> Result<LeaseGrantRequest, Error> {
    if r.ttl > MAX_LEASE_TTL {
        return Err(Error::LeaseTtlTooLarge);
    }
    let mut id = r.id;
    while id == 0 {
        id = next_id();
        if taken(id) {
            id = 0;
        }
    }
    Ok(LeaseGrantRequest {
        ttl: r.ttl.max(min_ttl),
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_ttl_is_one_and_a_half_election_timeouts_rounded_up() {
        assert_eq!(min_ttl(Duration::from_millis(1000)), 2);
        assert_eq!(min_ttl(Duration::from_millis(2000)), 3);
        assert_eq!(min_ttl(Duration::from_millis(100)), 1);
    }

    #[test]
    fn ids_carry_the_member_prefix_and_are_positive_and_distinct() {
        let g = IdGen::new(0x8e9e05c52164694d, 1_700_000_000_000_000_000);
        let a = g.next();
        let b = g.next();
        assert!(a > 0 && b > 0 && a != b);
        assert_eq!((a as u64) >> 48, 0x694d);
        let neg = IdGen::new(0xffff, 0);
        assert!(neg.next() > 0);
    }

    #[test]
    fn grant_checks_ttl_and_fills_the_id() {
        let big = LeaseGrantRequest {
            ttl: MAX_LEASE_TTL + 1,
            id: 0,
        };
        assert_eq!(
            check_grant(&big, 2, || 1, |_| false),
            Err(Error::LeaseTtlTooLarge)
        );
        let short = LeaseGrantRequest { ttl: 1, id: 0 };
        let ids = std::cell::Cell::new(0);
        let g = check_grant(
            &short,
            2,
            || {
                ids.set(ids.get() + 1);
                ids.get()
            },
            |id| id == 1,
        )
        .unwrap();
        assert_eq!((g.ttl, g.id), (2, 2));
        let own = LeaseGrantRequest { ttl: 60, id: 42 };
        assert_eq!(check_grant(&own, 2, || 1, |_| true).unwrap(), own);
    }
}
