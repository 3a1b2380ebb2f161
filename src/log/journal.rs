//! The journal: each group commit's sled batch (its keys, values and removals, in order) as one
//! framed record in an append-only file of the data folder (`journal/`), made durable with one
//! `fdatasync` before the group is acknowledged, so sled's own flush leaves the
//! acknowledgement path and runs as a background checkpoint. Segments are preallocated
//! (zero-filled ahead of the write offset) and overwritten in place, so a sync never has to
//! write the file's size; a segment whose groups a checkpoint made durable in sled is reused.
//! At open, `recover` applies to sled every complete frame that sled may not hold, in order,
//! stopping at the first torn one (never acknowledged: its sync never returned), makes sled
//! durable and empties the journal. It must never let a frame be acknowledged before its
//! sync returned, never apply a frame out of order, and never drop a frame a checkpoint has
//! not covered.
//!
//! Layout of a segment (`journal/<n>.seg`, any name; the header orders them):
//!
//! | offset | content |
//! |---|---|
//! | 0 | magic `ANNJRNL1`, first LSN (u64 LE), CRC-32 of those 16 bytes (u32 LE) |
//! | 4096 | frames, back to back, then zeros (or stale frames of an earlier use) |
//!
//! A frame: payload length (u32 LE), CRC-32 of LSN ‖ payload (u32 LE), LSN (u64 LE), payload:
//! ops, each a tag (1 insert, 0 remove), key length (u32 LE), key, and for an insert the value
//! length (u32 LE) and value. A segment's frames carry consecutive LSNs from its header's on;
//! the first frame that does not (zeros, a stale frame of an earlier use, a torn write) ends it.
//! The LSN of the last group applied to sled is in the log tree's `j` key, written in the
//! group's own batch, so a frame sled already holds is never applied again.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{LogError, layout};

/// The journal's folder inside the data folder.
pub(super) const DIR: &str = "journal";
const MAGIC: &[u8; 8] = b"ANNJRNL1";
/// Where a segment's frames start: the header has a block of its own.
const HEADER: u64 = 4096;
/// A frame's length, checksum and LSN.
const FRAME_HEAD: usize = 16;
/// How far ahead of the write offset a segment is zero-filled at a time: the sync after such
/// an extension writes the file's size too, once per step instead of once per group.
const STEP: u64 = 1 << 20;
const INSERT: u8 = 1;
const REMOVE: u8 = 0;

/// A journal failure: I/O on its files, or a journal that does not follow what sled holds.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading or writing a segment failed.
    #[error("journal I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A frame is missing between what sled holds and the frames the journal holds.
    #[error(
        "the journal has no frame {missing} (sled holds up to {held}, the journal resumes at {found})"
    )]
    Gap {
        /// The frame sled needs next.
        missing: u64,
        /// The last frame sled holds.
        held: u64,
        /// The first later frame the journal holds.
        found: u64,
    },
}

impl From<JournalError> for LogError {
    fn from(e: JournalError) -> LogError {
        LogError::Journal(e)
    }
}

/// A group's batch as a journal frame, built beside the sled batch it mirrors.
pub(super) struct Frame {
    buf: Vec<u8>,
}

impl Default for Frame {
    fn default() -> Frame {
        Frame {
            buf: vec![0; FRAME_HEAD],
        }
    }
}

impl Frame {
    /// Records an insert of `value` at `key`.
    pub(super) fn insert(&mut self, key: &[u8], value: &[u8]) {
        self.buf.push(INSERT);
        put_bytes(&mut self.buf, key);
        put_bytes(&mut self.buf, value);
    }

    /// Records a removal of `key`.
    #[allow(dead_code)]
    pub(super) fn remove(&mut self, key: &[u8]) {
        self.buf.push(REMOVE);
        put_bytes(&mut self.buf, key);
    }

    /// The frame's bytes, numbered `lsn`.
    pub(super) fn seal(mut self, lsn: u64) -> Sealed {
        let len = (self.buf.len() - FRAME_HEAD) as u32;
        self.buf[8..16].copy_from_slice(&lsn.to_le_bytes());
        let crc = crc32fast::hash(&self.buf[8..]);
        self.buf[0..4].copy_from_slice(&len.to_le_bytes());
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        Sealed {
            lsn,
            bytes: self.buf,
        }
    }
}

/// A frame ready to be written.
pub(super) struct Sealed {
    /// Its LSN.
    pub(super) lsn: u64,
    bytes: Vec<u8>,
}

