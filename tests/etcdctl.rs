//! Drives the real `detcd` binary with the real `etcdctl` (v3.4) and checks
//! exact outputs.

// Real processes and real sockets: not part of the simulator build.
#![cfg(not(madsim))]
// These tests drive real server processes from outside, in real time: the
// seam rule (clippy.toml: no wall clock, sleeps or threads outside src/io/)
// is for the server, not for this harness.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::{run_detcd, Builder, Kind, Server};
use serde_json::Value;

fn b64(s: &str) -> String {
    common::base64_encode(s.as_bytes())
}

fn unb64(v: &Value) -> String {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    String::from_utf8(common::base64_decode(s)).unwrap()
}

/// Writes the sort fixture; returns the server. Final state (revision 9):
///
/// | key | value | create | mod | version |
/// |-----|-------|--------|-----|---------|
/// | j   | before| 8      | 8   | 1       |
/// | k1  | z3    | 3      | 5   | 3       |
/// | k2  | a     | 6      | 6   | 1       |
/// | k3  | m2    | 2      | 7   | 2       |
/// | l   | after | 9      | 9   | 1       |
///
/// so every sort target orders k1..k3 differently.
fn fixture() -> Server {
    let s = Server::detcd();
    for (k, v) in [
        ("k3", "m1"), // rev 2
        ("k1", "z1"), // rev 3
        ("k1", "z2"), // rev 4
        ("k1", "z3"), // rev 5
        ("k2", "a"),  // rev 6
        ("k3", "m2"), // rev 7
        ("j", "before"),
        ("l", "after"),
    ] {
        assert_eq!(s.ok(&["put", k, v]), "OK\n");
    }
    assert_eq!(s.revision(), 9);
    s
}

#[test]
fn get_prefix_from_key_limit_rev_keys_only_value_only() {
    let s = fixture();
    assert_eq!(s.ok(&["get", "k1"]), "k1\nz3\n");
    assert_eq!(s.ok(&["get", "nope"]), "");
    assert_eq!(s.ok(&["get", "--prefix", "k"]), "k1\nz3\nk2\na\nk3\nm2\n");
    // Range end form: [k1, k3)
    assert_eq!(s.ok(&["get", "k1", "k3"]), "k1\nz3\nk2\na\n");
    assert_eq!(
        s.ok(&["get", "--from-key", "k2"]),
        "k2\na\nk3\nm2\nl\nafter\n"
    );
    assert_eq!(
        s.ok(&["get", "--from-key", ""]),
        "j\nbefore\nk1\nz3\nk2\na\nk3\nm2\nl\nafter\n"
    );
    assert_eq!(
        s.ok(&["get", "--prefix", "k", "--limit", "2"]),
        "k1\nz3\nk2\na\n"
    );
    assert_eq!(
        s.ok(&["get", "--from-key", "k", "--limit", "1"]),
        "k1\nz3\n"
    );
    // Historical reads.
    assert_eq!(s.ok(&["get", "k1", "--rev", "3"]), "k1\nz1\n");
    assert_eq!(s.ok(&["get", "k1", "--rev", "4"]), "k1\nz2\n");
    assert_eq!(s.ok(&["get", "k1", "--rev", "2"]), "");
    assert_eq!(
        s.ok(&["get", "--prefix", "k", "--rev", "4"]),
        "k1\nz2\nk3\nm1\n"
    );
    assert_eq!(
        s.ok(&["get", "--prefix", "k", "--rev", "6"]),
        "k1\nz3\nk2\na\nk3\nm1\n"
    );
    assert_eq!(
        s.ok(&["get", "--prefix", "k", "--keys-only"]),
        "k1\n\nk2\n\nk3\n\n"
    );
    assert_eq!(
        s.ok(&["get", "--prefix", "k", "--print-value-only"]),
        "z3\na\nm2\n"
    );
    assert_eq!(
        s.ok(&[
            "get",
            "--from-key",
            "k2",
            "--print-value-only",
            "--limit",
            "2"
        ]),
        "a\nm2\n"
    );
}

