//! The register workload's judgement: linearizability under etcd's KV model.

use std::time::Duration;

use detcd_jepsen::{check_with, CheckOptions, CheckResult, History, KvModel};

use super::KvOp;

/// Judges a recorded history with etcd's KV model, revisions included (single-threaded: no OS
/// threads inside the simulator).
pub fn check(ops: Vec<KvOp>) -> CheckResult {
    let mut h = History::new();
    for op in ops {
        h.push(op);
    }
    let model = KvModel {
        track_revisions: true,
        ..Default::default()
    };
    check_with(
        &model,
        &h,
        &CheckOptions {
            timeout: Some(Duration::from_secs(60)),
            threads: 1,
            ..Default::default()
        },
    )
}