impl Sealed {
    /// Its size in the journal.
    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// One segment file.
struct Segment {
    file: File,
    path: PathBuf,
    /// The LSN of its first frame (its header's).
    first: u64,
    /// The LSN of its last frame written (`first - 1` when none).
    last: u64,
    /// Where the next frame goes.
    end: u64,
    /// How far it is zero-filled (or holds stale frames of an earlier use).
    prepared: u64,
}

/// The journal's writing side, owned by whoever makes groups durable (the sync thread).
pub(super) struct Journal {
    dir: PathBuf,
    /// Whether each write is followed by `fdatasync` (durability `fsync`).
    fsync: bool,
    /// A segment is rotated once its next frame would end past this.
    segment_bytes: u64,
    current: Option<Segment>,
    /// Older segments whose frames a checkpoint has not covered yet, oldest first.
    full: Vec<Segment>,
    /// Segments whose frames sled holds durably: reused before a new file is made.
    free: Vec<Segment>,
    /// The number of the next new segment file.
    next_file: u64,
    /// The LSN up to which sled is durable (the checkpointer's).
    checkpointed: Arc<AtomicU64>,
}

impl Journal {
    /// A journal in `data_dir` that `recover` has emptied.
    pub(super) fn new(
        data_dir: &Path,
        fsync: bool,
        segment_bytes: u64,
        checkpointed: Arc<AtomicU64>,
    ) -> Journal {
        Journal {
            dir: data_dir.join(DIR),
            fsync,
            segment_bytes: segment_bytes.max(HEADER + STEP),
            current: None,
            full: Vec::new(),
            free: Vec::new(),
            next_file: 0,
            checkpointed,
        }
    }

    /// Writes `frame` (the LSN after the last written) after what is written, rotating when
    /// the segment is full. It is durable only after `sync`.
    pub(super) fn write(&mut self, frame: &Sealed) -> Result<(), JournalError> {
        let len = frame.bytes.len() as u64;
        let fits = self.current.as_ref().is_some_and(|s| {
            // A frame larger than a segment gets a segment of its own.
            s.end + len <= self.segment_bytes || s.end == HEADER
        });
        if !fits {
            self.rotate(frame.lsn)?;
        }
        let Some(segment) = self.current.as_mut() else {
            return Err(std::io::Error::other("no journal segment").into());
        };
        if segment.end + len > segment.prepared {
            // Zero-filled ahead, so the syncs of the next groups leave the size alone.
            let target = (segment.end + len + STEP).min(self.segment_bytes.max(segment.end + len));
            let zeros = vec![0u8; (target - segment.prepared) as usize];
            segment.file.write_all_at(&zeros, segment.prepared)?;
            segment.prepared = target;
        }
        segment.file.write_all_at(&frame.bytes, segment.end)?;
        segment.end += len;
        segment.last = frame.lsn;
        Ok(())
    }

    /// Makes every frame written so far durable (durability `fsync`); a rotation already
    /// synced the segments before the current one.
    pub(super) fn sync(&mut self) -> Result<(), JournalError> {
        if self.fsync
            && let Some(segment) = &self.current
        {
            segment.file.sync_data()?;
        }
        Ok(())
    }

    /// Closes the current segment (synced: only the current one is synced from then on) and
    /// starts one whose first frame is `first`, reusing a segment a checkpoint covered.
    fn rotate(&mut self, first: u64) -> Result<(), JournalError> {
        if let Some(old) = self.current.take() {
            if self.fsync {
                old.file.sync_data()?;
            }
            self.full.push(old);
        }
        let covered = self.checkpointed.load(Ordering::Acquire);
        while self.full.first().is_some_and(|s| s.last <= covered) {
            self.free.push(self.full.remove(0));
        }
        let mut segment = match self.free.pop() {
            Some(s) => s,
            None => self.create()?,
        };
        // Its stale frames carry older LSNs than `first`: they end the segment on recovery.
        segment.file.write_all_at(&header(first), 0)?;
        segment.first = first;
        segment.last = first - 1;
        segment.end = HEADER;
        self.current = Some(segment);
        Ok(())
    }

    fn create(&mut self) -> Result<Segment, JournalError> {
        std::fs::create_dir_all(&self.dir)?;
        loop {
            let path = self.dir.join(format!("{:08}.seg", self.next_file));
            self.next_file += 1;
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            };
            file.write_all_at(&[0u8; HEADER as usize], 0)?;
            if self.fsync {
                // The new name must survive too.
                file.sync_data()?;
                File::open(&self.dir)?.sync_all()?;
            }
            return Ok(Segment {
                file,
                path,
                first: 0,
                last: 0,
                end: HEADER,
                prepared: HEADER,
            });
        }
    }

