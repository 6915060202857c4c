//! `detcd-sim`, the command line: sweep seeds, replay one, check determinism, shrink a
//! failure. The binary is a thin `main` over [`execute`], which tests call directly.

pub mod args;
#[cfg(madsim)]
mod execute;
#[cfg(madsim)]
pub mod summary;

pub use args::Args;
#[cfg(madsim)]
pub use execute::{execute, replay_command};
