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
use crate::proto::authpb::{Permission, Role, User, UserAddOptions};

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

    // --- changes, applied in log order; records go into the apply's batch.

    fn bump(s: &mut State, batch: &mut WriteBatch) {
        s.revision += 1;
        batch.put(
            Bytes::from_static(REVISION),
            s.revision.to_be_bytes().to_vec(),
        );
        s.rebuild_perms();
    }

    fn put_user(batch: &mut WriteBatch, u: &User) {
        batch.put(user_key(&name_of(&u.name)), u.encode_to_vec());
    }

    fn put_role(batch: &mut WriteBatch, r: &Role) {
        batch.put(role_key(&name_of(&r.name)), r.encode_to_vec());
    }

    /// AuthEnable: needs the root user holding the root role; no revision bump.
    pub fn enable(&self, who: Option<&AuthInfo>, batch: &mut WriteBatch) -> Result<(), Error> {
        let mut s = self.lock();
        s.admin(who)?;
        if s.enabled {
            return Ok(());
        }
        if !s.users.contains_key(ROOT) {
            return Err(Error::RootUserNotExist);
        }
        if !s.has_root(ROOT) {
            return Err(Error::RootRoleNotExist);
        }
        s.enabled = true;
        batch.put(Bytes::from_static(ENABLED), vec![1]);
        s.rebuild_perms();
        Ok(())
    }

    /// AuthDisable: bumps the revision and drops every token.
    pub fn disable(&self, who: Option<&AuthInfo>, batch: &mut WriteBatch) -> Result<(), Error> {
        let mut s = self.lock();
        s.admin(who)?;
        if !s.enabled {
            return Ok(());
        }
        s.enabled = false;
        batch.put(Bytes::from_static(ENABLED), vec![0]);
        Self::bump(&mut s, batch);
        self.tokens.drop_all();
        Ok(())
    }

    /// AuthStatus (etcd 3.5): whether auth is on and the revision.
    pub fn status(&self, who: Option<&AuthInfo>) -> Result<(bool, u64), Error> {
        let s = self.lock();
        s.admin(who)?;
        Ok((s.enabled, s.revision))
    }

    /// The apply step of Authenticate: a token for `name` if it may have one.
    pub fn authenticate(
        &self,
        name: &str,
        prefix: &str,
        index: u64,
        now: u64,
    ) -> Result<String, Error> {
        let s = self.lock();
        if !s.enabled {
            return Err(Error::AuthNotEnabled);
        }
        let u = s.users.get(name).ok_or(Error::AuthFailed)?;
        if u.options.as_ref().is_some_and(|o| o.no_password) {
            return Err(Error::AuthFailed);
        }
        self.tokens
            .issue(name, prefix, index, s.revision, now)
            .map_err(|_| Error::AuthRaw("token signing attempted with verify-only key".into()))
    }

    /// UserAdd, with the password already hashed (empty for `no_password`).
    pub fn user_add(
        &self,
        who: Option<&AuthInfo>,
        name: &str,
        hash: &str,
        no_password: bool,
        batch: &mut WriteBatch,
    ) -> Result<(), Error> {
        let mut s = self.lock();
        s.admin(who)?;
        if name.is_empty() {
            return Err(Error::UserEmpty);
        }
        if s.users.contains_key(name) {
            return Err(Error::UserAlreadyExist);
        }
        let u = User {
            name: Bytes::copy_from_slice(name.as_bytes()),
            password: if no_password {
                Bytes::new()
            } else {
                Bytes::copy_from_slice(hash.as_bytes())
            },
            roles: Vec::new(),
            options: Some(UserAddOptions { no_password }),
        };
        Self::put_user(batch, &u);
        s.users.insert(name.to_string(), u);
        Self::bump(&mut s, batch);
        Ok(())
    }

    /// UserGet: the user's roles (sorted); the caller must be an admin or that user.
    pub fn user_get(&self, who: Option<&AuthInfo>, name: &str) -> Result<Vec<String>, Error> {
        let s = self.lock();
        let own = who.is_some_and(|w| w.username == name) && s.enabled;
        if !own {
            s.admin(who)?;
        }
        Ok(s.users.get(name).ok_or(Error::UserNotFound)?.roles.clone())
    }

    /// UserList: every user name, sorted.
    pub fn user_list(&self, who: Option<&AuthInfo>) -> Result<Vec<String>, Error> {
        let s = self.lock();
        s.admin(who)?;
        Ok(s.users.keys().cloned().collect())
    }

    /// UserDelete: root cannot go while auth is on; the user's tokens are dropped.
    pub fn user_delete(
        &self,
        who: Option<&AuthInfo>,
        name: &str,
        batch: &mut WriteBatch,
    ) -> Result<(), Error> {
        let mut s = self.lock();
        s.admin(who)?;
        if s.enabled && name == ROOT {
            return Err(Error::InvalidAuthMgmt);
        }
        if s.users.remove(name).is_none() {
            return Err(Error::UserNotFound);
        }
        batch.delete(user_key(name));
        Self::bump(&mut s, batch);
        self.tokens.drop_user(name);
        Ok(())
    }

    /// UserChangePassword, with the new password already hashed; the user's tokens are dropped.
    pub fn user_change_password(
        &self,
        who: Option<&AuthInfo>,
        name: &str,
        hash: &str,
        batch: &mut WriteBatch,
    ) -> Result<(), Error> {
        let mut s = self.lock();
        s.admin(who)?;
        let u = s.users.get_mut(name).ok_or(Error::UserNotFound)?;
        u.password = Bytes::copy_from_slice(hash.as_bytes());
        let u = u.clone();
        Self::put_user(batch, &u);
        Self::bump(&mut s, batch);
        self.tokens.drop_user(name);
        Ok(())
    }

    /// UserGrantRole: the role must exist unless it is root; granting a held role changes
    /// nothing (no revision bump).
    pub fn user_grant_role(
        &self,
        who: Option<&AuthInfo>,
        user: &str,
        role: &str,
        batch: &mut WriteBatch,
    ) -> Result<(), Error> {
        let mut s = self.lock();
        s.admin(who)?;
        if !s.users.contains_key(user) {
            return Err(Error::UserNotFound);
        }
        if role != ROOT && !s.roles.contains_key(role) {
            return Err(Error::RoleNotFound);
        }
        let u = s.users.get_mut(user).expect("checked");
        if u.roles.iter().any(|r| r == role) {
            return Ok(());
        }
        u.roles.push(role.to_string());
        u.roles.sort();
        let u = u.clone();
        Self::put_user(batch, &u);
        Self::bump(&mut s, batch);
        Ok(())
    }

    /// UserRevokeRole: root keeps the root role while auth is on.
    pub fn user_revoke_role(
        &self,
        who: Option<&AuthInfo>,
        user: &str,
        role: &str,
        batch: &mut WriteBatch,
    ) -> Result<(), Error> {
        let mut s = self.lock();
        s.admin(who)?;
        if s.enabled && user == ROOT && role == ROOT {
            return Err(Error::InvalidAuthMgmt);
        }
        let u = s.users.get_mut(user).ok_or(Error::UserNotFound)?;
        let before = u.roles.len();
        u.roles.retain(|r| r != role);
        if u.roles.len() == before {
            return Err(Error::RoleNotGranted);
        }
        let u = u.clone();
        Self::put_user(batch, &u);
        Self::bump(&mut s, batch);
        Ok(())
    }

    /// RoleAdd.
    pub fn role_add(
        &self,
        who: Option<&AuthInfo>,
        name: &str,
        batch: &mut WriteBatch,
    ) -> Result<(), Error> {
        let mut s = self.lock();
        s.admin(who)?;
        if name.is_empty() {
            return Err(Error::RoleEmpty);
        }
        if s.roles.contains_key(name) {
            return Err(Error::RoleAlreadyExist);
        }
        let r = Role {
            name: Bytes::copy_from_slice(name.as_bytes()),
            key_permission: Vec::new(),
        };
        Self::put_role(batch, &r);
        s.roles.insert(name.to_string(), r);
        Self::bump(&mut s, batch);
        Ok(())
    }

    /// RoleGet: the role's permissions (sorted by key); the caller must be an admin or hold it.
    pub fn role_get(&self, who: Option<&AuthInfo>, name: &str) -> Result<Vec<Permission>, Error> {
        let s = self.lock();
        let holds = s.enabled
            && who.is_some_and(|w| {
                s.users
                    .get(&w.username)
                    .is_some_and(|u| u.roles.iter().any(|r| r == name))
            });
        if !holds {
            s.admin(who)?;
        }
        Ok(s.roles
            .get(name)
            .ok_or(Error::RoleNotFound)?
            .key_permission
            .clone())
    }

    /// RoleList: every role name, sorted.
    pub fn role_list(&self, who: Option<&AuthInfo>) -> Result<Vec<String>, Error> {
        let s = self.lock();
        s.admin(who)?;
        Ok(s.roles.keys().cloned().collect())
    }

    /// RoleDelete: the root role stays while auth is on; the role leaves every user.
    pub fn role_delete(
        &self,
        who: Option<&AuthInfo>,
        name: &str,
        batch: &mut WriteBatch,
    ) -> Result<(), Error> {
        let mut s = self.lock();
        s.admin(who)?;
        if s.enabled && name == ROOT {
            return Err(Error::InvalidAuthMgmt);
        }
        if s.roles.remove(name).is_none() {
            return Err(Error::RoleNotFound);
        }
        batch.delete(role_key(name));
        for u in s.users.values_mut() {
            let before = u.roles.len();
            u.roles.retain(|r| r != name);
            if u.roles.len() != before {
                batch.put(user_key(&name_of(&u.name)), u.encode_to_vec());
            }
        }
        Self::bump(&mut s, batch);
        Ok(())
    }

    /// RoleGrantPermission: a permission with the key and range end of one the role has changes
    /// its type; another is added, the list kept sorted by key. Always bumps the revision.
    pub fn role_grant_permission(
        &self,
        who: Option<&AuthInfo>,
        name: &str,
        perm: Permission,
        batch: &mut WriteBatch,
    ) -> Result<(), Error> {
        let mut s = self.lock();
        s.admin(who)?;
        let r = s.roles.get_mut(name).ok_or(Error::RoleNotFound)?;
        let i = r.key_permission.partition_point(|p| p.key < perm.key);
        match r.key_permission.get_mut(i) {
            Some(p) if p.key == perm.key && p.range_end == perm.range_end => {
                p.perm_type = perm.perm_type;
            }
            _ => {
                r.key_permission.push(perm);
                // Stable: permissions sharing a key keep their order, as in etcd.
                r.key_permission.sort_by(|a, b| a.key.cmp(&b.key));
            }
        }
        let r = r.clone();
        Self::put_role(batch, &r);
        Self::bump(&mut s, batch);
        Ok(())
    }

    /// RoleRevokePermission: removes every permission of that key and range end.
    pub fn role_revoke_permission(
        &self,
        who: Option<&AuthInfo>,
        name: &str,
        key: &[u8],
        range_end: &[u8],
        batch: &mut WriteBatch,
    ) -> Result<(), Error> {
        let mut s = self.lock();
        s.admin(who)?;
        let r = s.roles.get_mut(name).ok_or(Error::RoleNotFound)?;
        let before = r.key_permission.len();
        r.key_permission
            .retain(|p| !(p.key == key && p.range_end == range_end));
        if r.key_permission.len() == before {
            return Err(Error::PermissionNotGranted);
        }
        let r = r.clone();
        Self::put_role(batch, &r);
        Self::bump(&mut s, batch);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
