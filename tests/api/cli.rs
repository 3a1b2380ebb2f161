//! The `annals` command line on real data folders: export | import round trips, importing the
//! example data, stopping at a bad line, `verify` catching a store changed behind the log's
//! back, minting keys, and configuration errors and overrides.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::*;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/moscow-talks.ndjson");

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `annals` and insists on exit 0; returns stdout and stderr.
fn cli_ok(args: &[&str], stdin: Option<&[u8]>) -> (String, String) {
    let (code, out, err) = run_cli(args, stdin);
    assert_eq!(code, 0, "annals {args:?}\nstdout: {out}\nstderr: {err}");
    (out, err)
}

fn export(dir: &Path) -> String {
    wait_until_released(dir);
    cli_ok(&["export", "--data-dir", arg(dir)], None).0
}

fn verify(dir: &Path) -> (i32, String) {
    wait_until_released(dir);
    let (code, out, err) = run_cli(&["verify", "--data-dir", arg(dir)], None);
    assert!(code == 0 || code == 1, "verify exit {code}: {out}{err}");
    (code, out)
}

/// Appends and insists on 201; returns the first event's id.
async fn append_ok(app: &TestApp, stream: &str, body: &Value) -> String {
    let resp = app.append(stream, body).await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let body: Value = resp.json().await.unwrap();
    body["events"][0]["id"].as_str().unwrap().to_string()
}

/// A log with every kind of thing an export must carry: several streams, batches, a
/// correction referring to an earlier event, non-ASCII text and escapes.
async fn populate(app: &TestApp) {
    app.seed().await;
    let meeting_id = append_ok(app, "process/ru-ua-peace", &meeting("meeting:m1")).await;
    let mut s = statement(1);
    s["data"]["content"] = json!("«Территориальный вопрос» — \"key\" issue \\ 🕊\tend");
    append_ok(app, "process/ru-ua-peace", &s).await;
    let batch: Vec<Value> = (2..6).map(statement).collect();
    append_ok(
        app,
        "process/other",
        &json!({"expected_version": "no_stream", "events": batch}),
    )
    .await;
    let correction = json!({
        "type": "event.corrected",
        "occurred": {"start": "2026-01-23", "precision": "day"},
        "data": {
            "target": meeting_id,
            "patch": [{"op": "replace", "path": "/location/name", "value": "Moscow, Kremlin"}],
            "reason": "more precise location"
        },
        "evidence": []
    });
    append_ok(app, "process/ru-ua-peace", &correction).await;
    append_ok(app, "registry/sources", &source_event("src:second")).await;
}

/// The registration of the fixture statements' speaker, citing [`SOURCE`], as one import line.
fn speaker() -> Value {
    fixture_actors()["events"][0].clone()
}

/// The `imported: ...` summary line of an import.
fn summary(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("imported: "))
        .unwrap_or_else(|| panic!("no summary in {stderr:?}"))
}

#[tokio::test]
async fn export_piped_into_import_reproduces_the_same_records_and_head() {
    let app = spawn_app().await;
    populate(&app).await;
    let (seq, hash) = app.head().await;
    assert_eq!(seq, 13, "the seed's five records, then eight");
    let source = app.stop().await;

    let exported = export(source.path());
    assert_eq!(exported.lines().count() as u64, seq);
    let target = tempfile::tempdir().unwrap();
    let copy = target.path().join("copy"); // does not exist yet
    let (_, err) = cli_ok(
        &["import", "--data-dir", arg(&copy)],
        Some(exported.as_bytes()),
    );
    assert_eq!(
        summary(&err),
        format!(
            "imported: {seq} restored, 0 appended, 0 already present; head seq {seq} hash {hash}"
        )
    );

    // Exported again: the same bytes. Verified: the same chain and head.
    assert!(export(&copy) == exported, "the re-export differs");
    let (code, original) = verify(source.path());
    assert_eq!(code, 0, "{original}");
    assert_eq!(verify(&copy), (0, original));

    // A server over the copy serves the same head and continues it: streams, registry and ids
    // were restored along with the records.
    let copy_for_server = copy.clone();
    let app = spawn_app_with(move |c| {
        c.with(json!({"server": {"data_dir": copy_for_server}}))
            .unwrap()
    })
    .await;
    assert_eq!(app.head().await, (seq, hash.clone()));
    let resp = app
        .append(
            "process/other",
            &json!({"expected_version": 4, "events": [statement(9)]}),
        )
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["events"][0]["seq"], seq + 1);
    let id = body["events"][0]["id"].as_str().unwrap();
    assert_eq!(
        app.get_json(&format!("/events/{id}")).await["prev_hash"],
        hash.as_str()
    );
    // The registry entry came back too: registering the source again is answered with its
    // registration (issue 11, item 3), and registering it otherwise is a conflict.
    let again = app.append("registry/sources", &source_event(SOURCE)).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["events"][0]["seq"], 1, "{again}");
    let mut other = source_event(SOURCE);
    other["data"]["publisher"] = json!("Other Wire");
    assert_eq!(app.append("registry/sources", &other).await.status(), 409);
}

