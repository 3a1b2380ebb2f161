//! Append load benchmark: `cargo bench --bench append`. See `benches/README.md`.
//!
//! One run measures, each over its own temp folder and with the default `fsync` durability:
//! 1. the sled ceiling: a bare loop of `apply_batch` + `flush` + `fdatasync` of sled's data
//!    file, with the exact stored value of a real statement event, for several group sizes;
//! 2. HTTP single-event appends at several client counts (each client its own stream);
//! 3. HTTP batch appends (100 events per request) at several client counts;
//! 4. for every HTTP scenario, the group-commit metrics of the server over the measured window
//!    and the CPU time of each thread group (writer, HTTP server, load clients, sled).
//!
//! Traffic goes only to the in-process server on 127.0.0.1. Every loop is bounded in time.

use std::collections::HashMap;
use std::error::Error;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use annals::config::Config;
use annals::event::{Schemas, Validator, parse_json};
use annals::keys::KeyEntry;
use annals::keys::{self, Scope};
use annals::log::record::{self, Record};
use annals::{Server, StartOptions};
use bytes::Bytes;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::runtime::Runtime;
use tokio::sync::Barrier;
use uuid::Uuid;

type BoxError = Box<dyn Error + Send + Sync>;
type Res<T> = Result<T, BoxError>;

/// The source every statement cites; registered first in every scenario.
const SOURCE: &str = "src:bench-wire";
/// The principal of the bench key (recorded as `recorded_by`).
const PRINCIPAL: &str = "bench-desk";
/// Thread names, used to split CPU time by role (`/proc/self/task/*/comm`).
const SERVER_THREADS: &str = "annals-server";
const CLIENT_THREADS: &str = "load-client";
const WRITER_THREAD: &str = "annals-writer";
/// No request may hang the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Settings

struct Settings {
    secs: Duration,
    ceiling_secs: Duration,
    piece_secs: Duration,
    ceiling_groups: Vec<usize>,
    single_clients: Vec<usize>,
    batch_clients: Vec<usize>,
    batch_size: usize,
    client_threads: usize,
    server_threads: usize,
    pad: usize,
    base_dir: Option<PathBuf>,
    only: Vec<String>,
    /// `fsync` (the default, as shipped) or `os`.
    durability: String,
    /// A tracing filter (e.g. `info`, as `annals serve` logs by default) to format the server's
    /// logs into /dev/null, so their cost is counted; unset: no subscriber at all.
    log_filter: Option<String>,
}

fn env_secs(name: &str, default: f64) -> Duration {
    let v = std::env::var(name)
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
        .unwrap_or(default);
    Duration::from_secs_f64(v.min(600.0))
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// A list of client counts from `name` (commas or spaces between them; empty: none), or
/// `default`. A part that is not a count stops the bench: measuring nothing by a typo would
/// print an empty table that looks like a result.
fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(s) => s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(|p| match p.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    eprintln!("{name}: {p:?} is not a client count (e.g. {name}=\"4,16\")");
                    std::process::exit(2);
                }
            })
            .collect(),
        Err(_) => default.to_vec(),
    }
}

