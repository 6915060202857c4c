//! Requests etcdctl never sends, from a gRPC client, against real etcd 3.4 and detcd side by
//! side: enum values outside the protocol's enums in txn compares, bytes that are not a
//! protobuf message, a message over the receive limit, an unknown method. Both servers must
//! answer alike (the status code; the message too where it is etcd's own text).
//!
//! Range sorts outside their enums are the exception: etcd 3.4 ignores an unknown sort order and
//! crashes (a nil sorter) on an unknown sort target with an ascending order; detcd refuses both as
//! etcd 3.5 does (`etcdserver: invalid sort option`).
//!
//! Set `DETCD_SKIP_ETCD_DIFF=1` to skip when `/usr/bin/etcd` is not installed.

// Real processes and real sockets: not part of the simulator build.
#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use detcd::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use detcd::proto::etcdserverpb::kv_client::KvClient;
use detcd::proto::etcdserverpb::{
    request_op, Compare, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::Status;

use common::{Builder, Kind, Server};

/// A codec that sends and receives bytes as they are, so a test can send what no protobuf
/// library would encode.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

async fn channel(s: &Server) -> Channel {
    Channel::from_shared(format!("http://{}", s.endpoint()))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap()
}

/// Sends `body` as-is to `path`: the status code of the answer (`Ok` if none).
async fn raw_call(s: &Server, path: &'static str, body: Vec<u8>) -> tonic::Code {
    let mut grpc = tonic::client::Grpc::new(channel(s).await);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(path);
    match grpc
        .unary(tonic::Request::new(Bytes::from(body)), path, RawCodec)
        .await
    {
        Ok(_) => tonic::Code::Ok,
        Err(e) => e.code(),
    }
}

fn compare(target: i32, result: i32, union: Option<TargetUnion>) -> Compare {
    Compare {
        result,
        target,
        key: b"k".to_vec().into(),
        target_union: union,
        range_end: Default::default(),
    }
}

fn get(key: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest {
            key: key.as_bytes().to_vec().into(),
            ..Default::default()
        })),
    }
}

/// Every answer of the script, as text: what both servers must agree on.
async fn script(s: &Server) -> Vec<String> {
    let mut kv = KvClient::new(channel(s).await);
    let mut out = Vec::new();
    kv.put(PutRequest {
        key: b"k".to_vec().into(),
        value: b"v".to_vec().into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let (eq, gt) = (CompareResult::Equal as i32, CompareResult::Greater as i32);
    let (value, version) = (CompareTarget::Value as i32, CompareTarget::Version as i32);
    let compares = [
        ("target outside the enum", compare(42, eq, None)),
        ("target outside the enum, greater", compare(-3, gt, None)),
        ("result outside the enum", compare(version, 9, None)),
        (
            "result outside the enum, value",
            compare(value, -1, Some(TargetUnion::Value(b"zz".to_vec().into()))),
        ),
        ("value without a value", compare(value, eq, None)),
        (
            "value with a version",
            compare(value, gt, Some(TargetUnion::Version(7))),
        ),
        (
            "version with a value",
            compare(version, eq, Some(TargetUnion::Value(b"v".to_vec().into()))),
        ),
    ];
    for (what, c) in compares {
        let r = kv
            .txn(TxnRequest {
                compare: vec![c],
                success: vec![get("k")],
                failure: vec![],
            })
            .await;
        out.push(match r {
            Ok(r) => format!("{what}: succeeded={}", r.into_inner().succeeded),
            Err(e) => format!("{what}: {:?} {}", e.code(), e.message()),
        });
    }
    // Not a protobuf message: a field with an invalid wire type, a truncated length.
    for (what, body) in [
        ("wire type 7", vec![0x0f, 0x01]),
        ("truncated bytes field", vec![0x0a, 0x05, b'k']),
    ] {
        let code = raw_call(s, "/etcdserverpb.KV/Range", body).await;
        out.push(format!("{what}: {code:?}"));
    }
    // Over the receive limit (--max-request-bytes 1024 plus gRPC's 512 KiB).
    let mut big = vec![0x0a];
    let n = 2 << 20;
    prost::encoding::encode_varint(n as u64, &mut big);
    big.resize(big.len() + n, b'x');
    let code = raw_call(s, "/etcdserverpb.KV/Put", big).await;
    out.push(format!("over the receive limit: {code:?}"));
    let code = raw_call(s, "/etcdserverpb.KV/NoSuchMethod", vec![]).await;
    out.push(format!("unknown method: {code:?}"));
    out
}

/// Range sorts outside their enums, answered as etcd 3.5 answers them.
async fn sorts(s: &Server) -> Vec<String> {
    let mut kv = KvClient::new(channel(s).await);
    let mut out = Vec::new();
    for (what, order, target) in [
        ("sort order outside the enum", 7, 0),
        ("sort target outside the enum", 1, 11),
        ("negative sort order", -1, 0),
    ] {
        let r = kv
            .range(RangeRequest {
                key: b"k".to_vec().into(),
                sort_order: order,
                sort_target: target,
                ..Default::default()
            })
            .await;
        out.push(match r {
            Ok(r) => format!("{what}: {} kvs", r.into_inner().kvs.len()),
            Err(e) => format!("{what}: {:?} {}", e.code(), e.message()),
        });
    }
    out
}

#[test]
fn odd_requests_are_answered_as_etcd_answers_them() {
    if std::env::var_os("DETCD_SKIP_ETCD_DIFF").is_some() {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let flags = ["--max-request-bytes", "1024"];
    let etcd = Builder::new(Kind::Etcd).args(flags).start();
    let expected = rt.block_on(script(&etcd));
    drop(etcd);
    let detcd = Builder::new(Kind::Detcd).args(flags).start();
    let got = rt.block_on(script(&detcd));
    assert_eq!(got, expected);
    let refused = "InvalidArgument etcdserver: invalid sort option";
    assert_eq!(
        rt.block_on(sorts(&detcd)),
        [
            format!("sort order outside the enum: {refused}"),
            format!("sort target outside the enum: {refused}"),
            format!("negative sort order: {refused}"),
        ]
    );
}