#[test]
fn get_sort_by_every_target_both_orders() {
    let s = fixture();
    let cases: &[(&str, [&str; 3])] = &[
        ("KEY", ["k1", "k2", "k3"]),
        ("VERSION", ["k2", "k3", "k1"]),
        ("CREATE", ["k3", "k1", "k2"]),
        ("MODIFY", ["k1", "k2", "k3"]),
        ("VALUE", ["k2", "k3", "k1"]),
    ];
    let value = |k: &str| match k {
        "k1" => "z3",
        "k2" => "a",
        "k3" => "m2",
        _ => unreachable!(),
    };
    let render = |keys: &[&str]| -> String {
        keys.iter()
            .map(|k| format!("{k}\n{}\n", value(k)))
            .collect()
    };
    for (target, asc) in cases {
        let mut desc = *asc;
        desc.reverse();
        assert_eq!(
            s.ok(&[
                "get",
                "--prefix",
                "k",
                "--sort-by",
                target,
                "--order",
                "ASCEND"
            ]),
            render(asc),
            "--sort-by {target} ASCEND"
        );
        assert_eq!(
            s.ok(&[
                "get",
                "--prefix",
                "k",
                "--sort-by",
                target,
                "--order",
                "DESCEND"
            ]),
            render(&desc),
            "--sort-by {target} DESCEND"
        );
        // Limit applies after sorting.
        assert_eq!(
            s.ok(&[
                "get",
                "--prefix",
                "k",
                "--sort-by",
                target,
                "--order",
                "DESCEND",
                "--limit",
                "1"
            ]),
            render(&desc[..1]),
            "--sort-by {target} DESCEND --limit 1"
        );
        // etcd sorts ascending by default when the target is not KEY.
        assert_eq!(
            s.ok(&["get", "--prefix", "k", "--sort-by", target]),
            render(asc),
            "--sort-by {target} without --order"
        );
    }
    // --order without --sort-by sorts by key.
    assert_eq!(
        s.ok(&["get", "--prefix", "k", "--order", "DESCEND"]),
        render(&["k3", "k2", "k1"])
    );
}

