//! Multi-version concurrency control: every write creates a new store revision, and reads can
//! ask for any revision not yet compacted.
//!
//! - [`revision`]: the logical clock.
//! - [`key_index`]: one key's generations of changes.
//! - [`store`]: the index of all keys, reads ([`Store::range`]) and the on-disk layout.
//! - [`txn`]: the write path — put, delete-range, txn and compaction inside one [`Writer`]
//!   (`txn_read`: compares, and txns that only read, under the read lock).
//!
//! Values live in memory (the index holds every retained revision's key-value as reference-
//! counted `Bytes`), and every change is also written to the [`Disk`](crate::io::Disk) in the
//! caller's write batch, so the raft state machine persists a whole apply batch — changes plus its
//! applied index — atomically. On open the index is rebuilt from disk.

pub mod history;
pub mod key_index;
pub mod revision;
pub mod store;
pub mod txn;
mod txn_read;

#[cfg(test)]
mod model_test;

pub use key_index::KeyHistory;
pub use revision::Revision;
pub use store::Store;
pub use txn::Writer;
