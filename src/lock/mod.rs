//! Lock: etcd's v3lock service — distributed mutexes built on leases and key revisions.
//!
//! A lock named `N` is the set of keys under `N/`. To lock, a client's lease `L` creates the key
//! `N/<L in hex>` (or finds it, if that lease already waits or holds it); the key with the
//! lowest create revision holds the lock, and the others wait, each for the deletion of the
//! key just ahead of it ([`queue`]). Unlocking deletes the key; so does the expiry or revocation
//! of its lease, which is what frees the lock of a client that died.
//!
//! # Fencing
//!
//! Holding a lock proves nothing to a storage system the holder writes to later: its lease may
//! have expired meanwhile and another client may hold the lock now. The lock key's **create
//! revision** is the fencing token: it grows with every acquisition, so a resource guarded by
//! the lock should refuse writes carrying a token lower than one it has seen — or, inside etcd,
//! a holder makes its writes conditional on `create_revision(lock key) == token` in one txn.
//! A `LockResponse` carries the key; read its create revision (the response header revision
//! of an uncontended lock equals it).
//!
//! Like etcd, the services run its client-side recipes inside the server, over an in-process
//! client ([`embedded`]), so every read and write they make is an ordinary KV request with the
//! KV API's validation, errors and response headers.

pub mod embedded;
pub mod queue;
pub mod service;
