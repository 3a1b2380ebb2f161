//! Records stored in chunks (one sled value per group commit): a read from any seq inside a
//! chunk starts exactly there, a group writes a few chunk keys and no key per record, a folder
//! from before chunks (one key per record) reads the same and appends on in chunks, and a
//! record changed inside a chunk is named by `annals verify`. The events are source
//! registrations, which name no actor or issue.

use serde_json::{Value, json};

use crate::helpers::*;

/// A source registration whose publisher is `pad` bytes long, so records differ in size.
fn source(n: u64, pad: usize) -> Value {
    let mut ev = source_event(&format!("src:chunk-{n}"));
    ev["data"]["publisher"] = json!(format!("Wire {n} {}", "p".repeat(pad)));
    ev
}

/// Appends `batches` requests of `per` registrations each; returns the head seq.
async fn fill(app: &TestApp, batches: u64, per: u64) -> u64 {
    for b in 0..batches {
        let events: Vec<Value> = (0..per)
            .map(|i| {
                let n = b * per + i;
                source(n, (n as usize * 37) % 280)
            })
            .collect();
        let resp = app
            .append("registry/sources", &json!({ "events": events }))
            .await;
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    }
    app.head().await.0
}

/// The whole log read from `from`, page after page of `limit`.
async fn read_from(app: &TestApp, from: u64, limit: u64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut from = from;
    loop {
        let page = app
            .get_json(&format!("/events?from={from}&limit={limit}"))
            .await;
        out.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next"].as_u64() {
            Some(n) => from = n,
            None => return out,
        }
    }
}

/// How many keys of the log tree start with `prefix`.
fn keys_with_prefix(dir: &std::path::Path, prefix: u8) -> usize {
    wait_until_released(dir);
    let db = open_store(dir);
    let tree = db.open_tree("log").unwrap();
    tree.scan_prefix([prefix]).count()
}

/// Rewrites the stopped folder as folders were written before chunks: one key per record.
fn as_one_key_per_record(dir: &std::path::Path) {
    wait_until_released(dir);
    let db = open_store(dir);
    let tree = db.open_tree("log").unwrap();
    annals::log::raw::unchunk(&tree).unwrap();
    db.flush().unwrap();
}

#[tokio::test]
async fn a_read_from_any_seq_inside_a_chunk_starts_exactly_there() {
    let app = spawn_app().await;
    let head = fill(&app, 3, 100).await;
    assert_eq!(head, 300);
    let all = read_from(&app, 1, 1000).await;
    assert_eq!(all.len(), 300);
    for from in 1..=head {
        let page = app.get_json(&format!("/events?from={from}&limit=3")).await;
        let got = page["events"].as_array().unwrap();
        let want = &all[from as usize - 1..(from as usize + 2).min(300)];
        assert_eq!(got.as_slice(), want, "from {from}");
        let one = app
            .get_json(&format!(
                "/events/{}",
                all[from as usize - 1]["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(one, all[from as usize - 1], "by id, seq {from}");
    }
    // Pages of any size stitch the log back together.
    assert_eq!(read_from(&app, 1, 7).await, all);
}

#[tokio::test]
async fn a_group_writes_a_few_chunk_keys_and_no_key_per_record() {
    let app = spawn_app().await;
    let head = fill(&app, 2, 100).await;
    let bytes: usize = read_from(&app, 1, 1000)
        .await
        .iter()
        .map(|r| r.to_string().len())
        .sum();
    let dir = app.stop().await;
    assert_eq!(keys_with_prefix(dir.path(), b'e'), 0, "no record key");
    let chunks = keys_with_prefix(dir.path(), b'c');
    assert!(chunks >= 2, "{chunks} chunks");
    // About 7 KiB of records per chunk: far fewer keys than records.
    assert!(
        chunks as u64 <= head / 4 && chunks <= bytes / 4096 + 2,
        "{chunks} chunks for {head} records of {bytes} bytes"
    );
}

#[tokio::test]
async fn a_folder_written_with_one_key_per_record_reads_the_same_and_appends_on_in_chunks() {
    let mut app = spawn_app().await;
    let head = fill(&app, 2, 100).await;
    let before = read_from(&app, 1, 1000).await;
    let root = app.get_json(&format!("/audit/root?size={head}")).await;
    let proof = app
        .get_json(&format!("/audit/proof/inclusion?seq=77&size={head}"))
        .await;
    app.restart_after(as_one_key_per_record).await;

    assert_eq!(read_from(&app, 1, 1000).await, before);
    assert_eq!(read_from(&app, 150, 9).await, before[149..].to_vec());
    assert_eq!(
        app.get_json(&format!("/audit/root?size={head}")).await,
        root
    );
    assert_eq!(
        app.get_json(&format!("/audit/proof/inclusion?seq=77&size={head}"))
            .await,
        proof
    );
    // Appends go on from the old records, in chunks, and reads cross from one form to the other.
    let resp = app
        .append(
            "registry/sources",
            &json!({"events": [source(1000, 10), source(1001, 20)]}),
        )
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    // A repeat of an old record's id is found through the old form: the same position.
    let old = &before[41];
    let repeat = app
        .append(
            "registry/sources",
            &json!({"events": [{
                "id": old["id"], "type": old["type"], "occurred": old["occurred"],
                "data": old["data"], "evidence": old["evidence"]
            }]}),
        )
        .await;
    let repeat: Value = repeat.json().await.unwrap();
    assert_eq!(repeat["events"][0]["seq"], old["seq"], "{repeat}");
    let after = read_from(&app, 199, 2).await;
    assert_eq!(after.len(), 4);
    assert_eq!(after[..2], before[198..]);
    assert_eq!(after[2]["seq"], head + 1);
    assert_eq!(after[2]["prev_hash"], before[199]["hash"]);
    assert_eq!(after[3]["prev_hash"], after[2]["hash"]);
    let dir = app.stop().await;
    assert_eq!(keys_with_prefix(dir.path(), b'e') as u64, head);
    assert!(keys_with_prefix(dir.path(), b'c') >= 1);
    let (code, out, err) = run_cli(
        &["verify", "--data-dir", dir.path().to_str().unwrap()],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("ok: {} records verified", head + 2)),
        "{out}"
    );
}

#[tokio::test]
async fn verify_names_a_record_changed_inside_a_chunk() {
    let app = spawn_app().await;
    fill(&app, 1, 100).await;
    let dir = app.stop().await;
    wait_until_released(dir.path());
    {
        let db = open_store(dir.path());
        let tree = db.open_tree("log").unwrap();
        // The second chunk: flip one byte of its last record's JSON ("Wire" becomes "Wirf").
        let (k, v) = tree.scan_prefix(b"c").nth(1).unwrap().unwrap();
        // A compressed chunk (format 2) is put back plain (format 1), which reads the same.
        let mut v = if v[0] == 2 {
            let len = u32::from_be_bytes(v[1..5].try_into().unwrap()) as usize;
            zstd::block::decompress(&v[5..], len).unwrap()
        } else {
            v.to_vec()
        };
        assert_eq!(v[0], 1);
        let at = v.windows(5).rposition(|w| w == b"Wire ").unwrap();
        v[at + 3] = b'f';
        tree.insert(k, v).unwrap();
        db.flush().unwrap();
    }
    let (code, out, _) = run_cli(
        &["verify", "--data-dir", dir.path().to_str().unwrap()],
        None,
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not match its hash"), "{out}");
    let seq: u64 = out
        .split("FAILED at seq ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(seq > 1 && seq <= 100, "{out}");
}
