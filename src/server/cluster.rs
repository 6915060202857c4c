//! The Cluster service: the member list, and membership changes (validated and committed on the
//! leader by [`crate::cluster::membership`]).

use tonic::{Request, Response, Status};

use crate::cluster::membership::{check_urls, new_member_id, MemberInfo, MembershipOp};
use crate::io::clock;
use crate::proto::etcdserverpb::cluster_server::Cluster;
use crate::proto::etcdserverpb::*;
use crate::raft::RaftNode;

use super::caller::admin;

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

    /// etcd's cluster responses carry no store revision.
    fn header(&self) -> Option<ResponseHeader> {
        Some(self.node.header(0))
    }
}

fn to_pb(m: &MemberInfo) -> Member {
    Member {
        id: m.id,
        name: m.member.name.clone(),
        peer_ur_ls: m.member.peer_urls.clone(),
        client_ur_ls: m.member.client_urls.clone(),
        is_learner: m.reported_learner(),
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        admin(&self.node, &req).await?;
        let r = req.into_inner();
        check_urls(&r.peer_ur_ls)?;
        let id = new_member_id(&r.peer_ur_ls, (clock::unix_nanos() / 1_000_000_000) as i64);
        let op = MembershipOp::Add {
            id,
            peer_urls: r.peer_ur_ls.clone(),
            learner: r.is_learner,
        };
        let members = self.node.change_membership(op).await?;
        let added = members.iter().find(|m| m.id == id).map(to_pb);
        Ok(Response::new(MemberAddResponse {
            header: self.header(),
            member: added,
            members: members.iter().map(to_pb).collect(),
        }))
    }

    async fn member_remove(
        &self,
        req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        admin(&self.node, &req).await?;
        let members = self
            .node
            .change_membership(MembershipOp::Remove {
                id: req.into_inner().id,
            })
            .await?;
        Ok(Response::new(MemberRemoveResponse {
            header: self.header(),
            members: members.iter().map(to_pb).collect(),
        }))
    }

    async fn member_update(
        &self,
        req: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        admin(&self.node, &req).await?;
        let r = req.into_inner();
        let members = self
            .node
            .change_membership(MembershipOp::Update {
                id: r.id,
                peer_urls: r.peer_ur_ls,
            })
            .await?;
        Ok(Response::new(MemberUpdateResponse {
            header: self.header(),
            members: members.iter().map(to_pb).collect(),
        }))
    }

    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        admin(&self.node, &req).await?;
        let members = self
            .node
            .change_membership(MembershipOp::Promote {
                id: req.into_inner().id,
            })
            .await?;
        Ok(Response::new(MemberPromoteResponse {
            header: self.header(),
            members: members.iter().map(to_pb).collect(),
        }))
    }

    /// The committed membership as this member has applied it, as etcd lists its cluster
    /// store; with `linearizable` (etcd 3.5) after a read barrier, so it is the cluster's
    /// current one.
    async fn member_list(
        &self,
        req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if req.get_ref().linearizable {
            self.node.read_barrier().await?;
        }
        let members = self.node.applied_members();
        Ok(Response::new(MemberListResponse {
            header: self.header(),
            members: members.iter().map(to_pb).collect(),
        }))
    }
}
