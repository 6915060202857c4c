//! The Auth service: users, roles, permissions and tokens (etcd's `v3rpc/auth.go` with the
//! server side of `v3_server.go`).
//!
//! Changes go through raft as the caller, so every member applies them in log order and the
//! root check happens at apply ([`crate::apply`]). Passwords are hashed here, once, with bcrypt
//! at `--bcrypt-cost` off the runtime's threads: the log carries the hash, never the password.
//! Authenticate checks the password here, then proposes the token's random part so every
//! member registers the same simple token; if the auth store changed in between, it checks
//! again. Reads (UserGet/List, RoleGet/List, AuthStatus) are served here after the read
//! barrier, with the same permission rules as etcd applies to them.

use rand::Rng;
use tonic::{Request, Response, Status};

use crate::auth::AuthStore;
use crate::error::Error;
use crate::io::runtime;
use crate::proto::detcdpb::InternalAuthenticateRequest;
use crate::proto::etcdserverpb::auth_server::Auth;
use crate::proto::etcdserverpb::*;
use crate::raft::RaftNode;

use super::caller::caller;

/// etcd's default `--bcrypt-cost` (Go's `bcrypt.DefaultCost`), used when the flag is out of range.
pub const DEFAULT_BCRYPT_COST: u32 = 10;

/// How many times Authenticate checks the password again when the auth store keeps changing
/// under it.
const AUTHENTICATE_ATTEMPTS: usize = 16;

/// Letters of a simple token's random part.
const SIMPLE_TOKEN_LENGTH: usize = 16;

/// etcd's Auth service on one member.
#[derive(Clone)]
pub struct AuthService {
    node: RaftNode,
    bcrypt_cost: u32,
}

impl AuthService {
    /// The Auth service of `node`, hashing passwords at `bcrypt_cost` (etcd's default if it is
    /// outside bcrypt's 4..=31, as etcd does).
    pub fn new(node: RaftNode, bcrypt_cost: u32) -> Self {
        let bcrypt_cost = if (4..=31).contains(&bcrypt_cost) {
            bcrypt_cost
        } else {
            tracing::warn!(
                given = bcrypt_cost,
                "use default bcrypt cost instead of the invalid given cost"
            );
            DEFAULT_BCRYPT_COST
        };
        AuthService { node, bcrypt_cost }
    }

    fn store(&self) -> &AuthStore {
        self.node.auth()
    }

    fn header(&self) -> Option<ResponseHeader> {
        Some(self.node.header(self.node.store().current_revision()))
    }

    /// The bcrypt hash of `password` (`$2a$`, as Go writes it), salted from the seam.
    async fn hash(&self, password: String) -> Result<String, Error> {
        let mut salt = [0u8; 16];
        crate::io::rand::thread_rng().fill(&mut salt[..]);
        let cost = self.bcrypt_cost;
        runtime::off_runtime(move || {
            bcrypt::hash_with_salt(password, cost, salt)
                .map(|h| h.format_for_version(bcrypt::Version::TwoA))
                .map_err(|e| Error::Internal(format!("bcrypt: {e}")))
        })
        .await
    }

    /// etcd's `CheckPassword`: the auth revision the password was found right at.
    async fn check_password(&self, name: &str, password: &str) -> Result<u64, Error> {
        let store = self.store();
        if !store.enabled() {
            return Err(Error::AuthNotEnabled);
        }
        let revision = store.revision();
        let (hash, no_password) = store.password_of(name).ok_or(Error::AuthFailed)?;
        if no_password {
            return Err(Error::NoPasswordUser);
        }
        let password = password.to_string();
        let matches = runtime::off_runtime(move || {
            let hash = String::from_utf8_lossy(&hash).into_owned();
            bcrypt::verify(password, &hash).unwrap_or(false)
        })
        .await;
        if matches {
            Ok(revision)
        } else {
            Err(Error::AuthFailed)
        }
    }
}

/// A simple token's random part: letters from the seam's generator.
fn simple_token_prefix() -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut rng = crate::io::rand::thread_rng();
    (0..SIMPLE_TOKEN_LENGTH)
        .map(|_| LETTERS[rng.gen_range(0..LETTERS.len())] as char)
        .collect()
}

