//! Issue 11, item 4, through HTTP against the real server: every closed list lives once in
//! `schemas/vocabularies.json` and the event schemas refer to it; a deployment extends a list
//! in `[vocabulary]` without code, the running validator accepts the added value and the served
//! schemas show it, and a bad entry stops start-up naming its key (exit 2); tone is a list,
//! PLOVER an object, a country alpha-2 or alpha-3, each in schema version 2, while version 1
//! keeps its single forms.

use serde_json::{Value, json};

use crate::helpers::*;

/// The field errors of a 422 validation problem, as (pointer, message).
async fn refused(resp: reqwest::Response) -> Vec<(String, String)> {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 422, "{body}");
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|e| {
            (
                e["pointer"].as_str().unwrap_or_default().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

async fn created(resp: reqwest::Response) -> Value {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

/// A statement of schema version 2 with these tones.
fn toned(n: u64, tone: Value) -> Value {
    let mut ev = statement(n);
    ev["schema_version"] = json!(2);
    ev["data"]["tone"] = tone;
    ev
}

#[tokio::test]
async fn a_list_of_tones_a_plover_object_and_an_alpha_3_country_are_accepted_in_schema_version_2() {
    let app = spawn_app().await;
    app.seed().await;
    let mut ev = toned(1, json!(["constructive", "cautious"]));
    ev["meta"] = json!({"codes": {"cameo": "040", "plover": {
        "event": "CONSULT", "mode": "visit", "context": ["diplomatic", "security"]
    }}});
    created(app.append("process/ru-ua-peace", &ev).await).await;
    // Version 2 still takes the single forms.
    let mut single = toned(2, json!("neutral"));
    single["meta"] = json!({"codes": {"plover": "CONSULT"}});
    created(app.append("process/ru-ua-peace", &single).await).await;
    for country in ["AE", "ARE"] {
        let mut m = meeting(&format!("meeting:abu-dhabi-{}", country.len()));
        m["data"]["location"] = json!({"name": "Abu Dhabi", "country": country});
        created(app.append("process/ru-ua-peace", &m).await).await;
    }
    let mut m = meeting("meeting:abu-dhabi-bad");
    m["data"]["location"] = json!({"name": "Abu Dhabi", "country": "UAE1"});
    let errors = refused(app.append("process/ru-ua-peace", &m).await).await;
    assert!(
        // `location` may be null, so the schema can only point at the location.
        errors.iter().any(|(p, _)| p.starts_with("/data/location")),
        "{errors:?}"
    );
    // An empty list, a repeated tone and a PLOVER object without its event are not tones.
    for (tone, plover) in [
        (json!([]), json!("CONSULT")),
        (json!(["cautious", "cautious"]), json!("CONSULT")),
        (json!(["cautious"]), json!({"mode": "visit"})),
    ] {
        let mut ev = toned(3, tone.clone());
        ev["meta"] = json!({"codes": {"plover": plover}});
        let errors = refused(app.append("process/ru-ua-peace", &ev).await).await;
        assert!(!errors.is_empty(), "{tone} {plover}");
    }
}

#[tokio::test]
async fn a_list_of_tones_or_a_plover_object_in_schema_version_1_is_rejected_with_422_naming_version_2()
 {
    let app = spawn_app().await;
    app.seed().await;
    let (head, _) = app.head().await;
    let mut ev = statement(1);
    ev["data"]["tone"] = json!(["constructive", "cautious"]);
    ev["meta"] = json!({"codes": {"plover": {"event": "CONSULT"}}});
    let errors = refused(app.append("process/ru-ua-peace", &ev).await).await;
    for pointer in ["/data/tone", "/meta/codes/plover"] {
        let (_, message) = errors
            .iter()
            .find(|(p, _)| p == pointer)
            .unwrap_or_else(|| panic!("no error at {pointer}: {errors:?}"));
        assert!(message.contains("\"schema_version\": 2"), "{message}");
    }
    assert_eq!(app.head().await.0, head);
    // The same single tone in version 1, as every client before version 2 wrote it.
    let mut old = statement(2);
    old["data"]["tone"] = json!("cautious");
    old["meta"] = json!({"codes": {"plover": "CONSULT"}});
    let body = created(app.append("process/ru-ua-peace", &old).await).await;
    let id = body["events"][0]["id"].as_str().unwrap();
    assert_eq!(
        app.get_json(&format!("/events/{id}")).await["schema_version"],
        1
    );
}

#[tokio::test]
async fn a_tone_outside_the_vocabulary_is_rejected_until_the_configuration_adds_it() {
    let plain = spawn_app().await;
    plain.seed().await;
    let errors = refused(
        plain
            .append("process/ru-ua-peace", &toned(1, json!(["firm"])))
            .await,
    )
    .await;
    assert!(
        errors.iter().any(|(p, _)| p.starts_with("/data/tone")),
        "{errors:?}"
    );
    let tones = |doc: &Value| -> Vec<String> {
        doc["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{doc}"))
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect()
    };
    let vocab = plain.get_json("/schemas/vocabularies").await;
    assert!(!tones(&vocab["$defs"]["tone"]).contains(&"firm".to_string()));

    let extended = spawn_app_with(|c| {
        c.with(json!({"vocabulary": {"tones": ["firm"], "stances": ["ultimatum"]}}))
            .unwrap()
    })
    .await;
    extended.seed().await;
    register_all(&extended, &["issue:territory"]).await;
    created(
        extended
            .append(
                "process/ru-ua-peace",
                &toned(1, json!(["firm", "cautious"])),
            )
            .await,
    )
    .await;
    let mut single = statement(2);
    single["data"]["tone"] = json!("firm");
    created(extended.append("process/ru-ua-peace", &single).await).await;
    let position = json!({
        "type": "position.stated",
        "occurred": {"start": "2026-01-22", "precision": "day"},
        "process": "ru-ua-peace",
        "data": {"position_id": "position:x", "holder": "actor:russia", "issue": "issue:territory",
                 "stance": "ultimatum", "object": "Withdrawal from the rest of Donbas."},
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    });
    created(extended.append("process/ru-ua-peace", &position).await).await;
    // An addition to one list is not a word of another.
    let mut wrong = statement(3);
    wrong["data"]["tone"] = json!("ultimatum");
    refused(extended.append("process/ru-ua-peace", &wrong).await).await;

    // The served vocabulary and the OpenAPI document show the lists as enforced.
    let vocab = extended.get_json("/schemas/vocabularies").await;
    let served = tones(&vocab["$defs"]["tone"]);
    assert!(served.contains(&"firm".to_string()), "{served:?}");
    assert!(served.contains(&"cautious".to_string()), "{served:?}");
    let openapi = extended.get_json("/openapi.json").await;
    let embedded = &openapi["components"]["schemas"]["schema.vocabularies"]["$defs"]["tone"];
    assert!(tones(embedded).contains(&"firm".to_string()), "{embedded}");
    let plain_openapi = plain.get_json("/openapi.json").await;
    let embedded = &plain_openapi["components"]["schemas"]["schema.vocabularies"]["$defs"]["tone"];
    assert!(!tones(embedded).contains(&"firm".to_string()), "{embedded}");
}

#[tokio::test]
async fn a_vocabulary_entry_that_is_not_a_word_stops_serve_with_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("annals.toml");
    std::fs::write(
        &config,
        "[vocabulary]\nstances = [\"ultimatum\", \"Hard Line\"]\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    // Spawned here rather than with `run_cli`: a server that wrongly starts must fail the
    // test, not hang it.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_annals"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .env("ANNALS_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("annals serve started with a bad vocabulary entry");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let code = status.code().unwrap_or(-1);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("vocabulary.stances[1]"), "{stderr}");
}

#[tokio::test]
async fn the_event_schemas_refer_to_the_vocabularies_and_never_repeat_a_closed_list() {
    let app = spawn_app().await;
    let vocab = app.get_json("/schemas/vocabularies").await;
    let defined: Vec<String> = vocab["$defs"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let list = app.get_json("/schemas").await;
    let mut referred = std::collections::BTreeSet::new();
    for name in list["schemas"].as_array().unwrap() {
        let name = name.as_str().unwrap();
        if name == "vocabularies" {
            continue;
        }
        let doc = app.get_json(&format!("/schemas/{name}")).await;
        let text = doc.to_string();
        for def in &defined {
            if text.contains(&format!("vocabularies.json#/$defs/{def}\"")) {
                referred.insert(def.clone());
            }
        }
        if name.contains('.') {
            assert!(!text.contains("\"enum\""), "{name} repeats a closed list");
        }
    }
    assert_eq!(referred.into_iter().collect::<Vec<_>>(), {
        let mut d = defined.clone();
        d.sort();
        d
    });
}
