//! Test harness: runs the real `detcd` binary (or real etcd, for differential
//! tests) on free 127.0.0.1 ports in a temporary data dir, and drives it with
//! the real `etcdctl`.
//!
//! Every wait is bounded; the server process is killed and reaped and the temp
//! dir removed when the [`Server`] is dropped, including on panic.

#![allow(dead_code)]
// each test crate uses a different subset
// Real processes, real time: the seam rule (clippy.toml) is for the server.
#![allow(clippy::disallowed_methods)]

pub mod etcdctl_process;

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Path of the real etcd server used by differential tests.
pub const ETCD_BIN: &str = "/usr/bin/etcd";
/// Path of the real etcdctl.
pub const ETCDCTL_BIN: &str = "/usr/bin/etcdctl";

/// How long a server may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for a single etcdctl invocation (its own --command-timeout is 5s).
const ETCDCTL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a graceful stop may take before we give up and SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts at starting on fresh ports when a port turned out to be taken.
const START_ATTEMPTS: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Detcd,
    Etcd,
}

impl Kind {
    pub fn binary(self) -> PathBuf {
        match self {
            Kind::Detcd => PathBuf::from(env!("CARGO_BIN_EXE_detcd")),
            Kind::Etcd => PathBuf::from(ETCD_BIN),
        }
    }
}

