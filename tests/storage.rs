//! Storage that fails safely, on real processes: every data file of a stopped member damaged in
//! turn (cut short, a range zeroed, garbage appended) — the member then serves every
//! acknowledged key or refuses to start, never less; and a disk that fills up (a small tmpfs,
//! mounted by the test as root) stops the member with a clear error and a non-zero exit, and
//! once space is freed a restart serves every acknowledged key.

// Real processes, real time: the seam rule (clippy.toml) is for the server.
#![allow(clippy::disallowed_methods)]
// Real processes only: not part of the simulator build.
#![cfg(not(madsim))]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::Server;
use detcd::proto::etcdserverpb::kv_client::KvClient;
use detcd::proto::etcdserverpb::{PutRequest, RangeRequest};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn client(s: &Server) -> KvClient<tonic::transport::Channel> {
    let ch = tonic::transport::Channel::from_shared(s.client_url())
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    KvClient::new(ch).max_decoding_message_size(usize::MAX)
}

/// The value `put_keys` writes for key number `i`.
fn value(i: usize, size: usize) -> Vec<u8> {
    let mut value = format!("value-{i}-").into_bytes();
    value.resize(size, b'a' + (i % 26) as u8);
    value
}

/// Puts `n` keys `k0000…` with values of `size` bytes, one request each; returns the
/// acknowledged ones (all of them unless `stop_on_error`, which ends at the first failure).
fn put_keys(s: &Server, n: usize, size: usize, stop_on_error: bool) -> BTreeMap<Vec<u8>, Vec<u8>> {
    runtime().block_on(async {
        let mut kv = client(s).await;
        let mut acked = BTreeMap::new();
        for i in 0..n {
            let key = format!("k{i:04}").into_bytes();
            let value = value(i, size);
            let put = kv
                .put(PutRequest {
                    key: key.clone().into(),
                    value: value.clone().into(),
                    ..Default::default()
                })
                .await;
            match put {
                Ok(_) => {
                    acked.insert(key, value);
                }
                Err(e) if stop_on_error => {
                    eprintln!("put {i} failed: {e}");
                    break;
                }
                Err(e) => panic!("put {i}: {e}"),
            }
        }
        acked
    })
}

/// Every key under `k`, with its value.
fn read_all(s: &Server) -> BTreeMap<Vec<u8>, Vec<u8>> {
    runtime().block_on(async {
        let r = client(s)
            .await
            .range(RangeRequest {
                key: Bytes::from_static(b"k"),
                range_end: Bytes::from_static(b"l"),
                ..Default::default()
            })
            .await
            .expect("range")
            .into_inner();
        r.kvs
            .into_iter()
            .map(|kv| (kv.key.to_vec(), kv.value.to_vec()))
            .collect()
    })
}

/// Every regular file under `dir`, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                todo.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// The length of `data` up to its last non-zero byte (the written part of a preallocated file).
fn used(data: &[u8]) -> usize {
    data.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1)
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    /// Cut to half its length.
    Truncate,
    /// Cut to half of its written part.
    TruncateWritten,
    /// 4 KiB zeroed in the middle of its written part.
    ZeroRange,
    /// 4 KiB of garbage appended.
    AppendGarbage,
}

fn damage(path: &Path, how: Damage) {
    let mut data = std::fs::read(path).unwrap();
    let u = used(&data);
    match how {
        Damage::Truncate => data.truncate(data.len() / 2),
        Damage::TruncateWritten => data.truncate(u / 2),
        Damage::ZeroRange => {
            let from = u / 2;
            let to = (from + 4096).min(u);
            data[from..to].fill(0);
        }
        Damage::AppendGarbage => {
            let mut x: u32 = 0x9e37_79b9;
            data.extend((0..4096).map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            }));
        }
    }
    std::fs::write(path, data).unwrap();
}