#[tokio::test]
async fn importing_the_example_data_twice_appends_it_once() {
    let lines = std::fs::read_to_string(EXAMPLE)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    let dir = tempfile::tempdir().unwrap();
    let (_, first) = cli_ok(&["import", "--data-dir", arg(dir.path()), EXAMPLE], None);
    let first = summary(&first).to_string();
    let prefix = format!(
        "imported: 0 restored, {lines} appended, 0 already present; head seq {lines} hash "
    );
    assert!(first.starts_with(&prefix), "{first}");
    let hash = first.strip_prefix(&prefix).unwrap().to_string();
    assert_eq!(hash.len(), 64);

    let (_, second) = cli_ok(&["import", "--data-dir", arg(dir.path()), EXAMPLE], None);
    assert_eq!(
        summary(&second),
        format!(
            "imported: 0 restored, 0 appended, {lines} already present; head seq {lines} hash {hash}"
        )
    );
    let (code, out) = verify(dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("head seq {lines} hash {hash}")),
        "{out}"
    );
    assert_eq!(export(dir.path()).lines().count(), lines);
}

#[test]
fn the_log_filter_variable_is_not_taken_for_configuration() {
    // `run_cli` sets ANNALS_LOG=warn, as an operator quieting the logs would: that is the log
    // filter, not the `[log]` section of the configuration.
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run_cli(&["verify", "--data-dir", arg(dir.path())], None);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(
        out.starts_with(&format!(
            "ok: 0 records verified; head seq 0 hash {}",
            "0".repeat(64)
        )),
        "{out}"
    );
}

/// NDJSON of submissions: each event with the stream it goes to.
fn ndjson(lines: &[(&str, Value)]) -> String {
    lines
        .iter()
        .map(|(stream, e)| {
            let mut e = e.clone();
            e["stream"] = json!(stream);
            format!("{e}\n")
        })
        .collect()
}

#[tokio::test]
async fn import_stops_at_an_invalid_line_naming_it_and_its_field_and_keeps_the_lines_before() {
    let mut bad = statement(3);
    bad["data"]["speaker"] = json!(42);
    let file_dir = tempfile::tempdir().unwrap();
    let file = file_dir.path().join("in.ndjson");
    std::fs::write(
        &file,
        ndjson(&[
            ("registry/sources", source_event(SOURCE)),
            ("registry/actors", speaker()),
            ("process/p", statement(2)),
            ("process/p", bad),
            ("process/p", statement(4)),
        ]),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run_cli(&["import", "--data-dir", arg(dir.path()), arg(&file)], None);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    assert!(err.contains("line 4"), "{err}");
    assert!(err.contains("/data/speaker"), "{err}");
    assert!(!err.contains("line 5"), "{err}");

    let (code, out) = verify(dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("head seq 3 "), "{out}");
    let records: Vec<Value> = export(dir.path())
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0]["data"]["source_id"], SOURCE);
    assert_eq!(records[2]["data"]["content"], "Statement number 2.");
    assert_eq!(records[2]["recorded_by"], "import");
}

