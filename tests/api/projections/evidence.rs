//! Issue 11, item 7: every fact in every view carries its evidence summary (items with the
//! Admiralty pair as graded at the cut, distinct originators, corroboration by an independent
//! originator) and the JSON pointers the coder inferred; the negotiation view groups positions
//! by side. Through HTTP against the real server, on fresh data and on the demo.

use serde_json::{Value, json};

use super::{DemoServer, appended, view};
use crate::helpers::*;

const PROCESS: &str = "process/evid-talks";

/// Registers a source with a reliability letter.
async fn source(app: &TestApp, id: &str, grade: &str) -> u64 {
    let body = json!({
        "type": "source.registered",
        "data": {"source_id": id, "kind": "wire", "publisher": id,
                 "reliability": {"grade": grade, "basis": "track record"}},
        "evidence": []
    });
    appended(app.append("registry/sources", &body).await)
        .await
        .1
}

/// Registers an actor, citing `src`.
async fn actor(app: &TestApp, src: &str, data: Value) -> u64 {
    let body = json!({
        "type": "actor.registered",
        "data": data,
        "evidence": [{"source": src, "relation": "reports"}]
    });
    appended(app.append("registry/actors", &body).await).await.1
}

/// The fresh log every test here starts from: three outlets (A, B, C) and the actors and the
/// issue the positions name.
async fn registries(app: &TestApp) -> u64 {
    source(app, "src:tass", "A").await;
    source(app, "src:ria", "B").await;
    source(app, "src:reuters", "C").await;
    for (id, name, kind) in [
        ("actor:russia", "Russia", "state"),
        ("actor:ukraine", "Ukraine", "state"),
        ("org:state-media", "State media", "media"),
    ] {
        actor(
            app,
            "src:tass",
            json!({"actor_id": id, "name": name, "kind": kind}),
        )
        .await;
    }
    let issue = json!({
        "type": "issue.defined",
        "data": {"issue_id": "issue:land", "label": "Land"},
        "evidence": [{"source": "src:tass", "relation": "reports"}]
    });
    appended(app.append("registry/issues", &issue).await)
        .await
        .1
}

/// A position of `holder` on `issue:land` with these evidence items.
fn position(id: &str, holder: &str, evidence: Value) -> Value {
    json!({
        "type": "position.stated",
        "occurred": {"start": "2026-01-20", "precision": "day"},
        "process": "evid-talks",
        "data": {"position_id": id, "holder": holder, "issue": "issue:land",
                 "stance": "demand", "object": "the whole region"},
        "evidence": evidence
    })
}

/// The position with this id in a negotiation process view.
fn find_position<'a>(process: &'a Value, id: &str) -> &'a Value {
    process["positions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["positions"].as_array().unwrap())
        .find(|p| p["position_id"] == id)
        .unwrap_or_else(|| panic!("no position {id} in {process}"))
}

async fn negotiation(app: &TestApp, query: &str, min_seq: u64) -> Value {
    view(
        app,
        &format!("/projections/negotiation/evid-talks{query}"),
        min_seq,
    )
    .await
}

