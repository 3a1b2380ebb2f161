//! The second example data set (`examples/black-sea-grain.ndjson`, compiled in as
//! `BLACK_SEA_GRAIN_NDJSON`), through HTTP against the real server: it loads alone, into a log
//! that holds the demo (the actors they share stay one entry) and through `annals import`; and
//! its negotiation answers what the coding says, now and as known before each correction,
//! retraction and re-grade. It must never need the demo to make sense on its own.

use std::collections::BTreeSet;

use annals::server::{BLACK_SEA_GRAIN_NDJSON, DEMO_NDJSON, DemoData};
use serde_json::{Value, json};

use crate::demo::serve_demo_of;
use crate::demo_server::DemoServer;
use crate::helpers::*;

const PROCESS: &str = "black-sea-grain-initiative";

/// The lines that register an actor the demo registers too.
const SHARED_ACTORS: [&str; 3] = ["actor:russia", "actor:ukraine", "actor:putin"];

fn lines(ndjson: &str) -> Vec<Value> {
    ndjson
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect()
}

/// The id of the one Black Sea line of `type` whose `data` has `field` = `value`.
fn line_id(kind: &str, field: &str, value: &str) -> String {
    let found: Vec<String> = lines(BLACK_SEA_GRAIN_NDJSON)
        .into_iter()
        .filter(|l| l["type"] == kind && l["data"][field] == value)
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(found.len(), 1, "{kind} {field}={value}: {found:?}");
    found.into_iter().next().unwrap()
}

/// The id of the one Black Sea line of `type`.
fn only_line_of(kind: &str) -> (String, Value) {
    let found: Vec<Value> = lines(BLACK_SEA_GRAIN_NDJSON)
        .into_iter()
        .filter(|l| l["type"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "{kind}");
    (
        found[0]["id"].as_str().unwrap().to_string(),
        found[0].clone(),
    )
}

/// A view once the projections have folded the whole log.
async fn view(s: &DemoServer, path: &str) -> Value {
    let head = s.server.log().head().seq;
    let sep = if path.contains('?') { '&' } else { '?' };
    s.get(&format!("{path}{sep}min_seq={head}")).await
}

async fn seq_of(s: &DemoServer, event_id: &str) -> u64 {
    s.get(&format!("/events/{event_id}")).await["seq"]
        .as_u64()
        .unwrap()
}

fn issue<'a>(negotiation: &'a Value, id: &str) -> &'a Value {
    negotiation["issues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["issue_id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {negotiation}"))
}

fn contested_issues(negotiation: &Value) -> BTreeSet<String> {
    negotiation["contested"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "issue_status")
        .map(|c| c["issue_id"].as_str().unwrap().to_string())
        .collect()
}

fn position_ids(negotiation: &Value) -> BTreeSet<String> {
    negotiation["positions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["positions"].as_array().unwrap().iter())
        .map(|p| p["position_id"].as_str().unwrap().to_string())
        .collect()
}

/// The Initiative's own agreement (not its renewal nor the memorandum).
fn initiative(negotiation: &Value) -> &Value {
    negotiation["agreements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agreement_id"] == "agreement:black-sea-grain-initiative")
        .unwrap_or_else(|| panic!("no Initiative in {negotiation}"))
}

/// Every `actor.registered` record of the log for `actor_id`.
async fn registrations_of(s: &DemoServer, actor_id: &str) -> Vec<Value> {
    let page = s.get("/events?type=actor.registered&limit=1000").await;
    assert!(page["next"].is_null(), "one page holds them all");
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["actor_id"] == actor_id)
        .cloned()
        .collect()
}

#[test]
fn the_compiled_in_data_set_is_the_example_file_and_uses_every_event_type() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/black-sea-grain.ndjson"
    );
    assert_eq!(
        std::fs::read_to_string(path).unwrap(),
        BLACK_SEA_GRAIN_NDJSON
    );
    let types: BTreeSet<String> = lines(BLACK_SEA_GRAIN_NDJSON)
        .iter()
        .map(|l| l["type"].as_str().unwrap().to_string())
        .collect();
    let schemas: BTreeSet<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/events"))
            .unwrap()
            .map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.trim_end_matches(".json").to_string()
            })
            .collect();
    assert_eq!(types, schemas);
}

#[test]
fn the_data_set_quotes_no_one_and_every_line_has_its_id() {
    // Coded from the public record without the documents at hand: no words are claimed as
    // verbatim (examples/black-sea-grain.md says why).
    for line in lines(BLACK_SEA_GRAIN_NDJSON) {
        assert!(line["id"].is_string(), "{line}");
        assert!(line["data"].get("verbatim").is_none(), "{line}");
        for item in line["evidence"].as_array().unwrap() {
            assert!(item.get("quote").is_none(), "{line}");
            assert_ne!(item["relation"], "quotes", "{line}");
        }
    }
}

