//! Generated code for etcd's wire protocol (`proto/`) and detcd's internal formats.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// etcd's key-value and event messages.
pub mod mvccpb {
    include!(concat!(env!("OUT_DIR"), "/mvccpb.rs"));
}

/// etcd's users, roles and permissions.
pub mod authpb {
    include!(concat!(env!("OUT_DIR"), "/authpb.rs"));
}

/// etcd's v3 services: KV, Watch, Lease, Cluster, Maintenance, Auth.
pub mod etcdserverpb {
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
}

/// etcd's election service.
pub mod v3electionpb {
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.rs"));
}

/// etcd's lock service.
pub mod v3lockpb {
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.rs"));
}

/// detcd's raft log and disk formats.
pub mod detcdpb {
    include!(concat!(env!("OUT_DIR"), "/detcdpb.rs"));
}