#[test]
fn get_json_output() {
    let s = fixture();
    let j: Value = s
        .etcdctl(&["get", "--prefix", "k", "-w", "json"], None)
        .json();
    assert_eq!(j["header"]["revision"], 9);
    assert_eq!(j["count"], 3);
    assert!(j.get("more").is_none() || j["more"] == false, "{j}");
    let kvs = j["kvs"].as_array().unwrap();
    let got: Vec<(String, String, i64, i64, i64)> = kvs
        .iter()
        .map(|kv| {
            (
                unb64(&kv["key"]),
                unb64(&kv["value"]),
                kv["create_revision"].as_i64().unwrap(),
                kv["mod_revision"].as_i64().unwrap(),
                kv["version"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("k1".into(), "z3".into(), 3, 5, 3),
            ("k2".into(), "a".into(), 6, 6, 1),
            ("k3".into(), "m2".into(), 2, 7, 2),
        ]
    );
    assert_eq!(kvs[0]["key"], b64("k1"));

    // --limit: count is the total, more is set.
    let j = s
        .etcdctl(
            &["get", "--prefix", "k", "--limit", "2", "-w", "json"],
            None,
        )
        .json();
    assert_eq!(j["count"], 3);
    assert_eq!(j["more"], true);
    assert_eq!(j["kvs"].as_array().unwrap().len(), 2);

    // --keys-only: no values, count still given.
    let j = s
        .etcdctl(&["get", "--prefix", "k", "--keys-only", "-w", "json"], None)
        .json();
    assert_eq!(j["count"], 3);
    for kv in j["kvs"].as_array().unwrap() {
        assert!(kv.get("value").is_none(), "{kv}");
    }

    // --rev: header carries the current revision, kvs the old state.
    let j = s
        .etcdctl(&["get", "k1", "--rev", "4", "-w", "json"], None)
        .json();
    assert_eq!(j["header"]["revision"], 9);
    assert_eq!(j["count"], 1);
    assert_eq!(unb64(&j["kvs"][0]["value"]), "z2");
    assert_eq!(j["kvs"][0]["version"], 2);

    // Missing key: no kvs, no count.
    let j = s.etcdctl(&["get", "nope", "-w", "json"], None).json();
    assert_eq!(j["header"]["revision"], 9);
    assert!(j.get("kvs").is_none(), "{j}");
    assert!(j.get("count").is_none(), "{j}");

    // Whole keyspace.
    let j = s
        .etcdctl(&["get", "--from-key", "", "-w", "json"], None)
        .json();
    assert_eq!(j["count"], 5);
    assert_eq!(j["kvs"].as_array().unwrap().len(), 5);
}

#[test]
fn del_prefix_and_prev_kv() {
    let s = Server::detcd();
    for (k, v) in [("a/1", "x"), ("a/2", "y"), ("a/3", "z"), ("b", "keep")] {
        s.ok(&["put", k, v]);
    }
    assert_eq!(s.ok(&["del", "nothing"]), "0\n");
    assert_eq!(
        s.revision(),
        5,
        "deleting nothing must not bump the revision"
    );
    assert_eq!(s.ok(&["del", "--prev-kv", "a/2"]), "1\na/2\ny\n");
    assert_eq!(s.revision(), 6);
    assert_eq!(s.ok(&["del", "--prefix", "a/"]), "2\n");
    assert_eq!(s.revision(), 7);
    assert_eq!(s.ok(&["get", "--from-key", ""]), "b\nkeep\n");
    // Old versions are still readable.
    assert_eq!(
        s.ok(&["get", "--prefix", "a/", "--rev", "5"]),
        "a/1\nx\na/2\ny\na/3\nz\n"
    );

    s.ok(&["put", "c/1", "p"]);
    s.ok(&["put", "c/2", "q"]);
    assert_eq!(
        s.ok(&["del", "--prefix", "--prev-kv", "c/"]),
        "2\nc/1\np\nc/2\nq\n"
    );
    let j = s
        .etcdctl(&["del", "--prev-kv", "b", "-w", "json"], None)
        .json();
    assert_eq!(j["deleted"], 1);
    assert_eq!(j["header"]["revision"], 11);
    assert_eq!(unb64(&j["prev_kvs"][0]["key"]), "b");
    assert_eq!(unb64(&j["prev_kvs"][0]["value"]), "keep");
    assert_eq!(s.ok(&["get", "--from-key", ""]), "");
}

#[test]
fn txn_from_stdin_both_outcomes() {
    let s = Server::detcd();
    s.ok(&["put", "flag", "on"]); // rev 2
    s.ok(&["put", "counter", "1"]); // rev 3

    // Success branch: compare holds.
    let script = "value(\"flag\") = \"on\"\nmod(\"counter\") = \"3\"\n\n\
                  put counter 2\nget flag\n\n\
                  put failed yes\n\n";
    let o = s.etcdctl(&["txn"], Some(script));
    assert!(o.success(), "{o:?}");
    assert_eq!(o.stdout, "SUCCESS\n\nOK\n\nflag\non\n");
    assert_eq!(s.ok(&["get", "counter"]), "counter\n2\n");
    assert_eq!(s.ok(&["get", "failed"]), "");
    assert_eq!(s.revision(), 4);

    // Failure branch: compare fails.
    let script = "value(\"flag\") = \"off\"\n\n\
                  put counter 3\n\n\
                  put failed yes\ndel counter\n\n";
    let o = s.etcdctl(&["txn"], Some(script));
    assert!(o.success(), "{o:?}");
    assert_eq!(o.stdout, "FAILURE\n\nOK\n\n1\n");
    assert_eq!(s.ok(&["get", "failed"]), "failed\nyes\n");
    assert_eq!(s.ok(&["get", "counter"]), "");
    assert_eq!(s.revision(), 5);

    // JSON, success.
    let script = "version(\"flag\") = \"1\"\ncreate(\"flag\") > \"1\"\n\n\
                  put counter 10\nget flag\n\n\
                  del flag\n\n";
    let j = s.etcdctl(&["txn", "-w", "json"], Some(script)).json();
    assert_eq!(j["succeeded"], true, "{j}");
    assert_eq!(j["header"]["revision"], 6);
    let r = j["responses"].as_array().unwrap();
    assert_eq!(r.len(), 2, "{j}");
    assert_eq!(r[0]["Response"]["ResponsePut"]["header"]["revision"], 6);
    let range = &r[1]["Response"]["ResponseRange"];
    assert_eq!(range["count"], 1);
    assert_eq!(unb64(&range["kvs"][0]["key"]), "flag");
    assert_eq!(unb64(&range["kvs"][0]["value"]), "on");

    // JSON, failure: no "succeeded" (false is omitted), failure ops ran.
    let script = "value(\"counter\") != \"10\"\n\n\
                  put x 1\n\n\
                  put y 2\nget counter\n\n";
    let j = s.etcdctl(&["txn", "-w", "json"], Some(script)).json();
    assert!(
        j.get("succeeded").is_none() || j["succeeded"] == false,
        "{j}"
    );
    assert_eq!(j["header"]["revision"], 7);
    let r = j["responses"].as_array().unwrap();
    assert_eq!(r.len(), 2, "{j}");
    assert_eq!(r[0]["Response"]["ResponsePut"]["header"]["revision"], 7);
    assert_eq!(
        unb64(&r[1]["Response"]["ResponseRange"]["kvs"][0]["value"]),
        "10"
    );
    assert_eq!(s.ok(&["get", "x"]), "");
    assert_eq!(s.ok(&["get", "y"]), "y\n2\n");

    // A read-only txn does not bump the revision.
    let o = s.etcdctl(&["txn"], Some("\nget y\n\n\n"));
    assert_eq!(o.stdout, "SUCCESS\n\ny\n2\n", "{o:?}");
    assert_eq!(s.revision(), 7);
}

#[test]
fn compaction_and_revision_errors() {
    let s = Server::detcd();
    for v in ["1", "2", "3", "4"] {
        s.ok(&["put", "k", v]); // revs 2..5
    }
    assert_eq!(s.ok(&["get", "k", "--rev", "2"]), "k\n1\n");
    assert_eq!(s.ok(&["compaction", "3"]), "compacted revision 3\n");
    assert_eq!(
        s.err(&["get", "k", "--rev", "2"], None),
        "Error: etcdserver: mvcc: required revision has been compacted\n"
    );
    // The compacted revision itself is still readable.
    assert_eq!(s.ok(&["get", "k", "--rev", "3"]), "k\n2\n");
    assert_eq!(s.ok(&["get", "k", "--rev", "5"]), "k\n4\n");
    assert_eq!(
        s.err(&["get", "k", "--rev", "6"], None),
        "Error: etcdserver: mvcc: required revision is a future revision\n"
    );
    assert_eq!(
        s.err(&["get", "k", "--rev", "1000"], None),
        "Error: etcdserver: mvcc: required revision is a future revision\n"
    );
    // Compacting again at or below the compacted revision, or in the future.
    assert_eq!(
        s.err(&["compaction", "2"], None),
        "Error: etcdserver: mvcc: required revision has been compacted\n"
    );
    assert_eq!(
        s.err(&["compaction", "100"], None),
        "Error: etcdserver: mvcc: required revision is a future revision\n"
    );
    assert_eq!(s.revision(), 5, "compaction does not change the revision");
    assert_eq!(s.ok(&["put", "k", "5"]), "OK\n");
    assert_eq!(s.revision(), 6);
    assert_eq!(
        s.ok(&["compaction", "--physical", "6"]),
        "compacted revision 6\n"
    );
    assert_eq!(s.ok(&["get", "k"]), "k\n5\n");
    assert_eq!(
        s.err(&["get", "k", "--rev", "5"], None),
        "Error: etcdserver: mvcc: required revision has been compacted\n"
    );
}

#[test]
fn endpoint_status_health_and_member_list() {
    let s = Server::detcd();
    s.ok(&["put", "a", "1"]);
    let o = s.etcdctl(&["endpoint", "health"], None);
    assert!(o.success(), "{o:?}");
    let prefix = format!(
        "{} is healthy: successfully committed proposal: took = ",
        s.endpoint()
    );
    // etcdctl 3.4 prints the health line on stderr.
    let health = o.stderr_clean();
    assert!(
        health.starts_with(&prefix) && health.lines().count() == 1,
        "{o:?}"
    );
    let j = s
        .etcdctl(&["endpoint", "health", "-w", "json"], None)
        .json();
    assert_eq!(j[0]["endpoint"], s.endpoint(), "{j}");
    assert_eq!(j[0]["health"], true, "{j}");

    let j = s
        .etcdctl(&["endpoint", "status", "-w", "json"], None)
        .json();
    let e = &j[0];
    assert_eq!(e["Endpoint"], s.endpoint());
    let st = &e["Status"];
    let member_id = st["header"]["member_id"].as_u64().expect("member_id");
    assert_ne!(member_id, 0);
    assert_eq!(st["leader"].as_u64(), Some(member_id), "{st}");
    assert_eq!(st["header"]["revision"], 2);
    let raft_index = st["raftIndex"].as_u64().expect("raftIndex");
    assert!(raft_index >= 2, "{st}");
    assert!(st["raftTerm"].as_u64().unwrap() >= 1, "{st}");
    let version = st["version"].as_str().expect("version");
    assert!(version.starts_with("3."), "{st}");
    // One more write advances the raft index.
    s.ok(&["put", "a", "2"]);
    let j = s
        .etcdctl(&["endpoint", "status", "-w", "json"], None)
        .json();
    assert!(
        j[0]["Status"]["raftIndex"].as_u64().unwrap() > raft_index,
        "{j}"
    );
    assert_eq!(j[0]["Status"]["header"]["revision"], 3);

    // Table form names the member.
    let table = s.ok(&["endpoint", "status"]);
    let hex_id = format!("{member_id:x}");
    assert!(
        table.starts_with(&format!("{}, {hex_id}, {version}, ", s.endpoint())),
        "{table}"
    );

    assert_eq!(
        s.ok(&["member", "list"]),
        format!(
            "{hex_id}, started, n1, {}, {}, false\n",
            s.peer_url(),
            s.client_url()
        )
    );
    let j = s.etcdctl(&["member", "list", "-w", "json"], None).json();
    let m = &j["members"][0];
    assert_eq!(j["members"].as_array().unwrap().len(), 1);
    assert_eq!(m["ID"].as_u64(), Some(member_id));
    assert_eq!(m["name"], "n1");
    assert_eq!(m["peerURLs"], serde_json::json!([s.peer_url()]));
    assert_eq!(m["clientURLs"], serde_json::json!([s.client_url()]));
    assert_eq!(j["header"]["member_id"].as_u64(), Some(member_id));
}

/// Asserts a rejected write changed nothing.
fn assert_unchanged(s: &Server, rev: i64, absent: &[&str]) {
    assert_eq!(s.revision(), rev, "a rejected request changed the revision");
    for k in absent {
        assert_eq!(
            s.ok(&["get", k]),
            "",
            "key {k:?} exists after a rejected request"
        );
    }
}

#[test]
fn error_empty_key() {
    let s = Server::detcd();
    s.ok(&["put", "a", "1"]);
    assert_eq!(
        s.err(&["put", "", "x"], None),
        "Error: etcdserver: key is not provided\n"
    );
    assert_unchanged(&s, 2, &[]);
    assert_eq!(s.ok(&["get", "--from-key", ""]), "a\n1\n");
    assert_eq!(
        s.err(&["get", ""], None),
        "Error: etcdserver: key is not provided\n"
    );
    assert_eq!(
        s.err(&["del", ""], None),
        "Error: etcdserver: key is not provided\n"
    );
    assert_unchanged(&s, 2, &[]);
    assert_eq!(s.ok(&["get", "a"]), "a\n1\n");
}

#[test]
fn error_too_many_txn_ops_and_duplicate_keys() {
    let s = Builder::new(Kind::Detcd)
        .args(["--max-txn-ops", "3"])
        .start();
    s.ok(&["put", "a", "1"]);
    let four = "\nput t1 1\nput t2 2\nput t3 3\nput t4 4\n\n\n";
    assert_eq!(
        s.err(&["txn"], Some(four)),
        "Error: etcdserver: too many operations in txn request\n"
    );
    assert_unchanged(&s, 2, &["t1", "t2", "t3", "t4"]);
    // Three is fine.
    let o = s.etcdctl(&["txn"], Some("\nput t1 1\nput t2 2\nput t3 3\n\n\n"));
    assert_eq!(o.stdout, "SUCCESS\n\nOK\n\nOK\n\nOK\n", "{o:?}");
    assert_eq!(s.revision(), 3);
    // The limit applies to the failure branch too.
    let o = s.etcdctl(
        &["txn"],
        Some("value(\"a\") = \"1\"\n\nput u 1\n\nput f1 1\nput f2 2\nput f3 3\nput f4 4\n\n"),
    );
    assert!(!o.success(), "{o:?}");
    assert_eq!(
        o.stderr_clean(),
        "Error: etcdserver: too many operations in txn request\n"
    );
    assert_unchanged(&s, 3, &["u", "f1"]);

    // Duplicate keys.
    let dup = "\nput d 1\nput d 2\n\n\n";
    assert_eq!(
        s.err(&["txn"], Some(dup)),
        "Error: etcdserver: duplicate key given in txn request\n"
    );
    assert_unchanged(&s, 3, &["d"]);
    let dup = "\nput d 1\ndel d\n\n\n";
    assert_eq!(
        s.err(&["txn"], Some(dup)),
        "Error: etcdserver: duplicate key given in txn request\n"
    );
    assert_unchanged(&s, 3, &["d"]);
    // Overlapping delete range and put.
    let dup = "\nput d/x 1\ndel d/ --prefix\n\n\n";
    assert_eq!(
        s.err(&["txn"], Some(dup)),
        "Error: etcdserver: duplicate key given in txn request\n"
    );
    assert_unchanged(&s, 3, &["d/x"]);
    // Reads of a written key are fine; so is the same key in different branches.
    let o = s.etcdctl(&["txn"], Some("\nput d 1\nget d\n\n\n"));
    assert!(o.success(), "{o:?}");
    assert_eq!(o.stdout, "SUCCESS\n\nOK\n\nd\n1\n");
    let o = s.etcdctl(
        &["txn"],
        Some("value(\"a\") = \"1\"\n\nput e 1\n\nput e 2\n\n"),
    );
    assert!(o.success(), "{o:?}");
    assert_eq!(s.ok(&["get", "e"]), "e\n1\n");
}

#[test]
fn error_request_too_large() {
    let s = Builder::new(Kind::Detcd)
        .args(["--max-request-bytes", "1024"])
        .start();
    s.ok(&["put", "a", "1"]);
    let big = "x".repeat(4096);
    assert_eq!(
        s.err(&["put", "big", "--", &big], None),
        "Error: etcdserver: request is too large\n"
    );
    assert_unchanged(&s, 2, &["big"]);
    // Also when the value comes from stdin (etcdctl reads it if only the key is given).
    assert_eq!(
        s.err(&["put", "big"], Some(&big)),
        "Error: etcdserver: request is too large\n"
    );
    assert_unchanged(&s, 2, &["big"]);
    // Also inside a txn.
    let txn = format!("\nput big {big}\n\n\n");
    assert_eq!(
        s.err(&["txn"], Some(&txn)),
        "Error: etcdserver: request is too large\n"
    );
    assert_unchanged(&s, 2, &["big"]);
    // A value that fits is accepted.
    let small = "y".repeat(512);
    assert_eq!(s.ok(&["put", "small", &small]), "OK\n");
    assert_eq!(
        s.ok(&["get", "small", "--print-value-only"]),
        format!("{small}\n")
    );
    assert_eq!(s.revision(), 3);
}

#[test]
fn error_unknown_lease() {
    let s = Server::detcd();
    s.ok(&["put", "a", "1"]);
    assert_eq!(
        s.err(&["put", "k", "v", "--lease=1234"], None),
        "Error: etcdserver: requested lease not found\n"
    );
    assert_unchanged(&s, 2, &["k"]);
    let txn = "\nput k v --lease=1234\n\n\n";
    assert_eq!(
        s.err(&["txn"], Some(txn)),
        "Error: etcdserver: requested lease not found\n"
    );
    assert_unchanged(&s, 2, &["k"]);
}

#[test]
fn restart_keeps_data_and_revision_continues() {
    let mut s = Server::detcd();
    for i in 0..5 {
        s.ok(&["put", &format!("key{i}"), &format!("val{i}")]);
    }
    s.ok(&["del", "key0"]);
    s.ok(&["compaction", "3"]);
    assert_eq!(s.revision(), 7);
    let status = s.stop();
    assert!(
        status.success(),
        "SIGTERM should exit cleanly, got {status}"
    );
    s.restart();
    assert_eq!(s.revision(), 7);
    assert_eq!(
        s.ok(&["get", "--prefix", "key"]),
        "key1\nval1\nkey2\nval2\nkey3\nval3\nkey4\nval4\n"
    );
    let j = s.etcdctl(&["get", "key1", "-w", "json"], None).json();
    assert_eq!(j["kvs"][0]["create_revision"], 3);
    assert_eq!(j["kvs"][0]["mod_revision"], 3);
    assert_eq!(s.ok(&["get", "key0", "--rev", "6"]), "key0\nval0\n");
    // The compaction survived the restart.
    assert_eq!(
        s.err(&["get", "key0", "--rev", "2"], None),
        "Error: etcdserver: mvcc: required revision has been compacted\n"
    );
    assert_eq!(s.ok(&["put", "after", "restart"]), "OK\n");
    let j = s.etcdctl(&["get", "after", "-w", "json"], None).json();
    assert_eq!(j["header"]["revision"], 8);
    assert_eq!(j["kvs"][0]["mod_revision"], 8);
    assert_eq!(s.ok(&["put", "key1", "again"]), "OK\n");
    let j = s.etcdctl(&["get", "key1", "-w", "json"], None).json();
    assert_eq!(j["kvs"][0]["version"], 2);
    assert_eq!(j["kvs"][0]["mod_revision"], 9);
}

#[test]
fn kill_9_right_after_each_acknowledged_put_loses_nothing() {
    let mut s = Server::detcd();
    let n = 20;
    for i in 0..n {
        assert_eq!(
            s.ok(&["put", &format!("k{i:02}"), &format!("v{i}")]),
            "OK\n"
        );
        s.kill_9();
        s.restart();
        assert_eq!(s.revision(), i + 2, "after kill -9 #{i}");
    }
    let expected: String = (0..n).map(|i| format!("k{i:02}\nv{i}\n")).collect();
    assert_eq!(s.ok(&["get", "--prefix", "k"]), expected);
    assert_eq!(s.ok(&["put", "next", "x"]), "OK\n");
    assert_eq!(s.revision(), n + 2);
}

#[test]
fn kill_9_after_a_burst_of_puts_loses_nothing() {
    let mut s = Server::detcd();
    // A txn with many puts and a stream of single puts, then SIGKILL at once.
    let n = 40;
    for i in 0..n {
        assert_eq!(s.ok(&["put", &format!("b{i:02}"), &format!("{i}")]), "OK\n");
    }
    let o = s.etcdctl(
        &["txn"],
        Some("\nput t1 1\nput t2 2\nput t3 3\nput t4 4\nput t5 5\n\n\n"),
    );
    assert!(o.success(), "{o:?}");
    s.kill_9();
    s.restart();
    assert_eq!(s.revision(), n + 2);
    let o = s.etcdctl(&["get", "--prefix", "b", "--keys-only", "-w", "json"], None);
    assert_eq!(o.json()["count"], n);
    assert_eq!(
        s.ok(&["get", "--prefix", "t", "--print-value-only"]),
        "1\n2\n3\n4\n5\n"
    );
    // And a second crash with nothing in between.
    s.kill_9();
    s.restart();
    assert_eq!(s.revision(), n + 2);
    assert_eq!(s.ok(&["get", "b39"]), "b39\n39\n");
}

#[test]
fn kill_9_during_concurrent_puts_keeps_every_acknowledged_one() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let mut s = Server::detcd();
    let endpoint = s.endpoint();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let endpoint = endpoint.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0..1000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let key = format!("w{w}-{i:04}");
                    let o = common::run_etcdctl(
                        &[
                            format!("--endpoints={endpoint}"),
                            "--dial-timeout=1s".into(),
                            "--command-timeout=2s".into(),
                            "put".into(),
                            key.clone(),
                            format!("value-{i}"),
                        ],
                        None,
                    );
                    if o.success() && o.stdout == "OK\n" {
                        acked.push(key);
                    } else {
                        // The server is gone; anything after this is unacknowledged.
                        break;
                    }
                }
                acked
            })
        })
        .collect();
    // Let the writers get going, then pull the plug mid-stream.
    std::thread::sleep(Duration::from_millis(700));
    s.kill_9();
    stop.store(true, Ordering::SeqCst);
    let acked: Vec<String> = writers
        .into_iter()
        .flat_map(|h| h.join().expect("writer thread"))
        .collect();
    assert!(
        acked.len() >= 4,
        "expected some acknowledged puts before the kill, got {acked:?}"
    );
    eprintln!("{} puts acknowledged before kill -9", acked.len());
    s.restart();
    let j = s
        .etcdctl(&["get", "--prefix", "w", "-w", "json"], None)
        .json();
    let present: std::collections::BTreeMap<String, String> = j["kvs"]
        .as_array()
        .map(|kvs| {
            kvs.iter()
                .map(|kv| (unb64(&kv["key"]), unb64(&kv["value"])))
                .collect()
        })
        .unwrap_or_default();
    let lost: Vec<&String> = acked.iter().filter(|k| !present.contains_key(*k)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged puts lost after kill -9: {lost:?}",
        lost.len(),
        acked.len()
    );
    for k in &acked {
        let i: u32 = k.rsplit('-').next().unwrap().parse().unwrap();
        assert_eq!(present[k], format!("value-{i}"));
    }
    // Every applied put got its own revision; nothing beyond that appeared.
    let rev = j["header"]["revision"].as_i64().unwrap();
    assert_eq!(rev as usize, 1 + present.len(), "{j}");
}

