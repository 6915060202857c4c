use super::*;
use crate::io::disk::SimDisk;
use crate::proto::authpb::permission::Type as PermType;
use crate::proto::authpb::Permission;

fn root_at(auth: &AuthStore) -> AuthInfo {
    AuthInfo {
        username: ROOT.into(),
        revision: auth.revision(),
    }
}

fn user(name: &str, revision: u64) -> AuthInfo {
    AuthInfo {
        username: name.into(),
        revision,
    }
}

fn perm(kind: PermType, key: &str, end: &str) -> Permission {
    Permission {
        perm_type: kind as i32,
        key: Bytes::copy_from_slice(key.as_bytes()),
        range_end: Bytes::copy_from_slice(end.as_bytes()),
    }
}

/// root (with the root role), alice holding role `r` with readwrite on `[a, c)`, auth on.
fn enabled(disk: &Disk) -> AuthStore {
    let auth = AuthStore::new(Tokens::simple(300), false);
    let mut b = WriteBatch::new();
    auth.user_add(None, ROOT, "h", false, &mut b).unwrap();
    assert_eq!(auth.enable(None, &mut b), Err(Error::RootRoleNotExist));
    auth.user_grant_role(None, ROOT, ROOT, &mut b).unwrap();
    auth.user_add(None, "alice", "h", false, &mut b).unwrap();
    auth.role_add(None, "r", &mut b).unwrap();
    auth.role_grant_permission(None, "r", perm(PermType::Readwrite, "a", "c"), &mut b)
        .unwrap();
    auth.user_grant_role(None, "alice", "r", &mut b).unwrap();
    auth.enable(None, &mut b).unwrap();
    disk.write(b).unwrap();
    auth
}

#[test]
fn enabling_needs_root_with_the_root_role() {
    let auth = AuthStore::new(Tokens::simple(300), false);
    let mut b = WriteBatch::new();
    assert_eq!(auth.enable(None, &mut b), Err(Error::RootUserNotExist));
    assert!(!auth.enabled());
    let auth = enabled(&Disk::Sim(SimDisk::new()));
    assert!(auth.enabled());
}

#[test]
fn key_checks_follow_permissions_and_the_revision() {
    let auth = enabled(&Disk::Sim(SimDisk::new()));
    let rev = auth.revision();
    let alice = user("alice", rev);
    assert_eq!(auth.check(Some(&alice), Access::Write, b"b", b""), Ok(()));
    assert_eq!(auth.check(Some(&alice), Access::Read, b"a", b"c"), Ok(()));
    assert_eq!(
        auth.check(Some(&alice), Access::Read, b"a", b"d"),
        Err(Error::PermissionDenied)
    );
    assert_eq!(
        auth.check(None, Access::Read, b"a", b""),
        Err(Error::UserEmpty)
    );
    assert_eq!(
        auth.check(Some(&user("nobody", rev)), Access::Read, b"a", b""),
        Err(Error::PermissionDenied)
    );
    // root may do anything.
    assert_eq!(
        auth.check(Some(&root_at(&auth)), Access::Write, b"z", b""),
        Ok(())
    );
    // A revoked permission bumps the revision: an identity from before is stale.
    let mut b = WriteBatch::new();
    auth.role_revoke_permission(Some(&root_at(&auth)), "r", b"a", b"c", &mut b)
        .unwrap();
    assert!(auth.revision() > rev);
    assert_eq!(
        auth.check(Some(&alice), Access::Write, b"b", b""),
        Err(Error::AuthOldRevision)
    );
    let fresh = user("alice", auth.revision());
    assert_eq!(
        auth.check(Some(&fresh), Access::Write, b"b", b""),
        Err(Error::PermissionDenied)
    );
}

