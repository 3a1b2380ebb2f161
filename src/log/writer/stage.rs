//! The writer's staging: what a group has accepted but not yet written (the overlay), and
//! the checks a request must pass against the log and the overlay: idempotency, expected
//! version, references (each id of the kind its field needs), introductions (an id keeps its
//! first kind; a registry entry is introduced once), and for a restore the exact continuation
//! of the chain.
//! A refused request must never leave a trace in the overlay, and nothing here ever writes to
//! the store: the group loop writes the overlay in one batch.

// foldhash, not SipHash: the writer hashes every staged id; its seed is still random per process.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::super::encode::{self, Encoded};
use super::super::merkle::{self, Frontier};
use super::super::record::{self, Hash, Record};
use super::super::{
    Append, AppendError, Appended, Declaration, ExpectedVersion, Head, JsonText, Position,
    Requirement, Restore,
};
use super::super::{chunk, id_index, layout};
use super::Writer;
use super::entries::{self, Origin};
use super::heads::StreamHead;
use super::id_spans::IdSpan;

/// An event staged in this group, as a repeated id is compared with it: a restored record as
/// it was read; a submitted event as its record but for the payload, and the payload as the
/// text it was encoded as, parsed back only for that comparison (which is rare).
pub(super) enum Staged {
    /// A record of a restore.
    Restored(Record),
    /// A submitted event.
    Submitted(Submitted),
}

/// A submitted event as staged: its record, payload `null`, and its payload's text.
pub(super) struct Submitted {
    head: Record,
    occurred: JsonText,
    data: JsonText,
    evidence: JsonText,
    meta: Option<JsonText>,
}

impl Staged {
    /// The event's record.
    fn record(&self) -> Record {
        match self {
            Staged::Restored(record) => record.clone(),
            Staged::Submitted(s) => Record {
                occurred: s.occurred.value(),
                data: s.data.value(),
                evidence: s.evidence.value(),
                meta: s.meta.as_ref().map(JsonText::value),
                ..s.head.clone()
            },
        }
    }
}

/// What the current group has staged but not yet written: later requests in the same group
/// must see it, and a refused request must leave it untouched.
#[derive(Default)]
pub(super) struct Overlay {
    pub(super) streams: HashMap<String, StreamHead>,
    /// Event ids staged in this group: id → (event, position).
    pub(super) ids: HashMap<Uuid, (Staged, Position)>,
    /// Ids introduced in this group: id → (kind, the last seq of the request that staged it).
    pub(super) names: HashMap<String, (String, u64)>,
    /// Registry entries changed in this group: key → (registration seq, entry, the last seq
    /// of the request that staged it).
    pub(super) entries: HashMap<String, (u64, serde_json::Value, u64)>,
    /// The id index's spans this group adds to, each with the bucket that takes its next ids
    /// (`id_index.rs`); each bucket is staged as one write when the group is written
    /// (`seal_id_buckets`), not once per request.
    pub(super) id_spans: HashMap<[u8; 7], IdSpan>,
    /// Buckets this group filled, changed since they were last staged: key, value.
    pub(super) filled_buckets: Vec<([u8; 8], Vec<u8>)>,
    pub(super) writes: Vec<(Vec<u8>, Vec<u8>)>,
    /// The group's records (hash, JSON) from the head's next seq on, written as chunks.
    pub(super) records: Vec<(Hash, Vec<u8>)>,
    pub(super) next_seq: u64,
    pub(super) head_hash: Hash,
    /// The Merkle right edge after what is staged.
    pub(super) frontier: Frontier,
    /// The `recorded_at` of appends staged from here on: a restore of later-stamped records
    /// raises it, so an append after it in the same group is not stamped earlier.
    pub(super) stamp: Stamp,
}

