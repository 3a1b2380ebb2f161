//! Verifiable log: Merkle roots and proofs against an independent RFC 9162 implementation
//! written here from the RFC text, signed checkpoints, offline verification of exports, and
//! tampering detected through sled directly.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::*;

type H = [u8; 32];

// ---- An independent implementation of RFC 9162 §2.1, straight from its definitions. ----

fn sha(parts: &[&[u8]]) -> H {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn k_of(n: usize) -> usize {
    // The largest power of two smaller than n.
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]) over raw leaves.
fn mth(d: &[Vec<u8>]) -> H {
    match d.len() {
        0 => sha(&[]),
        1 => sha(&[&[0u8], &d[0]]),
        n => {
            let k = k_of(n);
            sha(&[&[1u8], &mth(&d[..k]), &mth(&d[k..])])
        }
    }
}

/// PATH(m, D[n]).
fn path(m: usize, d: &[Vec<u8>]) -> Vec<H> {
    let n = d.len();
    if n <= 1 {
        return vec![];
    }
    let k = k_of(n);
    if m < k {
        let mut p = path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

/// PROOF(m, D[n]) = SUBPROOF(m, D[n], true).
fn subproof(m: usize, d: &[Vec<u8>], b: bool) -> Vec<H> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![mth(d)] };
    }
    let k = k_of(n);
    if m <= k {
        let mut p = subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

fn hexes(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect()
}

fn hex_all(v: &[H]) -> Vec<String> {
    v.iter().map(hex::encode).collect()
}

#[derive(serde::Deserialize)]
struct Page {
    events: Vec<Box<serde_json::value::RawValue>>,
    next: Option<u64>,
}

/// The exact stored bytes of a record: its envelope as served, without the final `hash`.
fn stored_bytes(envelope: &str) -> Vec<u8> {
    let cut = envelope.rfind(",\"hash\":").unwrap();
    format!("{}}}", &envelope[..cut]).into_bytes()
}

/// The stored bytes of every record (the envelope without its `hash`), in seq order.
async fn leaves(app: &TestApp) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut from = 1;
    loop {
        let resp = app.get(&format!("/events?from={from}&limit=1000")).await;
        let text = resp.text().await.unwrap();
        let page: Page = serde_json::from_str(&text).unwrap();
        for e in &page.events {
            out.push(stored_bytes(e.get()));
        }
        match page.next {
            Some(n) => from = n,
            None => break,
        }
    }
    out
}

async fn append_statements(app: &TestApp, count: u64, offset: u64) {
    let mut n = 0;
    while n < count {
        let batch: Vec<Value> = (n..(n + 50).min(count))
            .map(|i| statement(offset + i))
            .collect();
        let len = batch.len() as u64;
        let resp = app.append("process/p", &json!({"events": batch})).await;
        assert_eq!(resp.status(), 201);
        n += len;
    }
}

#[tokio::test]
async fn roots_and_proofs_equal_an_independent_rfc_9162_implementation_for_every_size_to_300() {
    let app = spawn_app().await;
    app.seed().await; // 5 records
    append_statements(&app, 295, 0).await;
    let d = leaves(&app).await;
    assert_eq!(d.len(), 300);
    // A fixed-seed generator: random pairs, reproducible.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for n in 1..=300usize {
        let root = app.get_json(&format!("/audit/root?size={n}")).await;
        assert_eq!(root["root"], hex::encode(mth(&d[..n])), "root of size {n}");
        let m = rnd(n as u64) as usize; // 0-based leaf
        let inc = app
            .get_json(&format!("/audit/proof/inclusion?seq={}&size={n}", m + 1))
            .await;
        assert_eq!(inc["leaf_index"], m as u64);
        assert_eq!(
            hexes(&inc["inclusion_path"]),
            hex_all(&path(m, &d[..n])),
            "inclusion of {m} in {n}"
        );
        let first = 1 + rnd(n as u64) as usize;
        let con = app
            .get_json(&format!("/audit/proof/consistency?from={first}&to={n}"))
            .await;
        assert_eq!(
            hexes(&con["consistency_path"]),
            hex_all(&subproof(first, &d[..n], true)),
            "consistency {first} -> {n}"
        );
        assert_eq!(con["first_root"], hex::encode(mth(&d[..first])));
    }
    // And the library's verifiers accept what the independent side computed.
    for (m, n) in [
        (0usize, 1usize),
        (5, 8),
        (6, 7),
        (63, 64),
        (64, 65),
        (150, 300),
    ] {
        let p = path(m, &d[..n]);
        assert!(annals::log::merkle::verify_inclusion(
            &sha(&[&[0u8], &d[m]]),
            m as u64,
            n as u64,
            &p,
            &mth(&d[..n])
        ));
    }
}

