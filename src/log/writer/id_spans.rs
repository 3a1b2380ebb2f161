//! The writer's side of the event-id index (`log/id_index.rs`): the spans a group adds to,
//! held in its overlay, each bucket changed in place and staged as one write when the group is
//! written. It must never add a request's ids before the request is accepted, and never write
//! to the store (the group loop writes the overlay in one batch).

use std::collections::hash_map::Entry;

use uuid::Uuid;

use super::super::{AppendError, id_index, layout};
use super::Writer;
use super::stage::Overlay;

/// A span of the id index as staged: the generation that takes its next ids (`None`: all are
/// full, so they get single keys), that bucket's value, and whether it changed since it was
/// last staged as a write.
pub(super) struct IdSpan {
    generation: Option<u8>,
    value: Vec<u8>,
    dirty: bool,
}

impl IdSpan {
    /// Adds `id` at `seq` to the span's bucket, going on to the next generation when it is
    /// full (the full one, if changed, into `filled`). `false`: no generation is left (or the
    /// bucket holds the id already, which the writer never asks: it looks an id up first).
    fn add(
        &mut self,
        span: &[u8; 7],
        id: &Uuid,
        seq: u64,
        filled: &mut Vec<([u8; 8], Vec<u8>)>,
    ) -> bool {
        let Some(generation) = self.generation else {
            return false;
        };
        if id_index::is_full(&self.value) {
            let full = std::mem::take(&mut self.value);
            if self.dirty {
                filled.push((layout::id_bucket_key(span, generation), full));
            }
            self.dirty = false;
            self.generation = generation.checked_add(1);
            if self.generation.is_none() {
                return false;
            }
        }
        let added = id_index::add(&mut self.value, id, seq);
        self.dirty |= added;
        added
    }
}

impl Overlay {
    /// Stages every bucket changed since the last call as a write of its whole value: once per
    /// group, however many of its requests added to it.
    pub(super) fn seal_id_buckets(&mut self) {
        for (key, value) in self.filled_buckets.drain(..) {
            self.writes.push((key.to_vec(), value));
        }
        for (span, tail) in &mut self.id_spans {
            if let (true, Some(generation)) = (tail.dirty, tail.generation) {
                let key = layout::id_bucket_key(span, generation);
                self.writes.push((key.to_vec(), tail.value.clone()));
                tail.dirty = false;
            }
        }
    }

    /// Lets go of the spans no request changed since they were last sealed: the store holds
    /// them as they are here once the group that sealed them is written, and `load_spans`
    /// reads one back when an id of it comes again.
    pub(super) fn forget_unchanged_spans(&mut self) {
        self.id_spans.retain(|_, tail| tail.dirty);
    }

    /// Adds an accepted request's ids to their spans, which `Writer::load_spans` brought into
    /// the overlay; an id whose span has no generation left is staged in `staged` as a key of
    /// its own. Returns whether it staged any such key. Infallible, so a request is added
    /// whole.
    fn add_ids(&mut self, ids: &[(Uuid, u64)], staged: &mut Vec<(Vec<u8>, Vec<u8>)>) -> bool {
        let mut single = false;
        for (id, seq) in ids {
            let span = layout::id_span(id);
            let added = match self.id_spans.get_mut(&span) {
                Some(tail) => tail.add(&span, id, *seq, &mut self.filled_buckets),
                None => false,
            };
            if !added {
                staged.push((layout::id_key(id).to_vec(), seq.to_be_bytes().to_vec()));
                single = true;
            }
        }
        single
    }
}

impl Writer {
    /// Indexes an accepted request's ids (`(id, seq)`) in the overlay's buckets, staging in
    /// `staged` the single key of any id whose span is full. Its only failure, a store read,
    /// comes before anything changes, so a request refused by it leaves no trace.
    pub(super) fn stage_ids(
        &mut self,
        ids: &[(Uuid, u64)],
        overlay: &mut Overlay,
        staged: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), AppendError> {
        self.load_spans(ids, overlay)?;
        // From now on lookups that miss a bucket also try single keys.
        self.singles |= overlay.add_ids(ids, staged);
        Ok(())
    }

    /// Brings the spans of `ids` that the overlay lacks into it, each with the bucket that
    /// takes its next ids as the store holds it (a span no group of the overlay changed is as
    /// the store has it, also with the nats backend's group staged meanwhile: the group before
    /// it left its spans in the overlay). Unchanged, so a request refused after this leaves
    /// nothing of its own.
    fn load_spans(&self, ids: &[(Uuid, u64)], overlay: &mut Overlay) -> Result<(), AppendError> {
        for (id, _) in ids {
            let span = layout::id_span(id);
            if let Entry::Vacant(slot) = overlay.id_spans.entry(span) {
                let tail = id_index::tail(&self.tree, &span)
                    .map_err(|e| AppendError::Unavailable(e.to_string()))?;
                let (generation, value) = match tail {
                    Some((generation, value)) => (Some(generation), value),
                    None => (None, Vec::new()),
                };
                slot.insert(IdSpan {
                    generation,
                    value,
                    dirty: false,
                });
            }
        }
        Ok(())
    }
}
