//! The test harness: starts the real server (the same `Server::start` that `main` uses) on a
//! free loopback port over a fresh temp folder, with keys of every scope, and gives tests a
//! real HTTP client. Also starts the real binary for crash tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use annals::config::Config;
use annals::keys::KeyEntry;
use annals::keys::{self, Scope};
use annals::{Server, StartOptions};
use serde_json::{Value, json};
use tempfile::TempDir;

/// The source every fixture event cites; `TestApp::seed` registers it.
pub const SOURCE: &str = "src:test-wire";

/// The stream `seed` registers the fixture actors on, so that `registry/actors` starts empty.
pub const FIXTURE_STREAM: &str = "registry/test-actors";

/// The actors the fixture [`statement`] and [`meeting`] name, registered by `seed` (seqs 2 to
/// 5): (id, name, kind).
pub const FIXTURE_ACTORS: [(&str, &str, &str); 4] = [
    ("actor:witkoff", "Steve Witkoff", "person"),
    ("actor:putin", "Vladimir Putin", "person"),
    ("actor:russia", "Russia", "state"),
    ("actor:usa", "United States", "state"),
];

/// The registrations of [`FIXTURE_ACTORS`], citing [`SOURCE`], as one request.
pub fn fixture_actors() -> Value {
    let events: Vec<Value> = FIXTURE_ACTORS
        .iter()
        .map(|(id, name, kind)| {
            json!({
                "type": "actor.registered",
                "data": {"actor_id": id, "name": name, "kind": kind},
                "evidence": [{"source": SOURCE, "relation": "reports"}]
            })
        })
        .collect();
    json!({ "events": events })
}

/// One key per role.
#[derive(Clone)]
pub struct TestKeys {
    pub admin: String,
    pub append: String,
    pub read: String,
    entries: Vec<KeyEntry>,
}

impl TestKeys {
    pub fn new() -> TestKeys {
        let mut entries = Vec::new();
        let mut make = |principal: &str, scopes: Vec<Scope>| {
            let k = keys::generate();
            entries.push(KeyEntry {
                principal: principal.into(),
                hash: k.hash.clone(),
                scopes,
            });
            k.key
        };
        let admin = make("test-admin", vec![Scope::Admin]);
        let append = make("test-desk", vec![Scope::Append]);
        let read = make("test-reader", vec![Scope::Read]);
        TestKeys {
            admin,
            append,
            read,
            entries,
        }
    }

    /// The `[[auth.keys]]` TOML for a config file, written as `annals keys new` writes it.
    pub fn toml(&self) -> String {
        self.entries.iter().map(|e| e.to_toml() + "\n").collect()
    }
}

/// A running server over a temp folder.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub keys: TestKeys,
    pub dir: TempDir,
    pub config: Config,
    server: Option<Server>,
    /// Set by [`TestApp::with_log_reads_on_a_second_node`]: the node that answers log reads,
    /// started on the first one.
    second: Option<tokio::sync::OnceCell<SecondNode>>,
}

/// A second server over the same log as a [`TestApp`], on a folder of its own.
struct SecondNode {
    base: String,
    _server: Server,
    _dir: TempDir,
}

/// Whether `path` reads the log itself (events and streams), which any node over the same log
/// must answer alike; the rest (heads, metrics, projections, webhooks) stays with the node the
/// test appends to.
fn is_log_read(path: &str) -> bool {
    path.starts_with("/events") || path.starts_with("/streams")
}

/// Where a test server keeps its log. The `api` binary runs every server on [`Backend::Sled`];
/// the `cluster` binary runs the same suite files with each server on a new stream of one
/// shared NATS cluster (`tests/cluster/suites.rs` routes `spawn_app` there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// sled in the server's own folder: the shipped default.
    Sled,
    /// The JetStream stream `stream` of the cluster at `urls` (created by the server on first
    /// use); the server's folder is then a cache of it.
    Nats { urls: Vec<String>, stream: String },
}

impl Backend {
    /// `config` with its `[log]` backend set to this one.
    pub fn apply(&self, config: Config) -> Config {
        match self {
            Backend::Sled => config, // the shipped default
            Backend::Nats { urls, stream } => config
                .with(json!({"log": {"backend": "nats", "nats": {"urls": urls, "stream": stream}}}))
                .unwrap(),
        }
    }

    /// The `[log]` section of a config file for this backend (none for sled, the default).
    pub fn toml(&self) -> String {
        match self {
            Backend::Sled => String::new(),
            Backend::Nats { urls, stream } => format!(
                "[log]\nbackend = \"nats\"\n\n[log.nats]\nurls = {}\nstream = \"{stream}\"\n\n",
                serde_json::to_string(urls).unwrap()
            ),
        }
    }
}

