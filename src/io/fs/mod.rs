//! A directory of files, as the write-ahead log sees its storage: files are preallocated at
//! creation (so a full disk fails a segment's creation, never a write inside it), written at
//! offsets, and made durable by an explicit `sync`.
//!
//! Two implementations behind one enum: [`real`](self::real) on the local filesystem
//! (`fallocate`, `pwrite`, `fdatasync`), and [`SimDir`], its simulated twin with a stated fault
//! model (lost and torn unsynced writes, fsync and write errors, slow fsync, a full disk,
//! corrupt reads).

#[cfg(not(madsim))]
pub mod real;
pub mod sim;

use std::io;

pub use sim::{FsFaults, SimDir};

/// A directory of files; cheap to clone (clones share the directory).
#[derive(Clone)]
pub enum Dir {
    /// A directory on the local filesystem.
    #[cfg(not(madsim))]
    Real(real::RealDir),
    /// The simulated twin.
    Sim(SimDir),
}

impl std::fmt::Debug for Dir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            #[cfg(not(madsim))]
            Dir::Real(d) => write!(f, "Dir::Real({})", d.path().display()),
            Dir::Sim(_) => f.write_str("Dir::Sim"),
        }
    }
}

impl Dir {
    /// The names of the files in the directory, sorted.
    pub fn list(&self) -> io::Result<Vec<String>> {
        match self {
            #[cfg(not(madsim))]
            Dir::Real(d) => d.list(),
            Dir::Sim(d) => d.list(),
        }
    }

    /// The whole content of file `name`.
    pub fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        match self {
            #[cfg(not(madsim))]
            Dir::Real(d) => d.read(name),
            Dir::Sim(d) => d.read(name),
        }
    }

    /// `len` bytes of file `name` from `offset`.
    pub fn read_at(&self, name: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        match self {
            #[cfg(not(madsim))]
            Dir::Real(d) => d.read_at(name, offset, len),
            Dir::Sim(d) => d.read_at(name, offset, len),
        }
    }

    /// Creates file `name` with `len` zero bytes allocated and `head` written at its start,
    /// durably and atomically: after a crash the file exists whole or not at all. Fails (ENOSPC)
    /// if the space cannot be allocated; a file that exists already is an error.
    pub async fn create(&self, name: &str, len: u64, head: &[u8]) -> io::Result<()> {
        match self {
            #[cfg(not(madsim))]
            Dir::Real(d) => d.create(name, len, head).await,
            Dir::Sim(d) => d.create(name, len, head).await,
        }
    }

    /// Writes `data` at `offset` of file `name`, inside its allocated length. Not durable until
    /// [`Dir::sync`] returns.
    pub fn write_at(&self, name: &str, offset: u64, data: &[u8]) -> io::Result<()> {
        match self {
            #[cfg(not(madsim))]
            Dir::Real(d) => d.write_at(name, offset, data),
            Dir::Sim(d) => d.write_at(name, offset, data),
        }
    }

    /// Makes every write to file `name` issued before this call durable (fdatasync).
    pub async fn sync(&self, name: &str) -> io::Result<()> {
        match self {
            #[cfg(not(madsim))]
            Dir::Real(d) => d.sync(name).await,
            Dir::Sim(d) => d.sync(name).await,
        }
    }

    /// Zeroes file `name` from `offset` to its end, durably (a torn tail cut at recovery must
    /// not reappear behind later writes).
    pub async fn zero_from(&self, name: &str, offset: u64) -> io::Result<()> {
        match self {
            #[cfg(not(madsim))]
            Dir::Real(d) => d.zero_from(name, offset).await,
            Dir::Sim(d) => d.zero_from(name, offset).await,
        }
    }

    /// Removes file `name`, durably.
    pub async fn remove(&self, name: &str) -> io::Result<()> {
        match self {
            #[cfg(not(madsim))]
            Dir::Real(d) => d.remove(name).await,
            Dir::Sim(d) => d.remove(name).await,
        }
    }
}

/// The content of a file an operator named in a flag (a JWT key, …), read once at start; the
/// error says which file and why.
pub fn read_named_file(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("open {path}: {e}"))
}
