//! The single writer: a dedicated thread that owns every append. It drains what is queued,
//! checks each request against the log and against the requests before it in the same group,
//! writes the whole group in one atomic sled batch, makes it durable, and only then answers
//! and moves the durable head. It must never answer success before the group is durable, and
//! never write part of a request.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::layout;
use super::merkle::{self, Frontier};
use super::record::{self, Hash, Record};
use super::{
    Append, AppendError, Appended, Command, Durability, ExpectedVersion, Head, LogConfig, Position,
    Requirement, Restore,
};
use crate::metrics::Metrics;

/// A stream's head as the writer tracks it.
#[derive(Debug, Clone, Copy)]
struct StreamHead {
    version: u64,
    last_seq: u64,
}

/// What the current group has staged but not yet written: later requests in the same group
/// must see it, and a refused request must leave it untouched.
#[derive(Default)]
struct Overlay {
    streams: HashMap<String, StreamHead>,
    /// Event ids staged in this group: id → (record, position).
    ids: HashMap<Uuid, (Record, Position)>,
    keys: HashSet<String>,
    writes: Vec<(Vec<u8>, Vec<u8>)>,
    next_seq: u64,
    head_hash: Hash,
    /// The Merkle right edge after what is staged.
    frontier: Frontier,
}

type AppendReply = oneshot::Sender<Result<Appended, AppendError>>;
type RestoreReply = oneshot::Sender<Result<Head, AppendError>>;

/// Answers owed once the group is durable.
enum Owed {
    Append(AppendReply, Appended),
    Restore(RestoreReply, Head),
}