/// Whether this binary's servers run on the nats backend (the cluster binary's suites shadow
/// this with `true`): a test of the node-local sled copy of state the cluster holds returns
/// early there, saying why.
pub fn on_nats() -> bool {
    false
}

/// The test configuration: defaults, a free loopback port, the given folder.
pub fn test_config(dir: &Path) -> Config {
    test_config_on(dir, &Backend::Sled)
}

/// [`test_config`] with the log on `backend`.
pub fn test_config_on(dir: &Path, backend: &Backend) -> Config {
    let config = Config::defaults()
        .unwrap()
        .with(json!({"server": {"listen": "127.0.0.1:0", "data_dir": dir}}))
        .unwrap();
    backend.apply(config)
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|c| c).await
}

/// Starts a server whose config is adjusted by `adjust`.
pub async fn spawn_app_with(adjust: impl FnOnce(Config) -> Config) -> TestApp {
    spawn_app_on(&Backend::Sled, adjust).await
}

/// Starts a server with its log on `backend`, its config then adjusted by `adjust`: the one
/// place every test server of both binaries is started.
pub async fn spawn_app_on(backend: &Backend, adjust: impl FnOnce(Config) -> Config) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let config = adjust(test_config_on(dir.path(), backend));
    let keys = TestKeys::new();
    let server = start_server(config.clone(), &keys).await;
    TestApp {
        base: format!("http://{}", server.addr()),
        client: reqwest::Client::new(),
        keys,
        dir,
        config,
        server: Some(server),
        second: None,
    }
}

/// The real server (no demo data) with `config`, accepting `keys`.
async fn start_server(config: Config, keys: &TestKeys) -> Server {
    Server::start(
        config,
        StartOptions {
            demo: false,
            extra_keys: keys.entries.clone(),
            ..StartOptions::default()
        },
    )
    .await
    .unwrap()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Stops the server (gracefully) and starts it again on the same folder and port 0.
    pub async fn restart(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
        let server = start_server(self.config.clone(), &self.keys).await;
        self.base = format!("http://{}", server.addr());
        self.server = Some(server);
    }

    /// Stops the server and returns the folder (for offline tools).
    pub async fn stop(mut self) -> TempDir {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
        self.dir
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    /// POSTs a body to a stream with the append key.
    pub async fn append(&self, stream: &str, body: &Value) -> reqwest::Response {
        self.append_with(stream, body, &self.keys.append).await
    }

    pub async fn append_with(&self, stream: &str, body: &Value, key: &str) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/streams/{}/events", encode(stream))))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// GET with the read key (a log read from the second node, if the test has one).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        let base = if is_log_read(path) {
            self.log_read_base().await
        } else {
            &self.base
        };
        self.client
            .get(format!("{base}{path}"))
            .bearer_auth(&self.keys.read)
            .send()
            .await
            .unwrap()
    }

    /// From now on, log reads (`/events...`, `/streams...`) through [`TestApp::get`] and
    /// [`read_whole_log`] are answered by a second node over the same log (the cluster suites'
    /// nats stream), started on the first such read over a folder of its own, each read once
    /// its head has reached this node's: what one node acknowledged must read the same on
    /// another.
    pub fn with_log_reads_on_a_second_node(mut self) -> TestApp {
        self.second = Some(tokio::sync::OnceCell::new());
        self
    }

    /// Where a log read goes: this node, or the second node once it has caught up.
    pub async fn log_read_base(&self) -> &str {
        let Some(second) = &self.second else {
            return &self.base;
        };
        let second = second
            .get_or_init(|| async {
                let dir = tempfile::tempdir().unwrap();
                // The nodes of a cluster share its webhook subscriptions, sealed with one key:
                // the second node reads the first one's (in its data folder unless set). It
                // only reads: it never takes a delivery lease from the first.
                let key_file = if self.config.webhooks.secret_key_file.as_os_str().is_empty() {
                    self.dir.path().join("webhooks.key")
                } else {
                    self.config.webhooks.secret_key_file.clone()
                };
                let config = self
                    .config
                    .clone()
                    .with(json!({
                        "server": {"data_dir": dir.path()},
                        "webhooks": {"secret_key_file": key_file, "deliver": false},
                    }))
                    .unwrap();
                let server = start_server(config, &self.keys).await;
                SecondNode {
                    base: format!("http://{}", server.addr()),
                    _server: server,
                    _dir: dir,
                }
            })
            .await;
        let seq_at = |base: String| async move {
            let resp = self
                .client
                .get(format!("{base}/log"))
                .bearer_auth(&self.keys.read)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "GET {base}/log");
            resp.json::<Value>().await.unwrap()["seq"].as_u64().unwrap()
        };
        let target = seq_at(self.base.clone()).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let seq = seq_at(second.base.clone()).await;
            if seq >= target {
                return &second.base;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the second node is at {seq} after 30 s, not {target}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let resp = self.get(path).await;
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.unwrap()
    }

    /// The durable head: (seq, hash).
    pub async fn head(&self) -> (u64, String) {
        let v = self.get_json("/log").await;
        (
            v["seq"].as_u64().unwrap(),
            v["hash"].as_str().unwrap().to_string(),
        )
    }

    /// Registers the fixture source (seq 1), then the [`FIXTURE_ACTORS`] (seqs 2 to 5).
    pub async fn seed(&self) {
        let resp = self.append("registry/sources", &source_event(SOURCE)).await;
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        let resp = self.append(FIXTURE_STREAM, &fixture_actors()).await;
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    }
}

