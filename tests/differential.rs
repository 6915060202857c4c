//! Differential test: the same etcdctl script against real etcd and against
//! detcd (each fresh, same flags, same ports, so member and cluster ids are
//! the same), comparing every command's exit status, stdout and stderr.
//!
//! Set `DETCD_SKIP_ETCD_DIFF=1` to skip when `/usr/bin/etcd` is not installed;
//! otherwise a missing etcd fails the test.

// Real processes and real sockets: not part of the simulator build.
#![cfg(not(madsim))]
// These tests drive real server processes from outside, in real time: the
// seam rule (clippy.toml: no wall clock, sleeps or threads outside src/io/)
// is for the server, not for this harness.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{Builder, Kind, Server};

/// One etcdctl invocation.
struct Step {
    args: Vec<String>,
    stdin: Option<String>,
}

fn c(args: &[&str]) -> Step {
    Step {
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin: None,
    }
}

fn with_stdin(args: &[&str], stdin: &str) -> Step {
    Step {
        stdin: Some(stdin.to_string()),
        ..c(args)
    }
}

/// Flags both servers get. The limits make the error paths reachable.
const SERVER_FLAGS: &[&str] = &["--max-txn-ops", "3", "--max-request-bytes", "1024"];

fn script() -> Vec<Step> {
    let big = "x".repeat(4096);
    let mut s = vec![
        // Empty store.
        c(&["get", "a"]),
        c(&["get", "a", "-w", "json"]),
        c(&["get", "--from-key", "", "-w", "json"]),
        c(&["member", "list"]),
        c(&["member", "list", "-w", "table"]),
        c(&["member", "list", "-w", "json"]),
        c(&["endpoint", "health"]),
        c(&["endpoint", "health", "-w", "json"]),
        // NOT compared: `endpoint status` (any format) — version, dbSize,
        // dbSizeInUse and raftIndex are implementation-specific (etcd 3.4.23
        // reports version "3.4.23", raftIndex counting its conf-change
        // entries; detcd "3.5.0" and its own raft log).
        //
        // Fixture (same as tests/etcdctl.rs): every sort target orders k1..k3
        // differently.
        c(&["put", "k3", "m1"]),
        c(&["put", "k1", "z1"]),
        c(&["put", "k1", "z2"]),
        c(&["put", "k1", "z3", "--prev-kv"]),
        c(&["put", "k2", "a", "-w", "json"]),
        c(&["put", "k3", "m2", "--prev-kv", "-w", "json"]),
        c(&["put", "j", "before"]),
        c(&["put", "l", "after"]),
        c(&["put", "sp", "a value with spaces"]),
        c(&["put", "nl", "line1\nline2"]),
        with_stdin(&["put", "fromstdin"], "value read from stdin"),
        // Gets with every flag.
        c(&["get", "k1"]),
        c(&["get", "nope"]),
        c(&["get", "--prefix", "k"]),
        c(&["get", "k1", "k3"]),
        c(&["get", "k1", "k1"]),
        c(&["get", "k3", "k1"]),
        c(&["get", "--from-key", "k2"]),
        c(&["get", "--from-key", ""]),
        c(&["get", "--prefix", ""]),
        c(&["get", "--prefix", "k", "--limit", "2"]),
        c(&["get", "--prefix", "k", "--limit", "2", "-w", "json"]),
        c(&["get", "--prefix", "k", "--limit", "0", "-w", "json"]),
        c(&["get", "--prefix", "k", "--limit", "-1"]),
        c(&["get", "--from-key", "k", "--limit", "1"]),
        c(&["get", "k1", "--rev", "3"]),
        c(&["get", "k1", "--rev", "4", "-w", "json"]),
        c(&["get", "k1", "--rev", "2"]),
        c(&["get", "k1", "--rev", "0"]),
        c(&["get", "--prefix", "k", "--rev", "4"]),
        c(&["get", "--prefix", "k", "--rev", "6", "-w", "json"]),
        c(&["get", "--prefix", "k", "--keys-only"]),
        c(&["get", "--prefix", "k", "--keys-only", "-w", "json"]),
        c(&["get", "--prefix", "k", "--print-value-only"]),
        c(&[
            "get",
            "--from-key",
            "k2",
            "--print-value-only",
            "--limit",
            "2",
        ]),
        c(&["get", "--prefix", "k", "-w", "json"]),
        c(&["get", "--prefix", "k", "-w", "fields"]),
        c(&["get", "--prefix", "k", "-w", "table"]),
        c(&["get", "--prefix", "k", "-w", "protobuf"]),
        c(&["get", "--prefix", "k", "--hex"]),
        c(&["get", "--prefix", "k", "--consistency=s"]),
        c(&["get", "nl"]),
        c(&["get", "sp", "-w", "json"]),
        c(&["get", "fromstdin"]),
    ];
    // Ties: tied keys keep ascending key order under DESCEND too.
    s.push(c(&["put", "q3", "same"]));
    s.push(c(&["put", "q1", "same"]));
    s.push(c(&["put", "q2", "same"]));
    for target in ["VALUE", "VERSION"] {
        for order in ["ASCEND", "DESCEND"] {
            s.push(c(&[
                "get",
                "--prefix",
                "q",
                "--sort-by",
                target,
                "--order",
                order,
                "--keys-only",
            ]));
            s.push(c(&[
                "get",
                "--prefix",
                "q",
                "--sort-by",
                target,
                "--order",
                order,
                "--limit",
                "1",
            ]));
        }
    }
    s.push(c(&["del", "--prefix", "q"]));
    //
    // NOT compared: `lease grant` etc. — Lease is not implemented in detcd.
    for target in ["KEY", "VERSION", "CREATE", "MODIFY", "VALUE"] {
        s.push(c(&["get", "--prefix", "k", "--sort-by", target]));
        for order in ["ASCEND", "DESCEND"] {
            s.push(c(&[
                "get",
                "--prefix",
                "k",
                "--sort-by",
                target,
                "--order",
                order,
            ]));
            s.push(c(&[
                "get",
                "--prefix",
                "k",
                "--sort-by",
                target,
                "--order",
                order,
                "--limit",
                "1",
                "-w",
                "json",
            ]));
        }
    }
    s.extend([
        c(&["get", "--prefix", "k", "--order", "DESCEND"]),
        c(&["get", "--from-key", "", "--sort-by", "MODIFY", "--order", "DESCEND", "--keys-only"]),
        // Puts with options.
        c(&["put", "k2", "--ignore-value"]),
        c(&["get", "k2", "-w", "json"]),
        c(&["put", "absent", "--ignore-value"]),
        c(&["put", "k2", "b", "--ignore-lease"]),
        c(&["put", "absent", "v", "--ignore-lease"]),
        // Deletes.
        c(&["del", "nothing"]),
        c(&["del", "--prev-kv", "k2"]),
        c(&["del", "--prev-kv", "k2", "-w", "json"]),
        c(&["put", "d/1", "x"]),
        c(&["put", "d/2", "y"]),
        c(&["put", "d/3", "z"]),
        c(&["del", "--prefix", "d/", "--prev-kv"]),
        c(&["put", "d/1", "x"]),
        c(&["put", "d/2", "y"]),
        c(&["del", "--prefix", "d/", "-w", "json"]),
        c(&["put", "e1", "1"]),
        c(&["put", "e2", "2"]),
        c(&["del", "e1", "e2"]),
        c(&["get", "--prefix", "e"]),
        c(&["get", "--prefix", "d", "--rev", "25"]),
        // Txn: both outcomes, simple and json.
        with_stdin(
            &["txn"],
            "value(\"k1\") = \"z3\"\nmod(\"k3\") = \"7\"\n\nput t 1\nget k1\n\nput f 1\n\n",
        ),
        with_stdin(
            &["txn"],
            "value(\"k1\") = \"nope\"\n\nput t 2\n\nput f 1\ndel t\n\n",
        ),
        with_stdin(
            &["txn", "-w", "json"],
            "version(\"k1\") = \"3\"\ncreate(\"k1\") > \"1\"\nvalue(\"j\") < \"c\"\n\nput t 3\nget k\n\ndel k1\n\n",
        ),
        with_stdin(
            &["txn", "-w", "json"],
            "value(\"f\") != \"1\"\n\nput t 4\n\nput g 1\nget --prefix k\ndel nothing\n\n",
        ),
        with_stdin(&["txn"], "\nget t\n\n\n"),
        with_stdin(&["txn", "-w", "json"], "\n\n\n"),
        with_stdin(&["txn"], "mod(\"missing\") = \"0\"\n\nput m 1\n\n\n"),
        with_stdin(&["txn"], "create(\"missing\") > \"0\"\n\nput m 2\n\nput m 3\n\n"),
        with_stdin(&["txn", "-w", "json"], "\nput p 1 --prev-kv\ndel nothing --prev-kv\n\n\n"),
        c(&["get", "--from-key", "", "-w", "json"]),
        // Errors. Each is followed by a read showing nothing changed.
        c(&["put", "", "x"]),
        c(&["get", ""]),
        c(&["del", ""]),
        c(&["put", "k", "v", "--lease=1234"]),
        with_stdin(&["txn"], "\nput k v --lease=1234\n\n\n"),
        with_stdin(&["txn"], "\nput t1 1\nput t2 2\nput t3 3\nput t4 4\n\n\n"),
        with_stdin(&["txn"], "\nput t1 1\nput t2 2\nput t3 3\n\n\n"),
        with_stdin(&["txn"], "\nput d 1\nput d 2\n\n\n"),
        with_stdin(&["txn"], "\nput d 1\ndel d\n\n\n"),
        with_stdin(&["txn"], "\nput d/x 1\ndel d/ --prefix\n\n\n"),
        with_stdin(&["txn"], "\nput d 1\nget d\n\n\n"),
        c(&["put", "big", "--", &big]),
        with_stdin(&["put", "big"], &big),
        // Past gRPC's receive limit (--max-request-bytes + 512 KiB): grpc-go's ResourceExhausted.
        with_stdin(&["put", "huge"], &"x".repeat(600_000)),
        with_stdin(&["txn"], &format!("\nput big {big}\n\n\n")),
        c(&["get", "--from-key", "", "-w", "json"]),
        // Compaction.
        c(&["get", "k1", "--rev", "2"]),
        c(&["compaction", "5"]),
        c(&["get", "k1", "--rev", "4"]),
        c(&["get", "k1", "--rev", "5"]),
        c(&["get", "k1", "--rev", "1000"]),
        c(&["compaction", "3"]),
        c(&["compaction", "5"]),
        c(&["compaction", "1000"]),
        c(&["get", "--from-key", "", "--rev", "6", "-w", "json"]),
        with_stdin(&["txn"], "\nget k1 --rev=2\n\n\n"),
        c(&["compaction", "--physical", "10"]),
        c(&["get", "--from-key", "", "--rev", "9"]),
        c(&["put", "after", "compaction"]),
        c(&["get", "--from-key", "", "-w", "json"]),
        c(&["del", "--from-key", ""]),
        c(&["get", "--from-key", "", "-w", "json"]),
        c(&["member", "list"]),
    ]);
    s
}

