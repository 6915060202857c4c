//! The waiting line under a lock's or an election's prefix: the key with the lowest create
//! revision is at the front; every other waits for the keys created before it to go.
//!
//! Each waiter watches only the key just ahead of it (the newest key created before its own),
//! not the front: when that key goes, it looks again. A release therefore wakes one waiter, not
//! all of them (no thundering herd), as in etcd's recipes.

use bytes::Bytes;

use crate::error::Error;
use crate::proto::etcdserverpb::range_request::SortOrder;
use crate::proto::etcdserverpb::{RangeRequest, ResponseHeader, TxnRequest};
use crate::proto::mvccpb::event::EventType;

use super::client::{by_create, created_at, op_delete, Client};

/// The key lease `lease` holds or waits with in the lock (or election) `name`: `name/<hex id>`.
pub fn waiter_key(name: &[u8], lease: i64) -> Bytes {
    let mut key = name.to_vec();
    // Go's %x on a signed ID: a minus sign, then the magnitude.
    let hex = if lease < 0 {
        format!("/-{:x}", lease.unsigned_abs())
    } else {
        format!("/{lease:x}")
    };
    key.extend_from_slice(hex.as_bytes());
    key.into()
}

/// `name/`, the prefix of a lock's (or election's) keys.
pub fn prefix(name: &[u8]) -> Vec<u8> {
    let mut p = name.to_vec();
    p.push(b'/');
    p
}

/// Waits until no key under `prefix` has a create revision at or below `max_create_revision`;
/// returns the header of the read that found none (etcd's `waitDeletes`).
pub async fn wait_deletes(
    client: &impl Client,
    prefix: &[u8],
    max_create_revision: i64,
) -> Result<ResponseHeader, Error> {
    loop {
        let ahead = client
            .range(by_create(prefix, SortOrder::Descend, max_create_revision))
            .await?;
        let header = ahead.header.unwrap_or_default();
        let Some(kv) = ahead.kvs.into_iter().next() else {
            return Ok(header);
        };
        wait_delete(client, kv.key, header.revision).await?;
    }
}

/// Waits for the deletion of `key`, which existed at revision `rev`.
pub async fn wait_delete(client: &impl Client, key: Bytes, rev: i64) -> Result<(), Error> {
    let mut watch = client.watch(key, Bytes::new(), rev);
    loop {
        let r = watch.next().await?;
        if r.events
            .iter()
            .any(|e| e.r#type == EventType::Delete as i32)
        {
            return Ok(());
        }
    }
}

/// Whether `key` still exists as created at `rev` (a linearizable read): a waiter whose lease
/// expired while it waited has lost its place even if the keys ahead of it went.
pub async fn still_queued(client: &impl Client, key: &Bytes, rev: i64) -> Result<bool, Error> {
    let r = client
        .range(RangeRequest {
            key: key.clone(),
            ..Default::default()
        })
        .await?;
    Ok(r.kvs.first().is_some_and(|kv| kv.create_revision == rev))
}

/// Deletes `key` if it is still the one created at `rev` (a lock or candidacy given up: the key
/// may meanwhile have expired and been created again by the same lease for another request).
pub async fn withdraw(client: &impl Client, key: Bytes, rev: i64) -> Result<(), Error> {
    let t = TxnRequest {
        compare: vec![created_at(&key, rev)],
        success: vec![op_delete(&key)],
        failure: Vec::new(),
    };
    client.txn(t).await.map(|_| ())
}

/// Withdraws a waiter's key if the request waiting for it is dropped — its client went away —
/// unless [`Withdraw::keep`] was called: an abandoned waiter must not take the lock later and
/// hold it with nobody to release it.
pub struct Withdraw<C: Client> {
    armed: Option<(C, Bytes, i64)>,
}

impl<C: Client> Withdraw<C> {
    /// Guards the key `key` created at `rev`.
    pub fn new(client: &C, key: &Bytes, rev: i64) -> Self {
        Withdraw {
            armed: Some((client.clone(), key.clone(), rev)),
        }
    }

    /// The wait succeeded: the key stays.
    pub fn keep(mut self) {
        self.armed = None;
    }
}

impl<C: Client> Drop for Withdraw<C> {
    fn drop(&mut self) {
        if let Some((client, key, rev)) = self.armed.take() {
            tokio::spawn(async move {
                if let Err(e) = withdraw(&client, key, rev).await {
                    tracing::warn!("could not withdraw an abandoned waiter: {e}");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiter_keys_are_the_name_a_slash_and_the_lease_in_hex() {
        assert_eq!(waiter_key(b"l1", 1001), Bytes::from_static(b"l1/3e9"));
        assert_eq!(waiter_key(b"", 255), Bytes::from_static(b"/ff"));
        assert_eq!(waiter_key(b"n", -255), Bytes::from_static(b"n/-ff"));
        assert_eq!(prefix(b"l1"), b"l1/".to_vec());
    }
}