impl Overlay {
    /// Takes in the ids a request introduced and the registry entries it changed, each marked
    /// with the request's last seq (`last`): once the group holding that seq is written, the
    /// nats writer's shared overlay lets them go (`replicated.rs`, `take_first`).
    fn keep_introduced(
        &mut self,
        names: HashMap<String, String>,
        entries: impl IntoIterator<Item = (String, (u64, serde_json::Value))>,
        last: u64,
    ) {
        self.names
            .extend(names.into_iter().map(|(id, kind)| (id, (kind, last))));
        self.entries.extend(
            entries
                .into_iter()
                .map(|(key, (at, state))| (key, (at, state, last))),
        );
    }
}

/// A `recorded_at`, as a time and as the text the records carry.
#[derive(Clone)]
pub(super) struct Stamp {
    pub(super) at: OffsetDateTime,
    pub(super) text: String,
}

impl Stamp {
    pub(super) fn new(at: OffsetDateTime) -> Stamp {
        Stamp {
            at,
            text: super::format_time(at),
        }
    }

    /// Moves the stamp to `at` if that is later; never back.
    pub(super) fn raise(&mut self, at: OffsetDateTime) {
        if at > self.at {
            *self = Stamp::new(at);
        }
    }
}

impl Default for Stamp {
    fn default() -> Stamp {
        Stamp::new(OffsetDateTime::UNIX_EPOCH)
    }
}

impl Writer {
    /// The record and position of an id already in the log or staged in this group.
    fn existing(&self, id: &Uuid, overlay: &Overlay) -> Result<Option<(Record, Position)>, String> {
        if let Some((staged, p)) = overlay.ids.get(id) {
            return Ok(Some((staged.record(), p.clone())));
        }
        // The store holds every group applied before this one (a group staged meanwhile with
        // the nats backend is in `overlay.ids`, as this one's are).
        let Some(seq) =
            id_index::lookup(&self.tree, id, self.singles).map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let rec = chunk::get(&self.tree, seq)
            .map_err(|e| e.to_string())?
            .ok_or("id index points at a missing record")?;
        let parsed = rec.record().map_err(|e| e.to_string())?;
        let position = Position {
            id: *id,
            seq,
            version: parsed.version,
            hash: rec.hash,
            recorded_at: parsed.recorded_at.clone(),
            repeat: false,
        };
        Ok(Some((parsed, position)))
    }

    /// The kind and introducing seq of an id already in the log or staged in this group (seq
    /// 0: staged). The kind is empty for an entry from before kinds were stored.
    fn known_id(&self, id: &str, overlay: &Overlay) -> Result<Option<(String, u64)>, String> {
        if let Some((kind, _)) = overlay.names.get(id) {
            return Ok(Some((kind.clone(), 0)));
        }
        if let Some(found) = self.known.get(id) {
            return Ok(Some(found));
        }
        for namespace in layout::REGISTRY_NAMESPACES {
            let key = layout::registry_key(&format!("{namespace}{id}"));
            if let Some(v) = self.tree.get(key).map_err(|e| e.to_string())? {
                let (seq, kind) =
                    layout::read_registry_value(&v).ok_or("corrupt registry entry")?;
                // Read from the store, so durable: it stays true (see `known`).
                self.known.remember(id, &kind, seq);
                return Ok(Some((kind, seq)));
            }
        }
        Ok(None)
    }

    /// Why `req` is not met by the log, the overlay and `local` (ids introduced earlier in the
    /// same request), or `None` when it is.
    fn unmet(
        &self,
        req: &Requirement,
        local: &HashMap<String, String>,
        local_events: &HashSet<Uuid>,
        overlay: &Overlay,
    ) -> Result<Option<(String, String)>, AppendError> {
        req.unmet(
            |id| match local.get(id) {
                Some(k) => Ok(Some(k.clone())),
                None => Ok(looked_up(self.known_id(id, overlay))?.map(|(k, _)| k)),
            },
            |id| {
                // Staged in this group: known without building its record.
                Ok(local_events.contains(id)
                    || overlay.ids.contains_key(id)
                    || self
                        .existing(id, overlay)
                        .map_err(AppendError::Unavailable)?
                        .is_some())
            },
        )
    }

