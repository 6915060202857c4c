//! A run's trace: what the clients observed, in order, with simulated timestamps. Two runs
//! of the same seed must produce the same trace, bit for bit; its hash is the cheap check.

/// An ordered log of observations.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Trace {
    events: Vec<String>,
}

impl Trace {
    /// Appends one observation.
    pub fn record(&mut self, event: impl Into<String>) {
        self.events.push(event.into());
    }

    /// The observations so far.
    pub fn events(&self) -> &[String] {
        &self.events
    }

    /// FNV-1a over every event (stable across builds and platforms, unlike std's hasher).
    pub fn hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for e in &self.events {
            for b in e.as_bytes().iter().chain(std::iter::once(&0u8)) {
                h ^= *b as u64;
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_order_and_content() {
        let mut a = Trace::default();
        a.record("x");
        a.record("y");
        let mut b = Trace::default();
        b.record("y");
        b.record("x");
        assert_ne!(a.hash(), b.hash());
        let mut c = Trace::default();
        c.record("xy");
        assert_ne!(a.hash(), c.hash());
        assert_eq!(a.hash(), a.clone().hash());
    }
}
