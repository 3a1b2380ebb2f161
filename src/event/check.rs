//! Dry runs: an append checked as the writer would check it, against what the log knows plus
//! the appends dry-run before it, with nothing written ([`DryRun`]; `?dry_run=true` on the
//! append API), and a whole import file checked that way line by line, every problem reported
//! with its line, JSON pointer, message and kind ([`check_lines`]; `annals import --check`).
//! This must never write: it only reads what the log knows through [`Known`], and it must
//! refuse in the writer's words (`log::writer::stage`), in the writer's order.

use std::collections::HashMap;

use uuid::Uuid;

use super::Validator;
use serde_json::Value;

use crate::log::{
    AppendError, Declaration, EntryChange, EntryRule, ExpectedVersion, JsonText, NewEvent, Record,
};

mod file;
pub mod line;
mod overlay;

pub use file::check_lines;

use overlay::Overlay;
pub use overlay::Packing;

/// What sort of problem a line has; `annals import --check` counts them per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Not JSON.
    Json,
    /// Beyond a size limit.
    TooLarge,
    /// No `stream`, or not a stream name.
    Stream,
    /// Breaks the event's schema or a rule of the event alone (including `expected_version`).
    Schema,
    /// Refers to an id or event the log and the earlier lines do not have, or of another kind.
    Reference,
    /// Introduces an id already introduced (a registry entry twice, or an id of another kind).
    Registry,
    /// The stream is not at the expected version.
    Version,
    /// The event id is already used for other content.
    Id,
}

impl ProblemKind {
    /// The kind's name, as `--check` prints it.
    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::Json => "json",
            ProblemKind::TooLarge => "too_large",
            ProblemKind::Stream => "stream",
            ProblemKind::Schema => "schema",
            ProblemKind::Reference => "reference",
            ProblemKind::Registry => "registry",
            ProblemKind::Version => "version",
            ProblemKind::Id => "id",
        }
    }
}

/// What the log already knows, as a dry run needs it.
pub trait Known {
    /// The kind of an introduced id ("an actor"; empty for an entry from before kinds) and the
    /// seq that introduced it.
    fn id_kind(&self, id: &str) -> Result<Option<(String, u64)>, String>;
    /// The record with this event id, if the log has it.
    fn record(&self, id: &Uuid) -> Result<Option<Record>, String>;
    /// A stream's version, or `None` when it has no event.
    fn stream_version(&self, stream: &str) -> Result<Option<u64>, String>;
    /// A registry entry as updated so far and the seq that registered it (see
    /// [`crate::log::Log::entry`]).
    fn entry(&self, key: &str, rule: EntryRule) -> Result<Option<(u64, Value)>, String>;
    /// The event id and stream version of the record at `seq`: the position a registry no-op
    /// is answered with. `None` when unknown (the answer then gives the submitted id).
    fn position(&self, seq: u64) -> Result<Option<(Uuid, u64)>, String> {
        let _ = seq;
        Ok(None)
    }
}

impl Known for crate::log::Log {
    fn id_kind(&self, id: &str) -> Result<Option<(String, u64)>, String> {
        crate::log::Log::id_kind(self, id).map_err(|e| e.to_string())
    }

    fn record(&self, id: &Uuid) -> Result<Option<Record>, String> {
        match self.get_by_id(id).map_err(|e| e.to_string())? {
            Some(r) => r.record().map(Some).map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }

    fn stream_version(&self, stream: &str) -> Result<Option<u64>, String> {
        self.stream_info(stream)
            .map(|i| i.map(|i| i.version))
            .map_err(|e| e.to_string())
    }

    fn entry(&self, key: &str, rule: EntryRule) -> Result<Option<(u64, Value)>, String> {
        crate::log::Log::entry(self, key, rule).map_err(|e| e.to_string())
    }

    fn position(&self, seq: u64) -> Result<Option<(Uuid, u64)>, String> {
        match self.get(seq).map_err(|e| e.to_string())? {
            Some(r) => r
                .record()
                .map(|r| Some((r.id, r.version)))
                .map_err(|e| e.to_string()),
            None => Ok(None),
        }
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
    /// What sort of problem.
    pub kind: ProblemKind,
}

/// The log or the input could not be read; the check has no answer.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The log could not be read.
    #[error("the log could not be read: {0}")]
    Log(String),
    /// A problem could not be reported (its output failed).
    #[error("cannot write the report: {0}")]
    Report(std::io::Error),
    /// The input could not be read.
    #[error("cannot read line {line}: {source}")]
    Io {
        /// 1-based line number.
        line: usize,
        /// Why.
        source: std::io::Error,
    },
}

/// What an accepted dry-run append would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Would {
    /// Each event's id and the stream version it would get (its existing one for a duplicate).
    pub events: Vec<(Uuid, u64)>,
    /// The stream's version after the append.
    pub stream_version: u64,
    /// True when every event is already in the log with the same content, or registers again
    /// what its registry entry already says: the append would answer with the originals and
    /// write nothing.
    pub duplicate: bool,
    /// Per event, whether it is answered with an existing record rather than appended: a
    /// repeat of an event, or a registry no-op (a re-registration that says nothing new),
    /// answered with its registration's id and version, as the writer answers it.
    pub repeats: Vec<bool>,
}

