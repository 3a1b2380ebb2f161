//! The registry's ids with their kinds, for folders written before ids had kinds. Such a
//! folder registered only sources, actors and issues, valued with a seq alone, and never the
//! ids facts introduce (meetings, talks, positions...). On open the writer walks the records
//! once, enters every introduced id with its kind under its first introducing seq, and sets a
//! marker so it never walks them again. This must never change a record, and never learn an
//! event type itself: which ids a record introduces comes from `event::rules::declarations`.

use foldhash::{HashSet, HashSetExt};

use serde_json::Value;

use super::super::{Declaration, LogError};
use super::super::{chunk, layout};
use super::Writer;

/// The ids a record of a type introduces, given its payload (`event::rules::declarations`).
pub type Declarations = fn(&str, &Value, &str) -> Vec<Declaration>;

impl Writer {
    /// Enters every introduced id of the durable log with its kind, unless the marker says
    /// the registry already holds them. Idempotent: a crash before the marker is durable only
    /// means the walk is made again.
    pub(in crate::log) fn load_ids(&mut self, declarations: Declarations) -> Result<(), LogError> {
        if self.tree.get(layout::IDS_MARKER)?.is_some() {
            return Ok(());
        }
        if self.head.seq > 0 {
            tracing::warn!(
                records = self.head.seq,
                "entering the ids of the log with their kinds (a folder from before ids had kinds)"
            );
        }
        let mut batch = sled::Batch::default();
        let mut seen: HashSet<String> = HashSet::new();
        for item in chunk::scan(&self.tree, 1, self.head.seq) {
            let rec = item?;
            let seq = rec.seq;
            let record = rec
                .record()
                .map_err(|_| LogError::Corrupt(format!("record {seq}")))?;
            for decl in declarations(&record.event_type, &record.data, "") {
                // The first introduction names the id's kind, as an append would have.
                if seen.insert(decl.id) {
                    batch.insert(
                        layout::registry_key(&decl.key),
                        layout::registry_value(seq, &decl.kind),
                    );
                }
            }
        }
        batch.insert(layout::IDS_MARKER, &self.head.seq.to_be_bytes()[..]);
        self.tree.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }
}