#[tokio::test]
async fn out_of_range_proof_requests_are_refused_clearly() {
    let app = spawn_app().await;
    app.seed().await;
    for path in [
        "/audit/root?size=6",
        "/audit/proof/inclusion?seq=2&size=1",
        "/audit/proof/inclusion?seq=0&size=1",
        "/audit/proof/consistency?from=2&to=1",
    ] {
        let resp = app.get(path).await;
        assert_eq!(resp.status(), 422, "{path}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
    }
    assert_eq!(app.get("/audit/proof/inclusion").await.status(), 400);
    assert_eq!(app.get("/audit/root?size=abc").await.status(), 400);
}

#[tokio::test]
async fn a_signed_checkpoint_covers_the_head_and_verifies_with_the_served_public_key() {
    let app = spawn_app().await;
    assert_eq!(app.get("/audit/checkpoint").await.status(), 404);
    let forbidden = app
        .client
        .post(app.url("/audit/checkpoint"))
        .bearer_auth(&app.keys.read)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403, "making a checkpoint needs admin");
    app.seed().await; // 5 records
    append_statements(&app, 5, 0).await;
    let cp = checkpoint(&app).await;
    assert_eq!(cp["size"], 10);
    assert_eq!(cp["root"], app.get_json("/audit/root").await["root"]);
    assert_eq!(app.get_json("/audit/checkpoint").await, cp);
    let key = annals::audit::checkpoint::parse_public_key(&public_key(&app).await).unwrap();
    let parsed: annals::audit::checkpoint::Checkpoint = serde_json::from_value(cp.clone()).unwrap();
    parsed.verify(&key).unwrap();
    let mut forged = parsed.clone();
    forged.root = hex::encode([0u8; 32]);
    assert!(forged.verify(&key).is_err());
}