#[tokio::test]
async fn import_stops_at_a_line_the_log_refuses_and_writes_nothing_after_it() {
    let mut unknown = statement(2);
    unknown["evidence"][0]["source"] = json!("src:never-registered");
    let input = ndjson(&[
        ("registry/sources", source_event(SOURCE)),
        ("registry/actors", speaker()),
        ("process/p", unknown),
        ("process/p", statement(3)),
        ("process/p", statement(4)),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run_cli(
        &["import", "--data-dir", arg(dir.path())],
        Some(input.as_bytes()),
    );
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("src:never-registered"), "{err}");
    let (code, out) = verify(dir.path());
    assert_eq!(code, 0, "{out}");
    // Only the lines before the refused one are in the log: the import stopped there.
    let exported = export(dir.path());
    assert_eq!(exported.lines().count(), 2, "{exported}");
}

/// A stopped log of the seed (a source and the fixture actors, seq 1..=5) and `n` statements:
/// seq 6..=n+5, statement `i` at seq `i + 5`.
async fn stopped_log(n: u64) -> tempfile::TempDir {
    let app = spawn_app().await;
    app.seed().await;
    for i in 1..=n {
        append_ok(&app, "process/p", &statement(i)).await;
    }
    assert_eq!(app.head().await.0, n + 5);
    let dir = app.stop().await;
    let (code, out) = verify(dir.path());
    assert_eq!(code, 0, "an untouched log must verify: {out}");
    dir
}

/// The documented key of the record at `seq`: `e` then seq as u64 big-endian.
fn record_key(seq: u64) -> Vec<u8> {
    let mut k = vec![b'e'];
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Opens the store directly, behind the log's back, and lets `change` alter the log tree.
fn tamper(dir: &Path, change: impl FnOnce(&sled::Tree)) {
    wait_until_released(dir);
    let db = open_store(dir);
    let tree = db.open_tree("log").unwrap();
    // Records as one key each (the layout before chunks), so one record can be altered.
    annals::log::raw::unchunk(&tree).unwrap();
    change(&tree);
    db.flush().unwrap();
}

fn assert_verify_fails_at(dir: &Path, k: u64) -> String {
    let (code, out) = verify(dir);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with(&format!("FAILED at seq {k}:")), "{out}");
    out
}

#[tokio::test]
async fn verify_names_a_record_whose_content_was_changed() {
    let dir = stopped_log(6).await;
    let k = 8; // statement 3
    tamper(dir.path(), |tree| {
        let mut value = tree.get(record_key(k)).unwrap().unwrap().to_vec();
        let json = &value[32..];
        let at = json
            .windows(17)
            .position(|w| w == b"Statement number ")
            .unwrap();
        // "Statement number 3." becomes "Statement number 8.": still valid JSON.
        value[32 + at + 17] = b'8';
        serde_json::from_slice::<Value>(&value[32..]).unwrap();
        tree.insert(record_key(k), value).unwrap();
    });
    let out = assert_verify_fails_at(dir.path(), k);
    assert!(out.contains("does not match its hash"), "{out}");
}

#[tokio::test]
async fn verify_names_a_changed_record_even_when_its_hash_was_recomputed() {
    let dir = stopped_log(6).await;
    let k = 8; // statement 3
    tamper(dir.path(), |tree| {
        let prev = tree.get(record_key(k - 1)).unwrap().unwrap();
        let value = tree.get(record_key(k)).unwrap().unwrap();
        let text = std::str::from_utf8(&value[32..]).unwrap();
        let forged = text.replace("Statement number 3.", "Statement number 8.");
        assert_ne!(forged, text);
        let mut h = Sha256::new();
        h.update(&prev[..32]);
        h.update(forged.as_bytes());
        let mut new_value = h.finalize().to_vec();
        new_value.extend_from_slice(forged.as_bytes());
        tree.insert(record_key(k), new_value).unwrap();
    });
    // Record k now checks out on its own; the next record's link no longer does.
    assert_verify_fails_at(dir.path(), k + 1);
}

#[tokio::test]
async fn verify_names_a_removed_record() {
    let dir = stopped_log(6).await;
    let k = 8; // statement 3
    tamper(dir.path(), |tree| {
        tree.remove(record_key(k)).unwrap().unwrap();
    });
    let out = assert_verify_fails_at(dir.path(), k);
    assert!(out.contains("missing"), "{out}");
}

#[tokio::test]
async fn verify_names_the_last_record_when_it_was_removed() {
    let dir = stopped_log(6).await;
    tamper(dir.path(), |tree| {
        tree.remove(record_key(11)).unwrap().unwrap();
    });
    assert_verify_fails_at(dir.path(), 11);
}

#[tokio::test]
async fn verify_names_the_first_of_two_swapped_records() {
    let dir = stopped_log(6).await;
    let k = 8; // statement 3
    tamper(dir.path(), |tree| {
        let a = tree.get(record_key(k)).unwrap().unwrap();
        let b = tree.get(record_key(k + 1)).unwrap().unwrap();
        tree.insert(record_key(k), b).unwrap();
        tree.insert(record_key(k + 1), a).unwrap();
    });
    assert_verify_fails_at(dir.path(), k);
}

#[tokio::test]
async fn keys_new_prints_a_key_and_a_config_block_that_a_server_accepts() {
    let (out, _) = cli_ok(
        &[
            "keys",
            "new",
            "--scopes",
            "read,append",
            "--principal",
            "desk",
        ],
        None,
    );
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("key: "))
        .unwrap_or_else(|| panic!("no key in {out}"))
        .to_string();
    assert!(key.starts_with("ak_"), "{key}");
    let block = &out[out.find("[[auth.keys]]").expect("a config block")..];
    assert!(block.contains("principal = \"desk\""), "{block}");
    assert!(block.contains("scopes = [\"read\", \"append\"]"), "{block}");
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    assert!(
        block.contains(&format!("hash = \"sha256:{digest}\"")),
        "{block}"
    );
    assert!(
        !block.contains(&key),
        "the config block must not hold the key"
    );

    // A config made of just that block: the server accepts the key for what it grants.
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("annals.toml");
    std::fs::write(&config, block).unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(data.path(), &config);
    let client = reqwest::Client::new();
    let post = |body: Value, stream: &str, key: &str| {
        client
            .post(format!("{}/streams/{stream}/events", server.base))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    assert_eq!(
        post(source_event(SOURCE), "registry%2Fsources", &key)
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(
        post(speaker(), "registry%2Factors", &key)
            .await
            .unwrap()
            .status(),
        201
    );
    let resp = post(statement(1), "process%2Fp", &key).await.unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["events"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let read = client
        .get(format!("{}/events/{id}", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.json::<Value>().await.unwrap()["recorded_by"], "desk");
    // Any other key is unknown to this server.
    let other = TestKeys::new();
    assert_eq!(
        post(statement(2), "process%2Fp", &other.admin)
            .await
            .unwrap()
            .status(),
        401
    );
    server.kill9();
}

/// Runs a command that must exit by itself within `limit`; returns (code, stderr).
fn run_to_exit(mut cmd: Command, limit: Duration) -> (i32, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            return (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the command did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn serve_command(dir: &Path, config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_annals"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(dir)
        .env("ANNALS_LOG", "warn");
    cmd
}

/// Like [`BinaryServer::start`], with extra environment variables.
fn start_binary_with_env(dir: &Path, config: &Path, envs: &[(&str, &str)]) -> BinaryServer {
    let mut cmd = serve_command(dir, config);
    cmd.envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    BinaryServer { child, base }
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn serve_with_a_bad_config_value_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "bad.toml",
        "[limits]\nmax_body_bytes = \"lots\"\n",
    );
    let (code, err) = run_to_exit(
        serve_command(&dir.path().join("data"), &config),
        Duration::from_secs(20),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("limits.max_body_bytes"), "{err}");
}

#[test]
fn serve_with_a_signing_key_file_that_is_not_a_key_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = write_file(dir.path(), "broken.key", "not a key\n");
    let config = write_file(
        dir.path(),
        "bad.toml",
        &format!("[audit]\nsigning_key = \"{}\"\n", key.display()),
    );
    let (code, err) = run_to_exit(
        serve_command(&dir.path().join("data"), &config),
        Duration::from_secs(20),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("broken.key"), "{err}");
}

#[test]
fn serve_with_a_webhook_value_out_of_range_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "bad.toml",
        "[webhooks]
read_batch = 0
",
    );
    let (code, err) = run_to_exit(
        serve_command(&dir.path().join("data"), &config),
        Duration::from_secs(20),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("webhooks.read_batch"), "{err}");
}

#[tokio::test]
async fn an_environment_variable_overrides_the_config_file() {
    let keys = TestKeys::new();
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "annals.toml",
        &format!("[limits]\nmax_events_per_request = 50\n\n{}", keys.toml()),
    );
    let data = dir.path().join("data");
    let server = start_binary_with_env(
        &data,
        &config,
        &[("ANNALS_LIMITS__MAX_EVENTS_PER_REQUEST", "2")],
    );
    let client = reqwest::Client::new();
    let post = |body: Value, stream: &str| {
        client
            .post(format!("{}/streams/{stream}/events", server.base))
            .bearer_auth(&keys.append)
            .json(&body)
            .send()
    };
    let seed = post(source_event(SOURCE), "registry%2Fsources")
        .await
        .unwrap();
    assert_eq!(seed.status(), 201);
    let speaker = post(speaker(), "registry%2Factors").await.unwrap();
    assert_eq!(speaker.status(), 201);
    let two = post(
        json!({"events": [statement(1), statement(2)]}),
        "process%2Fp",
    )
    .await
    .unwrap();
    assert_eq!(two.status(), 201);
    let three = post(
        json!({"events": [statement(3), statement(4), statement(5)]}),
        "process%2Fp",
    )
    .await
    .unwrap();
    assert_eq!(three.status(), 413);
    let problem: Value = three.json().await.unwrap();
    assert_eq!(problem["errors"][0]["pointer"], "/events", "{problem}");
    let head: Value = client
        .get(format!("{}/log", server.base))
        .bearer_auth(&keys.read)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(head["seq"], 4);
    server.kill9();
}
