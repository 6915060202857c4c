//! Setting auth up through one member, tokens, and the final reading of every member.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use detcd::proto::authpb::permission::Type;
use detcd::proto::authpb::Permission;
use detcd::proto::etcdserverpb::auth_client::AuthClient;
use detcd::proto::etcdserverpb::kv_client::KvClient;
use detcd::proto::etcdserverpb::{
    AuthEnableRequest, AuthRoleAddRequest, AuthRoleGrantPermissionRequest, AuthStatusRequest,
    AuthUserAddRequest, AuthUserGrantRoleRequest, AuthenticateRequest,
};

use super::{password, PREFIX, REQUEST_TIMEOUT, ROLE, ROOT_PASSWORD, USER};
use crate::workloads::client::{channel, prefix_request, text};

/// Rounds (200 ms apart) the members get to agree after healing.
const ROUNDS: usize = 100;

/// `msg` carrying `token` as etcd's `token` metadata.
pub(super) fn with_token<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Ok(v) = token.parse() {
        req.metadata_mut().insert("token", v);
    }
    req
}

/// The permission the writers' role holds while granted: read and write under [`PREFIX`].
pub(super) fn permission() -> Permission {
    Permission {
        perm_type: Type::Readwrite as i32,
        key: Bytes::from_static(PREFIX.as_bytes()),
        range_end: Bytes::from(detcd::io::disk::prefix_end(PREFIX.as_bytes())),
    }
}

/// A token for `name` with `password` from member `url`: `Ok(None)` if the password was
/// refused, `Err` if there was no definite answer.
pub(super) async fn authenticate(
    url: &str,
    name: &str,
    password: &str,
) -> Result<Option<String>, String> {
    let ch = channel(url, REQUEST_TIMEOUT).await.ok_or("no connection")?;
    let req = AuthenticateRequest {
        name: name.to_string(),
        password: password.to_string(),
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, AuthClient::new(ch).authenticate(req)).await {
        Ok(Ok(r)) => Ok(Some(r.into_inner().token)),
        Ok(Err(s)) if s.message().contains("authentication failed") => Ok(None),
        Ok(Err(s)) => Err(s.message().to_string()),
        Err(_) => Err("timeout".to_string()),
    }
}

/// Sets auth up through member `url` (see the module docs of [`super`]); returns root's token
/// and the auth revision then.
pub(super) async fn set_up(url: &str) -> Result<(String, u64), String> {
    let ch = channel(url, Duration::from_secs(10))
        .await
        .ok_or("no connection")?;
    let mut a = AuthClient::new(ch);
    let e = |what: &'static str| move |s: tonic::Status| format!("{what}: {}", s.message());
    let user = |name: &str, pw: &str| AuthUserAddRequest {
        name: name.to_string(),
        password: pw.to_string(),
        ..Default::default()
    };
    let grant = |user: &str, role: &str| AuthUserGrantRoleRequest {
        user: user.to_string(),
        role: role.to_string(),
    };
    let role = |name: &str| AuthRoleAddRequest {
        name: name.to_string(),
    };
    a.user_add(user("root", ROOT_PASSWORD))
        .await
        .map_err(e("root"))?;
    a.role_add(role("root")).await.map_err(e("root role"))?;
    a.user_grant_role(grant("root", "root"))
        .await
        .map_err(e("root grant"))?;
    a.role_add(role(ROLE)).await.map_err(e("role"))?;
    let perm = AuthRoleGrantPermissionRequest {
        name: ROLE.to_string(),
        perm: Some(permission()),
    };
    a.role_grant_permission(perm)
        .await
        .map_err(e("permission"))?;
    a.user_add(user(USER, &password(0)))
        .await
        .map_err(e("user"))?;
    a.user_grant_role(grant(USER, ROLE))
        .await
        .map_err(e("user grant"))?;
    a.auth_enable(AuthEnableRequest {})
        .await
        .map_err(e("enable"))?;
    let token = authenticate(url, "root", ROOT_PASSWORD)
        .await?
        .ok_or("root's password refused")?;
    let status = a
        .auth_status(with_token(AuthStatusRequest {}, &token))
        .await
        .map_err(e("status"))?;
    Ok((token, status.into_inner().auth_revision))
}

/// What one member reports at the end: its auth revision and the keys under [`PREFIX`] it
/// serves locally.
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    auth_revision: u64,
    keys: BTreeSet<String>,
}

/// Member `url`'s [`View`] with root's token (got again from it if `token` is not valid
/// there); `None` if it does not answer.
async fn view(url: &str, token: &mut String) -> Option<View> {
    for _ in 0..2 {
        let ch = channel(url, REQUEST_TIMEOUT).await?;
        let mut auth = AuthClient::new(ch.clone());
        let status = auth.auth_status(with_token(AuthStatusRequest {}, token));
        let status = match tokio::time::timeout(REQUEST_TIMEOUT, status).await.ok()? {
            Ok(s) => s.into_inner(),
            Err(s) if super::stale_token(&s) => {
                *token = authenticate(url, "root", ROOT_PASSWORD).await.ok()??;
                continue;
            }
            Err(_) => return None,
        };
        let mut read = prefix_request(PREFIX);
        read.serializable = true;
        let mut kv = KvClient::new(ch);
        let range = kv.range(with_token(read, token));
        let r = tokio::time::timeout(REQUEST_TIMEOUT, range)
            .await
            .ok()?
            .ok()?
            .into_inner();
        return Some(View {
            auth_revision: status.auth_revision,
            keys: r.kvs.iter().map(|kv| text(&kv.key)).collect(),
        });
    }
    None
}

/// Waits (bounded) until every member answers the same auth revision and serves the same keys;
/// returns them, or what kept the members apart in the last round.
pub(super) async fn agreed(
    urls: &[String],
    mut token: String,
) -> Result<(u64, BTreeSet<String>), String> {
    let mut last = String::new();
    for _ in 0..ROUNDS {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut views = Vec::new();
        for u in urls {
            views.push(view(u, &mut token).await);
        }
        if let Some(Some(first)) = views.first() {
            if views.iter().all(|v| v.as_ref() == Some(first)) {
                return Ok((first.auth_revision, first.keys.clone()));
            }
        }
        last = views
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Some(v) => format!(
                    "n{}: auth revision {}, {} keys",
                    i + 1,
                    v.auth_revision,
                    v.keys.len()
                ),
                None => format!("n{}: no answer", i + 1),
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    Err(format!(
        "the members did not agree within {} s: {last}",
        ROUNDS / 5
    ))
}
