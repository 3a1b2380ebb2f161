//! The demo data set (`examples/moscow-talks.ndjson`, compiled in as `DEMO_NDJSON`): `--demo`
//! loads it into an empty folder only, every line is a valid submission, every fact is
//! sourced and every quote is verbatim from the article, and the facts the article reports
//! are in it.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use annals::Server;
use annals::server::DEMO_NDJSON;
use serde_json::{Value, json};
use sha2::Digest;

use crate::demo_server::DemoServer;
use crate::helpers::*;

/// The article the demo data codes, shipped beside it so that every clone checks every quote.
const ARTICLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/moscow-talks-article.txt"
);

const ARTICLE_SOURCE: &str = "src:moscow-peace-negotiations-article";

/// Types that need no evidence (the contract's list); every other type is a fact.
const NO_EVIDENCE_NEEDED: &[&str] = &[
    "source.registered",
    "source.assessed",
    "source.corrected",
    "source.withdrawn",
    "event.corrected",
    "event.retracted",
];

/// The demo lines, parsed, in file order.
fn demo_lines() -> Vec<Value> {
    DEMO_NDJSON
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("every demo line is JSON"))
        .collect()
}

/// A line as a submission: the event without its `stream`.
fn submission(line: &Value) -> (String, Value) {
    let mut event = line.clone();
    let stream = event
        .as_object_mut()
        .unwrap()
        .remove("stream")
        .and_then(|s| s.as_str().map(str::to_string))
        .expect("every demo line names its stream");
    (stream, event)
}

/// The demo server's `Server`, started the one way the tests start it.
async fn start_demo(dir: &Path) -> Server {
    DemoServer::start(dir).await.server
}

/// GET with a key; asserts 200 and returns the body.
async fn get_with(client: &reqwest::Client, base: &str, path: &str, key: &str) -> Value {
    let resp = client
        .get(format!("{base}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "GET {path}");
    resp.json().await.unwrap()
}

/// Every record of the log, in order.
async fn all_records(client: &reqwest::Client, base: &str, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut from = 1;
    loop {
        let page = get_with(
            client,
            base,
            &format!("/events?from={from}&limit=1000"),
            key,
        )
        .await;
        out.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next"].as_u64() {
            Some(n) => from = n,
            None => return out,
        }
    }
}

/// The client-chosen part of a stored record.
fn content(record: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for key in [
        "id",
        "stream",
        "type",
        "schema_version",
        "occurred",
        "process",
        "data",
        "evidence",
        "meta",
    ] {
        if let Some(v) = record.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    Value::Object(out)
}

#[test]
fn the_compiled_in_demo_data_is_the_example_file() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/moscow-talks.ndjson");
    assert_eq!(std::fs::read_to_string(path).unwrap(), DEMO_NDJSON);
    assert!(demo_lines().len() > 50);
}

#[tokio::test]
async fn demo_start_loads_every_line_in_order_and_mints_a_key_that_reads_and_appends() {
    let dir = tempfile::tempdir().unwrap();
    let lines = demo_lines();
    let server = start_demo(dir.path()).await;
    assert_eq!(server.demo_loaded, lines.len() as u64);
    let key = server.demo_key.clone().expect("a demo key");
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();

    let head = get_with(&client, &base, "/log", &key).await;
    assert_eq!(head["seq"], lines.len() as u64);
    let records = all_records(&client, &base, &key).await;
    assert_eq!(records.len(), lines.len());
    for (i, (line, rec)) in lines.iter().zip(&records).enumerate() {
        assert_eq!(rec["seq"], i as u64 + 1);
        assert_eq!(rec["id"], line["id"], "line {}", i + 1);
        assert_eq!(rec["stream"], line["stream"], "line {}", i + 1);
        assert_eq!(rec["data"], line["data"], "line {}", i + 1);
        assert_eq!(rec["recorded_by"], "demo-loader");
    }

    // The key appends too (recorded as the `demo` principal).
    let event = json!({
        "type": "statement.made",
        "occurred": {"start": "2026-01-22", "precision": "day"},
        "data": {"statement_id": "statement:demo-test", "speaker": "actor:witkoff",
                 "content": "The peace negotiations are now close to the final stage."},
        "evidence": [{"source": ARTICLE_SOURCE, "relation": "quotes",
                      "quote": "the peace negotiations are now close to the final stage"}]
    });
    let resp = client
        .post(format!("{base}/streams/process%2Fdemo-test/events"))
        .bearer_auth(&key)
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["events"][0]["seq"], lines.len() as u64 + 1);
    let id = body["events"][0]["id"].as_str().unwrap();
    let stored = get_with(&client, &base, &format!("/events/{id}"), &key).await;
    assert_eq!(stored["recorded_by"], "demo");
    // Without a key, nothing is readable.
    let anon = client.get(format!("{base}/log")).send().await.unwrap();
    assert_eq!(anon.status(), 401);
    server.stop().await;
}