pub(super) struct Writer {
    db: sled::Db,
    tree: sled::Tree,
    dir: PathBuf,
    options: LogConfig,
    head: Head,
    head_tx: watch::Sender<Head>,
    failed: Arc<AtomicBool>,
    metrics: Metrics,
    /// Stream heads already looked up; the writer is the only one who changes them.
    streams: HashMap<String, StreamHead>,
    /// The data file handle for fdatasync, opened on first use.
    data_file: Option<File>,
    /// Blob files already synced (see `sync_new_blobs`).
    synced_blobs: HashSet<std::ffi::OsString>,
    /// The blobs folder's mtime when it was last listed.
    blobs_mtime: Option<std::time::SystemTime>,
    /// `recorded_at` never goes backwards, even if the wall clock does.
    last_recorded_at: OffsetDateTime,
    /// The Merkle right edge of the durable log.
    frontier: Frontier,
    /// Whether the Merkle tree is maintained (always, except in the audit benchmark's
    /// baseline run).
    pub(super) merkle: bool,
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        db: sled::Db,
        tree: sled::Tree,
        dir: PathBuf,
        options: LogConfig,
        head: Head,
        head_tx: watch::Sender<Head>,
        failed: Arc<AtomicBool>,
        metrics: Metrics,
    ) -> Writer {
        Writer {
            db,
            tree,
            dir,
            options,
            head,
            head_tx,
            failed,
            metrics,
            streams: HashMap::new(),
            data_file: None,
            synced_blobs: HashSet::new(),
            blobs_mtime: None,
            last_recorded_at: OffsetDateTime::UNIX_EPOCH,
            frontier: Frontier::default(),
            merkle: true,
        }
    }

    /// Loads the Merkle frontier for the durable head, building the tree from the records
    /// first if the store predates it (or lost nodes).
    pub(super) fn load_merkle(&mut self) -> Result<(), sled::Error> {
        if !self.merkle {
            return Ok(());
        }
        let tree = self.tree.clone();
        let node = |l: u8, i: u64| super::Log::merkle_node(&tree, l, i);
        if let Some(f) = Frontier::load(self.head.seq, node) {
            self.frontier = f;
            return Ok(());
        }
        tracing::warn!(
            records = self.head.seq,
            "building the Merkle tree from the records"
        );
        let mut frontier = Frontier::default();
        let mut batch = sled::Batch::default();
        for item in self.tree.scan_prefix([layout::EVENT]) {
            let (_, v) = item?;
            if v.len() < 32 {
                continue;
            }
            for (level, index, h) in frontier.push(merkle::leaf_hash(&v[32..])) {
                if level >= merkle::STORED_FROM_LEVEL {
                    batch.insert(&layout::merkle_key(level, index)[..], &h[..]);
                }
            }
        }
        self.tree.apply_batch(batch)?;
        self.db.flush()?;
        self.frontier = frontier;
        Ok(())
    }

    /// Runs until every sender is gone, one group at a time.
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut closed = None;
        'outer: while let Some(first) = rx.blocking_recv() {
            let mut group = Vec::new();
            let mut events = 0;
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                if let Command::Close(reply) = cmd {
                    self.commit_group(group);
                    closed = Some(reply);
                    break 'outer;
                }
                events += command_events(&cmd);
                group.push(cmd);
                if events < self.options.max_group_events {
                    next = rx.try_recv().ok();
                }
            }
            self.commit_group(group);
        }
        // Refuse whatever is still queued or arrives later: the receiver goes away below.
        rx.close();
        while let Ok(cmd) = rx.try_recv() {
            refuse(cmd, "the log is closed");
        }
        if let Err(e) = self.db.flush() {
            tracing::error!(error = %e, "final flush failed");
        }
        tracing::debug!("writer stopped");
        if let Some(reply) = closed {
            let _ = reply.send(());
        }
    }

    fn commit_group(&mut self, group: Vec<Command>) {
        if group.is_empty() {
            return;
        }
        if self.failed.load(Ordering::Acquire) {
            for cmd in group {
                refuse(cmd, "an earlier write failed; restart the server");
            }
            return;
        }
        let now = OffsetDateTime::now_utc().max(self.last_recorded_at);
        let recorded_at = format_time(now);
        let mut overlay = Overlay {
            next_seq: self.head.seq + 1,
            head_hash: self.head.hash,
            frontier: self.frontier.clone(),
            ..Overlay::default()
        };
        let mut owed = Vec::with_capacity(group.len());
        let requests = group.len();
        for cmd in group {
            match cmd {
                Command::Append(append, reply) => {
                    let aborted = append
                        .abort_on_refusal
                        .as_ref()
                        .is_some_and(|f| f.load(Ordering::Acquire));
                    let abort_flag = append.abort_on_refusal.clone();
                    let staged = if aborted {
                        Err(AppendError::Aborted)
                    } else {
                        self.stage_append(append, &recorded_at, &mut overlay)
                    };
                    if staged.is_err()
                        && let Some(flag) = &abort_flag
                    {
                        flag.store(true, Ordering::Release);
                    }
                    match staged {
                        Ok(appended) => owed.push(Owed::Append(reply, appended)),
                        Err(e) => {
                            let outcome = match e {
                                AppendError::WrongExpectedVersion { .. }
                                | AppendError::IdConflict { .. }
                                | AppendError::PartialDuplicate { .. } => "conflict",
                                AppendError::Unavailable(_) => "unavailable",
                                _ => "rejected",
                            };
                            self.metrics
                                .append_requests
                                .with_label_values(&[outcome])
                                .inc();
                            // Refusals depend only on state that is either durable or staged
                            // before this request; answering now is safe.
                            let _ = reply.send(Err(e));
                        }
                    }
                }
                Command::Close(reply) => {
                    // `run` takes Close out of every group; answering is all that is left.
                    let _ = reply.send(());
                }
                Command::Restore(records, reply) => match self.stage_restore(records, &mut overlay)
                {
                    Ok(head) => owed.push(Owed::Restore(reply, head)),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                },
            }
        }
        if overlay.writes.is_empty() {
            // Only duplicates (or refusals): nothing to make durable, but a duplicate's
            // original may sit in this very group, which is empty here, so all are durable.
            self.answer(owed);
            return;
        }
        let new_head = Head {
            seq: overlay.next_seq - 1,
            hash: overlay.head_hash,
        };
        let event_count = new_head.seq - self.head.seq;
        let mut batch = sled::Batch::default();
        for (k, v) in overlay.writes.drain(..) {
            batch.insert(k, v);
        }
        batch.insert(
            layout::HEAD,
            &layout::head_value(new_head.seq, &new_head.hash)[..],
        );
        let started = Instant::now();
        if let Err(e) = self.make_durable(batch) {
            tracing::error!(error = %e, "group commit failed; refusing further appends");
            self.failed.store(true, Ordering::Release);
            for o in owed {
                match o {
                    Owed::Append(reply, _) => {
                        let _ =
                            reply.send(Err(AppendError::Unavailable(format!("write failed: {e}"))));
                    }
                    Owed::Restore(reply, _) => {
                        let _ =
                            reply.send(Err(AppendError::Unavailable(format!("write failed: {e}"))));
                    }
                }
            }
            return;
        }
        let elapsed = started.elapsed();
        self.metrics.flush_seconds.observe(elapsed.as_secs_f64());
        self.metrics.group_requests.observe(requests as f64);
        self.metrics.group_events.observe(event_count as f64);
        self.metrics.events_appended.inc_by(event_count);
        self.metrics.head_seq.set(new_head.seq as i64);
        self.last_recorded_at = now;
        for (name, head) in overlay.streams {
            self.streams.insert(name, head);
        }
        self.frontier = overlay.frontier;
        self.head = new_head;
        tracing::debug!(
            seq = new_head.seq,
            events = event_count,
            requests,
            flush_us = elapsed.as_micros() as u64,
            "group committed"
        );
        // Readers see the new records only from here on: after they are durable.
        self.head_tx.send_replace(new_head);
        self.answer(owed);
    }

    fn answer(&self, owed: Vec<Owed>) {
        for o in owed {
            match o {
                Owed::Append(reply, appended) => {
                    let outcome = if appended.duplicate {
                        "duplicate"
                    } else {
                        "ok"
                    };
                    self.metrics
                        .append_requests
                        .with_label_values(&[outcome])
                        .inc();
                    // The client may have gone away; the append stands regardless.
                    let _ = reply.send(Ok(appended));
                }
                Owed::Restore(reply, head) => {
                    let _ = reply.send(Ok(head));
                }
            }
        }
    }

    /// One atomic batch, sled's flush, then fdatasync of sled's data file: sled 0.34 flushes
    /// with sync_file_range, which does not empty the disk's write cache.
    fn make_durable(&mut self, batch: sled::Batch) -> Result<(), std::io::Error> {
        self.tree.apply_batch(batch).map_err(sled_io)?;
        self.db.flush().map_err(sled_io)?;
        if self.options.durability == Durability::Fsync {
            if self.data_file.is_none() {
                self.data_file = Some(File::open(self.dir.join("db"))?);
                // The folder entry of a new `db` file must be durable too.
                File::open(&self.dir)?.sync_all()?;
            }
            if let Some(f) = &self.data_file {
                f.sync_data()?;
            }
            self.sync_new_blobs()?;
        }
        Ok(())
    }

    /// sled 0.34 writes pages larger than a quarter segment to `blobs/<lsn>` files and never
    /// syncs them; a group whose pages went there is durable only once they are synced.
    /// An empty folder costs one `readdir`.
    fn sync_new_blobs(&mut self) -> Result<(), std::io::Error> {
        let blobs = self.dir.join("blobs");
        // A new file changes the folder's mtime: one stat per group instead of a listing.
        let mtime = std::fs::metadata(&blobs).and_then(|m| m.modified()).ok();
        if mtime.is_some() && mtime == self.blobs_mtime {
            return Ok(());
        }
        self.blobs_mtime = mtime;
        let entries = match std::fs::read_dir(&blobs) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut present = HashSet::new();
        let mut synced_any = false;
        for entry in entries {
            let name = entry?.file_name();
            if !self.synced_blobs.contains(&name) {
                File::open(blobs.join(&name))?.sync_data()?;
                synced_any = true;
            }
            present.insert(name);
        }
        if synced_any {
            File::open(&blobs)?.sync_all()?;
        }
        // Forget blobs sled has collected since.
        self.synced_blobs = present;
        Ok(())
    }

    fn stream_head(&mut self, stream: &str, overlay: &Overlay) -> Option<StreamHead> {
        if let Some(h) = overlay.streams.get(stream) {
            return Some(*h);
        }
        if let Some(h) = self.streams.get(stream) {
            return Some(*h);
        }
        let v = self.tree.get(layout::stream_head_key(stream)).ok()??;
        let head = StreamHead {
            version: layout::read_u64(&v)?,
            last_seq: layout::read_u64(&v[8..])?,
        };
        self.streams.insert(stream.to_string(), head);
        Some(head)
    }

    /// The record and position of an id already in the log or staged in this group.
    fn existing(&self, id: &Uuid, overlay: &Overlay) -> Result<Option<(Record, Position)>, String> {
        if let Some((r, p)) = overlay.ids.get(id) {
            return Ok(Some((r.clone(), p.clone())));
        }
        let Some(v) = self
            .tree
            .get(layout::id_key(id))
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let seq = layout::read_u64(&v).ok_or("corrupt id index")?;
        let stored = self
            .tree
            .get(layout::event_key(seq))
            .map_err(|e| e.to_string())?
            .ok_or("id index points at a missing record")?;
        let rec = record::Recorded::from_stored(seq, &stored).ok_or("corrupt record")?;
        let parsed = rec.record().map_err(|e| e.to_string())?;
        let position = Position {
            id: *id,
            seq,
            version: parsed.version,
            hash: rec.hash,
            recorded_at: parsed.recorded_at.clone(),
        };
        Ok(Some((parsed, position)))
    }

    fn key_exists(&self, key: &str, overlay: &Overlay) -> Result<Option<u64>, String> {
        if overlay.keys.contains(key) {
            return Ok(Some(0));
        }
        match self
            .tree
            .get(layout::registry_key(key))
            .map_err(|e| e.to_string())?
        {
            Some(v) => Ok(Some(layout::read_u64(&v).unwrap_or(0))),
            None => Ok(None),
        }
    }

    /// Checks one request and stages its writes; on refusal the overlay is unchanged.
    fn stage_append(
        &mut self,
        append: Append,
        recorded_at: &str,
        overlay: &mut Overlay,
    ) -> Result<Appended, AppendError> {
        let current = self.stream_head(&append.stream, overlay);
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
                    occurred: ev.occurred.clone(),
                    process: ev.process.clone(),
                    data: ev.data.clone(),
                    evidence: ev.evidence.clone(),
                    meta: ev.meta.clone(),
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
            if duplicates.len() == append.events.len() {
                let stream_version = current.map(|h| h.version).unwrap_or(0);
                return Ok(Appended {
                    positions: duplicates.into_iter().map(|(_, p)| p).collect(),
                    stream_version,
                    duplicate: true,
                });
            }
            let (index, pos) = &duplicates[0];
            return Err(AppendError::PartialDuplicate {
                index: *index,
                id: pos.id,
            });
        }

        let current_version = current.map(|h| h.version).unwrap_or(0);
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
        let mut local_keys: HashSet<&str> = HashSet::new();
        let mut local_ids: HashSet<Uuid> = HashSet::new();
        for (index, ev) in append.events.iter().enumerate() {
            for req in &ev.refs.requires {
                match req {
                    Requirement::Key { key, pointer } => {
                        let found = local_keys.contains(key.as_str())
                            || self
                                .key_exists(key, overlay)
                                .map_err(AppendError::Unavailable)?
                                .is_some();
                        if !found {
                            return Err(AppendError::MissingReference {
                                index,
                                pointer: pointer.clone(),
                                what: describe_key(key),
                            });
                        }
                    }
                    Requirement::Event { id, pointer } => {
                        let found = local_ids.contains(id)
                            || self
                                .existing(id, overlay)
                                .map_err(AppendError::Unavailable)?
                                .is_some();
                        if !found {
                            return Err(AppendError::MissingReference {
                                index,
                                pointer: pointer.clone(),
                                what: format!("event {id}"),
                            });
                        }
                    }
                }
            }
            for (key, pointer) in &ev.refs.declares {
                let prior = if local_keys.contains(key.as_str()) {
                    Some(0)
                } else {
                    self.key_exists(key, overlay)
                        .map_err(AppendError::Unavailable)?
                };
                if let Some(seq) = prior {
                    return Err(AppendError::AlreadyDeclared {
                        index,
                        pointer: pointer.clone(),
                        key: key.clone(),
                        seq,
                    });
                }
                local_keys.insert(key);
            }
            local_ids.insert(ev.id);
        }

        // Accepted: build the records and stage them.
        let mut seq = overlay.next_seq;
        let mut hash = overlay.head_hash;
        let mut version = current_version;
        let mut staged = Vec::with_capacity(append.events.len() * 3 + 1);
        let mut staged_ids = Vec::with_capacity(append.events.len());
        let mut positions = Vec::with_capacity(append.events.len());
        let mut frontier = overlay.frontier.clone();
        let mut declared = Vec::new();
        let Append {
            stream,
            events,
            principal,
            ..
        } = append;
        for ev in events {
            version += 1;
            // Fields move into the record: no copy of the payload on the hot path.
            let rec = Record {
                id: ev.id,
                seq,
                stream: stream.clone(),
                version,
                event_type: ev.event_type,
                schema_version: ev.schema_version,
                recorded_at: recorded_at.to_string(),
                recorded_by: principal.clone(),
                occurred: ev.occurred,
                process: ev.process,
                data: ev.data,
                evidence: ev.evidence,
                meta: ev.meta,
                prev_hash: hex::encode(hash),
            };
            let bytes = rec
                .to_bytes()
                .map_err(|e| AppendError::Unavailable(format!("cannot encode record: {e}")))?;
            hash = record::chain(&hash, &bytes);
            if self.merkle {
                stage_merkle(&mut frontier, &bytes, &mut staged);
            }
            let mut value = Vec::with_capacity(32 + bytes.len());
            value.extend_from_slice(&hash);
            value.extend_from_slice(&bytes);
            staged.push((layout::event_key(seq).to_vec(), value));
            staged.push((
                layout::stream_key(&stream, version),
                seq.to_be_bytes().to_vec(),
            ));
            staged.push((layout::id_key(&ev.id).to_vec(), seq.to_be_bytes().to_vec()));
            for (key, _) in ev.refs.declares {
                staged.push((layout::registry_key(&key), seq.to_be_bytes().to_vec()));
                declared.push(key);
            }
            let position = Position {
                id: ev.id,
                seq,
                version,
                hash,
                recorded_at: recorded_at.to_string(),
            };
            positions.push(position.clone());
            staged_ids.push((rec, position));
            seq += 1;
        }
        staged.push((
            layout::stream_head_key(&stream),
            layout::stream_head_value(version, seq - 1).to_vec(),
        ));

        // Commit the staging into the overlay.
        overlay.writes.extend(staged);
        for (rec, pos) in staged_ids {
            overlay.ids.insert(rec.id, (rec, pos));
        }
        overlay.keys.extend(declared);
        overlay.streams.insert(
            stream,
            StreamHead {
                version,
                last_seq: seq - 1,
            },
        );
        overlay.next_seq = seq;
        overlay.head_hash = hash;
        overlay.frontier = frontier;
        Ok(Appended {
            positions,
            stream_version: version,
            duplicate: false,
        })
    }

    /// Checks exported records continue the log exactly and stages them verbatim.
    fn stage_restore(
        &mut self,
        records: Vec<Restore>,
        overlay: &mut Overlay,
    ) -> Result<Head, AppendError> {
        let mut seq = overlay.next_seq;
        let mut hash = overlay.head_hash;
        let mut staged = Vec::new();
        let mut streams: HashMap<String, StreamHead> = HashMap::new();
        let mut keys: HashSet<String> = HashSet::new();
        let mut ids: Vec<(Record, Position)> = Vec::new();
        let mut frontier = overlay.frontier.clone();
        for r in records {
            let rec = r.record;
            let mismatch = |reason: String| AppendError::RestoreMismatch {
                seq: rec.seq,
                reason,
            };
            if rec.seq != seq {
                return Err(mismatch(format!("expected seq {seq}")));
            }
            if rec.prev_hash != hex::encode(hash) {
                return Err(mismatch("prev_hash does not continue the chain".into()));
            }
            let current = match streams.get(&rec.stream) {
                Some(h) => Some(*h),
                None => self.stream_head(&rec.stream, overlay),
            };
            let expected_version = current.map(|h| h.version).unwrap_or(0) + 1;
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
                let found = match req {
                    Requirement::Key { key, .. } => {
                        keys.contains(key)
                            || self
                                .key_exists(key, overlay)
                                .map_err(AppendError::Unavailable)?
                                .is_some()
                    }
                    Requirement::Event { id, .. } => {
                        ids.iter().any(|(x, _)| x.id == *id)
                            || self
                                .existing(id, overlay)
                                .map_err(AppendError::Unavailable)?
                                .is_some()
                    }
                };
                if !found {
                    return Err(mismatch(
                        "it references something not yet in the log".into(),
                    ));
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
            let mut value = Vec::with_capacity(32 + bytes.len());
            value.extend_from_slice(&hash);
            value.extend_from_slice(&bytes);
            staged.push((layout::event_key(seq).to_vec(), value));
            staged.push((
                layout::stream_key(&rec.stream, rec.version),
                seq.to_be_bytes().to_vec(),
            ));
            staged.push((layout::id_key(&rec.id).to_vec(), seq.to_be_bytes().to_vec()));
            for (key, _) in &r.refs.declares {
                if keys.contains(key) || self.key_exists(key, overlay).ok().flatten().is_some() {
                    return Err(mismatch(format!("`{key}` is already registered")));
                }
                keys.insert(key.clone());
                staged.push((layout::registry_key(key), seq.to_be_bytes().to_vec()));
            }
            streams.insert(
                rec.stream.clone(),
                StreamHead {
                    version: rec.version,
                    last_seq: seq,
                },
            );
            let pos = Position {
                id: rec.id,
                seq,
                version: rec.version,
                hash,
                recorded_at: rec.recorded_at.clone(),
            };
            if let Ok(t) = OffsetDateTime::parse(&rec.recorded_at, &Rfc3339) {
                self.last_recorded_at = self.last_recorded_at.max(t);
            }
            ids.push((rec, pos));
            seq += 1;
        }
        for (name, head) in &streams {
            staged.push((
                layout::stream_head_key(name),
                layout::stream_head_value(head.version, head.last_seq).to_vec(),
            ));
        }
        overlay.writes.extend(staged);
        overlay.streams.extend(streams);
        overlay.keys.extend(keys);
        for (rec, pos) in ids {
            overlay.ids.insert(rec.id, (rec, pos));
        }
        overlay.next_seq = seq;
        overlay.head_hash = hash;
        overlay.frontier = frontier;
        Ok(Head { seq: seq - 1, hash })
    }
}

