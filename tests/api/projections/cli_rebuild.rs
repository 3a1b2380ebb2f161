//! `annals rebuild`, the offline rebuild, with the real binary on real data folders: it folds
//! the whole log into a new save generation that a restarted server resumes from
//! without replaying anything; it refuses an unknown projection name; and it fails cleanly,
//! leaving the server alone, when a running server holds the folder.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use annals::projection::save::{self, Meta};
use serde_json::{Value, json};

use super::inproc::is_chunk_of;
use super::{DemoServer, status};
use crate::helpers::*;

/// The views a client sees, compared before and after the rebuild.
const VIEWS: &[&str] = &[
    "/projections/negotiation",
    "/projections/negotiation/ru-ua-peace",
    "/projections/calendar",
    "/projections/actors",
    "/projections/actors/actor:putin",
    "/projections/actors/actor:witkoff",
    "/projections/sources",
    "/projections/sources/src:moscow-peace-negotiations-article",
    "/projections/audit",
];

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every view of [`VIEWS`], each once the projections have reached `head`.
async fn views(app: &DemoServer, head: u64) -> Vec<Value> {
    let mut out = Vec::new();
    for path in VIEWS {
        let v = app.get(&format!("{path}?min_seq={head}")).await;
        assert_eq!(v["as_of_seq"], head, "{path} answers for the head");
        out.push(v);
    }
    out
}

/// Reads the projections' save of a stopped folder: its meta and every key of its tree.
fn stored_save(dir: &Path) -> (Meta, Vec<Vec<u8>>) {
    wait_until_released(dir);
    let db = open_store(dir);
    let tree = db.open_tree("projections").unwrap();
    let meta = save::meta(&tree).unwrap();
    let keys = tree.iter().keys().map(|k| k.unwrap().to_vec()).collect();
    drop(tree);
    drop(db);
    wait_until_released(dir);
    (meta, keys)
}

/// Runs `annals` with arguments; it must exit by itself within `limit`. Returns (exit code,
/// stdout, stderr).
fn run_cli_within(args: &[&str], limit: Duration) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_annals"))
        .args(args)
        .env("ANNALS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("annals {args:?} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn annals_rebuild_on_a_stopped_folder_folds_every_event_and_a_restart_replays_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = DemoServer::start(dir.path()).await;
    app.append("registry/sources", &source_event(SOURCE)).await;
    app.append(
        "process/ru-ua-peace",
        &json!({"events": [meeting("meeting:rebuild-1"), statement(1), statement(2)]}),
    )
    .await;
    let head = app.server.log().head().seq;
    assert!(head > 4, "the demo data is loaded: head {head}");
    let before = views(&app, head).await;
    app.server.stop().await;
    let (old, _) = stored_save(dir.path());
    assert_eq!(old.seq, head, "the graceful stop saved the head");

    let (code, out, err) = run_cli_within(
        &["rebuild", "--data-dir", arg(dir.path())],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(
        err.contains(&format!(
            "rebuilt all projections: {head} records folded; head seq {head}"
        )),
        "{err}"
    );

    // A new generation, complete up to the head, in the current layout; the old one is gone.
    let (new, keys) = stored_save(dir.path());
    assert_eq!(new.generation, old.generation + 1, "{new:?}");
    assert_eq!(new.seq, head, "{new:?}");
    assert_eq!(new.format, 7, "{new:?}");
    assert!(
        keys.iter().any(|k| is_chunk_of(k, new.generation)),
        "the new generation has chunks"
    );
    for k in &keys {
        assert!(
            k.as_slice() == b"meta" || is_chunk_of(k, new.generation),
            "stale key {k:?} left behind"
        );
    }

    let app = DemoServer::start(dir.path()).await;
    assert_eq!(
        app.server.log().head().seq,
        head,
        "no demo data loaded twice"
    );
    let s = app.status("negotiation").await;
    assert_eq!(s["seq"], head, "{s}");
    assert_eq!(s["head"], head, "{s}");
    assert_eq!(s["replayed_since_start"], 0, "{s}");
    assert_eq!(s["last_checkpoint_seq"], head, "{s}");
    let after = views(&app, head).await;
    for ((path, b), a) in VIEWS.iter().zip(&before).zip(&after) {
        assert_eq!(a, b, "{path} differs after the rebuild");
    }
    app.server.stop().await;
}

#[test]
fn annals_rebuild_with_an_unknown_projection_name_exits_2_naming_it_and_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run_cli_within(
        &["rebuild", "treaties", "--data-dir", arg(dir.path())],
        Duration::from_secs(30),
    );
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    assert!(err.contains("no projection is called `treaties`"), "{err}");
    assert!(
        err.contains("negotiation, calendar, actors, sources, audit"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "the data folder was not touched"
    );
}

#[tokio::test]
async fn annals_rebuild_while_the_server_holds_the_folder_fails_cleanly() {
    let app = spawn_app().await;
    app.seed().await;
    let resp = app
        .append(
            "process/ru-ua-peace",
            &json!({"events": [statement(1), statement(2)]}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let before = super::view(&app, "/projections/actors/actor:witkoff", 7).await;

    let data_dir = app.dir.path().to_str().unwrap().to_string();
    let started = Instant::now();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run_cli_within(
            &["rebuild", "--data-dir", &data_dir],
            Duration::from_secs(60),
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    assert!(
        err.contains("cannot open the data folder"),
        "names the problem: {err}"
    );
    assert!(err.contains("could not acquire lock"), "says why: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "gives up after its short lock retry, took {:?}",
        started.elapsed()
    );

    // The running server is unharmed: it still answers, appends, and folds.
    assert_eq!(
        super::view(&app, "/projections/actors/actor:witkoff", 7).await,
        before
    );
    let resp = app.append("process/ru-ua-peace", &statement(3)).await;
    assert_eq!(resp.status(), 201);
    let v = super::view(&app, "/projections/actors/actor:witkoff", 8).await;
    assert_eq!(v["as_of_seq"], 8);
    let s = status(&app, "actors").await;
    assert_eq!(s["seq"], 8, "{s}");
    assert_eq!(s["rebuilding"], false, "{s}");
    app.stop().await;
}