/// Stops the app, exports its folder, returns (dir, export text).
async fn stop_and_export(app: TestApp) -> (tempfile::TempDir, String) {
    let dir = app.stop().await;
    let d = dir.path().to_str().unwrap().to_string();
    let (code, out, err) = run_cli(&["export", "--data-dir", &d], None);
    assert_eq!(code, 0, "{err}");
    (dir, out)
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[tokio::test]
async fn verify_export_holds_for_a_true_export_and_names_the_first_bad_seq_of_a_doctored_one() {
    let app = spawn_app().await;
    app.seed().await; // 5 records
    append_statements(&app, 15, 0).await;
    let cp = checkpoint(&app).await;
    let key = public_key(&app).await;
    let (dir, export) = stop_and_export(app).await;
    let work = tempfile::tempdir().unwrap();
    let cp_file = write(work.path(), "cp.json", &cp.to_string());
    let good = write(work.path(), "good.ndjson", &export);
    let (code, out, err) = run_cli(
        &[
            "audit",
            "verify-export",
            &good,
            "--checkpoint",
            &cp_file,
            "--public-key",
            &key,
        ],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok: checkpoint of size 20"), "{out}");

    // Change one word of record 7.
    let mut lines: Vec<String> = export.lines().map(str::to_string).collect();
    lines[6] = lines[6].replace("Statement number", "Statement numbr");
    let doctored = write(work.path(), "bad.ndjson", &(lines.join("\n") + "\n"));
    let (code, out, _) = run_cli(
        &[
            "audit",
            "verify-export",
            &doctored,
            "--checkpoint",
            &cp_file,
            "--public-key",
            &key,
        ],
        None,
    );
    assert_eq!(code, 1);
    assert!(out.contains("FAILED at seq 7"), "{out}");

    // Drop record 12.
    let mut dropped = export.lines().map(str::to_string).collect::<Vec<_>>();
    dropped.remove(11);
    let dropped = write(work.path(), "dropped.ndjson", &(dropped.join("\n") + "\n"));
    let (code, out, _) = run_cli(
        &[
            "audit",
            "verify-export",
            &dropped,
            "--checkpoint",
            &cp_file,
            "--public-key",
            &key,
        ],
        None,
    );
    assert_eq!(code, 1);
    assert!(out.contains("FAILED at seq 12"), "{out}");

    // A forged signature is refused whatever the export.
    let mut forged = cp.clone();
    forged["size"] = json!(19);
    let forged = write(work.path(), "forged.json", &forged.to_string());
    let (code, out, _) = run_cli(
        &[
            "audit",
            "verify-export",
            &good,
            "--checkpoint",
            &forged,
            "--public-key",
            &key,
        ],
        None,
    );
    assert_eq!(code, 1, "{out}");
    drop(dir);
}

/// Opens the stopped folder's log tree directly (as an attacker with disk access would).
fn tamper(dir: &std::path::Path, f: impl FnOnce(&sled::Tree)) {
    wait_until_released(dir);
    let db = open_store(dir);
    let tree = db.open_tree("log").unwrap();
    // Records as one key each (the layout before chunks), so one record can be altered.
    annals::log::raw::unchunk(&tree).unwrap();
    f(&tree);
    db.flush().unwrap();
}

fn record_key(seq: u64) -> Vec<u8> {
    annals::log::raw::event_key(seq)
}

#[tokio::test]
async fn an_old_checkpoint_no_longer_verifies_after_the_store_is_rewritten_behind_the_log() {
    for (case, expect_seq) in [("change", 5u64), ("delete", 5), ("swap", 5), ("insert", 5)] {
        let app = spawn_app().await;
        app.seed().await; // 5 records
        append_statements(&app, 5, 0).await;
        let cp = checkpoint(&app).await;
        let key = public_key(&app).await;
        let dir = app.stop().await;
        tamper(dir.path(), |tree| match case {
            "change" => {
                let mut v = tree.get(record_key(5)).unwrap().unwrap().to_vec();
                let at = v.len() - 10;
                v[at] ^= 1;
                tree.insert(record_key(5), v).unwrap();
            }
            "delete" => {
                tree.remove(record_key(5)).unwrap();
            }
            "swap" => {
                let a = tree.get(record_key(5)).unwrap().unwrap();
                let b = tree.get(record_key(6)).unwrap().unwrap();
                tree.insert(record_key(5), b).unwrap();
                tree.insert(record_key(6), a).unwrap();
            }
            _ => {
                // Shift 5..=10 up by one and put a copy of record 3 at 5.
                for seq in (5..=10).rev() {
                    let v = tree.get(record_key(seq)).unwrap().unwrap();
                    tree.insert(record_key(seq + 1), v).unwrap();
                }
                let v = tree.get(record_key(3)).unwrap().unwrap();
                tree.insert(record_key(5), v).unwrap();
            }
        });
        let d = dir.path().to_str().unwrap().to_string();
        let (code, out, _) = run_cli(&["verify", "--data-dir", &d], None);
        assert_eq!(code, 1, "{case}: {out}");
        assert!(
            out.contains(&format!("FAILED at seq {expect_seq}")),
            "{case}: {out}"
        );
        let (code, export, err) = run_cli(&["export", "--data-dir", &d], None);
        assert_eq!(code, 0, "{err}");
        let work = tempfile::tempdir().unwrap();
        let cp_file = write(work.path(), "cp.json", &cp.to_string());
        let exp = write(work.path(), "e.ndjson", &export);
        let (code, out, _) = run_cli(
            &[
                "audit",
                "verify-export",
                &exp,
                "--checkpoint",
                &cp_file,
                "--public-key",
                &key,
            ],
            None,
        );
        assert_eq!(code, 1, "{case}: the old checkpoint must not verify: {out}");
        assert!(
            out.contains(&format!("FAILED at seq {expect_seq}")),
            "{case}: {out}"
        );
    }
}

// Multi-threaded: the CLI asks the in-process server while this test blocks on the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_checkpoint_proves_it_extends_an_earlier_one_and_a_rewritten_history_cannot() {
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("signing.key");
    let with_key = |c: annals::Config| {
        c.with(json!({"audit": {"signing_key": key_file.clone(), "checkpoint_interval_secs": 0}}))
            .unwrap()
    };
    let app = spawn_app_with(with_key).await;
    app.seed().await;
    append_statements(&app, 4, 0).await;
    let old = checkpoint(&app).await;
    append_statements(&app, 20, 100).await;
    let new = checkpoint(&app).await;
    let key = public_key(&app).await;
    let work = tempfile::tempdir().unwrap();
    let old_f = write(work.path(), "old.json", &old.to_string());
    let new_f = write(work.path(), "new.json", &new.to_string());
    let (code, out, err) = run_cli(
        &[
            "audit",
            "verify-consistency",
            &old_f,
            &new_f,
            "--public-key",
            &key,
            "--server",
            &app.base,
            "--api-key",
            &app.keys.read,
        ],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("extends"), "{out}");

    // A second log, same key, same first record, different history after it.
    let other = spawn_app_with(with_key).await;
    other.seed().await;
    append_statements(&other, 24, 5000).await;
    let rewritten = checkpoint(&other).await;
    assert_eq!(rewritten["size"], new["size"]);
    let rew_f = write(work.path(), "rewritten.json", &rewritten.to_string());
    let (code, out, _) = run_cli(
        &[
            "audit",
            "verify-consistency",
            &old_f,
            &rew_f,
            "--public-key",
            &key,
            "--server",
            &other.base,
            "--api-key",
            &other.keys.read,
        ],
        None,
    );
    assert_eq!(
        code, 1,
        "a rewritten history must not extend the old checkpoint: {out}"
    );
    // The export route gives the same verdicts offline.
    let (_d1, export) = stop_and_export(app).await;
    let exp = write(work.path(), "e.ndjson", &export);
    let (code, out, _) = run_cli(
        &[
            "audit",
            "verify-consistency",
            &old_f,
            &new_f,
            "--public-key",
            &key,
            "--export",
            &exp,
        ],
        None,
    );
    assert_eq!(code, 0, "{out}");
    let (code, _, _) = run_cli(
        &[
            "audit",
            "verify-consistency",
            &old_f,
            &rew_f,
            "--public-key",
            &key,
            "--export",
            &exp,
        ],
        None,
    );
    assert_eq!(code, 1);
}

#[tokio::test]
async fn replay_streams_each_record_of_a_span_with_a_proof_that_verifies() {
    let app = spawn_app().await;
    app.seed().await;
    append_statements(&app, 29, 0).await;
    let resp = app.get("/audit/replay?from=5&to=20").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let text = resp.text().await.unwrap();
    let root: H = {
        let r = app.get_json("/audit/root?size=20").await;
        let mut out = [0u8; 32];
        hex::decode_to_slice(r["root"].as_str().unwrap(), &mut out).unwrap();
        out
    };
    let mut seqs = BTreeMap::new();
    for line in text.lines() {
        #[derive(serde::Deserialize)]
        struct Line<'a> {
            #[serde(borrow)]
            record: &'a serde_json::value::RawValue,
            proof: Value,
        }
        let line: Line = serde_json::from_str(line).unwrap();
        let bytes = stored_bytes(line.record.get());
        let rec: Value = serde_json::from_str(line.record.get()).unwrap();
        let v = json!({"proof": line.proof});
        let proof: Vec<H> = hexes(&v["proof"]["inclusion_path"])
            .iter()
            .map(|h| {
                let mut out = [0u8; 32];
                hex::decode_to_slice(h, &mut out).unwrap();
                out
            })
            .collect();
        let seq = rec["seq"].as_u64().unwrap();
        assert!(annals::log::merkle::verify_inclusion(
            &sha(&[&[0u8], &bytes]),
            seq - 1,
            20,
            &proof,
            &root
        ));
        seqs.insert(seq, ());
    }
    assert_eq!(
        seqs.keys().copied().collect::<Vec<_>>(),
        (5..=20).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn replay_known_at_before_and_after_a_correction_shows_the_old_and_the_new_value() {
    let app = spawn_app().await;
    app.seed().await;
    let plan_id = uuid::Uuid::now_v7();
    let plan = json!({
        "id": plan_id,
        "type": "plan.proposed",
        "occurred": {"start": "2025-12-03", "precision": "day"},
        "process": "test-process",
        "data": {"plan_id": "plan:test", "title": "Twenty-eight point plan", "version": 1, "points": 28},
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    });
    assert_eq!(
        app.append("process/test-process", &plan).await.status(),
        201
    );
    let before = app.head().await.0;
    let correction = json!({
        "type": "event.corrected",
        "occurred": {"start": "2026-01-23", "precision": "day"},
        "process": "test-process",
        "data": {
            "target": plan_id,
            "patch": [
                {"op": "replace", "path": "/title", "value": "Twenty-seven point plan"},
                {"op": "replace", "path": "/points", "value": 27}
            ],
            "reason": "The source said 27 points; we coded 28."
        },
        "evidence": []
    });
    let resp = app.append("process/test-process", &correction).await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let after = app.head().await.0;
    let dir = app.stop().await;
    let d = dir.path().to_str().unwrap().to_string();
    let replay = |known_at: u64| {
        let (code, out, err) = run_cli(
            &[
                "replay",
                "--data-dir",
                &d,
                "--known-at",
                &known_at.to_string(),
                "--projection",
                "negotiation",
            ],
            None,
        );
        assert_eq!(code, 0, "{err}");
        out
    };
    let old = replay(before);
    assert!(old.contains("Twenty-eight point plan"), "{old}");
    assert!(!old.contains("Twenty-seven point plan"), "{old}");
    let new = replay(after);
    assert!(new.contains("Twenty-seven point plan"), "{new}");
    assert!(!new.contains("Twenty-eight point plan"), "{new}");
    // From an export, without the data folder, the same answers.
    let (code, export, _) = run_cli(&["export", "--data-dir", &d], None);
    assert_eq!(code, 0);
    let work = tempfile::tempdir().unwrap();
    let exp = write(work.path(), "e.ndjson", &export);
    let (code, out, _) = run_cli(
        &[
            "replay",
            "--export",
            &exp,
            "--known-at",
            &before.to_string(),
            "--projection",
            "negotiation",
        ],
        None,
    );
    assert_eq!(code, 0);
    assert!(out.contains("Twenty-eight point plan"), "{out}");
    let (code, _, err) = run_cli(
        &["replay", "--export", &exp, "--known-at", "yesterday-ish"],
        None,
    );
    assert_eq!(code, 2, "a bad known_at is a usage error: {err}");
}

/// The leaf as the README specifies it, byte for byte: an export line ends with
/// `,"hash":"<64 lowercase hex>"}`; the leaf is the line without those last 75 bytes, plus `}`.
fn leaf_of_export_line(line: &str) -> Vec<u8> {
    let bytes = line.as_bytes();
    assert!(bytes.len() > 75, "line too short: {line}");
    let (body, tail) = bytes.split_at(bytes.len() - 75);
    assert!(
        tail.starts_with(b",\"hash\":\"") && tail.ends_with(b"\"}"),
        "{line}"
    );
    let hex = &tail[9..73];
    assert!(
        hex.iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c)),
        "{line}"
    );
    let mut leaf = body.to_vec();
    leaf.push(b'}');
    leaf
}

#[tokio::test]
async fn the_merkle_root_recomputed_from_an_export_line_by_line_is_the_served_root() {
    let app = spawn_app().await;
    app.seed().await;
    append_statements(&app, 70, 0).await;
    let root = app.get("/audit/root").await.json::<Value>().await.unwrap();
    let (_dir, export) = stop_and_export(app).await;
    let leaves: Vec<Vec<u8>> = export.lines().map(leaf_of_export_line).collect();
    assert_eq!(leaves.len() as u64, root["tree_size"].as_u64().unwrap());
    assert_eq!(hex::encode(mth(&leaves)), root["root"].as_str().unwrap());
}
