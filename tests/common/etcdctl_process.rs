//! A long-running `etcdctl` (`watch`, `lock`, `elect`): stdout read line by line with bounded
//! waits, stderr collected; killed and reaped on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::Server;

/// How long to wait for an expected line.
pub const EXPECT: Duration = Duration::from_secs(10);
/// Silence that counts as "nothing more is coming" (etcd syncs unsynced watchers every 100 ms).
pub const QUIET: Duration = Duration::from_millis(600);

/// A running etcdctl subcommand.
pub struct EtcdctlProcess {
    child: Child,
    what: String,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl EtcdctlProcess {
    /// Starts `etcdctl <sub> <args>` against `server`.
    pub fn spawn(server: &Server, sub: &str, args: &[&str]) -> EtcdctlProcess {
        Self::spawn_at(&server.endpoint(), sub, args)
    }

    /// Starts `etcdctl --endpoints=<endpoints> <sub> <args>`.
    pub fn spawn_at(endpoints: &str, sub: &str, args: &[&str]) -> EtcdctlProcess {
        let mut cmd = Command::new(super::ETCDCTL_BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("ETCDCTL_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoints}"))
            .arg("--dial-timeout=2s")
            .arg(sub)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn etcdctl {sub}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let mut pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let stdin = child.stdin.take();
        EtcdctlProcess {
            child,
            what: format!("etcdctl {sub}"),
            stdin,
            lines,
            stderr,
        }
    }

    /// The next stdout line, waiting at most `t`.
    pub fn line(&self, t: Duration) -> Option<String> {
        self.lines.recv_timeout(t).ok()
    }

    /// Exactly the next `n` lines; panics (with stderr) if they do not come within [`EXPECT`].
    pub fn lines(&self, n: usize) -> Vec<String> {
        self.lines_within(n, EXPECT)
    }

    /// Exactly the next `n` lines; panics (with stderr) if they do not come within `t`.
    pub fn lines_within(&self, n: usize, t: Duration) -> Vec<String> {
        let deadline = Instant::now() + t;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.line(left) {
                Some(l) => out.push(l),
                None => panic!(
                    "expected {n} lines from {}, got {out:?}; stderr: {}",
                    self.what,
                    self.stderr()
                ),
            }
        }
        out
    }

    /// Lines until none arrives for [`QUIET`].
    pub fn until_quiet(&self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(l) = self.line(QUIET) {
            out.push(l);
        }
        out
    }

    /// Writes a line to etcdctl's stdin (interactive mode).
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// stderr so far, without etcdctl's client log lines.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap())
            .lines()
            .filter(|l| !super::is_client_log_line(l))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// Closes etcdctl's stdin.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Sends SIGINT (etcdctl's Ctrl-C: `lock` and `elect` release what they hold).
    pub fn interrupt(&self) {
        let st = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -INT failed");
    }

    /// SIGKILL: the process dies without releasing anything.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits (bounded by [`EXPECT`]) for etcdctl to exit by itself.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + EXPECT;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // Let the reader threads take the last output.
                std::thread::sleep(Duration::from_millis(100));
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit; stderr: {}",
                self.what,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for EtcdctlProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
