//! Test receivers and helpers for the webhook tests. A receiver records every request it gets
//! (headers and exact body) and answers as its behaviour says, so a test can fail, hang, go
//! away and come back. Waits poll with a generous hang guard; nothing asserts on timing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use warp::Filter;
use warp::http::StatusCode;

use crate::helpers::*;

/// Longest any single wait may take before the test fails (a hang guard, not a timing claim).
pub const GUARD: Duration = Duration::from_secs(20);

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Captured {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`.
    pub timestamp: String,
    /// `webhook-signature`.
    pub signature: String,
    /// The exact body.
    pub body: Bytes,
    /// What the receiver answered (0: it hung).
    pub answered: u16,
}

impl Captured {
    /// The parsed body.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The log seq of the delivered event.
    pub fn seq(&self) -> u64 {
        self.json()["data"]["seq"].as_u64().unwrap()
    }
}

/// How a receiver answers request number `n` (0-based, over its lifetime).
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Status(u16),
    /// Never answers within any sane timeout.
    Hang,
    /// A status with `Retry-After: secs`.
    RetryAfter(u16, u64),
    /// 200 after this many milliseconds.
    SlowOk(u64),
}

type Behaviour = Arc<dyn Fn(usize, &Captured) -> Answer + Send + Sync>;

/// A small warp server on loopback that records what it gets.
pub struct Receiver {
    pub addr: SocketAddr,
    pub captured: Arc<Mutex<Vec<Captured>>>,
    count: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
}

impl Receiver {
    /// Starts a receiver that answers 200 to everything.
    pub async fn ok() -> Receiver {
        Receiver::start(|_, _| Answer::Status(200)).await
    }

    /// Starts a receiver on a free port.
    pub async fn start(
        behaviour: impl Fn(usize, &Captured) -> Answer + Send + Sync + 'static,
    ) -> Receiver {
        Receiver::start_on(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(behaviour),
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(AtomicUsize::new(0)),
        )
        .await
        .unwrap()
    }

    async fn start_on(
        addr: SocketAddr,
        behaviour: Behaviour,
        captured: Arc<Mutex<Vec<Captured>>>,
        count: Arc<AtomicUsize>,
    ) -> Result<Receiver, warp::Error> {
        let (cap, cnt) = (captured.clone(), count.clone());
        let route = warp::post()
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(move |headers: warp::http::HeaderMap, body: Bytes| {
                let (cap, cnt, behaviour) = (cap.clone(), cnt.clone(), behaviour.clone());
                async move {
                    let h = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    let mut c = Captured {
                        id: h("webhook-id"),
                        timestamp: h("webhook-timestamp"),
                        signature: h("webhook-signature"),
                        body,
                        answered: 0,
                    };
                    let n = cnt.fetch_add(1, Ordering::SeqCst);
                    let answer = behaviour(n, &c);
                    c.answered = match answer {
                        Answer::Status(s) | Answer::RetryAfter(s, _) => s,
                        Answer::SlowOk(_) => 200,
                        Answer::Hang => 0,
                    };
                    cap.lock().unwrap().push(c);
                    let status = match answer {
                        Answer::Hang => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            200
                        }
                        Answer::SlowOk(ms) => {
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                            200
                        }
                        Answer::Status(s) | Answer::RetryAfter(s, _) => s,
                    };
                    let mut resp = warp::http::Response::new(warp::hyper::Body::from("received"));
                    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                    if let Answer::RetryAfter(_, secs) = answer {
                        resp.headers_mut()
                            .insert("retry-after", secs.to_string().parse().unwrap());
                    }
                    resp
                }
            });
        let (tx, rx) = oneshot::channel::<()>();
        let (bound, server) =
            warp::serve(route).try_bind_with_graceful_shutdown(addr, async move {
                let _ = rx.await;
            })?;
        tokio::spawn(server);
        Ok(Receiver {
            addr: bound,
            captured,
            count,
            stop: Some(tx),
        })
    }

    /// The URL to subscribe with.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Everything received so far.
    pub fn all(&self) -> Vec<Captured> {
        self.captured.lock().unwrap().clone()
    }

    /// Requests answered with a 2xx.
    pub fn accepted(&self) -> Vec<Captured> {
        self.all()
            .into_iter()
            .filter(|c| (200..300).contains(&c.answered))
            .collect()
    }

    /// Stops listening (the port is free again); keeps what was captured.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        // Let the listener close before a test reuses the port.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// Starts again on the same port, keeping the captures and the request count.
    pub async fn restart(
        &mut self,
        behaviour: impl Fn(usize, &Captured) -> Answer + Send + Sync + 'static,
    ) {
        let behaviour: Behaviour = Arc::new(behaviour);
        let deadline = tokio::time::Instant::now() + GUARD;
        loop {
            // The port may linger briefly; retry the bind.
            match Receiver::start_on(
                self.addr,
                behaviour.clone(),
                self.captured.clone(),
                self.count.clone(),
            )
            .await
            {
                Ok(mut r) => {
                    self.stop = r.stop.take();
                    return;
                }
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("cannot bind {} again: {e}", self.addr),
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// The webhook settings every test starts from: private targets allowed, a short schedule.
pub fn test_webhooks() -> Value {
    json!({
        "allow_private_targets": true,
        "retry_schedule_ms": [0, 50, 100, 200],
        "timeout_ms": 2000,
        "connect_timeout_ms": 500,
        "cursor_sync_ms": 50
    })
}

/// A server with [`test_webhooks`] adjusted by `extra` (merged key by key).
pub async fn app_with(extra: Value) -> TestApp {
    let mut hooks = test_webhooks();
    for (k, v) in extra.as_object().unwrap() {
        hooks[k] = v.clone();
    }
    let app = spawn_app_with(|c| c.with(json!({ "webhooks": hooks })).unwrap()).await;
    app.seed().await;
    app
}

/// POSTs `/subscriptions` with the admin key; answers (status, body).
pub async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let resp = app
        .client
        .post(app.url(path))
        .bearer_auth(&app.keys.admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// GET with the admin key; asserts 200.
pub async fn admin_get(app: &TestApp, path: &str) -> Value {
    let resp = app
        .client
        .get(app.url(path))
        .bearer_auth(&app.keys.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "GET {path}");
    resp.json().await.unwrap()
}

/// Creates a subscription; answers (id, secret).
pub async fn subscribe(app: &TestApp, body: Value) -> (String, String) {
    let (status, v) = post(app, "/subscriptions", body).await;
    assert_eq!(status, 201, "{v}");
    (
        v["id"].as_str().unwrap().to_string(),
        v["secret"].as_str().unwrap().to_string(),
    )
}

/// Appends `n` statements (numbered from `first`); answers their (seq, event id).
pub async fn statements(app: &TestApp, first: u64, n: u64) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for i in first..first + n {
        let resp = app.append("process/ru-ua-peace", &statement(i)).await;
        assert_eq!(resp.status(), 201);
        let v: Value = resp.json().await.unwrap();
        out.push((
            v["events"][0]["seq"].as_u64().unwrap(),
            v["events"][0]["id"].as_str().unwrap().to_string(),
        ));
    }
    out
}

/// Polls `check` until it holds; panics with `what` after [`GUARD`].
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + GUARD;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the receiver has accepted a delivery of every (seq, id) in `expected`.
pub async fn wait_delivered(rx: &Receiver, expected: &[(u64, String)]) {
    wait_until("every expected event accepted", || async {
        let got: std::collections::BTreeSet<String> =
            rx.accepted().into_iter().map(|c| c.id).collect();
        expected.iter().all(|(_, id)| got.contains(id))
    })
    .await;
}

/// The subscription's view.
pub async fn sub(app: &TestApp, id: &str) -> Value {
    admin_get(app, &format!("/subscriptions/{id}")).await
}

/// The subscription's recent attempts, newest first.
pub async fn attempts(app: &TestApp, id: &str) -> Vec<Value> {
    admin_get(app, &format!("/subscriptions/{id}/attempts?limit=1000")).await["attempts"]
        .as_array()
        .unwrap()
        .clone()
}

/// Verifies a signature header against a secret the way a receiver would.
pub fn verifies(secret: &str, c: &Captured) -> bool {
    let key = annals::webhook::signing::decode_secret(secret).unwrap();
    let ts: i64 = c.timestamp.parse().unwrap();
    let expected = annals::webhook::signing::sign(&key, &c.id, ts, &c.body);
    c.signature.split(' ').any(|s| s == expected)
}

/// Kills the binary when the test ends, even by a panic, so no server outlives its test.
pub struct Running(pub Option<BinaryServer>);

impl Running {
    pub fn kill9(mut self) {
        if let Some(s) = self.0.take() {
            s.kill9();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.0.as_mut() {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
    }
}

/// A minimal client for the real binary.
pub struct Bin {
    pub base: String,
    pub client: reqwest::Client,
    pub keys: TestKeys,
}

impl Bin {
    /// Registers the test source and the fixture actors (seqs 1 to 5, as `TestApp::seed`),
    /// then creates a subscription with `body`; answers the created subscription (its `id`,
    /// and its `secret`).
    pub async fn seed_and_subscribe(&self, body: &Value) -> Value {
        self.append("registry/sources", &source_event(SOURCE)).await;
        self.append(FIXTURE_STREAM, &fixture_actors()).await;
        let (status, v) = self.post("/subscriptions", &self.keys.admin, body).await;
        assert_eq!(status, 201, "{v}");
        v
    }

    /// Rotates a subscription's secret; answers the new one.
    pub async fn rotate_secret(&self, id: &str) -> String {
        let path = format!("/subscriptions/{id}/rotate-secret");
        let (status, v) = self.post(&path, &self.keys.admin, &json!({})).await;
        assert_eq!(status, 200, "{v}");
        v["secret"].as_str().unwrap().to_string()
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> Value {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.keys.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.unwrap()
    }

    pub async fn append(&self, stream: &str, body: &Value) -> Value {
        let (status, v) = self
            .post(
                &format!("/streams/{}/events", encode(stream)),
                &self.keys.append,
                body,
            )
            .await;
        assert_eq!(status, 201, "{v}");
        v
    }
}

/// A data folder with keys and a config file whose `[webhooks]` section is `webhooks`, for
/// starting the real binary on it, again and again.
pub struct Folder {
    pub dir: tempfile::TempDir,
    pub keys: TestKeys,
    pub config: std::path::PathBuf,
    pub data: std::path::PathBuf,
}

impl Folder {
    pub fn new(webhooks: &str) -> Folder {
        let dir = tempfile::tempdir().unwrap();
        let keys = TestKeys::new();
        let config = write_config(dir.path(), &keys);
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            format!("{text}[webhooks]\nallow_private_targets = true\n{webhooks}"),
        )
        .unwrap();
        let data = dir.path().join("data");
        Folder {
            dir,
            keys,
            config,
            data,
        }
    }

    /// Starts the binary; it is killed when the returned guard drops.
    pub fn start(&self) -> (Running, Bin) {
        let server = Running(Some(BinaryServer::start(&self.data, &self.config)));
        let bin = Bin {
            base: server.0.as_ref().unwrap().base.clone(),
            client: reqwest::Client::new(),
            keys: self.keys.clone(),
        };
        (server, bin)
    }
}

impl Folder {
    /// Runs `annals serve` on this folder (with extra environment variables) expecting it to
    /// refuse to start; answers (exit code, stderr). A server that starts instead is killed
    /// and answers -1, so a test expecting a refusal fails rather than hangs.
    pub fn serve_expecting_refusal(&self, env: &[(&str, &str)]) -> (i32, String) {
        use std::io::Read;
        wait_until_released(&self.data);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_annals"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.data)
            .env("ANNALS_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        // The first stdout line of a server that did start is "listening on ..."; reading
        // stdout to its end returns only once the process is gone (exited or killed below).
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let deadline = std::time::Instant::now() + GUARD;
        let code = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status.code().unwrap_or(-1);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break -1;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = out.join().unwrap();
        let err = err.join().unwrap();
        (code, format!("{err}{out}"))
    }
}
