//! The liveness check after healing: every member the cluster lists serves the same contents.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use bytes::Bytes;
use detcd::proto::etcdserverpb::kv_client::KvClient;
use detcd::proto::etcdserverpb::RangeRequest;

use crate::cluster::SimCluster;
use crate::workloads::register::KEYS;

/// Polls of the members' contents (200 ms apart) before giving up.
const ROUNDS: usize = 100;

/// (key, value, mod_revision) triples, in key order.
pub(super) type Contents = Vec<(String, String, i64)>;

/// Every key by a local (`serializable`) or a linearizable read through `url`.
async fn contents(url: String, serializable: bool) -> Option<Contents> {
    let mut kv = KvClient::connect(url).await.ok()?;
    let req = RangeRequest {
        key: Bytes::from_static(b"\0"),
        range_end: Bytes::from_static(b"\0"),
        serializable,
        ..Default::default()
    };
    let r = tokio::time::timeout(Duration::from_secs(2), kv.range(req))
        .await
        .ok()?
        .ok()?
        .into_inner();
    Some(
        r.kvs
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    String::from_utf8_lossy(&kv.value).into_owned(),
                    kv.mod_revision,
                )
            })
            .collect(),
    )
}

/// The contents by a linearizable read through the first live member that answers: once it
/// answers, a leader has committed an entry of its own term, so everything acknowledged before
/// is committed and will be applied everywhere.
async fn linearizable(cluster: &SimCluster) -> Option<Contents> {
    let urls = cluster.client_urls();
    for i in cluster.live() {
        if let Some(c) = cluster.client(contents(urls[i].clone(), false)).await {
            return Some(c);
        }
    }
    None
}

/// Waits (bounded) until a linearizable read succeeds and every member the cluster lists —
/// removed ones have stopped — serves exactly what it returned, made only of keys the clients
/// wrote. Returns the contents, or what went wrong.
pub(super) async fn converge(cluster: &SimCluster) -> Result<Contents, String> {
    let urls = cluster.client_urls();
    let mut last = Vec::new();
    let mut listed_by = None;
    let mut truth = None;
    for _ in 0..ROUNDS {
        // Read again each round: a write that timed out may still land after the last read.
        truth = linearizable(cluster).await;
        if truth.is_none() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let members = match cluster.listed_members().await {
            Some((by, m)) => {
                listed_by = Some(by);
                m
            }
            None => cluster.members(),
        };
        let mut views = Vec::new();
        for i in members {
            views.push((i, cluster.client(contents(urls[i].clone(), true)).await));
        }
        if views.iter().all(|v| v.1 == truth) {
            let data = truth.clone().unwrap_or_default();
            if let Some((k, _, _)) = data.iter().find(|(k, _, _)| !KEYS.contains(&k.as_str())) {
                return Err(format!("a key no client wrote appeared: {k:?}"));
            }
            return Ok(data);
        }
        last = views;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let described: Vec<String> = last
        .iter()
        .map(|(i, v)| match v {
            Some(data) => format!("n{}: {data:?}", i + 1),
            None => format!(
                "n{}: no answer (server {:?})",
                i + 1,
                cluster.node(*i).map(|n| n.exit())
            ),
        })
        .collect();
    let by = listed_by.map_or("nobody".to_string(), |i| format!("n{}", i + 1));
    let Some(truth) = truth else {
        return Err(format!(
            "no linearizable read succeeded within {} s of healing",
            ROUNDS / 5
        ));
    };
    Err(format!(
        "members did not converge within {} s of healing on what a linearizable read returned \
         ({truth:?}); members as listed by {by}: {}",
        ROUNDS / 5,
        described.join("; ")
    ))
}