/// Proposes an auth change as the caller of the request, answering its typed response.
macro_rules! propose_as_caller {
    ($self:ident, $req:ident) => {{
        let who = caller(&$self.node, &$req).await?;
        let resp = $self.node.propose(who.as_ref(), $req.into_inner()).await?;
        Ok(Response::new(resp))
    }};
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        req: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        propose_as_caller!(self, req)
    }

    async fn auth_disable(
        &self,
        req: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        propose_as_caller!(self, req)
    }

    async fn auth_status(
        &self,
        req: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        caller(&self.node, &req).await?;
        self.node.read_barrier().await?;
        let store = self.store();
        Ok(Response::new(AuthStatusResponse {
            header: self.header(),
            enabled: store.enabled(),
            auth_revision: store.revision(),
        }))
    }

    async fn authenticate(
        &self,
        req: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        let r = req.into_inner();
        self.node.read_barrier().await?;
        for _ in 0..AUTHENTICATE_ATTEMPTS {
            let checked_revision = match self.check_password(&r.name, &r.password).await {
                Ok(rev) => rev,
                Err(e) => {
                    if e != Error::AuthNotEnabled {
                        tracing::warn!(user = %r.name, "invalid authentication was requested: {e}");
                    }
                    return Err(e.into());
                }
            };
            let internal = InternalAuthenticateRequest {
                name: r.name.clone(),
                simple_token: simple_token_prefix(),
                checked_revision,
            };
            match self.node.propose(None, internal).await {
                // The auth store changed since the password was checked: check it again.
                Err(Error::AuthOldRevision) => continue,
                other => return Ok(Response::new(other?)),
            }
        }
        Err(Error::AuthOldRevision.into())
    }

    async fn user_add(
        &self,
        req: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        let who = caller(&self.node, &req).await?;
        let mut r = req.into_inner();
        if !r.options.is_some_and(|o| o.no_password) {
            r.hashed_password = self.hash(std::mem::take(&mut r.password)).await?;
        }
        r.password.clear();
        Ok(Response::new(self.node.propose(who.as_ref(), r).await?))
    }

    async fn user_get(
        &self,
        req: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        let who = caller(&self.node, &req).await?;
        self.node.read_barrier().await?;
        let roles = self.store().user_get(who.as_ref(), &req.get_ref().name)?;
        Ok(Response::new(AuthUserGetResponse {
            header: self.header(),
            roles,
        }))
    }

    async fn user_list(
        &self,
        req: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        let who = caller(&self.node, &req).await?;
        self.node.read_barrier().await?;
        let users = self.store().user_list(who.as_ref())?;
        Ok(Response::new(AuthUserListResponse {
            header: self.header(),
            users,
        }))
    }

    async fn user_delete(
        &self,
        req: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        propose_as_caller!(self, req)
    }

    async fn user_change_password(
        &self,
        req: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let who = caller(&self.node, &req).await?;
        let mut r = req.into_inner();
        r.hashed_password = self.hash(std::mem::take(&mut r.password)).await?;
        Ok(Response::new(self.node.propose(who.as_ref(), r).await?))
    }

    async fn user_grant_role(
        &self,
        req: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        propose_as_caller!(self, req)
    }

    async fn user_revoke_role(
        &self,
        req: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        propose_as_caller!(self, req)
    }

    async fn role_add(
        &self,
        req: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        propose_as_caller!(self, req)
    }

    async fn role_get(
        &self,
        req: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        let who = caller(&self.node, &req).await?;
        self.node.read_barrier().await?;
        let perm = self.store().role_get(who.as_ref(), &req.get_ref().role)?;
        Ok(Response::new(AuthRoleGetResponse {
            header: self.header(),
            perm,
        }))
    }

    async fn role_list(
        &self,
        req: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        let who = caller(&self.node, &req).await?;
        self.node.read_barrier().await?;
        let roles = self.store().role_list(who.as_ref())?;
        Ok(Response::new(AuthRoleListResponse {
            header: self.header(),
            roles,
        }))
    }

    async fn role_delete(
        &self,
        req: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        propose_as_caller!(self, req)
    }

    async fn role_grant_permission(
        &self,
        req: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        if req.get_ref().perm.is_none() {
            return Err(Error::PermissionNotGiven.into());
        }
        propose_as_caller!(self, req)
    }

    async fn role_revoke_permission(
        &self,
        req: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        propose_as_caller!(self, req)
    }
}
