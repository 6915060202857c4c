//! The seam: every source of nondeterminism the server touches — time, randomness, disk and
//! network — lives behind this module.
//!
//! Outside `src/io/` the server never calls `std::time`, `std::thread`, `std::fs`, `thread_rng` or
//! `getrandom` directly. Built normally, the seam is tokio + sled + real sockets; built with
//! `--cfg madsim`, the same code runs on madsim's simulated runtime, network and clock, and on the
//! in-memory [`disk::SimDisk`], so a seed fixes every schedule and a failing run replays bit for bit.

#[cfg(not(madsim))]
pub mod authority_fix;
pub mod canary;
pub mod clock;
pub mod disk;
pub mod fs;
pub mod net;
pub mod rand;
pub mod runtime;
pub mod tls;

pub use disk::Disk;