/// Where a registry entry was registered, as a no-op that repeats it is answered with it.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// The record at this seq of the log.
    Seq(u64),
    /// The event at this index of the request being checked.
    Local(usize),
    /// An event of an earlier dry-run append: its id and version.
    Dry(Uuid, u64),
}

impl Origin {
    /// The seq a contradiction names (0: not in the log yet).
    fn seq(self) -> u64 {
        match self {
            Origin::Seq(seq) => seq,
            _ => 0,
        }
    }
}

/// A dry-run refusal: the writer's own error, and its kind.
pub type Refusal = (ProblemKind, AppendError);

/// Appends checked one after another as the writer would check them, each seeing the ones
/// accepted before it; nothing is written, and no seq is taken.
pub struct DryRun<'k, K: Known> {
    known: &'k K,
    overlay: Overlay,
}

impl<'k, K: Known> DryRun<'k, K> {
    /// A dry run against what `known` holds now.
    pub fn new(known: &'k K) -> DryRun<'k, K> {
        DryRun {
            known,
            overlay: Overlay::default(),
        }
    }

    /// A dry run against what `known` holds now that packs the ids and event ids its appends
    /// add once it holds `packing.after` of them (`annals import --check`).
    pub fn packing(known: &'k K, packing: Packing) -> DryRun<'k, K> {
        DryRun {
            known,
            overlay: Overlay::packing(packing),
        }
    }

    /// Judges a registration or update against its entry as known so far (this request's
    /// `entries`, the earlier dry-run appends, the log), by the rule the writer applies: the
    /// same content is a no-op, other content a contradiction. `Ok(Some(origin))`: a no-op,
    /// answered with the registration at `origin`.
    fn judge_entry(
        &self,
        index: usize,
        decl: &Declaration,
        entries: &mut HashMap<String, (Origin, Value)>,
    ) -> Result<Option<Origin>, AppendError> {
        let Some(entry) = &decl.entry else {
            return Ok(None);
        };
        let earlier = match entries.get(&decl.key) {
            Some(v) => Some(v.clone()),
            None => self.overlay.entry(&decl.key),
        };
        let prior = match earlier {
            Some(v) => Some(v),
            None => self
                .known
                .entry(&decl.key, entry.rule)
                .map_err(AppendError::Unavailable)?
                .map(|(seq, v)| (Origin::Seq(seq), v)),
        };
        let origin = prior.as_ref().map(|(o, _)| *o);
        match (entry.rule)(
            prior.as_ref().map(|(_, v)| v),
            &entry.event_type,
            &entry.stated,
        ) {
            EntryChange::Set(state) => {
                let at = origin.unwrap_or(Origin::Local(index));
                entries.insert(decl.key.clone(), (at, state));
                Ok(None)
            }
            EntryChange::Same if origin.is_some() => Ok(origin),
            EntryChange::Same => {
                entries.insert(
                    decl.key.clone(),
                    (Origin::Local(index), entry.stated.clone()),
                );
                Ok(None)
            }
            EntryChange::Differs(fields) => {
                Err(entry.contradiction(index, &decl.id, &fields, origin.map_or(0, Origin::seq)))
            }
        }
    }

    fn kind_of(&self, id: &str) -> Result<Option<(String, u64)>, AppendError> {
        if let Some(k) = self.overlay.id(id).map_err(AppendError::Unavailable)? {
            return Ok(Some((k, 0)));
        }
        self.known.id_kind(id).map_err(AppendError::Unavailable)
    }

    /// Whether an event with this id exists, and if so whether it has this content: `None`
    /// when absent, `Some((seq, version, same))` when present (seq 0: an earlier dry run).
    fn existing(
        &self,
        stream: &str,
        ev: &NewEvent,
    ) -> Result<Option<(u64, u64, bool)>, AppendError> {
        if let Some((print, version)) = self
            .overlay
            .event(&ev.id)
            .map_err(AppendError::Unavailable)?
        {
            return Ok(Some((0, version, print == fingerprint(stream, ev))));
        }
        let Some(rec) = self
            .known
            .record(&ev.id)
            .map_err(AppendError::Unavailable)?
        else {
            return Ok(None);
        };
        let candidate = Record {
            stream: stream.to_string(),
            event_type: ev.event_type.clone(),
            schema_version: ev.schema_version,
            occurred: ev.occurred.value(),
            process: ev.process.clone(),
            data: ev.data.value(),
            evidence: ev.evidence.value(),
            meta: ev.meta.as_ref().map(JsonText::value),
            ..rec.clone()
        };
        Ok(Some((
            rec.seq,
            rec.version,
            candidate.content() == rec.content(),
        )))
    }

    /// Checks an append of `events` to `stream` in the writer's order (idempotency, expected
    /// version, then each event's references and introductions) and, if it would be accepted,
    /// counts it for the appends after it. Every problem found is returned, the first being
    /// the writer's refusal; a storage failure is an `Unavailable` refusal.
    pub fn append(
        &mut self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<Would, Vec<Refusal>> {
        self.check(stream, expected, events)
            .map_err(|e| vec![e])
            .and_then(|step| match step {
                Step::Duplicate(would) => Ok(would),
                Step::New(current) => self.references(stream, current, events),
            })
    }

    /// As the writer: a request each of whose events is stored already (`stored`: index,
    /// id, version, in order) or a registry no-op is a repeat, answered with each event's
    /// original or registration (`None`: some event is neither).
    fn repeat_of(
        &self,
        events: &[NewEvent],
        stored: &[(usize, Uuid, u64)],
    ) -> Result<Option<Vec<(Uuid, u64)>>, Refusal> {
        let mut stored = stored.iter().peekable();
        let mut at = Vec::with_capacity(events.len());
        for (index, ev) in events.iter().enumerate() {
            if let Some(&(_, id, version)) = stored.next_if(|(i, ..)| *i == index) {
                at.push((id, version));
                continue;
            }
            let mut registered = None;
            for decl in &ev.refs.declares {
                match self.judge_entry(index, decl, &mut HashMap::new()) {
                    Ok(Some(origin)) => registered = Some(origin),
                    Err(e @ AppendError::Unavailable(_)) => return Err((ProblemKind::Registry, e)),
                    _ => return Ok(None),
                }
            }
            at.push(match registered {
                Some(Origin::Seq(seq)) => self
                    .known
                    .position(seq)
                    .map_err(|e| (ProblemKind::Registry, AppendError::Unavailable(e)))?
                    .unwrap_or((ev.id, 0)),
                Some(Origin::Dry(id, version)) => (id, version),
                _ => return Ok(None),
            });
        }
        Ok(Some(at))
    }

    fn check(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<Step, Refusal> {
        let current = match self.overlay.stream(stream) {
            Some(v) => Some(v),
            None => self
                .known
                .stream_version(stream)
                .map_err(|e| (ProblemKind::Id, AppendError::Unavailable(e)))?,
        };
        let mut duplicates = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (index, ev) in events.iter().enumerate() {
            if !seen.insert(ev.id) {
                return Err((
                    ProblemKind::Id,
                    AppendError::DuplicateInRequest { index, id: ev.id },
                ));
            }
            if !ev.client_id {
                continue;
            }
            match self
                .existing(stream, ev)
                .map_err(|e| (ProblemKind::Id, e))?
            {
                None => {}
                Some((seq, _, false)) => {
                    return Err((
                        ProblemKind::Id,
                        AppendError::IdConflict {
                            index,
                            id: ev.id,
                            seq,
                        },
                    ));
                }
                Some((_, version, true)) => duplicates.push((index, ev.id, version)),
            }
        }
        if !duplicates.is_empty() {
            if let Some(events) = self.repeat_of(events, &duplicates)? {
                return Ok(Step::Duplicate(Would {
                    repeats: vec![true; events.len()],
                    events,
                    stream_version: current.unwrap_or(0),
                    duplicate: true,
                }));
            }
            let (index, id, _) = duplicates[0];
            return Err((ProblemKind::Id, AppendError::PartialDuplicate { index, id }));
        }
        let version = current.unwrap_or(0);
        let ok = match expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current.is_none(),
            ExpectedVersion::Exists => current.is_some(),
            ExpectedVersion::Exact(n) => n == version,
        };
        if !ok {
            return Err((
                ProblemKind::Version,
                AppendError::WrongExpectedVersion {
                    stream: stream.to_string(),
                    expected,
                    current: version,
                },
            ));
        }
        Ok(Step::New(version))
    }

    /// Every event's references and introductions; earlier events of the request count.
    fn references(
        &mut self,
        stream: &str,
        current: u64,
        events: &[NewEvent],
    ) -> Result<Would, Vec<Refusal>> {
        let mut local: HashMap<String, String> = HashMap::new();
        let mut local_events = std::collections::HashSet::new();
        let mut entries: HashMap<String, (Origin, Value)> = HashMap::new();
        // As the writer: a re-registration that says nothing new is answered with its
        // registration, takes no version, and is not an event later lines can refer to.
        let mut noop: Vec<Option<Origin>> = vec![None; events.len()];
        let mut refusals = Vec::new();
        for (index, ev) in events.iter().enumerate() {
            for req in &ev.refs.requires {
                let unmet = req.unmet(
                    |id| match local.get(id) {
                        Some(k) => Ok(Some(k.clone())),
                        None => Ok(self.kind_of(id)?.map(|(k, _)| k)),
                    },
                    |id| {
                        Ok(local_events.contains(id)
                            || self
                                .overlay
                                .event(id)
                                .map_err(AppendError::Unavailable)?
                                .is_some()
                            || self
                                .known
                                .record(id)
                                .map_err(AppendError::Unavailable)?
                                .is_some())
                    },
                );
                match unmet {
                    Ok(None) => {}
                    Ok(Some((pointer, what))) => refusals.push((
                        ProblemKind::Reference,
                        AppendError::MissingReference {
                            index,
                            pointer,
                            what,
                        },
                    )),
                    Err(e) => return Err(vec![(ProblemKind::Reference, e)]),
                }
            }
            for decl in &ev.refs.declares {
                let prior = match local.get(&decl.id) {
                    Some(k) => Some((k.clone(), 0)),
                    None => self
                        .kind_of(&decl.id)
                        .map_err(|e| vec![(ProblemKind::Registry, e)])?,
                };
                // As the writer: an entry registered again is judged by its content below.
                let introduced = match decl.admit(index, prior) {
                    Err(AppendError::AlreadyDeclared { .. }) if decl.entry.is_some() => Ok(false),
                    r => r,
                };
                match introduced {
                    Ok(true) => {
                        local.insert(decl.id.clone(), decl.kind.clone());
                    }
                    Ok(false) => {}
                    Err(e) => {
                        refusals.push((ProblemKind::Registry, e));
                        continue;
                    }
                }
                match self.judge_entry(index, decl, &mut entries) {
                    Ok(origin) => noop[index] = origin,
                    Err(e) => refusals.push((ProblemKind::Registry, e)),
                }
            }
            if noop[index].is_none() {
                local_events.insert(ev.id);
            }
        }
        if !refusals.is_empty() {
            return Err(refusals);
        }
        let mut version = current;
        let mut would: Vec<(Uuid, u64)> = Vec::with_capacity(events.len());
        for (ev, origin) in events.iter().zip(&noop) {
            let at = match *origin {
                None => {
                    version += 1;
                    (ev.id, version)
                }
                Some(Origin::Local(i)) => would.get(i).copied().unwrap_or((ev.id, 0)),
                Some(Origin::Dry(id, v)) => (id, v),
                Some(Origin::Seq(seq)) => self
                    .known
                    .position(seq)
                    .map_err(|e| vec![(ProblemKind::Registry, AppendError::Unavailable(e))])?
                    .unwrap_or((ev.id, 0)),
            };
            would.push(at);
        }
        let repeats: Vec<bool> = noop.iter().map(Option::is_some).collect();
        if repeats.iter().all(|&r| r) {
            // Every event re-registers what is known: answered like an idempotent repeat.
            return Ok(Would {
                events: would,
                stream_version: current,
                duplicate: true,
                repeats,
            });
        }
        let added = events
            .iter()
            .zip(&would)
            .zip(&repeats)
            .filter(|(_, repeat)| !**repeat)
            .map(|((ev, &(_, v)), _)| (ev.id, (fingerprint(stream, ev), v)));
        let entries = entries.into_iter().map(|(key, (origin, v))| {
            let origin = match origin {
                Origin::Local(i) => would
                    .get(i)
                    .map_or(origin, |&(id, version)| Origin::Dry(id, version)),
                other => other,
            };
            (key, (origin, v))
        });
        self.overlay
            .add(local, added, entries, (stream, version))
            .map_err(|e| vec![(ProblemKind::Registry, AppendError::Unavailable(e))])?;
        Ok(Would {
            events: would,
            stream_version: version,
            duplicate: false,
            repeats,
        })
    }
}

/// How far [`DryRun::check`] got.
enum Step {
    /// Every event is already there.
    Duplicate(Would),
    /// New events, on a stream now at this version.
    New(u64),
}

/// A fingerprint of an event's content in a stream (the import's line id, as of line 0).
fn fingerprint(stream: &str, ev: &NewEvent) -> Uuid {
    line::derived_id(0, stream, ev)
}

#[cfg(test)]
mod tests;
