//! Scale benchmark (issue 13): `cargo bench --bench scale`. Builds a large log once (default
//! 10M events, `ANNALS_BENCH_EVENTS`) in a folder it can reuse (`ANNALS_BENCH_KEEP=/path`),
//! then serves it with the real binary (`annals serve`, release build) and prints, each beside
//! its target from the issue:
//! - RSS of the serving process (VmRSS and VmHWM from /proc) right after the views below,
//!   and 4 s later (once the follower has given back what they left);
//! - start-up time (spawn to `/healthz` answering and every projection caught up) after a
//!   clean stop, and after a `kill -9` right behind a burst of appends (the server's own
//!   `projections resume from their save` line, on stderr, gives the save load's share as
//!   `load_ms`; the rest is mostly opening the log). A binary of another save layout folds
//!   the log again at its first start, which the bench does before it measures;
//! - view latencies over HTTP, p50/p99: the negotiation view of one process (a small one, in
//!   a log where every other event belongs to 1,000 other processes), now and as of a random
//!   earlier seq; the actor view with `limit=100` of an actor named by a third of the log, and
//!   its pages through `next`;
//! - disk: the data folder against `annals export` of the same log;
//! - `annals import` of generated submissions (`benches/import_ndjson.py`, 1M lines,
//!   `ANNALS_BENCH_IMPORT_EVENTS`, 0 skips): events/s and peak RSS;
//! - webhook delivery through `benches/delivery.sh` (a Node.js receiver in its own process):
//!   ack -> receiver latency, rate and lag, and CPU per delivery, at
//!   `ANNALS_BENCH_DELIVERY_SUBS` subscriptions (default "10 20", "" skips), 10 s each
//!   (`ANNALS_BENCH_DELIVERY_SECS`).
//!
//! The log is written through the library's bulk path: big appends straight to the writer
//! (no HTTP, no validator), durability `os`, groups of 8192. Settings: `ANNALS_BENCH_EVENTS`,
//! `ANNALS_BENCH_QUERIES` (default 200 per view), `ANNALS_BENCH_KEEP` (reuse), `ANNALS_BENCH_BIN`
//! (serve with another `annals` binary), `ANNALS_BENCH_DIR`
//! (where a temp folder goes without `KEEP`). It must never touch a real data folder: `KEEP`
//! must name a folder the bench made (it holds a `.annals-scale-bench` marker) or an empty one.

use std::error::Error;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use annals::keys::{self, KeyEntry, Scope};
use annals::log::{Append, Durability, ExpectedVersion, Log, LogConfig, NewEvent, References};
use annals::metrics::Metrics;
use serde_json::{Value, json};
use uuid::Uuid;

#[path = "scale/outside.rs"]
mod outside;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

const MARKER: &str = ".annals-scale-bench";
/// The process whose view is measured: few events, spread through the whole log.
const TARGET: &str = "p-target";
/// Events of the target process (spread evenly).
const TARGET_EVENTS: u64 = 200;
/// Processes every other event belongs to.
const OTHER_PROCESSES: u64 = 1000;
/// The actor named by a third of the log.
const BIG_ACTOR: &str = "actor:a0";

/// The binary served and run: this build's, or `ANNALS_BENCH_BIN` (another build, e.g. the
/// base of a change, measured over the same folder in the same run).
fn binary() -> String {
    std::env::var("ANNALS_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_annals").into())
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Event `n` of a log of `total`: positions of 1,000 processes, held by three actors in turn;
/// the target process's events (meetings, plans, issue assessments, positions, talks) at
/// evenly spaced seqs.
fn event(n: u64, total: u64) -> NewEvent {
    let stride = (total / TARGET_EVENTS).max(1);
    let day = 1 + (n.wrapping_mul(7919) % 28);
    let actor = format!("actor:a{}", n % 3);
    let (process, kind, data) = if n % stride == stride / 2 {
        let i = n / stride;
        let (kind, data) = match i % 5 {
            0 => (
                "meeting.held",
                json!({"meeting_id": format!("meeting:t{i}"), "location": {"name": "Geneva"},
                       "participants": [{"actor": "actor:m1", "side": "actor:s1"},
                                        {"actor": "actor:m2", "side": "actor:s2"}],
                       "duration": "PT2H"}),
            ),
            1 => (
                "plan.proposed",
                json!({"plan_id": format!("plan:t{}", i % 3), "title": "Plan", "version": i,
                       "points": ["a", "b"], "proposer": "actor:m1"}),
            ),
            2 => (
                "issue.status_changed",
                json!({"issue_id": format!("issue:t{}", i % 4), "status": "open",
                       "assessed_by": "actor:m2"}),
            ),
            3 => (
                "talks.scheduled",
                json!({"talks_id": format!("talks:t{i}"), "parties": ["actor:s1", "actor:s2"],
                       "planned": {"start": "2027-01-01", "precision": "day"}}),
            ),
            _ => (
                "position.stated",
                json!({"position_id": format!("position:t{i}"), "holder": "actor:m1",
                       "issue": format!("issue:t{}", i % 4), "stance": "demand",
                       "object": "ceasefire"}),
            ),
        };
        (TARGET.to_string(), kind, data)
    } else {
        (
            format!("p{}", n % OTHER_PROCESSES),
            "position.stated",
            json!({"position_id": format!("position:p{n}"), "holder": actor,
                   "issue": format!("issue:i{}", n % 7), "stance": "demand",
                   "object": "a settlement of the matter at hand"}),
        )
    };
    NewEvent {
        id: Uuid::now_v7(),
        event_type: kind.into(),
        schema_version: 1,
        occurred: json!({"start": format!("2026-01-{day:02}"), "precision": "day"}).into(),
        process: Some(process),
        data: data.into(),
        evidence: json!([{"source": "src:bench", "relation": "reports", "credibility": 2}]).into(),
        meta: None,
        refs: References::default(),
        client_id: false,
    }
}

