//! The openraft type config, and what travels through the log: a [`Command`] in (an etcd write
//! request as committed), its [`Applied`] result out.

use std::io::Cursor;

use prost::Message;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::apply::Applied;
use crate::cluster::Member;
use crate::error::Error;
use crate::io::runtime::DetRuntime;
use crate::proto::detcdpb::RaftRequest;

openraft::declare_raft_types!(
    /// detcd's raft types: node IDs are etcd member IDs, nodes are etcd members.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = u64,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = DetRuntime,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
);

/// A write in the log: one of etcd's request messages wrapped in detcd's `RaftRequest` (etcd's
/// `InternalRaftRequest`). Serialized as its protobuf encoding wherever openraft asks for serde.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Command(pub RaftRequest);

impl Serialize for Command {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0.encode_to_vec())
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: Vec<u8> = Deserialize::deserialize(d)?;
        RaftRequest::decode(&bytes[..])
            .map(Command)
            .map_err(serde::de::Error::custom)
    }
}

/// How an [`Applied`] travels (a follower that forwarded a write receives the leader's result):
/// each etcd response as its protobuf encoding.
#[derive(Serialize, Deserialize)]
enum WireApplied {
    Empty,
    Put(Vec<u8>),
    DeleteRange(Vec<u8>),
    Txn(Vec<u8>),
    Compaction(Vec<u8>),
    LeaseGrant(Vec<u8>),
    LeaseRevoke(Vec<u8>),
    LeaseCheckpoint(Vec<u8>),
    Rejected(Error),
    Batch(Vec<WireApplied>),
    Auth(Vec<u8>),
    Alarm(Vec<u8>),
}

fn to_wire(a: &Applied) -> WireApplied {
    match a {
        Applied::Empty => WireApplied::Empty,
        Applied::Put(r) => WireApplied::Put(r.encode_to_vec()),
        Applied::DeleteRange(r) => WireApplied::DeleteRange(r.encode_to_vec()),
        Applied::Txn(r) => WireApplied::Txn(r.encode_to_vec()),
        Applied::Compaction(r) => WireApplied::Compaction(r.encode_to_vec()),
        Applied::LeaseGrant(r) => WireApplied::LeaseGrant(r.encode_to_vec()),
        Applied::LeaseRevoke(r) => WireApplied::LeaseRevoke(r.encode_to_vec()),
        Applied::LeaseCheckpoint(r) => WireApplied::LeaseCheckpoint(r.encode_to_vec()),
        Applied::Rejected(e) => WireApplied::Rejected(e.clone()),
        Applied::Batch(b) => WireApplied::Batch(b.iter().map(to_wire).collect()),
        Applied::Auth(r) => WireApplied::Auth(r.encode_to_vec()),
        Applied::Alarm(r) => WireApplied::Alarm(r.encode_to_vec()),
    }
}

fn from_wire<E: serde::de::Error>(w: WireApplied) -> Result<Applied, E> {
    fn dec<T: Message + Default, E: serde::de::Error>(b: &[u8]) -> Result<T, E> {
        T::decode(b).map_err(E::custom)
    }
    Ok(match w {
        WireApplied::Empty => Applied::Empty,
        WireApplied::Put(b) => Applied::Put(dec(&b)?),
        WireApplied::DeleteRange(b) => Applied::DeleteRange(dec(&b)?),
        WireApplied::Txn(b) => Applied::Txn(dec(&b)?),
        WireApplied::Compaction(b) => Applied::Compaction(dec(&b)?),
        WireApplied::LeaseGrant(b) => Applied::LeaseGrant(dec(&b)?),
        WireApplied::LeaseRevoke(b) => Applied::LeaseRevoke(dec(&b)?),
        WireApplied::LeaseCheckpoint(b) => Applied::LeaseCheckpoint(dec(&b)?),
        WireApplied::Rejected(e) => Applied::Rejected(e),
        WireApplied::Auth(b) => Applied::Auth(dec(&b)?),
        WireApplied::Alarm(b) => Applied::Alarm(dec(&b)?),
        WireApplied::Batch(b) => {
            Applied::Batch(b.into_iter().map(from_wire).collect::<Result<_, E>>()?)
        }
    })
}

impl Serialize for Applied {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        to_wire(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Applied {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_wire(WireApplied::deserialize(d)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::detcdpb::raft_request::Request as Req;
    use crate::proto::etcdserverpb::{PutRequest, PutResponse, ResponseHeader, TxnResponse};
    use crate::proto::mvccpb::KeyValue;

    fn round_trip<T: Serialize + serde::de::DeserializeOwned>(v: &T) -> T {
        bincode::deserialize(&bincode::serialize(v).unwrap()).unwrap()
    }

    #[test]
    fn commands_and_results_travel_between_members_unchanged() {
        let cmd = Command(RaftRequest {
            request: Some(Req::Put(PutRequest {
                key: b"k".as_slice().into(),
                value: b"v".as_slice().into(),
                lease: 7,
                ..Default::default()
            })),
            auth: Some(crate::proto::detcdpb::RequestAuth {
                username: "alice".into(),
                revision: 3,
                system: false,
            }),
            ..Default::default()
        });
        assert_eq!(round_trip(&cmd), cmd);
        let results = [
            Applied::Empty,
            Applied::Put(PutResponse {
                header: Some(ResponseHeader {
                    revision: 9,
                    ..Default::default()
                }),
                prev_kv: Some(KeyValue {
                    key: b"k".as_slice().into(),
                    version: 2,
                    ..Default::default()
                }),
            }),
            Applied::Txn(TxnResponse {
                succeeded: true,
                ..Default::default()
            }),
            Applied::Rejected(Error::LeaseNotFound),
            Applied::Batch(vec![Applied::Empty, Applied::Rejected(Error::KeyNotFound)]),
        ];
        for r in results {
            assert_eq!(round_trip(&r), r);
        }
    }
}