#[test]
fn version_flag() {
    let o = run_detcd(&["--version"], &[], Duration::from_secs(10));
    assert!(o.success(), "{o:?}");
    assert!(!o.stdout.trim().is_empty(), "{o:?}");
    assert!(o.stdout.contains("Version"), "{o:?}");
}

#[test]
fn unknown_flag_exits_non_zero() {
    let o = run_detcd(&["--no-such-flag"], &[], Duration::from_secs(10));
    assert!(!o.success(), "{o:?}");
    assert!(o.stderr.contains("no-such-flag"), "{o:?}");
}

#[test]
fn cert_file_without_key_refuses_on_https() {
    // As etcd: a lone --cert-file is fatal once a client URL is https.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (c, p) = common::free_ports();
    let client = format!("https://127.0.0.1:{c}");
    let peer = format!("http://127.0.0.1:{p}");
    let o = run_detcd(
        &[
            "--name",
            "n1",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &format!("n1={peer}"),
            "--cert-file",
            "x",
        ],
        &[],
        Duration::from_secs(10),
    );
    assert!(!o.success(), "{o:?}");
    assert!(
        o.stderr
            .contains("KeyFile and CertFile must both be present[key: , cert: x]"),
        "{o:?}"
    );
    // Also via the environment.
    let o = run_detcd(
        &["--data-dir", data.to_str().unwrap()],
        &[
            ("ETCD_CERT_FILE", "x"),
            ("ETCD_LISTEN_CLIENT_URLS", client.as_str()),
            ("ETCD_ADVERTISE_CLIENT_URLS", client.as_str()),
        ],
        Duration::from_secs(10),
    );
    assert!(!o.success(), "{o:?}");
    assert!(o.stderr.contains("KeyFile and CertFile"), "{o:?}");
}

