//! The writer's memories of registry lookups and of stream heads stay within `[log] known_ids`
//! and `[log] stream_heads` (issue 13: every cache has a configured bound), through the real
//! server: their sizes are on `/metrics`. So do an import's chunks and appends in flight, and
//! `annals replay` of a data folder holds its facts, reading records through the record cache.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::projections::compact::metric;

const IDS: usize = 20;

/// Ids the writer remembers after `IDS` registered actors are each named by a statement, with
/// `known_ids` set to `bound`.
async fn remembered_with(bound: usize) -> f64 {
    let app = spawn_app_with(|mut c| {
        c.log.known_ids = bound;
        c
    })
    .await;
    app.seed().await;
    let ids: Vec<String> = (0..IDS).map(|i| format!("actor:known-bound-{i}")).collect();
    register_all(&app, &ids.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let events: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let mut s = statement(n as u64);
            s["data"]["speaker"] = json!(id);
            s
        })
        .collect();
    let resp = app
        .append("process/ru-ua-peace", &json!({ "events": events }))
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let text = app.get("/metrics").await.text().await.unwrap();
    metric(&text, "annals_log_writer_known_ids")
}

#[tokio::test]
async fn the_writer_remembers_at_most_log_known_ids_registry_ids() {
    let small = remembered_with(8).await;
    assert!(small > 0.0 && small <= 8.0, "{small}");
    // The shipped bound holds every id the statements named (and their source).
    let roomy = remembered_with(4096).await;
    assert!(roomy > IDS as f64, "{roomy}");
    assert_eq!(remembered_with(0).await, 0.0);
}

/// Appends three rounds to ten streams, each with the version it expects, under a writer that
/// remembers at most `bound` stream heads; then a stale version on each. Answers the heads held.
async fn heads_held_with(bound: usize) -> f64 {
    let app = spawn_app_with(|mut c| {
        c.log.stream_heads = bound;
        c
    })
    .await;
    app.seed().await;
    let streams: Vec<String> = (0..10).map(|i| format!("process/heads-{i}")).collect();
    let mut n = 0;
    for round in 0..3u64 {
        for stream in &streams {
            n += 1;
            let expected = if round == 0 {
                json!("no_stream")
            } else {
                json!(round)
            };
            let body = json!({"expected_version": expected, "events": [statement(n)]});
            let resp = app.append(stream, &body).await;
            assert_eq!(resp.status(), 201, "{stream} round {round}");
        }
    }
    for stream in &streams {
        n += 1;
        let body = json!({"expected_version": 2, "events": [statement(n)]});
        let resp = app.append(stream, &body).await;
        assert_eq!(resp.status(), 409, "{stream}");
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(problem["current_version"], 3, "{stream}");
    }
    let text = app.get("/metrics").await.text().await.unwrap();
    metric(&text, "annals_log_writer_stream_heads")
}

#[tokio::test]
async fn the_writer_remembers_at_most_log_stream_heads_and_judges_versions_the_same_past_it() {
    let small = heads_held_with(3).await;
    assert!(small > 0.0 && small <= 3.0, "{small}");
    let roomy = heads_held_with(65536).await;
    assert!(roomy >= 10.0, "{roomy}");
    assert_eq!(heads_held_with(0).await, 0.0);
}

/// Imports `file` into a fresh folder with `config` (TOML); answers the exit code, stderr
/// and the folder's exported records.
fn import_with(config: &str, file: &std::path::Path) -> (i32, String, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("annals.toml");
    std::fs::write(&cfg, config).unwrap();
    let data = dir.path().join("data");
    let args = |cmd: &'static str| -> Vec<String> {
        vec![
            cmd.into(),
            "--config".into(),
            cfg.display().to_string(),
            "--data-dir".into(),
            data.display().to_string(),
        ]
    };
    let mut import = args("import");
    import.push(file.display().to_string());
    let import: Vec<&str> = import.iter().map(String::as_str).collect();
    let (code, _, err) = run_cli(&import, None);
    if code != 0 {
        return (code, err, Vec::new());
    }
    wait_until_released(&data);
    let export = args("export");
    let export: Vec<&str> = export.iter().map(String::as_str).collect();
    let (code, out, e) = run_cli(&export, None);
    assert_eq!(code, 0, "{e}");
    let records = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (0, err, records)
}

