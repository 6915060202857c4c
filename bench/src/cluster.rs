//! Server processes for the benchmarks: a cluster of etcd or detcd members on loopback ports,
//! each with a data dir under one temp dir; their RSS, CPU time and disk use; killed and
//! cleaned up on drop.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use detcd::proto::etcdserverpb::kv_client::KvClient;
use detcd::proto::etcdserverpb::RangeRequest;
use tonic::transport::Channel;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A cluster of server processes with their data dirs; killed and cleaned up on drop.
pub struct Server {
    children: Vec<Child>,
    /// The members' client URLs.
    pub urls: Vec<String>,
    dir: tempfile::TempDir,
}

impl Server {
    /// The summed resident set size of the members, in KiB, from `/proc/<pid>/status`; `None`
    /// where that is unreadable (not Linux, or a member exited).
    pub fn rss_kib(&self) -> Option<u64> {
        let mut total = 0;
        for c in &self.children {
            let status = std::fs::read_to_string(format!("/proc/{}/status", c.id())).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            total += line.split_whitespace().nth(1)?.parse::<u64>().ok()?;
        }
        Some(total)
    }

    /// The CPU time (user + system) the members have used so far, from `/proc/<pid>/stat`;
    /// `None` where that is unreadable.
    pub fn cpu_time(&self) -> Option<Duration> {
        static TICKS_PER_SEC: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        // USER_HZ: 100 on every mainstream Linux build, but ask rather than assume.
        let hz = *TICKS_PER_SEC.get_or_init(|| {
            Command::new("getconf")
                .arg("CLK_TCK")
                .output()
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(100)
        });
        let mut ticks = 0;
        for c in &self.children {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", c.id())).ok()?;
            // Fields after the command name (which may hold spaces); utime and stime are the
            // 14th and 15th fields of the whole line.
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut fields = rest.split_whitespace().skip(11);
            ticks += fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?;
        }
        Some(Duration::from_secs_f64(ticks as f64 / hz as f64))
    }
}

impl Server {
    /// Bytes the members' data dirs take on disk.
    pub fn disk_bytes(&self) -> u64 {
        fn walk(p: &std::path::Path) -> u64 {
            let Ok(meta) = std::fs::symlink_metadata(p) else {
                return 0;
            };
            if meta.is_dir() {
                std::fs::read_dir(p)
                    .map(|rd| rd.flatten().map(|e| walk(&e.path())).sum())
                    .unwrap_or(0)
            } else {
                std::os::unix::fs::MetadataExt::blocks(&meta) * 512
            }
        }
        walk(self.dir.path())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn start(binary: &str, members: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<(u16, u16)> = (0..members).map(|_| (free_port(), free_port())).collect();
    let ic = ports
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut children = Vec::new();
    let mut urls = Vec::new();
    for (i, (client, peer)) in ports.iter().enumerate() {
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(binary)
            .args(["--name", &format!("m{i}"), "--data-dir"])
            .arg(dir.path().join(format!("m{i}")))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &ic])
            .stdout(Stdio::null())
            .stderr(match std::env::var_os("DETCD_BENCH_LOGS") {
                // Keep the members' logs (for profiling runs): $DETCD_BENCH_LOGS/<name>-m<i>.log.
                Some(dir) => {
                    let base = std::path::Path::new(binary)
                        .file_name()
                        .map_or("server".into(), |n| n.to_string_lossy().into_owned());
                    let path = std::path::Path::new(&dir).join(format!("{base}-m{i}.log"));
                    Stdio::from(std::fs::File::create(path).expect("create a member log"))
                }
                None => Stdio::null(),
            })
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        children.push(child);
        urls.push(url);
    }
    Server {
        children,
        urls,
        dir,
    }
}

/// A connection to `url` once the server there answers a read (it may still be starting).
pub async fn ready_channel(url: &str) -> Channel {
    let deadline = Instant::now() + Duration::from_secs(20);
    let endpoint = Channel::from_shared(url.to_string()).expect("a valid URL");
    loop {
        if let Ok(channel) = endpoint.connect().await {
            let probe = RangeRequest {
                key: Bytes::from_static(b"probe"),
                ..Default::default()
            };
            if KvClient::new(channel.clone()).range(probe).await.is_ok() {
                return channel;
            }
        }
        assert!(
            Instant::now() < deadline,
            "server at {url} did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
