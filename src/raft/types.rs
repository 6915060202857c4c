//! The openraft type config, and what travels through the log: a client write in, its result out.

use std::io::Cursor;

use prost::Message;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::cluster::Member;
use crate::error::Error;
use crate::io::runtime::DetRuntime;
use crate::proto::detcdpb::RaftRequest;
use crate::proto::etcdserverpb::{
    CompactionResponse, DeleteRangeResponse, PutResponse, TxnResponse,
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
    /// The request was rejected when applied (e.g. an unknown lease); the store is unchanged.
    Rejected(Error),
}

/// Responses never leave the node that applied them, but openraft's `serde` feature asks every
/// response type to be serializable; this encodes the variants that carry data.
#[derive(Serialize, Deserialize)]
enum WireResponse {
    Empty,
    Put(Vec<u8>),
    DeleteRange(Vec<u8>),
    Txn(Vec<u8>),
    Compaction(Vec<u8>),
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
            Response::Rejected(e) => WireResponse::Rejected(e.clone()),
        };
        w.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Response {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        Ok(match WireResponse::deserialize(d)? {
            WireResponse::Empty => Response::Empty,
            WireResponse::Put(b) => {
                Response::Put(Message::decode(&b[..]).map_err(D::Error::custom)?)
            }
            WireResponse::DeleteRange(b) => {
                Response::DeleteRange(Message::decode(&b[..]).map_err(D::Error::custom)?)
            }
            WireResponse::Txn(b) => {
                Response::Txn(Message::decode(&b[..]).map_err(D::Error::custom)?)
            }
            WireResponse::Compaction(b) => {
                Response::Compaction(Message::decode(&b[..]).map_err(D::Error::custom)?)
            }
            WireResponse::Rejected(e) => Response::Rejected(e),
        })
    }
}
