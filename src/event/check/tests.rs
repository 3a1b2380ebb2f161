//! Unit tests of `event::check`, kept beside it so the module itself reads as one job. Tests only.

use super::*;
use crate::event::Schemas;

/// A log that knows one source and one issue.
struct Log;

impl Known for Log {
    fn id_kind(&self, id: &str) -> Result<Option<(String, u64)>, String> {
        Ok(match id {
            "src:a" => Some(("a source".into(), 1)),
            "issue:land" => Some(("an issue".into(), 2)),
            _ => None,
        })
    }
    fn record(&self, _: &Uuid) -> Result<Option<Record>, String> {
        Ok(None)
    }
    fn stream_version(&self, _: &str) -> Result<Option<u64>, String> {
        Ok(None)
    }
    fn entry(&self, _: &str, _: EntryRule) -> Result<Option<(u64, Value)>, String> {
        Ok(None)
    }
}

fn validator() -> Validator {
    Validator::new(
        Schemas::load().unwrap(), // ok: test code (a #[cfg(test)] module)
        crate::config::Config::defaults().unwrap().limits, // ok: test code (a #[cfg(test)] module)
    )
}

/// The problems `check_lines` reports for `input`, in order. The file is checked twice, once
/// with plain maps and once packing what it learns after every line, and both must agree.
fn problems_of(input: &str) -> Vec<LineProblem> {
    let check = |packing: Option<Packing>| {
        let mut problems = Vec::new();
        let counts = check_lines(&validator(), &Log, input.as_bytes(), packing, |p| {
            problems.push(p);
            Ok(())
        })
        .unwrap(); // ok: test code (a #[cfg(test)] module)
        let total: usize = counts.iter().map(|(_, n)| n).sum();
        assert_eq!(
            total,
            problems.len(),
            "the counts add up to the problems reported"
        );
        problems
    };
    let in_memory = check(None);
    let packed = check(Some(Packing { after: 1 }));
    assert_eq!(
        in_memory, packed,
        "a dry run that packs what it learns answers the same"
    );
    in_memory
}

#[test]
fn every_problem_of_a_file_is_listed_at_its_line_and_later_lines_see_earlier_ones() {
    let input = [
        // 1: registers an actor the later lines use.
        r#"{"stream":"r","type":"actor.registered","data":{"actor_id":"st:ru","name":"R","kind":"state"},"evidence":[{"source":"src:a","relation":"reports"}]}"#,
        "",
        // 3: a fact without occurred, and a speaker that is an issue.
        r#"{"stream":"p","type":"statement.made","data":{"statement_id":"stm:1","speaker":"issue:land","content":"c"},"evidence":[{"source":"src:a","relation":"reports"}]}"#,
        // 4: fine, thanks to line 1.
        r#"{"stream":"p","type":"statement.made","occurred":{"precision":"unknown"},"data":{"statement_id":"stm:2","speaker":"st:ru","content":"c"},"evidence":[{"source":"src:a","relation":"reports"}]}"#,
        // 5: dangling talks, an unregistered source.
        r#"{"stream":"p","type":"meeting.held","occurred":{"precision":"unknown"},"data":{"meeting_id":"mtg:1","participants":[],"location":null,"fulfils":"tlk:x"},"evidence":[{"source":"src:nope","relation":"reports"}]}"#,
        // 6: not JSON.
        "{",
        // 7: registers st:ru again, the same: a no-op, no problem.
        r#"{"stream":"p","type":"actor.registered","data":{"actor_id":"st:ru","name":"R","kind":"state"},"evidence":[{"source":"src:a","relation":"reports"}]}"#,
        // 8: registers st:ru again under another name: a contradiction of line 1.
        r#"{"stream":"p","type":"actor.registered","data":{"actor_id":"st:ru","name":"Other","kind":"state"},"evidence":[{"source":"src:a","relation":"reports"}]}"#,
    ]
    .join("\n");
    let problems = problems_of(&input);
    let at: Vec<(usize, &str)> = problems
        .iter()
        .map(|p| (p.line, p.pointer.as_str()))
        .collect();
    assert_eq!(
        at,
        [
            (3, "/occurred"),
            (5, "/data/fulfils"),
            (5, "/evidence/0/source"),
            (6, ""),
            (8, "/data/name"),
        ],
        "{problems:#?}"
    );
    assert!(problems[1].message.contains("`tlk:x` is not registered"));
}

#[test]
fn a_wrong_kind_is_reported_once_the_schema_passes() {
    let input = r#"{"stream":"p","type":"statement.made","occurred":{"precision":"unknown"},"data":{"statement_id":"stm:1","speaker":"issue:land","content":"c"},"evidence":[{"source":"src:a","relation":"reports"}]}"#;
    let problems = problems_of(input);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].pointer, "/data/speaker");
    assert_eq!(
        problems[0].message,
        "`issue:land` is an issue, not an actor"
    );
}
