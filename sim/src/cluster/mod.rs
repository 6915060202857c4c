//! The cluster harness: server nodes on simulated IPs, each with a [`SimDisk`] that outlives
//! node restarts, and a client node speaking etcd's gRPC API over madsim-tonic.
//!
//! Members are numbered from 0 in the order they were created (n1, n2, …); a member added
//! later (see [`membership`]) takes the next number, and a removed one keeps its number. Each
//! member runs as etcd does: it stops on a fatal storage error (raft's fatal state) or once it
//! has been removed from the cluster, and records why in its [`Exit`]; the nemesis' restart
//! policy brings a member that stopped on an error back.

mod client;
pub mod log_check;
pub mod membership;
pub mod wal;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use detcd::config::{Config, InitialMember};
use detcd::io::disk::{Disk, SimDisk};
use detcd::member::Server;
use madsim::runtime::{Handle, NodeHandle};

pub use client::{kv_client, status, wait_leader};

/// Size of a simulated member's WAL segments: small, as a run's clients write only some 10 KiB
/// of log per member, so that every run rolls segments (and purges them, see
/// [`SIM_SNAPSHOT_COUNT`]).
pub const SIM_WAL_SEGMENT_BYTES: u64 = 4 << 10;
/// `--snapshot-count` of a simulated member unless a test's configuration says otherwise:
/// small, as a run commits only a few hundred entries, so that runs build snapshots and purge
/// their raft log (etcd's 100000 never would, nor would 100 in most runs).
pub const SIM_SNAPSHOT_COUNT: u64 = 20;
/// The cluster token every simulated member uses (member IDs derive from it).
pub const TOKEN: &str = "sim";

/// Why a member's server is not running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It is running (or booting).
    Running,
    /// It stopped on an error: it could not start, or raft hit a fatal (storage) error.
    Failed(String),
    /// It was removed from the cluster and stopped, as etcd's removed members do.
    Removed,
}

/// One simulated member.
#[derive(Clone)]
pub struct SimNode {
    /// The madsim node.
    pub handle: NodeHandle,
    /// Its disk: survives restarts; `crash` drops what was not synced.
    pub disk: SimDisk,
    /// Its client URL.
    pub client_url: String,
    /// Its peer URL.
    pub peer_url: String,
    /// Its etcd member ID.
    pub member_id: u64,
    /// Why its server is not running, if it is not.
    pub exit: Arc<Mutex<Exit>>,
    /// Every time its server refused to start, in order.
    pub refusals: Arc<Mutex<Vec<Refusal>>>,
}

/// A member's server refused to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub error: String,
    /// Whether its WAL directory had a fault in force when it began or ended trying (errors,
    /// a full disk, corrupt reads).
    pub disk_faulty: bool,
    /// Whether it had a WAL before it tried (a member that has not joined yet has none). A
    /// member with a WAL and no disk fault that refuses could not read back what it wrote.
    pub had_wal: bool,
}

impl SimNode {
    /// Why its server is not running, if it is not.
    pub fn exit(&self) -> Exit {
        lock(&self.exit).clone()
    }
}

/// A running simulated cluster.
pub struct SimCluster {
    runtime: Handle,
    nodes: Mutex<Vec<SimNode>>,
    /// Members power-cut and not yet restarted.
    crashed: Mutex<BTreeSet<usize>>,
    /// Members frozen.
    paused: Mutex<BTreeSet<usize>>,
    /// Restarts per member (its incarnation number).
    restarts: Mutex<BTreeMap<usize, u64>>,
    /// Members removed from the cluster (their servers stop).
    removed: Mutex<BTreeSet<usize>>,
    client: NodeHandle,
    tune: Arc<dyn Fn(&mut Config) + Send + Sync>,
    life: Lifecycle,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn node_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, (i + 1) as u8))
}

/// Member `i`'s name, peer URL and client URL.
fn addresses(i: usize) -> (String, String, String) {
    let ip = node_ip(i);
    (
        format!("n{}", i + 1),
        format!("http://{ip}:2380"),
        format!("http://{ip}:2379"),
    )
}

/// How often a member checks whether raft stopped on a fatal error.
const FATAL_POLL: Duration = Duration::from_millis(100);

/// Resolves once raft on `server` has stopped on a fatal error. It polls rather than waits on
/// raft's metrics channel: a tokio `watch` waiter draws from tokio's per-thread generator,
/// and every extra draw is one more way for a simulation to depend on what ran before it in
/// the process.
async fn fatal(server: &Server) -> String {
    loop {
        if let Err(e) = &server.node().raft().metrics().borrow().running_state {
            return e.to_string();
        }
        tokio::time::sleep(FATAL_POLL).await;
    }
}

