//! Generated code for etcd's wire protocol (`proto/`) and detcd's internal formats.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Includes one generated package: the tonic flavour, or madsim-tonic's simulated flavour
/// (generated beside it, under `sim/`) in a `--cfg madsim` build.
macro_rules! generated {
    ($file:literal) => {
        #[cfg(not(madsim))]
        include!(concat!(env!("OUT_DIR"), "/", $file));
        #[cfg(madsim)]
        include!(concat!(env!("OUT_DIR"), "/sim/", $file));
    };
}

/// etcd's key-value and event messages.
pub mod mvccpb {
    generated!("mvccpb.rs");
}

/// etcd's users, roles and permissions.
pub mod authpb {
    generated!("authpb.rs");
}

/// etcd's v3 services: KV, Watch, Lease, Cluster, Maintenance, Auth.
pub mod etcdserverpb {
    generated!("etcdserverpb.rs");
}

/// etcd's election service.
pub mod v3electionpb {
    generated!("v3electionpb.rs");
}

/// etcd's lock service.
pub mod v3lockpb {
    generated!("v3lockpb.rs");
}

/// detcd's raft log and disk formats.
pub mod detcdpb {
    generated!("detcdpb.rs");
}

impl detcdpb::RaftRequest {
    /// `request` proposed with no identity (refused by a key or admin check while auth is on).
    pub fn anonymous(request: detcdpb::raft_request::Request) -> Self {
        detcdpb::RaftRequest {
            request: Some(request),
            auth: None,
            expired_in_term: 0,
        }
    }

    /// `request` proposed as the member's own housekeeping (revoking an expired lease,
    /// checkpointing leases): never refused by an auth check.
    pub fn system(request: detcdpb::raft_request::Request) -> Self {
        detcdpb::RaftRequest {
            request: Some(request),
            auth: Some(detcdpb::RequestAuth {
                system: true,
                ..Default::default()
            }),
            expired_in_term: 0,
        }
    }
}
