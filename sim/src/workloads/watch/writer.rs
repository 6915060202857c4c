//! The watch workload's writers: puts, deletes and transactions on the watched prefix.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use detcd::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use detcd::proto::etcdserverpb::response_op::Response as OpResponse;
use detcd::proto::etcdserverpb::{Compare, DeleteRangeRequest, TxnRequest};
use rand::seq::SliceRandom;
use rand::Rng;
use tokio::time::Instant;

use super::events::{branch_events, delete_event, put_event};
use super::{Acked, CONNECT_TIMEOUT, KEYS, OUTSIDE, REQUEST_TIMEOUT};
use crate::workloads::client::{connect_kv, delete_op, put_op, put_request, revision};

/// Writers leave the prefix alone for the last `QUIET_FOR` of every `QUIET_EVERY` (writing
/// only outside it), so watchers fall quiet and get progress notifications whose revision is
/// past their last event.
const QUIET_EVERY: Duration = Duration::from_millis(1500);
/// See `QUIET_EVERY`.
const QUIET_FOR: Duration = Duration::from_millis(600);

/// Whether writers leave the prefix alone at `elapsed` into the run.
fn quiet(elapsed: Duration) -> bool {
    elapsed.as_millis() % QUIET_EVERY.as_millis() >= (QUIET_EVERY - QUIET_FOR).as_millis()
}

/// One writer: puts, deletes and transactions on the prefix (and puts outside it) through a
/// random member per request, until `until` has passed. Only acknowledged writes are recorded;
/// one that failed or timed out may or may not have happened, and the store's history decides.
pub(super) async fn writer(
    w: u64,
    urls: Vec<String>,
    start: Instant,
    until: Duration,
    acked: Arc<Mutex<Vec<Acked>>>,
) {
    let mut i = 0u64;
    while start.elapsed() < until {
        i += 1;
        let (member, choice, keys, pause_ms) = {
            let mut rng = madsim::rand::thread_rng();
            let keys: Vec<&str> = KEYS.choose_multiple(&mut rng, 3).copied().collect();
            (
                rng.gen_range(0..urls.len()),
                // In quiet windows only outside the prefix (see `QUIET_EVERY`).
                if quiet(start.elapsed()) {
                    99
                } else {
                    rng.gen_range(0..100)
                },
                keys,
                rng.gen_range(10..120),
            )
        };
        let value = format!("{w}.{i}");
        if let Some(mut kv) = connect_kv(&urls[member], CONNECT_TIMEOUT).await {
            let done = match choice {
                0..=39 => {
                    let req = put_request(keys[0], &value);
                    match tokio::time::timeout(REQUEST_TIMEOUT, kv.put(req)).await {
                        Ok(Ok(r)) => {
                            let rev = revision(r.into_inner().header);
                            Some(Acked {
                                revision: rev,
                                events: vec![put_event(rev, keys[0], &value)],
                                what: format!("put {}={value}", keys[0]),
                            })
                        }
                        _ => None,
                    }
                }
                40..=54 => {
                    let req = DeleteRangeRequest {
                        key: Bytes::from(keys[0].to_string()),
                        ..Default::default()
                    };
                    match tokio::time::timeout(REQUEST_TIMEOUT, kv.delete_range(req)).await {
                        // Deleting nothing makes no revision: nothing to record.
                        Ok(Ok(r)) if r.get_ref().deleted > 0 => {
                            let rev = revision(r.into_inner().header);
                            Some(Acked {
                                revision: rev,
                                events: vec![delete_event(rev, keys[0])],
                                what: format!("delete {}", keys[0]),
                            })
                        }
                        _ => None,
                    }
                }
                55..=87 => {
                    // If keys[2] exists: put keys[0], delete keys[1]; else put keys[0] and
                    // keys[1], then create keys[2] — several events at one revision either way.
                    let success = vec![put_op(keys[0], &value), delete_op(keys[1])];
                    let failure = vec![
                        put_op(keys[0], &value),
                        put_op(keys[1], &value),
                        put_op(keys[2], &value),
                    ];
                    let req = TxnRequest {
                        compare: vec![Compare {
                            result: CompareResult::Greater as i32,
                            target: CompareTarget::Version as i32,
                            key: Bytes::from(keys[2].to_string()),
                            target_union: Some(TargetUnion::Version(0)),
                            ..Default::default()
                        }],
                        success: success.clone(),
                        failure: failure.clone(),
                    };
                    match tokio::time::timeout(REQUEST_TIMEOUT, kv.txn(req)).await {
                        Ok(Ok(r)) => {
                            let r = r.into_inner();
                            let rev = revision(r.header);
                            let resps: Vec<OpResponse> =
                                r.responses.into_iter().filter_map(|o| o.response).collect();
                            let ops = if r.succeeded { &success } else { &failure };
                            Some(Acked {
                                revision: rev,
                                events: branch_events(rev, ops, &resps),
                                what: format!("txn {keys:?} succeeded={}", r.succeeded),
                            })
                        }
                        _ => None,
                    }
                }
                _ => {
                    let key = format!("{OUTSIDE}{w}");
                    let req = put_request(&key, &value);
                    match tokio::time::timeout(REQUEST_TIMEOUT, kv.put(req)).await {
                        Ok(Ok(r)) => Some(Acked {
                            revision: revision(r.into_inner().header),
                            events: Vec::new(),
                            what: format!("put {key}={value}"),
                        }),
                        _ => None,
                    }
                }
            };
            if let Some(a) = done {
                acked.lock().unwrap().push(a);
            }
        }
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    }
}
