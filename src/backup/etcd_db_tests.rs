use super::*;

fn kv(
    key: &str,
    value: &str,
    create: i64,
    modr: i64,
    version: i64,
    lease: i64,
) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: Bytes::copy_from_slice(key.as_bytes()),
        create_revision: create,
        mod_revision: modr,
        version,
        value: Bytes::copy_from_slice(value.as_bytes()),
        lease,
    }
}

fn rev(main: i64, sub: i64) -> Revision {
    Revision { main, sub }
}

pub(crate) fn sample() -> Content {
    Content {
        revisions: vec![
            RevisionEntry::put(rev(2, 0), kv("a", "1", 2, 2, 1, 0)),
            RevisionEntry::put(rev(3, 0), kv("b", "2", 3, 3, 1, 0x1234)),
            RevisionEntry::put(rev(3, 1), kv("a", "3", 2, 3, 2, 0)),
            RevisionEntry::tombstone(rev(4, 0), "a"),
        ],
        consistent_index: 17,
        scheduled_compact: Some(3),
        finished_compact: Some(3),
        leases: vec![Lease {
            id: 0x1234,
            ttl: 60,
            remaining_ttl: 0,
        }],
        members: vec![Member {
            id: 0x8e9e05c52164694d,
            peer_urls: vec!["http://127.0.0.1:2380".into()],
            is_learner: false,
            name: "default".into(),
            client_urls: vec!["http://127.0.0.1:2379".into()],
        }],
        removed_members: vec![0xabc],
        cluster_version: Some("3.4.0".into()),
        auth_enabled: true,
        auth_revision: 5,
        users: vec![authpb::User {
            name: Bytes::from_static(b"root"),
            password: Bytes::from_static(b"$2a$10$hash"),
            roles: vec!["root".into()],
            options: None,
        }],
        roles: vec![authpb::Role {
            name: Bytes::from_static(b"root"),
            key_permission: vec![],
        }],
        alarms: vec![etcdserverpb::AlarmMember {
            member_id: 0x8e9e05c52164694d,
            alarm: etcdserverpb::AlarmType::Nospace as i32,
        }],
    }
}

#[test]
fn round_trip() {
    let c = sample();
    assert_eq!(read(&write(&c)), Ok(c));
}

#[test]
fn empty_round_trip_has_every_bucket() {
    let file = write(&Content::default());
    let root = bbolt::read(&file).unwrap();
    let names: Vec<&[u8]> = root.entries.keys().map(Vec::as_slice).collect();
    assert_eq!(
        names,
        vec![
            ALARM,
            AUTH,
            AUTH_ROLES,
            AUTH_USERS,
            CLUSTER,
            KEY,
            LEASE,
            MEMBERS,
            MEMBERS_REMOVED,
            META
        ]
    );
    assert_eq!(read(&file), Ok(Content::default()));
}

#[test]
fn encodings_are_etcds() {
    let root = to_buckets(&sample());
    let key = root.bucket(KEY).unwrap();
    let mut tomb = vec![0, 0, 0, 0, 0, 0, 0, 4, b'_', 0, 0, 0, 0, 0, 0, 0, 0, b't'];
    assert_eq!(key.get(&tomb), Some(&[0x0a, 0x01, b'a'][..]));
    tomb.pop();
    tomb[16] = 1;
    tomb[7] = 3;
    assert!(key.get(&tomb).is_some(), "3_1 is stored");
    let meta = root.bucket(META).unwrap();
    assert_eq!(meta.get(CONSISTENT_INDEX), Some(&17u64.to_be_bytes()[..]));
    assert_eq!(
        meta.get(FINISHED_COMPACT),
        Some(&[0, 0, 0, 0, 0, 0, 0, 3, b'_', 0, 0, 0, 0, 0, 0, 0, 0][..])
    );
    let lease = root.bucket(LEASE).unwrap();
    assert_eq!(
        lease.get(&0x1234i64.to_be_bytes()),
        Some(&[0x08, 0xb4, 0x24, 0x10, 60][..])
    );
    let members = root.bucket(MEMBERS).unwrap();
    assert_eq!(
        members.get(b"8e9e05c52164694d"),
        Some(
            &br#"{"id":10276657743932975437,"peerURLs":["http://127.0.0.1:2380"],"name":"default","clientURLs":["http://127.0.0.1:2379"]}"#[..]
        )
    );
    assert_eq!(
        root.bucket(MEMBERS_REMOVED).unwrap().get(b"abc"),
        Some(REMOVED)
    );
    let auth = root.bucket(AUTH).unwrap();
    assert_eq!(auth.get(AUTH_ENABLED), Some(&[1u8][..]));
    assert_eq!(auth.get(AUTH_REVISION), Some(&5u64.to_be_bytes()[..]));
    assert!(root.bucket(AUTH_USERS).unwrap().get(b"root").is_some());
    assert_eq!(root.bucket(ALARM).unwrap().values().count(), 1);
}

#[test]
fn go_member_json_reads() {
    // A member added but not yet started: no name, clientURLs omitted; a learner.
    let json = br#"{"id":12,"peerURLs":["http://a:2380"],"isLearner":true}"#;
    let m: Member = serde_json::from_slice(json).unwrap();
    assert!(m.is_learner && m.name.is_empty() && m.client_urls.is_empty());
    assert_eq!(serde_json::to_vec(&m).unwrap(), json.to_vec());
    let m: Member = serde_json::from_slice(br#"{"id":1,"peerURLs":null}"#).unwrap();
    assert!(m.peer_urls.is_empty());
}

#[test]
fn bad_entries_are_errors() {
    let mut root = to_buckets(&sample());
    root.bucket_mut(KEY).put(b"short".to_vec(), b"".to_vec());
    assert!(matches!(
        from_buckets(&root),
        Err(Error::Entry { bucket: "key", .. })
    ));
    let mut root = to_buckets(&sample());
    root.bucket_mut(META).put(CONSISTENT_INDEX, b"1".to_vec());
    assert!(from_buckets(&root).is_err());
    assert!(matches!(read(b"nope"), Err(Error::Bbolt(_))));
}

#[test]
fn many_revisions_span_branch_pages() {
    let mut c = Content::default();
    for i in 1..=5000i64 {
        let key = format!("key/{i:05}");
        let value = "v".repeat((i % 300) as usize);
        c.revisions.push(RevisionEntry::put(
            rev(i + 1, 0),
            kv(&key, &value, i + 1, i + 1, 1, 0),
        ));
    }
    let file = write(&c);
    assert!(file.len() > 100 * bbolt::page::PAGE_SIZE);
    assert_eq!(read(&file), Ok(c));
}
