//! The waiting line under a lock's or an election's prefix: the key with the lowest create
//! revision is at the front; every other waits for the keys created before it to go.
//!
//! Each waiter watches only the key just ahead of it (the newest key created before its own),
//! not the front: when that key goes, it looks again. A release therefore wakes one waiter, not
//! all of them (no thundering herd), as in etcd's recipes.

use bytes::Bytes;
use tonic::Status;

use crate::proto::etcdserverpb::range_request::SortOrder;
use crate::proto::etcdserverpb::ResponseHeader;
use crate::proto::mvccpb::event::EventType;

use super::embedded::{by_create, created_at, op_delete, Embedded};
use crate::proto::etcdserverpb::{RangeRequest, TxnRequest};

/// Waits until no key under `prefix` has a create revision at or below `max_create_revision`;
/// returns the header of the read that found none (etcd's `waitDeletes`).
pub async fn wait_deletes(
    client: &Embedded,
    prefix: &[u8],
    max_create_revision: i64,
) -> Result<ResponseHeader, Status> {
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
pub async fn wait_delete(client: &Embedded, key: Bytes, rev: i64) -> Result<(), Status> {
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
pub async fn still_queued(client: &Embedded, key: &Bytes, rev: i64) -> Result<bool, Status> {
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
pub async fn withdraw(client: &Embedded, key: Bytes, rev: i64) -> Result<(), Status> {
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
pub struct Withdraw {
    armed: Option<(Embedded, Bytes, i64)>,
}

impl Withdraw {
    /// Guards the key `key` created at `rev`.
    pub fn new(client: &Embedded, key: &Bytes, rev: i64) -> Self {
        Withdraw {
            armed: Some((client.clone(), key.clone(), rev)),
        }
    }

    /// The wait succeeded: the key stays.
    pub fn keep(mut self) {
        self.armed = None;
    }
}

impl Drop for Withdraw {
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