/// Adds a record's leaf to the Merkle frontier and stages every completed subtree from
/// `STORED_FROM_LEVEL` up; lower ones are recomputed from the records when needed.
fn stage_merkle(frontier: &mut Frontier, bytes: &[u8], staged: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    for (level, index, h) in frontier.push(merkle::leaf_hash(bytes)) {
        if level >= merkle::STORED_FROM_LEVEL {
            staged.push((layout::merkle_key(level, index).to_vec(), h.to_vec()));
        }
    }
}

fn command_events(cmd: &Command) -> usize {
    match cmd {
        Command::Append(a, _) => a.events.len(),
        Command::Restore(r, _) => r.len(),
        Command::Close(_) => 0,
    }
}

fn refuse(cmd: Command, why: &str) {
    match cmd {
        Command::Append(_, reply) => {
            let _ = reply.send(Err(AppendError::Unavailable(why.into())));
        }
        Command::Restore(_, reply) => {
            let _ = reply.send(Err(AppendError::Unavailable(why.into())));
        }
        Command::Close(reply) => {
            let _ = reply.send(());
        }
    }
}

fn sled_io(e: sled::Error) -> std::io::Error {
    match e {
        sled::Error::Io(io) => io,
        other => std::io::Error::other(other.to_string()),
    }
}

/// `2026-01-23T10:00:00.123456Z`: RFC 3339, UTC, always six fractional digits so that
/// timestamps sort as strings.
pub(crate) fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// `source:src:x` → "source `src:x`".
fn describe_key(key: &str) -> String {
    match key.split_once(':') {
        Some((kind, id)) => format!("{kind} `{id}`"),
        None => format!("`{key}`"),
    }
}
