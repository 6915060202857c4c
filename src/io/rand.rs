//! Randomness. In the simulator every random number comes from madsim's seeded generator, so a
//! seed fixes the run; in production it comes from the OS. Nothing outside the seam may call
//! `rand::thread_rng` or `getrandom` (clippy's `disallowed-methods` enforces it).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The generator type handed to openraft for election jitter.
#[cfg(madsim)]
pub type ThreadRng = madsim::rand::GlobalRng;
/// The generator type handed to openraft for election jitter.
#[cfg(not(madsim))]
pub type ThreadRng = rand::rngs::ThreadRng;

/// The node's ambient generator: seeded by the simulator, OS-seeded in production.
#[allow(clippy::disallowed_methods)]
pub fn thread_rng() -> ThreadRng {
    #[cfg(madsim)]
    {
        madsim::rand::thread_rng()
    }
    #[cfg(not(madsim))]
    {
        rand::thread_rng()
    }
}

/// A fresh ChaCha generator seeded from [`thread_rng`]: deterministic under the simulator.
pub fn fork_rng() -> ChaCha8Rng {
    use rand::RngCore;
    ChaCha8Rng::seed_from_u64(thread_rng().next_u64())
}

/// A random u64 (e.g. lease IDs), from the node's generator.
pub fn random_u64() -> u64 {
    use rand::RngCore;
    thread_rng().next_u64()
}
