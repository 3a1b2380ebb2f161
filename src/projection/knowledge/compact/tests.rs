//! Unit tests of `projection::knowledge::compact`, kept beside it so the module itself reads as one job. Tests only.

use super::*;
use crate::projection::fact::tests::{A, record};

#[test]
fn a_row_gives_back_every_field_of_the_fact_it_was_built_from() {
    let bytes = record(
        3,
        A,
        "meeting.held",
        r#"{"meeting_id":"meeting:m","participants":[{"actor":"actor:a"},{"actor":"org:x"}]}"#,
    );
    let fact = Fact::parse(3, &bytes).unwrap(); // ok: test code (a #[cfg(test)] module)
    let mut store = FactStore::default();
    let ix = store.push(&fact);
    let row = store.get(ix);
    assert_eq!(row.seq, 3);
    assert_eq!(row.id(), fact.id());
    assert_eq!(row.kind(), fact.kind());
    assert_eq!(row.recorded_at(), fact.recorded_at());
    assert_eq!(row.recorded_by(), fact.recorded_by());
    assert_eq!(row.occurred_json(), fact.occurred_json());
    assert_eq!(row.process(), fact.process());
    assert_eq!(row.data_in(&bytes), fact.data_in(&bytes));
    assert_eq!(row.evidence_in(&bytes), fact.evidence_in(&bytes));
    assert_eq!(
        row.refs().collect::<Vec<_>>(),
        fact.refs().collect::<Vec<_>>()
    );
    assert_eq!(row.stored(), fact.stored());
}

#[test]
fn ids_and_times_not_in_their_canonical_text_are_kept_as_recorded() {
    let upper = A.to_uppercase();
    let text = String::from_utf8(record(1, &upper, "statement.made", "{}"))
        .unwrap() // ok: test code (a #[cfg(test)] module)
        .replace("2026-01-01T00:00:00.000000Z", "2026-02-30T00:00:00Z");
    let fact = Fact::parse(1, text.as_bytes()).unwrap(); // ok: test code (a #[cfg(test)] module)
    let mut store = FactStore::default();
    let ix = store.push(&fact);
    assert_eq!(store.get(ix).id(), upper.as_str());
    assert_eq!(
        store.id_key(ix),
        uuid::Uuid::parse_str(A).unwrap().as_u128() // ok: test code (a #[cfg(test)] module)
    );
    assert_eq!(store.get(ix).recorded_at(), "2026-02-30T00:00:00Z");
    assert_eq!(store.get(ix).stored(), fact.stored());
}

