//! Memory: how much a member holds resident with many keys. Each server in turn gets a fresh
//! member (or cluster) loaded with `--memory-keys` keys of `--value-size` bytes (txns of 100
//! puts over `--conns` connections); after a pause its RSS and data dir size are read, and the
//! ratios detcd/etcd printed.

use std::time::{Duration, Instant};

use bytes::Bytes;
use detcd::proto::etcdserverpb::kv_client::KvClient;
use detcd::proto::etcdserverpb::request_op::Request as Op;
use detcd::proto::etcdserverpb::{PutRequest, RequestOp, TxnRequest};

use crate::cluster::{ready_channel, start, Server};
use crate::Args;

async fn load(server: &Server, args: &Args) {
    let keys = args.memory_keys;
    let per_task = keys.div_ceil(args.conns);
    let value = Bytes::from(vec![b'v'; args.value_size]);
    let mut tasks = Vec::new();
    for t in 0..args.conns {
        let ch = ready_channel(&server.urls[t % server.urls.len()]).await;
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut kv = KvClient::new(ch);
            let mine: Vec<usize> = (t * per_task..((t + 1) * per_task).min(keys)).collect();
            for chunk in mine.chunks(100) {
                let success = chunk
                    .iter()
                    .map(|n| RequestOp {
                        request: Some(Op::RequestPut(PutRequest {
                            key: Bytes::from(format!("key{n:08}")),
                            value: value.clone(),
                            ..Default::default()
                        })),
                    })
                    .collect();
                kv.txn(TxnRequest {
                    success,
                    ..Default::default()
                })
                .await
                .expect("load txn");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Loads each server and prints its RSS and disk use.
pub async fn run(args: &Args) {
    println!(
        "{} keys of {} bytes on {} member(s); etcd = {}, detcd = {}",
        args.memory_keys, args.value_size, args.members[0], args.etcd, args.detcd
    );
    println!(
        "{:<6} {:>10} {:>10} {:>10}",
        "server", "load s", "RSS MiB", "disk MiB"
    );
    let mut rss = Vec::new();
    for (name, binary) in [("etcd", &args.etcd), ("detcd", &args.detcd)] {
        let server = start(binary, args.members[0]);
        let t = Instant::now();
        load(&server, args).await;
        let load_s = t.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let kib = server.rss_kib().unwrap_or(0);
        println!(
            "{:<6} {:>10.1} {:>10.0} {:>10.0}",
            name,
            load_s,
            kib as f64 / 1024.0,
            server.disk_bytes() as f64 / (1 << 20) as f64
        );
        rss.push(kib as f64);
    }
    println!("RSS detcd/etcd: {:.2}x", rss[1] / rss[0]);
}
