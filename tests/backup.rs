#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods)]
//! Snapshot files in etcd's format against the real etcd 3.4 tools: a snapshot written by
//! `detcd::backup` passes `etcdctl snapshot status` and `snapshot restore`, and real etcd serves
//! the restored data dir; a snapshot taken from real etcd with `etcdctl snapshot save` reads back
//! with its keys, revisions, lease, member and compaction, and re-written by detcd it hashes the
//! same in `snapshot status`.

mod common;

use std::path::Path;

use bytes::Bytes;
use common::{Builder, Kind, Server};
use detcd::backup::{self, bbolt, etcd_db};
use detcd::proto::mvccpb::KeyValue;
use etcd_db::{Content, Lease, Member, Revision, RevisionEntry};

fn have_etcd() -> bool {
    if common::etcd_available() {
        return true;
    }
    assert_eq!(
        std::env::var("DETCD_SKIP_ETCD_DIFF").as_deref(),
        Ok("1"),
        "real etcd is not installed: apt-get install etcd-server, or set \
         DETCD_SKIP_ETCD_DIFF=1 to skip"
    );
    false
}

fn etcdctl(args: &[&str]) -> common::Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    common::run_etcdctl(&args, None)
}

/// `etcdctl snapshot restore FILE` into `dir/restored` as member n1 on fresh ports (client,
/// peer), as etcd's runbooks do; the ports and the data dir.
fn etcdctl_restore(file: &Path, dir: &Path) -> (u16, u16, std::path::PathBuf) {
    let (client, peer) = common::free_ports();
    let peer_url = format!("http://127.0.0.1:{peer}");
    let data = dir.join("restored");
    let out = etcdctl(&[
        "snapshot",
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--name",
        "n1",
        "--initial-cluster",
        &format!("n1={peer_url}"),
        "--initial-advertise-peer-urls",
        &peer_url,
    ]);
    assert!(out.success(), "snapshot restore failed: {out:?}");
    (client, peer, data)
}

fn status(file: &Path) -> serde_json::Value {
    let out = etcdctl(&["snapshot", "status", file.to_str().unwrap(), "-w", "json"]);
    assert!(out.success(), "snapshot status failed: {out:?}");
    out.json()
}

fn kv(key: &str, value: &str, create: i64, modr: i64, version: i64, lease: i64) -> KeyValue {
    KeyValue {
        key: Bytes::copy_from_slice(key.as_bytes()),
        create_revision: create,
        mod_revision: modr,
        version,
        value: Bytes::copy_from_slice(value.as_bytes()),
        lease,
    }
}

fn rev(main: i64) -> Revision {
    Revision { main, sub: 0 }
}

/// Keys `many/000`.. written one a revision from revision 8 on: enough for branch pages.
const MANY: i64 = 300;
/// The store's revision: `huge`, a value spanning several pages, is the last write.
const LAST: i64 = 8 + MANY;

/// A small store: k1 written twice, k2 once, `gone` put then deleted, a key under a lease, then
/// [`MANY`] keys and a huge value.
fn content() -> Content {
    let mut revisions = vec![
        RevisionEntry::put(rev(2), kv("k1", "v1", 2, 2, 1, 0)),
        RevisionEntry::put(rev(3), kv("k2", "v2", 3, 3, 1, 0)),
        RevisionEntry::put(rev(4), kv("k1", "v1b", 2, 4, 2, 0)),
        RevisionEntry::put(rev(5), kv("gone", "x", 5, 5, 1, 0)),
        RevisionEntry::tombstone(rev(6), "gone"),
        RevisionEntry::put(rev(7), kv("leased", "l", 7, 7, 1, 0x77)),
    ];
    for i in 0..MANY {
        let r = 8 + i;
        let value = format!("{i:0100}");
        revisions.push(RevisionEntry::put(
            rev(r),
            kv(&format!("many/{i:03}"), &value, r, r, 1, 0),
        ));
    }
    revisions.push(RevisionEntry::put(
        rev(LAST),
        kv("huge", &"h".repeat(20_000), LAST, LAST, 1, 0),
    ));
    Content {
        revisions,
        consistent_index: 42,
        leases: vec![Lease {
            id: 0x77,
            ttl: 600,
            remaining_ttl: 0,
        }],
        members: vec![Member {
            id: 0x1234,
            peer_urls: vec!["http://127.0.0.1:1".into()],
            name: "old".into(),
            client_urls: vec!["http://127.0.0.1:2".into()],
            is_learner: false,
        }],
        cluster_version: Some("3.4.0".into()),
        ..Content::default()
    }
}

