//! `--quota-backend-bytes` and alarms on real processes with the real etcdctl: a writer past the
//! quota raises NOSPACE; puts, txns and lease grants are refused with etcd's error while reads
//! and deletes go on; the alarm is listed as etcd lists it, survives `kill -9`, reaches every
//! member of a cluster, and `etcdctl alarm disarm` clears it once there is room again.

// Real processes, real time: the seam rule (clippy.toml) is for the server.
#![allow(clippy::disallowed_methods)]
#![cfg(not(madsim))]

mod common;

use common::{Builder, Kind, Server};

const QUOTA: &str = "300000";

/// Puts 3000-byte values until the quota refuses one; returns how many were accepted.
fn fill(s: &Server) -> usize {
    let value = "x".repeat(3000);
    for i in 0..1000 {
        let o = s.etcdctl(&["put", &format!("fill{i}"), &value], None);
        if !o.success() {
            assert!(
                o.stderr
                    .contains("etcdserver: mvcc: database space exceeded"),
                "{o:?}"
            );
            return i;
        }
    }
    panic!("the quota never refused a put");
}

fn member_id(s: &Server) -> u64 {
    common::member_status(s).expect("endpoint status").0
}

#[test]
fn past_the_quota_nospace_refuses_writes_until_disarmed() {
    let mut s = Builder::new(Kind::Detcd)
        .args(["--quota-backend-bytes", QUOTA])
        .start();
    let accepted = fill(&s);
    assert!(accepted > 10, "only {accepted} puts fit in {QUOTA} bytes");
    let id = member_id(&s);
    let raised = format!("memberID:{id} alarm:NOSPACE \n");
    assert_eq!(s.ok(&["alarm", "list"]), raised);
    // As etcd: the alarm response carries no header.
    let json = s.ok(&["alarm", "list", "-w", "json"]);
    assert_eq!(
        json.trim(),
        format!("{{\"alarms\":[{{\"memberID\":{id},\"alarm\":1}}]}}")
    );
    // Writes that take space are refused; reads and deletes are not.
    assert!(s
        .err(&["put", "a", "b"], None)
        .contains("database space exceeded"));
    assert!(s
        .err(&["lease", "grant", "60"], None)
        .contains("database space exceeded"));
    assert_eq!(
        s.ok(&["get", "fill0", "--print-value-only"]).trim().len(),
        3000
    );
    assert_eq!(s.ok(&["del", "fill0"]).trim(), "1");
    let status = s.ok(&["endpoint", "status", "-w", "json"]);
    assert!(
        status.contains(&format!("\"errors\":[\"memberID:{id} alarm:NOSPACE \"]")),
        "{status}"
    );
    // The alarm is state: it survives kill -9.
    s.kill_9();
    s.restart();
    assert_eq!(s.ok(&["alarm", "list"]), raised);
    assert!(s
        .err(&["put", "a", "b"], None)
        .contains("database space exceeded"));
    // Room again (a larger quota), then disarm: writes go through.
    s.stop();
    s.set_flag("--quota-backend-bytes", "100000000");
    s.restart();
    assert!(s
        .err(&["put", "a", "b"], None)
        .contains("database space exceeded"));
    assert_eq!(s.ok(&["alarm", "disarm"]), raised);
    assert_eq!(s.ok(&["alarm", "list"]), "");
    s.ok(&["put", "a", "b"]);
    s.ok(&["lease", "grant", "60"]);
}

#[test]
fn a_raised_alarm_binds_every_member() {
    let members = common::start_cluster(3, &["--quota-backend-bytes", QUOTA]);
    let id = member_id(&members[0]);
    fill(&members[0]);
    // Listed by every member (before any other member checks its own quota: each member that
    // refuses a write for space raises its own alarm, as in etcd).
    for m in &members {
        assert_eq!(
            m.ok(&["alarm", "list"]),
            format!("memberID:{id} alarm:NOSPACE \n")
        );
    }
    for m in &members {
        assert!(m
            .err(&["put", "a", "b"], None)
            .contains("database space exceeded"));
    }
}

#[test]
fn compaction_and_defrag_make_room_under_the_same_quota() {
    let s = Builder::new(Kind::Detcd)
        .args(["--quota-backend-bytes", QUOTA])
        .start();
    fill(&s);
    assert!(s.ok(&["alarm", "list"]).contains("alarm:NOSPACE"));
    let db_size = |s: &Server| -> u64 {
        let v: serde_json::Value =
            serde_json::from_str(&s.ok(&["endpoint", "status", "-w", "json"])).unwrap();
        v[0]["Status"]["dbSize"].as_u64().unwrap()
    };
    // The runbook: delete, compact away the history, defragment, disarm.
    s.ok(&["del", "fill", "--prefix"]);
    let header: serde_json::Value =
        serde_json::from_str(&s.ok(&["get", "none", "-w", "json"])).unwrap();
    let rev = header["header"]["revision"].as_u64().unwrap();
    s.ok(&["compact", &rev.to_string(), "--physical"]);
    let before = db_size(&s);
    let out = s.ok(&["defrag", "--cluster"]);
    assert!(
        out.starts_with("Finished defragmenting etcd member["),
        "{out}"
    );
    let after = db_size(&s);
    assert!(
        after < before / 2 && after < QUOTA.parse().unwrap(),
        "dbSize {before} -> {after}"
    );
    s.ok(&["alarm", "disarm"]);
    s.ok(&["put", "a", "b"]);
    assert_eq!(s.ok(&["get", "a", "--print-value-only"]), "b\n");
    // Defragment again with data in place: nothing is lost.
    let out = s.ok(&["defrag"]);
    assert!(out.starts_with("Finished defragmenting"), "{out}");
    assert_eq!(s.ok(&["get", "a", "--print-value-only"]), "b\n");
}
