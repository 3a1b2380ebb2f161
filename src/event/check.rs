//! A dry run of a whole file of submissions: every line validated as if the lines before it
//! had been appended in order (references resolve against the log plus the earlier accepted
//! lines), every problem reported with its line, JSON pointer and message. For
//! `annals import --check`. This must never write: it only reads what the log knows through
//! [`Known`].

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::{InputError, Validator, parse_json};
use crate::log::{Declaration, Requirement};

/// What the log already knows, as the check needs it.
pub trait Known {
    /// The kind of an introduced id ("an actor"; empty for an entry from before kinds) and the
    /// seq that introduced it.
    fn id_kind(&self, id: &str) -> Result<Option<(String, u64)>, String>;
    /// Whether an event with this id is in the log.
    fn has_event(&self, id: &Uuid) -> Result<bool, String>;
}

impl Known for crate::log::Log {
    fn id_kind(&self, id: &str) -> Result<Option<(String, u64)>, String> {
        crate::log::Log::id_kind(self, id).map_err(|e| e.to_string())
    }

    fn has_event(&self, id: &Uuid) -> Result<bool, String> {
        self.get_by_id(id)
            .map(|r| r.is_some())
            .map_err(|e| e.to_string())
    }
}

/// One problem of a checked file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LineProblem {
    /// 1-based line number.
    pub line: usize,
    /// JSON pointer within the line's event.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

/// The log could not be read; the check has no answer.
#[derive(Debug, thiserror::Error)]
#[error("the log could not be read: {0}")]
pub struct CheckError(String);

/// What the earlier accepted lines introduced.
#[derive(Default)]
struct Earlier {
    ids: HashMap<String, String>,
    events: HashSet<Uuid>,
}

/// Checks every non-blank line of `input` (an event, optionally with a `stream` member, as
/// `annals import` reads them) as if appended in order, and returns every problem found.
pub fn check_lines(
    validator: &Validator,
    known: &impl Known,
    input: &str,
) -> Result<Vec<LineProblem>, CheckError> {
    let mut problems = Vec::new();
    let mut earlier = Earlier::default();
    for (i, text) in input.lines().enumerate() {
        let line = i + 1;
        if text.trim().is_empty() {
            continue;
        }
        let mut report = |pointer: String, message: String| {
            problems.push(LineProblem {
                line,
                pointer,
                message,
            })
        };
        let mut raw = match parse_json(text.as_bytes()) {
            Ok(v) => v,
            Err(e) => {
                report(String::new(), e.to_string());
                continue;
            }
        };
        if let Some(obj) = raw.as_object_mut() {
            obj.remove("stream");
        }
        let event = match validator.event(&raw, "") {
            Ok(ev) => ev,
            Err(InputError::Invalid(errors)) => {
                for e in errors {
                    report(e.pointer, e.message);
                }
                continue;
            }
            Err(e @ InputError::TooLarge { .. }) => {
                let pointer = match &e {
                    InputError::TooLarge { pointer, .. } => pointer.clone().unwrap_or_default(),
                    _ => String::new(),
                };
                report(pointer, e.to_string());
                continue;
            }
            Err(e) => {
                report(String::new(), e.to_string());
                continue;
            }
        };
        let before = problems.len();
        let mut found = Vec::new();
        for req in &event.refs.requires {
            if let Some(p) = unmet(req, known, &earlier)? {
                found.push(p);
            }
        }
        let mut fresh = Vec::new();
        for decl in &event.refs.declares {
            match conflict(decl, known, &earlier)? {
                Some(p) => found.push(p),
                None => fresh.push((decl.id.clone(), decl.kind.clone())),
            }
        }
        for (pointer, message) in found {
            problems.push(LineProblem {
                line,
                pointer,
                message,
            });
        }
        // Only a line that would have been appended counts for the lines after it.
        if problems.len() == before {
            earlier.ids.extend(fresh);
            earlier.events.insert(event.id);
        }
    }
    Ok(problems)
}

