//! Unit tests of the nats writer's bookkeeping: what it keeps to follow, and what the
//! overlay shared by two groups forgets once the first is taken out to be written.

use super::*;
use crate::log::Appended;
use uuid::Uuid;

fn records(seqs: std::ops::RangeInclusive<u64>) -> Vec<StreamRecord> {
    seqs.map(|seq| StreamRecord {
        seq,
        hash: [0; 32],
        bytes: bytes::Bytes::new(),
    })
    .collect()
}

fn kept(carry: &Option<Command>) -> Option<Vec<u64>> {
    match carry {
        Some(Command::Follow(records)) => Some(records.iter().map(|r| r.seq).collect()),
        _ => None,
    }
}

#[test]
fn records_this_node_holds_are_not_kept_to_follow() {
    let mut carry = None;
    keep_following(&mut carry, records(11..=20), 20);
    assert!(carry.is_none());
}

#[test]
fn followed_records_past_what_this_node_holds_are_kept_in_order_after_earlier_ones() {
    let mut carry = None;
    keep_following(&mut carry, records(18..=22), 20);
    assert_eq!(kept(&carry), Some(vec![21, 22]));
    keep_following(&mut carry, records(23..=24), 20);
    assert_eq!(kept(&carry), Some(vec![21, 22, 23, 24]));
    // Once more is held (a group taken, or caught up on), what it covers is dropped.
    keep_following(&mut carry, Vec::new(), 22);
    assert_eq!(kept(&carry), Some(vec![23, 24]));
    keep_following(&mut carry, Vec::new(), 30);
    assert!(carry.is_none());
}

/// A staged event at `seq`, as the overlay holds one.
fn staged_at(
    seq: u64,
) -> (
    Uuid,
    (crate::log::writer::stage::Staged, crate::log::Position),
) {
    let id = Uuid::now_v7();
    let record = Record {
        id,
        seq,
        stream: "process/p".into(),
        version: seq,
        event_type: "x.y".into(),
        schema_version: 1,
        recorded_at: "2026-01-01T00:00:00.000000Z".into(),
        recorded_by: "t".into(),
        occurred: serde_json::Value::Null,
        process: None,
        data: serde_json::json!({}),
        evidence: serde_json::json!([]),
        meta: None,
        prev_hash: "00".into(),
    };
    let position = crate::log::Position {
        id,
        seq,
        version: seq,
        hash: [0; 32],
        recorded_at: record.recorded_at.clone(),
        repeat: false,
    };
    (
        id,
        (
            crate::log::writer::stage::Staged::Restored(record),
            position,
        ),
    )
}

#[test]
fn taking_the_first_group_lets_the_shared_overlay_forget_what_that_group_staged() {
    // The first group ends at seq 10; the next group, staged meanwhile, holds 11 on.
    let mut overlay = Overlay::default();
    let (early, e) = staged_at(9);
    let (late, l) = staged_at(11);
    overlay.ids.extend([(early, e), (late, l)]);
    overlay
        .names
        .insert("actor:a".into(), ("an actor".into(), 10));
    overlay
        .names
        .insert("actor:b".into(), ("an actor".into(), 11));
    overlay
        .entries
        .insert("entity:a".into(), (3, serde_json::json!(1), 10));
    overlay
        .entries
        .insert("entity:b".into(), (3, serde_json::json!(2), 12));
    let head = StreamHead::at;
    let mut at_split = HashMap::default();
    at_split.insert("process/same".to_string(), head(3));
    at_split.insert("process/moved".to_string(), head(2));
    overlay.streams = at_split.clone();
    overlay.streams.insert("process/moved".into(), head(4));
    overlay.streams.insert("process/new".into(), head(1));
    let split = Split {
        records: 0,
        writes: 0,
        next_seq: 11,
        head_hash: [0; 32],
        frontier: Frontier::default(),
        streams: at_split,
        stamp: Stamp::default(),
    };
    let first = split.take_first(&mut overlay);
    assert_eq!(first.next_seq, 11);
    assert_eq!(first.streams.len(), 2, "the first group writes its heads");
    assert_eq!(overlay.ids.keys().collect::<Vec<_>>(), vec![&late]);
    assert_eq!(overlay.names.keys().collect::<Vec<_>>(), vec!["actor:b"]);
    assert_eq!(overlay.entries.keys().collect::<Vec<_>>(), vec!["entity:b"]);
    let mut streams: Vec<_> = overlay
        .streams
        .iter()
        .map(|(k, h)| (k.as_str(), h.version()))
        .collect();
    streams.sort();
    assert_eq!(streams, vec![("process/moved", 4), ("process/new", 1)]);
}

#[test]
fn a_close_waiting_to_be_handled_is_not_replaced_by_followed_records() {
    let (tx, _rx) = tokio::sync::oneshot::channel();
    let mut carry = Some(Command::Close(tx));
    keep_following(&mut carry, records(21..=22), 20);
    assert!(matches!(carry, Some(Command::Close(_))));
}

fn appended(events: &[(Uuid, u64, u8)], duplicate: bool) -> Appended {
    Appended {
        positions: events
            .iter()
            .map(|&(id, seq, hash)| crate::log::Position {
                id,
                seq,
                version: seq,
                hash: [hash; 32],
                recorded_at: "2026-12-07T00:00:00Z".into(),
                repeat: false,
            })
            .collect(),
        stream_version: events.len() as u64,
        duplicate,
    }
}

/// What a retry wrapped by `own_landing` answers, given the attempt's staging and the
/// answer the retry got.
fn judged(staged: Appended, minted: bool, answer: Appended) -> Appended {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime"); // ok: test code (a #[cfg(test)] module)
    let (tx, rx) = tokio::sync::oneshot::channel();
    let wrapped = own_landing(runtime.handle(), tx, staged, minted);
    assert!(wrapped.send(Ok(answer)).is_ok());
    runtime.block_on(rx).expect("an answer").expect("an append") // ok: test code (a #[cfg(test)] module)
}

#[test]
fn a_retry_that_finds_its_events_where_its_attempt_staged_them_is_their_landing_not_a_duplicate() {
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let ours = [(a, 7, 1), (b, 8, 2)];
    // Client ids, found at the seqs and hashes this node published: created.
    let answer = judged(appended(&ours, false), false, appended(&ours, true));
    assert!(!answer.duplicate);
    assert_eq!(answer.positions[1].seq, 8);
    // At the stream's version its own last event made, not the stream's version now.
    let mut later = appended(&ours, true);
    later.stream_version = 12;
    assert_eq!(
        judged(appended(&ours, false), false, later).stream_version,
        8
    );
    // Client ids found elsewhere (another node's append of the same events): a duplicate.
    let theirs = [(a, 9, 3), (b, 10, 4)];
    assert!(judged(appended(&ours, false), false, appended(&theirs, true)).duplicate);
    // Minted ids can only be this request's, wherever they landed.
    assert!(!judged(appended(&ours, false), true, appended(&theirs, true)).duplicate);
    // An attempt that found the events already stored staged nothing of its own.
    assert!(judged(appended(&ours, true), false, appended(&ours, true)).duplicate);
    // Other ids are never this request's.
    let other = [(Uuid::now_v7(), 7, 1), (b, 8, 2)];
    assert!(judged(appended(&ours, false), true, appended(&other, true)).duplicate);
}
