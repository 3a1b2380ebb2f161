//! Projection benchmark: `cargo bench --bench projections`. One run, over one temp folder:
//! 1. writes N synthetic events (default 1M) through the log writer (durability `os`, large
//!    batches, no validator: only the writer sees them);
//! 2. a bare sled scan of the log tree (every record's bytes touched): the ceiling;
//! 3. the projection fold over the same raw scan (what rebuild costs per record);
//! 4. the engine's offline rebuild path (`rebuild_offline`: read through `Log::read_range`,
//!    fold, and write the new checkpoint generation), with and without the checkpoint write;
//! 5. as-of query latency on the 1M-event knowledge (negotiation and actor views at random
//!    `known_at` seqs).
//!
//! Settings: `ANNALS_BENCH_EVENTS` (default 1000000), `ANNALS_BENCH_QUERIES` (default 200),
//! `ANNALS_BENCH_DIR` (where the temp folder goes). It must never touch a real data folder.

use std::error::Error;
use std::time::Instant;

use annals::config::Durability;
use annals::log::{Append, ExpectedVersion, Log, LogOptions, NewEvent, References, raw};
use annals::metrics::Metrics;
use annals::projection::{self, Knowledge, KnownAt, ProjectionConfig, Query};
use serde_json::json;
use uuid::Uuid;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The synthetic event number `n`: mostly small statements, with positions, meetings,
/// issue assessments and corrections mixed in so every read model has work.
fn event(n: u64, ids: &[Uuid]) -> NewEvent {
    let actor = format!("actor:a{}", n % 50);
    let (kind, data) = match n % 200 {
        0 => (
            "position.stated",
            json!({"position_id": format!("position:p{n}"), "holder": actor,
                   "issue": format!("issue:i{}", n % 7), "stance": "demand", "object": "x"}),
        ),
        1 => (
            "meeting.held",
            json!({"meeting_id": format!("meeting:m{n}"), "location": {"name": "X"},
                   "participants": [{"actor": actor, "side": "actor:s"}], "duration": "PT1H"}),
        ),
        2 => (
            "issue.status_changed",
            json!({"issue_id": format!("issue:i{}", n % 7), "status": "open",
                   "assessed_by": actor}),
        ),
        3 if !ids.is_empty() => (
            "event.corrected",
            json!({"target": ids[(n as usize / 200) % ids.len()], "reason": "fix",
                   "patch": [{"op": "add", "path": "/note", "value": "c"}]}),
        ),
        _ => (
            "statement.made",
            json!({"statement_id": format!("statement:s{n}"), "speaker": actor, "content": "x"}),
        ),
    };
    NewEvent {
        id: Uuid::now_v7(),
        event_type: kind.into(),
        schema_version: 1,
        occurred: json!({"start": format!("2026-01-{:02}", 1 + n % 28), "precision": "day"}),
        process: Some(format!("p{}", n % 4)),
        data,
        evidence: json!([{"source": "src:bench", "relation": "reports", "credibility": 2}]),
        meta: None,
        refs: References::default(),
        client_id: false,
    }
}

