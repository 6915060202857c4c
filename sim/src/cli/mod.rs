//! `detcd-sim`, the command line: sweep seeds (or one shard of them), replay one, check
//! determinism, shrink a failure, merge the summaries of shards. The binary is a thin `main`
//! over [`execute`] and [`merge`], which tests call directly.

pub mod args;
#[cfg(madsim)]
mod execute;
#[cfg(madsim)]
pub mod merge;
#[cfg(madsim)]
pub mod summary;

pub use args::Args;
#[cfg(madsim)]
pub use execute::{execute, replay_command};
#[cfg(madsim)]
pub use merge::merge;
