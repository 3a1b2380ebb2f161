//! A small Chrome DevTools Protocol client for the browser tests: one headless Chromium per test
//! binary (Debian's `chromium`, installed when missing), one isolated browser context and page
//! per test, over a WebSocket. It evaluates JavaScript, sends real mouse and keyboard input,
//! collects console errors and takes screenshots. It must never be used outside tests, and never
//! leave a browser behind: a watchdog ends Chromium when the test binary exits.
//!
//! Written on `tokio-tungstenite` (already built for warp) rather than a CDP crate: the few
//! commands the tests need cost ~250 lines here and no extra minutes of build.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

const CHROMIUM: &str = "/usr/bin/chromium";

/// The browser of this test binary: its DevTools WebSocket URL.
fn browser_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(launch)
}

fn install_chromium() {
    if Path::new(CHROMIUM).exists() {
        return;
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "chromium"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        let _ = Command::new("apt-get").arg("update").status();
        assert!(install(), "could not install chromium with apt-get");
    }
}

fn launch() -> String {
    install_chromium();
    let dir = std::env::temp_dir().join(format!("annals-web-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--remote-debugging-port=0",
        "--window-size=1400,1000",
    ];
    // The watchdog shell outlives nothing: when this test binary's pid is gone, it ends
    // Chromium and removes its profile.
    let script = format!(
        "{CHROMIUM} {} --user-data-dir={dir} about:blank >/dev/null 2>&1 & c=$!; \
         while kill -0 {pid} 2>/dev/null && kill -0 $c 2>/dev/null; do sleep 0.3; done; \
         kill $c 2>/dev/null; wait $c; rm -rf {dir}",
        flags.join(" "),
        dir = dir.display(),
        pid = std::process::id(),
    );
    let mut watchdog = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::spawn(move || watchdog.wait());
    // Chromium writes its port and browser path to this file once it listens.
    let port_file = dir.join("DevToolsActivePort");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&port_file) {
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                return format!("ws://127.0.0.1:{port}{path}");
            }
        }
        assert!(Instant::now() < deadline, "chromium did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// One page in its own browser context (its own storage), closed with the connection.
pub struct Page {
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    next: AtomicU64,
    session: String,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Page {
    /// Opens a blank page in a fresh, isolated browser context.
    pub async fn open() -> Page {
        let url = browser_url().to_string();
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::default();
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let (p, e) = (pending.clone(), errors.clone());
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if let Some(id) = v["id"].as_u64() {
                    if let Some(tx) = p.lock().unwrap().remove(&id) {
                        let _ = tx.send(v);
                    }
                } else if let Some(err) = console_error(&v) {
                    e.lock().unwrap().push(err);
                }
            }
        });
        let mut page = Page {
            out,
            pending,
            next: AtomicU64::new(1),
            session: String::new(),
            errors,
        };
        let ctx = page
            .call(
                "Target.createBrowserContext",
                json!({"disposeOnDetach": true}),
            )
            .await;
        let target = page
            .call(
                "Target.createTarget",
                json!({"url": "about:blank", "browserContextId": ctx["browserContextId"]}),
            )
            .await;
        let attached = page
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        page.session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            page.call(domain, json!({})).await;
        }
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
        page
    }

    /// Sends a command (to the page's session once attached) and returns its result.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        self.out.send(Message::Text(msg.to_string())).unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .unwrap_or_else(|_| panic!("{method}: no answer"))
            .unwrap();
        assert!(reply["error"].is_null(), "{method}: {}", reply["error"]);
        reply["result"].clone()
    }

    /// Loads `url` and waits until the document and its modules are loaded.
    pub async fn goto(&self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
        self.wait_for(
            "document.readyState === 'complete'",
            Duration::from_secs(10),
        )
        .await;
    }

    /// The value of a JavaScript expression (promises awaited); a thrown error fails the test.
    pub async fn eval(&self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "awaitPromise": true, "returnByValue": true}),
            )
            .await;
        assert!(
            r["exceptionDetails"].is_null(),
            "{expr}: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Polls `expr` until it is truthy; returns its value, or fails with `expr` after `within`.
    pub async fn wait_for(&self, expr: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.eval(expr).await;
            let truthy = match &v {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {expr}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A real mouse click at the centre of the first element matching `selector`.
    pub async fn click(&self, selector: &str) {
        let sel = serde_json::to_string(selector).unwrap();
        let r = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return null; \
                 e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
                 return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
            ))
            .await;
        assert!(r.is_array(), "no element matches {selector}");
        let (x, y) = (r[0].as_f64().unwrap(), r[1].as_f64().unwrap());
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await;
        }
    }

    /// A real key press (`Tab`, `Enter`, ...), with Shift when `shift`.
    pub async fn press(&self, key: &str, shift: bool) {
        let code = match key {
            "Tab" => 9,
            "Enter" => 13,
            "Escape" => 27,
            " " => 32,
            _ => 0,
        };
        let text = match key {
            "Enter" => "\r",
            " " => " ",
            _ => "",
        };
        for kind in ["keyDown", "keyUp"] {
            let mut p = json!({"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code,
                               "modifiers": if shift { 8 } else { 0 }});
            if kind == "keyDown" && !text.is_empty() {
                p["text"] = json!(text);
            }
            self.call("Input.dispatchKeyEvent", p).await;
        }
    }

    /// Types `text` into the focused element.
    pub async fn type_text(&self, text: &str) {
        self.call("Input.insertText", json!({"text": text})).await;
    }

    /// Saves a PNG of the whole page to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let size = self
            .eval("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            .await;
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true,
                       "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Console errors, uncaught exceptions and failed loads the page reported so far.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }
}

/// A console error, an uncaught exception or an error log entry, in words; else None.
fn console_error(v: &Value) -> Option<String> {
    let p = &v["params"];
    match v["method"].as_str()? {
        "Runtime.exceptionThrown" => Some(format!("exception: {}", p["exceptionDetails"])),
        "Runtime.consoleAPICalled" if p["type"] == "error" || p["type"] == "assert" => {
            Some(format!("console.{}: {}", p["type"], p["args"]))
        }
        "Log.entryAdded" if p["entry"]["level"] == "error" => Some(format!("log: {}", p["entry"])),
        _ => None,
    }
}

/// Where screenshots go: `target/web-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-screenshots")
}