    /// Removes every segment: sled holds every frame durably (a clean stop, after the last
    /// checkpoint), so the folder is what an older binary expects.
    pub(super) fn clear(&mut self) -> Result<(), JournalError> {
        let segments = self
            .current
            .take()
            .into_iter()
            .chain(self.full.drain(..))
            .chain(self.free.drain(..));
        for s in segments {
            std::fs::remove_file(&s.path)?;
        }
        remove_dir(&self.dir)
    }
}

fn header(first: u64) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&first.to_le_bytes());
    let crc = crc32fast::hash(&h[..16]);
    h[16..].copy_from_slice(&crc.to_le_bytes());
    h
}

fn read_header(bytes: &[u8]) -> Option<u64> {
    let h = bytes.get(..20)?;
    let crc = u32::from_le_bytes(h[16..20].try_into().ok()?);
    if h[..8] != MAGIC[..] || crc32fast::hash(&h[..16]) != crc {
        return None;
    }
    let first = u64::from_le_bytes(h[8..16].try_into().ok()?);
    (first > 0).then_some(first)
}

/// The frame at `at` in `bytes` if it is whole and numbered `lsn`: its ops and its end.
fn read_frame(bytes: &[u8], at: usize, lsn: u64) -> Option<(&[u8], usize)> {
    let head = bytes.get(at..at + FRAME_HEAD)?;
    let len = u32::from_le_bytes(head[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head[4..8].try_into().ok()?);
    let found = u64::from_le_bytes(head[8..16].try_into().ok()?);
    if len == 0 || found != lsn {
        return None;
    }
    let end = at.checked_add(FRAME_HEAD)?.checked_add(len)?;
    let body = bytes.get(at + 8..end)?;
    (crc32fast::hash(body) == crc).then(|| (&bytes[at + FRAME_HEAD..end], end))
}

/// A frame's ops as a sled batch (`None` if they do not parse: a checksum collision).
fn batch(mut ops: &[u8]) -> Option<sled::Batch> {
    fn take<'a>(ops: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(ops.get(..4)?.try_into().ok()?) as usize;
        let bytes = ops.get(4..4 + len)?;
        *ops = &ops[4 + len..];
        Some(bytes)
    }
    let mut batch = sled::Batch::default();
    while let Some((&tag, rest)) = ops.split_first() {
        ops = rest;
        let key = take(&mut ops)?;
        match tag {
            INSERT => batch.insert(key, take(&mut ops)?),
            REMOVE => batch.remove(key),
            _ => return None,
        }
    }
    Some(batch)
}

/// The LSN of the last group applied to sled (0 before any).
pub(super) fn applied(tree: &sled::Tree) -> Result<u64, LogError> {
    Ok(tree
        .get(layout::JOURNAL_LSN)?
        .and_then(|v| layout::read_u64(&v))
        .unwrap_or(0))
}

/// Applies to `tree` every journal frame after the last one sled holds, in order, up to the
/// first that is torn or missing; then makes sled durable (`sync`) and removes the journal.
/// Returns the LSN of the last group sled holds. A crash at any point leaves frames that the
/// next open applies again from what sled then holds.
pub(super) fn recover(
    data_dir: &Path,
    tree: &sled::Tree,
    sync: impl FnOnce() -> Result<(), LogError>,
) -> Result<u64, LogError> {
    let dir = data_dir.join(DIR);
    let held = applied(tree)?;
    let mut paths = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for entry in entries {
                paths.push(entry.map_err(JournalError::Io)?.path());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(held),
        Err(e) => return Err(JournalError::Io(e).into()),
    }
    let mut segments = Vec::new();
    for path in &paths {
        let bytes = std::fs::read(path).map_err(JournalError::Io)?;
        // A segment whose header never became whole held no acknowledged frame.
        if let Some(first) = read_header(&bytes) {
            segments.push((first, bytes));
        }
    }
    segments.sort_by_key(|(first, _)| *first);
    let mut next = held + 1;
    'segments: for (first, bytes) in &segments {
        let (mut lsn, mut at) = (*first, HEADER as usize);
        while let Some((ops, end)) = read_frame(bytes, at, lsn) {
            if lsn > next {
                return Err(JournalError::Gap {
                    missing: next,
                    held,
                    found: lsn,
                }
                .into());
            }
            if lsn == next {
                let Some(batch) = batch(ops) else {
                    break 'segments;
                };
                tree.apply_batch(batch)?;
                next += 1;
            }
            lsn += 1;
            at = end;
        }
    }
    if next > held + 1 {
        tracing::warn!(
            groups = next - held - 1,
            last = next - 1,
            "applied the journal's groups that sled did not hold"
        );
    }
    sync()?;
    for path in &paths {
        std::fs::remove_file(path).map_err(JournalError::Io)?;
    }
    remove_dir(&dir)?;
    Ok(next - 1)
}