/// Output of one etcdctl run.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// stdout exactly as written (for `-w protobuf`).
    pub stdout_raw: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// stderr without etcdctl's client-side `{"level":"warn",...}` log lines.
    pub fn stderr_clean(&self) -> String {
        self.stderr
            .lines()
            .filter(|l| !is_client_log_line(l))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// Parses stdout as JSON (for `-w json`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// etcdctl's zap client logs (`{"level":"warn","ts":...}`), which carry
/// timestamps and random client ids.
pub fn is_client_log_line(l: &str) -> bool {
    l.starts_with("{\"level\":")
}

/// Picks a free client port and a free peer port on 127.0.0.1. Both listeners
/// are held at the same time so the two ports differ.
pub fn free_ports() -> (u16, u16) {
    free_port_pairs(1)[0]
}

/// Picks `n` (client, peer) port pairs on 127.0.0.1, all different: every listener is held
/// until all are picked (picked one pair at a time, the kernel may hand a released port out
/// again, and two members of one cluster then collide: "address in use").
pub fn free_port_pairs(n: usize) -> Vec<(u16, u16)> {
    let held: Vec<TcpListener> = (0..2 * n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    let port = |l: &TcpListener| l.local_addr().unwrap().port();
    held.chunks(2).map(|p| (port(&p[0]), port(&p[1]))).collect()
}

/// Builder for a [`Server`].
#[derive(Clone, Debug)]
pub struct Builder {
    kind: Kind,
    name: String,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    ports: Option<(u16, u16)>,
    initial_cluster: Option<String>,
    schemes: Schemes,
}

/// URL schemes of a member and the etcdctl flags that reach its client URL.
#[derive(Clone, Debug)]
pub struct Schemes {
    /// `http` or `https` for the client URL.
    pub client: &'static str,
    /// `http` or `https` for the peer URL.
    pub peer: &'static str,
    /// Extra etcdctl flags for every call (e.g. `--cacert=...`).
    pub ctl_args: Vec<String>,
    /// More client URLs to listen on besides the main one.
    pub also_listen: Vec<String>,
}

impl Default for Schemes {
    fn default() -> Self {
        Schemes {
            client: "http",
            peer: "http",
            ctl_args: Vec::new(),
            also_listen: Vec::new(),
        }
    }
}

impl Builder {
    pub fn new(kind: Kind) -> Builder {
        Builder {
            kind,
            name: "n1".to_string(),
            args: Vec::new(),
            envs: Vec::new(),
            ports: None,
            initial_cluster: None,
            schemes: Schemes::default(),
        }
    }

    /// Serve clients on an `https://` URL; `ctl_args` are the etcdctl flags that reach it (CA,
    /// client certificate...), used for every etcdctl call including the readiness checks.
    pub fn https_clients(mut self, ctl_args: &[&str]) -> Builder {
        self.schemes.client = "https";
        self.schemes.ctl_args = ctl_args.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Listen on `url` too (a second client URL, e.g. of the other scheme).
    pub fn also_listen(mut self, url: &str) -> Builder {
        self.schemes.also_listen.push(url.to_string());
        self
    }

    /// Serve peers on an `https://` URL.
    pub fn https_peers(mut self) -> Builder {
        self.schemes.peer = "https";
        self
    }

    /// The member's name (default `n1`).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = name.into();
        self
    }

    /// `--initial-cluster` for a multi-member cluster (default: just this member).
    pub fn initial_cluster(mut self, ic: impl Into<String>) -> Builder {
        self.initial_cluster = Some(ic.into());
        self
    }

    /// Starts the process on the given ports without waiting for it to be ready: a founding
    /// member of a multi-member cluster only becomes ready once a quorum runs. Call
    /// [`Server::wait_until_ready`] after starting the others.
    pub fn spawn(self) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("detcd-test-")
            .tempdir()
            .expect("create temp dir");
        let (client_port, peer_port) = self.ports.expect("spawn needs fixed ports");
        let mut server = Server {
            kind: self.kind,
            name: self.name.clone(),
            args: self.args.clone(),
            envs: self.envs.clone(),
            dir: Some(dir),
            client_port,
            peer_port,
            child: None,
            starts: 0,
            initial_cluster: self.initial_cluster.clone(),
            schemes: self.schemes.clone(),
        };
        server.spawn_only().expect("spawn member");
        server
    }

    /// Extra command-line arguments, appended after the standard ones.
    pub fn arg(mut self, a: impl Into<String>) -> Builder {
        self.args.push(a.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Builder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// An environment variable for the server process (e.g. `ETCD_MAX_TXN_OPS`).
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Builder {
        self.envs.push((k.into(), v.into()));
        self
    }

    /// Try these (client, peer) ports first; fresh ones are picked if they
    /// turn out to be taken.
    pub fn ports(mut self, client: u16, peer: u16) -> Builder {
        self.ports = Some((client, peer));
        self
    }

    /// Starts the server and waits until it is ready; panics (printing the
    /// server log) if it does not become ready in time. If a port turns out to
    /// be taken (a race with another test), retries on fresh ports.
    pub fn start(self) -> Server {
        let mut dir = Some(
            tempfile::Builder::new()
                .prefix("detcd-test-")
                .tempdir()
                .expect("create temp dir"),
        );
        let mut ports = self.ports;
        let mut last_err = String::new();
        for attempt in 0..START_ATTEMPTS {
            let (client_port, peer_port) = ports.take().unwrap_or_else(free_ports);
            let mut server = Server {
                kind: self.kind,
                name: self.name.clone(),
                args: self.args.clone(),
                envs: self.envs.clone(),
                dir: dir.take(),
                client_port,
                peer_port,
                child: None,
                starts: 0,
                initial_cluster: self.initial_cluster.clone(),
                schemes: self.schemes.clone(),
            };
            // A failed attempt may have left a half-initialised data dir.
            let _ = std::fs::remove_dir_all(server.data_dir());
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(e) if e.contains("in use") => {
                    eprintln!(
                        "{:?} start attempt {attempt} on ports {client_port}/{peer_port}: {e}; retrying on new ports",
                        self.kind
                    );
                    server.kill_and_reap();
                    dir = server.dir.take();
                    last_err = e;
                }
                Err(e) => {
                    server.kill_and_reap();
                    // The server's Drop prints its log while we unwind.
                    panic!("{:?} failed to start: {e}", self.kind);
                }
            }
        }
        panic!(
            "{:?} failed to start after {START_ATTEMPTS} attempts: {last_err}",
            self.kind
        );
    }
}

/// A running detcd or etcd member.
pub struct Server {
    kind: Kind,
    name: String,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    dir: Option<tempfile::TempDir>,
    pub client_port: u16,
    pub peer_port: u16,
    child: Option<Child>,
    starts: usize,
    initial_cluster: Option<String>,
    schemes: Schemes,
}

impl Server {
    /// A detcd with default flags.
    pub fn detcd() -> Server {
        Builder::new(Kind::Detcd).start()
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("temp dir").path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir().join("server.log")
    }

    /// The server's stderr/stdout so far (all starts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn client_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.schemes.client, self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.schemes.peer, self.peer_port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    fn command(&self) -> Command {
        let mut c = Command::new(self.kind.binary());
        c.arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen-client-urls")
            .arg(
                std::iter::once(self.client_url())
                    .chain(self.schemes.also_listen.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .arg("--advertise-client-urls")
            .arg(self.client_url())
            .arg("--listen-peer-urls")
            .arg(self.peer_url())
            .arg("--initial-advertise-peer-urls")
            .arg(self.peer_url())
            .arg("--initial-cluster")
            .arg(
                self.initial_cluster
                    .clone()
                    .unwrap_or_else(|| format!("{}={}", self.name, self.peer_url())),
            )
            .args(&self.args);
        // Keep the caller's ETCD_* settings from leaking into the server.
        for (k, _) in std::env::vars() {
            if k.starts_with("ETCD_") {
                c.env_remove(k);
            }
        }
        c.envs(self.envs.iter().map(|(k, v)| (k, v)));
        c
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        self.spawn_only()?;
        self.wait_ready()
    }

    /// Waits until a member started with [`Builder::spawn`] serves clients; panics if not in time.
    pub fn wait_until_ready(&mut self) {
        if let Err(e) = self.wait_ready() {
            panic!(
                "{:?} member {} did not become ready: {e}",
                self.kind, self.name
            );
        }
    }

    fn spawn_only(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "server already running");
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("open log: {e}"))?;
        self.starts += 1;
        let _ = writeln!(
            log,
            "=== test harness: start #{} of {:?} on client port {} peer port {} ===",
            self.starts, self.kind, self.client_port, self.peer_port
        );
        let log2 = log.try_clone().map_err(|e| format!("clone log: {e}"))?;
        let child = self
            .command()
            .stdin(Stdio::null())
            .stdout(log2)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {:?}: {e}", self.kind.binary()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Polls until the client port accepts connections, `etcdctl endpoint
    /// health` succeeds and `member list` shows this member's own peer URL
    /// (so we are not talking to some other server that grabbed the port).
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr: SocketAddr = self.endpoint().parse().unwrap();
        let mut last = String::from("never connected");
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let log = self.log();
                let in_use = log
                    .lines()
                    .rev()
                    .take(20)
                    .any(|l| l.to_ascii_lowercase().contains("address already in use"));
                return Err(format!(
                    "server exited during startup with {status}{}",
                    if in_use { " (address in use)" } else { "" }
                ));
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after {READY_TIMEOUT:?}: {last}"));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                let h = self.etcdctl_with(&["endpoint", "health"], None, "1s", "2s");
                if h.success() {
                    let m = self.etcdctl_with(&["member", "list"], None, "1s", "2s");
                    if m.success() && m.stdout.contains(&format!("{},", self.peer_url())) {
                        // Still ours?
                        if self.child.as_mut().unwrap().try_wait().unwrap().is_none() {
                            return Ok(());
                        }
                    } else {
                        last = format!("member list: {m:?}");
                        if m.success() {
                            return Err(format!(
                                "another server answers on our port (address in use): {m:?}"
                            ));
                        }
                    }
                } else {
                    last = format!("endpoint health: {h:?}");
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL (via `Child::kill`) and reap.
    pub fn kill_9(&mut self) {
        let mut child = self.child.take().expect("server is running");
        child.kill().expect("SIGKILL server");
        child.wait().expect("reap server");
    }

    /// SIGTERM and wait (bounded) for a clean exit; returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server is running");
        let st = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("run kill -TERM");
        assert!(st.success(), "kill -TERM failed: {st}");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server did not exit within {STOP_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again with the same data dir, ports and flags (the
    /// old process must have been stopped). Retries briefly if a port is still
    /// busy; panics with the log if it does not become ready.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the server first");
        let mut last = String::new();
        for _ in 0..5 {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(e) => {
                    self.kill_and_reap();
                    if !e.contains("in use") {
                        panic!("{:?} failed to restart: {e}", self.kind);
                    }
                    last = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        panic!("{:?} failed to restart: {last}", self.kind);
    }

    /// Starts the server again (it must have been stopped) and waits until it is ready or has
    /// exited; `Err` with the reason if it did not become ready (the process is reaped).
    pub fn try_restart(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "stop or kill the server first");
        let r = self.spawn_and_wait();
        if r.is_err() {
            self.kill_and_reap();
        }
        r
    }

    /// Waits (bounded) for the server process to exit by itself; its status, or `None` if it
    /// is still running at the deadline.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.as_mut()?.try_wait().unwrap() {
                self.child = None;
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    fn kill_and_reap(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sets `flag` to `value` for later restarts (replacing its value if it was given).
    pub fn set_flag(&mut self, flag: &str, value: &str) {
        match self.args.iter().position(|a| a == flag) {
            Some(i) if i + 1 < self.args.len() => self.args[i + 1] = value.to_string(),
            _ => self.args.extend([flag.to_string(), value.to_string()]),
        }
    }

    /// Adds `arg` to the flags of later restarts (a flag given again takes its last value, as in
    /// etcd; for booleans, which only take `--flag=value`).
    pub fn push_arg(&mut self, arg: &str) {
        self.args.push(arg.to_string());
    }

    /// Sets the extra etcdctl flags of every later call, readiness checks included (e.g. a
    /// `--user` once auth is on, since `endpoint health` needs a user then).
    pub fn set_ctl_args(&mut self, args: &[&str]) {
        self.schemes.ctl_args = args.iter().map(|a| a.to_string()).collect();
    }

    /// Runs etcdctl against this server with the standard timeouts.
    pub fn etcdctl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.etcdctl_with(args, stdin, "2s", "5s")
    }

    /// Runs etcdctl and panics (with both outputs) unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.etcdctl(args, None);
        assert!(o.success(), "etcdctl {args:?} failed: {o:?}");
        o.stdout
    }

    /// Runs etcdctl, expects failure, and returns the cleaned stderr.
    pub fn err(&self, args: &[&str], stdin: Option<&str>) -> String {
        let o = self.etcdctl(args, stdin);
        assert!(
            !o.success(),
            "etcdctl {args:?} unexpectedly succeeded: {o:?}"
        );
        o.stderr_clean()
    }

    /// Current store revision, from the header of a `get -w json`.
    pub fn revision(&self) -> i64 {
        let o = self.etcdctl(&["get", "revision-probe-key", "-w", "json"], None);
        assert!(o.success(), "get -w json failed: {o:?}");
        o.json()["header"]["revision"]
            .as_i64()
            .unwrap_or_else(|| panic!("no header.revision in {}", o.stdout))
    }

    fn etcdctl_with(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        dial: &str,
        command: &str,
    ) -> Output {
        let endpoint = if self.schemes.client == "https" {
            self.client_url()
        } else {
            self.endpoint()
        };
        let mut full = vec![
            format!("--endpoints={endpoint}"),
            format!("--dial-timeout={dial}"),
            format!("--command-timeout={command}"),
        ];
        full.extend(self.schemes.ctl_args.iter().cloned());
        full.extend(args.iter().map(|s| s.to_string()));
        run_etcdctl(&full, stdin)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill_and_reap();
        if std::thread::panicking() && self.dir.is_some() {
            eprintln!(
                "--- {:?} server log ({}) ---\n{}--- end of server log ---",
                self.kind,
                self.endpoint(),
                self.log()
            );
        }
        // self.dir (TempDir) is removed when dropped after this.
    }
}

/// Runs `etcdctl` with `ETCDCTL_API=3` and the given full argument list,
/// feeding `stdin`, killing it if it runs longer than [`ETCDCTL_TIMEOUT`].
pub fn run_etcdctl(args: &[String], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(ETCDCTL_BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("ETCDCTL_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("ETCDCTL_API", "3")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    run_bounded(cmd, stdin, ETCDCTL_TIMEOUT)
}

/// Runs a command to completion with a time bound, collecting its output.
pub fn run_bounded(mut cmd: Command, stdin: Option<&str>, timeout: Duration) -> Output {
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let input = stdin.map(|s| s.to_string());
    let mut pipe_in = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let (Some(p), Some(s)) = (pipe_in.as_mut(), input) {
            let _ = p.write_all(s.as_bytes());
        }
        drop(pipe_in);
    });
    let out = reader(child.stdout.take().unwrap());
    let err = reader(child.stderr.take().unwrap());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = writer.join();
    let stdout_raw = out.join().unwrap();
    Output {
        status,
        stdout: String::from_utf8_lossy(&stdout_raw).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
        stdout_raw,
    }
}

fn reader<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Runs the detcd binary with the given arguments (not as a server we wait
/// for), bounded in time — for `--version`, bad flags, refusals.
pub fn run_detcd(args: &[&str], envs: &[(&str, &str)], timeout: Duration) -> Output {
    let mut cmd = Command::new(Kind::Detcd.binary());
    cmd.args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    run_bounded(cmd, None, timeout)
}

/// Whether real etcd is installed.
pub fn etcd_available() -> bool {
    Path::new(ETCD_BIN).exists()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (etcdctl's JSON encodes keys and values so).
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Inverse of [`base64_encode`]; panics on malformed input.
pub fn base64_decode(s: &str) -> Vec<u8> {
    assert_eq!(s.len() % 4, 0, "bad base64 length: {s:?}");
    let mut out = Vec::new();
    for chunk in s.as_bytes().chunks(4) {
        let mut n = 0u32;
        let mut pad = 0;
        for &c in chunk {
            let v = if c == b'=' {
                pad += 1;
                0
            } else {
                assert!(pad == 0, "bad base64 padding: {s:?}");
                B64.iter()
                    .position(|&x| x == c)
                    .unwrap_or_else(|| panic!("bad base64 char in {s:?}")) as u32
            };
            n = (n << 6) | v;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    out
}

/// Starts `n` detcd members bootstrapped together (`m1..mN`, one `--initial-cluster`, a token
/// unique to this cluster) with `extra` flags, and waits until every one serves clients.
pub fn start_cluster(n: usize, extra: &[&str]) -> Vec<Server> {
    let ports = free_port_pairs(n);
    let ic = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("m{}=http://127.0.0.1:{peer}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let token = format!("test-{}", ports[0].0);
    let mut members: Vec<Server> = ports
        .iter()
        .enumerate()
        .map(|(i, (client, peer))| {
            Builder::new(Kind::Detcd)
                .name(format!("m{}", i + 1))
                .ports(*client, *peer)
                .initial_cluster(ic.clone())
                .args(["--initial-cluster-token", token.as_str()])
                .args(extra.iter().copied())
                .spawn()
        })
        .collect();
    for m in &mut members {
        m.wait_until_ready();
    }
    members
}

/// (member id, leader id, raft term) as `member` reports it; `None` if it does not answer.
pub fn member_status(member: &Server) -> Option<(u64, u64, u64)> {
    let out = member.etcdctl(&["endpoint", "status", "-w", "json"], None);
    if !out.success() {
        return None;
    }
    let v = out.json();
    let s = &v[0]["Status"];
    Some((
        s["header"]["member_id"].as_u64()?,
        s["leader"].as_u64()?,
        s["raft_term"].as_u64().unwrap_or(0),
    ))
}

/// Waits (bounded) until the members at positions `alive` agree on a leader among them;
/// returns its position.
pub fn wait_leader(members: &[Server], alive: &[usize]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st: Vec<_> = alive.iter().map(|&i| member_status(&members[i])).collect();
        if st.iter().all(Option::is_some) {
            let st: Vec<_> = st.into_iter().map(Option::unwrap).collect();
            let leader = st[0].1;
            if leader != 0 && st.iter().all(|s| s.1 == leader) {
                if let Some(pos) = st.iter().position(|s| s.0 == leader) {
                    return alive[pos];
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no agreed leader among {alive:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
