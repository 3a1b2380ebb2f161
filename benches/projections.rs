//! Projection benchmark: `cargo bench --bench projections`. One run, over one temp folder:
//! 1. writes N synthetic events (default 1M) through the log writer (durability `os`, large
//!    batches, no validator: only the writer sees them);
//! 2. a bare sled scan of the log tree (every record's bytes touched): the ceiling;
//! 3. the projection fold over the same raw scan on one thread (the single-core cost);
//! 4. the engine's paths through the Log: the rebuild's fold (`fold_log`: read, parse on the
//!    rayon pool, insert, as overlapping stages) on a warm cache; the offline rebuild
//!    (`rebuild_offline`: fold + save generation write) on a cold and a warm cache; a
//!    restart's load of the saved fold;
//! 5. query latency on the 1M-event knowledge (negotiation view of one of 4 processes, actor
//!    view of one of 50 actors, limit 100): now, and as of random `known_at` seqs. The
//!    knowledge keeps compact facts; the views read records from the log through the
//!    configured record cache, whose hits and misses are printed.
//!
//! Settings: `ANNALS_BENCH_EVENTS` (default 1000000), `ANNALS_BENCH_QUERIES` (default 200),
//! `ANNALS_BENCH_DIR` (where the temp folder goes), `ANNALS_BENCH_KEEP` (a folder of its own to
//! fill once and reuse on later runs, so repeated runs skip step 1). It must never touch a real
//! data folder.

use std::error::Error;
use std::time::Instant;