/// Percent-encodes a stream name for a path segment.
pub fn encode(stream: &str) -> String {
    stream.replace('/', "%2F")
}

pub fn source_event(id: &str) -> Value {
    json!({
        "type": "source.registered",
        "occurred": {"start": "2026-01-22", "precision": "day"},
        "data": {"source_id": id, "kind": "wire", "publisher": "Test Wire"},
        "evidence": []
    })
}

/// A valid statement citing [`SOURCE`]; `n` makes it distinct.
pub fn statement(n: u64) -> Value {
    json!({
        "type": "statement.made",
        "occurred": {"start": "2026-01-22", "precision": "day"},
        "process": "ru-ua-peace",
        "data": {
            "statement_id": format!("statement:test-{n}"),
            "speaker": "actor:witkoff",
            "content": format!("Statement number {n}.")
        },
        "evidence": [{"source": SOURCE, "relation": "quotes", "quote": format!("number {n}")}]
    })
}

/// A valid meeting citing [`SOURCE`].
pub fn meeting(id: &str) -> Value {
    json!({
        "type": "meeting.held",
        "occurred": {"start": "2026-01-22", "precision": "day"},
        "process": "ru-ua-peace",
        "data": {
            "meeting_id": id,
            "participants": [
                {"actor": "actor:putin", "side": "actor:russia", "role": "host"},
                {"actor": "actor:witkoff", "side": "actor:usa", "role": "visitor"}
            ],
            "location": {"name": "Moscow"},
            "duration": "PT3H",
            "duration_approx": true
        },
        "evidence": [{"source": SOURCE, "relation": "reports", "credibility": 2}],
        "meta": {"inferred": ["/occurred/start"], "notes": "year inferred"}
    })
}

/// A running `annals serve` process (the real binary).
pub struct BinaryServer {
    pub child: Child,
    pub base: String,
}

impl BinaryServer {
    /// Starts the binary on `dir` with `config_file`; waits for its "listening on" line.
    pub fn start(dir: &Path, config_file: &Path) -> BinaryServer {
        BinaryServer::spawn(dir, config_file, "warn", Stdio::inherit())
    }

    /// [`BinaryServer::start`] logging at `level` into `log`, a file the test reads.
    pub fn start_logging(
        dir: &Path,
        config_file: &Path,
        level: &str,
        log: std::fs::File,
    ) -> BinaryServer {
        BinaryServer::spawn(dir, config_file, level, Stdio::from(log))
    }

    fn spawn(dir: &Path, config_file: &Path, level: &str, stderr: Stdio) -> BinaryServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_annals"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(config_file)
            .arg("--data-dir")
            .arg(dir)
            .env("ANNALS_LOG", level)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        BinaryServer { child, base: addr }
    }

    /// SIGTERM, as an operator stops the service; waits for it to exit and returns how.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM failed");
        self.child.wait().unwrap()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// Writes a config file with the given keys into `dir`, returning its path.
pub fn write_config(dir: &Path, keys: &TestKeys) -> PathBuf {
    let path = dir.join("annals.toml");
    std::fs::write(&path, keys.toml()).unwrap();
    path
}

