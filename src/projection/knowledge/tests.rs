//! Unit tests of `projection::knowledge`, kept beside it so the module itself reads as one job. Tests only.

use super::*;

use crate::projection::fact::tests::{A, record};

const B: &str = "019be826-9001-701f-91c2-d6a7f0a1c8e9";
const C: &str = "019be826-9002-701f-91c2-d6a7f0a1c8e9";
const D: &str = "019be826-9003-701f-91c2-d6a7f0a1c8e9";

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
    .unwrap(); // ok: test code (a #[cfg(test)] module)
    let patch = format!(
        r#"{{"target":"{A}","patch":[{{"op":"replace","path":"/content","value":"new"}}],"reason":"typo"}}"#
    );
    k.apply(2, &record(2, B, "event.corrected", &patch))
        .unwrap(); // ok: test code (a #[cfg(test)] module)
    let retract = format!(r#"{{"target":"{A}","reason":"wrong"}}"#);
    k.apply(3, &record(3, C, "event.retracted", &retract))
        .unwrap(); // ok: test code (a #[cfg(test)] module)
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
    k.apply(1, b"not json").unwrap(); // ok: test code (a #[cfg(test)] module)
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
    .unwrap(); // ok: test code (a #[cfg(test)] module)
    let patch = format!(
        r#"{{"target":"{A}","patch":[{{"op":"add","path":"/participants/-","value":{{"actor":"actor:b","side":"org:x"}}}}],"reason":"missed"}}"#
    );
    k.apply(2, &record(2, B, "event.corrected", &patch))
        .unwrap(); // ok: test code (a #[cfg(test)] module)
    assert_eq!(k.of_actor("actor:b"), &[0]);
    assert_eq!(k.of_actor("org:x"), &[0]);
    assert_eq!(k.of_actor("actor:a"), &[0]);
    assert_eq!(k.data_at(0, 2)["participants"][1]["actor"], "actor:b");
    assert_eq!(k.data_at(0, 1)["participants"].as_array().unwrap().len(), 1); // ok: test code (a #[cfg(test)] module)
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
        early.apply(seq, &record).unwrap(); // ok: test code (a #[cfg(test)] module)
        late.apply(seq, &record).unwrap(); // ok: test code (a #[cfg(test)] module)
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
            .unwrap(), // ok: test code (a #[cfg(test)] module)
        );
    }
    assert_eq!(k.by_id.other.len(), 1);
    assert_eq!(
        [10u128, 20, 30, 40, 50].map(|n| k.by_id(&uuid::Uuid::from_u128(n << 64).to_string())),
        [Some(0), Some(2), Some(1), Some(3), None]
    );
}

/// Knowledge of one statement per id, in the order given.
fn with_ids(ids: &[u128]) -> Knowledge {
    let mut k = Knowledge::new();
    for (i, id) in ids.iter().enumerate() {
        let seq = i as u64 + 1;
        let text = uuid::Uuid::from_u128(*id).to_string();
        k.insert(Fact::parse(seq, &record(seq, &text, "statement.made", "{}")).unwrap()); // ok: test code (a #[cfg(test)] module)
    }
    k
}

#[test]
fn an_import_of_ascending_ids_below_the_logs_own_costs_a_list_not_an_entry_each() {
    // Five minted ids, then 3,000 derived ones (all below them, ascending with the line), then
    // minted ones again, above both.
    let minted = |n: u128| (0x019b_u128 << 112) | n;
    let ids: Vec<u128> = (1..=5)
        .map(minted)
        .chain((1..=3000).map(|line| line << 80))
        .chain((6..=9).map(minted))
        .collect();
    let k = with_ids(&ids);
    assert_eq!(k.by_id.other.len(), 0, "the climb left the map");
    let lists = k.by_id.ascending();
    assert_eq!(lists.len(), 2);
    assert_eq!(lists[0], (0..5).collect::<Vec<Ix>>());
    assert_eq!(lists[1], (5..ids.len() as Ix).collect::<Vec<Ix>>());
    for (ix, id) in ids.iter().enumerate() {
        assert_eq!(
            k.by_id(&uuid::Uuid::from_u128(*id).to_string()),
            Some(ix as Ix)
        );
    }
    assert_eq!(
        k.by_id(&uuid::Uuid::from_u128(minted(100)).to_string()),
        None
    );
    assert_eq!(
        k.by_id(&uuid::Uuid::from_u128(3001 << 80).to_string()),
        None
    );
}

