//! `--auto-compaction-mode periodic` on a short retention, on detcd and on real etcd 3.4: history
//! older than the retention goes, newer history stays, and the flags are refused as etcd refuses
//! them. (Revision mode looks every 5 minutes, as etcd; its policy is tested in
//! `src/compactor/`.)

// Real processes, real time: the seam rule (clippy.toml) is for the server.
#![allow(clippy::disallowed_methods)]
#![cfg(not(madsim))]

mod common;

use std::time::{Duration, Instant};

use common::{Builder, Kind, Server};

const COMPACTED: &str = "required revision has been compacted";

/// Puts two versions of a key, then waits for periodic auto-compaction to remove the first;
/// returns how long that took.
fn old_history_goes(s: &Server) -> Duration {
    let start = Instant::now();
    s.ok(&["put", "k", "v1"]);
    s.ok(&["put", "k", "v2"]);
    // Revision 2 (v1) is readable until a compaction passes it.
    let rev2 = s.etcdctl(&["get", "k", "--rev", "2", "--print-value-only"], None);
    assert!(
        rev2.stdout.trim() == "v1" || rev2.stderr.contains(COMPACTED),
        "{rev2:?}"
    );
    loop {
        let o = s.etcdctl(&["get", "k", "--rev", "2"], None);
        if o.stderr.contains(COMPACTED) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}: revision 2 still readable after 20 s: {o:?}",
            s.kind()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The latest revision is never compacted away.
    assert_eq!(s.ok(&["get", "k", "--print-value-only"]).trim(), "v2");
    start.elapsed()
}

#[test]
fn periodic_auto_compaction_removes_old_history_like_etcd() {
    let args = [
        "--auto-compaction-mode",
        "periodic",
        "--auto-compaction-retention",
        "2s",
    ];
    let detcd = Builder::new(Kind::Detcd).args(args).start();
    let took = old_history_goes(&detcd);
    // Not before a retention has passed.
    assert!(took >= Duration::from_millis(1800), "{took:?}");
    assert!(detcd.log().contains("auto-compaction"), "{}", detcd.log());
    // Revision mode starts and waits (its first look is 5 minutes away).
    let rev = Builder::new(Kind::Detcd)
        .args([
            "--auto-compaction-mode",
            "revision",
            "--auto-compaction-retention",
            "1",
        ])
        .start();
    rev.ok(&["put", "k", "v1"]);
    rev.ok(&["put", "k", "v2"]);
    assert_eq!(
        rev.ok(&["get", "k", "--rev", "2", "--print-value-only"])
            .trim(),
        "v1"
    );
    if common::etcd_available() {
        let etcd = Builder::new(Kind::Etcd).args(args).start();
        old_history_goes(&etcd);
    }
}

#[test]
fn bad_auto_compaction_flags_are_refused_as_etcd_refuses_them() {
    for (mode, retention, words) in [
        ("daily", "1", "unknown auto-compaction-mode \"daily\""),
        ("periodic", "soon", "error parsing CompactionRetention"),
    ] {
        let args = [
            "--auto-compaction-mode",
            mode,
            "--auto-compaction-retention",
            retention,
        ];
        let o = common::run_detcd(&args, &[], Duration::from_secs(10));
        assert!(!o.success(), "{o:?}");
        assert!(o.stderr.contains(words), "{o:?}");
        if common::etcd_available() {
            let dir = tempfile::tempdir().unwrap();
            let mut cmd = std::process::Command::new(common::ETCD_BIN);
            cmd.args(args)
                .arg("--data-dir")
                .arg(dir.path())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let e = common::run_bounded(cmd, None, Duration::from_secs(10));
            assert!(!e.success(), "{e:?}");
            assert!(e.stderr.contains(words), "etcd: {e:?}");
        }
    }
}
