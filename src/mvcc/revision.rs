//! Revisions: the store's logical clock.

/// A point in the store's history. `main` is the store revision a write created (one per
/// write request, or per txn); `sub` orders the changes within it (a txn that writes three keys
/// makes `main.0`, `main.1`, `main.2`). Revisions of a key only ever increase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    /// The store revision.
    pub main: i64,
    /// The change's position within that revision.
    pub sub: i64,
}

impl Revision {
    /// A revision.
    pub const fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    /// Big-endian encoding: byte order equals revision order, so disk scans come out sorted.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&(self.main as u64).to_be_bytes());
        b[8..].copy_from_slice(&(self.sub as u64).to_be_bytes());
        b
    }

    /// Inverse of [`Revision::to_bytes`]; `None` if `b` is shorter than 16 bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let main = u64::from_be_bytes(b.get(..8)?.try_into().ok()?) as i64;
        let sub = u64::from_be_bytes(b.get(8..16)?.try_into().ok()?) as i64;
        Some(Revision { main, sub })
    }
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.main, self.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn byte_order_is_revision_order(a in (0i64..i64::MAX, 0i64..1000), b in (0i64..i64::MAX, 0i64..1000)) {
            let (ra, rb) = (Revision::new(a.0, a.1), Revision::new(b.0, b.1));
            prop_assert_eq!(ra.cmp(&rb), ra.to_bytes().cmp(&rb.to_bytes()));
            prop_assert_eq!(Revision::from_bytes(&ra.to_bytes()), Some(ra));
        }
    }
}