use annals::log::Durability;
use annals::log::{Append, ExpectedVersion, Log, LogConfig, NewEvent, References, raw};
use annals::metrics::Metrics;
use annals::projection::fact::Fact;
use annals::projection::records::Records;
use annals::projection::{self, Knowledge, KnownAt, Query};
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
            // A scattered earlier position: most are corrected once, a few several times.
            json!({"target": ids[(n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33) as usize % ids.len()], "reason": "fix",
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
        occurred: json!({"start": format!("2026-01-{:02}", 1 + n % 28), "precision": "day"}).into(),
        process: Some(format!("p{}", n % 4)),
        data: data.into(),
        evidence: json!([{"source": "src:bench", "relation": "reports", "credibility": 2}]).into(),
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

fn open(dir: &std::path::Path) -> Res<Log> {
    Ok(Log::open(
        dir,
        LogConfig {
            durability: Durability::Os,
            max_group_events: 8192,
            queue_capacity: 64,
            cache_capacity_bytes: 64 << 20,
            compression_level: 3,
            ..annals::config::Config::defaults()?.log
        },
        Metrics::new()?,
        annals::event::rules::declarations,
    )?)
}

/// What step 4 measured.
struct Paths {
    /// Resident memory added by the warm fold: its compact facts and indexes (it keeps no
    /// record).
    rss_growth: u64,
    rebuild_cold: f64,
    fold: f64,
    rebuild_warm: f64,
    load: f64,
    k: Knowledge,
    /// Open until the queries are done: the views read records from it.
    log: Log,
}

/// This process's resident set size (Linux; 0 elsewhere).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
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
    let temp = match std::env::var_os("ANNALS_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let kept = std::env::var_os("ANNALS_BENCH_KEEP").map(std::path::PathBuf::from);
    let dir = kept.as_deref().unwrap_or(temp.path());
    let rt = tokio::runtime::Runtime::new()?;

    // 1. Fill (a kept folder only once; its size must match ANNALS_BENCH_EVENTS).
    let t = Instant::now();
    rt.block_on(async {
        let log = open(dir)?;
        let have = log.head().seq;
        if have == 0 {
            fill(&log, n).await?;
        } else if have != n {
            return Err(format!("{} holds {have} events, not {n}", dir.display()).into());
        }
        log.close().await;
        Res::Ok(())
    })?;
    eprintln!("filled {n} events in {:.1} s", t.elapsed().as_secs_f64());

    // 2. Bare sled scan (ceiling) and 3. the fold over the same scan.
    let (cold_scan_rate, scan_rate, fold_rate, bytes) = {
        let (_db, tree) = raw::open_tree(dir, &annals::config::Config::defaults()?.log)?;
        // The first pass after opening reads every page into sled's cache (the cold ceiling);
        // it also warms the cache so the loops after it read from memory alike.
        let t = Instant::now();
        let mut count = 0u64;
        for item in raw::records(&tree) {
            item?;
            count += 1;
        }
        let cold_scan = count as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut bytes = 0usize;
        count = 0;
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
            let fact = Fact::parse(seq, &v[32..]);
            k.apply_parsed(seq, fact)?;
        }
        let fold = k.seq as f64 / t.elapsed().as_secs_f64();
        (cold_scan, scan, fold, bytes)
    };

    // 4. The engine's paths through the Log: the offline rebuild (fold + save generation
    //    write) on a cold sled cache (as after a start), the rebuild's fold and the whole
    //    rebuild again on a warm cache (as the ceiling was measured), and a restart's load of
    //    the save the rebuild wrote.
    let paths = rt.block_on(async {
        let log = open(dir)?;
        let config = annals::Config::defaults().expect("defaults").projections;
        let t = Instant::now();
        let folded = projection::rebuild_offline(&log, &config, |_| {}).await?;
        let rebuild_cold = folded as f64 / t.elapsed().as_secs_f64();
        let rss_before = rss_bytes();
        let t = Instant::now();
        let records = Records::log(log.clone(), config.record_cache(), None);
        let mut k = Knowledge::over(records.clone());
        projection::fold_log(&log, &mut k, config.batch_events * 8, |_| {})?;
        let fold = k.seq as f64 / t.elapsed().as_secs_f64();
        let rss_growth = rss_bytes().saturating_sub(rss_before);
        let t = Instant::now();
        let folded = projection::rebuild_offline(&log, &config, |_| {}).await?;
        let rebuild_warm = folded as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        let tree = log.aux_tree("projections")?;
        let (meta, loaded) =
            projection::save::load(&tree, &log, &records, &config.row_pages(None))?;
        let load = meta.seq as f64 / t.elapsed().as_secs_f64();
        if loaded.facts().len() != k.facts().len() {
            return Err("the loaded save differs from the fold".into());
        }
        drop((tree, loaded));
        Res::Ok(Paths {
            log,
            rss_growth,
            rebuild_cold,
            fold,
            rebuild_warm,
            load,
            k,
        })
    })?;
    let k = &paths.k;

    // 5. Query latency: each view now (no known_at) and as of random seqs. With no snapshots,
    //    an as-of answer is the current state filtered at the cut, so it should cost no more
    //    than the current view (the "distance to the nearest snapshot" is always zero).
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut latencies = Vec::new();
    for (view, entity) in [("negotiation", "p1"), ("actors", "actor:a7")] {
        for as_of in [false, true] {
            let mut lat = Vec::new();
            for _ in 0..queries {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let q = Query {
                    known_at: as_of.then_some(KnownAt::Seq(1 + state % n.max(1))),
                    limit: 100,
                    ..Query::default()
                };
                let t = Instant::now();
                let (_, v) = projection::answer(k, view, Some(entity), &q)?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
                std::hint::black_box(v);
            }
            lat.sort_by(f64::total_cmp);
            latencies.push((view, as_of, lat));
        }
    }

    let cache = k.records().stats();
    rt.block_on(paths.log.clone().close());

    println!("projections benchmark: {n} events, {} bytes stored", bytes);
    println!(
        "  [ceiling] bare sled scan              {:>12.0} events/s",
        scan_rate
    );
    println!(
        "  fold over the raw scan, one thread    {:>12.0} events/s  ({:.0}% of the scan)",
        fold_rate,
        100.0 * fold_rate / scan_rate
    );
    for (label, rate) in [
        ("rebuild fold (fold_log), warm cache", paths.fold),
        ("rebuild incl. save write, warm", paths.rebuild_warm),
        ("rebuild incl. save write, cold", paths.rebuild_cold),
        ("restart: load the saved fold", paths.load),
    ] {
        println!(
            "  {label:<38}{rate:>12.0} events/s  ({:.0}% of the scan)",
            100.0 * rate / scan_rate
        );
    }
    println!(
        "  [cold ceiling] first scan after open  {cold_scan_rate:>12.0} events/s  (the cold rebuild is {:.0}% of it)",
        100.0 * paths.rebuild_cold / cold_scan_rate
    );
    println!(
        "  memory added by the fold's knowledge   {:>8.0} MB ({:.0} bytes per event)",
        paths.rss_growth as f64 / 1e6,
        paths.rss_growth as f64 / n.max(1) as f64
    );
    for (view, as_of, lat) in &latencies {
        let what = if *as_of { "as of a random seq" } else { "now" };
        println!(
            "  {view} view, {what:<20} p50 {:>6.2} ms  p99 {:>6.2} ms  ({queries} queries)",
            percentile(lat, 0.5),
            percentile(lat, 0.99)
        );
    }
    println!(
        "  record cache: {} hits, {} misses, {} records ({} bytes) held",
        cache.hits, cache.misses, cache.entries, cache.bytes
    );
    Ok(())
}
