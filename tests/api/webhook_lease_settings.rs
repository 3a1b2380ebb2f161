//! The `[webhooks]` settings of delivery in a cluster: `deliver` and the lease timings, their
//! shipped defaults (the timings the lease was built with) and the checks at start, each
//! refusal naming the key to change.

use annals::config::Config;
use serde_json::{Value, json};

/// The refusal of the defaults with `webhooks` overridden.
fn refusal(webhooks: Value) -> String {
    match Config::defaults()
        .unwrap()
        .with(json!({ "webhooks": webhooks }))
    {
        Ok(c) => panic!("accepted {webhooks}: {:?}", c.webhooks),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_node_delivers_by_default_under_a_ten_second_lease_renewed_every_two() {
    let w = Config::defaults().unwrap().webhooks;
    assert!(w.deliver);
    assert_eq!(w.lease_ttl_ms, 10_000);
    assert_eq!(w.lease_renew_ms, 2_000);
    assert_eq!(w.lease_renew_timeout_ms, 1_000);
    assert_eq!(w.lease_give_up_ms, 5_000);
}

#[test]
fn a_node_may_keep_out_of_delivery_and_tighter_consistent_lease_timings_load() {
    let c = Config::defaults()
        .unwrap()
        .with(json!({"webhooks": {
            "deliver": false,
            "lease_ttl_ms": 3000,
            "lease_renew_ms": 500,
            "lease_renew_timeout_ms": 250,
            "lease_give_up_ms": 1500,
        }}))
        .unwrap();
    assert!(!c.webhooks.deliver);
    assert_eq!(c.webhooks.lease_ttl_ms, 3000);
}

#[test]
fn lease_timings_that_would_let_a_holder_outlive_its_lease_are_refused_naming_the_key() {
    let e = refusal(json!({"lease_renew_timeout_ms": 2000}));
    assert!(e.contains("webhooks.lease_renew_timeout_ms"), "{e}");
    assert!(e.contains("lease_renew_ms (2000)"), "{e}");

    let e = refusal(json!({"lease_renew_ms": 5000, "lease_renew_timeout_ms": 1000}));
    assert!(e.contains("webhooks.lease_renew_ms"), "{e}");
    assert!(e.contains("lease_give_up_ms (5000)"), "{e}");

    // 5 + 2 + 1 s: a holder cut off could still be delivering when an 8 s lease expires.
    let e = refusal(json!({"lease_ttl_ms": 8000}));
    assert!(e.contains("webhooks.lease_ttl_ms"), "{e}");
    assert!(e.contains("(8000)"), "{e}");

    for key in [
        "lease_ttl_ms",
        "lease_renew_ms",
        "lease_renew_timeout_ms",
        "lease_give_up_ms",
    ] {
        let e = refusal(json!({ key: 0 }));
        assert!(e.contains(&format!("webhooks.{key}")), "{e}");
        assert!(e.contains("must be positive"), "{e}");
    }
}
