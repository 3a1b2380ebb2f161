//! `annals import` of a large file as a real child process: a `kill -9` in the middle leaves a
//! prefix that verifies, and importing the same file again appends no event twice (lines
//! without an `id` get one derived from the line); `annals import --check` lists every
//! problem of a file at its line and leaves the folder as it was.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A source, a speaker, then `n` statements spread over 50 streams, one submission a line,
/// none with an `id`.
fn bulk_file(n: u64) -> String {
    let mut out = String::new();
    let mut push = |stream: &str, mut event: Value| {
        event["stream"] = json!(stream);
        out.push_str(&event.to_string());
        out.push('\n');
    };
    push("registry/sources", source_event(SOURCE));
    push("registry/actors", actor("actor:witkoff"));
    for i in 0..n {
        push(&format!("process/p{}", i % 50), statement(i));
    }
    out
}

fn actor(id: &str) -> Value {
    json!({
        "type": "actor.registered",
        "data": {"actor_id": id, "name": "Steve Witkoff", "kind": "person"},
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    })
}

/// `annals verify` of a stopped folder: (exit code, stdout).
fn verify(dir: &Path) -> (i32, String) {
    wait_until_released(dir);
    let (code, out, err) = run_cli(&["verify", "--data-dir", arg(dir)], None);
    assert!(code == 0 || code == 1, "verify exit {code}: {out}{err}");
    (code, out)
}

/// The head seq `verify` reports.
fn verified_head(dir: &Path) -> (u64, String) {
    let (code, out) = verify(dir);
    assert_eq!(code, 0, "the folder must verify: {out}");
    let rest = out.split("head seq ").nth(1).unwrap();
    let mut words = rest.split_whitespace();
    let seq = words.next().unwrap().parse().unwrap();
    let hash = words.nth(1).unwrap().to_string();
    (seq, hash)
}

fn export(dir: &Path) -> Vec<Value> {
    wait_until_released(dir);
    let (code, out, err) = run_cli(&["export", "--data-dir", arg(dir)], None);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The `imported: ...` summary line of an import.
fn summary(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.starts_with("imported: "))
        .unwrap_or_else(|| panic!("no summary in {stderr:?}"))
        .to_string()
}

