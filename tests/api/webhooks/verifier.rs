//! The official Standard Webhooks verifier (PyPI `standardwebhooks`) accepts every delivery of
//! a run, and rejects a tampered body. The package is installed on first use into
//! `<target>/pydeps` with pip (PyPI is the only network this needs).

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;

use super::support::*;

/// `standardwebhooks`, installed under `<target>/pydeps` on first use.
fn ensure_verifier() -> PathBuf {
    crate::helpers::python_package("pydeps", "standardwebhooks.webhooks", "standardwebhooks")
}

const SCRIPT: &str = r#"
import json, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
run = json.load(open(sys.argv[1]))
verified = 0
for d in run["deliveries"]:
    wh = Webhook(d["secret"])
    wh.verify(d["body"], d["headers"])
    verified += 1
    tampered = d["body"].replace('"seq":', '"seq": 1', 1)
    assert tampered != d["body"]
    try:
        wh.verify(tampered, d["headers"])
    except WebhookVerificationError:
        pass
    else:
        print("a tampered body was accepted", file=sys.stderr)
        sys.exit(3)
print(verified)
"#;

#[tokio::test]
async fn the_official_standard_webhooks_verifier_accepts_every_delivery_and_rejects_a_tampered_body()
 {
    let pythonpath = tokio::task::spawn_blocking(ensure_verifier).await.unwrap();
    let app = app_with(json!({"secret_overlap_secs": 3600})).await;
    let ordered = Receiver::ok().await;
    let parallel = Receiver::ok().await;
    let (id_o, secret_o) = subscribe(&app, json!({"url": ordered.url(), "from_seq": 1})).await;
    let (_, secret_p) = subscribe(
        &app,
        json!({"url": parallel.url(), "mode": "parallel", "from_seq": 1}),
    )
    .await;
    let first = statements(&app, 1, 5).await;
    wait_delivered(&ordered, &first).await;
    // A rotation: later deliveries carry two signatures; the verifier takes either.
    let (status, v) = post(
        &app,
        &format!("/subscriptions/{id_o}/rotate-secret"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let rotated = v["secret"].as_str().unwrap().to_string();
    let second = statements(&app, 6, 5).await;
    wait_delivered(&ordered, &second).await;
    wait_delivered(&parallel, &[first.clone(), second.clone()].concat()).await;

    let mut deliveries = Vec::new();
    let mut add = |rx: &Receiver, secrets: Vec<&String>| {
        for c in rx.all() {
            let two = c.signature.contains(' ');
            // Once rotated, verify with the new secret (the old one is covered in rotation.rs).
            let secret = if two {
                secrets[secrets.len() - 1]
            } else {
                secrets[0]
            };
            deliveries.push(json!({
                "secret": secret,
                "body": String::from_utf8(c.body.to_vec()).unwrap(),
                "headers": {
                    "webhook-id": c.id,
                    "webhook-timestamp": c.timestamp,
                    "webhook-signature": c.signature,
                },
            }));
        }
    };
    add(&ordered, vec![&secret_o, &rotated]);
    add(&parallel, vec![&secret_p]);
    assert!(deliveries.len() >= 22, "{} deliveries", deliveries.len());

    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run.json");
    std::fs::write(&run, json!({"deliveries": deliveries}).to_string()).unwrap();
    let script = dir.path().join("verify.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let out = Command::new("python3")
        .arg(&script)
        .arg(&run)
        .env("PYTHONPATH", &pythonpath)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the official verifier refused a delivery: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verified: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(verified, deliveries.len());
}