/// Runs the binary with arguments; returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_annals"))
        .args(args)
        .env("ANNALS_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut sin = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            sin.write_all(bytes).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until nothing holds the store's lock. sled 0.34 lets go of it a moment after the
/// last handle is dropped (spacejam/sled#1289), so a folder just stopped or tampered with may
/// still be locked when the next opener (another process) arrives.
pub fn wait_until_released(dir: &Path) {
    let file = match std::fs::File::open(dir.join("db")) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return, // no store yet
        Err(e) => panic!("cannot open the store in {}: {e}", dir.display()),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match file.try_lock() {
            Ok(()) => {
                file.unlock().unwrap();
                return;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{} stays locked",
                    dir.display()
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("cannot lock {}: {e:?}", dir.display()),
        }
    }
}

/// A Python package for a test that checks Annals with an outside tool: importable from
/// `<target>/<folder>` (`$CARGO_TARGET_DIR` or `target/`), installed there with pip on first use
/// (PyPI is the only network this needs), so a fresh clone needs nothing installed by hand.
/// Each package gets its own folder: compiled dependencies are pinned to the interpreter that
/// installed them. Returns the folder, for `PYTHONPATH`.
pub fn python_package(folder: &str, import: &str, requirement: &str) -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join(folder);
    let importable = |dir: &PathBuf| {
        std::process::Command::new("python3")
            .args(["-c", &format!("import {import}")])
            .env("PYTHONPATH", dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !importable(&dir) {
        pip_install(&dir, requirement);
        assert!(
            importable(&dir),
            "{requirement} installed but not importable"
        );
    }
    dir
}

/// Opens the log of `dir` in-process with the shipped `[log]` settings but `durability`.
pub fn open_log(dir: &Path, durability: annals::log::Durability) -> annals::log::Log {
    let mut config = Config::defaults().unwrap().log;
    config.durability = durability;
    annals::log::Log::open(
        dir,
        config,
        annals::metrics::Metrics::new().unwrap(),
        annals::event::rules::declarations,
    )
    .unwrap()
}

/// Opens a stopped data folder's sled store directly (to inspect or tamper with it), with the
/// shipped `[log]` settings: a plain `sled::open` uses sled's defaults, which would refuse a
/// compressed folder.
pub fn open_store(dir: &Path) -> sled::Db {
    let log = annals::config::Config::defaults().unwrap().log;
    annals::log::raw::open_tree(dir, &log).unwrap().0
}

impl TestApp {
    /// Stops the server, lets `offline` change the folder (as an older build or an operator
    /// would have left it), and starts the server again on it.
    pub async fn restart_after(&mut self, offline: impl FnOnce(&Path)) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
        offline(self.dir.path());
        self.restart().await;
    }
}

/// Registers the actors and issues a test's events name, now that every reference must name a
/// known id: an id with the prefix `issue:` or `topic:` is defined as an issue, any other is
/// registered as an actor. One request per registry, citing [`SOURCE`] (so `seed` first);
/// each id takes one seq, actors first, in the order given. Returns the head seq after.
pub async fn register_all(app: &TestApp, ids: &[&str]) -> u64 {
    let is_issue = |id: &str| id.starts_with("issue:") || id.starts_with("topic:");
    let evidence = json!([{"source": SOURCE, "relation": "reports"}]);
    let actors: Vec<Value> = ids
        .iter()
        .filter(|id| !is_issue(id))
        .map(|id| {
            json!({"type": "actor.registered",
                   "data": {"actor_id": id, "name": id, "kind": "organisation"},
                   "evidence": evidence})
        })
        .collect();
    let issues: Vec<Value> = ids
        .iter()
        .filter(|id| is_issue(id))
        .map(|id| {
            json!({"type": "issue.defined", "data": {"issue_id": id, "label": id},
                   "evidence": evidence})
        })
        .collect();
    for (stream, events) in [("registry/actors", actors), ("registry/issues", issues)] {
        if events.is_empty() {
            continue;
        }
        let resp = app.append(stream, &json!({ "events": events })).await;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert!(status == 201 || status == 200, "{stream}: {status} {body}");
    }
    app.head().await.0
}

/// The message of the field error at `pointer` of a 422 validation problem (asserts the status
/// and the problem type, and that an error names `pointer`).
pub fn field_error(status: u16, body: &Value, pointer: &str) -> String {
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["type"], "https://annals.dev/problems/validation-failed",
        "{body}"
    );
    body["errors"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["pointer"] == pointer))
        .and_then(|e| e["message"].as_str())
        .unwrap_or_else(|| panic!("no error at {pointer}: {body}"))
        .to_string()
}

