//! etcd's Watch service (not built yet: answers `Unimplemented`).

use std::sync::Arc;

use tonic::{Request, Response, Status, Streaming};

use crate::proto::etcdserverpb::watch_server::Watch;
use crate::proto::etcdserverpb::{WatchRequest, WatchResponse};
use crate::raft::RaftNode;
use crate::server::unimplemented::{not_yet, NoStream};

use super::Hub;

/// etcd's Watch service on one member.
#[derive(Clone)]
pub struct WatchService {
    #[allow(dead_code)]
    node: RaftNode,
    #[allow(dead_code)]
    hub: Arc<Hub>,
}

impl WatchService {
    /// A Watch service fed by `hub`, reading history from `node`'s store.
    pub fn new(node: RaftNode, hub: Arc<Hub>) -> Self {
        WatchService { node, hub }
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = NoStream<WatchResponse>;
    async fn watch(
        &self,
        _request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(not_yet("Watch"))
    }
}
