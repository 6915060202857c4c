//! End-to-end tests of the `detcd-jepsen` binary.

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_detcd-jepsen"))
}

fn data_dir() -> PathBuf {
    let mut c = Vec::new();
    if let Ok(d) = std::env::var("DETCD_PORCUPINE_DATA") {
        c.push(PathBuf::from(d));
    }
    c.push(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/jepsen/porcupine-data"
    )));
    c.push(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/jepsen/porcupine-data"
    )));
    c.into_iter()
        .find(|p| p.join("etcd_000.log").is_file())
        .expect("porcupine data not found (set DETCD_PORCUPINE_DATA)")
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("detcd-jepsen-cli-{}-{name}", std::process::id()))
}

#[test]
fn check_json_prints_one_line_per_file() {
    let d = data_dir();
    let out = bin()
        .args(["check", "--json"])
        .arg(d.join("etcd_000.log"))
        .arg(d.join("etcd_002.log"))
        .arg(d.join("kv/c01-ok.txt"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1), "a violation exits with 1");
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["valid"], serde_json::json!(false));
    assert_eq!(lines[1]["valid"], serde_json::json!(true));
    assert_eq!(lines[2]["valid"], serde_json::json!(true));
    assert_eq!(lines[0]["ops"], serde_json::json!(85));
    assert!(lines[0]["ms"].is_number());
    assert!(lines[0]["file"]
        .as_str()
        .expect("file")
        .ends_with("etcd_000.log"));
}

#[test]
fn check_writes_a_self_contained_html_report() {
    let d = data_dir();
    let html = tmp("report.html");
    let out = bin()
        .args(["check", "--format", "porcupine-etcd", "--html"])
        .arg(&html)
        .arg(d.join("etcd_000.log"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        text.contains("INVALID") && text.contains("cannot place next"),
        "{text}"
    );
    let page = std::fs::read_to_string(&html).expect("report written");
    std::fs::remove_file(&html).ok();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<style>") && page.contains("<script>"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no network resources"
    );
    assert!(page.contains("bar bad"), "the illegal step is highlighted");
    assert!(page.contains("class=\"lane\""));
}

#[test]
fn check_jsonl_with_timeout() {
    let f = tmp("h.jsonl");
    std::fs::write(
        &f,
        r#"{"process":0,"invoke":0,"complete":1,"type":"ok","input":{"f":"put","key":"a","value":"x"},"output":{"f":"put","revision":2}}
{"process":1,"invoke":2,"complete":3,"type":"ok","input":{"f":"get","key":"a"},"output":{"f":"get","value":"x","mod_revision":2}}
"#,
    )
    .expect("write");
    let out = bin()
        .args(["check", "--model", "kv", "--timeout", "10", "--json"])
        .arg(&f)
        .output()
        .expect("runs");
    std::fs::remove_file(&f).ok();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["valid"], serde_json::json!(true));
}

#[test]
fn watch_and_lock_subcommands() {
    let w = tmp("watch.json");
    std::fs::write(
        &w,
        r#"{"writes":[{"revision":2,"key":"a","kind":"put","value":"1"},{"revision":3,"key":"a","kind":"put","value":"2"}],
            "streams":[{"name":"s","key":"a","start_revision":2,"responses":[
               {"type":"events","events":[{"revision":3,"key":"a","kind":"put","value":"2"}]}]}]}"#,
    )
    .expect("write");
    let out = bin()
        .args(["watch", "--json"])
        .arg(&w)
        .output()
        .expect("runs");
    std::fs::remove_file(&w).ok();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["valid"], serde_json::json!(false));

    let l = tmp("lock.json");
    std::fs::write(
        &l,
        r#"{"holds":[{"process":0,"token":5,"acquire_invoke":0,"acquire_complete":1,
             "release":{"invoke":3,"complete":4,"still_held":true},"accesses":[{"start":1,"end":2}]},
             {"process":1,"token":7,"acquire_invoke":2,"acquire_complete":5,"accesses":[{"start":6,"end":7}]}]}"#,
    )
    .expect("write");
    let out = bin().args(["lock"]).arg(&l).output().expect("runs");
    std::fs::remove_file(&l).ok();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn huge_timeouts_mean_no_limit_and_never_panic() {
    let d = data_dir();
    // 1e19 s fits in a Duration (u64 seconds) but not in an Instant (i64
    // seconds); 1e300 and inf do not fit in a Duration at all.
    for t in ["1e19", "1e300", "inf"] {
        let out = bin()
            .args(["check", "--json", "--timeout", t])
            .arg(d.join("etcd_000.log"))
            .output()
            .expect("runs");
        assert_eq!(
            out.status.code(),
            Some(1),
            "--timeout {t}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["valid"], serde_json::json!(false), "--timeout {t}");
    }
    let out = bin()
        .args(["check", "--timeout", "-1"])
        .arg(d.join("etcd_000.log"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "a negative timeout is an error");
}

#[test]
fn malformed_histories_are_rejected_with_exit_2() {
    let d = data_dir();
    let bad = tmp("backwards.jsonl");
    std::fs::write(
        &bad,
        r#"{"process":0,"invoke":0,"complete":1,"type":"ok","input":{"f":"write","value":1},"output":{"f":"write"}}
{"process":3,"invoke":5,"complete":3,"type":"ok","input":{"f":"read"},"output":{"f":"read","value":1}}
"#,
    )
    .expect("write");
    // Alone, and next to a file that is not linearizable: the malformed
    // file is an error, never silently repaired, and errors win.
    for with_invalid in [false, true] {
        let mut cmd = bin();
        cmd.args(["check", "--json"]).arg(&bad);
        if with_invalid {
            cmd.arg(d.join("etcd_000.log"));
        }
        let out = cmd.output().expect("runs");
        assert_eq!(out.status.code(), Some(2), "with_invalid={with_invalid}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("backwards.jsonl")
                && err.contains("malformed history")
                && err.contains("process 3")
                && err.contains("completes at 3 before its invoke at 5"),
            "{err}"
        );
        let lines = String::from_utf8_lossy(&out.stdout).lines().count();
        assert_eq!(
            lines,
            usize::from(with_invalid),
            "no verdict for the bad file"
        );
    }
    std::fs::remove_file(&bad).ok();

    let l = tmp("bad-lock.json");
    std::fs::write(
        &l,
        r#"{"holds":[{"process":0,"token":5,"acquire_invoke":4,"acquire_complete":1,"accesses":[]}]}"#,
    )
    .expect("write");
    let out = bin().args(["lock"]).arg(&l).output().expect("runs");
    std::fs::remove_file(&l).ok();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("malformed history") && err.contains("acquisition"),
        "{err}"
    );
}
