//! The auth store: users, roles, whether auth is on, and the auth revision — replicated (every
//! change is a raft entry, applied in log order through [`crate::apply`]), persisted with the
//! state (`s/auth/…`, so snapshots carry it), and consulted by every request's permission check.
//!
//! The rules, error precedence and revision bumps are etcd 3.4's (see the module docs of
//! [`crate::auth`]). The **auth revision** starts at 1 and goes up by one with every change that
//! changes who may do what; a request judged against an older revision than the one current when
//! it applies is refused (`revision of auth store is old`), so a permission revoked and
//! acknowledged never lets a later write through.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use prost::Message;

use crate::error::Error;
use crate::io::disk::{prefix_end, WriteBatch};
use crate::io::Disk;
use crate::proto::authpb::{Role, User};

use super::perms::UserPerms;
use super::tokens::Tokens;

const ENABLED: &[u8] = b"s/auth/enabled";
const REVISION: &[u8] = b"s/auth/revision";
const USERS: &[u8] = b"s/auth/user/";
const ROLES: &[u8] = b"s/auth/role/";

/// The name of the all-powerful user and role.
pub const ROOT: &str = "root";

/// Who a request comes from: a user, and the auth revision its permission is judged at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthInfo {
    /// The user name.
    pub username: String,
    /// The auth revision the identity was established at.
    pub revision: u64,
}

/// What a key check asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading keys.
    Read,
    /// Writing keys.
    Write,
}

#[derive(Debug)]
struct State {
    enabled: bool,
    /// Invariant: at least 1, never decreases.
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
    /// Each user's merged permissions, rebuilt after every change.
    perms: BTreeMap<String, UserPerms>,
}

impl Default for State {
    fn default() -> Self {
        State {
            enabled: false,
            revision: 1,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
            perms: BTreeMap::new(),
        }
    }
}

impl State {
    fn rebuild_perms(&mut self) {
        self.perms = self
            .users
            .iter()
            .map(|(name, u)| {
                let perms = u
                    .roles
                    .iter()
                    .filter_map(|r| self.roles.get(r))
                    .flat_map(|r| r.key_permission.iter());
                (name.clone(), UserPerms::merge(perms))
            })
            .collect();
    }

    fn has_root(&self, user: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.roles.iter().any(|r| r == ROOT))
    }

    /// etcd's `IsAdminPermitted`: auth off, or a user holding the root role. The revision is not
    /// compared.
    fn admin(&self, who: Option<&AuthInfo>) -> Result<(), Error> {
        if !self.enabled {
            return Ok(());
        }
        let who = who
            .filter(|w| !w.username.is_empty())
            .ok_or(Error::UserEmpty)?;
        if !self.users.contains_key(&who.username) {
            return Err(Error::UserNotFound);
        }
        if !self.has_root(&who.username) {
            return Err(Error::PermissionDenied);
        }
        Ok(())
    }
}

/// The auth store of a member; see the module docs.
#[derive(Debug, Default)]
pub struct AuthStore {
    state: Mutex<State>,
    /// The token provider (`--auth-token`).
    tokens: Tokens,
    /// Whether a verified client certificate's common name names its user
    /// (`--client-cert-auth`).
    common_names: bool,
}

fn user_key(name: &str) -> Vec<u8> {
    [USERS, name.as_bytes()].concat()
}

fn role_key(name: &str) -> Vec<u8> {
    [ROLES, name.as_bytes()].concat()
}