/// How a member's server lives on its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// It serves until the node is killed; a failed start panics the simulation. The fewest
    /// moving parts, for scenarios that stop members themselves.
    Serve,
    /// As etcd: it stops once removed from the cluster or when raft hits a fatal (storage)
    /// error, and records why in its [`Exit`]; a failed start is recorded too. What the
    /// nemesis' restart policy and membership changes need.
    AsEtcd,
}

/// A member's whole life on its node: start, serve until removed or failed, stop.
async fn member(
    cfg: Config,
    disk: SimDisk,
    exit: Arc<Mutex<Exit>>,
    refusals: Arc<Mutex<Vec<Refusal>>>,
    life: Lifecycle,
) {
    *lock(&exit) = Exit::Running;
    if life == Lifecycle::Serve {
        let server = Server::start(&cfg, Disk::Sim(disk))
            .await
            .expect("member starts");
        std::future::pending::<()>().await;
        drop(server);
        return;
    }
    let had_wal = !wal::segments(&disk.files()).is_empty();
    let faulty = |disk: &SimDisk| {
        let f = disk.files().faults();
        f.write_error > 0.0 || f.sync_error > 0.0 || f.corrupt_read > 0.0 || f.capacity.is_some()
    };
    // A start can take seconds: a fault in force when it began counts even if it was lifted
    // by the time it failed.
    let faulty_at_start = faulty(&disk);
    let server = match Server::start(&cfg, Disk::Sim(disk.clone())).await {
        Ok(s) => s,
        // It had applied its removal, or a former peer told it: it stops as a removed member,
        // which is no refusal.
        Err(e) if e.to_string() == detcd::cluster::membership::MEMBER_REMOVED => {
            tracing::warn!(member = %cfg.name, "stopping: {e}");
            *lock(&exit) = Exit::Removed;
            return;
        }
        Err(e) => {
            tracing::warn!(member = %cfg.name, "could not start: {e}");
            // A fault set and lifted while it started shows in the error: only injected
            // faults make the simulated disk fail.
            let injected = e.to_string().contains("simulated disk: ");
            lock(&refusals).push(Refusal {
                error: e.to_string(),
                disk_faulty: faulty_at_start || faulty(&disk) || injected,
                had_wal,
            });
            *lock(&exit) = Exit::Failed(format!("start: {e}"));
            return;
        }
    };
    // Biased: tokio's select otherwise picks a branch with its own (unseeded) randomness.
    let why = tokio::select! {
        biased;
        _ = server.removed() => Exit::Removed,
        e = fatal(&server) => Exit::Failed(e),
    };
    tracing::warn!(member = %cfg.name, "stopping: {why:?}");
    server.stop().await;
    *lock(&exit) = why;
}

impl SimCluster {
    /// Starts a single-member cluster. Must run inside a madsim runtime.
    pub fn single() -> SimCluster {
        SimCluster::new(1)
    }

    /// Starts `n` members bootstrapped together (etcd's `--initial-cluster`), each on its own
    /// simulated host and disk. Must run inside a madsim runtime.
    pub fn new(n: usize) -> SimCluster {
        SimCluster::with_config(n, |_| {})
    }

    /// Like [`SimCluster::new`], with `tune` applied to every member's configuration (members
    /// added later too).
    pub fn with_config(n: usize, tune: impl Fn(&mut Config) + Send + Sync + 'static) -> SimCluster {
        SimCluster::build(n, Lifecycle::Serve, tune)
    }

    /// `n` members that live [`Lifecycle::AsEtcd`]: they stop when removed or on a fatal
    /// storage error (the runner's nemesis restarts the latter).
    pub fn as_etcd(n: usize) -> SimCluster {
        SimCluster::build(n, Lifecycle::AsEtcd, |_| {})
    }

    /// Like [`SimCluster::as_etcd`], with `tune` applied to every member's configuration.
    pub fn as_etcd_with(
        n: usize,
        tune: impl Fn(&mut Config) + Send + Sync + 'static,
    ) -> SimCluster {
        SimCluster::build(n, Lifecycle::AsEtcd, tune)
    }

