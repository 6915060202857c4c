//! Reading raft state that detcd wrote before it ran one leader per term.
//!
//! detcd runs openraft with one leader per term (its `single-term-leader` mode, as etcd's raft
//! and etcd's tools assume). Data dirs written before named a leader by term *and* node: a log
//! id's leader was `{"term":T,"node_id":N}` (now just `T`) and a vote's `{"term":T,"node_id":N}`
//! (now `{"term":T,"voted_for":N}`). [`from_json`] reads both, so an old data dir starts as it
//! is; what is written from then on has the new shape. (The log entries' own encoding kept its
//! shape: an old entry's leader node is read and ignored.)

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Decodes raft state JSON in the current shape or the shape written before one leader per term.
pub fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    let mut v: Value = serde_json::from_slice(bytes)?;
    upgrade(&mut v);
    serde_json::from_value(v)
}

/// Rewrites every old-shaped leader id in `v` into the current shape; leaves anything else.
fn upgrade(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let is_vote = map.contains_key("committed");
            if let Some(Value::Object(leader)) = map.get("leader_id") {
                if let (Some(term), Some(node)) = (leader.get("term"), leader.get("node_id")) {
                    let new = if is_vote {
                        serde_json::json!({ "term": term, "voted_for": node })
                    } else {
                        term.clone()
                    };
                    map.insert("leader_id".into(), new);
                }
            }
            map.values_mut().for_each(upgrade);
        }
        Value::Array(items) => items.iter_mut().for_each(upgrade),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, LogId, StoredMembership, Vote};

    use super::*;
    use crate::cluster::Member;
    use crate::raft::wal::record::RaftState;

    #[test]
    fn old_votes_keep_whom_they_voted_for() {
        let old = br#"{"leader_id":{"term":7,"node_id":3},"committed":true}"#;
        let v: Vote<u64> = from_json(old).unwrap();
        assert_eq!(v.leader_id.term, 7);
        assert_eq!(v.leader_id.voted_for, Some(3));
        assert!(v.committed);
        let new = serde_json::to_vec(&v).unwrap();
        assert_eq!(from_json::<Vote<u64>>(&new).unwrap(), v);
    }

    #[test]
    fn old_log_ids_keep_their_term_and_index() {
        let old = br#"{"leader_id":{"term":4,"node_id":9},"index":17}"#;
        let id: LogId<u64> = from_json(old).unwrap();
        assert_eq!(id, LogId::new(CommittedLeaderId::new(4, 0), 17));
        let state = br#"{"vote":{"leader_id":{"term":5,"node_id":2},"committed":false},
            "committed":{"leader_id":{"term":5,"node_id":2},"index":40},
            "purged":null}"#;
        let s: RaftState = from_json(state).unwrap();
        assert_eq!(s.vote.unwrap().leader_id.voted_for, Some(2));
        assert_eq!(s.committed.unwrap().index, 40);
        let ms = br#"{"log_id":{"leader_id":{"term":1,"node_id":6},"index":1},
            "membership":{"configs":[[6]],"nodes":{"6":{"name":"a","peer_urls":[],"client_urls":[]}}}}"#;
        let m: StoredMembership<u64, Member> = from_json(ms).unwrap();
        assert_eq!(m.log_id().unwrap().index, 1);
        assert!(!m.membership().get_node(&6).unwrap().added_as_voter);
    }
}