/// Output of one step, normalized.
fn run(server: &Server, steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .map(|st| {
            let args: Vec<&str> = st.args.iter().map(String::as_str).collect();
            let o = server.etcdctl(&args, st.stdin.as_deref());
            let stdout = if args.contains(&"protobuf") {
                protobuf_hex_without_raft_term(&o.stdout_raw)
            } else {
                o.stdout.clone()
            };
            normalize(&format!(
                "exit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
                o.status.code(),
                stdout,
                o.stderr_clean()
            ))
        })
        .collect()
}

/// Normalizes only what legitimately differs between the two servers:
/// - `"raft_term":N` / `"RaftTerm" : N`: etcd's first leader term is 2 (it
///   bootstraps its member list at term 1, then elects itself), detcd's is
///   1 — a known cosmetic difference. `-w protobuf` output gets the same
///   treatment in binary, see `protobuf_hex_without_raft_term`;
/// - etcdctl's own `{"level":"warn",...}` client log lines (timestamps, random
///   client ids) are already dropped by `stderr_clean`;
/// - `took = 1.2ms` / `"took":"1.2ms"` in `endpoint health`: wall-clock time.
fn normalize(s: &str) -> String {
    let s = replace_number_after(s, "\"raft_term\":");
    let s = replace_number_after(&s, "\"RaftTerm\" : ");
    let s = replace_until(&s, "took = ", '\n');
    replace_until(&s, "\"took\":\"", '"')
}