#[tokio::test]
async fn demo_start_on_a_folder_that_holds_records_loads_nothing_and_mints_a_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let lines = demo_lines().len() as u64;
    let first = start_demo(dir.path()).await;
    let old_key = first.demo_key.clone().unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://{}", first.addr());
    let head = get_with(&client, &base, "/log", &old_key).await;
    assert_eq!(head["seq"], lines);
    first.stop().await;

    let second = start_demo(dir.path()).await;
    assert_eq!(second.demo_loaded, 0);
    let new_key = second.demo_key.clone().unwrap();
    assert_ne!(new_key, old_key);
    let base = format!("http://{}", second.addr());
    // Same head, same hash: nothing was loaded again.
    assert_eq!(get_with(&client, &base, "/log", &new_key).await, head);
    // The first process's key was valid for that process only.
    let stale = client
        .get(format!("{base}/log"))
        .bearer_auth(&old_key)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 401);
    second.stop().await;
}

#[tokio::test]
async fn every_demo_line_is_accepted_through_the_api_in_order_and_builds_the_demo_log() {
    let app = spawn_app().await;
    let lines = demo_lines();
    for (i, line) in lines.iter().enumerate() {
        let (stream, event) = submission(line);
        let resp = app.append(&stream, &event).await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 201, "line {}: {body}", i + 1);
        assert_eq!(body["events"][0]["seq"], i as u64 + 1, "line {}", i + 1);
        assert_eq!(body["events"][0]["id"], line["id"], "line {}", i + 1);
    }
    let posted = all_records(&app.client, &app.base, &app.keys.read).await;

    // The same log as `--demo` builds: record for record, the same content.
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo(dir.path()).await;
    let key = demo.demo_key.clone().unwrap();
    let loaded = all_records(&app.client, &format!("http://{}", demo.addr()), &key).await;
    assert_eq!(posted.len(), loaded.len());
    for (p, l) in posted.iter().zip(&loaded) {
        assert_eq!(content(p), content(l));
        assert_eq!(p["version"], l["version"]);
    }
    demo.stop().await;
}