impl Settings {
    fn from_env() -> Settings {
        let secs = env_secs("ANNALS_BENCH_SECS", 5.0);
        Settings {
            secs,
            ceiling_secs: env_secs("ANNALS_BENCH_CEILING_SECS", secs.as_secs_f64()),
            piece_secs: env_secs("ANNALS_BENCH_PIECE_SECS", 1.0),
            ceiling_groups: env_list("ANNALS_BENCH_CEILING_GROUPS", &[1, 64, 100]),
            single_clients: env_list("ANNALS_BENCH_SINGLE_CLIENTS", &[1, 16, 64]),
            batch_clients: env_list("ANNALS_BENCH_BATCH_CLIENTS", &[4, 16]),
            batch_size: env_usize("ANNALS_BENCH_BATCH_SIZE", 100).max(1),
            client_threads: env_usize("ANNALS_BENCH_CLIENT_THREADS", 2).max(1),
            // As `annals serve` starts them (`server.worker_threads` = 0).
            server_threads: env_usize(
                "ANNALS_BENCH_SERVER_THREADS",
                annals::config::default_workers(),
            )
            .max(1),
            pad: env_usize("ANNALS_BENCH_PAD", 0),
            base_dir: std::env::var_os("ANNALS_BENCH_DIR").map(PathBuf::from),
            only: std::env::var("ANNALS_BENCH_ONLY")
                .map(|s| {
                    s.split(',')
                        .map(|p| p.trim().to_string())
                        .filter(|p| !p.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            durability: match std::env::var("ANNALS_BENCH_DURABILITY").as_deref() {
                Ok("os") => "os".into(),
                _ => "fsync".into(),
            },
            log_filter: std::env::var("ANNALS_BENCH_LOG")
                .ok()
                .filter(|s| !s.trim().is_empty()),
        }
    }

    fn fsync(&self) -> bool {
        self.durability == "fsync"
    }

    fn wants(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }

    fn tempdir(&self) -> Res<TempDir> {
        let b = tempfile::Builder::new().prefix("annals-bench-").to_owned();
        Ok(match &self.base_dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                b.tempdir_in(d)?
            }
            None => b.tempdir()?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures (the shape of `statement(n)` in tests/api/helpers.rs)

fn source_event() -> Value {
    json!({
        "type": "source.registered",
        "occurred": {"start": "2026-01-22", "precision": "day"},
        "data": {"source_id": SOURCE, "kind": "wire", "publisher": "Bench Wire"},
        "evidence": []
    })
}

fn statement(n: u64, pad: usize) -> Value {
    let filler = if pad == 0 {
        String::new()
    } else {
        format!(" {}", "x".repeat(pad))
    };
    json!({
        "type": "statement.made",
        "occurred": {"start": "2026-01-22", "precision": "day"},
        "process": "ru-ua-peace",
        "data": {
            "statement_id": format!("statement:test-{n}"),
            "speaker": "actor:witkoff",
            "content": format!("Statement number {n}.{filler}")
        },
        "evidence": [{"source": SOURCE, "relation": "quotes", "quote": format!("number {n}")}]
    })
}

fn batch_body(first: u64, size: usize, pad: usize) -> Value {
    let events: Vec<Value> = (0..size as u64)
        .map(|i| statement(first + i, pad))
        .collect();
    json!({"expected_version": "any", "events": events})
}

fn stream_name(client: usize) -> String {
    format!("bench/client-{client:03}")
}

fn stream_path(base: &str, client: usize) -> String {
    format!(
        "{base}/streams/{}/events?expected_version=any",
        stream_name(client).replace('/', "%2F")
    )
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn fmt_dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0}µs")
    } else if us < 10_000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else if us < 1_000_000.0 {
        format!("{:.1}ms", us / 1000.0)
    } else {
        format!("{:.2}s", us / 1e6)
    }
}

fn fmt_secs(s: f64) -> String {
    if s.is_finite() {
        fmt_dur(Duration::from_secs_f64(s.max(0.0)))
    } else {
        "-".into()
    }
}

fn fmt_rate(r: f64) -> String {
    let n = r.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `ours/all` MB/s written to storage.
fn disk_cell(u: &CpuUse) -> String {
    format!("{:.1}/{:.1}", u.our_mb_s, u.disk_mb_s)
}

/// Device flushes per second and their mean time (every process).
fn flush_cell(u: &CpuUse) -> String {
    if u.disk_flush_ms.is_finite() {
        format!("{:.0}@{:.2}ms", u.disk_flushes_s, u.disk_flush_ms)
    } else {
        format!("{:.0}", u.disk_flushes_s)
    }
}

fn event_key(seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'e';
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

// ---------------------------------------------------------------------------------------------
// Per-thread CPU accounting from /proc (Linux): run time and run-queue wait per thread group.

#[derive(Default, Clone)]
struct CpuSnapshot {
    /// tid → (group, run ns, run-queue wait ns)
    threads: HashMap<u32, (&'static str, u64, u64)>,
    /// Whole-process user+system time in ns (includes threads that have exited).
    process_ns: u64,
    /// Machine-wide busy CPU time in ns (every process: shows load from outside the bench).
    machine_busy_ns: u64,
    /// Bytes this process sent to storage (`/proc/self/io` write_bytes).
    our_write_bytes: u64,
    /// Whole block devices: (sectors written, flushes completed, ms spent flushing).
    disk: (u64, u64, u64),
}

const GROUPS: [&str; 5] = ["writer", "server", "client", "sled", "other"];

/// USER_HZ is 100 on every mainstream Linux architecture.
const NS_PER_TICK: u64 = 10_000_000;

fn group_of(comm: &str) -> &'static str {
    if comm.starts_with(WRITER_THREAD) {
        "writer"
    } else if comm.starts_with(SERVER_THREADS) {
        "server"
    } else if comm.starts_with(CLIENT_THREADS) {
        "client"
    } else if comm.starts_with("sled") || comm.contains("flusher") {
        "sled"
    } else {
        "other"
    }
}

fn numbers(s: &str) -> Vec<u64> {
    s.split_whitespace()
        .map(|x| x.parse::<u64>().unwrap_or(0))
        .collect()
}

fn cpu_snapshot() -> CpuSnapshot {
    let mut snap = CpuSnapshot::default();
    if let Ok(entries) = std::fs::read_dir("/proc/self/task") {
        for e in entries.flatten() {
            let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            let sched =
                numbers(&std::fs::read_to_string(e.path().join("schedstat")).unwrap_or_default());
            let run = sched.first().copied().unwrap_or(0);
            let wait = sched.get(1).copied().unwrap_or(0);
            snap.threads.insert(tid, (group_of(comm.trim()), run, wait));
        }
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
        && let Some((_, rest)) = stat.rsplit_once(')')
    {
        // After `(comm)`: state is field 3; utime and stime are fields 14 and 15.
        let f = numbers(rest);
        let tick = |i: usize| f.get(i).copied().unwrap_or(0);
        snap.process_ns = (tick(11) + tick(12)) * NS_PER_TICK;
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/stat")
        && let Some(line) = stat.lines().next()
    {
        // cpu user nice system idle iowait irq softirq steal ...
        let f = numbers(line.trim_start_matches("cpu"));
        let total: u64 = f.iter().take(8).sum();
        let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
        snap.machine_busy_ns = total.saturating_sub(idle) * NS_PER_TICK;
    }
    if let Ok(io) = std::fs::read_to_string("/proc/self/io") {
        snap.our_write_bytes = io
            .lines()
            .find_map(|l| l.strip_prefix("write_bytes:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
    }
    if let Ok(stats) = std::fs::read_to_string("/proc/diskstats") {
        for line in stats.lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let Some(name) = parts.get(2) else { continue };
            let whole = Path::new("/sys/block").join(name).exists();
            if !whole
                || name.starts_with("loop")
                || name.starts_with("zram")
                || name.starts_with("ram")
            {
                continue;
            }
            let f = |i: usize| {
                parts
                    .get(i)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            // 3 reads .. 9 sectors written .. 18 flushes completed, 19 ms flushing.
            snap.disk.0 += f(9);
            snap.disk.1 += f(18);
            snap.disk.2 += f(19);
        }
    }
    snap
}

/// Resource use over a window.
#[derive(Default, Clone)]
struct CpuUse {
    /// % of one core per thread group of this process.
    pct: HashMap<&'static str, f64>,
    /// % of one core for this whole process.
    total_pct: f64,
    /// % of one core the writer spent runnable but not running (waiting for a CPU).
    writer_wait_pct: f64,
    /// % of one core used by other processes on the machine (noise).
    foreign_pct: f64,
    /// MB/s this process wrote to storage, and MB/s every process wrote to the disk.
    our_mb_s: f64,
    disk_mb_s: f64,
    /// Device cache flushes per second (every process) and their mean time.
    disk_flushes_s: f64,
    disk_flush_ms: f64,
}

fn cpu_use(before: &CpuSnapshot, after: &CpuSnapshot, elapsed: Duration) -> CpuUse {
    let wall = elapsed.as_nanos().max(1) as f64;
    let secs = elapsed.as_secs_f64().max(1e-9);
    let mut ns: HashMap<&'static str, f64> = HashMap::new();
    let mut writer_wait = 0.0;
    let mut live_sum = 0.0;
    for (tid, (group, run, wait)) in &after.threads {
        let (run0, wait0) = before
            .threads
            .get(tid)
            .map(|(_, r, w)| (*r, *w))
            .unwrap_or((0, 0));
        let d = run.saturating_sub(run0) as f64;
        live_sum += d;
        *ns.entry(group).or_default() += d;
        if *group == "writer" {
            writer_wait += wait.saturating_sub(wait0) as f64;
        }
    }
    // Threads that ended inside the window (sled's io pool) only show in the process total.
    let total = after.process_ns.saturating_sub(before.process_ns) as f64;
    if total > live_sum {
        *ns.entry("other").or_default() += total - live_sum;
    }
    let total = total.max(live_sum);
    let machine = after.machine_busy_ns.saturating_sub(before.machine_busy_ns) as f64;
    let flushes = after.disk.1.saturating_sub(before.disk.1) as f64;
    CpuUse {
        pct: ns.into_iter().map(|(g, v)| (g, v / wall * 100.0)).collect(),
        total_pct: total / wall * 100.0,
        writer_wait_pct: writer_wait / wall * 100.0,
        foreign_pct: ((machine - total) / wall * 100.0).max(0.0),
        our_mb_s: after.our_write_bytes.saturating_sub(before.our_write_bytes) as f64 / 1e6 / secs,
        disk_mb_s: after.disk.0.saturating_sub(before.disk.0) as f64 * 512.0 / 1e6 / secs,
        disk_flushes_s: flushes / secs,
        disk_flush_ms: if flushes > 0.0 {
            after.disk.2.saturating_sub(before.disk.2) as f64 / flushes
        } else {
            f64::NAN
        },
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The sled ceiling

struct CeilingShape {
    label: String,
    /// Records per group.
    events: usize,
    /// Events per request when the group carries the writer's index entries; 0: records only.
    per_request: usize,
}

struct CeilingResult {
    label: String,
    events: usize,
    records_per_s: f64,
    groups_per_s: f64,
    p50: Duration,
    p99: Duration,
    apply: Duration,
    flush: Duration,
    sync: Duration,
    sys: CpuUse,
}

fn run_ceiling(
    settings: &Settings,
    shape: &CeilingShape,
    value: &[u8],
    dur: Duration,
) -> Res<CeilingResult> {
    let dir = settings.tempdir()?;
    let db = sled::Config::new()
        .path(dir.path())
        .mode(sled::Mode::HighThroughput)
        .open()?;
    let tree = db.open_tree("log")?;
    let mut data_file: Option<File> = None;
    let mut seq = 0u64;
    let mut versions: HashMap<usize, u64> = HashMap::new();
    let mut build = |seq: &mut u64| {
        let mut batch = sled::Batch::default();
        if shape.per_request == 0 {
            for _ in 0..shape.events {
                *seq += 1;
                batch.insert(&event_key(*seq)[..], value);
            }
            return batch;
        }
        // The writer's write set: record and the statement id's registry entry per event, the
        // event ids as one id bucket per group (the ids of a millisecond share one), one stream
        // index run per request, the log head per group.
        let requests = shape.events.div_ceil(shape.per_request);
        let mut bucket = Vec::with_capacity(24 * shape.events);
        for r in 0..requests {
            let stream = stream_name(r);
            let version = versions.entry(r).or_insert(0);
            let mut sk = vec![b's'];
            sk.extend_from_slice(stream.as_bytes());
            sk.push(0);
            sk.extend_from_slice(&(*version + 1).to_be_bytes());
            let mut run = (*seq + 1).to_be_bytes().to_vec();
            if shape.per_request > 1 {
                run.extend_from_slice(&(shape.per_request as u64).to_be_bytes());
            }
            batch.insert(sk, run);
            for _ in 0..shape.per_request {
                *seq += 1;
                *version += 1;
                let s = seq.to_be_bytes();
                batch.insert(&event_key(*seq)[..], value);
                bucket.extend_from_slice(Uuid::now_v7().as_bytes());
                bucket.extend_from_slice(&s);
                let mut rk = b"rentity:statement:test-".to_vec();
                rk.extend_from_slice(seq.to_string().as_bytes());
                let mut rv = s.to_vec();
                rv.extend_from_slice(b"a statement");
                batch.insert(rk, rv);
            }
        }
        let mut bk = vec![b'b'];
        bk.extend_from_slice(&bucket[..6]);
        bk.push(0); // generation 0
        batch.insert(bk, bucket);
        let mut hv = seq.to_be_bytes().to_vec();
        hv.extend_from_slice(&value[..32]);
        batch.insert(&b"h"[..], hv);
        batch
    };
    let mut one_group = |seq: &mut u64| -> Res<(Duration, Duration, Duration)> {
        let batch = build(seq);
        let t0 = Instant::now();
        tree.apply_batch(batch)?;
        let t1 = Instant::now();
        db.flush()?;
        let t2 = Instant::now();
        if settings.fsync() {
            if data_file.is_none() {
                data_file = Some(File::open(dir.path().join("db"))?);
            }
            if let Some(f) = &data_file {
                f.sync_data()?;
            }
        }
        let t3 = Instant::now();
        Ok((t1 - t0, t2 - t1, t3 - t2))
    };
    // Warm-up: first group opens the data file and grows sled's first segment.
    one_group(&mut seq)?;
    let mut lat = Vec::new();
    let (mut ta, mut tf, mut ts) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let first_seq = seq;
    let c0 = cpu_snapshot();
    let start = Instant::now();
    let deadline = start + dur;
    while Instant::now() < deadline {
        let g0 = Instant::now();
        let (a, f, s) = one_group(&mut seq)?;
        lat.push(g0.elapsed());
        ta += a;
        tf += f;
        ts += s;
    }
    let window = start.elapsed();
    let sys = cpu_use(&c0, &cpu_snapshot(), window);
    let elapsed = window.as_secs_f64();
    let groups = lat.len().max(1) as u32;
    lat.sort_unstable();
    drop(tree);
    drop(db);
    Ok(CeilingResult {
        label: shape.label.clone(),
        events: shape.events,
        records_per_s: (seq - first_seq) as f64 / elapsed,
        groups_per_s: lat.len() as f64 / elapsed,
        p50: percentile(&lat, 0.50),
        p99: percentile(&lat, 0.99),
        apply: ta / groups,
        flush: tf / groups,
        sync: ts / groups,
        sys,
    })
}

// ---------------------------------------------------------------------------------------------
// 2-4. HTTP scenarios

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `GET /healthz`: the HTTP round trip with no body and no log, for scale.
    Health,
    /// One statement per `POST`.
    Single,
    /// `n` statements per `POST`.
    Batch(usize),
}

struct Scenario {
    label: String,
    kind: Kind,
    clients: usize,
}

#[derive(Default)]
struct TaskResult {
    latencies: Vec<Duration>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

struct LoadResult {
    label: String,
    kind: Kind,
    clients: usize,
    events_per_s: f64,
    requests_per_s: f64,
    p50: Duration,
    p99: Duration,
    errors: u64,
    first_error: Option<String>,
    /// Group-commit metrics over the window (NaN when there was no group).
    group_events: f64,
    group_requests: f64,
    flush_mean: f64,
    /// Mean seconds from a group's publish to the stream's ack (nats backend; NaN on sled).
    publish_mean: f64,
    groups_per_s: f64,
    /// Fraction of the window the writer spent in batch + flush + fdatasync.
    flush_busy: f64,
    cpu: CpuUse,
}

struct Bench {
    server_rt: Runtime,
    client_rt: Runtime,
    durability: String,
}

fn key_entry() -> (String, KeyEntry) {
    let k = keys::generate();
    (
        k.key,
        KeyEntry {
            principal: PRINCIPAL.into(),
            hash: k.hash,
            scopes: vec![Scope::Append, Scope::Read],
        },
    )
}

fn test_config(dir: &Path, durability: &str) -> Res<Config> {
    let mut log = json!({"durability": durability});
    // `ANNALS_BENCH_COMPRESSION=false` measures the folder as it was before compression, so
    // compression's cost can be read from two runs.
    if let Ok(v) = std::env::var("ANNALS_BENCH_COMPRESSION") {
        log["compression"] = json!(v.trim() != "false");
    }
    // `ANNALS_BENCH_MAX_GROUP_EVENTS=N` sets `[log] max_group_events`.
    if let Ok(v) = std::env::var("ANNALS_BENCH_MAX_GROUP_EVENTS") {
        let n: usize = v.trim().parse()?;
        log["max_group_events"] = json!(n);
    }
    // `ANNALS_BENCH_NATS_URLS=nats://127.0.0.1:4222,...` runs the server on the nats backend
    // (issue 9), each scenario on a stream of its own, so a fresh folder has nothing to read.
    if let Ok(urls) = std::env::var("ANNALS_BENCH_NATS_URLS") {
        let urls: Vec<&str> = urls.split(',').map(str::trim).collect();
        let stream = format!("bench_{}", Uuid::now_v7().simple());
        log["backend"] = json!("nats");
        log["nats"] = json!({"urls": urls, "stream": stream});
    }
    Ok(Config::defaults()?.with(json!({
        "server": {"listen": "127.0.0.1:0", "data_dir": dir},
        "log": log
    }))?)
}

async fn post(client: &reqwest::Client, url: &str, key: &str, body: Bytes) -> Res<(u16, Bytes)> {
    let resp = client
        .post(url)
        .bearer_auth(key)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await?;
    Ok((status, bytes))
}

async fn seed(client: &reqwest::Client, base: &str, key: &str) -> Res<()> {
    let url = format!("{base}/streams/registry%2Fsources/events");
    let (status, body) = post(client, &url, key, source_event().to_string().into()).await?;
    if status != 201 {
        return Err(format!(
            "registering the source answered {status}: {}",
            String::from_utf8_lossy(&body)
        )
        .into());
    }
    // The statements' speaker: every actor a statement names must be registered.
    let url = format!("{base}/streams/registry%2Factors/events");
    let speaker = json!({"type": "actor.registered",
        "data": {"actor_id": "actor:witkoff", "name": "Steve Witkoff", "kind": "person"},
        "evidence": [{"source": SOURCE, "relation": "reports"}]});
    let (status, body) = post(client, &url, key, speaker.to_string().into()).await?;
    if status != 201 {
        return Err(format!(
            "registering the speaker answered {status}: {}",
            String::from_utf8_lossy(&body)
        )
        .into());
    }
    Ok(())
}

async fn scrape(client: &reqwest::Client, base: &str, key: &str) -> Res<HashMap<String, f64>> {
    let text = client
        .get(format!("{base}/metrics"))
        .bearer_auth(key)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut parts = line.split_whitespace();
        if let (Some(name), Some(v)) = (parts.next(), parts.next())
            && let Ok(v) = v.parse::<f64>()
        {
            out.insert(name.to_string(), v);
        }
    }
    Ok(out)
}

fn delta(m0: &HashMap<String, f64>, m1: &HashMap<String, f64>, name: &str) -> f64 {
    m1.get(name).copied().unwrap_or(0.0) - m0.get(name).copied().unwrap_or(0.0)
}

/// One client: a warm-up request, then requests back to back until the deadline.
#[allow(clippy::too_many_arguments)]
async fn client_task(
    kind: Kind,
    index: usize,
    base: String,
    key: String,
    pad: usize,
    ready: Arc<Barrier>,
    go: Arc<Barrier>,
    deadline: Arc<OnceLock<Instant>>,
) -> Res<TaskResult> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let url = match kind {
        Kind::Health => format!("{base}/healthz"),
        _ => stream_path(&base, index),
    };
    // Distinct bodies, built before the clock starts so that the client spends its time on
    // the wire, not in serde_json.
    let seed_n = index as u64 * 10_000_000;
    let bodies: Vec<Bytes> = match kind {
        Kind::Health => vec![Bytes::new()],
        Kind::Single => (0..32)
            .map(|i| Bytes::from(statement(seed_n + i, pad).to_string()))
            .collect(),
        Kind::Batch(n) => (0..4u64)
            .map(|i| Bytes::from(batch_body(seed_n + i * n as u64, n, pad).to_string()))
            .collect(),
    };
    let send = |i: usize| {
        let client = &client;
        let url = &url;
        let key = &key;
        let body = bodies[i % bodies.len()].clone();
        async move {
            if kind == Kind::Health {
                let resp = client.get(url).send().await?;
                let status = resp.status().as_u16();
                let bytes = resp.bytes().await?;
                Ok::<_, BoxError>((status, bytes))
            } else {
                post(client, url, key, body).await
            }
        }
    };
    let mut result = TaskResult::default();
    let warm = send(0).await;
    ready.wait().await;
    go.wait().await;
    if let Ok((status, body)) = &warm
        && !(200..300).contains(status)
    {
        result.first_error = Some(format!(
            "warm-up answered {status}: {}",
            String::from_utf8_lossy(body)
        ));
    }
    let deadline = *deadline.get().ok_or("deadline not set")?;
    result.latencies.reserve(64 * 1024);
    let mut i = 1;
    while Instant::now() < deadline {
        let t = Instant::now();
        let r = send(i).await;
        result.latencies.push(t.elapsed());
        i += 1;
        match r {
            Ok((status, _)) if (200..300).contains(&status) => result.ok += 1,
            Ok((status, body)) => {
                result.errors += 1;
                if result.first_error.is_none() {
                    result.first_error = Some(format!(
                        "{status}: {}",
                        String::from_utf8_lossy(&body)
                            .chars()
                            .take(200)
                            .collect::<String>()
                    ));
                }
            }
            Err(e) => {
                result.errors += 1;
                if result.first_error.is_none() {
                    result.first_error = Some(e.to_string());
                }
            }
        }
    }
    Ok(result)
}

impl Bench {
    fn new(settings: &Settings) -> Res<Bench> {
        let server_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(settings.server_threads)
            .thread_name(SERVER_THREADS)
            .enable_all()
            .build()?;
        let client_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(settings.client_threads)
            .thread_name(CLIENT_THREADS)
            .enable_all()
            .build()?;
        Ok(Bench {
            server_rt,
            client_rt,
            durability: settings.durability.clone(),
        })
    }

    fn start_server(&self, dir: &Path) -> Res<(Server, String, String)> {
        let (key, entry) = key_entry();
        let server = self.server_rt.block_on(Server::start(
            test_config(dir, &self.durability)?,
            StartOptions {
                demo: false,
                extra_keys: vec![entry],
                ..StartOptions::default()
            },
        ))?;
        let base = format!("http://{}", server.addr());
        Ok((server, base, key))
    }

    /// Appends one statement through HTTP and returns its stored value (hash ‖ JSON) and the
    /// request body sizes: the record the ceiling writes is byte for byte a real one.
    fn probe(&self, settings: &Settings) -> Res<(Vec<u8>, usize, usize)> {
        let dir = settings.tempdir()?;
        let (server, base, key) = self.start_server(dir.path())?;
        let single = Bytes::from(statement(0, settings.pad).to_string());
        let batch_len = batch_body(0, settings.batch_size, settings.pad)
            .to_string()
            .len();
        let outcome = self.client_rt.block_on(async {
            let client = reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()?;
            seed(&client, &base, &key).await?;
            let (status, body) =
                post(&client, &stream_path(&base, 0), &key, single.clone()).await?;
            if status != 201 {
                return Err::<(), BoxError>(
                    format!(
                        "probe append answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    )
                    .into(),
                );
            }
            Ok(())
        });
        let stored = outcome.and_then(|()| {
            let rec = server
                .log()
                .get(2)?
                .ok_or("the probe event is not at seq 2")?;
            let mut value = rec.hash.to_vec();
            value.extend_from_slice(&rec.bytes);
            Ok::<_, BoxError>(value)
        });
        self.server_rt.block_on(server.stop());
        Ok((stored?, single.len(), batch_len))
    }

    fn run_http(&self, settings: &Settings, sc: &Scenario) -> Res<LoadResult> {
        let dir = settings.tempdir()?;
        let (server, base, key) = self.start_server(dir.path())?;
        let outcome = self
            .client_rt
            .block_on(self.drive(settings, sc, &base, &key));
        self.server_rt.block_on(server.stop());
        drop(dir);
        outcome
    }

    async fn drive(
        &self,
        settings: &Settings,
        sc: &Scenario,
        base: &str,
        key: &str,
    ) -> Res<LoadResult> {
        let admin = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        seed(&admin, base, key).await?;
        let ready = Arc::new(Barrier::new(sc.clients + 1));
        let go = Arc::new(Barrier::new(sc.clients + 1));
        let deadline = Arc::new(OnceLock::new());
        let mut tasks = Vec::with_capacity(sc.clients);
        for i in 0..sc.clients {
            tasks.push(tokio::spawn(client_task(
                sc.kind,
                i,
                base.to_string(),
                key.to_string(),
                settings.pad,
                ready.clone(),
                go.clone(),
                deadline.clone(),
            )));
        }
        ready.wait().await;
        let m0 = scrape(&admin, base, key).await?;
        let c0 = cpu_snapshot();
        let start = Instant::now();
        let _ = deadline.set(start + settings.secs);
        go.wait().await;
        let mut all = TaskResult::default();
        let mut task_error = None;
        for t in tasks {
            match t.await {
                Ok(Ok(r)) => {
                    all.latencies.extend(r.latencies);
                    all.ok += r.ok;
                    all.errors += r.errors;
                    if all.first_error.is_none() {
                        all.first_error = r.first_error;
                    }
                }
                Ok(Err(e)) => task_error = Some(e.to_string()),
                Err(e) => task_error = Some(e.to_string()),
            }
        }
        let elapsed = start.elapsed();
        let c1 = cpu_snapshot();
        let m1 = scrape(&admin, base, key).await?;
        if let Some(e) = task_error {
            return Err(format!("{}: a client failed: {e}", sc.label).into());
        }
        all.latencies.sort_unstable();
        let secs = elapsed.as_secs_f64();
        let per_request = match sc.kind {
            Kind::Health => 0,
            Kind::Single => 1,
            Kind::Batch(n) => n,
        };
        let groups = delta(&m0, &m1, "annals_group_commit_events_count");
        let flush_sum = delta(&m0, &m1, "annals_group_commit_flush_seconds_sum");
        let ratio = |num: f64| if groups > 0.0 { num / groups } else { f64::NAN };
        Ok(LoadResult {
            label: sc.label.clone(),
            kind: sc.kind,
            clients: sc.clients,
            events_per_s: (all.ok * per_request as u64) as f64 / secs,
            requests_per_s: all.ok as f64 / secs,
            p50: percentile(&all.latencies, 0.50),
            p99: percentile(&all.latencies, 0.99),
            errors: all.errors,
            first_error: all.first_error,
            group_events: ratio(delta(&m0, &m1, "annals_group_commit_events_sum")),
            group_requests: ratio(delta(&m0, &m1, "annals_group_commit_requests_sum")),
            flush_mean: ratio(flush_sum),
            publish_mean: {
                let n = delta(&m0, &m1, "annals_log_stream_publish_seconds_count");
                let sum = delta(&m0, &m1, "annals_log_stream_publish_seconds_sum");
                if n > 0.0 { sum / n } else { f64::NAN }
            },
            groups_per_s: groups / secs,
            flush_busy: flush_sum / secs,
            cpu: cpu_use(&c0, &c1, elapsed),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// CPU cost of the pieces an append goes through, on one core, outside the server.

struct Pieces {
    validate_single_us: f64,
    validate_batch_us: f64,
    /// The batch body through the `Value` path alone (`parse_json` + `Validator::submission`),
    /// the baseline of the fast path in the same run.
    value_batch_us: f64,
    schema_event_us: f64,
    schema_data_us: f64,
    encode_hash_us: f64,
}

/// On-CPU time of the calling thread (so that other processes sharing the core do not inflate
/// a piece's cost); `None` where `/proc/thread-self/schedstat` is missing.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = s.split_whitespace().next()?.parse::<u64>().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Runs `f` repeatedly for about `dur` of wall time; returns the count and the seconds of CPU
/// the thread spent (wall seconds if the CPU time is not available).
fn time_loop(dur: Duration, mut f: impl FnMut() -> Res<()>) -> Res<(u64, f64)> {
    f()?;
    let start = Instant::now();
    let cpu0 = thread_cpu();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..16 {
            f()?;
        }
        n += 16;
    }
    let wall = start.elapsed();
    let spent = match (cpu0, thread_cpu()) {
        (Some(a), Some(b)) if b > a => b - a,
        _ => wall,
    };
    Ok((n, spent.as_secs_f64()))
}

fn measure_pieces(settings: &Settings) -> Res<Pieces> {
    let config = Config::defaults()?;
    let validator = Validator::new(Schemas::load()?, config.limits.clone());
    let single = statement(1, settings.pad).to_string().into_bytes();
    let batch = batch_body(1, settings.batch_size, settings.pad)
        .to_string()
        .into_bytes();
    let dur = settings.piece_secs;
    // As the API reads a body: the borrowed fast path, which takes these valid bodies whole.
    let (n, s) = time_loop(dur, || {
        let sub = validator.submit_body(&single, Some("any"))?;
        std::hint::black_box(sub);
        Ok(())
    })?;
    let validate_single_us = s / n as f64 * 1e6;
    let (n, s) = time_loop(dur, || {
        let sub = validator.submit_body(&batch, None)?;
        std::hint::black_box(sub);
        Ok(())
    })?;
    let validate_batch_us = s / (n as f64 * settings.batch_size as f64) * 1e6;
    let (n, s) = time_loop(dur, || {
        let sub = validator.submission(&parse_json(&batch)?, None)?;
        std::hint::black_box(sub);
        Ok(())
    })?;
    let value_batch_us = s / (n as f64 * settings.batch_size as f64) * 1e6;
    // The two JSON Schema checks alone (envelope against event.json, data against its type).
    let single_value = parse_json(&single)?;
    let schemas = validator.schemas();
    let (n, s) = time_loop(dur, || {
        std::hint::black_box(schemas.check_event(&single_value, ""));
        Ok(())
    })?;
    let schema_event_us = s / n as f64 * 1e6;
    let data = single_value.get("data").cloned().unwrap_or(Value::Null);
    let (n, s) = time_loop(dur, || {
        std::hint::black_box(schemas.check_data("statement.made", &data, "/data"));
        Ok(())
    })?;
    let schema_data_us = s / n as f64 * 1e6;
    let ev = validator
        .submission(&parse_json(&single)?, None)?
        .events
        .remove(0);
    let mut hash = record::GENESIS;
    let mut seq = 0u64;
    let (occurred, data, evidence) = (ev.occurred.value(), ev.data.value(), ev.evidence.value());
    let meta = ev.meta.as_ref().map(annals::log::JsonText::value);
    let (n, s) = time_loop(dur, || {
        seq += 1;
        // What the writer does per event in `stage_append`: build, encode, chain.
        let rec = Record {
            id: ev.id,
            seq,
            stream: stream_name(0),
            version: seq,
            event_type: ev.event_type.clone(),
            schema_version: ev.schema_version,
            recorded_at: "2026-01-23T10:00:00.123456Z".into(),
            recorded_by: PRINCIPAL.into(),
            occurred: occurred.clone(),
            process: ev.process.clone(),
            data: data.clone(),
            evidence: evidence.clone(),
            meta: meta.clone(),
            prev_hash: hex::encode(hash),
        };
        let bytes = rec.to_bytes()?;
        hash = record::chain(&hash, &bytes);
        std::hint::black_box(&hash);
        Ok(())
    })?;
    Ok(Pieces {
        validate_single_us,
        validate_batch_us,
        value_batch_us,
        schema_event_us,
        schema_data_us,
        encode_hash_us: s / n as f64 * 1e6,
    })
}

// ---------------------------------------------------------------------------------------------

fn main() -> Res<()> {
    let settings = Settings::from_env();
    if let Some(filter) = &settings.log_filter {
        // As `annals serve` logs (one line per request at `info`), but into /dev/null.
        let sink = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::sync::Mutex::new(sink))
            .init();
    }
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let bench = Bench::new(&settings)?;
    let batch_size = settings.batch_size.min(100);
    if batch_size != settings.batch_size {
        eprintln!("note: ANNALS_BENCH_BATCH_SIZE capped at 100 (limits.max_events_per_request)");
    }
    let settings = Settings {
        batch_size,
        ..settings
    };
    let data_base = settings.base_dir.clone().unwrap_or_else(std::env::temp_dir);

    eprintln!("annals append bench: probing the stored size of a real statement event...");
    let (value, single_len, batch_len) = bench.probe(&settings)?;

    let mut ceilings = Vec::new();
    if settings.wants("ceiling") {
        let mut shapes: Vec<CeilingShape> = settings
            .ceiling_groups
            .iter()
            .map(|&b| CeilingShape {
                label: format!("records only, B={b}"),
                events: b,
                per_request: 0,
            })
            .collect();
        shapes.push(CeilingShape {
            label: "writer-shaped 64 x 1-event req".into(),
            events: 64,
            per_request: 1,
        });
        shapes.push(CeilingShape {
            label: format!("writer-shaped 1 x {batch_size}-event req"),
            events: batch_size,
            per_request: batch_size,
        });
        for shape in &shapes {
            let r = run_ceiling(&settings, shape, &value, settings.ceiling_secs)?;
            eprintln!(
                "  ceiling {:<32} {:>9} rec/s",
                r.label,
                fmt_rate(r.records_per_s)
            );
            ceilings.push(r);
        }
    }

    let mut scenarios = Vec::new();
    if settings.wants("health") {
        let clients = settings.single_clients.iter().copied().max().unwrap_or(64);
        scenarios.push(Scenario {
            label: "GET /healthz (no log)".into(),
            kind: Kind::Health,
            clients,
        });
    }
    if settings.wants("single") {
        for &c in &settings.single_clients {
            scenarios.push(Scenario {
                label: "single-event POST".into(),
                kind: Kind::Single,
                clients: c,
            });
        }
    }
    if settings.wants("batch") {
        for &c in &settings.batch_clients {
            scenarios.push(Scenario {
                label: format!("{batch_size}-event batch POST"),
                kind: Kind::Batch(batch_size),
                clients: c,
            });
        }
    }
    let mut loads = Vec::new();
    for sc in &scenarios {
        let r = bench.run_http(&settings, sc)?;
        eprintln!(
            "  http {:<24} x{:<3} {:>9} ev/s {:>9} req/s{}",
            r.label,
            r.clients,
            fmt_rate(r.events_per_s),
            fmt_rate(r.requests_per_s),
            r.first_error
                .as_deref()
                .map(|e| format!("  first error: {e}"))
                .unwrap_or_default()
        );
        loads.push(r);
    }

    let pieces = if settings.wants("pieces") {
        Some(measure_pieces(&settings)?)
    } else {
        None
    };

    // ----- report -----
    println!();
    println!(
        "=== annals append benchmark: durability={}, {:.1}s per scenario, {cpus} CPUs, data under {}, server logs: {} ===",
        settings.durability,
        settings.secs.as_secs_f64(),
        data_base.display(),
        settings.log_filter.as_deref().unwrap_or("off")
    );
    println!(
        "stored statement record: {} bytes (32 hash + {} JSON); request body {} B single, {} B per {batch_size}-batch",
        value.len(),
        value.len() - 32,
        single_len,
        batch_len
    );
    if !ceilings.is_empty() {
        println!(
            "\n[1] sled ceiling: apply_batch + flush{} per group ({:.1}s each)",
            if settings.fsync() { " + fdatasync" } else { "" },
            settings.ceiling_secs.as_secs_f64()
        );
        println!(
            "{:<32} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>11} {:>11} {:>5}",
            "group (per-group means)",
            "rec/s",
            "groups/s",
            "grp p50",
            "grp p99",
            "apply",
            "flush",
            "fdsync",
            "MB/s us/dev",
            "devflush/s",
            "ext%"
        );
        for c in &ceilings {
            println!(
                "{:<32} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>11} {:>11} {:>5}",
                c.label,
                fmt_rate(c.records_per_s),
                fmt_rate(c.groups_per_s),
                fmt_dur(c.p50),
                fmt_dur(c.p99),
                fmt_dur(c.apply),
                fmt_dur(c.flush),
                fmt_dur(c.sync),
                disk_cell(&c.sys),
                flush_cell(&c.sys),
                format!("{:.0}", c.sys.foreign_pct)
            );
        }
    }
    if !loads.is_empty() {
        println!(
            "\n[2,3] HTTP appends ({} server threads, {} client threads; group stats from /metrics over the window)",
            settings.server_threads, settings.client_threads
        );
        println!(
            "{:<24} {:>3} {:>8} {:>7} {:>8} {:>8} {:>4} {:>7} {:>7} {:>7} {:>8} {:>6} {:>7}",
            "scenario",
            "cli",
            "events/s",
            "req/s",
            "p50",
            "p99",
            "err",
            "grp ev",
            "grp req",
            "flush",
            "groups/s",
            "fbusy",
            "publish"
        );
        for r in &loads {
            let na = |v: f64, f: &dyn Fn(f64) -> String| {
                if v.is_finite() { f(v) } else { "-".into() }
            };
            println!(
                "{:<24} {:>3} {:>8} {:>7} {:>8} {:>8} {:>4} {:>7} {:>7} {:>7} {:>8} {:>6} {:>7}",
                r.label,
                r.clients,
                if r.kind == Kind::Health {
                    "-".into()
                } else {
                    fmt_rate(r.events_per_s)
                },
                fmt_rate(r.requests_per_s),
                fmt_dur(r.p50),
                fmt_dur(r.p99),
                r.errors,
                na(r.group_events, &|v| format!("{v:.1}")),
                na(r.group_requests, &|v| format!("{v:.1}")),
                na(r.flush_mean, &fmt_secs),
                fmt_rate(r.groups_per_s),
                format!("{:.0}%", r.flush_busy * 100.0),
                na(r.publish_mean, &fmt_secs)
            );
        }
        println!(
            "CPU in % of one core (2 cores = 200%): per thread group; wrq = writer runnable but waiting for a core; ext = other processes"
        );
        println!(
            "{:<24} {:>3} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>5} {:>5} {:>11} {:>11}",
            "scenario",
            "cli",
            "writer",
            "server",
            "client",
            "sled",
            "other",
            "total",
            "wrq",
            "ext",
            "MB/s us/dev",
            "devflush/s"
        );
        for r in &loads {
            let p = |g: &str| format!("{:.0}", r.cpu.pct.get(g).copied().unwrap_or(0.0));
            println!(
                "{:<24} {:>3} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>5} {:>5} {:>11} {:>11}",
                r.label,
                r.clients,
                p(GROUPS[0]),
                p(GROUPS[1]),
                p(GROUPS[2]),
                p(GROUPS[3]),
                p(GROUPS[4]),
                format!("{:.0}", r.cpu.total_pct),
                format!("{:.0}", r.cpu.writer_wait_pct),
                format!("{:.0}", r.cpu.foreign_pct),
                disk_cell(&r.cpu),
                flush_cell(&r.cpu)
            );
        }
    }
    if let Some(p) = &pieces {
        println!(
            "\n[pieces, µs of CPU per event] parse+validate {:.1} single, {:.1} in a {batch_size}-batch ({:.1} through the Value path alone: {:.2}x; event.json check {:.1}, data schema {:.1}); writer encode+hash {:.1}",
            p.validate_single_us,
            p.validate_batch_us,
            p.value_batch_us,
            p.value_batch_us / p.validate_batch_us,
            p.schema_event_us,
            p.schema_data_us,
            p.encode_hash_us
        );
    }

    println!("\n[ratios]");
    let ceiling_at = |b: usize| {
        ceilings
            .iter()
            .find(|c| c.events == b && c.label.starts_with("records only"))
    };
    let best = |pred: &dyn Fn(&LoadResult) -> bool| {
        loads
            .iter()
            .filter(|r| pred(r))
            .max_by(|a, b| a.events_per_s.total_cmp(&b.events_per_s))
    };
    match (
        best(&|r| matches!(r.kind, Kind::Batch(_))),
        ceiling_at(batch_size),
    ) {
        (Some(b), Some(c)) => {
            let pct = b.events_per_s / c.records_per_s * 100.0;
            let shaped = ceilings
                .iter()
                .find(|c| c.events == batch_size && c.label.starts_with("writer-shaped 1 x"))
                .map(|w| {
                    format!(
                        " ({:.0}% of writer-shaped)",
                        b.events_per_s / w.records_per_s * 100.0
                    )
                })
                .unwrap_or_default();
            println!(
                "batched: best {} ev/s ({} clients) = {pct:.0}% of the B={batch_size} sled ceiling ({} rec/s){shaped}; target >= 40%: {}",
                fmt_rate(b.events_per_s),
                b.clients,
                fmt_rate(c.records_per_s),
                if pct >= 40.0 { "MET" } else { "MISSED" }
            );
        }
        _ => println!("batched: not measured (needs the batch scenarios and B={batch_size})"),
    }
    let top = settings.single_clients.iter().copied().max().unwrap_or(64);
    match best(&|r| r.kind == Kind::Single && r.clients == top) {
        Some(s) => {
            let vs = ceiling_at(64)
                .map(|c| {
                    format!(
                        " = {:.0}% of the B=64 sled ceiling ({} rec/s)",
                        s.events_per_s / c.records_per_s * 100.0,
                        fmt_rate(c.records_per_s)
                    )
                })
                .unwrap_or_default();
            println!(
                "single-event at {top} clients: {} ev/s{vs}; target >= 20,000 ev/s: {}",
                fmt_rate(s.events_per_s),
                if s.events_per_s >= 20_000.0 {
                    "MET"
                } else {
                    "MISSED"
                }
            );
        }
        None => println!("single-event: not measured"),
    }
    let busiest = ceilings
        .iter()
        .map(|c| c.sys.foreign_pct)
        .chain(loads.iter().map(|r| r.cpu.foreign_pct))
        .fold(0.0f64, f64::max);
    if busiest > 25.0 {
        println!(
            "NOTE: other processes used up to {busiest:.0}% of a core during a window (ext); rates are lower and noisier than on an idle machine"
        );
    }
    let errors: u64 = loads.iter().map(|r| r.errors).sum();
    if errors > 0 {
        println!("WARNING: {errors} requests failed; see the first errors above");
    }
    Ok(())
}