#[tokio::test]
async fn the_black_sea_data_set_loads_alone_and_registers_the_actors_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let s = DemoServer::start_with(dir.path(), DemoData::BlackSeaGrain).await;
    let expected = lines(BLACK_SEA_GRAIN_NDJSON).len() as u64;
    assert_eq!(s.server.demo_loaded, expected);
    assert_eq!(s.server.log().head().seq, expected);
    let russia = registrations_of(&s, "actor:russia").await;
    assert_eq!(russia.len(), 1);
    assert_eq!(
        russia[0]["id"],
        line_id("actor.registered", "actor_id", "actor:russia")
    );
    let negotiation = view(&s, &format!("/projections/negotiation/{PROCESS}")).await;
    assert_eq!(
        negotiation["parties"],
        json!(["actor:russia", "actor:turkiye", "actor:ukraine", "org:un"])
    );
    // The demo's process is not there.
    let calendar = view(&s, "/projections/calendar?process=ru-ua-peace").await;
    assert_eq!(calendar["meetings"], json!([]), "{calendar}");
    s.server.stop().await;
}

#[tokio::test]
async fn both_data_sets_load_into_one_log_and_each_shared_actor_is_one_entry() {
    let dir = tempfile::tempdir().unwrap();
    let s = DemoServer::start_with(dir.path(), DemoData::All).await;
    let demo = lines(DEMO_NDJSON).len() as u64;
    let black_sea = lines(BLACK_SEA_GRAIN_NDJSON).len() as u64;
    // The lines that register a shared actor again are no-ops: no record, no seq.
    let loaded = demo + black_sea - SHARED_ACTORS.len() as u64;
    assert_eq!(s.server.demo_loaded, loaded);
    assert_eq!(s.server.log().head().seq, loaded);
    let demo_ids: BTreeSet<String> = lines(DEMO_NDJSON)
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect();
    for actor in SHARED_ACTORS {
        let found = registrations_of(&s, actor).await;
        assert_eq!(found.len(), 1, "{actor}: {found:?}");
        assert!(
            demo_ids.contains(found[0]["id"].as_str().unwrap()),
            "{actor} is the demo's registration"
        );
        let black_sea_line = line_id("actor.registered", "actor_id", actor);
        let resp = reqwest::Client::new()
            .get(format!(
                "http://{}/events/{black_sea_line}",
                s.server.addr()
            ))
            .bearer_auth(s.server.demo_key.as_ref().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{actor}: the no-op wrote no record");
    }
    // One entry, as the demo registered it, with the facts of both negotiations.
    let russia = view(&s, "/projections/actors/actor:russia?limit=200").await;
    assert_eq!(russia["name"], "Russia");
    assert_eq!(
        russia["registration"]["aliases"],
        json!(["Russian Federation", "Moscow"])
    );
    let processes: BTreeSet<&str> = russia["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["process"].as_str())
        .collect();
    assert_eq!(
        processes,
        BTreeSet::from(["black-sea-grain-initiative", "ru-ua-peace"]),
        "{russia}"
    );
    // Both negotiations answer from the one log.
    let moscow = view(&s, "/projections/negotiation/ru-ua-peace").await;
    assert_eq!(
        moscow["parties"],
        json!(["actor:russia", "actor:ukraine", "actor:usa"])
    );
    let negotiation = view(&s, &format!("/projections/negotiation/{PROCESS}")).await;
    assert_eq!(
        negotiation["parties"],
        json!(["actor:russia", "actor:turkiye", "actor:ukraine", "org:un"])
    );
    s.server.stop().await;
}

#[tokio::test]
async fn the_march_2023_renewal_is_contested_and_the_deals_end_is_a_change_not_a_contest() {
    let dir = tempfile::tempdir().unwrap();
    let s = DemoServer::start_with(dir.path(), DemoData::All).await;
    let negotiation = view(&s, &format!("/projections/negotiation/{PROCESS}")).await;
    let mediators = negotiation["mediators"].as_array().unwrap();
    assert!(mediators.contains(&json!("org:un")), "{negotiation}");
    assert!(mediators.contains(&json!("actor:turkiye")), "{negotiation}");

    // Russia's 60-day reading (13–18 March) and Ukraine's 120 days (18 March) overlap in world
    // time and disagree.
    let renewal = issue(&negotiation, "issue:bsgi-renewal-march-2023-full-term");
    assert_eq!(renewal["status"], "contested", "{renewal}");
    let by: BTreeSet<(String, String)> = renewal["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["assessed_by"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        by,
        BTreeSet::from([
            ("actor:russia".to_string(), "unresolved".to_string()),
            ("actor:ukraine".to_string(), "agreed".to_string()),
        ])
    );
    // Russia's statuses on the deal's continuation follow world time: suspended, back, ended.
    // Türkiye's earlier "agreed" (May 2023) does not overlap Russia's "dropped" (July 2023).
    let continuation = issue(&negotiation, "issue:bsgi-continuation");
    assert_eq!(continuation["status"], "dropped", "{continuation}");
    assert_eq!(
        contested_issues(&negotiation),
        BTreeSet::from(["issue:bsgi-renewal-march-2023-full-term".to_string()])
    );

    // As known before Ukraine's account was recorded, Russia's reading stands alone.
    let ukraine_account = line_id(
        "issue.status_changed",
        "rationale",
        "Ukraine's infrastructure minister announced that the Initiative was renewed for 120 days.",
    );
    let before = seq_of(&s, &ukraine_account).await - 1;
    let then = view(
        &s,
        &format!("/projections/negotiation/{PROCESS}?known_at={before}"),
    )
    .await;
    let renewal = issue(&then, "issue:bsgi-renewal-march-2023-full-term");
    assert_eq!(renewal["status"], "unresolved", "{renewal}");
    assert!(contested_issues(&then).is_empty(), "{then}");
    s.server.stop().await;
}

#[tokio::test]
async fn the_corrected_term_shows_now_and_the_coded_figure_as_known_before_the_correction() {
    let dir = tempfile::tempdir().unwrap();
    let s = DemoServer::start_with(dir.path(), DemoData::All).await;
    let path = format!("/projections/negotiation/{PROCESS}");
    let now = view(&s, &path).await;
    let provisions = &initiative(&now)["provisions"];
    assert_eq!(provisions[2]["terms"], json!({"term_days": 120}), "{now}");
    assert_eq!(provisions[0]["terms"]["ports"], 3);

    let (fix, _) = only_line_of("event.corrected");
    let before = seq_of(&s, &fix).await - 1;
    let then = view(&s, &format!("{path}?known_at={before}")).await;
    let provisions = &initiative(&then)["provisions"];
    assert_eq!(provisions[2]["terms"], json!({"term_days": 60}), "{then}");
    assert_eq!(provisions[0]["terms"]["ports"], 3);
    s.server.stop().await;
}

#[tokio::test]
async fn the_retracted_duplicate_position_is_gone_after_the_retraction_and_present_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = DemoServer::start_with(dir.path(), DemoData::All).await;
    let duplicate = "position:russia-2023-07-17-quits-grain-deal";
    let kept = "position:russia-2023-07-17-ends-participation";
    let path = format!("/projections/negotiation/{PROCESS}");
    let now = position_ids(&view(&s, &path).await);
    assert!(now.contains(kept), "{now:?}");
    assert!(!now.contains(duplicate), "{now:?}");

    let (retraction, line) = only_line_of("event.retracted");
    assert_eq!(
        line["data"]["target"],
        line_id("position.stated", "position_id", duplicate)
    );
    let before = seq_of(&s, &retraction).await - 1;
    let then = position_ids(&view(&s, &format!("{path}?known_at={before}")).await);
    assert!(then.contains(kept), "{then:?}");
    assert!(then.contains(duplicate), "{then:?}");
    s.server.stop().await;
}

#[tokio::test]
async fn the_source_re_grade_shows_only_from_the_assessment_on() {
    let dir = tempfile::tempdir().unwrap();
    let s = DemoServer::start_with(dir.path(), DemoData::All).await;
    let path = "/projections/sources/src:un-jcc-vessel-movements";
    let now = view(&s, path).await;
    assert_eq!(now["grade"], "A", "{now}");
    let history: Vec<&Value> = now["grade_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["grade"])
        .collect();
    assert_eq!(history, [&json!("F"), &json!("A")]);

    let (assessment, _) = only_line_of("source.assessed");
    let before = seq_of(&s, &assessment).await - 1;
    let then = view(&s, &format!("{path}?known_at={before}")).await;
    assert_eq!(then["grade"], "F", "{then}");
    assert_eq!(then["grade_history"].as_array().unwrap().len(), 1);
    s.server.stop().await;
}

#[tokio::test]
async fn the_interval_dated_opening_of_the_jcc_keeps_its_bounds_in_the_calendar_view() {
    let dir = tempfile::tempdir().unwrap();
    let s = DemoServer::start_with(dir.path(), DemoData::All).await;
    let bounds = json!({
        "precision": "interval",
        "start": "2022-07-22",
        "end": "2022-08-01",
        "not_before": "2022-07-22",
        "not_after": "2022-08-01"
    });
    let id = "meeting:bsgi-2022-07-jcc-inauguration";
    let when_in = |calendar: &Value| {
        calendar["meetings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["meeting_id"] == id)
            .map(|m| m["when"].clone())
    };
    let calendar = view(&s, &format!("/projections/calendar?process={PROCESS}")).await;
    assert_eq!(when_in(&calendar), Some(bounds.clone()), "{calendar}");
    // The meetings are in world-time order: the opening, bounded from 22 July, comes after
    // the talks of 13 July and with the signing of 22 July, before the talks of March 2023.
    let order: Vec<&str> = calendar["meetings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["meeting_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        order.first(),
        Some(&"meeting:bsgi-2022-07-13-istanbul-military-talks")
    );
    assert_eq!(
        order.last(),
        Some(&"meeting:2023-09-04-sochi-putin-erdogan")
    );
    // As of the meeting's own record, the same bounds.
    let seq = seq_of(&s, &line_id("meeting.held", "meeting_id", id)).await;
    let then = view(
        &s,
        &format!("/projections/calendar?process={PROCESS}&known_at={seq}"),
    )
    .await;
    assert_eq!(when_in(&then), Some(bounds), "{then}");
    assert_eq!(
        when_in(
            &view(
                &s,
                &format!(
                    "/projections/calendar?process={PROCESS}&known_at={}",
                    seq - 1
                )
            )
            .await
        ),
        None
    );
    s.server.stop().await;
}

#[test]
fn annals_import_loads_the_file_alone_and_into_a_folder_that_holds_the_demo() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/black-sea-grain.ndjson"
    );
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/moscow-talks.ndjson");
    let n = lines(BLACK_SEA_GRAIN_NDJSON).len();

    let alone = tempfile::tempdir().unwrap();
    let dir = alone.path().to_str().unwrap();
    let (code, out, err) = run_cli(&["import", "--check", "--data-dir", dir, file], None);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run_cli(&["import", "--data-dir", dir, file], None);
    assert_eq!(code, 0, "{err}");
    assert!(
        format!("{out}{err}").contains(&format!("{n} appended, 0 already present")),
        "{out}{err}"
    );

    let both = tempfile::tempdir().unwrap();
    let dir = both.path().to_str().unwrap();
    let (code, _, err) = run_cli(&["import", "--data-dir", dir, demo], None);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run_cli(&["import", "--check", "--data-dir", dir, file], None);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run_cli(&["import", "--data-dir", dir, file], None);
    assert_eq!(code, 0, "{err}");
    // The three shared actors are found already registered.
    let appended = n - SHARED_ACTORS.len();
    assert!(
        format!("{out}{err}").contains(&format!(
            "{appended} appended, {} already present",
            SHARED_ACTORS.len()
        )),
        "{out}{err}"
    );
}

/// The head seq and the processes a `serve --demo <data_sets>` binary serves.
async fn served(data_sets: &[&str]) -> (u64, Value, Value) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, base, key) = serve_demo_of(&data, Some("warn"), data_sets)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let client = reqwest::Client::new();
    let get = |path: String| {
        let (client, key) = (client.clone(), key.clone());
        async move {
            let resp = client.get(path).bearer_auth(key).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.unwrap()
        }
    };
    let head = get(format!("{base}/log")).await["seq"].as_u64().unwrap();
    let moscow = get(format!(
        "{base}/projections/calendar?process=ru-ua-peace&min_seq={head}"
    ))
    .await;
    let black_sea = get(format!(
        "{base}/projections/calendar?process={PROCESS}&min_seq={head}"
    ))
    .await;
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    (
        head,
        moscow["meetings"].clone(),
        black_sea["meetings"].clone(),
    )
}

#[tokio::test]
async fn serve_demo_loads_the_data_set_it_is_given_by_name_and_the_demo_by_default() {
    let demo = lines(DEMO_NDJSON).len() as u64;
    let black_sea = lines(BLACK_SEA_GRAIN_NDJSON).len() as u64;
    let shared = SHARED_ACTORS.len() as u64;

    let (head, moscow, bsgi) = served(&[]).await;
    assert_eq!(head, demo);
    assert_ne!(moscow, json!([]));
    assert_eq!(bsgi, json!([]));

    let (head, moscow, bsgi) = served(&["black-sea-grain"]).await;
    assert_eq!(head, black_sea);
    assert_eq!(moscow, json!([]));
    assert_eq!(bsgi.as_array().unwrap().len(), 5);

    let (head, moscow, bsgi) = served(&["all"]).await;
    assert_eq!(head, demo + black_sea - shared);
    assert_ne!(moscow, json!([]));
    assert_eq!(bsgi.as_array().unwrap().len(), 5);
}

#[test]
fn serve_demo_with_an_unknown_data_set_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, _, err) = run_cli(
        &[
            "serve",
            "--demo",
            "geneva",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("black-sea-grain"), "{err}");
    assert!(!data.exists(), "nothing was opened");
}
