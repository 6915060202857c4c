//! Scale check: simulates many clients against an etcd-like store that
//! reports revisions (so the history cannot be split per key) and times the
//! checker on it.
//!
//! `cargo run --release -p detcd-jepsen --example kv_scale -- [OPS] [CLIENTS] [KEYS]`

use detcd_jepsen::{check, History, KvInput, KvModel, KvOutput, Op, Outcome};
use std::collections::BTreeMap;

/// SplitMix64 step: a tiny deterministic generator.
fn rng(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let target_ops = args.first().copied().unwrap_or(2000) as usize;
    let clients = args.get(1).copied().unwrap_or(8) as usize;
    let keys = args.get(2).copied().unwrap_or(4);
    let mut seed = 42u64;
    let mut rev = 1u64;
    let mut data: BTreeMap<String, (String, u64)> = BTreeMap::new();
    // Per client: (invoke, input, output once executed).
    let mut open: Vec<Option<(u64, KvInput, Option<KvOutput>)>> = vec![None; clients];
    let mut h: History<KvInput, KvOutput> = History::new();
    let mut t = 0u64;
    let mut next_proc: Vec<u64> = (0..clients as u64).collect();
    while h.len() < target_ops {
        t += 1;
        let c = (rng(&mut seed) % clients as u64) as usize;
        let r = rng(&mut seed);
        match open[c].take() {
            None => {
                let key = format!("k{}", r % keys);
                let input = if r % 3 == 0 {
                    KvInput::Put {
                        key,
                        value: format!("v{}", t),
                    }
                } else {
                    KvInput::Get { key }
                };
                open[c] = Some((t, input, None));
            }
            Some((inv, input, None)) => {
                let out = match &input {
                    KvInput::Put { key, value } => {
                        rev += 1;
                        data.insert(key.clone(), (value.clone(), rev));
                        KvOutput::Put {
                            revision: Some(rev),
                        }
                    }
                    KvInput::Get { key } => {
                        let e = data.get(key);
                        KvOutput::Get {
                            value: e.map(|e| e.0.clone()),
                            mod_revision: Some(e.map_or(0, |e| e.1)),
                            revision: Some(rev),
                        }
                    }
                    _ => unreachable!(),
                };
                open[c] = Some((inv, input, Some(out)));
            }
            Some((inv, input, Some(out))) => {
                let crashed = r % 20 == 0;
                h.push(Op {
                    process: next_proc[c],
                    invoke: inv,
                    complete: t,
                    input,
                    outcome: if crashed {
                        Outcome::Info
                    } else {
                        Outcome::Ok(out)
                    },
                });
                if crashed {
                    next_proc[c] += clients as u64;
                }
            }
        }
    }
    // Whatever is still open may or may not have taken effect.
    for (c, o) in open.into_iter().enumerate() {
        if let Some((inv, input, _)) = o {
            h.push(Op {
                process: next_proc[c],
                invoke: inv,
                complete: u64::MAX,
                input,
                outcome: Outcome::Info,
            });
        }
    }
    let model = KvModel::for_history(&h, false);
    let r = check(&model, &h, None);
    println!(
        "{} ops, {} clients, {} keys, revisions observed: {:?} ({} partition(s), {} configurations, {:.1} ms)",
        r.ops,
        clients,
        keys,
        r.verdict,
        r.partitions,
        r.states,
        r.elapsed.as_secs_f64() * 1e3
    );
}