/// `-w protobuf` prints the raw response message. Renders it as hex with the
/// header's raft_term (field 1 -> field 4, a varint) replaced by 0, the binary
/// form of the `"raft_term"` normalization. Everything else stays byte-exact.
fn protobuf_hex_without_raft_term(b: &[u8]) -> String {
    fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*i)?;
            *i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    // Field 1 (header), length-delimited, must come first.
    let mut i = 0;
    if b.first() != Some(&0x0a) {
        return format!("unexpected protobuf: {}", hex(b));
    }
    i += 1;
    let Some(len) = varint(b, &mut i) else {
        return format!("bad protobuf: {}", hex(b));
    };
    let (start, end) = (i, i + len as usize);
    if end > b.len() {
        return format!("bad protobuf: {}", hex(b));
    }
    let mut header = Vec::new();
    let mut j = start;
    while j < end {
        let tag_at = j;
        let Some(tag) = varint(b, &mut j) else {
            return format!("bad protobuf: {}", hex(b));
        };
        if tag & 7 != 0 {
            return format!("unexpected header field {tag}: {}", hex(b));
        }
        let v_at = j;
        if varint(b, &mut j).is_none() {
            return format!("bad protobuf: {}", hex(b));
        }
        header.extend_from_slice(&b[tag_at..v_at]);
        if tag >> 3 == 4 {
            header.push(0); // raft_term
        } else {
            header.extend_from_slice(&b[v_at..j]);
        }
    }
    // The header length may change by a byte when the term's varint does;
    // render the header separately from the rest.
    format!("header[{}] rest[{}]", hex(&header), hex(&b[end..]))
}