/// The kind of `id` as the log plus the earlier lines know it.
fn kind_of(id: &str, known: &impl Known, earlier: &Earlier) -> Result<Option<String>, CheckError> {
    if let Some(k) = earlier.ids.get(id) {
        return Ok(Some(k.clone()));
    }
    Ok(known.id_kind(id).map_err(CheckError)?.map(|(k, _)| k))
}

/// Why a requirement is not met, with the writer's words (`log::writer::stage`).
fn unmet(
    req: &Requirement,
    known: &impl Known,
    earlier: &Earlier,
) -> Result<Option<(String, String)>, CheckError> {
    req.unmet(
        |id| kind_of(id, known, earlier),
        |id| Ok(earlier.events.contains(id) || known.has_event(id).map_err(CheckError)?),
    )
}

/// Why an id may not be introduced here, or `None`.
fn conflict(
    decl: &Declaration,
    known: &impl Known,
    earlier: &Earlier,
) -> Result<Option<(String, String)>, CheckError> {
    Ok(match kind_of(&decl.id, known, earlier)? {
        None => None,
        Some(k) if !k.is_empty() && k != decl.kind => Some((
            decl.pointer.clone(),
            format!(
                "`{}` is {k}; an id keeps the kind it was introduced with, so it cannot also be {}",
                decl.id, decl.kind
            ),
        )),
        Some(_) if decl.once => Some((
            decl.pointer.clone(),
            format!("`{}` is already registered", decl.key),
        )),
        Some(_) => None,
    })
}

#[cfg(test)]
mod tests {
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
        fn has_event(&self, _: &Uuid) -> Result<bool, String> {
            Ok(false)
        }
    }

    fn validator() -> Validator {
        Validator::new(
            Schemas::load().unwrap(),
            crate::config::Config::defaults().unwrap().limits,
        )
    }

    #[test]
    fn every_problem_of_a_file_is_listed_at_its_line_and_later_lines_see_earlier_ones() {
        let input = [
            // 1: registers an actor the later lines use.
            r#"{"stream":"r","type":"actor.registered","data":{"actor_id":"st:ru","name":"R","kind":"state"},"evidence":[{"source":"src:a","relation":"reports"}]}"#,
            "",
            // 3: a fact without occurred, and a speaker that is an issue.
            r#"{"type":"statement.made","data":{"statement_id":"stm:1","speaker":"issue:land","content":"c"},"evidence":[{"source":"src:a","relation":"reports"}]}"#,
            // 4: fine, thanks to line 1.
            r#"{"type":"statement.made","occurred":{"precision":"unknown"},"data":{"statement_id":"stm:2","speaker":"st:ru","content":"c"},"evidence":[{"source":"src:a","relation":"reports"}]}"#,
            // 5: dangling talks, an unregistered source.
            r#"{"type":"meeting.held","occurred":{"precision":"unknown"},"data":{"meeting_id":"mtg:1","participants":[],"location":null,"fulfils":"tlk:x"},"evidence":[{"source":"src:nope","relation":"reports"}]}"#,
            // 6: not JSON.
            "{",
            // 7: registers st:ru again.
            r#"{"type":"actor.registered","data":{"actor_id":"st:ru","name":"R","kind":"state"},"evidence":[{"source":"src:a","relation":"reports"}]}"#,
        ]
        .join("\n");
        let problems = check_lines(&validator(), &Log, &input).unwrap();
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
                (7, "/data/actor_id"),
            ],
            "{problems:#?}"
        );
        assert!(problems[1].message.contains("`tlk:x` is not registered"));
    }

    #[test]
    fn a_wrong_kind_is_reported_once_the_schema_passes() {
        let input = r#"{"type":"statement.made","occurred":{"precision":"unknown"},"data":{"statement_id":"stm:1","speaker":"issue:land","content":"c"},"evidence":[{"source":"src:a","relation":"reports"}]}"#;
        let problems = check_lines(&validator(), &Log, input).unwrap();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].pointer, "/data/speaker");
        assert_eq!(
            problems[0].message,
            "`issue:land` is an issue, not an actor"
        );
    }
}
