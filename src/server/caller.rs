//! Who is calling: the credentials a gRPC request carries — etcd's `token` metadata (or the
//! gateway's `authorization`), and the verified client certificate of its connection — and the
//! identity the member's auth store makes of them ([`crate::auth::identity`]).

use tonic::Request;

use crate::auth::{AuthInfo, Credentials};
use crate::error::Error;
use crate::io::clock;
use crate::io::net::ConnInfo;
use crate::raft::RaftNode;

/// The metadata keys a token may come in, in etcd's order of preference.
const TOKEN_KEYS: [&str; 2] = ["token", "authorization"];

/// What `req` presents about its caller.
pub fn credentials<T>(req: &Request<T>) -> Credentials {
    let token = TOKEN_KEYS.iter().find_map(|k| {
        req.metadata()
            .get(*k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    });
    let common_name = req
        .extensions()
        .get::<ConnInfo>()
        .and_then(|c| c.cert.as_ref())
        .and_then(|c| c.common_name.clone());
    Credentials { token, common_name }
}

/// The Unix time in seconds, on the member's clock (token expiry).
pub fn unix_now() -> u64 {
    (clock::unix_nanos() / 1_000_000_000).max(0) as u64
}

/// The identity `creds` establish on `node`: a simple token first waits for the entry that
/// registered it to be applied here (never longer than a request may take; then the token is
/// invalid).
pub async fn identify(node: &RaftNode, creds: &Credentials) -> Result<Option<AuthInfo>, Error> {
    let auth = node.auth();
    if let Some(index) = auth.token_index(creds)? {
        node.await_applied(index)
            .await
            .map_err(|_| Error::InvalidAuthToken)?;
    }
    auth.identify(creds, unix_now())
}

/// The identity of the caller of `req` on `node`.
pub async fn caller<T>(node: &RaftNode, req: &Request<T>) -> Result<Option<AuthInfo>, Error> {
    identify(node, &credentials(req)).await
}

/// Whether the caller of `req` may do what only the root role may (etcd's
/// `IsAdminPermitted`); auth off, anyone may.
pub async fn admin<T>(node: &RaftNode, req: &Request<T>) -> Result<(), Error> {
    let who = caller(node, req).await?;
    node.auth().check_admin(who.as_ref())
}