#[test]
fn ids_in_no_order_are_all_found_and_short_climbs_stay_in_the_map() {
    // A pseudo-random walk (xorshift): short ascending stretches, never a climb of 1,024.
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let ids: Vec<u128> = (0..5000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            u128::from(x) << 64 | 1
        })
        .collect();
    let k = with_ids(&ids);
    assert_eq!(k.by_id.ascending().len(), 1);
    assert!(k.by_id.other.len() > 4000, "{}", k.by_id.other.len());
    for (ix, id) in ids.iter().enumerate() {
        assert_eq!(
            k.by_id(&uuid::Uuid::from_u128(*id).to_string()),
            Some(ix as Ix)
        );
    }
}

/// Records of every shape the rows keep differently: actors, sources, talks, a correction
/// that moves a meeting and names a new actor, a status change corrected, a retraction, a
/// correction of a retraction's target, an id not in canonical text, an id out of order, a
/// time not in the log's format (seq 10 on), a type this build does not know, a process.
fn varied_records() -> Vec<Option<Vec<u8>>> {
    let id = |n: u128| uuid::Uuid::from_u128((n + 100) << 64).to_string();
    let mut out = Vec::new();
    out.push(Some(record(
        1,
        &id(1),
        "meeting.held",
        r#"{"meeting_id":"meeting:m","fulfils":"talks:t1","participants":[{"actor":"actor:a"},{"actor":"actor:a"},{"actor":"not an actor"}]}"#,
    )));
    out.push(Some(record(
        2,
        &id(2),
        "talks.status_changed",
        r#"{"talks_id":"talks:t1","status":"held"}"#,
    )));
    let patch = format!(
        r#"{{"target":"{}","patch":[{{"op":"replace","path":"/fulfils","value":"talks:t2"}},{{"op":"add","path":"/participants/-","value":{{"actor":"actor:b"}}}}],"reason":"r"}}"#,
        id(1)
    );
    out.push(Some(record(3, &id(3), "event.corrected", &patch)));
    out.push(None);
    out.push(Some(record(
        5,
        &id(5).to_uppercase(),
        "statement.made",
        r#"{"statement_id":"statement:x","speaker":"actor:c","content":"c"}"#,
    )));
    out.push(Some(record(
        6,
        &id(0),
        "statement.made",
        r#"{"statement_id":"statement:y","speaker":"actor:a","content":"c"}"#,
    )));
    let retract = format!(r#"{{"target":"{}","reason":"wrong"}}"#, id(0));
    out.push(Some(record(7, &id(7), "event.retracted", &retract)));
    let patch = format!(
        r#"{{"target":"{}","patch":[{{"op":"replace","path":"/status","value":"off"}},{{"op":"add","path":"/talks_id","value":"talks:t3"}}],"reason":"r"}}"#,
        id(2)
    );
    out.push(Some(record(8, &id(8), "event.corrected", &patch)));
    out.push(Some(record(9, "not-a-uuid", "thing.unknown", r#"{"a":1}"#)));
    for seq in 10..14 {
        out.push(Some(record(
            seq,
            &id(seq as u128),
            "statement.made",
            r#"{"statement_id":"statement:z","speaker":"actor:d","content":"c"}"#,
        )));
    }
    out.push(None);
    out.push(Some(record(
        15,
        &id(15),
        "source.registered",
        r#"{"source_id":"src:b","kind":"wire","publisher":"P"}"#,
    )));
    out
}

/// Asserts two knowledges hold the same facts and every index the same.
fn assert_same_knowledge(a: &Knowledge, b: &Knowledge) {
    assert_eq!(a.seq, b.seq);
    assert_eq!(a.store, b.store);
    assert_eq!(a.by_id.ascending(), b.by_id.ascending());
    assert_eq!(a.by_id.other, b.by_id.other);
    assert_eq!(a.corrections, b.corrections);
    assert_eq!(a.retractions, b.retractions);
    assert_eq!(a.by_kind, b.by_kind);
    assert_eq!(a.by_process, b.by_process);
    assert_eq!(a.by_actor, b.by_actor);
    assert_eq!(a.by_source, b.by_source);
    assert_eq!(a.by_talks, b.by_talks);
    for ix in 0..a.store.len() as Ix {
        let id = a.fact(ix).id().to_string();
        assert_eq!(a.by_id(&id), b.by_id(&id), "{id}");
        assert_eq!(a.fact_json(ix, a.seq), b.fact_json(ix, b.seq));
    }
}

#[test]
fn knowledge_loaded_from_segments_of_any_size_equals_the_fold_it_was_saved_from() {
    let mut folded = Knowledge::new();
    for (i, record) in varied_records().into_iter().enumerate() {
        let seq = i as u64 + 1;
        folded
            .apply(seq, record.as_deref().unwrap_or(b"not json"))
            .unwrap(); // ok: test code (a #[cfg(test)] module)
    }
    assert_eq!((folded.facts().len(), folded.skipped), (13, 2));
    assert!(!folded.by_talks.is_empty() && !folded.corrections.is_empty());
    assert!(!folded.retractions.is_empty() && !folded.by_id.other.is_empty());
    for size in [1, 2, 3, 5, 13] {
        let mut loaded = Knowledge::over(folded.records().clone());
        let mut bulk = Bulk::default();
        let mut from = 0;
        while from < folded.facts().len() {
            let to = (from + size).min(folded.facts().len());
            let mut bytes = Vec::new();
            folded.facts().encode_segment(from, to, &mut bytes);
            let seg = Segment::decode(&bytes).unwrap(); // ok: test code (a #[cfg(test)] module)
            loaded.load_segment(seg, &mut bulk).unwrap(); // ok: test code (a #[cfg(test)] module)
            from = to;
        }
        loaded.finish_load(bulk);
        assert_same_knowledge(&folded, &loaded);
    }
}

#[test]
fn a_segment_that_does_not_follow_the_rows_held_is_refused() {
    let mut folded = Knowledge::new();
    for (i, record) in varied_records().into_iter().enumerate() {
        folded
            .apply(i as u64 + 1, record.as_deref().unwrap_or(b"not json"))
            .unwrap(); // ok: test code (a #[cfg(test)] module)
    }
    let segment = |from: usize, to: usize| {
        let mut bytes = Vec::new();
        folded.facts().encode_segment(from, to, &mut bytes);
        bytes
    };
    // A gap: rows 0..3 then 5..8.
    let mut k = Knowledge::new();
    let mut bulk = Bulk::default();
    k.load_segment(Segment::decode(&segment(0, 3)).unwrap(), &mut bulk) // ok: test code (a #[cfg(test)] module)
        .unwrap(); // ok: test code (a #[cfg(test)] module)
    assert!(
        k.load_segment(Segment::decode(&segment(5, 8)).unwrap(), &mut bulk) // ok: test code (a #[cfg(test)] module)
            .is_err()
    );
    // Damaged bytes anywhere are refused by the decoder or by the append, never taken.
    let whole = segment(0, folded.facts().len());
    for at in 0..whole.len() {
        let mut bad = whole.clone();
        bad[at] ^= 0x5a;
        let mut k = Knowledge::new();
        let taken = Segment::decode(&bad)
            .ok()
            .and_then(|seg| k.load_segment(seg, &mut Bulk::default()).ok());
        if taken.is_some() {
            // What the damage left still reads as facts: only a field's value changed
            // (a text's bytes, an id, a time), which the save's checksum is there to catch.
            assert_eq!(k.facts().len(), folded.facts().len(), "byte {at}");
        }
    }
    assert!(Segment::decode(&whole[..whole.len() - 1]).is_err());
}

#[test]
fn only_the_types_views_list_by_type_are_kept_in_the_type_index() {
    let mut k = Knowledge::new();
    for seq in 1..=50u64 {
        let id = format!("019be826-{:04x}-701f-91c2-d6a7f0a1c8e9", 0x9100 + seq);
        let data =
            format!(r#"{{"statement_id":"statement:s{seq}","speaker":"actor:a","content":"c"}}"#);
        k.apply(seq, &record(seq, &id, "statement.made", &data))
            .unwrap(); // ok: test code (a #[cfg(test)] module)
    }
    k.apply(
        51,
        &record(
            51,
            B,
            "source.registered",
            r#"{"source_id":"src:b","kind":"wire","publisher":"P"}"#,
        ),
    )
    .unwrap(); // ok: test code (a #[cfg(test)] module)
    // Statements are found by actor and source, not by type: no list of them is kept.
    assert!(!EventKind::StatementMade.listed_by_type());
    assert!(!k.by_kind.contains_key("statement.made"));
    assert_eq!(k.of_actor("actor:a").len(), 50);
    assert_eq!(k.of_kind(EventKind::SourceRegistered), &[50]);
    let by_kind = k
        .heap_parts()
        .into_iter()
        .find(|p| p.part == "by_kind")
        .map(|p| p.bytes);
    assert!(by_kind.is_some_and(|b| b < 50 * 4), "{by_kind:?}");
}

#[test]
fn a_source_or_process_of_every_fact_costs_a_fraction_of_a_list_and_reads_back_in_seq_order() {
    let mut k = Knowledge::new();
    // More facts than an array container holds (4,096), as a source's citations soon are.
    let n = 20_000u64;
    for seq in 1..=n {
        let id = format!("019be826-{:04x}-701f-91c2-d6a7f0a1c8e9", seq);
        let data =
            format!(r#"{{"statement_id":"statement:s{seq}","speaker":"actor:a","content":"c"}}"#);
        k.apply(seq, &record(seq, &id, "statement.made", &data))
            .unwrap(); // ok: test code (a #[cfg(test)] module)
    }
    let cited = k.of_source("src:a");
    assert_eq!(cited, (0..n as Ix).collect::<Vec<_>>());
    // Every fact is of process `p`.
    let own: Vec<Ix> = k.of_process("p", n).collect();
    assert_eq!(own, cited);
    for part in ["by_source", "by_process"] {
        let bytes = k
            .heap_parts()
            .into_iter()
            .find(|p| p.part == part)
            .map(|p| p.bytes);
        // A list of u32s would be 80,000 bytes.
        assert!(bytes.is_some_and(|b| b < 20_000), "{part}: {bytes:?}");
    }
}

#[test]
fn a_process_lists_the_facts_recorded_by_the_cut_and_its_span() {
    let mut k = Knowledge::new();
    for (seq, id, process) in [(1, A, "p"), (2, B, "q"), (3, C, "p"), (4, D, "q")] {
        let bytes = String::from_utf8(record(seq, id, "statement.made", "{}"))
            .unwrap() // ok: test code (a #[cfg(test)] module)
            .replace(r#""process":"p""#, &format!(r#""process":"{process}""#));
        k.apply(seq, bytes.as_bytes()).unwrap(); // ok: test code (a #[cfg(test)] module)
    }
    let of = |p: &str, cut: u64| k.of_process(p, cut).collect::<Vec<_>>();
    assert_eq!(of("p", 0), Vec::<Ix>::new());
    assert_eq!(of("p", 2), [0]);
    assert_eq!(of("p", 4), [0, 2]);
    assert_eq!(of("q", 4), [1, 3]);
    assert_eq!(of("nobody", 4), Vec::<Ix>::new());
    assert_eq!(k.process_span("p", 2), Some((1, 0, 0)));
    assert_eq!(k.process_span("p", 4), Some((2, 0, 2)));
    assert_eq!(k.process_span("q", 3), Some((1, 1, 1)));
    assert_eq!(k.process_span("q", 1), None);
    assert_eq!(k.process_span("nobody", 4), None);
}

#[test]
fn compacting_a_set_keeps_its_values_and_leaves_it_appendable() {
    // One value in every 1,000: array containers of about 65 values, grown by appends.
    let mut set = roaring::RoaringBitmap::new();
    for ix in (0..1_000_000u32).step_by(1000) {
        assert!(set.append(std::iter::once(ix)).is_ok());
    }
    let before = set.clone();
    compact_set(&mut set);
    assert_eq!(set, before);
    assert_eq!(set.len(), 1000);
    // Still appendable after compaction.
    assert!(set.append(std::iter::once(2_000_000)).is_ok());
    assert_eq!(set.max(), Some(2_000_000));
}
