//! The peer port as a trust boundary, on a real process with a raw peer client: a forwarded
//! write is held to the client rules before it reaches the log (an empty key, duplicate txn
//! keys, too many txn ops are refused with etcd's errors and change nothing), and a campaign is
//! accepted only from the leader (as part of its MoveLeader).

// Real processes, real time: the seam rule (clippy.toml) is for the server.
#![allow(clippy::disallowed_methods)]
#![cfg(not(madsim))]

mod common;

use common::Server;
use detcd::error::Error;
use detcd::proto::detcdpb::peer_client::PeerClient;
use detcd::proto::detcdpb::raft_request::Request as Req;
use detcd::proto::detcdpb::{ProposeRequest, RaftMessage, RaftRequest};
use detcd::proto::etcdserverpb::request_op::Request as Op;
use detcd::proto::etcdserverpb::{PutRequest, RequestOp, TxnRequest};
use detcd::raft::network::decode;
use detcd::raft::propose::ProposeResult;
use tonic::transport::Channel;

fn put(key: &str) -> PutRequest {
    PutRequest {
        key: key.as_bytes().to_vec().into(),
        value: b"v".to_vec().into(),
        ..Default::default()
    }
}

fn txn_of(puts: &[&str]) -> TxnRequest {
    TxnRequest {
        success: puts
            .iter()
            .map(|k| RequestOp {
                request: Some(Op::RequestPut(put(k))),
            })
            .collect(),
        ..Default::default()
    }
}

async fn propose(
    peer: &mut PeerClient<Channel>,
    cluster_id: u64,
    request: Req,
) -> Result<(), Error> {
    let reply = peer
        .propose(ProposeRequest {
            cluster_id,
            request: Some(RaftRequest::anonymous(request)),
        })
        .await
        .expect("propose answers")
        .into_inner();
    let result: ProposeResult = decode(&reply.payload).expect("a propose result");
    result.map(|_| ())
}

#[test]
fn forwarded_writes_get_the_client_checks_and_only_the_leader_starts_a_campaign() {
    let s = Server::detcd();
    let status = s.ok(&["endpoint", "status", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let cluster_id = v[0]["Status"]["header"]["cluster_id"].as_u64().unwrap();
    let me = v[0]["Status"]["header"]["member_id"].as_u64().unwrap();
    let before = s.revision();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ch = Channel::from_shared(s.peer_url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut peer = PeerClient::new(ch);
        assert_eq!(
            propose(&mut peer, cluster_id, Req::Put(put(""))).await,
            Err(Error::EmptyKey)
        );
        assert_eq!(
            propose(&mut peer, cluster_id, Req::Txn(txn_of(&["a", "a"]))).await,
            Err(Error::DuplicateKey)
        );
        let many: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            propose(&mut peer, cluster_id, Req::Txn(txn_of(&many))).await,
            Err(Error::TooManyOps)
        );
        // A valid one still goes through.
        assert_eq!(
            propose(&mut peer, cluster_id, Req::Put(put("ok"))).await,
            Ok(())
        );
        for from in [12345, me] {
            let refused = peer
                .campaign(RaftMessage {
                    cluster_id,
                    from,
                    payload: Default::default(),
                })
                .await
                .unwrap_err();
            assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
        }
    });
    assert_eq!(s.revision(), before + 1, "only the valid put was applied");
    let status = s.ok(&["endpoint", "status", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        v[0]["Status"]["raftTerm"], 1,
        "no campaign happened: {status}"
    );
}