#[test]
fn a_payload_of_64_kib_or_more_keeps_its_spans_beside_the_row() {
    let big = format!(r#"{{"content":"{}"}}"#, "x".repeat(70_000));
    let bytes = record(1, A, "statement.made", &big);
    let fact = Fact::parse(1, &bytes).unwrap(); // ok: test code (a #[cfg(test)] module)
    let mut store = FactStore::default();
    let ix = store.push(&fact);
    assert_ne!(store.get(ix).row.flags & ODD_SPANS, 0);
    assert_eq!(store.get(ix).data_in(&bytes), Some(big.as_str()));
    assert_eq!(store.get(ix).evidence_in(&bytes), fact.evidence_in(&bytes));
    assert_eq!(store.get(ix).stored(), fact.stored());
}

#[test]
fn a_type_this_build_does_not_know_keeps_its_name() {
    let bytes = record(1, A, "treaty.sung", "{}");
    let fact = Fact::parse(1, &bytes).unwrap(); // ok: test code (a #[cfg(test)] module)
    assert_eq!(fact.event_kind(), None);
    let mut store = FactStore::default();
    let ix = store.push(&fact);
    assert_eq!(store.get(ix).kind(), "treaty.sung");
    assert_eq!(store.get(ix).stored(), fact.stored());
}

#[test]
fn packed_spans_give_back_what_was_packed() {
    for (len, data, evidence) in [
        (10, (2, 4), (5, 9)),
        (0, (0, 0), (0, 0)),
        (65_535 * 5, (65_535, 131_070), (196_605, 262_140)),
    ] {
        let packed = pack_spans(len, data, evidence).unwrap(); // ok: test code (a #[cfg(test)] module)
        assert_eq!(unpack_spans(packed), (len, data, evidence));
    }
    assert_eq!(pack_spans(70_000, (10, 69_990), (69_991, 69_995)), None);
    assert_eq!(
        pack_spans(10, (4, 2), (5, 9)),
        None,
        "a span never runs backwards"
    );
}

#[test]
fn times_in_the_logs_format_survive_the_round_trip() {
    for s in [
        "1970-01-01T00:00:00.000000Z",
        "2026-12-31T23:59:59.999999Z",
        "2024-02-29T12:34:56.000001Z",
        "0001-01-01T00:00:00.000000Z",
        "9999-12-31T23:59:59.999999Z",
    ] {
        let t = micros(s).unwrap_or_else(|| panic!("{s}"));
        let mut buf = [0u8; 36];
        write_micros(t, &mut buf);
        assert_eq!(&buf[..27], s.as_bytes());
    }
    for s in ["2025-02-29T00:00:00.000000Z", "2026-01-01T24:00:00.000000Z"] {
        assert_eq!(micros(s), None, "{s}");
    }
}

#[test]
fn seqs_with_gaps_are_found_and_counted() {
    let mut store = FactStore::default();
    for seq in [2, 3, 4, 7, 8, 10] {
        let fact = Fact::parse(seq, &record(seq, A, "statement.made", "{}")).unwrap(); // ok: test code (a #[cfg(test)] module)
        store.push(&fact);
    }
    let seqs: Vec<u64> = store.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, [2, 3, 4, 7, 8, 10]);
    let counts: Vec<usize> = (0..12).map(|s| store.count_upto(s)).collect();
    assert_eq!(counts, [0, 0, 1, 2, 3, 3, 3, 4, 5, 5, 6, 6]);
}

#[test]
fn distinct_exact_times_add_one_shape_to_the_names_not_a_text_each_and_read_back_as_recorded() {
    let mut store = FactStore::default();
    let mut facts = Vec::new();
    for seq in 1..=1000u64 {
        let occurred = format!(
            r#"{{"start":"2026-03-{:02}T{:02}:{:02}:{:02}.{:03}+03:00","precision":"exact"}}"#,
            seq % 28 + 1,
            seq % 24,
            seq % 60,
            seq * 7 % 60,
            seq
        );
        let text = String::from_utf8(record(seq, A, "statement.made", "{}"))
            .unwrap() // ok: test code (a #[cfg(test)] module)
            .replace(r#"{"precision":"unknown"}"#, &occurred);
        let fact = Fact::parse(seq, text.as_bytes()).unwrap(); // ok: test code (a #[cfg(test)] module)
        assert_eq!(fact.occurred_json(), occurred);
        store.push(&fact);
        facts.push(fact);
    }
    // The type's, recorded_by's, process's and source's names, and one shape.
    let names = store.names.texts.len();
    assert!(names <= 6, "{names} names for 1,000 facts");
    let shape = store.names.get(store.get(0).row.occurred);
    assert_eq!(shape.matches('\u{1}').count(), 21, "{shape:?}");
    // A save's segment gives back the same texts.
    let mut bytes = Vec::new();
    store.encode_segment(0, store.len(), &mut bytes);
    let mut loaded = FactStore::default();
    loaded
        .append(Segment::decode(&bytes).unwrap()) // ok: test code (a #[cfg(test)] module)
        .unwrap(); // ok: test code (a #[cfg(test)] module)
    for (ix, fact) in facts.iter().enumerate() {
        for store in [&store, &loaded] {
            let row = store.get(ix as Ix);
            assert_eq!(row.occurred_json(), fact.occurred_json());
            assert_eq!(row.stored(), fact.stored());
        }
    }
}
