//! Webhook delivery benchmark: `cargo bench --bench webhooks`.
//!
//! 1. Latency: 10 subscribers (ordered), appends paced at 1,000 events/s for a bounded time;
//!    for each delivery, the time from the append's acknowledgement (the client got its 201)
//!    to the receiver getting the request. A delivery may arrive before the client has read
//!    its 201 (the head moves before the answer travels back): those count as 0.
//! 2. Throughput: events already in the log, then 100 subscribers (parallel, from seq 1) on
//!    one keep-alive receiver; deliveries per second until every subscriber has every event.
//!
//! Everything runs in-process on 127.0.0.1 and every loop is bounded in time. It must never
//! reach beyond loopback.

use std::collections::HashMap;
use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use annals::config::Config;
use annals::keys::KeyEntry;
use annals::keys::{self, Scope};
use annals::{Server, StartOptions};
use bytes::Bytes;
use serde_json::{Value, json};
use warp::Filter;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

const SOURCE: &str = "src:bench-wire";
/// No phase may run longer than this.
const PHASE_GUARD: Duration = Duration::from_secs(120);

fn statement(n: u64) -> Value {
    json!({
        "type": "statement.made",
        "occurred": {"start": "2026-01-22", "precision": "day"},
        "process": "ru-ua-peace",
        "data": {"statement_id": format!("statement:bench-{n}"), "speaker": "actor:witkoff",
                 "content": format!("Statement number {n}.")},
        "evidence": [{"source": SOURCE, "relation": "quotes", "quote": format!("number {n}")}]
    })
}

/// Arrival times per event id (one entry per delivery), and a count.
#[derive(Default)]
struct Arrivals {
    at: Mutex<Vec<(String, Instant)>>,
    count: AtomicUsize,
}

async fn receiver(arrivals: Arc<Arrivals>) -> Res<std::net::SocketAddr> {
    let route = warp::post()
        .and(warp::header::<String>("webhook-id"))
        .and(warp::body::bytes())
        .map(move |id: String, _body: Bytes| {
            let now = Instant::now();
            if let Ok(mut v) = arrivals.at.lock() {
                v.push((id, now));
            }
            arrivals.count.fetch_add(1, Ordering::Relaxed);
            warp::http::StatusCode::NO_CONTENT
        });
    let (addr, server) = warp::serve(route).try_bind_ephemeral(([127, 0, 0, 1], 0))?;
    tokio::spawn(server);
    Ok(addr)
}

struct App {
    server: Server,
    base: String,
    client: reqwest::Client,
    admin: String,
    _dir: tempfile::TempDir,
}

async fn start() -> Res<App> {
    let dir = tempfile::tempdir()?;
    let config = Config::defaults()?.with(json!({
        "server": {"listen": "127.0.0.1:0", "data_dir": dir.path()},
        "webhooks": {"allow_private_targets": true, "max_in_flight": 64}
    }))?;
    let key = keys::generate();
    let server = Server::start(
        config,
        StartOptions {
            demo: false,
            extra_keys: vec![KeyEntry {
                principal: "bench".into(),
                hash: key.hash.clone(),
                scopes: vec![Scope::Admin],
            }],
            ..StartOptions::default()
        },
    )
    .await?;
    let app = App {
        base: format!("http://{}", server.addr()),
        server,
        client: reqwest::Client::new(),
        admin: key.key,
        _dir: dir,
    };
    let source = json!({"type": "source.registered", "occurred": {"start": "2026-01-22", "precision": "day"},
        "data": {"source_id": SOURCE, "kind": "wire", "publisher": "Bench Wire"}, "evidence": []});
    app.append("registry/sources", &source).await?;
    // The statements' speaker: every actor a statement names must be registered.
    let speaker = json!({"type": "actor.registered",
        "data": {"actor_id": "actor:witkoff", "name": "Steve Witkoff", "kind": "person"},
        "evidence": [{"source": SOURCE, "relation": "reports"}]});
    app.append("registry/actors", &speaker).await?;
    Ok(app)
}

