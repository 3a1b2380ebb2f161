//! The demo data set through HTTP: the read models answer what the article says.

use serde_json::Value;

use super::DemoServer;

/// A fresh folder with the demo data.
struct Demo {
    server: DemoServer,
    _dir: tempfile::TempDir,
}

impl Demo {
    async fn start() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        Demo {
            server: DemoServer::start(dir.path()).await,
            _dir: dir,
        }
    }

    /// GETs a projection path once the projections have folded the whole demo log.
    async fn get(&self, path: &str) -> Value {
        let head = self.server.server.log().head().seq;
        let sep = if path.contains('?') { '&' } else { '?' };
        let v = self.server.get(&format!("{path}{sep}min_seq={head}")).await;
        assert_eq!(v["as_of_seq"], head, "{path} answers for the head");
        v
    }
}

fn find<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .find(|x| x[key] == value)
        .unwrap_or_else(|| panic!("no {key} = {value} in {list}"))
}

#[tokio::test]
async fn the_demo_negotiation_answers_where_the_moscow_talks_stand_and_on_whose_word() {
    let demo = Demo::start().await;
    let n = demo.get("/projections/negotiation/ru-ua-peace").await;

    // The territorial issue is unresolved, by Putin's account among others.
    let territory = find(&n["issues"], "issue_id", "issue:territory");
    assert_eq!(territory["status"], "unresolved", "{territory}");
    let putin = find(&territory["statuses"], "assessed_by", "actor:putin");
    assert_eq!(putin["status"], "unresolved");

    // Russia demands the rest of Donetsk, through Russian media; Zelenskiy rejects it.
    let russia = n["positions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["holder"] == "actor:russia" && g["issue"] == "issue:territory")
        .unwrap();
    let donetsk = find(
        &russia["positions"],
        "position_id",
        "position:russia-donetsk-withdrawal",
    );
    assert_eq!(donetsk["stance"], "demand");
    assert!(donetsk["object"].as_str().unwrap().contains("Donetsk"));
    assert_eq!(
        donetsk["evidence"]["items"][0]["attribution"],
        serde_json::json!(["org:russian-media", "actor:russia"])
    );
    assert_eq!(
        donetsk["answered_by"],
        serde_json::json!(["position:zelenskiy-rejects-donetsk-withdrawal"])
    );
    let zelenskiy = n["positions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["holder"] == "actor:zelenskiy" && g["issue"] == "issue:territory")
        .unwrap();
    let reject = &zelenskiy["positions"][0];
    assert_eq!(reject["stance"], "reject");
    assert_eq!(reject["responds_to"], "position:russia-donetsk-withdrawal");

    // The 27-point plan is the latest plan.
    assert_eq!(n["latest_plan"]["plan_id"], "plan:27-point");
    assert_eq!(n["latest_plan"]["points"], 27);

    // The last meeting: Moscow, 22 January, about three hours, US delegation led by Witkoff.
    let last = &n["last_meeting"];
    assert_eq!(
        last["meeting_id"],
        "meeting:2026-01-22-moscow-putin-us-delegation"
    );
    assert_eq!(last["location"]["name"], "Moscow");
    assert_eq!(last["when"]["start"], "2026-01-22");
    assert_eq!(last["when"]["precision"], "day");
    assert_eq!(last["duration"], "PT3H");
    assert_eq!(last["duration_approx"], true);
    let delegation = find(&last["participants"], "actor", "actor:us-delegation");
    assert_eq!(delegation["led_by"], "actor:witkoff");

    // The next talks: two days of trilateral talks in the UAE from 23 January, with a
    // security group and economic sessions.
    let next = &n["next_talks"];
    assert_eq!(next["talks_id"], "talks:2026-01-23-uae-trilateral");
    assert_eq!(next["planned"]["start"], "2026-01-23");
    assert_eq!(next["planned"]["duration_days"], 2);
    assert_eq!(next["format"], "trilateral");
    assert_eq!(next["location"]["country"], "AE");
    let tracks: Vec<&str> = next["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        tracks
            .iter()
            .any(|t| t.to_lowercase().contains("security group")),
        "{tracks:?}"
    );
    assert!(
        tracks.iter().any(|t| t.to_lowercase().contains("economic")),
        "{tracks:?}"
    );
    for party in ["actor:russia", "actor:usa", "actor:ukraine"] {
        assert!(
            n["parties"].as_array().unwrap().iter().any(|p| p == party),
            "{party}"
        );
    }
}

#[tokio::test]
async fn the_demo_calendar_and_actor_views_keep_the_recorded_date_precision() {
    let demo = Demo::start().await;
    let putin = demo.get("/projections/actors/actor:putin").await;
    assert_eq!(putin["name"], "Vladimir Putin");
    let alaska = putin["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["data"]["meeting_id"] == "meeting:2025-08-alaska-summit")
        .unwrap();
    // August, never a day in August.
    assert_eq!(alaska["when"]["start"], "2025-08");
    assert_eq!(alaska["when"]["precision"], "month");
    // Ordered by when things occurred: the Alaska summit comes before the Moscow meeting.
    let order: Vec<&str> = putin["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["data"]["meeting_id"].as_str())
        .collect();
    assert_eq!(
        order,
        [
            "meeting:2025-08-alaska-summit",
            "meeting:2026-01-22-moscow-putin-us-delegation"
        ]
    );

    let cal = demo.get("/projections/calendar?valid_at=2026-01-23").await;
    let meetings: Vec<&str> = cal["meetings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["meeting_id"].as_str().unwrap())
        .collect();
    assert_eq!(meetings.first(), Some(&"meeting:2025-08-alaska-summit"));
    assert_eq!(
        meetings.last(),
        Some(&"meeting:2026-01-22-moscow-putin-us-delegation")
    );
    let uae = &cal["talks"][0];
    assert_eq!(
        uae["fate"], "scheduled",
        "on 23 January the UAE talks are still ahead"
    );

    // Before the Moscow meeting, the Moscow meeting was not the last one.
    let before = demo
        .get("/projections/negotiation/ru-ua-peace?valid_at=2026-01-21")
        .await;
    assert_eq!(
        before["last_meeting"]["meeting_id"],
        "meeting:2025-12-28-zelenskiy-trump"
    );
}

#[tokio::test]
async fn the_demo_sources_view_grades_claims_with_the_admiralty_pair() {
    let demo = Demo::start().await;
    let src = demo
        .get("/projections/sources/src:moscow-peace-negotiations-article")
        .await;
    assert_eq!(src["grade"], "F");
    assert_eq!(src["grade_history"][0]["grade"], "F");
    let donetsk = src["claims"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["event_id"] == "019be826-902c-7da8-b384-1fe53ba36740")
        .unwrap();
    assert_eq!(donetsk["items"][0]["admiralty"], "F3");
    assert_eq!(donetsk["items"][0]["originator"], "actor:russia");
    // One article cannot corroborate itself.
    assert_eq!(donetsk["corroborated"], false);
    assert!(src["claims_count"].as_u64().unwrap() > 40);

    let list = demo.get("/projections").await;
    let names: Vec<&str> = list["projections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "negotiation",
            "calendar",
            "actors",
            "sources",
            "audit",
            "processes"
        ]
    );
}