async fn fill(log: &Log, n: u64) -> Res<()> {
    let batch = 2000u64;
    let mut tickets = std::collections::VecDeque::new();
    let mut ids: Vec<Uuid> = Vec::new();
    let mut i = 0;
    while i < n {
        let events: Vec<NewEvent> = (i..(i + batch).min(n)).map(|k| event(k, &ids)).collect();
        for e in &events {
            if e.event_type == "position.stated" && ids.len() < 10_000 {
                ids.push(e.id);
            }
        }
        i += events.len() as u64;
        let t = log
            .enqueue(Append {
                stream: format!("bench/{}", i % 16),
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
    }
    for t in tickets {
        t.wait().await?;
    }
    Ok(())
}

fn open(dir: &std::path::Path) -> Res<(Log, annals::log::WriterGuard)> {
    Ok(Log::open(
        dir,
        LogOptions {
            durability: Durability::Os,
            max_group_events: 8192,
            queue_capacity: 64,
        },
        Metrics::new()?,
    )?)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Res<()> {
    let n = env_u64("ANNALS_BENCH_EVENTS", 1_000_000);
    let queries = env_u64("ANNALS_BENCH_QUERIES", 200);
    let dir = match std::env::var_os("ANNALS_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let rt = tokio::runtime::Runtime::new()?;

    // 1. Fill.
    let t = Instant::now();
    rt.block_on(async {
        let (log, writer) = open(dir.path())?;
        fill(&log, n).await?;
        log.close().await;
        drop(log);
        writer.join();
        Res::Ok(())
    })?;
    eprintln!("filled {n} events in {:.1} s", t.elapsed().as_secs_f64());

    // 2. Bare sled scan (ceiling) and 3. the fold over the same scan.
    let (scan_rate, fold_rate, bytes) = {
        let (_db, tree) = raw::open_tree(dir.path())?;
        // Warm the page cache once so both loops read from memory alike.
        for item in raw::records(&tree) {
            item?;
        }
        let t = Instant::now();
        let mut bytes = 0usize;
        let mut count = 0u64;
        for item in raw::records(&tree) {
            let (_, v) = item?;
            bytes += v.len() + v[v.len() / 2] as usize % 2;
            count += 1;
        }
        let scan = count as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut k = Knowledge::new();
        for item in raw::records(&tree) {
            let (seq, v) = item?;
            k.apply(seq, &v[32..])?;
        }
        let fold = k.seq as f64 / t.elapsed().as_secs_f64();
        (scan, fold, bytes)
    };

    // 4. The engine's offline rebuild through the Log (fold + checkpoint generation write).
    let (rebuild_rate, rebuild_fold_rate, k) = rt.block_on(async {
        let (log, writer) = open(dir.path())?;
        let t = Instant::now();
        let folded =
            projection::rebuild_offline(&log, &ProjectionConfig::default(), |_| {}).await?;
        let rebuild = folded as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut k = Knowledge::new();
        let mut from = 1;
        loop {
            let (records, _) = log.read_range(from, 8192, |_| true)?;
            let Some(last) = records.last() else { break };
            from = last.seq + 1;
            for r in &records {
                k.apply(r.seq, &r.bytes)?;
            }
        }
        let fold = k.seq as f64 / t.elapsed().as_secs_f64();
        log.close().await;
        drop(log);
        tokio::task::spawn_blocking(move || writer.join()).await?;
        Res::Ok((rebuild, fold, k))
    })?;

    // 5. As-of query latency at random known_at seqs.
    let mut lat_neg = Vec::new();
    let mut lat_actor = Vec::new();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..queries {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let seq = 1 + state % n.max(1);
        let q = Query {
            known_at: Some(KnownAt::Seq(seq)),
            limit: 100,
            ..Query::default()
        };
        let t = Instant::now();
        let (_, v) = projection::answer(&k, "negotiation", Some("p1"), &q)?;
        lat_neg.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(v);
        let t = Instant::now();
        let (_, v) = projection::answer(&k, "actors", Some("actor:a7"), &q)?;
        lat_actor.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(v);
    }
    lat_neg.sort_by(f64::total_cmp);
    lat_actor.sort_by(f64::total_cmp);

    println!("projections benchmark: {n} events, {} bytes stored", bytes);
    println!(
        "  [ceiling] bare sled scan              {:>12.0} events/s",
        scan_rate
    );
    println!(
        "  fold over the raw scan                {:>12.0} events/s  ({:.0}% of the scan)",
        fold_rate,
        100.0 * fold_rate / scan_rate
    );
    println!(
        "  fold through Log::read_range          {:>12.0} events/s  ({:.0}% of the scan)",
        rebuild_fold_rate,
        100.0 * rebuild_fold_rate / scan_rate
    );
    println!(
        "  offline rebuild incl. checkpoint write {:>11.0} events/s  ({:.0}% of the scan)",
        rebuild_rate,
        100.0 * rebuild_rate / scan_rate
    );
    println!(
        "  as-of negotiation view (1 of 4 processes), {queries} random known_at: p50 {:.2} ms, p99 {:.2} ms",
        percentile(&lat_neg, 0.5),
        percentile(&lat_neg, 0.99)
    );
    println!(
        "  as-of actor view (limit 100, ~20k events), {queries} random known_at: p50 {:.2} ms, p99 {:.2} ms",
        percentile(&lat_actor, 0.5),
        percentile(&lat_actor, 0.99)
    );
    Ok(())
}
