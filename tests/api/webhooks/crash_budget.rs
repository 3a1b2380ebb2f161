//! Our crashes are not the receiver's failures: an attempt cut short by a `kill -9` of the
//! server is sent again (same webhook-id) without using up an attempt of the message's retry
//! budget, so only answers the receiver actually gave count towards pausing or dead-lettering.

use serde_json::json;

use super::support::*;
use crate::helpers::*;

/// The receiver's requests cut short by our kills: they hang until the server is gone.
const CUT: [usize; 2] = [1, 3];

#[tokio::test]
async fn attempts_cut_by_two_kill_9s_do_not_count_and_an_ordered_subscription_delivers_after_five_real_failures()
 {
    // Seven attempts in all; a hang never times out before the kill.
    let folder = Folder::new(
        "retry_schedule_ms = [0, 100, 100, 100, 100, 100, 100]\njitter_percent = 0\n\
         cursor_sync_ms = 50\ntimeout_ms = 60000\n",
    );
    // Requests 1 and 3 hang (the kill lands on them); the receiver answers 500 to five others,
    // then 200.
    let rx = Receiver::start(|n, _| {
        if CUT.contains(&n) {
            Answer::Hang
        } else if n < 7 {
            Answer::Status(500)
        } else {
            Answer::Status(200)
        }
    })
    .await;
    let (server, bin) = folder.start();
    let v = bin
        .seed_and_subscribe(&json!({"url": rx.url(), "mode": "ordered"}))
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    let appended = bin.append("process/ru-ua-peace", &statement(1)).await;
    let event_id = appended["events"][0]["id"].as_str().unwrap().to_string();

    let (mut server, mut bin) = (server, bin);
    for cut in CUT {
        wait_until("the request the kill cuts short has arrived", || async {
            rx.all().len() > cut
        })
        .await;
        server.kill9();
        (server, bin) = folder.start();
    }
    wait_until("the message delivered", || async {
        rx.accepted().iter().any(|c| c.id == event_id)
    })
    .await;
    let all = rx.all();
    assert_eq!(all.len(), 8, "one request per attempt and per cut attempt");
    assert!(
        all.iter().all(|c| c.id == event_id),
        "the webhook-id changed"
    );
    assert_eq!(all.iter().filter(|c| c.answered == 500).count(), 5);
    let view = bin.get(&format!("/subscriptions/{id}")).await;
    assert_eq!(view["status"], "active", "{view}");
    // Each cut attempt was sent again under its own number: six attempts made, no gap.
    let attempts = bin
        .get(&format!("/subscriptions/{id}/attempts?limit=100"))
        .await["attempts"]
        .as_array()
        .unwrap()
        .clone();
    let mut numbers: Vec<u64> = attempts
        .iter()
        .map(|a| a["attempt"].as_u64().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);
    server.kill9();
}