    /// Whether `decl` may introduce its id: `Ok(true)` when the id is new, `Ok(false)` when it
    /// is one more claim about a known thing of the same kind.
    fn introduce(
        &self,
        index: usize,
        decl: &Declaration,
        local: &HashMap<String, String>,
        overlay: &Overlay,
    ) -> Result<bool, AppendError> {
        let prior = match local.get(&decl.id) {
            Some(k) => Some((k.clone(), 0)),
            None => looked_up(self.known_id(&decl.id, overlay))?,
        };
        decl.admit(index, prior)
    }

    /// Checks one request and stages its writes; on refusal the overlay is unchanged.
    pub(super) fn stage_append(
        &mut self,
        append: Append,
        encoded: &Encoded,
        recorded_at: &str,
        overlay: &mut Overlay,
    ) -> Result<Appended, AppendError> {
        let current = self.stream_head(&append.stream, overlay)?;
        // Idempotency first: a repeated request answers with the original positions even if
        // the stream has moved on since.
        let mut duplicates = Vec::new();
        let mut seen = HashSet::new();
        for (index, ev) in append.events.iter().enumerate() {
            if !seen.insert(ev.id) {
                return Err(AppendError::DuplicateInRequest { index, id: ev.id });
            }
            // A server-minted UUIDv7 cannot already be in the log: skip the lookup.
            let found = if ev.client_id {
                self.existing(&ev.id, overlay)
                    .map_err(AppendError::Unavailable)?
            } else {
                None
            };
            if let Some((rec, pos)) = found {
                let candidate = Record {
                    stream: append.stream.clone(),
                    event_type: ev.event_type.clone(),
                    schema_version: ev.schema_version,
                    occurred: ev.occurred.value(),
                    process: ev.process.clone(),
                    data: ev.data.value(),
                    evidence: ev.evidence.value(),
                    meta: ev.meta.as_ref().map(JsonText::value),
                    ..rec.clone()
                };
                if candidate.content() != rec.content() {
                    return Err(AppendError::IdConflict {
                        index,
                        id: ev.id,
                        seq: pos.seq,
                    });
                }
                duplicates.push((index, pos));
            }
        }
        if !duplicates.is_empty() {
            if let Some(positions) = self.repeat_of(&append.events, &duplicates, overlay)? {
                return Ok(Appended {
                    positions,
                    stream_version: current.as_ref().map_or(0, StreamHead::version),
                    duplicate: true,
                });
            }
            let (index, pos) = &duplicates[0];
            return Err(AppendError::PartialDuplicate {
                index: *index,
                id: pos.id,
            });
        }

        let current_version = current.as_ref().map_or(0, StreamHead::version);
        let ok = match append.expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current.is_none(),
            ExpectedVersion::Exists => current.is_some(),
            ExpectedVersion::Exact(n) => n == current_version,
        };
        if !ok {
            return Err(AppendError::WrongExpectedVersion {
                stream: append.stream.clone(),
                expected: append.expected,
                current: current_version,
            });
        }

        // References: earlier events of this request count as existing.
        let mut local: HashMap<String, String> = HashMap::new();
        let mut local_ids: HashSet<Uuid> = HashSet::new();
        // Registry entries this request changes, and its re-registrations that are no-ops.
        let mut changed = HashMap::new();
        let mut noop: Vec<Option<Origin>> = vec![None; append.events.len()];
        for (index, ev) in append.events.iter().enumerate() {
            for req in &ev.refs.requires {
                if let Some((pointer, what)) = self.unmet(req, &local, &local_ids, overlay)? {
                    return Err(AppendError::MissingReference {
                        index,
                        pointer,
                        what,
                    });
                }
            }
            for decl in &ev.refs.declares {
                let fresh = match self.introduce(index, decl, &local, overlay) {
                    Err(AppendError::AlreadyDeclared { .. }) if decl.entry.is_some() => false,
                    r => r?,
                };
                if fresh {
                    local.insert(decl.id.clone(), decl.kind.clone());
                }
                noop[index] = self.judge_entry(index, decl, &mut changed, overlay)?;
            }
            if noop[index].is_none() {
                local_ids.insert(ev.id);
            }
        }
        if noop.iter().all(Option::is_some) {
            // Every event re-registers what is known: answered like an idempotent repeat.
            let mut positions = Vec::with_capacity(noop.len());
            for origin in noop.iter().flatten() {
                if let Origin::Seq(seq) = origin {
                    positions.push(Position {
                        repeat: true,
                        ..self.position_at(*seq, overlay)?
                    });
                }
            }
            return Ok(Appended {
                positions,
                stream_version: current_version,
                duplicate: true,
            });
        }
        // The ids this request introduces, written once each, under the first event's seq.
        let mut fresh: HashSet<String> = local.keys().cloned().collect();