fn replace_number_after(s: &str, marker: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(marker) {
        let after = &rest[i + marker.len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        out.push_str(&rest[..i + marker.len()]);
        out.push('N');
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

fn replace_until(s: &str, marker: &str, end: char) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(marker) {
        let after = &rest[i + marker.len()..];
        let n = after.find(end).unwrap_or(after.len());
        out.push_str(&rest[..i + marker.len()]);
        out.push_str("<elapsed>");
        rest = &after[n..];
    }
    out.push_str(rest);
    out
}

#[test]
fn normalize_is_narrow() {
    assert_eq!(
        normalize(r#"{"header":{"revision":3,"raft_term":12},"x":1}"#),
        r#"{"header":{"revision":3,"raft_term":N},"x":1}"#
    );
    assert_eq!(
        normalize("\"RaftTerm\" : 2\n\"Revision\" : 2\n"),
        "\"RaftTerm\" : N\n\"Revision\" : 2\n"
    );
    assert_eq!(
        normalize("127.0.0.1:1 is healthy: successfully committed proposal: took = 1.5ms\nx"),
        "127.0.0.1:1 is healthy: successfully committed proposal: took = <elapsed>\nx"
    );
    assert_eq!(
        normalize(r#"[{"endpoint":"a","health":true,"took":"760µs"}]"#),
        r#"[{"endpoint":"a","health":true,"took":"<elapsed>"}]"#
    );
    // Real content is untouched.
    assert_eq!(
        normalize(r#"{"revision":12,"raftIndex":5}"#),
        r#"{"revision":12,"raftIndex":5}"#
    );
}

#[test]
fn etcdctl_script_matches_real_etcd() {
    if !common::etcd_available() {
        if std::env::var("DETCD_SKIP_ETCD_DIFF").as_deref() == Ok("1") {
            eprintln!(
                "{} not installed; skipped (DETCD_SKIP_ETCD_DIFF=1)",
                common::ETCD_BIN
            );
            return;
        }
        panic!(
            "{} is not installed: the differential test needs real etcd \
             (apt-get install etcd-server), or set DETCD_SKIP_ETCD_DIFF=1 to skip it",
            common::ETCD_BIN
        );
    }
    let steps = script();

    // detcd runs on the very ports etcd used, so the member id and cluster
    // id (hashes of the peer URLs) must come out identical. If another test
    // grabs one of the ports in between, start over on fresh ports.
    let mut attempt = 0;
    let (expected, actual) = loop {
        attempt += 1;
        let etcd = Builder::new(Kind::Etcd)
            .args(SERVER_FLAGS.iter().copied())
            .start();
        let ports = (etcd.client_port, etcd.peer_port);
        let expected = run(&etcd, &steps);
        drop(etcd);
        let detcd = Builder::new(Kind::Detcd)
            .args(SERVER_FLAGS.iter().copied())
            .ports(ports.0, ports.1)
            .start();
        if (detcd.client_port, detcd.peer_port) == ports {
            break (expected, run(&detcd, &steps));
        }
        assert!(attempt < 3, "could not run detcd on etcd's ports {ports:?}");
        eprintln!("ports {ports:?} were taken between the runs; starting over");
    };

    let mut diffs = String::new();
    let mut n = 0;
    for ((st, e), a) in steps.iter().zip(&expected).zip(&actual) {
        if e != a {
            n += 1;
            diffs.push_str(&format!(
                "\n=== etcdctl {:?}{}\n--- etcd:\n{e}\n--- detcd:\n{a}\n",
                st.args,
                st.stdin
                    .as_deref()
                    .map(|s| format!(" <<< {s:?}"))
                    .unwrap_or_default()
            ));
        }
    }
    assert!(
        n == 0,
        "{n} of {} etcdctl commands differ between etcd and detcd:{diffs}",
        steps.len()
    );
    // Guard against a vacuous comparison (e.g. both servers unreachable).
    assert!(
        expected
            .iter()
            .filter(|o| o.starts_with("exit: Some(0)"))
            .count()
            > steps.len() / 2,
        "most commands should succeed: {expected:#?}"
    );
}