/// Installs `requirement` with pip into `dir` (`--target`, so nothing outside it changes);
/// panics with pip's error when it fails. PyPI is the only network this needs.
pub fn pip_install(dir: &Path, requirement: &str) {
    let out = std::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(dir)
        .arg(requirement)
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed for {requirement}: {e}"));
    assert!(
        out.status.success(),
        "pip install {requirement} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every record of the log, paging through `GET /events`; asserts the pages agree on the head.
pub async fn read_whole_log(app: &TestApp) -> Vec<Value> {
    read_whole_log_at(&app.client, app.log_read_base().await, &app.keys.read).await
}

/// GET `url` with `key`: must answer 200, with JSON.
pub async fn get_json_at(client: &reqwest::Client, url: &str, key: &str) -> Value {
    let resp = client.get(url).bearer_auth(key).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.json().await.unwrap()
}

/// As [`read_whole_log`], from the server at `base` with `key`.
pub async fn read_whole_log_at(client: &reqwest::Client, base: &str, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut from = 1;
    loop {
        let resp = client
            .get(format!("{base}/events?from={from}&limit=1000"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let page: Value = resp.json().await.unwrap();
        out.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next"].as_u64() {
            Some(n) => from = n,
            None => {
                assert_eq!(page["head"].as_u64().unwrap(), out.len() as u64);
                return out;
            }
        }
    }
}

/// A projection view: `path` with `?min_seq=` from `app`. Where the test has a second node
/// over the same log (the cluster suites, [`TestApp::with_log_reads_on_a_second_node`]), the
/// same view is asked of it too, once its log and projections have reached the seq the first
/// node answered at, and both answers must be the same: each node folds the log into
/// projections of its own, and every node must tell the same story.
pub async fn view_on_every_node(app: &TestApp, path: &str, min_seq: u64) -> Value {
    let at = |min_seq: u64| {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}min_seq={min_seq}")
    };
    let first = app.get_json(&at(min_seq)).await;
    if app.second.is_none() {
        return first;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut mine = first.clone();
    loop {
        // The second node's log holds what the first one's did when it answered.
        let second_base = app.log_read_base().await.to_string();
        // The same seq on both: only then are the answers comparable.
        let seq = mine["as_of_seq"].as_u64().unwrap_or(min_seq);
        let resp = app
            .client
            .get(format!("{second_base}{}", at(seq)))
            .bearer_auth(&app.keys.read)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "GET {} on the second node", at(seq));
        let theirs: Value = resp.json().await.unwrap();
        if theirs == mine {
            return first;
        }
        let (a, b) = (mine["as_of_seq"].as_u64(), theirs["as_of_seq"].as_u64());
        assert!(
            a != b && std::time::Instant::now() < deadline,
            "GET {path}: the second node answers\n{theirs}\nthe first\n{mine}"
        );
        // The log moved on between the two asks: the first node asked again at the later seq,
        // once its log holds it (the second node may apply a group the stream stored a moment
        // before the node that published it has written it).
        let want = a.max(b).unwrap_or(min_seq);
        while app.head().await.0 < want {
            assert!(
                std::time::Instant::now() < deadline,
                "GET {path}: the first node's log never reached seq {want}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        mine = app.get_json(&at(want)).await;
    }
}

/// A signed checkpoint of `app`'s log now (`POST /audit/checkpoint`, admin key).
pub async fn checkpoint(app: &TestApp) -> Value {
    let resp = app
        .client
        .post(app.url("/audit/checkpoint"))
        .bearer_auth(&app.keys.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

/// The key `app` signs its checkpoints with (`GET /audit/public-key`, which needs no key).
pub async fn public_key(app: &TestApp) -> String {
    let resp = app
        .client
        .get(app.url("/audit/public-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the public key is public");
    let v: Value = resp.json().await.unwrap();
    v["public_key"].as_str().unwrap().to_string()
}

/// Each stream of `log`, read page by page through its own index (`/streams/{name}/events`),
/// holds exactly its records, at their versions and seqs.
pub async fn assert_streams_read_through_their_index(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    log: &[Value],
) {
    let mut want: std::collections::BTreeMap<&str, Vec<(u64, u64)>> = Default::default();
    for r in log {
        let at = (r["version"].as_u64().unwrap(), r["seq"].as_u64().unwrap());
        want.entry(r["stream"].as_str().unwrap())
            .or_default()
            .push(at);
    }
    for (stream, want) in want {
        let mut got: Vec<(u64, u64)> = Vec::new();
        loop {
            let from = got.last().map_or(1, |(v, _)| v + 1);
            let url = format!(
                "{base}/streams/{}/events?from={from}&limit=100",
                encode(stream)
            );
            let page = get_json_at(client, &url, key).await;
            let events = page["events"].as_array().unwrap();
            if events.is_empty() {
                break;
            }
            got.extend(
                events
                    .iter()
                    .map(|e| (e["version"].as_u64().unwrap(), e["seq"].as_u64().unwrap())),
            );
        }
        assert_eq!(got, want, "stream {stream} read through its index");
    }
}