    fn build(
        n: usize,
        life: Lifecycle,
        tune: impl Fn(&mut Config) + Send + Sync + 'static,
    ) -> SimCluster {
        let runtime = Handle::current();
        detcd::io::clock::reset_skews();
        let client = runtime
            .create_node()
            .name("client")
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)))
            .build();
        let cluster = SimCluster {
            runtime,
            nodes: Mutex::new(Vec::new()),
            crashed: Mutex::new(BTreeSet::new()),
            paused: Mutex::new(BTreeSet::new()),
            restarts: Mutex::new(BTreeMap::new()),
            removed: Mutex::new(BTreeSet::new()),
            client,
            tune: Arc::new(tune),
            life,
        };
        let initial: Vec<InitialMember> = (0..n)
            .map(|i| {
                let (name, peer, _) = addresses(i);
                InitialMember {
                    name,
                    peer_urls: vec![peer],
                }
            })
            .collect();
        for _ in 0..n {
            cluster.spawn_member(initial.clone(), None);
        }
        cluster
    }

    /// Creates the next member's node with `initial` as its `--initial-cluster`; `new` is
    /// `--initial-cluster-state new`, else `existing`. Returns its number.
    /// Creates and boots the next member. A founding member (`joined_as: None`) has the ID
    /// etcd derives from its peer URL and the cluster token; a member added at runtime has the
    /// ID its MemberAdd was given (etcd's includes the time of the request).
    fn spawn_member(&self, initial: Vec<InitialMember>, joined_as: Option<u64>) -> usize {
        let mut nodes = lock(&self.nodes);
        let i = nodes.len();
        let (name, peer_url, client_url) = addresses(i);
        let mut cfg = Config::single(&name, &client_url, &peer_url);
        cfg.initial_cluster = initial;
        cfg.initial_cluster_token = TOKEN.to_string();
        cfg.initial_cluster_new = joined_as.is_none();
        // Small WAL segments: the simulated directory holds them in memory, and small ones make
        // every run roll and purge segments.
        cfg.wal_segment_bytes = SIM_WAL_SEGMENT_BYTES;
        cfg.snapshot_count = SIM_SNAPSHOT_COUNT;
        (self.tune)(&mut cfg);
        let disk = SimDisk::new();
        let exit = Arc::new(Mutex::new(Exit::Running));
        let refusals = Arc::new(Mutex::new(Vec::new()));
        let (d, e, r, life) = (disk.clone(), exit.clone(), refusals.clone(), self.life);
        let handle = self
            .runtime
            .create_node()
            .name(name)
            .ip(node_ip(i))
            .init(move || member(cfg.clone(), d.clone(), e.clone(), r.clone(), life))
            .build();
        nodes.push(SimNode {
            handle,
            disk,
            client_url,
            member_id: joined_as.unwrap_or_else(|| {
                detcd::cluster::member_id(std::slice::from_ref(&peer_url), TOKEN)
            }),
            peer_url,
            exit,
            refusals,
        });
        i
    }

    /// Members ever created (removed ones included).
    pub fn len(&self) -> usize {
        lock(&self.nodes).len()
    }

    /// Whether no member was ever created.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Member `i`, if it was ever created.
    pub fn node(&self, i: usize) -> Option<SimNode> {
        lock(&self.nodes).get(i).cloned()
    }

    /// Members not removed, in order (a member that stopped because it learnt it was removed
    /// counts as removed even if the call that removed it looked ambiguous).
    pub fn members(&self) -> Vec<usize> {
        let removed = lock(&self.removed).clone();
        let nodes = lock(&self.nodes);
        (0..nodes.len())
            .filter(|i| !removed.contains(i) && *lock(&nodes[*i].exit) != Exit::Removed)
            .collect()
    }

    /// Members neither removed nor power-cut, in order.
    pub fn live(&self) -> Vec<usize> {
        let crashed = lock(&self.crashed).clone();
        self.members()
            .into_iter()
            .filter(|i| !crashed.contains(i))
            .collect()
    }

    /// Whether member `i` is power-cut.
    pub fn is_crashed(&self, i: usize) -> bool {
        lock(&self.crashed).contains(&i)
    }

    /// Marks member `i` removed from the cluster (its server stops by itself).
    pub fn mark_removed(&self, i: usize) {
        lock(&self.removed).insert(i);
    }

    /// The client URL of every member ever created, by number.
    pub fn client_urls(&self) -> Vec<String> {
        lock(&self.nodes)
            .iter()
            .map(|n| n.client_url.clone())
            .collect()
    }

    /// Starts `f` on the client node without waiting for it.
    pub fn spawn_client<F, T>(&self, f: F) -> madsim::task::JoinHandle<T>
    where
        F: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.client.spawn(f)
    }

    /// Runs `f` on the client node.
    pub async fn client<F, T>(&self, f: F) -> T
    where
        F: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.client.spawn(f).await.expect("client task")
    }

    /// How many times member `i` was restarted: its state may go back across a restart.
    pub fn incarnation(&self, i: usize) -> u64 {
        lock(&self.restarts).get(&i).copied().unwrap_or(0)
    }

    /// Whether member `i` is frozen.
    pub fn is_paused(&self, i: usize) -> bool {
        lock(&self.paused).contains(&i)
    }

    /// Power-cuts member `i` (unfreezing it first): its tasks die, and its disk loses whatever
    /// was not synced. Returns the number of write batches lost.
    pub fn crash(&self, i: usize) -> usize {
        let Some(n) = self.node(i) else { return 0 };
        self.resume(i);
        lock(&self.crashed).insert(i);
        self.runtime.kill(n.handle.id());
        n.disk.crash()
    }

    /// Kills member `i`'s process (unfreezing it first): its tasks die, but what it wrote
    /// survives, synced or not, as the OS page cache keeps it.
    pub fn kill(&self, i: usize) {
        let Some(n) = self.node(i) else { return };
        self.resume(i);
        lock(&self.crashed).insert(i);
        self.runtime.kill(n.handle.id());
    }

    /// The madsim node of member `i`.
    ///
    /// # Panics
    /// If member `i` was never created.
    pub fn node_id(&self, i: usize) -> madsim::task::NodeId {
        lock(&self.nodes)[i].handle.id()
    }

    /// Freezes member `i` (its tasks stop running; its network and disk stay). A member that
    /// does not exist or is power-cut is left alone.
    pub fn pause(&self, i: usize) {
        if i < self.len() && !self.is_crashed(i) && lock(&self.paused).insert(i) {
            self.runtime.pause(self.node_id(i));
        }
    }

    /// Unfreezes member `i` if it is frozen.
    pub fn resume(&self, i: usize) {
        if lock(&self.paused).remove(&i) {
            self.runtime.resume(self.node_id(i));
        }
    }

    /// Unfreezes every frozen member.
    pub fn resume_all(&self) {
        let paused = lock(&self.paused).clone();
        for i in paused {
            self.resume(i);
        }
    }

    /// The member that says it leads (asking the live ones in order), if any answers so.
    pub async fn leader(&self) -> Option<usize> {
        let urls = self.client_urls();
        for i in self.live() {
            let url = urls[i].clone();
            let s = self
                .client(async move {
                    tokio::time::timeout(Duration::from_millis(500), status(&url))
                        .await
                        .ok()
                        .flatten()
                })
                .await;
            if let Some((me, leader, _)) = s {
                if me == leader {
                    return Some(i);
                }
            }
        }
        None
    }

    /// Cuts every link between `side` and the other members, both ways (clients still reach
    /// every member).
    pub fn partition(&self, side: &[usize]) {
        let rest: Vec<usize> = (0..self.len()).filter(|b| !side.contains(b)).collect();
        self.clog(side, &rest);
        self.clog(&rest, side);
    }

    /// Cuts the links from every member of `from` to every member of `to` (one way); members
    /// that do not exist are ignored.
    pub fn clog(&self, from: &[usize], to: &[usize]) {
        let net = madsim::net::NetSim::current();
        let n = self.len();
        for a in from.iter().filter(|a| **a < n) {
            for b in to.iter().filter(|b| *b != a && **b < n) {
                net.clog_link(self.node_id(*a), self.node_id(*b));
            }
        }
    }

    /// Restores the link from `a` to `b` (if both exist).
    pub fn unclog(&self, a: usize, b: usize) {
        if a < self.len() && b < self.len() {
            madsim::net::NetSim::current().unclog_link(self.node_id(a), self.node_id(b));
        }
    }

    /// Restores every link between members.
    pub fn heal(&self) {
        let n = self.len();
        for a in 0..n {
            for b in (0..n).filter(|b| *b != a) {
                self.unclog(a, b);
            }
        }
    }

    /// Boots member `i` again from what its disk kept. A running member is killed first (a
    /// process restart: its unsynced writes survive, as in the OS page cache).
    pub fn restart(&self, i: usize) {
        let Some(n) = self.node(i) else { return };
        lock(&self.crashed).remove(&i);
        *lock(&self.restarts).entry(i).or_insert(0) += 1;
        *lock(&n.exit) = Exit::Running;
        // madsim's restart alone leaves the old instance's sockets bound: the new one then
        // never receives a connection (found when a member restarted while it ran stayed
        // unreachable as the raft leader). Killing first releases them.
        self.runtime.kill(n.handle.id());
        self.runtime.restart(n.handle.id());
    }
}