fn name_of(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl AuthStore {
    /// An empty store (auth off, revision 1) issuing tokens with `tokens`, taking client
    /// certificates' common names as user names if `common_names`.
    pub fn new(tokens: Tokens, common_names: bool) -> Self {
        AuthStore {
            state: Mutex::new(State::default()),
            tokens,
            common_names,
        }
    }

    /// Whether a client certificate's common name names its user.
    pub fn accepts_common_names(&self) -> bool {
        self.common_names
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The token provider.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// Replaces the store with what `disk` holds (at open, and after a snapshot install).
    pub fn load(&self, disk: &Disk) -> std::io::Result<()> {
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        let mut s = State {
            enabled: disk.get(ENABLED)?.is_some_and(|v| v.first() == Some(&1)),
            ..State::default()
        };
        if let Some(v) = disk.get(REVISION)? {
            s.revision = u64::from_be_bytes(v[..].try_into().map_err(|_| bad("auth revision"))?);
        }
        for (_, v) in disk.scan(USERS, &prefix_end(USERS))? {
            let u = User::decode(v).map_err(|_| bad("auth user record"))?;
            s.users.insert(name_of(&u.name), u);
        }
        for (_, v) in disk.scan(ROLES, &prefix_end(ROLES))? {
            let r = Role::decode(v).map_err(|_| bad("auth role record"))?;
            s.roles.insert(name_of(&r.name), r);
        }
        s.rebuild_perms();
        *self.lock() = s;
        self.tokens.drop_all();
        Ok(())
    }

    /// Whether auth is on.
    pub fn enabled(&self) -> bool {
        self.lock().enabled
    }

    /// The current auth revision.
    pub fn revision(&self) -> u64 {
        self.lock().revision
    }

    /// Whether `user` exists.
    pub fn user_exists(&self, user: &str) -> bool {
        self.lock().users.contains_key(user)
    }

    /// The stored password hash of `user` and whether it was added without a password.
    pub fn password_of(&self, user: &str) -> Option<(Vec<u8>, bool)> {
        let s = self.lock();
        let u = s.users.get(user)?;
        let no_password = u.options.as_ref().is_some_and(|o| o.no_password);
        Some((u.password.to_vec(), no_password))
    }

    /// Everything the store holds, for snapshots: (enabled, auth revision, users, roles), users
    /// and roles by name.
    pub fn export(&self) -> (bool, u64, Vec<User>, Vec<Role>) {
        let s = self.lock();
        (
            s.enabled,
            s.revision,
            s.users.values().cloned().collect(),
            s.roles.values().cloned().collect(),
        )
    }

    /// The disk records of an auth store with this content, for restoring a snapshot into an
    /// empty data dir.
    pub fn restore_records(
        batch: &mut WriteBatch,
        enabled: bool,
        revision: u64,
        users: &[User],
        roles: &[Role],
    ) {
        batch.put(Bytes::from_static(ENABLED), vec![enabled as u8]);
        batch.put(
            Bytes::from_static(REVISION),
            revision.max(1).to_be_bytes().to_vec(),
        );
        for u in users {
            Self::put_user(batch, u);
        }
        for r in roles {
            Self::put_role(batch, r);
        }
    }

    /// etcd's admin check (`IsAdminPermitted`).
    pub fn check_admin(&self, who: Option<&AuthInfo>) -> Result<(), Error> {
        self.lock().admin(who)
    }

    /// etcd's key check (`isOpPermitted`): auth off; else an identity, at the current auth
    /// revision, of an existing user that holds the root role or a permission covering
    /// `(key, range_end)`.
    pub fn check(
        &self,
        who: Option<&AuthInfo>,
        access: Access,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), Error> {
        let s = self.lock();
        if !s.enabled {
            return Ok(());
        }
        let who = who
            .filter(|w| w.revision != 0 && !w.username.is_empty())
            .ok_or(Error::UserEmpty)?;
        if who.revision < s.revision {
            return Err(Error::AuthOldRevision);
        }
        if !s.users.contains_key(&who.username) {
            return Err(Error::PermissionDenied);
        }
        if s.has_root(&who.username) {
            return Ok(());
        }
        let perms = s.perms.get(&who.username).cloned().unwrap_or_default();
        let set = match access {
            Access::Read => &perms.read,
            Access::Write => &perms.write,
        };
        if set.allows(key, range_end) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }
}

mod changes;
#[cfg(test)]
mod tests;
