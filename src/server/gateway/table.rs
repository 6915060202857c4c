//! Which gRPC method each gateway path calls: the `google.api.http` annotations of etcd 3.4's
//! protos (`rpc.proto`, `v3election.proto`, `v3lock.proto`), all `POST` with the whole request
//! as the body. Paths are under `/v3/`; 3.4 also answers them under the deprecated `/v3beta/`.

/// One gateway path and the method it calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The path under `/v3/`.
    pub path: &'static str,
    /// The fully qualified gRPC service.
    pub service: &'static str,
    /// The method of `service`.
    pub method: &'static str,
}

const fn route(path: &'static str, service: &'static str, method: &'static str) -> Route {
    Route {
        path,
        service,
        method,
    }
}

const KV: &str = "etcdserverpb.KV";
const WATCH: &str = "etcdserverpb.Watch";
const LEASE: &str = "etcdserverpb.Lease";
const CLUSTER: &str = "etcdserverpb.Cluster";
const MAINTENANCE: &str = "etcdserverpb.Maintenance";
const AUTH: &str = "etcdserverpb.Auth";
const ELECTION: &str = "v3electionpb.Election";
const LOCK: &str = "v3lockpb.Lock";

/// Every gateway path. etcd 3.4 annotates both Hash and HashKV with `/v3/maintenance/hash`;
/// its gateway answers that path with Hash, so HashKV has none.
pub const ROUTES: &[Route] = &[
    route("kv/range", KV, "Range"),
    route("kv/put", KV, "Put"),
    route("kv/deleterange", KV, "DeleteRange"),
    route("kv/txn", KV, "Txn"),
    route("kv/compaction", KV, "Compact"),
    route("watch", WATCH, "Watch"),
    route("lease/grant", LEASE, "LeaseGrant"),
    route("lease/revoke", LEASE, "LeaseRevoke"),
    route("kv/lease/revoke", LEASE, "LeaseRevoke"),
    route("lease/keepalive", LEASE, "LeaseKeepAlive"),
    route("lease/timetolive", LEASE, "LeaseTimeToLive"),
    route("kv/lease/timetolive", LEASE, "LeaseTimeToLive"),
    route("lease/leases", LEASE, "LeaseLeases"),
    route("kv/lease/leases", LEASE, "LeaseLeases"),
    route("cluster/member/add", CLUSTER, "MemberAdd"),
    route("cluster/member/remove", CLUSTER, "MemberRemove"),
    route("cluster/member/update", CLUSTER, "MemberUpdate"),
    route("cluster/member/list", CLUSTER, "MemberList"),
    route("cluster/member/promote", CLUSTER, "MemberPromote"),
    route("maintenance/alarm", MAINTENANCE, "Alarm"),
    route("maintenance/status", MAINTENANCE, "Status"),
    route("maintenance/defragment", MAINTENANCE, "Defragment"),
    route("maintenance/hash", MAINTENANCE, "Hash"),
    route("maintenance/snapshot", MAINTENANCE, "Snapshot"),
    route("maintenance/transfer-leadership", MAINTENANCE, "MoveLeader"),
    route("auth/enable", AUTH, "AuthEnable"),
    route("auth/disable", AUTH, "AuthDisable"),
    route("auth/authenticate", AUTH, "Authenticate"),
    route("auth/user/add", AUTH, "UserAdd"),
    route("auth/user/get", AUTH, "UserGet"),
    route("auth/user/list", AUTH, "UserList"),
    route("auth/user/delete", AUTH, "UserDelete"),
    route("auth/user/changepw", AUTH, "UserChangePassword"),
    route("auth/user/grant", AUTH, "UserGrantRole"),
    route("auth/user/revoke", AUTH, "UserRevokeRole"),
    route("auth/role/add", AUTH, "RoleAdd"),
    route("auth/role/get", AUTH, "RoleGet"),
    route("auth/role/list", AUTH, "RoleList"),
    route("auth/role/delete", AUTH, "RoleDelete"),
    route("auth/role/grant", AUTH, "RoleGrantPermission"),
    route("auth/role/revoke", AUTH, "RoleRevokePermission"),
    route("election/campaign", ELECTION, "Campaign"),
    route("election/proclaim", ELECTION, "Proclaim"),
    route("election/leader", ELECTION, "Leader"),
    route("election/observe", ELECTION, "Observe"),
    route("election/resign", ELECTION, "Resign"),
    route("lock/lock", LOCK, "Lock"),
    route("lock/unlock", LOCK, "Unlock"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_unique() {
        let mut paths: Vec<_> = ROUTES.iter().map(|r| r.path).collect();
        paths.sort();
        let n = paths.len();
        paths.dedup();
        assert_eq!(paths.len(), n);
    }

    #[test]
    fn every_method_exists_in_the_descriptors() {
        for r in ROUTES {
            assert!(
                super::super::json::method(r).is_some(),
                "{}/{} is not in the descriptors",
                r.service,
                r.method
            );
        }
    }
}