#[tokio::test]
async fn kill_9_during_an_import_leaves_a_prefix_that_verifies_and_reimports_append_each_event_once()
 {
    let lines: u64 = 30_000 + 2;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("bulk.ndjson");
    std::fs::write(&file, bulk_file(lines - 2)).unwrap();
    let dir = work.path().join("data");

    // Killed once the folder holds some records but (by far) not all of them.
    let mut child = Command::new(env!("CARGO_BIN_EXE_annals"))
        .args(["import", "--data-dir", arg(&dir), arg(&file)])
        .env("ANNALS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let data_file = dir.join("db");
    while std::fs::metadata(&data_file).map_or(0, |m| m.len()) < 2 << 20 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import ended before it could be killed; make the file larger"
        );
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let (killed_at, _) = verified_head(&dir);
    assert!(
        killed_at > 0 && killed_at < lines,
        "the kill must land mid-way (head {killed_at} of {lines})"
    );

    // Again: the durable prefix is found already present, the rest is appended.
    let (code, _, err) = run_cli(&["import", "--data-dir", arg(&dir), arg(&file)], None);
    assert_eq!(code, 0, "{err}");
    let (head, hash) = verified_head(&dir);
    assert_eq!(head, lines);
    assert_eq!(
        summary(&err),
        format!(
            "imported: 0 restored, {} appended, {killed_at} already present; head seq {lines} hash {hash}",
            lines - killed_at
        )
    );
    let records = export(&dir);
    let ids: HashSet<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(records.len() as u64, lines);
    assert_eq!(ids.len() as u64, lines, "an event was appended twice");
    let statements: HashSet<&str> = records
        .iter()
        .filter_map(|r| r["data"]["statement_id"].as_str())
        .collect();
    assert_eq!(statements.len() as u64, lines - 2);

    // Each stream reads back through its index: the import's groups span every stream many
    // times over, and a group writes a stream's last index page once, as its last request
    // left it.
    let app = spawn_app_with(|c| c.with(json!({"server": {"data_dir": dir}})).unwrap()).await;
    assert_streams_read_through_their_index(&app.client, &app.base, &app.keys.read, &records).await;
    app.stop().await;
    wait_until_released(&dir);

    // A third time: nothing at all.
    let (code, _, err) = run_cli(&["import", "--data-dir", arg(&dir), arg(&file)], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        summary(&err),
        format!(
            "imported: 0 restored, 0 appended, {lines} already present; head seq {lines} hash {hash}"
        )
    );

    // And the export of such a log (ids derived by the import) restores into a new folder.
    let copy = work.path().join("copy");
    let exported: String = records.iter().map(|r| format!("{r}\n")).collect();
    let (code, _, err) = run_cli(
        &["import", "--data-dir", arg(&copy), "-"],
        Some(exported.as_bytes()),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(verified_head(&copy), (lines, hash));
}

#[tokio::test]
async fn import_check_reports_each_seeded_mistake_at_its_line_counts_them_and_writes_nothing() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("data");
    let base = work.path().join("base.ndjson");
    std::fs::write(&base, bulk_file(1)).unwrap();
    let (code, _, err) = run_cli(&["import", "--data-dir", arg(&dir), arg(&base)], None);
    assert_eq!(code, 0, "{err}");
    let before = verified_head(&dir);
    assert_eq!(before.0, 3);

    let line = |stream: &str, mut event: Value| {
        event["stream"] = json!(stream);
        event.to_string()
    };
    let mut no_content = statement(11);
    no_content["data"]
        .as_object_mut()
        .unwrap()
        .remove("content");
    let mut wrong_kind_speaker = statement(12);
    wrong_kind_speaker["data"]["speaker"] = json!(SOURCE);
    let mut stale = statement(13);
    stale["expected_version"] = json!(5);
    let mut no_stream = statement(14);
    no_stream.as_object_mut().unwrap().remove("stream");
    let mut uses_line_7 = statement(15);
    uses_line_7["data"]["speaker"] = json!("actor:lavrov");
    let file = [
        line("process/p0", statement(10)),          // 1: fine
        "{\"stream\": \"process/p0\",".to_string(), // 2: not JSON
        line("process/p0", no_content),             // 3: breaks the schema
        line("process/p0", wrong_kind_speaker),     // 4: a speaker that is a source
        line("registry/sources", {
            let mut other = source_event(SOURCE);
            other["data"]["publisher"] = json!("Another Wire");
            other
        }), // 5: source registered again, contradicting
        line("process/p0", stale),                  // 6: stream p0 is at 2 (seq 3, line 1)
        line("registry/actors", actor("actor:lavrov")), // 7: fine
        String::new(),                              // 8: blank
        no_stream.to_string(),                      // 9: no stream
        line("process/p1", uses_line_7),            // 10: fine, thanks to line 7
        line("Process/P", statement(16)),           // 11: not a stream name
    ]
    .join("\n");
    let checked = work.path().join("check.ndjson");
    std::fs::write(&checked, &file).unwrap();

    let (code, out, err) = run_cli(
        &["import", "--check", "--data-dir", arg(&dir), arg(&checked)],
        None,
    );
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    let listed: Vec<&str> = out.lines().filter(|l| l.starts_with("line ")).collect();
    let at: Vec<String> = listed
        .iter()
        .map(|l| {
            let (place, _) = l.split_once(": ").unwrap();
            let rest = &l[place.len() + 2..];
            let pointer = rest.split(": ").next().unwrap();
            let kind = l.rsplit('[').next().unwrap().trim_end_matches(']');
            format!("{place} {pointer} {kind}")
        })
        .collect();
    assert_eq!(
        at,
        [
            "line 2 / json",
            "line 3 /data schema",
            "line 4 /data/speaker reference",
            "line 5 /data/publisher registry",
            "line 6 /expected_version version",
            "line 9 /stream stream",
            "line 11 /stream stream",
        ],
        "{out}"
    );
    assert!(
        listed[2].contains("`src:test-wire` is a source, not an actor"),
        "{out}"
    );
    assert!(
        listed[4].contains("stream `process/p0` is at version 2, expected 5"),
        "{out}"
    );
    assert!(
        out.contains("7 problem(s): 1 json, 2 stream, 1 schema, 1 reference, 1 registry, 1 version; nothing was written"),
        "{out}"
    );
    assert_eq!(verified_head(&dir), before, "--check wrote to the folder");

    // A check that packs what it learns after every line (the ids and event ids that line 10
    // and the version check need then come from its packed runs) reports the same.
    let packing = work.path().join("packing.toml");
    std::fs::write(&packing, "[import]\ncheck_memory_entries = 1\n").unwrap();
    let (code, packed, err) = run_cli(
        &[
            "import",
            "--check",
            "--config",
            arg(&packing),
            "--data-dir",
            arg(&dir),
            arg(&checked),
        ],
        None,
    );
    assert_eq!(code, 1, "stdout: {packed}\nstderr: {err}");
    assert_eq!(
        packed, out,
        "packing what the check learns changed its report"
    );
    assert_eq!(verified_head(&dir), before);

    // A clean file: exit 0, and still nothing written.
    let clean = work.path().join("clean.ndjson");
    std::fs::write(&clean, line("process/p0", statement(20))).unwrap();
    let (code, out, err) = run_cli(
        &["import", "--check", "--data-dir", arg(&dir), arg(&clean)],
        None,
    );
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.starts_with("ok: no problem found"), "{out}");
    assert_eq!(verified_head(&dir), before);

    // Against a folder that does not exist: checked against an empty log, and not created.
    let none = work.path().join("none");
    let (code, out, _) = run_cli(
        &["import", "--check", "--data-dir", arg(&none), arg(&checked)],
        None,
    );
    assert_eq!(code, 1);
    assert!(
        out.contains("line 1: /evidence/0/source: "),
        "nothing registered the source before line 1: {out}"
    );
    assert!(!out.contains("line 5:"), "line 5 registers it first: {out}");
    assert!(!none.exists(), "--check created the data folder");
}
