//! The backend quota (etcd's `quota.go` with v3rpc's quota servers): a Put, Txn or LeaseGrant
//! that would take the store past `--quota-backend-bytes` is refused with
//! `etcdserver: mvcc: database space exceeded`, and the member raises the NOSPACE alarm through
//! raft so every member refuses such writes until an operator clears it.
//!
//! As in etcd, the cost of a request is an estimate (key + value + a fixed overhead per put, the
//! larger branch of a txn, a fixed overhead per lease) added to the store's current size on disk;
//! a txn that only reads costs nothing but is still refused once the store is over the quota.

use crate::error::Error;
use crate::proto::etcdserverpb::alarm_request::AlarmAction;
use crate::proto::etcdserverpb::request_op::Request as Op;
use crate::proto::etcdserverpb::{AlarmRequest, AlarmType, PutRequest, TxnRequest};
use crate::raft::RaftNode;

/// etcd's quota when the flag is 0: 2 GiB.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Above this etcd warns that the quota may hurt performance: 8 GiB.
pub const MAX_QUOTA_BYTES: u64 = 8 * 1024 * 1024 * 1024;
/// What etcd counts for a lease.
pub const LEASE_OVERHEAD: usize = 64;
/// What etcd counts for a key-value on top of its bytes.
const KV_OVERHEAD: usize = 256;

/// The quota of one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// `None`: no quota (a negative flag).
    max_bytes: Option<u64>,
}

impl Quota {
    /// The quota `--quota-backend-bytes` asks for: negative disables it, 0 means etcd's default.
    pub fn from_flag(bytes: i64) -> Quota {
        let max_bytes = match bytes {
            b if b < 0 => None,
            0 => Some(DEFAULT_QUOTA_BYTES),
            b => {
                if b as u64 > MAX_QUOTA_BYTES {
                    tracing::warn!(
                        quota_bytes = b,
                        "quota exceeds the maximum value ({MAX_QUOTA_BYTES} bytes)"
                    );
                }
                Some(b as u64)
            }
        };
        Quota { max_bytes }
    }

    /// The quota in bytes (`None`: no quota).
    pub fn max_bytes(&self) -> Option<u64> {
        self.max_bytes
    }

    /// Whether `cost` more bytes fit on `size` bytes.
    pub fn allows(&self, size: u64, cost: usize) -> bool {
        self.max_bytes
            .is_none_or(|max| size.saturating_add(cost as u64) < max)
    }

    /// Refuses a request of `cost` bytes on `node` that does not fit, raising NOSPACE first.
    pub async fn check(&self, node: &RaftNode, cost: usize) -> Result<(), Error> {
        if self.allows(node.disk().size_on_disk(), cost) {
            return Ok(());
        }
        tracing::warn!(
            cost,
            size = node.disk().size_on_disk(),
            "a request does not fit in the backend quota; raising NOSPACE"
        );
        let raise = AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: node.id(),
            alarm: AlarmType::Nospace as i32,
        };
        if let Err(e) = node.propose(None, raise).await {
            tracing::warn!("raising the NOSPACE alarm: {e}");
        }
        Err(Error::NoSpace)
    }
}

/// etcd's estimate of what a put takes.
pub fn cost_put(p: &PutRequest) -> usize {
    p.key.len() + p.value.len() + KV_OVERHEAD
}

/// etcd's estimate of what a txn takes: the puts of its larger branch.
pub fn cost_txn(t: &TxnRequest) -> usize {
    let branch = |ops: &[crate::proto::etcdserverpb::RequestOp]| -> usize {
        ops.iter()
            .map(|op| match &op.request {
                Some(Op::RequestPut(p)) => cost_put(p),
                _ => 0,
            })
            .sum()
    };
    branch(&t.success).max(branch(&t.failure))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_reads_as_etcd_reads_it() {
        assert_eq!(Quota::from_flag(-1).max_bytes, None);
        assert_eq!(Quota::from_flag(0).max_bytes, Some(DEFAULT_QUOTA_BYTES));
        let q = Quota::from_flag(1000);
        assert!(q.allows(600, 399));
        assert!(
            !q.allows(600, 400),
            "size + cost must stay strictly below the quota"
        );
        assert!(Quota::from_flag(-1).allows(u64::MAX, usize::MAX));
    }

    #[test]
    fn a_txn_costs_its_larger_branch_of_puts() {
        let put = |k: &str, v: &str| crate::proto::etcdserverpb::RequestOp {
            request: Some(Op::RequestPut(PutRequest {
                key: k.as_bytes().to_vec().into(),
                value: v.as_bytes().to_vec().into(),
                ..Default::default()
            })),
        };
        let t = TxnRequest {
            success: vec![put("a", "1")],
            failure: vec![put("bb", "22"), put("c", "")],
            ..Default::default()
        };
        assert_eq!(cost_txn(&t), (4 + 256) + (1 + 256));
        assert_eq!(cost_txn(&TxnRequest::default()), 0);
    }
}