#[tokio::test]
async fn a_claim_through_one_originator_via_two_outlets_is_not_corroborated_but_a_second_independent_originator_corroborates_it()
 {
    let app = spawn_app().await;
    registries(&app).await;
    let echo = position(
        "position:echo",
        "actor:russia",
        json!([
            {"source": "src:tass", "relation": "reports", "attribution": ["actor:russia"], "credibility": 3},
            {"source": "src:ria", "relation": "quotes", "quote": "the whole region",
             "attribution": ["org:state-media", "actor:russia"], "credibility": 2}
        ]),
    );
    appended(app.append(PROCESS, &echo).await).await;
    let both = position(
        "position:both",
        "actor:russia",
        json!([
            {"source": "src:ria", "relation": "reports", "attribution": ["actor:russia"], "credibility": 4},
            {"source": "src:reuters", "relation": "reports", "attribution": ["actor:ukraine"], "credibility": 1}
        ]),
    );
    let (_, seq) = appended(app.append(PROCESS, &both).await).await;

    let n = negotiation(&app, "", seq).await;
    let echo = &find_position(&n, "position:echo")["evidence"];
    assert_eq!(echo["originators"], json!(["actor:russia"]), "{echo}");
    assert_eq!(echo["independent_originators"], 1);
    assert_eq!(echo["corroborated"], false);
    // The best pair among the items: A3 (tass) beats B2 (ria), letter first.
    assert_eq!(echo["admiralty"], "A3");
    let items = echo["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["source"], "src:ria");
    assert_eq!(items[1]["originator"], "actor:russia");
    assert_eq!(items[1]["quote"], "the whole region");
    assert_eq!(items[1]["grade"], "B");
    assert_eq!(items[1]["admiralty"], "B2");
    assert_eq!(items[1]["withdrawn"], false);
    assert!(
        items[0].get("quote").is_none(),
        "a quote only when present: {items:?}"
    );

    let both = &find_position(&n, "position:both")["evidence"];
    assert_eq!(
        both["originators"],
        json!(["actor:russia", "actor:ukraine"])
    );
    assert_eq!(both["independent_originators"], 2);
    assert_eq!(both["corroborated"], true);
    assert_eq!(
        both["admiralty"], "B4",
        "B4 beats C1: the letter comes first"
    );

    // The sources view judges a claim by the same rule.
    let ria = view(&app, "/projections/sources/src:ria", seq).await;
    let claim = |id: &str| {
        let position = find_position(&n, id);
        ria["claims"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["event_id"] == position["event_id"])
            .unwrap()
            .clone()
    };
    assert_eq!(claim("position:echo")["corroborated"], false);
    assert_eq!(claim("position:echo")["evidence"], *echo);
    assert_eq!(claim("position:both")["corroborated"], true);
    assert_eq!(
        claim("position:both")["independent_originators"],
        json!(["actor:ukraine"])
    );
    assert_eq!(ria["corroborated_count"], 1);
}

#[tokio::test]
async fn a_regrade_changes_the_admiralty_pair_as_known_after_it_but_not_before() {
    let app = spawn_app().await;
    registries(&app).await;
    let claim = position(
        "position:graded",
        "actor:russia",
        json!([{"source": "src:ria", "relation": "reports", "credibility": 2}]),
    );
    let (_, before) = appended(app.append(PROCESS, &claim).await).await;
    let regrade = json!({
        "type": "source.assessed",
        "data": {"source_id": "src:ria", "grade": "D", "basis": "three stories pulled this month"},
        "evidence": []
    });
    let (_, after) = appended(app.append("registry/sources", &regrade).await).await;

    let now = negotiation(&app, "", after).await;
    let ev = &find_position(&now, "position:graded")["evidence"];
    assert_eq!(ev["items"][0]["grade"], "D");
    assert_eq!(ev["items"][0]["admiralty"], "D2");
    assert_eq!(ev["admiralty"], "D2");

    let then = negotiation(&app, &format!("?known_at={before}"), after).await;
    let ev = &find_position(&then, "position:graded")["evidence"];
    assert_eq!(ev["items"][0]["grade"], "B");
    assert_eq!(ev["admiralty"], "B2");
}

#[tokio::test]
async fn a_withdrawn_source_drops_out_of_the_originators_and_the_best_pair_from_its_withdrawal_on()
{
    let app = spawn_app().await;
    registries(&app).await;
    let claim = position(
        "position:two-sources",
        "actor:russia",
        json!([
            {"source": "src:tass", "relation": "reports", "attribution": ["actor:russia"], "credibility": 1},
            {"source": "src:reuters", "relation": "reports", "attribution": ["actor:ukraine"]}
        ]),
    );
    let (_, before) = appended(app.append(PROCESS, &claim).await).await;
    let withdrawal = json!({
        "type": "source.withdrawn",
        "data": {"source_id": "src:tass", "text": "the story was pulled"},
        "evidence": []
    });
    let (_, after) = appended(app.append("registry/sources", &withdrawal).await).await;

    let now = negotiation(&app, "", after).await;
    let ev = &find_position(&now, "position:two-sources")["evidence"];
    assert_eq!(ev["items"].as_array().unwrap().len(), 2, "still listed");
    assert_eq!(ev["items"][0]["withdrawn"], true);
    assert_eq!(ev["originators"], json!(["actor:ukraine"]));
    assert_eq!(ev["independent_originators"], 1);
    assert_eq!(ev["corroborated"], false);
    // Reuters is graded C and states no credibility (6).
    assert_eq!(ev["admiralty"], "C6");

    let then = negotiation(&app, &format!("?known_at={before}"), after).await;
    let ev = &find_position(&then, "position:two-sources")["evidence"];
    assert_eq!(ev["items"][0]["withdrawn"], false);
    assert_eq!(ev["corroborated"], true);
    assert_eq!(ev["admiralty"], "A1");
}

#[tokio::test]
async fn a_correction_drops_the_inferred_pointers_it_rewrites_and_adds_those_it_infers() {
    let app = spawn_app().await;
    registries(&app).await;
    let mut claim = position(
        "position:inferred",
        "actor:russia",
        json!([{"source": "src:tass", "relation": "reports"}]),
    );
    claim["meta"] = json!({"inferred": ["/occurred/start", "/data/object"]});
    let (id, before) = appended(app.append(PROCESS, &claim).await).await;
    let fix = json!({
        "type": "event.corrected",
        "data": {"target": id, "reason": "the article names it",
                 "patch": [
                     {"op": "replace", "path": "/object", "value": "the named region"},
                     {"op": "add", "path": "/target", "value": "actor:ukraine"}
                 ]},
        "evidence": [],
        "meta": {"inferred": ["/data/patch/1/value"]}
    });
    let (_, after) = appended(app.append(PROCESS, &fix).await).await;

    let now = negotiation(&app, "", after).await;
    assert_eq!(
        find_position(&now, "position:inferred")["inferred"],
        json!(["/occurred/start", "/data/target"])
    );
    let then = negotiation(&app, &format!("?known_at={before}"), after).await;
    assert_eq!(
        find_position(&then, "position:inferred")["inferred"],
        json!(["/occurred/start", "/data/object"])
    );
}

/// Every object with an `event_id` under `v`, with the path that leads to it.
fn fact_objects<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(o) => {
            if o.get("event_id").is_some_and(Value::is_string) {
                out.push((path.clone(), v));
            }
            for (key, child) in o {
                // A fact's own payload and evidence are what it says, not facts of the view.
                if key != "data" && key != "evidence" {
                    fact_objects(child, format!("{path}/{key}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                fact_objects(child, format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Whether `fact` has both keys, in the contract's shape.
fn check_fact(where_: &str, fact: &Value) {
    let ev = &fact["evidence"];
    for key in [
        "items",
        "originators",
        "admiralty",
        "corroborated",
        "independent_originators",
    ] {
        assert!(
            ev.get(key).is_some(),
            "{where_}: evidence has no {key}: {fact}"
        );
    }
    assert!(
        ev["items"].is_array() && ev["originators"].is_array(),
        "{where_}"
    );
    assert!(fact["inferred"].is_array(), "{where_}: no inferred: {fact}");
    for item in ev["items"].as_array().unwrap() {
        for key in [
            "source",
            "relation",
            "attribution",
            "originator",
            "credibility",
            "grade",
            "admiralty",
            "withdrawn",
        ] {
            assert!(
                item.get(key).is_some(),
                "{where_}: item has no {key}: {item}"
            );
        }
    }
}

/// The demo with one correction and one retraction, so the audit view lists entries.
async fn demo_with_changes(demo: &DemoServer) -> u64 {
    let head = demo.server.log().head().seq;
    let n = demo
        .get(&format!(
            "/projections/negotiation/ru-ua-peace?min_seq={head}"
        ))
        .await;
    let target = n["positions"][0]["positions"][0]["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    demo.append(
        "process/ru-ua-peace",
        &json!({
            "type": "event.corrected",
            "data": {"target": target, "reason": "wording",
                     "patch": [{"op": "replace", "path": "/object", "value": "reworded"}]},
            "evidence": []
        }),
    )
    .await;
    demo.server.log().head().seq
}

#[tokio::test]
async fn every_fact_object_in_every_view_carries_its_evidence_and_what_was_inferred() {
    let dir = tempfile::tempdir().unwrap();
    let demo = DemoServer::start(dir.path()).await;
    let head = demo_with_changes(&demo).await;
    let get = |path: String| {
        let demo = &demo;
        async move {
            let sep = if path.contains('?') { '&' } else { '?' };
            demo.get(&format!("{path}{sep}min_seq={head}")).await
        }
    };
    let mut paths: Vec<String> = [
        "/projections/negotiation",
        "/projections/negotiation/ru-ua-peace?group=side",
        "/projections/calendar",
        "/projections/sources",
        "/projections/audit",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    let actors = get("/projections/actors".into()).await;
    for a in actors["actors"].as_array().unwrap() {
        let id = a["actor_id"].as_str().unwrap();
        paths.push(format!("/projections/actors/{id}?limit=1000"));
    }
    let sources = get("/projections/sources".into()).await;
    for s in sources["sources"].as_array().unwrap() {
        paths.push(format!(
            "/projections/sources/{}",
            s["source_id"].as_str().unwrap()
        ));
    }
    let mut seen = 0;
    for path in &paths {
        let body = get(path.clone()).await;
        let mut facts = Vec::new();
        fact_objects(&body, String::new(), &mut facts);
        for (at, fact) in &facts {
            check_fact(&format!("{path} {at}"), fact);
        }
        seen += facts.len();
    }
    // Each kind of view showed facts: the walk is not vacuous.
    assert!(seen > 100, "{seen} fact objects");
    let audit = get("/projections/audit".into()).await;
    assert!(!audit["changes"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_demo_shows_the_year_the_coder_inferred() {
    let dir = tempfile::tempdir().unwrap();
    let demo = DemoServer::start(dir.path()).await;
    let head = demo.server.log().head().seq;
    let calendar = demo
        .get(&format!("/projections/calendar?min_seq={head}"))
        .await;
    let meeting = calendar["meetings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["meeting_id"] == "meeting:2025-12-28-zelenskiy-trump")
        .unwrap();
    assert!(
        meeting["inferred"]
            .as_array()
            .unwrap()
            .contains(&json!("/occurred/start")),
        "the article gives 28 December, the year is inferred: {}",
        meeting["inferred"]
    );
    // A fact the coder inferred nothing of has an empty list, never a null.
    let trump = demo
        .get(&format!("/projections/actors/actor:trump?min_seq={head}"))
        .await;
    assert!(
        trump["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["inferred"].is_array())
    );
    let sources = demo
        .get(&format!(
            "/projections/sources/src:moscow-peace-negotiations-article?min_seq={head}"
        ))
        .await;
    assert!(
        sources["claims"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["inferred"] == json!([]))
    );
}

/// The holder entry of `holder` under `side` in `positions_by_side`.
fn under_side<'a>(by_side: &'a Value, side: &str, holder: &str) -> &'a Value {
    let group = by_side
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["side"] == side)
        .unwrap_or_else(|| panic!("no side {side} in {by_side}"));
    group["holders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["holder"] == holder)
        .unwrap_or_else(|| panic!("{holder} is not under {side}: {group}"))
}

#[tokio::test]
async fn grouping_by_side_puts_a_person_under_the_state_they_represent() {
    let dir = tempfile::tempdir().unwrap();
    let demo = DemoServer::start(dir.path()).await;
    let head = demo.server.log().head().seq;
    let n = demo
        .get(&format!(
            "/projections/negotiation/ru-ua-peace?group=side&min_seq={head}"
        ))
        .await;
    let by_side = &n["positions_by_side"];
    // Zelenskiy is President of Ukraine: his positions sit under Ukraine, with Ukraine's own.
    let zelenskiy = under_side(by_side, "actor:ukraine", "actor:zelenskiy");
    assert_eq!(
        zelenskiy["via"],
        json!(["actor:zelenskiy", "actor:ukraine"])
    );
    assert!(zelenskiy["issues"][0]["positions"][0]["evidence"].is_object());
    under_side(by_side, "actor:ukraine", "actor:ukraine");
    let putin = under_side(by_side, "actor:russia", "actor:putin");
    assert_eq!(putin["via"], json!(["actor:putin", "actor:russia"]));
    let group = by_side
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["side"] == "actor:ukraine")
        .unwrap();
    assert_eq!(group["name"], "Ukraine");
    // Without `group`, the view is as before.
    let plain = demo
        .get(&format!(
            "/projections/negotiation/ru-ua-peace?min_seq={head}"
        ))
        .await;
    assert!(plain.get("positions_by_side").is_none());
    assert_eq!(plain["positions"], n["positions"]);
}

#[tokio::test]
async fn a_side_follows_roles_in_force_when_the_position_was_taken_and_an_actor_of_nobody_is_its_own_side()
 {
    let app = spawn_app().await;
    registries(&app).await;
    actor(
        &app,
        "src:tass",
        json!({"actor_id": "actor:envoy", "name": "Envoy", "kind": "person",
               "roles": [{"role": "envoy", "of": "actor:ukraine", "to": "2025-12"},
                         {"role": "envoy", "of": "actor:russia", "from": "2026-01"}]}),
    )
    .await;
    actor(
        &app,
        "src:tass",
        json!({"actor_id": "actor:member", "name": "Member", "kind": "person"}),
    )
    .await;
    actor(
        &app,
        "src:tass",
        json!({"actor_id": "actor:team", "name": "Team", "kind": "delegation",
               "members": ["actor:member"]}),
    )
    .await;
    actor(
        &app,
        "src:tass",
        json!({"actor_id": "actor:loner", "name": "Loner", "kind": "person"}),
    )
    .await;
    let ev = json!([{"source": "src:tass", "relation": "reports"}]);
    let mut early = position("position:envoy-early", "actor:envoy", ev.clone());
    early["occurred"] = json!({"start": "2025-11-02", "precision": "day"});
    appended(app.append(PROCESS, &early).await).await;
    appended(
        app.append(
            PROCESS,
            &position("position:envoy-late", "actor:envoy", ev.clone()),
        )
        .await,
    )
    .await;
    appended(
        app.append(
            PROCESS,
            &position("position:member", "actor:member", ev.clone()),
        )
        .await,
    )
    .await;
    let (_, last) = appended(
        app.append(PROCESS, &position("position:loner", "actor:loner", ev))
            .await,
    )
    .await;

    let n = negotiation(&app, "?group=side", last).await;
    let by_side = &n["positions_by_side"];
    let early = under_side(by_side, "actor:ukraine", "actor:envoy");
    assert_eq!(
        early["issues"][0]["positions"][0]["position_id"],
        "position:envoy-early"
    );
    let late = under_side(by_side, "actor:russia", "actor:envoy");
    assert_eq!(
        late["issues"][0]["positions"][0]["position_id"],
        "position:envoy-late"
    );
    // A member of a delegation that represents nobody sits under the delegation.
    let member = under_side(by_side, "actor:team", "actor:member");
    assert_eq!(member["via"], json!(["actor:member", "actor:team"]));
    let loner = under_side(by_side, "actor:loner", "actor:loner");
    assert_eq!(loner["via"], json!(["actor:loner"]));

    for path in [
        "/projections/negotiation/evid-talks?group=colour",
        "/projections/calendar?group=colour",
    ] {
        assert_eq!(app.get(path).await.status(), 400, "{path}");
    }
    // Another view ignores `side`.
    assert_eq!(
        app.get("/projections/calendar?group=side").await.status(),
        200
    );
}

#[tokio::test]
async fn an_empty_attribution_reads_as_none_the_outlet_itself_is_the_originator() {
    let app = spawn_app().await;
    registries(&app).await;
    let empty = position(
        "position:empty",
        "actor:russia",
        json!([{"source": "src:tass", "relation": "reports", "attribution": []}]),
    );
    appended(app.append(PROCESS, &empty).await).await;
    let none = position(
        "position:none",
        "actor:russia",
        json!([{"source": "src:tass", "relation": "reports"}]),
    );
    let (_, seq) = appended(app.append(PROCESS, &none).await).await;

    let n = negotiation(&app, "", seq).await;
    let empty = &find_position(&n, "position:empty")["evidence"];
    let none = &find_position(&n, "position:none")["evidence"];
    assert_eq!(empty["originators"], json!(["src:tass"]), "{empty}");
    assert_eq!(empty["items"][0]["originator"], "src:tass", "{empty}");
    for field in [
        "originators",
        "independent_originators",
        "corroborated",
        "admiralty",
    ] {
        assert_eq!(empty[field], none[field], "{field}: {empty} against {none}");
    }
    assert_eq!(
        empty["items"][0]["originator"], none["items"][0]["originator"],
        "{empty} against {none}"
    );
}

#[tokio::test]
async fn an_actor_update_of_roles_or_members_moves_positions_to_their_side_from_its_seq_on() {
    let app = spawn_app().await;
    registries(&app).await;
    for (id, kind) in [
        ("actor:loner", "person"),
        ("actor:member", "person"),
        ("actor:team", "delegation"),
    ] {
        actor(
            &app,
            "src:tass",
            json!({"actor_id": id, "name": id, "kind": kind}),
        )
        .await;
    }
    let ev = json!([{"source": "src:tass", "relation": "reports"}]);
    appended(
        app.append(
            PROCESS,
            &position("position:loner", "actor:loner", ev.clone()),
        )
        .await,
    )
    .await;
    let (_, before) = appended(
        app.append(
            PROCESS,
            &position("position:member", "actor:member", ev.clone()),
        )
        .await,
    )
    .await;
    for data in [
        json!({"actor_id": "actor:loner",
               "roles": [{"role": "envoy", "of": "actor:russia", "from": "2025-01"}]}),
        json!({"actor_id": "actor:team", "members": ["actor:member"]}),
    ] {
        let update = json!({"type": "actor.updated", "data": data, "evidence": ev.clone()});
        appended(app.append("registry/actors", &update).await).await;
    }
    let (now_seq, _) = app.head().await;

    let now = negotiation(&app, "?group=side", now_seq).await;
    let by_side = &now["positions_by_side"];
    let loner = under_side(by_side, "actor:russia", "actor:loner");
    assert_eq!(
        loner["issues"][0]["positions"][0]["position_id"],
        "position:loner"
    );
    let member = under_side(by_side, "actor:team", "actor:member");
    assert_eq!(member["via"], json!(["actor:member", "actor:team"]));

    // As known before the updates, each is its own side.
    let then = negotiation(&app, &format!("?group=side&known_at={before}"), now_seq).await;
    let by_side = &then["positions_by_side"];
    assert_eq!(
        under_side(by_side, "actor:loner", "actor:loner")["via"],
        json!(["actor:loner"])
    );
    assert_eq!(
        under_side(by_side, "actor:member", "actor:member")["via"],
        json!(["actor:member"])
    );
}