#[test]
fn an_import_holding_one_line_at_a_time_appends_the_same_events_and_a_zero_bound_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("demo.ndjson");
    std::fs::write(&file, annals::server::DEMO_NDJSON).unwrap();
    let (code, err, shipped) = import_with("", &file);
    assert_eq!(code, 0, "{err}");
    let tight = "[import]\nchunk_lines = 1\nchunk_bytes = 1\nin_flight = 1\n\
                 cache_capacity_bytes = 1048576\n";
    let (code, err, one_by_one) = import_with(tight, &file);
    assert_eq!(code, 0, "{err}");
    let events = |records: &[Value]| -> Vec<(Value, Value, Value)> {
        records
            .iter()
            .map(|r| (r["id"].clone(), r["type"].clone(), r["data"].clone()))
            .collect()
    };
    assert!(shipped.len() > 10);
    assert_eq!(events(&one_by_one), events(&shipped));

    for (key, value) in [
        ("in_flight", "0"),
        ("chunk_lines", "0"),
        ("chunk_bytes", "0"),
        ("cache_capacity_bytes", "4096"),
    ] {
        let (code, err, _) = import_with(&format!("[import]\n{key} = {value}\n"), &file);
        assert_eq!(code, 2, "{key}: {err}");
        assert!(err.contains(&format!("import.{key}")), "{key}: {err}");
    }
}

/// `annals replay` of a data folder keeps its facts, not the records: the views read the
/// records they show from the folder through the record cache. With a cache of one record every
/// view still answers exactly as a replay of the folder's export, which holds every record.
#[tokio::test]
async fn replay_of_a_folder_through_a_one_record_cache_answers_as_replay_of_its_export() {
    let app = spawn_app().await;
    app.seed().await;
    let mut events: Vec<Value> = (0..30).map(statement).collect();
    events.push(json!({
        "type": "plan.proposed",
        "occurred": {"start": "2025-12-03", "precision": "day"},
        "process": "ru-ua-peace",
        "data": {"plan_id": "plan:bounded", "title": "A plan read back from the folder",
                 "version": 1, "points": 12},
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    }));
    let resp = app
        .append("process/ru-ua-peace", &json!({ "events": events }))
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let head = app.head().await.0.to_string();
    let dir = app.stop().await;
    let data = dir.path().to_str().unwrap().to_string();
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("annals.toml");
    std::fs::write(
        &config,
        "[projections]\nrecord_cache_entries = 1\nrecord_cache_bytes = 1\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let (code, export, err) = run_cli(&["export", "--data-dir", &data], None);
    assert_eq!(code, 0, "{err}");
    let exported = work.path().join("export.ndjson");
    std::fs::write(&exported, export).unwrap();
    let exported = exported.display().to_string();
    let mut shown = String::new();
    for projection in ["negotiation", "calendar", "actors", "sources", "audit"] {
        let replay = |source: &[&str]| {
            let mut args = vec!["replay", "--known-at", &head, "--projection", projection];
            args.extend_from_slice(source);
            let (code, out, err) = run_cli(&args, None);
            assert_eq!(code, 0, "{projection}: {err}");
            out
        };
        let from_folder = replay(&["--config", &config, "--data-dir", &data]);
        let from_export = replay(&["--export", &exported]);
        assert_eq!(from_folder, from_export, "{projection}");
        assert!(from_folder.len() > 100, "{projection}: {from_folder}");
        shown.push_str(&from_folder);
    }
    // The plan's title is in its record only: a view read it from the folder.
    assert!(
        shown.contains("A plan read back from the folder"),
        "{shown}"
    );
    // The fold itself holds no record, and its cache at most the one it is allowed.
    let mut config = annals::config::Config::defaults().unwrap();
    config.projections.record_cache_entries = 1;
    let k = annals::audit::replay::from_dir(dir.path(), &config.log, &config.projections).unwrap();
    assert!(!k.records().keeps_records());
    let view = annals::audit::replay::view(&k, "negotiation", &head, None).unwrap();
    assert!(view.to_string().contains("A plan read back"), "{view}");
    let stats = k.records().stats();
    assert!(stats.misses > 0 && stats.entries <= 1, "{stats:?}");
}
