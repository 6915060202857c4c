//! Changes to the store as detcd-jepsen's watch events: what a write made, and what a watch
//! response delivered.

use detcd::proto::etcdserverpb::request_op::Request as Op;
use detcd::proto::etcdserverpb::response_op::Response as OpResponse;
use detcd::proto::etcdserverpb::RequestOp;
use detcd::proto::mvccpb::event::EventType;
use detcd::proto::mvccpb::Event;
use detcd_jepsen::watch::{EventKind, WatchEvent};

use super::PrevKv;
use crate::workloads::client::text;

/// A put of `key` = `value` at `revision`.
pub(super) fn put_event(revision: u64, key: &str, value: &str) -> WatchEvent {
    WatchEvent {
        revision,
        key: key.to_string(),
        kind: EventKind::Put,
        value: Some(value.to_string()),
    }
}

/// A delete of `key` at `revision`.
pub(super) fn delete_event(revision: u64, key: &str) -> WatchEvent {
    WatchEvent {
        revision,
        key: key.to_string(),
        kind: EventKind::Delete,
        value: None,
    }
}

/// The changes a transaction branch made, from its operations and their responses.
pub(super) fn branch_events(
    revision: u64,
    ops: &[RequestOp],
    resps: &[OpResponse],
) -> Vec<WatchEvent> {
    ops.iter()
        .zip(resps)
        .filter_map(|(op, resp)| match (&op.request, resp) {
            (Some(Op::RequestPut(p)), OpResponse::ResponsePut(_)) => {
                Some(put_event(revision, &text(&p.key), &text(&p.value)))
            }
            (Some(Op::RequestDeleteRange(d)), OpResponse::ResponseDeleteRange(r))
                if r.deleted > 0 =>
            {
                Some(delete_event(revision, &text(&d.key)))
            }
            _ => None,
        })
        .collect()
}

/// The events of a response, as the checker sees them, and their `prev_kv`s.
pub(super) fn convert(events: &[Event]) -> (Vec<WatchEvent>, Vec<PrevKv>) {
    let mut seen = Vec::new();
    let mut prevs = Vec::new();
    for e in events {
        let Some(kv) = &e.kv else { continue };
        let key = text(&kv.key);
        let rev = kv.mod_revision as u64;
        let kind = if e.r#type == EventType::Delete as i32 {
            EventKind::Delete
        } else {
            EventKind::Put
        };
        seen.push(WatchEvent {
            revision: rev,
            key: key.clone(),
            kind,
            value: (kind == EventKind::Put).then(|| text(&kv.value)),
        });
        let prev = e
            .prev_kv
            .as_ref()
            .map(|p| (text(&p.value), p.mod_revision as u64));
        prevs.push((rev, key, prev));
    }
    (seen, prevs)
}