#[test]
fn every_demo_fact_cites_a_registered_source_and_quotes_the_article_verbatim() {
    let lines = demo_lines();
    // A missing article is a failure, never a reason to check less.
    let article = std::fs::read_to_string(ARTICLE)
        .unwrap_or_else(|e| panic!("the demo's article {ARTICLE} is not readable: {e}"));
    let mut registered: HashSet<String> = HashSet::new();
    let mut facts = 0;
    let mut quotes = 0;
    for (i, line) in lines.iter().enumerate() {
        let at = format!("line {}", i + 1);
        let event_type = line["type"].as_str().unwrap();
        let evidence = line["evidence"].as_array().unwrap();
        if !NO_EVIDENCE_NEEDED.contains(&event_type) {
            facts += 1;
            assert!(
                !evidence.is_empty(),
                "{at}: a {event_type} without evidence"
            );
        }
        for item in evidence {
            let source = item["source"].as_str().unwrap();
            assert!(
                registered.contains(source),
                "{at}: cites {source}, not registered before"
            );
            if item["relation"] == "quotes" {
                assert!(
                    item["quote"].as_str().is_some_and(|q| !q.is_empty()),
                    "{at}: a `quotes` item without its quote"
                );
            }
            let Some(quote) = item["quote"].as_str() else {
                continue;
            };
            quotes += 1;
            assert!(
                article.contains(quote),
                "{at}: not verbatim in the article: {quote:?}"
            );
            // "line N ..." locators point at the article line holding the quote.
            if let Some(n) = item["locator"]
                .as_str()
                .and_then(|l| l.strip_prefix("line "))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|n| n.parse::<usize>().ok())
            {
                let article_line = article.lines().nth(n - 1).unwrap_or_default();
                assert!(
                    article_line.contains(quote),
                    "{at}: locator line {n} does not hold {quote:?}"
                );
            }
        }
        if event_type == "source.registered" {
            registered.insert(line["data"]["source_id"].as_str().unwrap().to_string());
        }
    }
    assert!(facts > 40, "{facts} facts");
    assert!(registered.contains(ARTICLE_SOURCE));
    assert!(quotes > 50, "{quotes} quotes checked");
    // The registered content hash is the article's.
    let source = lines
        .iter()
        .find(|l| l["type"] == "source.registered" && l["data"]["source_id"] == ARTICLE_SOURCE)
        .unwrap();
    let digest = hex::encode(sha2::Sha256::digest(article.as_bytes()));
    assert_eq!(source["data"]["content_hash"], format!("sha256:{digest}"));
}

#[tokio::test]
async fn the_demo_log_holds_the_facts_the_article_reports() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_demo(dir.path()).await;
    let key = server.demo_key.clone().unwrap();
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();
    let of_type = |t: &'static str| {
        let (client, base, key) = (client.clone(), base.clone(), key.clone());
        async move {
            let page = get_with(
                &client,
                &base,
                &format!("/events?type={t}&limit=1000"),
                &key,
            )
            .await;
            page["events"].as_array().unwrap().clone()
        }
    };
    let inferred = |e: &Value, pointer: &str| {
        e["meta"]["inferred"]
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p == pointer))
    };

    // Putin met the US delegation led by Witkoff in Moscow on 22 January 2026 (year inferred).
    let meetings = of_type("meeting.held").await;
    let moscow = meetings
        .iter()
        .find(|e| {
            e["data"]["location"]["name"] == "Moscow" && e["occurred"]["start"] == "2026-01-22"
        })
        .expect("a meeting held in Moscow on 2026-01-22");
    let people: Vec<&Value> = moscow["data"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| [&p["actor"], &p["led_by"]])
        .collect();
    assert!(people.iter().any(|a| **a == "actor:witkoff"), "{moscow}");
    assert!(people.iter().any(|a| **a == "actor:putin"), "{moscow}");
    assert!(inferred(moscow, "/occurred/start"), "the year is inferred");

    // Trilateral talks in the UAE from 23 January, with a security and an economic track.
    let talks = of_type("talks.scheduled").await;
    let uae = talks
        .iter()
        .find(|e| e["data"]["planned"]["start"] == "2026-01-23")
        .expect("talks scheduled from 2026-01-23");
    assert_eq!(uae["data"]["location"]["name"], "United Arab Emirates");
    assert!(
        uae["data"]["tracks"].as_array().unwrap().len() >= 2,
        "{uae}"
    );
    assert!(inferred(uae, "/data/planned/start"), "the year is inferred");

    // The 27-point plan.
    let plans = of_type("plan.proposed").await;
    assert!(plans.iter().any(|e| e["data"]["points"] == 27), "{plans:?}");

    // Putin: the territorial issue remains unresolved.
    let statuses = of_type("issue.status_changed").await;
    assert!(
        statuses
            .iter()
            .any(|e| e["data"]["issue_id"] == "issue:territory"
                && e["data"]["status"] == "unresolved"
                && e["data"]["assessed_by"] == "actor:putin"),
        "{statuses:?}"
    );

    // Russia's demand on Donetsk, reported through Russian media, and Zelenskiy's refusal.
    let positions = of_type("position.stated").await;
    let demand = positions
        .iter()
        .find(|e| {
            e["data"]["holder"] == "actor:russia"
                && e["data"]["stance"] == "demand"
                && e["evidence"].as_array().unwrap().iter().any(|ev| {
                    ev["attribution"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == "org:russian-media"))
                })
        })
        .expect("a demand by Russia attributed through org:russian-media");
    let reject = positions
        .iter()
        .find(|e| e["data"]["holder"] == "actor:zelenskiy" && e["data"]["stance"] == "reject")
        .expect("a rejection by Zelenskiy");
    assert_eq!(reject["data"]["responds_to"], demand["data"]["position_id"]);
    assert_eq!(reject["data"]["issue"], demand["data"]["issue"]);
    server.stop().await;
}

