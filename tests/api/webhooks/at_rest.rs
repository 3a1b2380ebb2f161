//! Signing secrets at rest: the `webhooks` tree never holds a secret in the clear (they are
//! encrypted under `webhooks.secret_key_file`, by default `webhooks.key` in the data folder),
//! deliveries still verify after restarts, a store written by an earlier version (secrets in
//! the clear) is encrypted in place on start, and a key that cannot be used (another key, a
//! missing one beside encrypted secrets, one of the wrong length) stops the start with a
//! message naming it.

use std::path::Path;

use serde_json::{Value, json};
use uuid::Uuid;

use super::support::*;
use crate::helpers::*;
use annals::config::Config;
use annals::webhook::signing;
use annals::{Server, StartOptions};

/// Whether `needle` occurs anywhere in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The forms in which a secret could leak: `whsec_...`, its base64 payload, its raw bytes.
fn forms(secret: &str) -> Vec<Vec<u8>> {
    vec![
        secret.as_bytes().to_vec(),
        secret.trim_start_matches("whsec_").as_bytes().to_vec(),
        signing::decode_secret(secret).unwrap(),
    ]
}

/// Every (key, value) of the `webhooks` tree of a stopped data folder, read with sled itself.
fn webhooks_tree(data: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    wait_until_released(data);
    let db = open_store(data);
    let tree = db.open_tree("webhooks").unwrap();
    let entries = tree
        .iter()
        .map(|item| {
            let (k, v) = item.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect();
    drop(tree);
    drop(db);
    wait_until_released(data);
    entries
}

/// Asserts that no form of any of `secrets` occurs in the tree's keys or values.
fn assert_tree_hides(entries: &[(Vec<u8>, Vec<u8>)], secrets: &[&str]) {
    assert!(!entries.is_empty(), "the webhooks tree is empty");
    for secret in secrets {
        for form in forms(secret) {
            for (k, v) in entries {
                assert!(
                    !contains(k, &form) && !contains(v, &form),
                    "a secret is readable in the webhooks tree: {}",
                    String::from_utf8_lossy(v)
                );
            }
        }
    }
}

/// Every byte of every file under `dir` (sled's data file and segments included).
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

/// The stored JSON of subscription `id` (key `s` + its 16 bytes).
fn stored_subscription(entries: &[(Vec<u8>, Vec<u8>)], id: &str) -> Value {
    let mut k = vec![b's'];
    k.extend_from_slice(Uuid::parse_str(id).unwrap().as_bytes());
    let (_, v) = entries.iter().find(|(key, _)| *key == k).unwrap();
    serde_json::from_slice(v).unwrap()
}

/// Asserts that every stored secret of a subscription is sealed (`v1:`) and none is in the
/// clear; answers how many it has.
fn assert_sealed(stored: &Value) -> usize {
    let secrets = stored["secrets"].as_array().unwrap();
    for s in secrets {
        assert!(s.get("key").is_none(), "a secret in the clear: {s}");
        assert!(s["sealed"].as_str().unwrap().starts_with("v1:"), "{s}");
    }
    secrets.len()
}

/// Rotates a subscription's secret over HTTP; answers the new one.
async fn rotate(app: &TestApp, id: &str) -> String {
    let (status, v) = post(
        app,
        &format!("/subscriptions/{id}/rotate-secret"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v["secret"].as_str().unwrap().to_string()
}

/// The hex key file content of a fresh random 32-byte key.
fn random_key_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{}\n", hex::encode(bytes))
}

/// Every key and value of the running server's `webhooks` tree.
fn live_tree(app: &TestApp) -> Vec<(Vec<u8>, Vec<u8>)> {
    app.server()
        .log()
        .aux_tree("webhooks")
        .unwrap()
        .iter()
        .map(|i| {
            let (k, v) = i.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

#[tokio::test]
async fn a_secret_never_reaches_the_store_in_the_clear_at_creation_or_after_a_rotation() {
    let app = app_with(json!({"secret_overlap_secs": 3600})).await;
    let rx = Receiver::ok().await;
    let (id, first) = subscribe(&app, json!({"url": rx.url()})).await;
    let (_, other) = subscribe(&app, json!({"url": rx.url(), "mode": "parallel"})).await;
    // After creation, in the running server's own tree.
    let live = live_tree(&app);
    assert_tree_hides(&live, &[&first, &other]);
    let second = rotate(&app, &id).await;
    let data = app.config.server.data_dir.clone();
    let dir = app.stop().await;

    // After the rotation, both secrets (the new one and the previous one kept for the
    // overlap) are stored, and neither is readable: in the tree, read with sled directly...
    let entries = webhooks_tree(&data);
    assert_tree_hides(&entries, &[&first, &second, &other]);
    assert_eq!(assert_sealed(&stored_subscription(&entries, &id)), 2);
    // ...nor anywhere in the folder's files (sled's segments keep overwritten values).
    let bytes = all_bytes(dir.path());
    for secret in [&first, &second, &other] {
        for form in forms(secret) {
            assert!(!contains(&bytes, &form), "a secret is readable on disk");
        }
    }
}

#[tokio::test]
async fn the_default_key_is_created_in_the_data_folder_on_first_start_owner_only_and_kept_across_restarts()
 {
    let mut app = app_with(json!({})).await;
    let path = app.config.server.data_dir.join("webhooks.key");
    let key = std::fs::read_to_string(&path).expect("webhooks.key created on first start");
    assert_eq!(key.trim().len(), 64, "{key:?}");
    assert!(hex::decode(key.trim()).is_ok());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let rx = Receiver::ok().await;
    let (_, secret) = subscribe(&app, json!({"url": rx.url()})).await;
    app.restart().await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), key, "key replaced");
    let sent = statements(&app, 1, 1).await;
    wait_delivered(&rx, &sent).await;
    assert!(verifies(&secret, &rx.accepted()[0]));
}

#[tokio::test]
async fn after_restarts_of_the_binary_deliveries_are_signed_with_the_secrets_given_at_creation_and_rotation()
 {
    // The key in a file of the operator's choosing, outside the data folder.
    let keys_dir = tempfile::tempdir().unwrap();
    let key_file = keys_dir.path().join("hooks.key");
    std::fs::write(&key_file, random_key_hex()).unwrap();
    let folder = Folder::new(&format!(
        "secret_overlap_secs = 3600\ncursor_sync_ms = 50\nsecret_key_file = \"{}\"\n",
        key_file.display()
    ));
    let rx = Receiver::ok().await;
    let (server, bin) = folder.start();
    let v = bin.seed_and_subscribe(&json!({"url": rx.url()})).await;
    let id = v["id"].as_str().unwrap().to_string();
    let first = v["secret"].as_str().unwrap().to_string();
    server.kill9();

    // A restart: the creation secret still signs.
    let (server, bin) = folder.start();
    let a = bin.append("process/ru-ua-peace", &statement(1)).await;
    wait_delivered(&rx, &[(0, a["events"][0]["id"].as_str().unwrap().into())]).await;
    let c = rx.accepted().pop().unwrap();
    assert!(verifies(&first, &c), "{}", c.signature);
    let second = bin.rotate_secret(&id).await;
    server.kill9();

    // Another: both secrets of the overlap still sign, each verifying on its own.
    let (server, bin) = folder.start();
    let b = bin.append("process/ru-ua-peace", &statement(2)).await;
    let b_id = b["events"][0]["id"].as_str().unwrap().to_string();
    wait_delivered(&rx, &[(0, b_id.clone())]).await;
    let c = rx.accepted().into_iter().find(|c| c.id == b_id).unwrap();
    assert_eq!(c.signature.split(' ').count(), 2, "{}", c.signature);
    assert!(
        verifies(&first, &c),
        "the previous secret no longer verifies"
    );
    assert!(verifies(&second, &c), "the new secret does not verify");
    server.kill9();
    assert!(
        !folder.data.join("webhooks.key").exists(),
        "a key was created beside the configured one"
    );
}

/// The old layout's key of a subscription (`s` + id) and of its cursor (`c` + id).
fn old_keys(id: &Uuid) -> (Vec<u8>, Vec<u8>) {
    let mut s = vec![b's'];
    s.extend_from_slice(id.as_bytes());
    let mut c = vec![b'c'];
    c.extend_from_slice(id.as_bytes());
    (s, c)
}

#[tokio::test]
async fn a_store_with_secrets_in_the_clear_from_an_earlier_version_is_encrypted_in_place_on_start()
{
    let mut app = app_with(json!({"secret_overlap_secs": 3600})).await;
    let rx = Receiver::ok().await;
    // A subscription exactly as the earlier version stored it: the whole subscription as
    // JSON under `s` + id, with its secrets in the clear, and its cursor (u64 BE) under
    // `c` + id. It has a current secret and a previous one still inside its overlap.
    let current = signing::new_secret();
    let previous = signing::new_secret();
    let id = Uuid::now_v7();
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() as u64 * 1000;
    let old = json!({
        "id": id,
        "url": rx.url(),
        "description": "written by an earlier version",
        "filter": {"types": [], "streams": [], "processes": []},
        "mode": "ordered",
        "max_in_flight": 1,
        "rate_limit_per_sec": null,
        "status": "active",
        "status_reason": null,
        "created_at": "2026-01-23T00:00:00Z",
        "updated_at": "2026-01-23T00:00:00Z",
        "failing_since_ms": null,
        "secrets": [
            {"key": current, "expires_at_ms": null},
            {"key": previous, "expires_at_ms": now_ms + 3_600_000}
        ]
    });
    let (sub_key, cursor_key) = old_keys(&id);
    let head = app.head().await.0;
    {
        let log = app.server().log();
        let tree = log.aux_tree("webhooks").unwrap();
        tree.insert(sub_key, serde_json::to_vec(&old).unwrap())
            .unwrap();
        tree.insert(cursor_key, &head.to_be_bytes()).unwrap();
        log.sync_aux().unwrap();
    }
    app.restart().await;

    let live = live_tree(&app);
    assert_tree_hides(&live, &[&current, &previous]);
    let stored = stored_subscription(&live, &id.to_string());
    assert_eq!(assert_sealed(&stored), 2);
    assert_eq!(stored["description"], "written by an earlier version");
    assert_eq!(stored["updated_at"], "2026-01-23T00:00:00Z");

    // Both secrets still sign, and the view still shows neither.
    let sent = statements(&app, 1, 1).await;
    wait_delivered(&rx, &sent).await;
    let c = &rx.accepted()[0];
    assert_eq!(c.signature.split(' ').count(), 2, "{}", c.signature);
    assert!(verifies(&current, c));
    assert!(verifies(&previous, c));
    let view = sub(&app, &id.to_string()).await;
    assert!(view["previous_secret_expires_at"].is_string());
    assert!(!view.to_string().contains("whsec_"));

    // A second start finds nothing left to encrypt and changes nothing.
    app.restart().await;
    let again = app
        .server()
        .log()
        .aux_tree("webhooks")
        .unwrap()
        .get(old_keys(&id).0)
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&again).unwrap(),
        stored,
        "an encrypted store was rewritten"
    );
}

#[tokio::test]
async fn starting_with_another_key_file_than_the_one_that_encrypted_the_secrets_fails_naming_the_key_file_and_the_subscription()
 {
    let folder = Folder::new("");
    let (server, bin) = folder.start();
    let (status, v) = bin
        .post(
            "/subscriptions",
            &folder.keys.admin,
            &json!({"url": "http://127.0.0.1:9/hook"}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    server.kill9();

    // The data folder's key replaced by another one.
    let key_file = folder.data.join("webhooks.key");
    std::fs::write(&key_file, random_key_hex()).unwrap();
    let (code, err) = folder.serve_expecting_refusal(&[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&key_file.display().to_string()), "{err}");
    assert!(err.contains(&id), "{err}");
    assert!(err.contains("webhooks.secret_key_file"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // The same through the environment: a key file elsewhere, of the right length, that did
    // not encrypt these secrets.
    let other = folder.dir.path().join("other.key");
    std::fs::write(&other, random_key_hex()).unwrap();
    let (code, err) = folder
        .serve_expecting_refusal(&[("ANNALS_WEBHOOKS__SECRET_KEY_FILE", other.to_str().unwrap())]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&other.display().to_string()), "{err}");
    assert!(err.contains(&id), "{err}");
}

#[tokio::test]
async fn a_key_file_of_the_wrong_length_is_refused_at_start_naming_the_key() {
    let folder = Folder::new("");
    let short = folder.dir.path().join("short.key");
    // 16 bytes, not 32.
    std::fs::write(&short, format!("{}\n", hex::encode([7u8; 16]))).unwrap();
    let (code, err) = folder
        .serve_expecting_refusal(&[("ANNALS_WEBHOOKS__SECRET_KEY_FILE", short.to_str().unwrap())]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("webhooks.secret_key_file"), "{err}");
    assert!(err.contains(&short.display().to_string()), "{err}");
    assert!(err.contains("64 hex digits"), "{err}");
    // Nothing was started: no key was created in the data folder either.
    assert!(!folder.data.join("webhooks.key").exists());
}

/// Starts the server in-process on a stopped folder with `config`, expecting a refusal.
async fn start_refused(config: Config) -> String {
    match Server::start(config, StartOptions::default()).await {
        Ok(server) => {
            server.stop().await;
            panic!("the server started");
        }
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn an_encrypted_secret_copied_to_another_subscription_does_not_decrypt_and_stops_the_start() {
    if on_nats() {
        // The test edits the node's sled copy; on the nats backend a node starts from the
        // cluster's copy of its subscriptions (issue 9), so that edit never reaches it.
        return;
    }
    let app = app_with(json!({})).await;
    let rx = Receiver::ok().await;
    let (a, _) = subscribe(&app, json!({"url": rx.url()})).await;
    let (b, _) = subscribe(&app, json!({"url": rx.url()})).await;
    {
        // B's secret replaced by A's sealed one, as someone with write access to the store
        // might, to make B sign with a secret they know.
        let log = app.server().log();
        let tree = log.aux_tree("webhooks").unwrap();
        let get = |id: &str| {
            let k = old_keys(&Uuid::parse_str(id).unwrap()).0;
            let v: Value = serde_json::from_slice(&tree.get(&k).unwrap().unwrap()).unwrap();
            (k, v)
        };
        let (_, va) = get(&a);
        let (kb, mut vb) = get(&b);
        vb["secrets"] = va["secrets"].clone();
        tree.insert(kb, serde_json::to_vec(&vb).unwrap()).unwrap();
        log.sync_aux().unwrap();
    }
    let config = app.config.clone();
    let key_file = config.server.data_dir.join("webhooks.key");
    let _dir = app.stop().await;
    let err = start_refused(config).await;
    assert!(err.contains(&b), "{err}");
    assert!(err.contains(&key_file.display().to_string()), "{err}");
}

#[tokio::test]
async fn a_missing_key_file_beside_encrypted_secrets_is_never_replaced_by_a_new_key() {
    let app = app_with(json!({})).await;
    let rx = Receiver::ok().await;
    let (id, _) = subscribe(&app, json!({"url": rx.url()})).await;
    let config = app.config.clone();
    let key_file = config.server.data_dir.join("webhooks.key");
    let _dir = app.stop().await;
    std::fs::remove_file(&key_file).unwrap();
    let err = start_refused(config).await;
    assert!(err.contains(&key_file.display().to_string()), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(err.contains(&id), "{err}");
    assert!(!key_file.exists(), "a new key was created");
}

#[tokio::test]
async fn with_unreadable_secrets_disable_a_lost_key_disables_the_subscription_until_its_secret_is_rotated()
 {
    let folder = Folder::new("unreadable_secrets = \"disable\"\ncursor_sync_ms = 50\n");
    let admin = folder.keys.admin.clone();
    let rx = Receiver::ok().await;
    let (server, bin) = folder.start();
    let v = bin.seed_and_subscribe(&json!({"url": rx.url()})).await;
    let id = v["id"].as_str().unwrap().to_string();
    let lost = v["secret"].as_str().unwrap().to_string();
    server.kill9();
    // The key is lost: a new one is made, and the subscription waits for a new secret.
    wait_until_released(&folder.data);
    std::fs::remove_file(folder.data.join("webhooks.key")).unwrap();

    let (server, bin) = folder.start();
    let view = bin.get(&format!("/subscriptions/{id}")).await;
    assert_eq!(view["status"], "disabled", "{view}");
    assert!(
        view["status_reason"].as_str().unwrap().contains("rotate"),
        "{view}"
    );
    let (status, v) = bin
        .post(&format!("/subscriptions/{id}/resume"), &admin, &json!({}))
        .await;
    assert_eq!(status, 409, "resumed without a secret: {v}");
    let fresh = bin.rotate_secret(&id).await;
    let (status, v) = bin
        .post(&format!("/subscriptions/{id}/resume"), &admin, &json!({}))
        .await;
    assert_eq!(status, 200, "{v}");
    let e = bin.append("process/ru-ua-peace", &statement(1)).await;
    let eid = e["events"][0]["id"].as_str().unwrap().to_string();
    wait_delivered(&rx, &[(0, eid.clone())]).await;
    let c = rx.accepted().into_iter().find(|c| c.id == eid).unwrap();
    assert!(verifies(&fresh, &c));
    assert!(!verifies(&lost, &c));
    server.kill9();
}