        // Accepted: build the records and stage them.
        let mut seq = overlay.next_seq;
        let mut hash = overlay.head_hash;
        let mut version = current_version;
        let mut staged = Vec::with_capacity(append.events.len() + 2);
        let mut records = Vec::with_capacity(append.events.len());
        let mut staged_ids = Vec::with_capacity(append.events.len());
        let mut new_ids = Vec::with_capacity(append.events.len());
        let mut positions: Vec<Position> = Vec::with_capacity(append.events.len());
        // Leaves join the frontier only once the request is accepted whole: no copy of the
        // frontier per request.
        let mut leaves = Vec::with_capacity(append.events.len());
        let recorded_at_json = encode::json_string(recorded_at);
        let Append {
            stream,
            events,
            principal,
            ..
        } = append;
        for (index, ev) in events.into_iter().enumerate() {
            match noop[index] {
                Some(Origin::Seq(seq)) => {
                    positions.push(Position {
                        repeat: true,
                        ..self.position_at(seq, overlay)?
                    });
                    continue;
                }
                Some(Origin::Local(i)) => {
                    positions.push(Position {
                        repeat: true,
                        ..positions[i].clone()
                    });
                    continue;
                }
                None => {}
            }
            version += 1;
            // Fields move into the staged event: no copy of the payload on the hot path.
            let staged_event = Submitted {
                head: Record {
                    id: ev.id,
                    seq,
                    stream: stream.clone(),
                    version,
                    event_type: ev.event_type,
                    schema_version: ev.schema_version,
                    recorded_at: recorded_at.to_string(),
                    recorded_by: principal.clone(),
                    occurred: serde_json::Value::Null,
                    process: ev.process,
                    data: serde_json::Value::Null,
                    evidence: serde_json::Value::Null,
                    meta: None,
                    prev_hash: record::hash_hex(&hash),
                },
                occurred: ev.occurred,
                data: ev.data,
                evidence: ev.evidence,
                meta: ev.meta,
            };
            // Joined from the parts the request's task encoded: the payload is not
            // serialised here.
            let bytes = encoded
                .record(index, &ev.id, seq, version, &recorded_at_json, &hash)
                .ok_or_else(|| {
                    AppendError::Unavailable("an event was queued without its encoded parts".into())
                })?;
            hash = record::chain(&hash, &bytes);
            if self.merkle {
                leaves.push(merkle::leaf_hash(&bytes));
            }
            records.push((hash, bytes));
            new_ids.push((ev.id, seq));
            for decl in ev.refs.declares {
                if fresh.remove(&decl.id) {
                    staged.push((
                        layout::registry_key(&decl.key),
                        layout::registry_value(seq, &decl.kind),
                    ));
                }
            }
            let position = Position {
                id: ev.id,
                seq,
                version,
                hash,
                recorded_at: recorded_at.to_string(),
                repeat: false,
            };
            positions.push(position.clone());
            staged_ids.push((Staged::Submitted(staged_event), position));
            seq += 1;
        }
        // The request's events are one run of the stream, added to its last index entry.
        let count = version - current_version;
        let head = (count > 0).then(|| {
            let (head, entry) = StreamHead::then(current, &stream, seq - count, count);
            staged.push(entry);
            head
        });
        let mut entries_now = Vec::with_capacity(changed.len());
        for (key, (origin, state)) in changed {
            let at = match origin {
                Origin::Seq(s) => s,
                Origin::Local(i) => positions[i].seq,
            };
            staged.push((entries::state_key(&key), entries::state_value(at, &state)));
            entries_now.push((key, (at, state)));
        }