/// One case: a member with `n` acknowledged keys is stopped, file number `index` of its data
/// dir damaged; it must serve every key or refuse to start. Returns what happened, or `None`
/// when the data dir has fewer files.
fn damaged_case(how: Damage, index: usize) -> Option<String> {
    let mut s = Server::detcd();
    let acked = put_keys(&s, 300, 200, false);
    let status = s.stop();
    assert!(status.success(), "clean stop: {status}");
    let all = files(&s.data_dir());
    let path = all.get(index)?.clone();
    let rel = path
        .strip_prefix(s.data_dir())
        .unwrap()
        .display()
        .to_string();
    damage(&path, how);
    let outcome = match s.try_restart() {
        Ok(()) => {
            let got = read_all(&s);
            assert_eq!(
                got.len(),
                acked.len(),
                "{how:?} of {rel}: the member started and serves {} of {} acknowledged keys\n{}",
                got.len(),
                acked.len(),
                s.log()
            );
            assert_eq!(got, acked, "{how:?} of {rel}: values differ");
            "recovered every key"
        }
        Err(e) => {
            let log = s.log();
            let last = log.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
            assert!(
                e.contains("exited"),
                "{how:?} of {rel}: neither served nor exited: {e}\n{log}"
            );
            eprintln!("{how:?} of {rel}: refused to start: {last}");
            "refused to start"
        }
    };
    Some(format!("{how:?} of {rel}: {outcome}"))
}

fn every_file(how: Damage) {
    let mut outcomes = Vec::new();
    for index in 0.. {
        match damaged_case(how, index) {
            Some(o) => outcomes.push(o),
            None => break,
        }
    }
    assert!(outcomes.len() >= 2, "a WAL segment and the state store");
    eprintln!("{}", outcomes.join("\n"));
}

#[test]
fn truncated_data_files_are_recovered_or_refused() {
    every_file(Damage::Truncate);
}

#[test]
fn data_files_cut_within_their_written_part_are_recovered_or_refused() {
    every_file(Damage::TruncateWritten);
}

#[test]
fn data_files_with_a_zeroed_range_are_recovered_or_refused() {
    every_file(Damage::ZeroRange);
}

#[test]
fn data_files_with_garbage_appended_are_recovered_or_refused() {
    every_file(Damage::AppendGarbage);
}

/// A tmpfs mounted (as root) at a directory, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size_mb: u64) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(
            st.success(),
            "mounting a tmpfs needs root (CI runs as root): {st}"
        );
        Tmpfs(at.to_path_buf())
    }

    fn resize(&self, size_mb: u64) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size_mb}m")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success(), "remount: {st}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_the_member_cleanly_and_loses_nothing() {
    let mut s = Server::detcd();
    s.stop();
    let data = s.data_dir();
    std::fs::remove_dir_all(&data).unwrap();
    // Room for the first WAL segment (64 MiB) and a little state.
    let fs = Tmpfs::mount(&data, 90);
    s.restart();
    let acked = put_keys(&s, 4000, 64 << 10, true);
    assert!(acked.len() < 4000, "the disk never filled up");
    let status = s.wait_exit(Duration::from_secs(20));
    let log = s.log();
    match status {
        Some(st) => assert!(
            !st.success(),
            "a member that cannot write must exit non-zero"
        ),
        None => panic!("the member kept running on a full disk\n{log}"),
    }
    assert!(
        log.to_ascii_lowercase().contains("space"),
        "the log says why: {}",
        log.lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
    // Still full: it starts and serves everything, or refuses cleanly; never damages the data.
    if s.try_restart().is_ok() {
        let served = read_all(&s);
        assert!(
            acked.iter().all(|(k, v)| served.get(k) == Some(v)),
            "served while full, without every acknowledged key"
        );
        s.stop();
    }
    fs.resize(400);
    s.restart();
    let mut got = read_all(&s);
    // The write that failed when the disk filled up had an unknown outcome: it may have been
    // committed (in the WAL) before the state store failed.
    let in_doubt = format!("k{:04}", acked.len()).into_bytes();
    if let Some(v) = got.remove(&in_doubt) {
        assert_eq!(v, value(acked.len(), 64 << 10), "the write in doubt, whole");
    }
    assert_eq!(
        got.len(),
        acked.len(),
        "after freeing space: {} of {} acknowledged keys",
        got.len(),
        acked.len()
    );
    assert_eq!(got, acked);
    // And it takes writes again.
    put_keys(&s, 10, 100, false);
    s.stop();
    drop(fs);
}