#[test]
fn etcd_restores_and_serves_our_snapshot() {
    if !have_etcd() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("snap.db");
    let c = content();
    let db = etcd_db::write(&c);
    std::fs::write(&file, backup::with_checksum(&db)).unwrap();

    let st = status(&file);
    let total_keys: usize = etcd_db::to_buckets(&c)
        .entries
        .values()
        .map(|e| match e {
            bbolt::Entry::Bucket(b) => b.values().count(),
            bbolt::Entry::Value(_) => 0,
        })
        .sum();
    assert_eq!(st["revision"], LAST, "{st}");
    assert_eq!(st["totalKey"], total_keys, "{st}");
    assert_eq!(st["totalSize"], db.len(), "{st}");

    let (client, peer, data) = etcdctl_restore(&file, tmp.path());

    // The harness's own --data-dir comes first; the later one wins.
    let etcd = Builder::new(Kind::Etcd)
        .ports(client, peer)
        .args(["--data-dir", data.to_str().unwrap()])
        .start();
    let got = etcd.ok(&["get", "", "--prefix", "-w", "json", "--limit", "3"]);
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(got["header"]["revision"], LAST, "{got}");
    assert_eq!(got["count"], 4 + MANY, "{got}");
    let kvs: Vec<(String, String, i64, i64, i64)> = got["kvs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            (
                String::from_utf8(common::base64_decode(kv["key"].as_str().unwrap())).unwrap(),
                String::from_utf8(common::base64_decode(kv["value"].as_str().unwrap())).unwrap(),
                kv["create_revision"].as_i64().unwrap(),
                kv["mod_revision"].as_i64().unwrap(),
                kv["version"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kvs,
        vec![
            ("huge".into(), "h".repeat(20_000), LAST, LAST, 1),
            ("k1".into(), "v1b".into(), 2, 4, 2),
            ("k2".into(), "v2".into(), 3, 3, 1),
        ]
    );
    assert_eq!(etcd.ok(&["get", "leased", "--print-value-only"]), "l\n");
    let many = etcd.ok(&["get", "many/", "--prefix", "--keys-only"]);
    let many: Vec<&str> = many.lines().filter(|l| !l.is_empty()).collect();
    let expected: Vec<String> = (0..MANY).map(|i| format!("many/{i:03}")).collect();
    assert_eq!(many, expected);
    assert_eq!(
        etcd.ok(&["get", "many/123", "--print-value-only"]),
        format!("{:0100}\n", 123)
    );
    // The history is there too: k1 as of revision 2.
    assert_eq!(
        etcd.ok(&["get", "k1", "--rev", "2", "--print-value-only"]),
        "v1\n"
    );
    let leases = etcd.ok(&["lease", "list"]);
    assert!(leases.contains("77"), "{leases}");
    let ttl = etcd.ok(&["lease", "timetolive", "77", "--keys"]);
    assert!(ttl.contains("leased"), "{ttl}");
    // The restored member replaced the snapshot's old one.
    let members = etcd.ok(&["member", "list"]);
    assert!(
        members.contains("n1") && !members.contains("old"),
        "{members}"
    );
    // And it keeps writing to the file we made.
    etcd.ok(&["put", "k3", "v3"]);
    assert_eq!(etcd.ok(&["get", "k3", "--print-value-only"]), "v3\n");
}

#[test]
fn we_read_a_snapshot_etcd_saved() {
    if !have_etcd() {
        return;
    }
    let etcd: Server = Builder::new(Kind::Etcd).start();
    etcd.ok(&["put", "a", "1"]); // 2
    etcd.ok(&["put", "b", "2"]); // 3
    etcd.ok(&["put", "a", "3"]); // 4
    etcd.ok(&["del", "b"]); // 5
    etcd.ok(&["lease", "grant", "600"]);
    let lease = etcd
        .ok(&["lease", "list"])
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    let lease_id = i64::from_str_radix(&lease, 16).unwrap();
    etcd.ok(&["put", "c", "4", "--lease", &lease]); // 6
    etcd.ok(&["put", "big", &"x".repeat(10_000)]); // 7
                                                   // Enough bulk for etcd's key bucket to need branch pages.
    let bulk = "y".repeat(1500);
    for i in 0..8 {
        etcd.ok(&["put", &format!("bulk/{i}"), &bulk]); // 8..=15
    }
    etcd.ok(&["compact", "4"]);
    etcd.ok(&["role", "add", "reader"]);
    etcd.ok(&[
        "role",
        "grant-permission",
        "reader",
        "read",
        "a",
        "--prefix",
    ]);
    etcd.ok(&["user", "add", "root:secret"]);
    etcd.ok(&["user", "grant-role", "root", "root"]);
    etcd.ok(&["user", "add", "alice:pw"]);
    etcd.ok(&["user", "grant-role", "alice", "reader"]);
    etcd.ok(&["auth", "enable"]);
    let mut etcd = etcd;
    etcd.set_ctl_args(&["--user", "root:secret"]);

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("etcd.db");
    etcd.ok(&["snapshot", "save", file.to_str().unwrap()]);
    let bytes = std::fs::read(&file).unwrap();
    let db = backup::split_checksum(&bytes).expect("etcd's snapshot has a sha256 trailer");
    let c = etcd_db::read(db).unwrap();

    let revs: Vec<(i64, bool, &[u8])> = c
        .revisions
        .iter()
        .take(5)
        .map(|r| (r.revision.main, r.tombstone, &r.kv.key[..]))
        .collect();
    // Compacted at 4: a@2 is gone (a@4 replaces it), b@3 stays (still b as of revision 4).
    assert_eq!(
        revs,
        vec![
            (3, false, &b"b"[..]),
            (4, false, b"a"),
            (5, true, b"b"),
            (6, false, b"c"),
            (7, false, b"big"),
        ]
    );
    assert_eq!(c.revisions.len(), 13);
    assert_eq!(c.revisions[12].kv.key, "bulk/7");
    let c_kv = &c.revisions[3].kv;
    assert_eq!(&c_kv.value[..], b"4");
    assert_eq!(c_kv.lease, lease_id);
    assert_eq!(c.revisions[4].kv.value.len(), 10_000);
    assert_eq!(c.finished_compact, Some(4));
    assert_eq!(c.scheduled_compact, Some(4));
    assert!(c.consistent_index > 0);
    assert_eq!(c.leases.len(), 1);
    assert_eq!(c.leases[0].id, lease_id);
    assert_eq!(c.leases[0].ttl, 600);
    assert_eq!(c.members.len(), 1);
    assert_eq!(c.members[0].name, "n1");
    assert_eq!(c.members[0].peer_urls, vec![etcd.peer_url()]);
    assert_eq!(c.members[0].client_urls, vec![etcd.client_url()]);
    assert_eq!(c.cluster_version.as_deref(), Some("3.4.0"));
    assert!(c.auth_enabled);
    assert!(c.auth_revision > 1);
    let users: Vec<(&[u8], &[String])> = c
        .users
        .iter()
        .map(|u| (&u.name[..], &u.roles[..]))
        .collect();
    assert_eq!(
        users,
        vec![
            (&b"alice"[..], &["reader".to_string()][..]),
            (b"root", &["root".to_string()][..]),
        ]
    );
    assert!(c.users[1].password.starts_with(b"$2a$"));
    let roles: Vec<&[u8]> = c.roles.iter().map(|r| &r.name[..]).collect();
    // etcd 3.4 grants the root role without storing it.
    assert_eq!(roles, vec![&b"reader"[..]]);
    assert_eq!(&c.roles[0].key_permission[0].key[..], b"a");
    assert_eq!(&c.roles[0].key_permission[0].range_end[..], b"b");

    // Nothing lost or added: detcd's buckets for the content are etcd's, byte for byte.
    let raw = bbolt::read(db).unwrap();
    let again = etcd_db::to_buckets(&c);
    for (name, entry) in &raw.entries {
        assert_eq!(
            Some(entry),
            again.entries.get(name),
            "bucket {}",
            String::from_utf8_lossy(name)
        );
    }
    assert_eq!(raw, again);

    // Written again by detcd, the same buckets, keys and values: snapshot status prints the
    // same hash, revision and key count.
    let ours = tmp.path().join("ours.db");
    std::fs::write(&ours, backup::with_checksum(&etcd_db::write(&c))).unwrap();
    let (theirs, mine) = (status(&file), status(&ours));
    for field in ["hash", "revision", "totalKey"] {
        assert_eq!(
            theirs[field], mine[field],
            "{field}: etcd {theirs} detcd {mine}"
        );
    }
}

#[test]
fn etcdctl_snapshot_save_from_detcd_restores_into_real_etcd() {
    if !have_etcd() {
        return;
    }
    let detcd = Server::detcd();
    for args in [
        &["put", "a", "1"][..],
        &["put", "b", "2"],
        &["put", "a", "3"],
        &["del", "b"],
        &["compaction", "4"],
        &["put", "c", "4"],
    ] {
        detcd.ok(args);
    }
    let lease = detcd.ok(&["lease", "grant", "600"]);
    let lease_id = lease.split_whitespace().nth(1).unwrap().to_string();
    detcd.ok(&["put", "leased", "x", "--lease", &lease_id]);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("from-detcd.db");
    let saved = detcd.etcdctl(&["snapshot", "save", file.to_str().unwrap()], None);
    assert!(saved.success(), "{saved:?}");
    let st = status(&file);
    assert_eq!(st["revision"], 7, "{st}");

    let (client, peer) = common::free_ports();
    let peer_url = format!("http://127.0.0.1:{peer}");
    let data = tmp.path().join("restored");
    let out = etcdctl(&[
        "snapshot",
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--name",
        "e1",
        "--initial-cluster",
        &format!("e1={peer_url}"),
        "--initial-advertise-peer-urls",
        &peer_url,
    ]);
    assert!(out.success(), "snapshot restore failed: {out:?}");
    let etcd = Builder::new(Kind::Etcd)
        .ports(client, peer)
        .args(["--data-dir", data.to_str().unwrap()])
        .start();
    let same = |args: &[&str]| {
        assert_eq!(etcd.ok(args), detcd.ok(args), "etcdctl {args:?}");
    };
    same(
        &["get", "", "--prefix", "-w", "fields"]
            .iter()
            .copied()
            .filter(|a| *a != "-w" && *a != "fields")
            .collect::<Vec<_>>(),
    );
    same(&["get", "a", "--print-value-only", "--rev", "4"]);
    assert!(etcd
        .err(&["get", "a", "--rev", "3"], None)
        .contains("compacted"));
    assert_eq!(etcd.ok(&["lease", "list"]), detcd.ok(&["lease", "list"]));
    let ttl = etcd.ok(&["lease", "timetolive", &lease_id, "--keys"]);
    assert!(ttl.contains("leased"), "{ttl}");
    let rev = |s: &Server| {
        s.ok(&["get", "a", "-w", "json"])
            .split("\"revision\":")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .unwrap()
            .to_string()
    };
    assert_eq!(rev(&etcd), rev(&detcd));
}

#[test]
fn detcd_snapshot_restore_migrates_a_real_etcd_snapshot() {
    if !have_etcd() {
        return;
    }
    let etcd = Builder::new(Kind::Etcd).start();
    for args in [
        &["put", "a", "1"][..],
        &["put", "b", "2"],
        &["put", "a", "3"],
        &["del", "b"],
        &["compaction", "3"],
        &["put", "c", "4"],
        &["user", "add", "root:rootpw"],
        &["role", "add", "reader"],
    ] {
        etcd.ok(args);
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("from-etcd.db");
    let saved = etcd.etcdctl(&["snapshot", "save", file.to_str().unwrap()], None);
    assert!(saved.success(), "{saved:?}");
    let expected: Vec<String> = [
        &["get", "", "--prefix", "-w", "json"][..],
        &["get", "a", "--rev", "4", "--print-value-only"],
        &["user", "list"],
        &["role", "list"],
    ]
    .iter()
    .map(|a| etcd.ok(a))
    .collect();
    drop(etcd);

    // A member to restore into: started once for its ports and dirs, then emptied.
    let mut detcd = Builder::new(Kind::Detcd).name("d1").start();
    detcd.stop();
    let data = detcd.data_dir();
    std::fs::remove_dir_all(&data).unwrap();
    let peer_url = detcd.peer_url();
    let mut cmd = std::process::Command::new(Kind::Detcd.binary());
    cmd.args([
        "snapshot",
        "restore",
        file.to_str().unwrap(),
        "--name",
        "d1",
    ])
    .args(["--data-dir", data.to_str().unwrap()])
    .args(["--initial-cluster", &format!("d1={peer_url}")])
    .args(["--initial-advertise-peer-urls", &peer_url])
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let out = common::run_bounded(cmd, None, std::time::Duration::from_secs(30));
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.contains("revision 6"), "{out:?}");
    detcd.restart();
    // Same keys at the same revisions (headers aside: a new cluster), same history and auth.
    let got = detcd.ok(&["get", "", "--prefix", "-w", "json"]);
    let kvs = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap()["kvs"].clone();
    assert_eq!(kvs(&got), kvs(&expected[0]));
    let rev = |s: &str| {
        serde_json::from_str::<serde_json::Value>(s).unwrap()["header"]["revision"].clone()
    };
    assert_eq!(rev(&got), rev(&expected[0]));
    assert_eq!(
        detcd.ok(&["get", "a", "--rev", "4", "--print-value-only"]),
        expected[1]
    );
    assert!(detcd
        .err(&["get", "a", "--rev", "2"], None)
        .contains("compacted"));
    assert_eq!(detcd.ok(&["user", "list"]), expected[2]);
    assert_eq!(detcd.ok(&["role", "list"]), expected[3]);
    // And it carries on from there.
    detcd.ok(&["put", "d", "5"]);
    assert_eq!(detcd.revision(), 7);
    // Restoring into a data dir that holds data is refused.
    let mut again = std::process::Command::new(Kind::Detcd.binary());
    again
        .args(["snapshot", "restore", file.to_str().unwrap()])
        .args(["--data-dir", data.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let out = common::run_bounded(again, None, std::time::Duration::from_secs(30));
    assert!(!out.success() && out.stderr.contains("exists"), "{out:?}");
}

/// The runbook as operators run it with etcd: `etcdctl snapshot restore` into a data dir, then
/// start the member on it — with detcd as the member. Its first start takes etcd's database over
/// (keys, history, revision), keeps etcd's WAL aside, and later starts are ordinary restarts.
#[test]
fn detcd_starts_on_a_data_dir_etcdctl_restored() {
    let source = if have_etcd() {
        Builder::new(Kind::Etcd).start()
    } else {
        Server::detcd()
    };
    source.ok(&["put", "a", "1"]); // 2
    source.ok(&["put", "b", "2"]); // 3
    source.ok(&["put", "a", "3"]); // 4
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("snap.db");
    source.ok(&["snapshot", "save", file.to_str().unwrap()]);
    drop(source);

    let (client, peer, data) = etcdctl_restore(&file, tmp.path());
    assert!(data.join("member/snap/db").is_file());

    // The harness's own --data-dir comes first; the later one wins.
    let mut detcd = Builder::new(Kind::Detcd)
        .ports(client, peer)
        .args(["--data-dir", data.to_str().unwrap()])
        .start();
    let check = |s: &Server| {
        assert_eq!(s.ok(&["get", "a", "--print-value-only"]), "3\n");
        assert_eq!(
            s.ok(&["get", "a", "--rev", "2", "--print-value-only"]),
            "1\n"
        );
        assert_eq!(s.ok(&["get", "b", "--print-value-only"]), "2\n");
    };
    check(&detcd);
    let got: serde_json::Value =
        serde_json::from_str(&detcd.ok(&["get", "a", "-w", "json"])).unwrap();
    assert_eq!(got["header"]["revision"], 4, "{got}");
    assert!(detcd
        .log()
        .contains("taking over a data dir restored by etcdctl"));
    assert!(data.join("member/wal.etcd").is_dir(), "etcd's WAL is kept");
    assert!(detcd
        .ok(&["member", "list"])
        .contains(&format!("http://127.0.0.1:{peer}")));
    detcd.ok(&["put", "c", "4"]); // 5

    detcd.stop();
    detcd.restart();
    check(&detcd);
    assert_eq!(detcd.ok(&["get", "c", "--print-value-only"]), "4\n");
    let got: serde_json::Value =
        serde_json::from_str(&detcd.ok(&["get", "c", "-w", "json"])).unwrap();
    assert_eq!(got["header"]["revision"], 5, "{got}");
}
