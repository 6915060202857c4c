//! The KV workloads as users of etcd's own benchmark tool run them: many clients sharing a few
//! connections, fixed-size values over a fixed key space — put, txn (compare + put), and
//! linearizable and serializable single-key ranges — on clusters of each size asked for.
//! Each workload runs `--runs` times per server, alternating which server goes first; the
//! median run counts, and the ratio detcd/etcd is printed beside it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use detcd::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use detcd::proto::etcdserverpb::kv_client::KvClient;
use detcd::proto::etcdserverpb::request_op::Request as Op;
use detcd::proto::etcdserverpb::{Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};
use tonic::transport::Channel;

use crate::cluster::{ready_channel, start, Server};
use crate::Args;

/// One KV workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// A put of one key.
    Put,
    /// A txn: compare the key's version, then put it.
    Txn,
    /// A linearizable get of one key.
    RangeLin,
    /// A serializable get of one key.
    RangeSer,
}

/// The outcome of one run of one workload against one server.
#[derive(Clone, Copy, Debug)]
struct Run {
    ops_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

fn key(keys: usize, n: usize) -> Bytes {
    Bytes::from(format!("key{:08}", n % keys))
}

/// `--conns` connections to the members (spread over them), each ready to serve.
async fn channels(server: &Server, conns: usize) -> Vec<Channel> {
    let mut out = Vec::new();
    for i in 0..conns {
        out.push(ready_channel(&server.urls[i % server.urls.len()]).await);
    }
    out
}

/// Writes every key once, so ranges find them and txns compare existing keys.
async fn preload(server: &Server, args: &Args) {
    let chans = channels(server, args.conns).await;
    let value = Bytes::from(vec![b'v'; args.value_size]);
    let per_task = args.keys.div_ceil(args.conns);
    let mut tasks = Vec::new();
    for (t, ch) in chans.into_iter().enumerate() {
        let value = value.clone();
        let keys = args.keys;
        tasks.push(tokio::spawn(async move {
            let mut kv = KvClient::new(ch);
            for chunk in (t * per_task..((t + 1) * per_task).min(keys))
                .collect::<Vec<_>>()
                .chunks(100)
            {
                let success = chunk
                    .iter()
                    .map(|&n| RequestOp {
                        request: Some(Op::RequestPut(PutRequest {
                            key: key(keys, n),
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
                .expect("preload txn");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn run(server: &Server, w: Workload, args: &Args) -> Run {
    let chans = channels(server, args.conns).await;
    let value = Arc::new(Bytes::from(vec![b'v'; args.value_size]));
    let per_client = args.ops / args.clients;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let mut kv = KvClient::new(chans[c % chans.len()].clone());
        let value = value.clone();
        let keys = args.keys;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_client);
            // Each client walks the key space from its own offset (etcd's benchmark picks keys
            // at random; a stride spreads them the same way without a generator per client).
            for i in 0..per_client {
                let key = key(keys, c * 7919 + i * 104_729);
                let t = Instant::now();
                match w {
                    Workload::Put => {
                        let req = PutRequest {
                            key,
                            value: (*value).clone(),
                            ..Default::default()
                        };
                        kv.put(req).await.expect("put");
                    }
                    Workload::Txn => {
                        let req = TxnRequest {
                            compare: vec![Compare {
                                result: CompareResult::Greater as i32,
                                target: CompareTarget::Version as i32,
                                key: key.clone(),
                                range_end: Bytes::new(),
                                target_union: Some(TargetUnion::Version(-1)),
                            }],
                            success: vec![RequestOp {
                                request: Some(Op::RequestPut(PutRequest {
                                    key,
                                    value: (*value).clone(),
                                    ..Default::default()
                                })),
                            }],
                            failure: vec![],
                        };
                        kv.txn(req).await.expect("txn");
                    }
                    Workload::RangeLin | Workload::RangeSer => {
                        kv.range(RangeRequest {
                            key,
                            serializable: w == Workload::RangeSer,
                            ..Default::default()
                        })
                        .await
                        .expect("range");
                    }
                }
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    all.sort();
    Run {
        ops_per_sec: all.len() as f64 / elapsed.as_secs_f64(),
        p50: all[all.len() / 2],
        p99: all[all.len() * 99 / 100],
    }
}

fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
    runs[runs.len() / 2]
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("-".into(), |k| format!("{:.0}", k as f64 / 1024.0))
}

/// Runs every workload on clusters of every size in `args.members`; prints one table.
pub async fn run_all(args: &Args) {
    println!(
        "{} ops per run, {} clients over {} connections, {}-byte values, {} keys, median of {} \
         runs (alternating); etcd = {}, detcd = {}",
        args.ops,
        args.clients,
        args.conns,
        args.value_size,
        args.keys,
        args.runs,
        args.etcd,
        args.detcd
    );
    println!(
        "{:<10} {:>3} {:>11} {:>11} {:>7}  {:>15} {:>15}  {:>13}",
        "workload",
        "m",
        "etcd ops/s",
        "detcd ops/s",
        "ratio",
        "etcd p50/p99",
        "detcd p50/p99",
        "RSS MiB e/d"
    );
    for &members in &args.members {
        let etcd = start(&args.etcd, members);
        let detcd = start(&args.detcd, members);
        preload(&etcd, args).await;
        preload(&detcd, args).await;
        for &w in &args.kv_workloads {
            let (mut e, mut d) = (Vec::new(), Vec::new());
            for r in 0..args.runs {
                if r % 2 == 0 {
                    e.push(run(&etcd, w, args).await);
                    d.push(run(&detcd, w, args).await);
                } else {
                    d.push(run(&detcd, w, args).await);
                    e.push(run(&etcd, w, args).await);
                }
            }
            let (e, d) = (median(e), median(d));
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!(
                "{:<10} {:>3} {:>11.0} {:>11.0} {:>6.2}x  {:>6.2}/{:<8.2} {:>6.2}/{:<8.2}  {:>6}/{:<6}",
                format!("{w:?}").to_lowercase(),
                members,
                e.ops_per_sec,
                d.ops_per_sec,
                d.ops_per_sec / e.ops_per_sec,
                ms(e.p50),
                ms(e.p99),
                ms(d.p50),
                ms(d.p99),
                mib(etcd.rss_kib()),
                mib(detcd.rss_kib()),
            );
        }
    }
}