fn log_config() -> Res<LogConfig> {
    Ok(LogConfig {
        durability: Durability::Os,
        max_group_events: 8192,
        queue_capacity: 64,
        cache_capacity_bytes: 64 << 20,
        compression_level: 3,
        ..annals::config::Config::defaults()?.log
    })
}

/// Appends events up to `total` (resuming after what the folder holds) in big batches.
async fn build(dir: &Path, total: u64) -> Res<()> {
    let log = Log::open(
        dir,
        log_config()?,
        Metrics::new()?,
        annals::event::rules::declarations,
    )?;
    let have = log.head().seq;
    if have >= total {
        log.close().await;
        return Ok(());
    }
    eprintln!("scale: writing events {} to {total} ...", have + 1);
    let started = Instant::now();
    let batch = 4096u64;
    let mut tickets = std::collections::VecDeque::new();
    let mut n = have;
    while n < total {
        let events: Vec<NewEvent> = (n..(n + batch).min(total))
            .map(|k| event(k, total))
            .collect();
        n += events.len() as u64;
        let t = log
            .enqueue(Append {
                stream: format!("bench/{}", n % 64),
                expected: ExpectedVersion::Any,
                events,
                principal: "bench".into(),
                abort_on_refusal: None,
            })
            .await?;
        tickets.push_back(t);
        while tickets.len() > 8 {
            if let Some(t) = tickets.pop_front() {
                t.wait().await?;
            }
        }
        if n % 1_000_000 < batch {
            eprintln!(
                "scale: {n} events, {:.0}/s",
                (n - have) as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    for t in tickets {
        t.wait().await?;
    }
    log.close().await;
    eprintln!(
        "scale: wrote {} events in {:.1} s",
        total - have,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The folder to use: `ANNALS_BENCH_KEEP` (made by this bench, or empty), else a temp one.
fn folder() -> Res<(PathBuf, Option<tempfile::TempDir>)> {
    if let Ok(keep) = std::env::var("ANNALS_BENCH_KEEP") {
        let dir = PathBuf::from(keep);
        std::fs::create_dir_all(&dir)?;
        let marked = dir.join(MARKER).exists();
        let empty = std::fs::read_dir(&dir)?.next().is_none();
        if !marked && !empty {
            return Err(format!(
                "{} is neither empty nor a folder this bench made ({MARKER}); refusing to touch it",
                dir.display()
            )
            .into());
        }
        std::fs::write(
            dir.join(MARKER),
            "annals scale bench data; safe to delete\n",
        )?;
        return Ok((dir.join("data"), None));
    }
    let tmp = match std::env::var("ANNALS_BENCH_DIR") {
        Ok(d) => tempfile::tempdir_in(d)?,
        Err(_) => tempfile::tempdir()?,
    };
    Ok((tmp.path().join("data"), Some(tmp)))
}

/// The real binary serving `dir`.
struct Served {
    child: Child,
    base: String,
}

impl Served {
    fn start(dir: &Path, config: &Path) -> Res<Served> {
        let mut child = Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(dir)
            // The engine says at start how long loading the save took (`load_ms`), which
            // splits a start-up into opening the log and loading the projections.
            .env("ANNALS_LOG", "warn,annals::projection::engine=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("unexpected first line: {line:?}"))?
            .to_string();
        Ok(Served { child, base })
    }

    /// VmRSS and VmHWM in MiB.
    fn memory(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
                .map_or(f64::NAN, |kib| kib / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// SIGTERM, then wait (a clean stop: the projections write their final save).
    fn stop(mut self) -> Res<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        self.child.wait()?;
        Ok(())
    }

    fn kill9(mut self) -> Res<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Served {
    /// A bench that stops half-way must not leave a server holding the folder.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Client {
    /// Replaced before each stop: its idle keep-alive connections would hold the server's
    /// graceful shutdown for its whole grace period.
    http: reqwest::Client,
    key: String,
}

impl Client {
    async fn get(&self, base: &str, path: &str) -> Res<Value> {
        let resp = self
            .http
            .get(format!("{base}{path}"))
            .bearer_auth(&self.key)
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        if !status.is_success() {
            return Err(format!("GET {path}: {status}: {body}").into());
        }
        Ok(body)
    }

    /// Waits until `/healthz` answers and every projection has folded the whole log; the
    /// time since `since`.
    async fn ready(&self, base: &str, since: Instant) -> Res<Duration> {
        loop {
            if let Ok(s) = self.get(base, "/projections").await {
                let lines = s["projections"].as_array().cloned().unwrap_or_default();
                let caught_up = !lines.is_empty() && lines.iter().all(|l| l["lag"] == 0);
                let healthy = self
                    .http
                    .get(format!("{base}/healthz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if caught_up && healthy {
                    return Ok(since.elapsed());
                }
            }
            if since.elapsed() > Duration::from_secs(600) {
                return Err("the server did not catch up in 10 minutes".into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// p50 and p99 in milliseconds of `paths`, one request at a time.
    async fn latency(&self, base: &str, paths: &[String]) -> Res<(f64, f64)> {
        let mut ms = Vec::with_capacity(paths.len());
        for p in paths {
            let t = Instant::now();
            self.get(base, p).await?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() as f64 * q) as usize).min(ms.len() - 1)];
        Ok((at(0.50), at(0.99)))
    }
}

/// A cheap deterministic spread of numbers (no rand dependency in the bench).
fn spread(i: u64, n: u64) -> u64 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 17) % n.max(1)
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match entry.metadata() {
            Ok(m) if m.is_dir() => total += dir_size(&entry.path()),
            Ok(m) => total += m.len(),
            Err(_) => {}
        }
    }
    total
}

struct Row {
    what: String,
    value: String,
    target: String,
}

fn row(rows: &mut Vec<Row>, what: &str, value: String, target: &str) {
    eprintln!("scale: {what}: {value}");
    rows.push(Row {
        what: what.into(),
        value,
        target: target.into(),
    });
}

#[tokio::main]
async fn main() -> Res<()> {
    let fresh = || {
        reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
    };
    let total = env_u64("ANNALS_BENCH_EVENTS", 10_000_000);
    let queries = env_u64("ANNALS_BENCH_QUERIES", 200).max(1);
    let (dir, _tmp) = folder()?;
    std::fs::create_dir_all(&dir)?;
    build(&dir, total).await?;

    let key = keys::generate();
    let entry = KeyEntry {
        principal: "bench".into(),
        hash: key.hash.clone(),
        scopes: vec![Scope::Read, Scope::Append, Scope::Admin],
    };
    let config_dir = tempfile::tempdir()?;
    let config = config_dir.path().join("annals.toml");
    std::fs::write(&config, entry.to_toml() + "\n")?;
    let mut client = Client {
        http: fresh()?,
        key: key.key,
    };
    let mut rows = Vec::new();
    let head_of = |v: &Value| v["projections"][0]["head"].as_u64().unwrap_or(0);

    // 1. A first start folds whatever the save lacks (all of it on a fresh folder); then a
    //    clean stop, so the next start is the one measured.
    let t = Instant::now();
    let server = Served::start(&dir, &config)?;
    let first = client.ready(&server.base, t).await?;
    eprintln!("scale: first start (folds what the save lacks): {first:.2?}");
    client.http = fresh()?;
    server.stop()?;

    let t = Instant::now();
    let server = Served::start(&dir, &config)?;
    let clean = client.ready(&server.base, t).await?;
    let status = client.get(&server.base, "/projections").await?;
    let head = head_of(&status);
    row(
        &mut rows,
        "start-up after a clean stop",
        format!(
            "{:.2} s (replayed {})",
            clean.as_secs_f64(),
            status["projections"][0]["replayed_since_start"]
        ),
        "<= 3 s at 10M",
    );

    // 2. Views, one request at a time.
    let negotiation = format!("/projections/negotiation/{TARGET}");
    let now: Vec<String> = (0..queries).map(|_| negotiation.clone()).collect();
    let (p50, p99) = client.latency(&server.base, &now).await?;
    row(
        &mut rows,
        "negotiation view of one process, now",
        format!("p50 {p50:.1} ms, p99 {p99:.1} ms"),
        "p99 <= 50 ms at 10M",
    );
    // Random earlier seqs at which the process is known (its first event is half a stride in).
    let stride = (total / TARGET_EVENTS).max(1);
    let as_of: Vec<String> = (0..queries)
        .map(|i| {
            format!(
                "{negotiation}?known_at={}",
                stride + spread(i, head - stride)
            )
        })
        .collect();
    let (p50, p99) = client.latency(&server.base, &as_of).await?;
    row(
        &mut rows,
        "negotiation view of one process, as of a random seq",
        format!("p50 {p50:.1} ms, p99 {p99:.1} ms"),
        "p99 <= 50 ms at 10M",
    );
    let actor = format!("/projections/actors/{BIG_ACTOR}?limit=100");
    let t = Instant::now();
    let page = client.get(&server.base, &actor).await?;
    let first_ask = t.elapsed();
    let facts = page["total_events"].as_u64().unwrap_or(0);
    row(
        &mut rows,
        "actor view limit=100, first ask (builds the time index)",
        format!("{:.1} ms ({facts} facts)", first_ask.as_secs_f64() * 1000.0),
        "(once per actor and process)",
    );
    let paths: Vec<String> = (0..queries).map(|_| actor.clone()).collect();
    let (p50, p99) = client.latency(&server.base, &paths).await?;
    row(
        &mut rows,
        "actor view limit=100",
        format!("p50 {p50:.1} ms, p99 {p99:.1} ms ({facts} facts)"),
        "cost of what it returns (was p50 307 ms at 333k facts)",
    );
    let mut pages = Vec::new();
    let mut next = page["next"].as_str().map(str::to_string);
    while let Some(p) = next.take() {
        if pages.len() as u64 >= queries {
            break;
        }
        let t = Instant::now();
        let v = client.get(&server.base, &p).await?;
        pages.push(t.elapsed().as_secs_f64() * 1000.0);
        next = v["next"].as_str().map(str::to_string);
    }
    if !pages.is_empty() {
        pages.sort_by(f64::total_cmp);
        let at = |q: f64| pages[((pages.len() as f64 * q) as usize).min(pages.len() - 1)];
        row(
            &mut rows,
            "actor view limit=100, next pages",
            format!(
                "p50 {:.1} ms, p99 {:.1} ms ({} pages)",
                at(0.5),
                at(0.99),
                pages.len()
            ),
            "cost of what it returns",
        );
    }
    let (rss, hwm) = server.memory();
    row(
        &mut rows,
        "RSS serving the log (after the views)",
        format!("VmRSS {rss:.0} MiB, VmHWM {hwm:.0} MiB"),
        "<= 150 MB at 1M, <= 250 MB at 10M",
    );
    // The follower gives back what views left (sled pages above its bound, free heap pages)
    // between its steps, at most every 2 s: read again once it has.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (rss, _) = server.memory();
    row(
        &mut rows,
        "RSS serving the log (4 s after the views)",
        format!("VmRSS {rss:.0} MiB"),
        "<= 150 MB at 1M, <= 250 MB at 10M",
    );

    // 3. A burst of appends over HTTP, then kill -9 at once: the restart folds the tail the
    //    last save lacks.
    let path = format!("{}/streams/bench%2Fburst/events", server.base);
    let source = format!("src:burst-{}", Uuid::now_v7().simple());
    let register = json!({"type": "source.registered",
        "occurred": {"start": "2026-02-01", "precision": "day"},
        "data": {"source_id": source, "kind": "wire", "publisher": "Bench Wire"},
        "evidence": []});
    let resp = client
        .http
        .post(format!("{}/streams/registry%2Fsources/events", server.base))
        .bearer_auth(&client.key)
        .json(&register)
        .send()
        .await?;
    if !resp.status().is_success() {
        return Err(format!("registering {source}: {}", resp.status()).into());
    }
    // The burst's speaker, which the folder built offline never registered (a repeat on a
    // reused folder is a no-op).
    let speaker = json!({"type": "actor.registered",
        "data": {"actor_id": "actor:a1", "name": "a1", "kind": "person"},
        "evidence": [{"source": source, "relation": "reports"}]});
    let resp = client
        .http
        .post(format!("{}/streams/registry%2Factors/events", server.base))
        .bearer_auth(&client.key)
        .json(&speaker)
        .send()
        .await?;
    if !resp.status().is_success() {
        return Err(format!("registering actor:a1: {}", resp.status()).into());
    }
    for b in 0..20u64 {
        let events: Vec<Value> = (0..100)
            .map(|i| {
                json!({"type": "statement.made",
                       "occurred": {"start": "2026-02-01", "precision": "day"},
                       "process": "p-burst",
                       "data": {"statement_id": format!("statement:burst-{b}-{i}"),
                                "speaker": "actor:a1", "content": "burst"},
                       "evidence": [{"source": source, "relation": "reports"}]})
            })
            .collect();
        let resp = client
            .http
            .post(&path)
            .bearer_auth(&client.key)
            .json(&json!({"events": events}))
            .send()
            .await?;
        if !resp.status().is_success() {
            let text: String = resp.text().await?.chars().take(300).collect();
            return Err(format!("burst append: {text}").into());
        }
    }
    server.kill9()?;
    let t = Instant::now();
    let server = Served::start(&dir, &config)?;
    let killed = client.ready(&server.base, t).await?;
    let status = client.get(&server.base, "/projections").await?;
    row(
        &mut rows,
        "start-up after kill -9",
        format!(
            "{:.2} s (replayed {} of {})",
            killed.as_secs_f64(),
            status["projections"][0]["replayed_since_start"],
            head_of(&status)
        ),
        "<= 10 s at 10M",
    );
    client.http = fresh()?;
    server.stop()?;

    // 4. Disk: the folder against `annals export` of the same log.
    let export = config_dir.path().join("export.ndjson");
    let out = Command::new(binary())
        .args(["export", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&dir)
        .arg("--output")
        .arg(&export)
        .env("ANNALS_LOG", "warn")
        .status()?;
    if !out.success() {
        return Err(format!("annals export failed: {out}").into());
    }
    let (folder, exported) = (dir_size(&dir), std::fs::metadata(&export)?.len());
    row(
        &mut rows,
        "disk: data folder / annals export",
        format!(
            "{:.2}x ({:.0} MiB / {:.0} MiB)",
            folder as f64 / exported.max(1) as f64,
            folder as f64 / 1048576.0,
            exported as f64 / 1048576.0
        ),
        "<= 1.5x",
    );
    std::fs::remove_file(&export)?;

    // 5. `annals import` of generated submissions into a new folder: rate and peak RSS.
    let lines = env_u64("ANNALS_BENCH_IMPORT_EVENTS", 1_000_000);
    if lines > 0 {
        let what = format!("annals import of {lines} submitted events");
        let value = match outside::import(&binary(), config_dir.path(), lines) {
            Ok((rate, hwm, size)) => format!(
                "{rate:.0} events/s, peak RSS {hwm:.0} MiB, folder {:.0} MiB",
                size as f64 / 1048576.0
            ),
            Err(e) => format!("not measured: {e}"),
        };
        row(&mut rows, &what, value, ">= 100k events/s, RSS <= 250 MB");
    }

    // 6. Webhook delivery to an out-of-process receiver (`benches/delivery.sh`).
    let subs = std::env::var("ANNALS_BENCH_DELIVERY_SUBS").unwrap_or_else(|_| "10 20".into());
    if !subs.trim().is_empty() {
        let secs = env_u64("ANNALS_BENCH_DELIVERY_SECS", 10);
        match outside::delivery(&binary(), &subs, secs) {
            Ok(runs) => {
                for run in runs {
                    row(
                        &mut rows,
                        &format!("delivery, {}: ack -> receiver", run.subs),
                        run.latency,
                        "p99 <= 20 ms at 10 subscriptions",
                    );
                    row(
                        &mut rows,
                        &format!("delivery, {}: rate and lag", run.subs),
                        run.lag,
                        "20k/s at 20 subscriptions, no growing lag",
                    );
                    row(
                        &mut rows,
                        &format!("delivery, {}: server CPU per delivery", run.subs),
                        run.cpu,
                        "-",
                    );
                }
            }
            Err(e) => row(&mut rows, "delivery", format!("not measured: {e}"), "-"),
        }
    }

    println!();
    println!("scale: {head} events ({total} built), {queries} queries per view");
    println!();
    let w = rows.iter().map(|r| r.what.len()).max().unwrap_or(0);
    let v = rows.iter().map(|r| r.value.len()).max().unwrap_or(0);
    println!("| {:w$} | {:v$} | target |", "measure", "value");
    println!("|{}|{}|---|", "-".repeat(w + 2), "-".repeat(v + 2));
    for r in &rows {
        println!("| {:w$} | {:v$} | {} |", r.what, r.value, r.target);
    }
    Ok(())
}
