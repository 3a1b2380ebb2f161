//! Unit tests of `projection::fact`, kept beside it so the module itself reads as one job. Tests only.

use super::*;

/// A stored record of `kind` with `data`, process `p` and one evidence item citing `src:a`.
pub(in crate::projection) fn record(seq: u64, id: &str, kind: &str, data: &str) -> Vec<u8> {
    format!(
        r#"{{"id":"{id}","seq":{seq},"stream":"s","version":{seq},"type":"{kind}","schema_version":1,"recorded_at":"2026-01-0{seq}T00:00:00.000000Z","recorded_by":"t","occurred":{{"precision":"unknown"}},"process":"p","data":{data},"evidence":[{{"source":"src:a","relation":"reports"}}],"prev_hash":"00"}}"#
    )
    .into_bytes()
}

pub(in crate::projection) const A: &str = "019be826-9000-701f-91c2-d6a7f0a1c8e9";

#[test]
fn escaped_strings_are_read_unescaped_and_survive_a_save_round_trip() {
    // `\u0061` is `a`: the speaker is `actor:a` and the process `p"q`.
    let bytes = record(
        1,
        A,
        "statement.made",
        r#"{"statement_id":"statement:x","speaker":"actor:\u0061","content":"c"}"#,
    );
    let text = String::from_utf8(bytes)
        .unwrap() // ok: test code (a #[cfg(test)] module)
        .replace(r#""process":"p""#, r#""process":"p\"q""#);
    let fact = Fact::parse(1, text.as_bytes()).unwrap(); // ok: test code (a #[cfg(test)] module)
    assert_eq!(fact.process(), Some("p\"q"));
    let back = fact.stored().into_fact().unwrap(); // ok: test code (a #[cfg(test)] module)
    assert_eq!(back, fact);
    assert_eq!(back.process(), Some("p\"q"));
    assert_eq!(back.id(), A);
    let mut k = crate::projection::Knowledge::new();
    k.insert(back);
    assert_eq!(k.of_actor("actor:a"), &[0]);
    assert_eq!(k.of_process("p\"q", 1).collect::<Vec<_>>(), [0]);
}

#[test]
fn a_fact_keeps_no_payload_and_reads_it_only_from_its_own_record() {
    let content = "a long statement that only the record holds";
    let data = format!(r#"{{"speaker":"actor:a","content":"{content}"}}"#);
    let one = record(1, A, "statement.made", &data);
    let fact = Fact::parse(1, &one).unwrap(); // ok: test code (a #[cfg(test)] module)
    assert!(!fact.text.contains(content), "{}", fact.text);
    assert_eq!(fact.data_in(&one), Some(data.as_str()));
    assert_eq!(
        fact.evidence_in(&one),
        Some(r#"[{"source":"src:a","relation":"reports"}]"#)
    );
    let other = record(1, A, "statement.made", r#"{"speaker":"actor:bb"}"#);
    assert_eq!(fact.data_in(&other), None);
}

#[test]
fn a_saved_fact_whose_spans_do_not_fit_is_refused() {
    let one = record(1, A, "statement.made", r#"{"speaker":"actor:a"}"#);
    let mut stored = Fact::parse(1, &one).unwrap().stored(); // ok: test code (a #[cfg(test)] module)
    stored.spans[Field::Id as usize].1 = stored.text.len() as u32 + 1;
    assert!(stored.into_fact().is_none());
    let mut stored = Fact::parse(1, &one).unwrap().stored(); // ok: test code (a #[cfg(test)] module)
    stored.spans[Field::Data as usize].1 = stored.record_len + 1;
    assert!(stored.into_fact().is_none());
}

/// [`StoredFact`] as save layout 3 encodes it: roles as bare bytes.
#[derive(Serialize)]
struct StoredFactV3 {
    seq: u64,
    record_len: u32,
    text: String,
    spans: [Span; SPANS],
    has_process: bool,
    refs: Vec<(u8, u32, u32)>,
}

#[test]
fn a_stored_fact_encodes_as_save_layout_3_says() {
    let bytes = record(
        1,
        A,
        "meeting.held",
        r#"{"meeting_id":"meeting:m","participants":[{"actor":"actor:a"},{"actor":"org:x"}]}"#,
    );
    let fact = Fact::parse(1, &bytes).unwrap(); // ok: test code (a #[cfg(test)] module)
    let stored = fact.stored();
    // Saves hold the spans by position, in this order: of the fact's text, but `data`
    // and `evidence`, which are of the record.
    let record = std::str::from_utf8(&bytes).unwrap(); // ok: test code (a #[cfg(test)] module)
    let at = |i: usize| {
        let (a, b) = stored.spans[i];
        let of = if Field::in_record(i) {
            record
        } else {
            stored.text.as_str()
        };
        &of[a as usize..b as usize]
    };
    assert_eq!(
        (0..SPANS).map(at).collect::<Vec<_>>(),
        [
            A,
            "meeting.held",
            "2026-01-01T00:00:00.000000Z",
            "t",
            r#"{"precision":"unknown"}"#,
            "p",
            r#"{"meeting_id":"meeting:m","participants":[{"actor":"actor:a"},{"actor":"org:x"}]}"#,
            r#"[{"source":"src:a","relation":"reports"}]"#,
            "",
        ]
    );
    let pinned = StoredFactV3 {
        seq: stored.seq,
        record_len: stored.record_len,
        text: stored.text.clone(),
        spans: stored.spans,
        has_process: stored.has_process,
        refs: stored
            .refs
            .iter()
            .map(|&(role, a, b)| {
                let byte = match role {
                    Role::Actor => 0,
                    Role::Source => 1,
                    Role::PatchActor => 2,
                    Role::Target => 3,
                    Role::Talks => 4,
                };
                (byte, a, b)
            })
            .collect(),
    };
    let pinned = postcard::to_allocvec(&pinned).unwrap(); // ok: test code (a #[cfg(test)] module)
    assert_eq!(postcard::to_allocvec(&stored).unwrap(), pinned); // ok: test code (a #[cfg(test)] module)
    let loaded: StoredFact = postcard::from_bytes(&pinned).unwrap(); // ok: test code (a #[cfg(test)] module)
    let back = loaded.into_fact().unwrap(); // ok: test code (a #[cfg(test)] module)
    let refs: Vec<(Role, &str)> = back.refs().collect();
    assert_eq!(
        refs,
        [
            (Role::Actor, "actor:a"),
            (Role::Actor, "org:x"),
            (Role::Source, "src:a")
        ]
    );
    assert_eq!(back.event_kind(), Some(EventKind::MeetingHeld));
}

#[test]
fn the_role_bytes_are_the_ones_saves_hold() {
    assert_eq!(
        [
            Role::Actor,
            Role::Source,
            Role::PatchActor,
            Role::Target,
            Role::Talks
        ]
        .map(|r| r as u8),
        [0, 1, 2, 3, 4]
    );
    assert!(postcard::from_bytes::<Role>(&[5]).is_err());
}

#[test]
fn a_type_this_build_does_not_know_reads_from_the_record() {
    let bytes = record(1, A, "meeting.planned", "{}");
    let fact = Fact::parse(1, &bytes).unwrap(); // ok: test code (a #[cfg(test)] module)
    assert_eq!(fact.event_kind(), None);
    assert_eq!(fact.kind(), "meeting.planned");
}