impl App {
    async fn append(&self, stream: &str, body: &Value) -> Res<String> {
        let resp = self
            .client
            .post(format!(
                "{}/streams/{}/events",
                self.base,
                stream.replace('/', "%2F")
            ))
            .bearer_auth(&self.admin)
            .json(body)
            .send()
            .await?;
        if resp.status() != 201 {
            return Err(format!("append: {}", resp.status()).into());
        }
        let v: Value = resp.json().await?;
        Ok(v["events"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    async fn subscribe(&self, body: Value) -> Res<()> {
        let resp = self
            .client
            .post(format!("{}/subscriptions", self.base))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await?;
        if resp.status() != 201 {
            return Err(format!("subscribe: {} {}", resp.status(), resp.text().await?).into());
        }
        Ok(())
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn latency(secs: u64, rate: u64, subscribers: usize) -> Res<()> {
    let app = start().await?;
    let arrivals = Arc::new(Arrivals::default());
    let addr = receiver(arrivals.clone()).await?;
    for i in 0..subscribers {
        app.subscribe(json!({"url": format!("http://{addr}/hook/{i}")}))
            .await?;
    }
    let app = Arc::new(app);
    let acks: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let total = secs * rate;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut tasks = Vec::new();
    for n in 0..total {
        tick.tick().await;
        let (app, acks) = (app.clone(), acks.clone());
        tasks.push(tokio::spawn(async move {
            if let Ok(id) = app.append("process/ru-ua-peace", &statement(n)).await {
                let now = Instant::now();
                if let Ok(mut a) = acks.lock() {
                    a.insert(id, now);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let expected = total as usize * subscribers;
    let deadline = Instant::now() + PHASE_GUARD;
    while arrivals.count.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let acks = acks.lock().map_err(|_| "poisoned")?.clone();
    let mut lat: Vec<Duration> = arrivals
        .at
        .lock()
        .map_err(|_| "poisoned")?
        .iter()
        .filter_map(|(id, at)| acks.get(id).map(|ack| at.saturating_duration_since(*ack)))
        .collect();
    lat.sort();
    println!(
        "latency: {total} events at {rate}/s to {subscribers} subscribers: {} deliveries measured (of {expected}); ack->receiver p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        percentile(&lat, 0.50).as_secs_f64() * 1000.0,
        percentile(&lat, 0.99).as_secs_f64() * 1000.0,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
    match Arc::try_unwrap(app) {
        Ok(app) => app.server.stop().await,
        Err(_) => return Err("app still shared".into()),
    }
    Ok(())
}

async fn throughput(events: u64, subscribers: usize, in_flight: u32) -> Res<()> {
    let app = start().await?;
    // Fill the log in batches first (not measured).
    let mut n = 0;
    while n < events {
        let batch: Vec<Value> = (n..(n + 100).min(events)).map(statement).collect();
        let resp = app
            .client
            .post(format!("{}/streams/process%2Fru-ua-peace/events", app.base))
            .bearer_auth(&app.admin)
            .json(&json!({"events": batch}))
            .send()
            .await?;
        if resp.status() != 201 {
            return Err(format!("batch append: {}", resp.status()).into());
        }
        n += 100;
    }
    let arrivals = Arc::new(Arrivals::default());
    let addr = receiver(arrivals.clone()).await?;
    let expected = (events as usize + 1) * subscribers;
    let start = Instant::now();
    for i in 0..subscribers {
        app.subscribe(
            json!({"url": format!("http://{addr}/hook/{i}"), "from_seq": 1,
                             "mode": "parallel", "max_in_flight": in_flight}),
        )
        .await?;
    }
    let deadline = start + PHASE_GUARD;
    while arrivals.count.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = start.elapsed();
    let got = arrivals.count.load(Ordering::Relaxed);
    println!(
        "throughput: {got} deliveries (of {expected}) to {subscribers} subscribers (parallel, {in_flight} in flight, keep-alive) in {:.2} s: {:.0} deliveries/s",
        took.as_secs_f64(),
        got as f64 / took.as_secs_f64()
    );
    app.server.stop().await;
    Ok(())
}

fn main() -> Res<()> {
    let secs: u64 = std::env::var("WH_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let events: u64 = std::env::var("WH_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        latency(secs, 1000, 10).await?;
        throughput(events, 100, 16).await
    })
}
