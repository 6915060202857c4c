//! The admin, changing permissions and the password, and the writers, putting keys with the
//! writers' user's tokens.

// The harness runs on madsim's virtual clock, which the seed fixes: reading it is deterministic.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use bytes::Bytes;
use detcd::proto::etcdserverpb::auth_client::AuthClient;
use detcd::proto::etcdserverpb::kv_client::KvClient;
use detcd::proto::etcdserverpb::{
    AuthRoleGrantPermissionRequest, AuthRoleRevokePermissionRequest, AuthUserChangePasswordRequest,
};
use rand::Rng;
use tokio::time::Instant;
use tonic::Status;

use super::judge::{AuthOp, Change, ChangeKind, PutOp, PutOutcome};
use super::setup::{authenticate, permission, with_token};
use super::ROOT_PASSWORD;
use super::{password, refused, stale_token, Shared, PREFIX, REQUEST_TIMEOUT, ROLE, USER};
use crate::workloads::client::{channel, nanos_since, put_request, random_member};

/// Sends `kind` to member `url` with `token`: `Ok` if acknowledged, `Err(Some)` with the
/// cluster's answer, `Err(None)` if there was none; `None` if no connection was made (nothing
/// was sent).
async fn send(url: &str, kind: ChangeKind, token: &str) -> Option<Result<(), Option<Status>>> {
    let ch = channel(url, REQUEST_TIMEOUT).await?;
    let mut a = AuthClient::new(ch);
    let call = async {
        match kind {
            ChangeKind::Revoke => {
                let req = AuthRoleRevokePermissionRequest {
                    role: ROLE.to_string(),
                    key: Bytes::from_static(PREFIX.as_bytes()),
                    range_end: permission().range_end,
                };
                a.role_revoke_permission(with_token(req, token))
                    .await
                    .map(drop)
            }
            ChangeKind::Grant => {
                let req = AuthRoleGrantPermissionRequest {
                    name: ROLE.to_string(),
                    perm: Some(permission()),
                };
                a.role_grant_permission(with_token(req, token))
                    .await
                    .map(drop)
            }
            ChangeKind::Password(g) => {
                let req = AuthUserChangePasswordRequest {
                    name: USER.to_string(),
                    password: password(g),
                    ..Default::default()
                };
                a.user_change_password(with_token(req, token))
                    .await
                    .map(drop)
            }
        }
    };
    Some(match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
        Ok(r) => r.map_err(Some),
        Err(_) => Err(None),
    })
}

/// The admin: every few hundred ms, through a random member, revokes the writers' permission
/// or grants it again (alternating; a refused change is tried again), or, one time in five,
/// sets the writers' password to a new generation; until `until`.
pub(super) async fn admin(
    urls: Vec<String>,
    start: Instant,
    until: Duration,
    mut token: String,
    logs: Shared,
) {
    let mut grant_next = false;
    let mut generation = 0;
    while start.elapsed() < until {
        let pause = madsim::rand::thread_rng().gen_range(100..400);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let kind = if madsim::rand::thread_rng().gen_bool(0.2) {
            generation += 1;
            logs.lock().unwrap().newest_password = generation;
            ChangeKind::Password(generation)
        } else if grant_next {
            ChangeKind::Grant
        } else {
            ChangeKind::Revoke
        };
        let url = &urls[random_member(&urls)];
        let invoke = nanos_since(start);
        let Some(result) = send(url, kind, &token).await else {
            // Not sent: nothing happened (an unsent password generation is taken back).
            if let ChangeKind::Password(g) = kind {
                generation = g - 1;
                logs.lock().unwrap().newest_password = generation;
            }
            continue;
        };
        let complete = nanos_since(start);
        let (ack, no_effect) = match &result {
            Ok(()) => (Some(complete), false),
            Err(Some(s)) => (None, refused(s)),
            Err(None) => (None, false),
        };
        if matches!(kind, ChangeKind::Revoke | ChangeKind::Grant) && !no_effect {
            grant_next = !grant_next;
        }
        if let Err(Some(s)) = &result {
            if stale_token(s) {
                if let Ok(Some(t)) = authenticate(url, "root", ROOT_PASSWORD).await {
                    token = t;
                }
            }
        }
        logs.lock().unwrap().history.changes.push(Change {
            kind,
            invoke,
            ack,
            refused: no_effect,
        });
    }
}

/// A token for the writers' user through a random member, trying the newest password the
/// admin sent, then the two before it; every attempt is recorded.
async fn log_in(urls: &[String], start: Instant, logs: &Shared) -> Option<String> {
    let newest = logs.lock().unwrap().newest_password;
    for generation in (newest.saturating_sub(2)..=newest).rev() {
        let url = &urls[random_member(urls)];
        let invoke = nanos_since(start);
        let answer = authenticate(url, USER, &password(generation)).await;
        let ok = match &answer {
            Ok(t) => Some(t.is_some()),
            Err(_) => None,
        };
        logs.lock().unwrap().history.auths.push(AuthOp {
            generation,
            invoke,
            complete: nanos_since(start),
            ok,
        });
        match answer {
            Ok(Some(token)) => return Some(token),
            Ok(None) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// Writer `w`: puts `p/<w>-<n>` through random members with its token, logging in again when
/// the token is refused as invalid or of an old auth revision; until `until`.
pub(super) async fn writer(
    w: u64,
    urls: Vec<String>,
    start: Instant,
    until: Duration,
    logs: Shared,
) {
    let mut token: Option<String> = None;
    let mut n = 0u64;
    while start.elapsed() < until {
        let Some(t) = token.clone() else {
            token = log_in(&urls, start, &logs).await;
            if token.is_none() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            continue;
        };
        let Some(ch) = channel(&urls[random_member(&urls)], REQUEST_TIMEOUT).await else {
            continue;
        };
        let key = format!("{PREFIX}{w}-{n:05}");
        n += 1;
        let put = with_token(put_request(&key, "v"), &t);
        let invoke = nanos_since(start);
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, KvClient::new(ch).put(put)).await;
        let complete = nanos_since(start);
        let outcome = match answer {
            Ok(Ok(_)) => PutOutcome::Ok,
            Ok(Err(s)) => {
                if stale_token(&s) {
                    token = None;
                }
                if refused(&s) {
                    PutOutcome::Refused(s.message().to_string())
                } else {
                    PutOutcome::Unknown(s.message().to_string())
                }
            }
            Err(_) => PutOutcome::Unknown("timeout".to_string()),
        };
        let denied = matches!(&outcome, PutOutcome::Refused(m) if m.contains("permission denied"));
        logs.lock().unwrap().history.puts.push(PutOp {
            key,
            invoke,
            complete,
            outcome,
        });
        let pause = madsim::rand::thread_rng().gen_range(0..20) + if denied { 30 } else { 0 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}