        // Commit the staging into the overlay: the last step that may fail comes first.
        self.stage_ids(&new_ids, overlay, &mut staged)?;
        for leaf in leaves {
            stage_leaf(&mut overlay.frontier, leaf, &mut staged);
        }
        overlay.writes.extend(staged);
        overlay.records.extend(records);
        for (staged, pos) in staged_ids {
            overlay.ids.insert(pos.id, (staged, pos));
        }
        overlay.keep_introduced(local, entries_now, seq - 1);
        if let Some(head) = head {
            overlay.streams.insert(stream, head);
        }
        overlay.next_seq = seq;
        overlay.head_hash = hash;
        Ok(Appended {
            positions,
            stream_version: version,
            duplicate: false,
        })
    }

    /// Checks exported records continue the log exactly and stages them verbatim.
    pub(super) fn stage_restore(
        &mut self,
        records: Vec<Restore>,
        overlay: &mut Overlay,
    ) -> Result<Head, AppendError> {
        let mut seq = overlay.next_seq;
        let mut hash = overlay.head_hash;
        let mut staged = Vec::new();
        let mut kept: Vec<(Hash, Vec<u8>)> = Vec::new();
        let mut streams: HashMap<String, StreamHead> = HashMap::new();
        let mut names: HashMap<String, String> = HashMap::new();
        let mut restored: HashMap<String, (u64, serde_json::Value)> = HashMap::new();
        let mut ids: Vec<(Record, Position)> = Vec::new();
        let mut frontier = overlay.frontier.clone();
        let mut latest = overlay.stamp.at;
        let mut new_ids = Vec::with_capacity(records.len());
        for r in records {
            let rec = r.record;
            let mismatch = |reason: String| AppendError::RestoreMismatch {
                seq: rec.seq,
                reason,
            };
            if rec.seq != seq {
                return Err(mismatch(format!("expected seq {seq}")));
            }
            if rec.prev_hash != record::hash_hex(&hash) {
                return Err(mismatch("prev_hash does not continue the chain".into()));
            }
            let current = match streams.remove(&rec.stream) {
                Some(h) => Some(h),
                None => self.stream_head(&rec.stream, overlay)?,
            };
            let expected_version = current.as_ref().map_or(0, StreamHead::version) + 1;
            if rec.version != expected_version {
                return Err(mismatch(format!(
                    "stream `{}` version should be {expected_version}",
                    rec.stream
                )));
            }
            if self
                .existing(&rec.id, overlay)
                .map_err(AppendError::Unavailable)?
                .is_some()
                || ids.iter().any(|(x, _)| x.id == rec.id)
            {
                return Err(mismatch(format!("event id {} is already present", rec.id)));
            }
            for req in &r.refs.requires {
                if matches!(
                    req,
                    Requirement::Id {
                        on_restore: false,
                        ..
                    }
                ) {
                    continue;
                }
                let events: HashSet<Uuid> = match req {
                    Requirement::Event { id, .. } if ids.iter().any(|(x, _)| x.id == *id) => {
                        std::iter::once(*id).collect()
                    }
                    _ => HashSet::new(),
                };
                if let Some((_, what)) = self.unmet(req, &names, &events, overlay)? {
                    return Err(mismatch(format!(
                        "it references something not yet in the log: {what}"
                    )));
                }
            }
            let bytes = rec
                .to_bytes()
                .map_err(|e| AppendError::Unavailable(format!("cannot encode record: {e}")))?;
            let computed = record::chain(&hash, &bytes);
            if computed != r.hash {
                return Err(mismatch(
                    "its hash does not match its content (altered export?)".into(),
                ));
            }
            hash = computed;
            if self.merkle {
                stage_merkle(&mut frontier, &bytes, &mut staged);
            }
            kept.push((hash, bytes));
            new_ids.push((rec.id, seq));
            // A restored record is a run of one, added to its stream's last entry.
            let (head, entry) = StreamHead::then(current, &rec.stream, seq, 1);
            staged.push(entry);
            for decl in &r.refs.declares {
                // A restored record was judged when it was appended: it only moves its entry.
                let mut one = HashMap::new();
                if let Some(e) = restored.get(&decl.key) {
                    one.insert(decl.key.clone(), (Origin::Seq(e.0), e.1.clone()));
                }
                if self.judge_entry(0, decl, &mut one, overlay).is_ok()
                    && let Some((key, (origin, state))) = one.into_iter().next()
                {
                    let at = match origin {
                        Origin::Seq(s) => s,
                        Origin::Local(_) => seq,
                    };
                    staged.push((entries::state_key(&key), entries::state_value(at, &state)));
                    restored.insert(key, (at, state));
                }
                match self.introduce(0, decl, &names, overlay) {
                    Ok(true) => {
                        names.insert(decl.id.clone(), decl.kind.clone());
                        staged.push((
                            layout::registry_key(&decl.key),
                            layout::registry_value(seq, &decl.kind),
                        ));
                    }
                    Ok(false) => {}
                    Err(AppendError::Unavailable(why)) => {
                        return Err(AppendError::Unavailable(why));
                    }
                    Err(AppendError::AlreadyDeclared { .. }) => {
                        return Err(mismatch(format!("`{}` is already registered", decl.key)));
                    }
                    Err(e) => return Err(mismatch(e.to_string())),
                }
            }
            streams.insert(rec.stream.clone(), head);
            let pos = Position {
                id: rec.id,
                seq,
                version: rec.version,
                hash,
                recorded_at: rec.recorded_at.clone(),
                repeat: false,
            };
            if let Ok(t) = OffsetDateTime::parse(&rec.recorded_at, &Rfc3339) {
                latest = latest.max(t);
            }
            ids.push((rec, pos));
            seq += 1;
        }
        self.stage_ids(&new_ids, overlay, &mut staged)?;
        overlay.writes.extend(staged);
        overlay.records.extend(kept);
        overlay.streams.extend(streams);
        overlay.keep_introduced(names, restored, seq - 1);
        for (rec, pos) in ids {
            overlay.ids.insert(rec.id, (Staged::Restored(rec), pos));
        }
        overlay.next_seq = seq;
        overlay.head_hash = hash;
        overlay.frontier = frontier;
        overlay.stamp.raise(latest);
        Ok(Head { seq: seq - 1, hash })
    }
}

