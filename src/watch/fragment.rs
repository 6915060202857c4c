//! Splitting a large watch response into fragments, for watchers created with `fragment: true`.
//!
//! etcd's rule: a response whose encoded size is below the limit (`--max-request-bytes` plus
//! gRPC's 512 KiB allowance), or that carries fewer than two events, goes out whole. Otherwise its
//! events are packed greedily into consecutive responses: each takes events in order while it
//! stays below the limit, but always at least one; every piece but the last has `fragment: true`,
//! and the client joins them back into one response.

use prost::Message;

use crate::proto::etcdserverpb::WatchResponse;

/// The field number of `WatchResponse.events`.
const EVENTS_TAG: u32 = 11;

/// Splits `resp` into the responses to send, in order; `limit` is the size at which a response
/// counts as too large.
pub fn split(resp: WatchResponse, limit: usize) -> Vec<WatchResponse> {
    if resp.events.len() < 2 || resp.encoded_len() < limit {
        return vec![resp];
    }
    let mut template = resp;
    let events = std::mem::take(&mut template.events);
    template.fragment = true;
    // Repeated message fields encode as the concatenation of their elements, so a piece's size
    // is the template's plus each event's own (tag + length + body).
    let base = template.encoded_len();
    let mut out = Vec::new();
    let mut cur = template.clone();
    let mut size = base;
    for ev in events {
        let len = prost::encoding::message::encoded_len(EVENTS_TAG, &ev);
        if !cur.events.is_empty() && size + len >= limit {
            out.push(std::mem::replace(&mut cur, template.clone()));
            size = base;
        }
        cur.events.push(ev);
        size += len;
    }
    cur.fragment = false;
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::ResponseHeader;
    use crate::proto::mvccpb::{Event, KeyValue};
    use bytes::Bytes;
    use proptest::prelude::*;

    fn resp(sizes: &[usize]) -> WatchResponse {
        WatchResponse {
            header: Some(ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 3,
                raft_term: 4,
            }),
            watch_id: 7,
            events: sizes
                .iter()
                .enumerate()
                .map(|(i, n)| Event {
                    r#type: 0,
                    kv: Some(KeyValue {
                        key: Bytes::from(format!("k{i}")),
                        value: Bytes::from(vec![b'v'; *n]),
                        mod_revision: 3,
                        ..Default::default()
                    }),
                    prev_kv: None,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn small_or_single_event_responses_go_whole() {
        let r = resp(&[10, 10]);
        assert_eq!(split(r.clone(), 1 << 20), vec![r]);
        let big = resp(&[5000]);
        assert_eq!(split(big.clone(), 100), vec![big]);
    }

    #[test]
    fn large_responses_split_one_piece_per_oversized_event() {
        let pieces = split(resp(&[300, 300, 300]), 200);
        assert_eq!(pieces.len(), 3);
        assert!(pieces[0].fragment && pieces[1].fragment && !pieces[2].fragment);
        assert!(pieces
            .iter()
            .all(|p| p.events.len() == 1 && p.watch_id == 7));
    }

    proptest! {
        #[test]
        fn pieces_rejoin_and_respect_the_limit(
            sizes in proptest::collection::vec(0usize..400, 0..20),
            limit in 50usize..2000,
        ) {
            let r = resp(&sizes);
            let pieces = split(r.clone(), limit);
            // Joined back, the events are the original ones, in order.
            let joined: Vec<Event> = pieces.iter().flat_map(|p| p.events.clone()).collect();
            prop_assert_eq!(&joined, &r.events);
            if pieces.len() == 1 {
                prop_assert!(!pieces[0].fragment);
                prop_assert!(r.events.len() < 2 || r.encoded_len() < limit);
            } else {
                for (i, p) in pieces.iter().enumerate() {
                    prop_assert_eq!(p.fragment, i + 1 < pieces.len());
                    prop_assert!(!p.events.is_empty());
                    // Below the limit unless a single event alone exceeds it.
                    prop_assert!(p.events.len() == 1 || p.encoded_len() < limit);
                    // Greedy: the next piece's first event would have overflowed this one.
                    if let Some(next) = pieces.get(i + 1) {
                        let mut grown = p.clone();
                        grown.events.push(next.events[0].clone());
                        prop_assert!(grown.encoded_len() >= limit);
                    }
                }
            }
        }
    }
}
