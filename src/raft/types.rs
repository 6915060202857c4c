//! The openraft type config, and what travels through the log: a client write in, its result out.

use std::io::Cursor;

use prost::Message;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::cluster::Member;
use crate::error::Error;
use crate::io::runtime::DetRuntime;
use crate::proto::detcdpb::RaftRequest;
use crate::proto::etcdserverpb::{
    CompactionResponse, DeleteRangeResponse, LeaseCheckpointResponse, LeaseGrantResponse,
    LeaseRevokeResponse, PutResponse, TxnResponse,
};

openraft::declare_raft_types!(
    /// detcd's raft types: node IDs are etcd member IDs, nodes are etcd members.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = DetRuntime,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
);

/// A client write in the log: etcd's request messages wrapped in detcd's `RaftRequest`.
/// Serialized as its protobuf encoding wherever openraft asks for serde.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request(pub RaftRequest);

impl Serialize for Request {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0.encode_to_vec())
    }
}

impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: Vec<u8> = Deserialize::deserialize(d)?;
        RaftRequest::decode(&bytes[..])
            .map(Request)
            .map_err(serde::de::Error::custom)
    }
}

/// The result of applying one log entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Response {
    /// A blank or membership entry.
    #[default]
    Empty,
    /// A put.
    Put(PutResponse),
    /// A delete-range.
    DeleteRange(DeleteRangeResponse),
    /// A txn.
    Txn(TxnResponse),
    /// A compaction.
    Compaction(CompactionResponse),
    /// A lease grant.
    LeaseGrant(LeaseGrantResponse),
    /// A lease revoke (its keys deleted in one revision).
    LeaseRevoke(LeaseRevokeResponse),
    /// A lease checkpoint.
    LeaseCheckpoint(LeaseCheckpointResponse),
    /// The request was rejected when applied (e.g. an unknown lease); the store is unchanged.
    Rejected(Error),
}

/// How a [`Response`] travels (a follower that forwarded a write receives the leader's result):
/// each etcd response as its protobuf encoding.
#[derive(Serialize, Deserialize)]
enum WireResponse {
    Empty,
    Put(Vec<u8>),
    DeleteRange(Vec<u8>),
    Txn(Vec<u8>),
    Compaction(Vec<u8>),
    LeaseGrant(Vec<u8>),
    LeaseRevoke(Vec<u8>),
    LeaseCheckpoint(Vec<u8>),
    Rejected(Error),
}

impl Serialize for Response {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let w = match self {
            Response::Empty => WireResponse::Empty,
            Response::Put(r) => WireResponse::Put(r.encode_to_vec()),
            Response::DeleteRange(r) => WireResponse::DeleteRange(r.encode_to_vec()),
            Response::Txn(r) => WireResponse::Txn(r.encode_to_vec()),
            Response::Compaction(r) => WireResponse::Compaction(r.encode_to_vec()),
            Response::LeaseGrant(r) => WireResponse::LeaseGrant(r.encode_to_vec()),
            Response::LeaseRevoke(r) => WireResponse::LeaseRevoke(r.encode_to_vec()),
            Response::LeaseCheckpoint(r) => WireResponse::LeaseCheckpoint(r.encode_to_vec()),
            Response::Rejected(e) => WireResponse::Rejected(e.clone()),
        };
        w.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Response {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        fn dec<T: Message + Default, E: serde::de::Error>(b: &[u8]) -> Result<T, E> {
            T::decode(b).map_err(E::custom)
        }
        Ok(match WireResponse::deserialize(d)? {
            WireResponse::Empty => Response::Empty,
            WireResponse::Put(b) => Response::Put(dec(&b)?),
            WireResponse::DeleteRange(b) => Response::DeleteRange(dec(&b)?),
            WireResponse::Txn(b) => Response::Txn(dec(&b)?),
            WireResponse::Compaction(b) => Response::Compaction(dec(&b)?),
            WireResponse::LeaseGrant(b) => Response::LeaseGrant(dec(&b)?),
            WireResponse::LeaseRevoke(b) => Response::LeaseRevoke(dec(&b)?),
            WireResponse::LeaseCheckpoint(b) => Response::LeaseCheckpoint(dec(&b)?),
            WireResponse::Rejected(e) => Response::Rejected(e),
        })
    }
}
