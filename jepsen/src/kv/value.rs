//! How the KV model stores a value: [`Value`], an immutable shared string
//! with a cached polynomial hash. Model states are cloned on every step of
//! the search and hashed for its memo, and porcupine's append histories
//! grow values to thousands of bytes; sharing and a hash that extends on
//! append keep both cheap.

use serde::Serialize;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Base of the polynomial string hash used by [`Value`].
const POLY: u64 = 0x0100_0000_01b3_0001;

/// The polynomial hash of `s`, each byte counted as `b + 1` so that
/// zero bytes still change it.
fn poly_hash(s: &str) -> u64 {
    s.bytes().fold(0u64, |h, b| {
        h.wrapping_mul(POLY).wrapping_add(u64::from(b) + 1)
    })
}

/// `POLY^n` by squaring: the factor that shifts a hash past `n` more
/// bytes, so that [`Value::concat`] extends a hash instead of recomputing it.
fn poly_pow(mut n: usize) -> u64 {
    let (mut acc, mut base) = (1u64, POLY);
    while n > 0 {
        if n & 1 == 1 {
            acc = acc.wrapping_mul(base);
        }
        base = base.wrapping_mul(base);
        n >>= 1;
    }
    acc
}

/// A stored value: an immutable string shared between model states (cloning
/// is a reference-count bump) with a cached polynomial hash, so that long
/// values (porcupine's append histories) are cheap to copy, hash and extend.
#[derive(Clone)]
pub struct Value {
    s: Arc<str>,
    h: u64,
}

impl Value {
    /// Wraps a string.
    pub fn new(s: &str) -> Value {
        Value {
            s: Arc::from(s),
            h: poly_hash(s),
        }
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        &self.s
    }

    /// This value followed by `suffix`; the hash is extended, not recomputed.
    pub(super) fn concat(&self, suffix: &str) -> Value {
        let mut s = String::with_capacity(self.s.len() + suffix.len());
        s.push_str(&self.s);
        s.push_str(suffix);
        Value {
            s: Arc::from(s),
            h: self
                .h
                .wrapping_mul(poly_pow(suffix.len()))
                .wrapping_add(poly_hash(suffix)),
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, o: &Value) -> bool {
        self.h == o.h && (Arc::ptr_eq(&self.s, &o.s) || self.s == o.s)
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.h);
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.s, f)
    }
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.s)
    }
}
