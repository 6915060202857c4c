//! The register workload's client: random puts and gets through one member at a time.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use detcd::proto::etcdserverpb::kv_client::KvClient;
use detcd_jepsen::{KvInput, KvOutput, Op, Outcome};
use rand::Rng;
use tonic::transport::Channel;

use super::{KvOp, KEYS};
use crate::workloads::client::{dial, get_request, nanos_since, put_request, revision, text};

/// Connects to the first member that accepts, starting at `*target` and moving on (members
/// may be down, stopped or removed); `None` after ten simulated seconds of refusals.
async fn connect_any(urls: &[String], target: &mut usize) -> Option<KvClient<Channel>> {
    for _ in 0..100 {
        if let Some(c) = dial(&urls[*target]).await {
            return Some(KvClient::new(c));
        }
        *target = (*target + 1) % urls.len();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// One client (`process`): puts and gets on random keys through member `process % n`, moving to
/// another member after a failure, until it has done `ops` operations or `until` has passed.
/// Every operation is appended to `log` with its outcome: a put that failed or timed out is
/// `Info` (it may still take effect), a failed get is `Fail`.
pub async fn client(
    process: u64,
    urls: Vec<String>,
    start: tokio::time::Instant,
    until: Duration,
    ops: usize,
    log: Arc<Mutex<Vec<KvOp>>>,
) {
    let mut target = process as usize % urls.len();
    let Some(mut kv) = connect_any(&urls, &mut target).await else {
        return;
    };
    for i in 0..ops {
        if tokio::time::Instant::now().duration_since(start) >= until {
            return;
        }
        let (key, write) = {
            let mut rng = madsim::rand::thread_rng();
            (
                KEYS[rng.gen_range(0..KEYS.len())].to_string(),
                rng.gen_bool(0.5),
            )
        };
        let invoke = nanos_since(start);
        let (input, outcome) = if write {
            let value = format!("{process}-{i}");
            let req = put_request(&key, &value);
            let outcome = match tokio::time::timeout(Duration::from_secs(3), kv.put(req)).await {
                Ok(Ok(r)) => Outcome::Ok(KvOutput::Put {
                    revision: Some(revision(r.into_inner().header)),
                }),
                _ => Outcome::Info,
            };
            (KvInput::Put { key, value }, outcome)
        } else {
            let req = get_request(&key);
            let outcome = match tokio::time::timeout(Duration::from_secs(3), kv.range(req)).await {
                Ok(Ok(r)) => {
                    let r = r.into_inner();
                    let kv = r.kvs.first();
                    Outcome::Ok(KvOutput::Get {
                        value: kv.map(|kv| text(&kv.value)),
                        mod_revision: Some(kv.map_or(0, |kv| kv.mod_revision as u64)),
                        revision: Some(revision(r.header)),
                    })
                }
                _ => Outcome::Fail,
            };
            (KvInput::Get { key }, outcome)
        };
        let failed = !matches!(outcome, Outcome::Ok(_));
        log.lock().unwrap().push(Op {
            process,
            invoke,
            complete: nanos_since(start),
            input,
            outcome,
        });
        if failed {
            target = (target + 1) % urls.len();
            match connect_any(&urls, &mut target).await {
                Some(c) => kv = c,
                None => return,
            }
        }
    }
}
