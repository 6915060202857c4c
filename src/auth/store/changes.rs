//! The auth store's changes — enable, authenticate, users, roles, permissions — each applied in
//! log order with etcd 3.4's checks and error precedence; the records go into the apply's batch,
//! and a change to who may do what bumps the auth revision.

use bytes::Bytes;
use prost::Message;

use super::{name_of, role_key, user_key, AuthInfo, AuthStore, State, ENABLED, REVISION, ROOT};
use crate::error::Error;
use crate::io::disk::WriteBatch;
use crate::proto::authpb::{Permission, Role, User, UserAddOptions};

impl AuthStore {
    fn bump(s: &mut State, batch: &mut WriteBatch) {
        s.revision += 1;
        batch.put(
            Bytes::from_static(REVISION),
            s.revision.to_be_bytes().to_vec(),
        );
        s.rebuild_perms();
    }

    pub(super) fn put_user(batch: &mut WriteBatch, u: &User) {
        batch.put(user_key(&name_of(&u.name)), u.encode_to_vec());
    }

    pub(super) fn put_role(batch: &mut WriteBatch, r: &Role) {
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
