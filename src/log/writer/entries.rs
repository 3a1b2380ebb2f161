//! Registry entries as updated so far, so a re-registration is judged against them inside the
//! writer, atomically with the append: the same content is a no-op that answers with the
//! registration, a contradiction is refused. Each entry is kept under a registry key of its
//! own (`state:` and the entry's key): the registration's seq, then the entry's JSON.
//! This must never learn an event type: how an event changes an entry is the `EntryRule`
//! that `event/` hands in with each `Declaration`.

use foldhash::HashMap;

use serde_json::Value;

use super::super::{AppendError, Declaration, EntryChange, EntryRule, NewEvent, Position};
use super::super::{chunk, layout};
use super::Writer;
use super::stage::Overlay;

/// Where an entry was registered: a seq in the log or the group, or an earlier event of the
/// same request (its index), whose seq is known only once it is built.
#[derive(Debug, Clone, Copy)]
pub(super) enum Origin {
    Seq(u64),
    Local(usize),
}

/// The key an entry's state is kept under, beside the registry key of its id.
pub(super) fn state_key(key: &str) -> Vec<u8> {
    layout::registry_key(&format!("state:{key}"))
}

/// The stored form of an entry: its registration's seq, then its JSON.
pub(super) fn state_value(seq: u64, state: &Value) -> Vec<u8> {
    let mut v = seq.to_be_bytes().to_vec();
    // A `Value` always encodes.
    v.extend_from_slice(&serde_json::to_vec(state).unwrap_or_default());
    v
}

/// An entry as the durable log knows it (its registration's seq and its state), or `None`
/// when it is not registered. A folder from before entries were kept has the registration
/// alone, which is read and folded once with `rule`.
pub(crate) fn read_entry(
    tree: &sled::Tree,
    key: &str,
    rule: EntryRule,
) -> Result<Option<(u64, Value)>, String> {
    if let Some(v) = tree.get(state_key(key)).map_err(|e| e.to_string())? {
        let seq = layout::read_u64(&v).ok_or("corrupt entry")?;
        let state = serde_json::from_slice(&v[8..]).map_err(|e| e.to_string())?;
        return Ok(Some((seq, state)));
    }
    let Some(v) = tree
        .get(layout::registry_key(key))
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let (seq, _) = layout::read_registry_value(&v).ok_or("corrupt registry entry")?;
    let rec = chunk::get(tree, seq)
        .map_err(|e| e.to_string())?
        .ok_or("the registry points at a missing record")?
        .record()
        .map_err(|e| e.to_string())?;
    Ok(match rule(None, &rec.event_type, &rec.data) {
        EntryChange::Set(state) => Some((seq, state)),
        _ => None,
    })
}

impl Writer {
    /// The entry a declaration names, as the group and the log know it: `None` when it is
    /// not registered.
    fn entry_state(
        &self,
        decl: &Declaration,
        overlay: &Overlay,
    ) -> Result<Option<(u64, Value)>, AppendError> {
        if let Some((seq, v, _)) = overlay.entries.get(&decl.key) {
            return Ok(Some((*seq, v.clone())));
        }
        let Some(entry) = &decl.entry else {
            return Ok(None);
        };
        read_entry(&self.tree, &decl.key, entry.rule).map_err(AppendError::Unavailable)
    }

    /// Judges the `index`th event's declaration against its entry so far (`entries`: what
    /// this request changed). `Ok(Some(origin))`: a no-op answered with the registration at
    /// `origin`; `Ok(None)`: the entry changes (recorded in `entries`).
    pub(super) fn judge_entry(
        &self,
        index: usize,
        decl: &Declaration,
        entries: &mut HashMap<String, (Origin, Value)>,
        overlay: &Overlay,
    ) -> Result<Option<Origin>, AppendError> {
        let Some(entry) = &decl.entry else {
            return Ok(None);
        };
        let prior = match entries.get(&decl.key) {
            Some(p) => Some(p.clone()),
            None => self
                .entry_state(decl, overlay)?
                .map(|(seq, v)| (Origin::Seq(seq), v)),
        };
        match (entry.rule)(
            prior.as_ref().map(|p| &p.1),
            &entry.event_type,
            &entry.stated,
        ) {
            EntryChange::Same if prior.is_some() => Ok(prior.map(|p| p.0)),
            EntryChange::Differs(fields) => {
                let seq = match prior.map(|p| p.0) {
                    Some(Origin::Seq(s)) => s,
                    _ => 0,
                };
                Err(entry.contradiction(index, &decl.id, &fields, seq))
            }
            EntryChange::Set(state) => {
                let origin = prior.map(|p| p.0).unwrap_or(Origin::Local(index));
                entries.insert(decl.key.clone(), (origin, state));
                Ok(None)
            }
            EntryChange::Same => {
                entries.insert(
                    decl.key.clone(),
                    (Origin::Local(index), entry.stated.clone()),
                );
                Ok(None)
            }
        }
    }

    /// The answer to a request that is a repeat: each event either stored already (found in
    /// `stored`, by index, in order) or a registry no-op, whose entry says what it says. A
    /// no-op of the first request was answered with its registration and never stored, so a
    /// resend of a request that mixed no-ops with new events finds only the new ones; it is
    /// answered as that first request was, not refused as a partial duplicate. `None` when
    /// some event is neither.
    pub(super) fn repeat_of(
        &self,
        events: &[NewEvent],
        stored: &[(usize, Position)],
        overlay: &Overlay,
    ) -> Result<Option<Vec<Position>>, AppendError> {
        let mut stored = stored.iter().peekable();
        let mut positions = Vec::with_capacity(events.len());
        for (index, ev) in events.iter().enumerate() {
            if let Some((_, p)) = stored.next_if(|(i, _)| *i == index) {
                positions.push(p.clone());
                continue;
            }
            let mut registered = None;
            for decl in &ev.refs.declares {
                // Judged against the log alone: what the request's stored events changed is
                // in it already.
                match self.judge_entry(index, decl, &mut HashMap::default(), overlay) {
                    Ok(Some(Origin::Seq(seq))) => registered = Some(seq),
                    Err(e @ AppendError::Unavailable(_)) => return Err(e),
                    _ => return Ok(None),
                }
            }
            let Some(seq) = registered else {
                return Ok(None);
            };
            positions.push(Position {
                repeat: true,
                ..self.position_at(seq, overlay)?
            });
        }
        Ok(Some(positions))
    }

    /// The position of the record at `seq`, in the group or the log.
    pub(super) fn position_at(&self, seq: u64, overlay: &Overlay) -> Result<Position, AppendError> {
        if let Some((_, p)) = overlay.ids.values().find(|(_, p)| p.seq == seq) {
            return Ok(p.clone());
        }
        let unavailable = |e: String| AppendError::Unavailable(e);
        let rec = chunk::get(&self.tree, seq)
            .map_err(|e| unavailable(e.to_string()))?
            .ok_or_else(|| unavailable(format!("no record at seq {seq}")))?;
        let parsed = rec.record().map_err(|e| unavailable(e.to_string()))?;
        Ok(Position {
            id: parsed.id,
            seq,
            version: parsed.version,
            hash: rec.hash,
            recorded_at: parsed.recorded_at,
            repeat: false,
        })
    }
}