#[test]
fn etcd_env_var_sets_max_txn_ops() {
    let s = Builder::new(Kind::Detcd)
        .env("ETCD_MAX_TXN_OPS", "2")
        .start();
    s.ok(&["put", "a", "1"]);
    assert_eq!(
        s.err(&["txn"], Some("\nput x 1\nput y 2\nput z 3\n\n\n")),
        "Error: etcdserver: too many operations in txn request\n"
    );
    assert_unchanged(&s, 2, &["x", "y", "z"]);
    let o = s.etcdctl(&["txn"], Some("\nput x 1\nput y 2\n\n\n"));
    assert!(o.success(), "{o:?}");
    assert_eq!(s.revision(), 3);
}

#[test]
fn harness_moves_to_fresh_ports_when_a_port_is_taken() {
    // Hold a client port so the first start attempt fails to bind.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let (_, peer) = common::free_ports();
    let s = Builder::new(Kind::Detcd).ports(taken, peer).start();
    assert_ne!(s.client_port, taken);
    assert!(
        s.log().contains("Address already in use"),
        "first attempt should have failed to bind:\n{}",
        s.log()
    );
    assert_eq!(s.ok(&["put", "a", "1"]), "OK\n");
    assert_eq!(s.revision(), 2);
    drop(squatter);
}