#[test]
fn admin_changes_need_the_root_role_once_auth_is_on() {
    let auth = enabled(&Disk::Sim(SimDisk::new()));
    let mut b = WriteBatch::new();
    let alice = user("alice", auth.revision());
    assert_eq!(
        auth.user_add(Some(&alice), "bob", "h", false, &mut b),
        Err(Error::PermissionDenied)
    );
    assert_eq!(
        auth.user_add(None, "bob", "h", false, &mut b),
        Err(Error::UserEmpty)
    );
    assert_eq!(
        auth.user_list(Some(&user("ghost", 9))),
        Err(Error::UserNotFound)
    );
    // A user reads itself and the roles it holds, nothing else.
    assert_eq!(
        auth.user_get(Some(&alice), "alice"),
        Ok(vec!["r".to_string()])
    );
    assert_eq!(
        auth.user_get(Some(&alice), ROOT),
        Err(Error::PermissionDenied)
    );
    assert_eq!(auth.role_get(Some(&alice), "r").unwrap().len(), 1);
    assert_eq!(
        auth.role_get(Some(&alice), ROOT),
        Err(Error::PermissionDenied)
    );
    // root's own rules.
    let root = root_at(&auth);
    assert_eq!(
        auth.user_delete(Some(&root), ROOT, &mut b),
        Err(Error::InvalidAuthMgmt)
    );
    assert_eq!(
        auth.user_revoke_role(Some(&root), ROOT, ROOT, &mut b),
        Err(Error::InvalidAuthMgmt)
    );
    assert_eq!(
        auth.role_delete(Some(&root), ROOT, &mut b),
        Err(Error::InvalidAuthMgmt)
    );
    assert_eq!(
        auth.user_add(Some(&root), "alice", "h", false, &mut b),
        Err(Error::UserAlreadyExist)
    );
    assert_eq!(
        auth.user_grant_role(Some(&root), "alice", "nope", &mut b),
        Err(Error::RoleNotFound)
    );
    assert_eq!(
        auth.user_revoke_role(Some(&root), "alice", "nope", &mut b),
        Err(Error::RoleNotGranted)
    );
    assert_eq!(
        auth.role_revoke_permission(Some(&root), "r", b"x", b"", &mut b),
        Err(Error::PermissionNotGranted)
    );
    // Deleting a role takes it from every user.
    auth.role_delete(Some(&root), "r", &mut b).unwrap();
    assert_eq!(auth.user_get(Some(&root), "alice"), Ok(vec![]));
}

#[test]
fn granting_a_permission_again_changes_its_type_and_keeps_keys_sorted() {
    let auth = AuthStore::new(Tokens::simple(300), false);
    let mut b = WriteBatch::new();
    auth.role_add(None, "r", &mut b).unwrap();
    for p in [
        perm(PermType::Read, "m", ""),
        perm(PermType::Write, "b", "c"),
        perm(PermType::Readwrite, "m", ""),
    ] {
        auth.role_grant_permission(None, "r", p, &mut b).unwrap();
    }
    let perms = auth.role_get(None, "r").unwrap();
    let keys: Vec<_> = perms.iter().map(|p| (p.key.clone(), p.perm_type)).collect();
    assert_eq!(
        keys,
        vec![
            (Bytes::from("b"), PermType::Write as i32),
            (Bytes::from("m"), PermType::Readwrite as i32)
        ]
    );
}

#[test]
fn the_store_survives_a_reload_from_disk() {
    let disk = Disk::Sim(SimDisk::new());
    let auth = enabled(&disk);
    let again = AuthStore::new(Tokens::simple(300), false);
    again.load(&disk).unwrap();
    assert!(again.enabled());
    assert_eq!(again.revision(), auth.revision());
    assert_eq!(
        again.user_list(Some(&root_at(&again))),
        auth.user_list(Some(&root_at(&auth)))
    );
    let alice = user("alice", again.revision());
    assert_eq!(again.check(Some(&alice), Access::Read, b"b", b""), Ok(()));
    assert!(again.password_of("alice").is_some());
}

#[test]
fn disabling_bumps_the_revision_and_drops_tokens() {
    let auth = enabled(&Disk::Sim(SimDisk::new()));
    let token = auth.tokens().issue("alice", "p", 3, 0, 100).unwrap();
    let rev = auth.revision();
    let mut b = WriteBatch::new();
    auth.disable(Some(&root_at(&auth)), &mut b).unwrap();
    assert!(!auth.enabled());
    assert_eq!(auth.revision(), rev + 1);
    assert!(auth.tokens().resolve(&token, 101).is_none());
    // Off: nothing is checked.
    assert_eq!(auth.check(None, Access::Write, b"zz", b""), Ok(()));
}