/// Adds a record's leaf to the Merkle frontier and stages every completed subtree from
/// `STORED_FROM_LEVEL` up; lower ones are recomputed from the records when needed.
fn stage_merkle(frontier: &mut Frontier, bytes: &[u8], staged: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    stage_leaf(frontier, merkle::leaf_hash(bytes), staged);
}

/// [`stage_merkle`] of a leaf already hashed.
fn stage_leaf(frontier: &mut Frontier, leaf: Hash, staged: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    for (level, index, h) in frontier.push(leaf) {
        if level >= merkle::STORED_FROM_LEVEL {
            staged.push((layout::merkle_key(level, index).to_vec(), h.to_vec()));
        }
    }
}

/// What a registry lookup found. A failed lookup is `Unavailable`, for an append and a
/// restore alike: a storage error must never read as "not registered", which would let a
/// restore declare a key twice.
fn looked_up<T>(lookup: Result<Option<T>, String>) -> Result<Option<T>, AppendError> {
    lookup.map_err(AppendError::Unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A storage fault cannot be provoked at this lookup with real parts: every earlier lookup
    // of the same record reads the same tree first. So the mapping is checked where it is made.
    #[test]
    fn a_failed_registry_lookup_is_unavailable_not_unregistered() {
        assert!(matches!(
            looked_up::<u64>(Err("io error".into())),
            Err(AppendError::Unavailable(why)) if why == "io error"
        ));
        assert_eq!(looked_up(Ok(Some(3))).unwrap(), Some(3));
        assert_eq!(looked_up::<u64>(Ok(None)).unwrap(), None);
    }
}
