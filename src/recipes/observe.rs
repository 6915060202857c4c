//! Observe: follows an election's leader and reports every change of its value.
//!
//! Loop: read the leader (the lowest create revision under the prefix) — or, if nobody leads,
//! wait for the first candidate's put — and send it; then follow that key's puts (proclamations)
//! until it is deleted, and start over. Like etcd, the stream simply ends if a read or watch
//! fails; the client observes again.

use bytes::Bytes;
use tokio::sync::mpsc;

use super::client::{by_create, prefix_end, Client};
use super::queue::prefix;
use crate::proto::etcdserverpb::range_request::SortOrder;
use crate::proto::mvccpb::event::EventType;
use crate::proto::mvccpb::KeyValue;
use crate::proto::v3electionpb::LeaderResponse;

/// Runs until the channel's receiver goes away or a read or watch fails.
pub async fn run(c: &impl Client, name: &[u8], tx: &mpsc::Sender<LeaderResponse>) {
    let prefix = prefix(name);
    loop {
        let Ok(current) = c.range(by_create(&prefix, SortOrder::Ascend, 0)).await else {
            return;
        };
        let mut header = current.header.unwrap_or_default();
        let leader: KeyValue = match current.kvs.into_iter().next() {
            Some(kv) => kv,
            None => {
                // Nobody leads: the first put under the prefix is the next leader.
                let mut w = c.watch(
                    Bytes::from(prefix.clone()),
                    prefix_end(&prefix),
                    header.revision,
                );
                let first = loop {
                    let Ok(r) = w.next().await else { return };
                    let put = r
                        .events
                        .into_iter()
                        .find(|e| e.r#type == EventType::Put as i32)
                        .and_then(|e| e.kv);
                    if let Some(kv) = put {
                        header = r.header.unwrap_or_default();
                        break kv;
                    }
                };
                // The response may cover later revisions too: report the put's own.
                header.revision = first.mod_revision;
                first
            }
        };
        let from = header.revision + 1;
        let key = leader.key.clone();
        if tx
            .send(LeaderResponse {
                header: Some(header),
                kv: Some(leader),
            })
            .await
            .is_err()
        {
            return;
        }
        let mut w = c.watch(key, Bytes::new(), from);
        'leader: loop {
            let Ok(r) = w.next().await else { return };
            for e in r.events {
                if e.r#type == EventType::Delete as i32 {
                    break 'leader;
                }
                let resp = LeaderResponse {
                    header: r.header,
                    kv: e.kv,
                };
                if tx.send(resp).await.is_err() {
                    return;
                }
            }
        }
    }
}