/// Kills the child on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn config_file_replaces_flags_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = common::free_ports();
    let yaml = format!(
        "# as etcd.conf.yml.sample\n\
         name: 'from-file'\n\
         data-dir: {data}\n\
         listen-client-urls: http://127.0.0.1:{c}\n\
         advertise-client-urls: http://127.0.0.1:{c}\n\
         listen-peer-urls: http://127.0.0.1:{p}\n\
         initial-advertise-peer-urls: http://127.0.0.1:{p}\n\
         initial-cluster: from-file=http://127.0.0.1:{p}\n\
         initial-cluster-token: 'file-token'\n\
         initial-cluster-state: 'new'\n\
         max-txn-ops: 2\n\
         client-transport-security:\n  client-cert-auth: false\n",
        data = dir.path().join("data").display()
    );
    let config = dir.path().join("etcd.conf.yml");
    std::fs::write(&config, yaml).unwrap();
    let child = std::process::Command::new(Kind::Detcd.binary())
        .arg("--config-file")
        .arg(&config)
        .env("ETCD_NAME", "from-env")
        .env("ETCD_MAX_TXN_OPS", "100")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _child = Child(child);
    let endpoint = format!("--endpoints=127.0.0.1:{c}");
    let ctl = |args: &[&str]| {
        let mut full = vec![endpoint.clone()];
        full.extend(args.iter().map(|a| a.to_string()));
        common::run_etcdctl(&full, None)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !ctl(&["endpoint", "health"]).success() {
        assert!(
            std::time::Instant::now() < deadline,
            "detcd never became healthy"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let members = ctl(&["member", "list"]);
    assert!(members.stdout.contains(", from-file, "), "{members:?}");
    // --max-txn-ops from the file (2), not from the environment (100).
    let txn = "\n\nput a 1\nput b 2\nput c 3\n\n\n";
    let o = common::run_etcdctl(&[endpoint.clone(), "txn".to_string()], Some(txn));
    assert!(
        o.stderr.contains("too many operations in txn request"),
        "{o:?}"
    );
}
