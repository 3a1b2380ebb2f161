//! `[log.nats] credentials`: a cluster that requires a user. The servers run in operator mode
//! (decentralised JWT auth, the accounts preloaded in memory), and the test signs the
//! operator, account and user JWTs itself with `nkeys`, as `nsc` would, and writes the user's
//! `.creds` file (its JWT and nkey seed). A connection without it is refused; an Annals node
//! given it appends, reads and keeps its webhook state and keys in the cluster.

use base64::Engine;
use serde_json::{Value, json};

use crate::api_helpers::*;
use crate::nats::NatsCluster;
use crate::shared::hooks_node;

/// A NATS JWT of `claims`, signed by `issuer` (`iat`, `iss` and `jti` filled in).
fn jwt(issuer: &nkeys::KeyPair, mut claims: Value) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    claims["iss"] = json!(issuer.public_key());
    claims["iat"] = json!(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    claims["jti"] = json!(uuid::Uuid::now_v7().simple().to_string().to_uppercase());
    let head = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let body = b64(claims.to_string().as_bytes());
    let signed = format!("{head}.{body}");
    let sig = issuer.sign(signed.as_bytes()).unwrap();
    format!("{signed}.{}", b64(&sig))
}

/// An account's claims; with `jetstream`, JetStream enabled without limits (never on the
/// system account, which the server refuses).
fn account(name: &str, key: &nkeys::KeyPair, jetstream: bool) -> Value {
    let storage = if jetstream { -1 } else { 0 };
    json!({
        "name": name,
        "sub": key.public_key(),
        "nats": {
            "limits": {
                "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                "wildcards": true, "conn": -1, "leaf": -1,
                "mem_storage": storage, "disk_storage": storage, "streams": -1, "consumer": -1
            },
            "type": "account",
            "version": 2
        }
    })
}

/// The servers' auth settings and the `.creds` file of the one user.
fn operator_mode() -> (String, String) {
    let operator = nkeys::KeyPair::new_operator();
    let (system, app) = (nkeys::KeyPair::new_account(), nkeys::KeyPair::new_account());
    let user = nkeys::KeyPair::new_user();
    let operator_jwt = jwt(
        &operator,
        json!({"name": "test", "sub": operator.public_key(), "nats": {"type": "operator", "version": 2}}),
    );
    let system_jwt = jwt(&operator, account("SYS", &system, false));
    let app_jwt = jwt(&operator, account("ANNALS", &app, true));
    let user_jwt = jwt(
        &app,
        json!({
            "name": "annals",
            "sub": user.public_key(),
            "nats": {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2}
        }),
    );
    let servers = format!(
        "operator: {operator_jwt}\nsystem_account: {sys}\nresolver: MEMORY\n\
         resolver_preload: {{\n  {sys}: {system_jwt}\n  {app_pub}: {app_jwt}\n}}\n",
        sys = system.public_key(),
        app_pub = app.public_key(),
    );
    let creds = format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\n\
         -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
        user.seed().unwrap()
    );
    (servers, creds)
}

#[tokio::test]
async fn a_node_given_the_credentials_file_of_a_cluster_that_requires_a_user_appends_and_shares_its_state()
 {
    let (servers, creds) = operator_mode();
    let cluster = NatsCluster::start_with(&servers).await;
    let folder = tempfile::tempdir().unwrap();
    let creds_file = folder.path().join("annals.creds");
    std::fs::write(&creds_file, creds).unwrap();

    // Without the credentials the cluster refuses the connection.
    let url: async_nats::ServerAddr = cluster.urls()[0].parse().unwrap();
    let refused = async_nats::ConnectOptions::new().connect(url.clone()).await;
    assert!(
        refused.is_err(),
        "a connection without credentials was let in"
    );
    let allowed = async_nats::ConnectOptions::with_credentials_file(&creds_file)
        .await
        .unwrap()
        .connect(url)
        .await;
    assert!(allowed.is_ok(), "the credentials were refused: {allowed:?}");

    // Two nodes with the credentials: the log, webhook state and keys all work.
    let key_file = folder.path().join("webhooks.key");
    let with_creds = json!({"log": {"nats": {"credentials": creds_file}}});
    let a = hooks_node(&cluster, &key_file, with_creds.clone()).await;
    let b = hooks_node(&cluster, &key_file, with_creds).await;
    a.seed().await;
    let resp = a.append("process/p", &statement(1)).await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    crate::caught_up(&b, 6).await;
    let (status, created) = crate::support::post(
        &a,
        "/subscriptions",
        json!({"url": "http://127.0.0.1:9/hook"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    // B's copy follows the cluster's through its watcher: within moments, later under load.
    crate::support::wait_until("B lists the subscription", || async {
        crate::support::admin_get(&b, "/subscriptions").await["subscriptions"]
            .as_array()
            .is_some_and(|subs| !subs.is_empty())
    })
    .await;
    let listed = crate::support::admin_get(&b, "/subscriptions").await;
    assert_eq!(listed["subscriptions"][0]["id"], created["id"], "{listed}");
}
