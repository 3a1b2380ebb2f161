//! The audit benchmark (`cargo bench --bench audit`): durable append throughput with the
//! Merkle tree maintained vs without it, alternating in the same run, and proof generation
//! time on a log of 1M records. Loopback only; bounded by the env vars below.
//!
//! - `ANNALS_BENCH_ROUNDS` (default 3): alternating rounds per variant.
//! - `ANNALS_BENCH_EVENTS` (default 50000): events appended per round.
//! - `ANNALS_BENCH_RECORDS` (default 1000000): size of the log for the proof timings.

use std::time::{Duration, Instant};

use annals::log::Durability;
use annals::log::{Append, ExpectedVersion, Log, LogConfig, NewEvent, References};
use annals::metrics::Metrics;
use serde_json::json;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn event(n: u64) -> NewEvent {
    NewEvent {
        id: uuid::Uuid::now_v7(),
        event_type: "statement.made".into(),
        schema_version: 1,
        occurred: json!({"start": "2026-01-22", "precision": "day"}).into(),
        process: Some("ru-ua-peace".into()),
        data: json!({
            "statement_id": format!("statement:bench-{n}"),
            "speaker": "actor:witkoff",
            "content": "The peace negotiations are now close to the final stage; only one issue remains."
        }).into(),
        evidence: json!([{"source": "src:bench", "relation": "quotes",
            "quote": "close to the final stage", "credibility": 2}]).into(),
        meta: None,
        refs: References::default(),
        client_id: false,
    }
}

fn options(durability: Durability) -> LogConfig {
    LogConfig {
        durability,
        max_group_events: 512,
        queue_capacity: 4096,
        cache_capacity_bytes: 64 << 20,
        compression_level: 3,
        ..annals::config::Config::defaults()
            .expect("the shipped defaults load")
            .log
    }
}

/// Appends `total` events as 100-event requests, 8 in flight; returns events/s.
async fn load(log: &Log, total: u64) -> f64 {
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    let mut n = 0;
    while n < total {
        let events: Vec<NewEvent> = (n..(n + 100).min(total)).map(event).collect();
        n += events.len() as u64;
        let ticket = log
            .enqueue(Append {
                stream: format!("bench/{}", n % 16),
                expected: ExpectedVersion::Any,
                events,
                principal: "bench".into(),
                abort_on_refusal: None,
            })
            .await
            .expect("enqueue");
        pending.push_back(ticket);
        if pending.len() >= 8
            && let Some(t) = pending.pop_front()
        {
            t.wait().await.expect("append");
        }
    }
    for t in pending {
        t.wait().await.expect("append");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let rounds = env("ANNALS_BENCH_ROUNDS", 3);
    let per_round = env("ANNALS_BENCH_EVENTS", 50_000);
    let records = env("ANNALS_BENCH_RECORDS", 1_000_000);
    println!(
        "=== annals audit benchmark: {rounds} rounds x {per_round} events per variant, fsync ==="
    );
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for merkle in [true, false] {
            let dir = tempfile::tempdir().expect("tempdir");
            let metrics = Metrics::new().expect("metrics");
            let log = if merkle {
                Log::open(
                    dir.path(),
                    options(Durability::Fsync),
                    metrics,
                    annals::event::rules::declarations,
                )
            } else {
                Log::open_without_merkle_for_benchmarks(
                    dir.path(),
                    options(Durability::Fsync),
                    metrics,
                    annals::event::rules::declarations,
                )
            }
            .expect("open");
            let rate = load(&log, per_round).await;
            println!("round {round}: merkle={merkle:<5} {rate:>10.0} events/s");
            if merkle {
                with.push(rate)
            } else {
                without.push(rate)
            }
            log.close().await;
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (w, wo) = (mean(&with), mean(&without));
    println!(
        "append with tree {w:.0} ev/s, without {wo:.0} ev/s: the tree costs {:.1}% (target <= 10%)",
        (1.0 - w / wo) * 100.0
    );

    println!("--- proofs on a log of {records} records (built with durability os) ---");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(
        dir.path(),
        options(Durability::Os),
        Metrics::new().expect("metrics"),
        annals::event::rules::declarations,
    )
    .expect("open");
    let started = Instant::now();
    let rate = load(&log, records).await;
    println!(
        "built in {:.1}s ({rate:.0} events/s)",
        started.elapsed().as_secs_f64()
    );
    let size = log.head().seq;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        1 + state % n
    };
    let mut inc = Vec::new();
    let mut con = Vec::new();
    let mut roots = Vec::new();
    for _ in 0..1000 {
        let seq = rnd(size);
        let t = Instant::now();
        let p = log.inclusion_proof(seq, size).expect("inclusion");
        inc.push(t.elapsed());
        assert!(p.len() <= 64);
        let from = rnd(size);
        let t = Instant::now();
        log.consistency_proof(from, size).expect("consistency");
        con.push(t.elapsed());
        let t = Instant::now();
        log.merkle_root(rnd(size)).expect("root");
        roots.push(t.elapsed());
    }
    for (name, v) in [
        ("inclusion proof", &mut inc),
        ("consistency proof", &mut con),
        ("root of a random size", &mut roots),
    ] {
        v.sort();
        println!(
            "{name:<22} p50 {:>9.1?} p99 {:>9.1?} (1000 random)",
            pct(v, 0.5),
            pct(v, 0.99)
        );
    }
    log.close().await;
}
