//! `Unimplemented` answers for the parts of etcd's API not built yet, written out for both
//! builds (the simulator's generated traits have no default methods).

use tonic::Status;

use crate::proto::etcdserverpb::auth_server::Auth;
use crate::proto::etcdserverpb::*;

/// The status for an RPC detcd does not serve yet.
pub fn not_yet(rpc: &str) -> Status {
    Status::unimplemented(format!("detcd: {rpc} is not implemented yet"))
}

/// Writes unary methods answering [`not_yet`], in the shape `#[async_trait]` gives trait
/// methods (the attribute runs before this macro expands, so it cannot desugar them itself).
macro_rules! unimplemented_rpcs {
    ($($method:ident($req:ty) -> $resp:ty;)*) => {
        $(
            fn $method<'life0, 'async_trait>(
                &'life0 self,
                _request: tonic::Request<$req>,
            ) -> ::std::pin::Pin<Box<
                dyn ::std::future::Future<Output = Result<tonic::Response<$resp>, tonic::Status>>
                    + Send
                    + 'async_trait,
            >>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async move { Err($crate::server::unimplemented::not_yet(stringify!($method))) })
            }
        )*
    };
}
pub(crate) use unimplemented_rpcs;

/// A stream type for streaming RPCs that are not served yet.
pub type NoStream<T> = futures::stream::Empty<Result<T, Status>>;

/// Serves the services not built yet.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotYet;

#[tonic::async_trait]
impl Auth for NotYet {
    unimplemented_rpcs! {
        auth_enable(AuthEnableRequest) -> AuthEnableResponse;
        auth_disable(AuthDisableRequest) -> AuthDisableResponse;
        auth_status(AuthStatusRequest) -> AuthStatusResponse;
        authenticate(AuthenticateRequest) -> AuthenticateResponse;
        user_add(AuthUserAddRequest) -> AuthUserAddResponse;
        user_get(AuthUserGetRequest) -> AuthUserGetResponse;
        user_list(AuthUserListRequest) -> AuthUserListResponse;
        user_delete(AuthUserDeleteRequest) -> AuthUserDeleteResponse;
        user_change_password(AuthUserChangePasswordRequest) -> AuthUserChangePasswordResponse;
        user_grant_role(AuthUserGrantRoleRequest) -> AuthUserGrantRoleResponse;
        user_revoke_role(AuthUserRevokeRoleRequest) -> AuthUserRevokeRoleResponse;
        role_add(AuthRoleAddRequest) -> AuthRoleAddResponse;
        role_get(AuthRoleGetRequest) -> AuthRoleGetResponse;
        role_list(AuthRoleListRequest) -> AuthRoleListResponse;
        role_delete(AuthRoleDeleteRequest) -> AuthRoleDeleteResponse;
        role_grant_permission(AuthRoleGrantPermissionRequest) -> AuthRoleGrantPermissionResponse;
        role_revoke_permission(AuthRoleRevokePermissionRequest) -> AuthRoleRevokePermissionResponse;
    }
}