/// Kills the child when dropped, so a failing test leaves no server behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `annals serve --demo --data-dir DATA --listen 127.0.0.1:0` with `ANNALS_LOG` set to
/// `log_filter` (or unset) and reads its first two stdout lines. Returns the process and the
/// parsed address and key, or, when the lines are not as documented, what it printed on stderr.
async fn serve_demo(
    data: &Path,
    log_filter: Option<&str>,
) -> Result<(KillOnDrop, String, String), String> {
    serve_demo_of(data, log_filter, &[]).await
}

/// The same, with the data set names given to `--demo` (none: the default).
pub async fn serve_demo_of(
    data: &Path,
    log_filter: Option<&str>,
    data_sets: &[&str],
) -> Result<(KillOnDrop, String, String), String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_annals"));
    command
        .args(["serve", "--demo"])
        .args(data_sets)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .current_dir(data.parent().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match log_filter {
        Some(filter) => command.env("ANNALS_LOG", filter),
        None => command.env_remove("ANNALS_LOG"),
    };
    let mut child = KillOnDrop(command.spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let stderr = child.0.stderr.take().unwrap();
    // Drained all along so the server never blocks on a full pipe.
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let (first, second) = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let (mut first, mut second) = (String::new(), String::new());
        let _ = reader.read_line(&mut first);
        let _ = reader.read_line(&mut second);
        (first, second)
    })
    .await
    .unwrap();
    let parsed = first
        .trim_end()
        .strip_prefix("listening on ")
        .zip(second.trim_end().strip_prefix("demo key: "));
    match parsed {
        Some((base, key)) => Ok((child, base.to_string(), key.to_string())),
        None => {
            drop(child);
            let stderr = stderr.join().unwrap_or_default();
            Err(format!(
                "stdout lines {first:?}, {second:?}; stderr:\n{stderr}"
            ))
        }
    }
}

#[tokio::test]
async fn serve_demo_prints_the_address_then_a_key_that_reads_the_demo_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, base, key) = serve_demo(&data, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    assert!(!key.is_empty());

    let client = reqwest::Client::new();
    let head = get_with(&client, &base, "/log", &key).await;
    assert_eq!(head["seq"], demo_lines().len() as u64);
    assert!(data.exists(), "the store lives in --data-dir");
    child.0.kill().unwrap();
    child.0.wait().unwrap();
}

/// `ANNALS_LOG` is the log filter, not configuration: it must not clobber the `[log]` section.
#[tokio::test]
async fn serve_demo_starts_with_the_annals_log_filter_set() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, base, key) = serve_demo(&data, Some("warn"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let head = get_with(&reqwest::Client::new(), &base, "/log", &key).await;
    assert_eq!(head["seq"], demo_lines().len() as u64);
    child.0.kill().unwrap();
    child.0.wait().unwrap();
}