/// Removes the emptied journal folder and makes that durable.
fn remove_dir(dir: &Path) -> Result<(), JournalError> {
    match std::fs::remove_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    if let Some(parent) = dir.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Group `lsn`'s ops: one of seven keys rewritten (so a replay out of order would show),
    /// frames shrinking as they go (so a reused segment keeps stale frames after new ones).
    fn group(lsn: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
        let value = vec![lsn as u8; 100_000 - lsn as usize * 1_000];
        vec![
            (format!("k{}", lsn % 7).into_bytes(), value),
            (layout::JOURNAL_LSN.to_vec(), lsn.to_be_bytes().to_vec()),
        ]
    }

    fn sealed(lsn: u64) -> Sealed {
        let mut frame = Frame::default();
        for (k, v) in group(lsn) {
            frame.insert(&k, &v);
        }
        frame.seal(lsn)
    }

    fn apply(tree: &sled::Tree, lsn: u64) {
        let mut batch = sled::Batch::default();
        for (k, v) in group(lsn) {
            batch.insert(k, v);
        }
        tree.apply_batch(batch).unwrap(); // ok: test code
    }

    fn contents(tree: &sled::Tree) -> BTreeMap<Vec<u8>, Vec<u8>> {
        tree.iter()
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap()) // ok: test code
            .collect()
    }

    #[test]
    fn frames_across_rotated_and_reused_segments_replay_once_in_order_even_after_a_crashed_recovery()
     {
        let dir = tempfile::tempdir().unwrap(); // ok: test code
        let expected = {
            let model = sled::Config::new().temporary(true).open().unwrap(); // ok: test code
            let tree = model.open_tree("log").unwrap(); // ok: test code
            (1..=40).for_each(|lsn| apply(&tree, lsn));
            contents(&tree)
        };
        let db = sled::Config::new().path(dir.path()).open().unwrap(); // ok: test code
        let tree = db.open_tree("log").unwrap(); // ok: test code
        let covered = Arc::new(AtomicU64::new(0));
        let mut journal = Journal::new(dir.path(), true, 1 << 20, covered.clone());
        for lsn in 1..=40 {
            journal.write(&sealed(lsn)).unwrap(); // ok: test code
            journal.sync().unwrap(); // ok: test code
            if lsn <= 15 {
                apply(&tree, lsn);
            }
            if lsn == 15 {
                // A checkpoint: sled durable up to 15; the first segment (1..10) is reused.
                db.flush().unwrap(); // ok: test code
                covered.store(15, Ordering::Release);
            }
        }
        // 1..=11, 12..=23, then 24..=38 in the first segment again, 39..=40 in a new one.
        let files = std::fs::read_dir(dir.path().join(DIR)).unwrap().count(); // ok: test code
        assert_eq!(files, 3, "the segment the checkpoint covered was reused");
        // A crash, then a recovery that crashed after applying 16..=25.
        drop(journal);
        (16..=25).for_each(|lsn| apply(&tree, lsn));

        let synced = std::cell::Cell::new(false);
        let last = recover(dir.path(), &tree, || {
            synced.set(true);
            Ok(())
        })
        .unwrap(); // ok: test code
        assert_eq!(last, 40);
        assert!(synced.get(), "sled is synced before the journal goes");
        assert_eq!(contents(&tree), expected);
        assert!(!dir.path().join(DIR).exists(), "the journal is removed");
        // Opened again: nothing left to apply.
        assert_eq!(recover(dir.path(), &tree, || Ok(())).unwrap(), 40); // ok: test code
        assert_eq!(contents(&tree), expected);
    }

    #[test]
    fn a_missing_frame_between_sled_and_the_journal_is_refused_not_skipped() {
        let dir = tempfile::tempdir().unwrap(); // ok: test code
        let db = sled::Config::new().path(dir.path()).open().unwrap(); // ok: test code
        let tree = db.open_tree("log").unwrap(); // ok: test code
        let mut journal = Journal::new(dir.path(), true, 1 << 20, Arc::new(AtomicU64::new(0)));
        for lsn in 5..=6 {
            journal.write(&sealed(lsn)).unwrap(); // ok: test code
        }
        (1..=3).for_each(|lsn| apply(&tree, lsn));
        let err = recover(dir.path(), &tree, || Ok(())).unwrap_err(); // ok: test code
        assert!(
            matches!(
                err,
                LogError::Journal(JournalError::Gap {
                    missing: 4,
                    held: 3,
                    found: 5
                })
            ),
            "{err}"
        );
    }
}
