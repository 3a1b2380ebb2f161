//! `webhooks.delivery_threads` sets how many threads deliver: accepted up to 64 (0, the
//! default, is one per core at most 4), refused above with the configuration naming the key.

use serde_json::json;

use super::support::*;
use crate::helpers::*;

#[test]
fn more_than_64_delivery_threads_are_refused_with_the_configuration_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    match test_config(dir.path()).with(json!({"webhooks": {"delivery_threads": 65}})) {
        Ok(_) => panic!("65 delivery threads were accepted"),
        Err(e) => assert!(e.to_string().contains("webhooks.delivery_threads"), "{e}"),
    }
    for ok in [0, 1, 64] {
        test_config(dir.path())
            .with(json!({"webhooks": {"delivery_threads": ok}}))
            .unwrap_or_else(|e| panic!("{ok} delivery threads refused: {e}"));
    }
}

#[tokio::test]
async fn a_server_configured_with_one_delivery_thread_delivers() {
    let app = app_with(json!({"delivery_threads": 1})).await;
    let rx = Receiver::ok().await;
    subscribe(&app, json!({"url": rx.url()})).await;
    let sent = statements(&app, 1, 3).await;
    wait_delivered(&rx, &sent).await;
}
