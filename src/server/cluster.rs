//! The Cluster service: the member list from raft's membership.

use tonic::{Request, Response, Status};

use crate::proto::etcdserverpb::cluster_server::Cluster;
use crate::proto::etcdserverpb::*;

use super::unimplemented::unimplemented_rpcs;
use crate::raft::RaftNode;

/// etcd's Cluster service on one member.
#[derive(Clone)]
pub struct ClusterService {
    node: RaftNode,
}

impl ClusterService {
    /// A Cluster service for `node`.
    pub fn new(node: RaftNode) -> Self {
        ClusterService { node }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    unimplemented_rpcs! {
        member_add(MemberAddRequest) -> MemberAddResponse;
        member_remove(MemberRemoveRequest) -> MemberRemoveResponse;
        member_update(MemberUpdateRequest) -> MemberUpdateResponse;
        member_promote(MemberPromoteRequest) -> MemberPromoteResponse;
    }

    async fn member_list(
        &self,
        _req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        let m = self.node.raft().metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let members = membership
            .nodes()
            .map(|(id, node)| Member {
                id: *id,
                name: node.name.clone(),
                peer_ur_ls: node.peer_urls.clone(),
                client_ur_ls: node.client_urls.clone(),
                is_learner: !membership.voter_ids().any(|v| v == *id),
            })
            .collect();
        // etcd's cluster responses carry no store revision.
        let revision = 0;
        Ok(Response::new(MemberListResponse {
            header: Some(self.node.header(revision)),
            members,
        }))
    }
}
