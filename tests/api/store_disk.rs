//! The data folder on disk: a new folder is zstd-compressed (at most 1.5 times the size of its
//! export), and a folder made uncompressed keeps opening, serving and verifying unchanged.

use std::path::Path;
use std::process::Command;

use crate::helpers::*;

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/moscow-talks.ndjson");

fn annals(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_annals"))
        .args(args)
        .env("ANNALS_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "annals {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn import(data: &Path, file: &Path, env: &[(&str, &str)]) {
    wait_until_released(data);
    annals(
        &[
            "import",
            "--data-dir",
            data.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        env,
    );
}

fn export(data: &Path) -> String {
    wait_until_released(data);
    annals(&["export", "--data-dir", data.to_str().unwrap()], &[])
}

/// Bytes of every file under `dir` (what `du -sb` counts, without the folders themselves).
fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                folder_bytes(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

/// `n` statements in the demo's process, citing its source and actors, with varied wording.
fn statements(n: usize) -> String {
    let words = [
        "the",
        "talks",
        "on",
        "a",
        "ceasefire",
        "resumed",
        "in",
        "Moscow",
        "after",
        "weeks",
        "of",
        "delay",
        "while",
        "both",
        "delegations",
        "said",
        "progress",
        "territory",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = String::new();
    for i in 0..n {
        let content: Vec<&str> = (0..18)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                words[(state % words.len() as u64) as usize]
            })
            .collect();
        let line = serde_json::json!({
            "stream": format!("process/p{}", i % 100),
            "type": "statement.made",
            "occurred": {"start": format!("2026-01-{:02}", 1 + i % 28), "precision": "day"},
            "process": "ru-ua-peace",
            "data": {"statement_id": format!("statement:s{i}"), "speaker": "actor:zelenskiy",
                     "content": content.join(" "), "tone": "neutral"},
            "evidence": [{"source": "src:moscow-peace-negotiations-article", "relation": "quotes",
                          "quote": "The meeting was confirmed by the Kremlin.",
                          "locator": format!("line {}", i % 90)}]
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

#[test]
fn a_new_data_folder_is_at_most_one_and_a_half_times_its_export() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("statements.ndjson");
    // 10,000 events (an export of about 8 MB), not fewer: sled holds a few megabytes whatever
    // the log's size (its active segments, the projections' save) and grows its file by whole
    // 512 KiB segments, reclaiming one only once half of it is garbage; at 5,000 events those
    // alone made the ratio swing between 1.30 and 1.69 from run to run.
    std::fs::write(&file, statements(10_000)).unwrap();
    import(&data, Path::new(DEMO), &[]);
    import(&data, &file, &[]);
    let exported = export(&data).len() as u64;
    let stored = folder_bytes(&data);
    eprintln!(
        "folder {stored} bytes, export {exported} bytes, ratio {:.2}",
        stored as f64 / exported as f64
    );
    assert!(
        stored * 2 <= exported * 3,
        "the folder ({stored} bytes) is more than 1.5 times its export ({exported} bytes)"
    );
    // The writer compressed the records, once per chunk (format byte 2), so sled does not
    // recompress pages: the folder is made without sled's compression.
    let conf = std::fs::read(data.join("conf")).unwrap();
    assert!(
        conf.windows(22).any(|w| w == b"use_compression: false"),
        "sled leaves the pages of a new folder as they are"
    );
    wait_until_released(&data);
    let db = open_store(&data);
    let tree = db.open_tree("log").unwrap();
    let chunks: Vec<_> = tree.scan_prefix(b"c").map(|kv| kv.unwrap().1).collect();
    assert!(!chunks.is_empty());
    assert!(
        chunks.iter().all(|v| v[0] == 2),
        "every chunk is compressed"
    );
}

#[test]
fn a_folder_made_without_compression_keeps_opening_with_compression_configured() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // As every folder was made before compression was the default.
    import(
        &data,
        Path::new(DEMO),
        &[("ANNALS_LOG__COMPRESSION", "false")],
    );
    let before = export(&data);

    // The shipped defaults (compression on) read, verify and append to it as before.
    wait_until_released(&data);
    let report = annals(&["verify", "--data-dir", data.to_str().unwrap()], &[]);
    assert!(report.contains("58"), "{report}");
    let file = dir.path().join("more.ndjson");
    std::fs::write(&file, statements(10)).unwrap();
    import(&data, &file, &[]);
    let after = export(&data);
    assert!(
        after.starts_with(&before),
        "the old records read back unchanged"
    );
    assert_eq!(after.lines().count(), 68);

    // The folder keeps its choice, so the next open (and any older binary) still reads it.
    let conf = std::fs::read(data.join("conf")).unwrap();
    assert!(conf.windows(22).any(|w| w == b"use_compression: false"));
    wait_until_released(&data);
    annals(&["verify", "--data-dir", data.to_str().unwrap()], &[]);
}
