//! Cursors and attempts held in memory until the sync writes them (issue 13, "Webhook delivery
//! costs little"): they show at once, a graceful stop writes them, a kill -9 costs only
//! redeliveries from the last durable cursor (in order, skipping nothing), the attempts ring
//! keeps its size across write-outs, and attempts stored one per key by an earlier version
//! still read.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use uuid::Uuid;

use super::support::*;
use crate::helpers::*;

/// The seqs of `attempts` (newest first), as listed.
fn seqs(attempts: &[Value]) -> Vec<u64> {
    attempts
        .iter()
        .map(|a| a["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_kill_9_mid_stream_redelivers_from_the_last_durable_cursor_in_order_and_skips_nothing() {
    let folder = Folder::new("cursor_sync_ms = 100\n");
    // A receiver slow enough that the kill lands while the stream is being delivered.
    let rx = Receiver::start(|_, _| Answer::SlowOk(5)).await;
    let (server, bin) = folder.start();
    bin.seed_and_subscribe(
        &json!({"url": rx.url(), "from_seq": 1, "filter": {"types": ["statement.*"]}}),
    )
    .await;
    let mut expected = Vec::new();
    for first in [1, 76] {
        let batch: Vec<Value> = (first..first + 75).map(statement).collect();
        let v = bin
            .append("process/ru-ua-peace", &json!({"events": batch}))
            .await;
        expected.extend(
            v["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_u64().unwrap()),
        );
    }
    assert_eq!(expected.len(), 150);
    wait_until("some deliveries before the kill", || async {
        rx.accepted().len() >= 40
    })
    .await;
    server.kill9();
    let before = rx.accepted().len();

    let (server, _) = folder.start();
    wait_until("every statement delivered after the restart", || async {
        let got: BTreeSet<u64> = rx.accepted().iter().map(|c| c.seq()).collect();
        expected.iter().all(|s| got.contains(s))
    })
    .await;
    server.kill9();
    assert!(before < expected.len(), "the kill did not land mid-stream");
    // Ordered delivery, at least once: every delivery is at most one past the highest seq
    // delivered before it (a restart may go back to the durable cursor, never past a gap),
    // and the first deliveries of the events come in log order.
    let delivered: Vec<u64> = rx.accepted().iter().map(|c| c.seq()).collect();
    let mut highest = expected[0] - 1;
    let mut firsts = Vec::new();
    let mut seen = BTreeSet::new();
    for seq in &delivered {
        assert!(
            *seq <= highest + 1,
            "seq {seq} delivered while {} was not: {delivered:?}",
            highest + 1
        );
        highest = highest.max(*seq);
        if seen.insert(*seq) {
            firsts.push(*seq);
        }
    }
    assert_eq!(firsts, expected, "first deliveries out of log order");
}

#[tokio::test]
async fn the_cursor_and_attempts_show_at_once_and_a_graceful_restart_keeps_the_last_attempts_kept()
{
    // No sync runs during the test but the ones a change or a stop makes.
    let mut app = app_with(json!({"cursor_sync_ms": 600_000, "attempts_kept": 5})).await;
    let rx = Receiver::ok().await;
    let (id, _) = subscribe(&app, json!({"url": rx.url()})).await;
    let first = statements(&app, 1, 12).await;
    wait_delivered(&rx, &first).await;
    let last = first.last().unwrap().0;
    wait_until("the cursor at the last delivered seq", || async {
        sub(&app, &id).await["cursor"] == last
    })
    .await;
    let newest_five: Vec<u64> = first.iter().rev().take(5).map(|(s, _)| *s).collect();
    let listed = attempts(&app, &id).await;
    assert_eq!(seqs(&listed), newest_five, "{listed:?}");
    assert!(listed.iter().all(|a| a["outcome"] == "success"));

    app.restart().await;
    assert_eq!(sub(&app, &id).await["cursor"], last);
    assert_eq!(seqs(&attempts(&app, &id).await), newest_five);
    // The stop wrote the cursor: nothing came twice.
    assert_eq!(rx.all().len(), first.len());

    // Three more: the ring is now the newest three, held, and two written out.
    let more = statements(&app, 13, 3).await;
    wait_delivered(&rx, &more).await;
    let all: Vec<u64> = first.iter().chain(&more).map(|(s, _)| *s).collect();
    let newest_five: Vec<u64> = all.iter().rev().take(5).copied().collect();
    wait_until("the newest five attempts listed", || async {
        seqs(&attempts(&app, &id).await) == newest_five
    })
    .await;
    app.restart().await;
    assert_eq!(seqs(&attempts(&app, &id).await), newest_five);
    assert_eq!(rx.all().len(), all.len());
}

/// The attempt keys of subscription `id` in a stopped folder's `webhooks` tree.
fn attempt_keys(tree: &sled::Tree, id: &Uuid) -> Vec<sled::IVec> {
    let mut prefix = vec![b'a'];
    prefix.extend_from_slice(id.as_bytes());
    tree.scan_prefix(prefix)
        .keys()
        .map(|k| k.unwrap())
        .collect()
}

#[tokio::test]
async fn attempts_stored_one_per_key_by_an_earlier_version_still_list_and_leave_the_ring_in_turn() {
    let mut app = app_with(json!({"attempts_kept": 3})).await;
    let rx = Receiver::ok().await;
    let (id, _) = subscribe(&app, json!({"url": rx.url()})).await;
    let uuid = Uuid::parse_str(&id).unwrap();
    let first = statements(&app, 1, 3).await;
    wait_delivered(&rx, &first).await;
    let newest: Vec<u64> = first.iter().rev().map(|(s, _)| *s).collect();
    wait_until("three attempts listed", || async {
        seqs(&attempts(&app, &id).await) == newest
    })
    .await;
    let listed = attempts(&app, &id).await;
    // Rewrite the ring as an earlier version stored it: one attempt per key, keyed by its
    // number.
    app.restart_after(|dir| {
        let db = open_store(dir);
        let tree = db.open_tree("webhooks").unwrap();
        for k in attempt_keys(&tree, &uuid) {
            let run: Vec<(u64, Value)> =
                serde_json::from_slice(&tree.remove(&k).unwrap().unwrap()).unwrap();
            for (n, attempt) in run {
                let mut key = k[..17].to_vec();
                key.extend_from_slice(&n.to_be_bytes());
                tree.insert(key, serde_json::to_vec(&attempt).unwrap())
                    .unwrap();
            }
        }
        assert_eq!(attempt_keys(&tree, &uuid).len(), 3);
        db.flush().unwrap();
    })
    .await;
    assert_eq!(attempts(&app, &id).await, listed);

    // The next attempts are numbered on, and push the old ones out of the ring.
    let more = statements(&app, 4, 2).await;
    wait_delivered(&rx, &more).await;
    let expected = vec![more[1].0, more[0].0, first[2].0];
    wait_until("the newest three listed", || async {
        seqs(&attempts(&app, &id).await) == expected
    })
    .await;
    app.restart_after(|dir| {
        let db = open_store(dir);
        let tree = db.open_tree("webhooks").unwrap();
        // Attempts 4 and 5 were written out (in one run or two), and the old attempts 1 and
        // 2 left the ring; the old attempt 3 is still in it.
        let numbers: Vec<u64> = attempt_keys(&tree, &uuid)
            .iter()
            .map(|k| u64::from_be_bytes(k[17..25].try_into().unwrap()))
            .collect();
        assert!(numbers.contains(&3) && numbers.contains(&5), "{numbers:?}");
        assert!(numbers.iter().all(|n| *n >= 3), "{numbers:?}");
    })
    .await;
    assert_eq!(seqs(&attempts(&app, &id).await), expected);
}
