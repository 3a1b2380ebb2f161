//! Unit tests of `projection::knowledge`, kept beside it so the module itself reads as one job. Tests only.

use super::*;

use crate::projection::fact::tests::{A, record};

const B: &str = "019be826-9001-701f-91c2-d6a7f0a1c8e9";
const C: &str = "019be826-9002-701f-91c2-d6a7f0a1c8e9";

#[test]
fn a_correction_applies_from_its_own_seq_and_a_retraction_hides_from_its_own_seq() {
    let mut k = Knowledge::new();
    k.apply(
        1,
        &record(
            1,
            A,
            "statement.made",
            r#"{"statement_id":"statement:x","speaker":"actor:a","content":"old"}"#,
        ),
    )
    .unwrap();
    let patch = format!(
        r#"{{"target":"{A}","patch":[{{"op":"replace","path":"/content","value":"new"}}],"reason":"typo"}}"#
    );
    k.apply(2, &record(2, B, "event.corrected", &patch))
        .unwrap();
    let retract = format!(r#"{{"target":"{A}","reason":"wrong"}}"#);
    k.apply(3, &record(3, C, "event.retracted", &retract))
        .unwrap();
    assert_eq!(k.data_at(0, 1)["content"], "old");
    assert_eq!(k.data_at(0, 2)["content"], "new");
    assert!(k.visible(0, 2));
    assert!(!k.visible(0, 3));
    assert_eq!(k.of_actor("actor:a"), &[0]);
    assert_eq!(k.of_source("src:a").len(), 3);
    assert_eq!(k.seq_at_time("2026-01-02T12:00:00.000000Z"), 2);
}

#[test]
fn records_out_of_order_are_refused() {
    let mut k = Knowledge::new();
    assert!(k.apply(2, b"{}").is_err());
    k.apply(1, b"not json").unwrap();
    assert_eq!(k.skipped, 1);
    assert_eq!(k.seq, 1);
}

#[test]
fn a_correction_that_names_a_new_actor_indexes_the_corrected_fact_under_that_actor() {
    let mut k = Knowledge::new();
    k.apply(
        1,
        &record(
            1,
            A,
            "meeting.held",
            r#"{"meeting_id":"meeting:m","participants":[{"actor":"actor:a"}]}"#,
        ),
    )
    .unwrap();
    let patch = format!(
        r#"{{"target":"{A}","patch":[{{"op":"add","path":"/participants/-","value":{{"actor":"actor:b","side":"org:x"}}}}],"reason":"missed"}}"#
    );
    k.apply(2, &record(2, B, "event.corrected", &patch))
        .unwrap();
    assert_eq!(k.of_actor("actor:b"), &[0]);
    assert_eq!(k.of_actor("org:x"), &[0]);
    assert_eq!(k.of_actor("actor:a"), &[0]);
    assert_eq!(k.data_at(0, 2)["participants"][1]["actor"], "actor:b");
    assert_eq!(k.data_at(0, 1)["participants"].as_array().unwrap().len(), 1);
}

/// A statement by `actor:a` (and `actor:b` when `both`) that occurred at `start`.
fn said(seq: u64, start: &str, both: bool) -> Vec<u8> {
    let id = uuid::Uuid::now_v7();
    let joint = if both {
        r#","joint_with":["actor:b"]"#
    } else {
        ""
    };
    format!(
        r#"{{"id":"{id}","seq":{seq},"stream":"s","version":{seq},"type":"statement.made","schema_version":1,"recorded_at":"2026-01-01T00:00:00.000000Z","recorded_by":"t","occurred":{{"start":"{start}","precision":"day"}},"data":{{"statement_id":"statement:{seq}","speaker":"actor:a","content":"c"{joint}}},"evidence":[],"prev_hash":"00"}}"#
    )
    .into_bytes()
}

#[test]
fn an_actors_time_order_built_early_stays_the_order_a_late_build_gives() {
    let starts = [
        "2025-03-10",
        "2025-03-02",
        "2025-03",
        "2025-03-10",
        "2025-04-01",
        "2025-01-31",
        "2025-03-11",
        "2025-03-02",
        "2025-03-10",
        "2026-01-01",
    ];
    let mut early = Knowledge::new();
    let mut late = Knowledge::new();
    for (i, start) in starts.iter().enumerate() {
        let seq = i as u64 + 1;
        let record = said(seq, start, i % 3 == 0);
        early.apply(seq, &record).unwrap();
        late.apply(seq, &record).unwrap();
        if seq == 3 {
            // Built now; every later fact is placed in it as it is folded.
            assert_eq!(early.of_actor_by_time("actor:a").by_time.len(), 3);
            assert_eq!(early.of_actor_by_time("actor:b").by_time.len(), 1);
        }
    }
    for actor in ["actor:a", "actor:b"] {
        let order = early.of_actor_by_time(actor).by_time.clone();
        assert_eq!(order, late.of_actor_by_time(actor).by_time, "{actor}");
        let keys: Vec<_> = order.iter().map(|&ix| late.time_key(ix)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{actor}: {keys:?}");
    }
    assert_eq!(
        early.of_actor_by_time("actor:a").by_time.len(),
        starts.len()
    );
    assert!(early.of_actor_by_time("actor:nobody").by_time.is_empty());
}

#[test]
fn ids_out_of_ascending_order_are_still_found() {
    let ids = [10u128, 30, 20, 40].map(|n| uuid::Uuid::from_u128(n << 64).to_string());
    let mut k = Knowledge::new();
    for (i, id) in ids.iter().enumerate() {
        k.insert(
            Fact::parse(
                i as u64 + 1,
                &record(i as u64 + 1, id, "statement.made", "{}"),
            )
            .unwrap(),
        );
    }
    assert_eq!(k.by_id.other.len(), 1);
    assert_eq!(
        [10u128, 20, 30, 40, 50].map(|n| k.by_id(&uuid::Uuid::from_u128(n << 64).to_string())),
        [Some(0), Some(2), Some(1), Some(3), None]
    );
}
