//! Maintenance on real detcd processes: the corruption checks (a member whose stored data was
//! changed behind its back is refused at start by `--experimental-initial-corrupt-check` and
//! caught by the leader's `--experimental-corrupt-check-time`, which raises the CORRUPT alarm
//! that `etcdctl alarm list` shows and every request then meets), and Downgrade, answered as
//! etcd 3.5 answers for a cluster that cannot downgrade.

// Real processes and real time: not part of the simulator build.
#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use detcd::mvcc::store::REV_PREFIX;
use detcd::proto::etcdserverpb::downgrade_request::DowngradeAction;
use detcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use detcd::proto::etcdserverpb::DowngradeRequest;
use detcd::proto::mvccpb::KeyValue;
use prost::Message;

use common::{member_status, start_cluster, wait_leader, Builder, Kind};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Rewrites the value of `key`'s newest revision in a stopped member's state store, as a disk
/// that silently changed a block would: the member's data no longer matches its log's.
fn change_stored_value(data_dir: &std::path::Path, key: &[u8], value: &[u8]) {
    let disk = detcd::io::disk::sled::open_data_dir(data_dir.to_str().unwrap()).unwrap();
    let end = detcd::io::disk::prefix_end(REV_PREFIX);
    let (rec, kv) = disk
        .scan(REV_PREFIX, &end)
        .unwrap()
        .into_iter()
        .filter_map(|(k, v)| Some((k, KeyValue::decode(v).ok()?)))
        .filter(|(_, kv)| kv.key.as_ref() == key)
        .last()
        .expect("the key has a record");
    let changed = KeyValue {
        value: value.to_vec().into(),
        ..kv
    };
    let mut batch = detcd::io::disk::WriteBatch::new();
    batch.put(rec, changed.encode_to_vec());
    disk.write(batch).unwrap();
    runtime().block_on(disk.sync()).unwrap();
}

#[test]
fn corruption_checks_find_a_member_whose_data_changed() {
    let mut members = start_cluster(3, &["--experimental-corrupt-check-time=1s"]);
    let leader = wait_leader(&members, &[0, 1, 2]);
    for i in 0..10 {
        members[leader].ok(&["put", &format!("k{i}"), "v"]);
    }
    // A healthy cluster passes the checks: no alarm after a few of them.
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(members[leader].ok(&["alarm", "list"]), "");

    let f = (leader + 1) % 3;
    let (f_id, _, _) = member_status(&members[f]).unwrap();
    assert!(members[f].stop().success());
    change_stored_value(&members[f].data_dir(), b"k3", b"changed");

    // Asked to check before serving, it refuses to start.
    members[f].push_arg("--experimental-initial-corrupt-check=true");
    let refused = members[f].try_restart().unwrap_err();
    assert!(
        members[f]
            .log()
            .contains(&format!("{f_id:x} found data inconsistency with peers")),
        "{refused}\n{}",
        members[f].log()
    );

    // Started without it, the leader's periodic check finds it and raises CORRUPT for it.
    members[f].push_arg("--experimental-initial-corrupt-check=false");
    members[f].restart();
    let leader = wait_leader(&members, &[0, 1, 2]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let expected = format!("memberID:{f_id} alarm:CORRUPT");
    loop {
        let alarms = members[leader].etcdctl(&["alarm", "list"], None);
        if alarms.stdout.contains(&expected) {
            break;
        }
        assert!(Instant::now() < deadline, "no CORRUPT alarm: {alarms:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every member refuses reads and writes while CORRUPT is raised, as etcd's do.
    for m in &members {
        assert!(m
            .err(&["put", "k0", "after"], None)
            .contains("etcdserver: corrupt cluster"));
        assert!(m
            .err(&["get", "k0"], None)
            .contains("etcdserver: corrupt cluster"));
    }
}

#[test]
fn downgrade_is_refused_as_etcd_3_5_refuses_a_cluster_that_cannot_downgrade() {
    let s = Builder::new(Kind::Detcd).start();
    let rt = runtime();
    let call = |action: DowngradeAction, version: &str| {
        rt.block_on(async {
            let mut c = MaintenanceClient::connect(format!("http://{}", s.endpoint()))
                .await
                .unwrap();
            c.downgrade(DowngradeRequest {
                action: action as i32,
                version: version.into(),
            })
            .await
            .unwrap_err()
        })
    };
    let e = call(DowngradeAction::Validate, "3.3");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_eq!(e.message(), "etcdserver: invalid downgrade target version");
    let e = call(DowngradeAction::Enable, "3.3.0");
    assert_eq!(e.message(), "etcdserver: invalid downgrade target version");
    let e = call(DowngradeAction::Validate, "three");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        e.message(),
        "etcdserver: wrong downgrade target version format"
    );
    let e = call(DowngradeAction::Cancel, "");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert_eq!(e.message(), "etcdserver: no inflight downgrade job");
}
