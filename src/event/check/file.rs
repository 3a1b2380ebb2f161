//! A whole import file dry-run line by line (`annals import --check`): each line parsed as
//! import parses it and appended to one [`DryRun`], every problem handed out with its line as
//! it is found. This must never write, and never keep the problems it hands out.

use std::io::BufRead;

use super::{
    CheckError, DryRun, Known, LineProblem, Packing, ProblemKind, Refusal, Validator, line,
};
use crate::log::{AppendError, ExpectedVersion, JsonText, NewEvent, Requirement};

/// A refusal as a line's problem: its pointer within the event and its message.
fn as_problem(line: usize, (kind, e): Refusal) -> Result<LineProblem, CheckError> {
    let (pointer, message) = match e {
        AppendError::Unavailable(why) => return Err(CheckError::Log(why)),
        AppendError::MissingReference { pointer, what, .. } => (pointer, what),
        AppendError::AlreadyDeclared {
            pointer, key, seq, ..
        } => {
            let by = if seq == 0 {
                "by an earlier line".to_string()
            } else {
                format!("(seq {seq})")
            };
            (pointer, format!("`{key}` is already registered {by}"))
        }
        e @ AppendError::WrongExpectedVersion { .. } => ("/expected_version".into(), e.to_string()),
        AppendError::IdConflict { id, seq: 0, .. } => (
            "/id".into(),
            format!("event id {id} is used by an earlier line with different content"),
        ),
        ref e @ AppendError::Contradicts { ref fields, .. } => (
            fields.first().cloned().unwrap_or_else(|| "/data".into()),
            e.to_string(),
        ),
        e => ("/id".into(), e.to_string()),
    };
    Ok(LineProblem {
        line,
        pointer,
        message,
        kind,
    })
}

/// Checks every non-blank line of `input` as `annals import` would import it (a submission
/// with its `stream`, or an exported record), each as if the lines before it that passed had
/// been appended, and hands every problem found to `report`, in line order, as it is found.
/// Returns the number of problems of each kind, in [`ProblemKind`] order. An exported record
/// is checked as an append of its content (its seq and hash are not). With `packing`, the ids
/// and event ids the lines add are packed as they grow (tens of bytes a line, not hundreds).
pub fn check_lines(
    validator: &Validator,
    known: &impl Known,
    input: impl BufRead,
    packing: Option<Packing>,
    mut report: impl FnMut(LineProblem) -> Result<(), CheckError>,
) -> Result<Vec<(ProblemKind, usize)>, CheckError> {
    let mut counts: std::collections::BTreeMap<ProblemKind, usize> = Default::default();
    let mut problem = |p: LineProblem| {
        *counts.entry(p.kind).or_default() += 1;
        report(p)
    };
    let mut dry = match packing {
        Some(packing) => DryRun::packing(known, packing),
        None => DryRun::new(known),
    };
    for (i, text) in input.lines().enumerate() {
        let line = i + 1;
        let text = text.map_err(|source| CheckError::Io { line, source })?;
        let parsed = line::parse_line(validator, line as u64, &text);
        let refused = match parsed {
            Ok(line::Line::Blank) => continue,
            Err(e) => {
                for (kind, pointer, message) in e.problems {
                    problem(LineProblem {
                        line,
                        pointer,
                        message,
                        kind,
                    })?;
                }
                continue;
            }
            Ok(line::Line::Submission {
                stream,
                expected,
                event,
            }) => dry.append(&stream, expected, std::slice::from_ref(&event)),
            Ok(line::Line::Record(r)) => {
                let mut refs = r.refs;
                // A restore checks only the references the log has always checked.
                refs.requires.retain(|req| {
                    !matches!(
                        req,
                        Requirement::Id {
                            on_restore: false,
                            ..
                        }
                    )
                });
                let rec = r.record;
                let event = NewEvent {
                    id: rec.id,
                    event_type: rec.event_type,
                    schema_version: rec.schema_version,
                    occurred: rec.occurred.into(),
                    process: rec.process,
                    data: rec.data.into(),
                    evidence: rec.evidence.into(),
                    meta: rec.meta.map(JsonText::from),
                    refs,
                    client_id: true,
                };
                dry.append(
                    &rec.stream,
                    ExpectedVersion::Any,
                    std::slice::from_ref(&event),
                )
            }
        };
        if let Err(refusals) = refused {
            for r in refusals {
                problem(as_problem(line, r)?)?;
            }
        }
    }
    Ok(counts.into_iter().collect())
}
