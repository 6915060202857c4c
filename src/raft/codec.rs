//! How a log entry is written down — in the WAL and nowhere else: a `detcdpb.LogEntry`
//! protobuf (term, leader, index, and the payload: blank, a membership as JSON, or the client
//! request as field 5).

use std::io;

use openraft::{Entry, EntryPayload, LogId};
use prost::Message;

use crate::proto::detcdpb::{log_entry::Payload, Blank, LogEntry};

use super::types::{Command, TypeConfig};

/// Encodes a log entry. A client request is written straight into the buffer as field 5 rather
/// than cloned into a `LogEntry` first.
pub fn encode_entry(e: &Entry<TypeConfig>) -> Vec<u8> {
    let mut head = LogEntry {
        term: e.log_id.leader_id.term,
        // One leader per term: a log id names its term only (entries written before named
        // their leader too; the field is kept for them and ignored).
        leader_node_id: 0,
        index: e.log_id.index,
        payload: None,
    };
    match &e.payload {
        EntryPayload::Blank => head.payload = Some(Payload::Blank(Blank {})),
        EntryPayload::Membership(m) => {
            let json = serde_json::to_vec(m).expect("membership serializes");
            head.payload = Some(Payload::MembershipJson(json.into()));
        }
        EntryPayload::Normal(_) => {}
    }
    let mut buf = head.encode_to_vec();
    if let EntryPayload::Normal(Command(r)) = &e.payload {
        prost::encoding::message::encode(5, r, &mut buf);
    }
    buf
}

/// Decodes what [`encode_entry`] wrote.
pub fn decode_entry(b: &[u8]) -> io::Result<Entry<TypeConfig>> {
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
    let e = LogEntry::decode(b).map_err(|e| bad(format!("log entry: {e}")))?;
    let payload = match e.payload {
        Some(Payload::Blank(_)) => EntryPayload::Blank,
        Some(Payload::Normal(r)) => EntryPayload::Normal(Command(r)),
        Some(Payload::MembershipJson(j)) => EntryPayload::Membership(
            serde_json::from_slice(&j).map_err(|e| bad(format!("membership: {e}")))?,
        ),
        None => return Err(bad("log entry without payload".into())),
    };
    Ok(Entry {
        log_id: LogId::new(
            openraft::CommittedLeaderId::new(e.term, e.leader_node_id),
            e.index,
        ),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;
    use crate::cluster::Member;
    use crate::proto::detcdpb::raft_request::Request as Req;
    use crate::proto::detcdpb::RaftRequest;
    use crate::proto::etcdserverpb::PutRequest;

    fn log_id(term: u64, node: u64, index: u64) -> LogId<u64> {
        LogId::new(openraft::CommittedLeaderId::new(term, node), index)
    }

    fn round_trip(e: &Entry<TypeConfig>) -> Entry<TypeConfig> {
        decode_entry(&encode_entry(e)).expect("decodes what it encoded")
    }

    #[test]
    fn blank_and_membership_entries_round_trip() {
        let blank = Entry {
            log_id: log_id(3, 7, 42),
            payload: EntryPayload::Blank,
        };
        assert_eq!(round_trip(&blank), blank);
        let nodes = BTreeMap::from([(
            7,
            Member {
                name: "n7".into(),
                peer_urls: vec!["http://127.0.0.1:2380".into()],
                client_urls: vec![],
                added_as_voter: true,
            },
        )]);
        let membership = openraft::Membership::new(vec![BTreeSet::from([7])], nodes);
        let entry = Entry {
            log_id: log_id(1, 7, 1),
            payload: EntryPayload::Membership(membership),
        };
        assert_eq!(round_trip(&entry), entry);
    }

    #[test]
    fn garbage_is_an_error_not_an_entry() {
        assert!(decode_entry(b"\xff\xff\xff").is_err());
        let blank = Entry::<TypeConfig> {
            log_id: log_id(1, 1, 1),
            payload: EntryPayload::Blank,
        };
        let bytes = encode_entry(&blank);
        // Without its payload field the record is not an entry.
        assert!(decode_entry(&bytes[..bytes.len() - 2]).is_err());
    }

    proptest! {
        #[test]
        fn client_writes_round_trip(
            term in 0u64..1000,
            index in 0u64..1_000_000,
            key in proptest::collection::vec(any::<u8>(), 1..40),
            value in proptest::collection::vec(any::<u8>(), 0..200),
            lease in any::<i64>(),
        ) {
            let put = PutRequest {
                key: key.into(),
                value: value.into(),
                lease,
                ..Default::default()
            };
            let entry = Entry {
                log_id: log_id(term, 0x8e9e05c52164694d, index),
                payload: EntryPayload::Normal(Command(RaftRequest::anonymous(Req::Put(put)))),
            };
            prop_assert_eq!(round_trip(&entry), entry);
        }
    }
}
