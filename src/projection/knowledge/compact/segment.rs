//! A range of a [`FactStore`] in its in-memory form, as a save stores it (save layout 7): the
//! rows byte for byte, their slice of the reference pool, the names they were the first to
//! use, their seq runs and their side entries. Loading a save appends segments with bulk
//! copies, so no text is parsed, formatted or looked up per fact. Rows keep their fixed
//! 68-byte form here so a later step can serve them from a file instead of memory. This module
//! must never read storage, and never let a store take a number it did not check: a segment
//! that does not fit (a damaged save) is refused, and the store it was being appended to is
//! left for the caller to discard.
//!
//! The encoding, little-endian: eight u32s (first row, rows, first reference, references,
//! first name, names, runs, side entries), then each row in 68 bytes ([`ROW_BYTES`]), the
//! references (u32 each), the names (first row u32, length u32, UTF-8), the runs (first row
//! u32, seq u64) and the side entries (row u32, which fields u8, then those fields).

use std::sync::Arc;

use super::{
    FactStore, HAS_PROCESS, HAS_TARGET, Ix, ODD_ID, ODD_SPANS, ODD_TIME, Odd, PackedRef,
    ROLE_SHIFT, Row, SYM_MASK, Sym,
};
use crate::event::EventKind;
use crate::projection::fact::Role;

/// A row's size in a segment: its size in memory, without padding.
pub(super) const ROW_BYTES: usize = 68;

/// Which optional fields a side entry holds.
const ODD_HAS_ID: u8 = 1;
const ODD_HAS_TIME: u8 = 2;
const ODD_HAS_TARGET: u8 = 4;
const ODD_HAS_KIND: u8 = 8;
const ODD_HAS_SPANS: u8 = 16;

/// A segment does not fit the store it is appended to, or is damaged.
#[derive(Debug, thiserror::Error)]
#[error("fact segment: {0}")]
pub struct SegmentError(pub(super) &'static str);

/// Rows decoded and checked on their own, ready for [`FactStore::append`].
#[derive(Debug, Default)]
pub struct Segment {
    first_ix: Ix,
    rows: Vec<Row>,
    refs_from: u32,
    refs: Vec<PackedRef>,
    names_from: u32,
    names: Vec<(Ix, Box<str>)>,
    runs: Vec<(Ix, u64)>,
    odd: Vec<(Ix, Odd)>,
}

fn put_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len() as u32);
    out.extend_from_slice(s.as_bytes());
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// Reads a segment front to back; every read checks the length first.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SegmentError> {
        if n > self.0.len() {
            return Err(SegmentError("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, SegmentError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, SegmentError> {
        Ok(le32(self.take(4)?, 0))
    }

    fn u64(&mut self) -> Result<u64, SegmentError> {
        let b = self.take(8)?;
        Ok(u64::from(le32(b, 0)) | (u64::from(le32(b, 4)) << 32))
    }

    /// A count of items of at least `size` bytes each: never more than the bytes left allow,
    /// so a damaged count cannot make a load allocate without bound.
    fn count(&mut self, size: usize) -> Result<usize, SegmentError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(size) > self.0.len() {
            return Err(SegmentError("a count exceeds the segment"));
        }
        Ok(n)
    }

    fn str(&mut self) -> Result<Box<str>, SegmentError> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?)
            .map(Box::from)
            .map_err(|_| SegmentError("a name is not UTF-8"))
    }
}

pub(super) fn encode_row(out: &mut Vec<u8>, row: &Row) {
    for w in row.id.iter().chain(&row.recorded_at) {
        put_u32(out, *w);
    }
    for s in row.spans {
        out.extend_from_slice(&s.to_le_bytes());
    }
    for w in [row.recorded_by, row.occurred, row.process, row.refs] {
        put_u32(out, w);
    }
    for w in row.occurred_digits {
        put_u32(out, w);
    }
    out.push(row.event_kind.map_or(0, |k| k as u8 + 1));
    out.push(row.flags);
}

pub(super) fn decode_row(b: &[u8]) -> Result<Row, SegmentError> {
    let kind = match b[66] {
        0 => None,
        k => Some(
            *EventKind::ALL
                .get(usize::from(k) - 1)
                .ok_or(SegmentError("an unknown kind number"))?,
        ),
    };
    Ok(Row {
        id: [le32(b, 0), le32(b, 4), le32(b, 8), le32(b, 12)],
        recorded_at: [le32(b, 16), le32(b, 20)],
        spans: [
            le16(b, 24),
            le16(b, 26),
            le16(b, 28),
            le16(b, 30),
            le16(b, 32),
        ],
        recorded_by: le32(b, 34),
        occurred: le32(b, 38),
        process: le32(b, 42),
        refs: le32(b, 46),
        occurred_digits: [le32(b, 50), le32(b, 54), le32(b, 58), le32(b, 62)],
        event_kind: kind,
        flags: b[67],
    })
}

fn encode_odd(out: &mut Vec<u8>, ix: Ix, odd: &Odd) {
    put_u32(out, ix);
    let mut has = 0;
    for (bit, present) in [
        (ODD_HAS_ID, odd.id.is_some()),
        (ODD_HAS_TIME, odd.recorded_at.is_some()),
        (ODD_HAS_TARGET, odd.target.is_some()),
        (ODD_HAS_KIND, odd.kind.is_some()),
        (ODD_HAS_SPANS, odd.spans.is_some()),
    ] {
        if present {
            has |= bit;
        }
    }
    out.push(has);
    for s in [&odd.id, &odd.recorded_at, &odd.target]
        .into_iter()
        .flatten()
    {
        put_str(out, s);
    }
    if let Some(kind) = odd.kind {
        put_u32(out, kind);
    }
    if let Some((len, (da, db), (ea, eb))) = odd.spans {
        for n in [len, da, db, ea, eb] {
            put_u32(out, n);
        }
    }
}

fn decode_odd(r: &mut Reader<'_>) -> Result<(Ix, Odd), SegmentError> {
    let ix = r.u32()?;
    let has = r.u8()?;
    let text = |bit: u8, r: &mut Reader<'_>| -> Result<Option<Box<str>>, SegmentError> {
        if has & bit == 0 {
            return Ok(None);
        }
        r.str().map(Some)
    };
    let id = text(ODD_HAS_ID, r)?;
    let recorded_at = text(ODD_HAS_TIME, r)?;
    let target = text(ODD_HAS_TARGET, r)?;
    let kind = if has & ODD_HAS_KIND != 0 {
        Some(r.u32()?)
    } else {
        None
    };
    let spans = if has & ODD_HAS_SPANS != 0 {
        let mut n = [0u32; 5];
        for x in &mut n {
            *x = r.u32()?;
        }
        Some((n[0], (n[1], n[2]), (n[3], n[4])))
    } else {
        None
    };
    Ok((
        ix,
        Odd {
            id,
            recorded_at,
            target,
            kind,
            spans,
        },
    ))
}

impl FactStore {
    /// Rows `from..to` in the segment encoding, appended to `out`.
    pub fn encode_segment(&self, from: usize, to: usize, out: &mut Vec<u8>) {
        let to = to.min(self.len());
        let from = from.min(to);
        let n_rows = to - from;
        let refs_from = if from < to {
            self.row(from as Ix).refs as usize
        } else {
            self.refs.len()
        };
        let refs_to = if to < self.len() {
            self.row(to as Ix).refs as usize
        } else {
            self.refs.len()
        };
        let names_from = self.names.count_before(from as Ix);
        let names_to = self.names.count_before(to as Ix);
        let runs: Vec<&(Ix, u64)> = self
            .runs
            .iter()
            .filter(|(first, _)| (from..to).contains(&(*first as usize)))
            .collect();
        let odd: Vec<(&Ix, &Odd)> = self.odd.range(from as Ix..to as Ix).collect();
        out.reserve(32 + n_rows * ROW_BYTES + (refs_to - refs_from) * 4);
        for n in [
            from,
            n_rows,
            refs_from,
            refs_to - refs_from,
            names_from,
            names_to - names_from,
            runs.len(),
            odd.len(),
        ] {
            put_u32(out, n as u32);
        }
        for ix in from..to {
            encode_row(out, &self.row(ix as Ix));
        }
        for &r in &self.refs[refs_from..refs_to] {
            put_u32(out, r);
        }
        for n in names_from..names_to {
            put_u32(out, self.names.first_row[n]);
            put_str(out, &self.names.texts[n]);
        }
        for &&(first, seq) in &runs {
            put_u32(out, first);
            out.extend_from_slice(&seq.to_le_bytes());
        }
        for (&ix, odd) in odd {
            encode_odd(out, ix, odd);
        }
    }

    /// Appends a segment that [`Segment::decode`] checked; returns the range of rows it added.
    /// On an error the store is left part-appended: the caller discards it.
    pub fn append(&mut self, seg: Segment) -> Result<std::ops::Range<usize>, SegmentError> {
        let from = self.len();
        if seg.first_ix as usize != from
            || seg.refs_from as usize != self.refs.len()
            || seg.names_from as usize != self.names.texts.len()
        {
            return Err(SegmentError("does not follow the rows already held"));
        }
        if seg.rows.is_empty() {
            return Ok(from..from);
        }
        if from == 0 && seg.runs.first().map(|r| r.0) != Some(0) {
            return Err(SegmentError("the first row has no seq"));
        }
        for (first, seq) in seg.runs {
            // A new run starts only past a skipped record.
            if first > 0 && seq <= self.seq_of(first - 1) + 1 {
                return Err(SegmentError("seqs do not ascend"));
            }
            self.runs.push((first, seq));
        }
        for (row, text) in seg.names {
            let n = self.names.texts.len() as Sym;
            let text: Arc<str> = Arc::from(text);
            if self.names.numbers.insert(text.clone(), n).is_some() {
                return Err(SegmentError("a name is numbered twice"));
            }
            self.names.texts.push(text);
            self.names.first_row.push(row);
        }
        self.refs.extend_from_slice(&seg.refs);
        self.rows.extend_from_slice(&seg.rows);
        self.odd.extend(seg.odd);
        Ok(from..self.len())
    }
}

impl Segment {
    /// Decodes a segment and checks that it holds together on its own: every number a row
    /// holds points inside the segment or before it, and every row that needs a side entry
    /// has one.
    pub fn decode(bytes: &[u8]) -> Result<Segment, SegmentError> {
        let mut r = Reader(bytes);
        let first_ix = r.u32()?;
        let n_rows = r.count(ROW_BYTES)?;
        let refs_from = r.u32()?;
        let n_refs = r.count(4)?;
        let names_from = r.u32()?;
        let n_names = r.count(8)?;
        let n_runs = r.count(12)?;
        let n_odd = r.count(5)?;
        let end_ix = u64::from(first_ix) + n_rows as u64;
        let refs_to = u64::from(refs_from) + n_refs as u64;
        let names_to = u64::from(names_from) + n_names as u64;
        if end_ix > u64::from(Ix::MAX) || refs_to > u64::from(u32::MAX) || names_to > 1 << 29 {
            return Err(SegmentError("out of range"));
        }
        let in_rows = |ix: Ix| ix >= first_ix && u64::from(ix) < end_ix;
        let known = |n: Sym| u64::from(n) < names_to;

        let mut rows = Vec::with_capacity(n_rows);
        let mut at = refs_from;
        for b in r.take(n_rows * ROW_BYTES)?.chunks_exact(ROW_BYTES) {
            let row = decode_row(b)?;
            let process_ok = row.flags & HAS_PROCESS == 0 || known(row.process);
            let refs_ok = if rows.is_empty() {
                row.refs == refs_from
            } else {
                row.refs >= at && u64::from(row.refs) <= refs_to
            };
            if !(known(row.recorded_by) && known(row.occurred) && process_ok && refs_ok) {
                return Err(SegmentError("a row points outside the segment"));
            }
            at = row.refs;
            rows.push(row);
        }
        let mut refs = Vec::with_capacity(n_refs);
        for b in r.take(n_refs * 4)?.chunks_exact(4) {
            let packed = le32(b, 0);
            if Role::from_u8((packed >> ROLE_SHIFT) as u8).is_none() || !known(packed & SYM_MASK) {
                return Err(SegmentError("a reference points outside the segment"));
            }
            refs.push(packed);
        }
        let mut names = Vec::with_capacity(n_names);
        for _ in 0..n_names {
            let row = r.u32()?;
            if !in_rows(row) || names.last().is_some_and(|&(prev, _)| prev > row) {
                return Err(SegmentError("a name's first row is out of order"));
            }
            names.push((row, r.str()?));
        }
        let mut runs = Vec::with_capacity(n_runs);
        for _ in 0..n_runs {
            let first = r.u32()?;
            let seq = r.u64()?;
            if !in_rows(first)
                || runs
                    .last()
                    .is_some_and(|&(prev, _): &(Ix, u64)| prev >= first)
            {
                return Err(SegmentError("a run is out of order"));
            }
            runs.push((first, seq));
        }
        let mut odd: Vec<(Ix, Odd)> = Vec::with_capacity(n_odd);
        for _ in 0..n_odd {
            let (ix, o) = decode_odd(&mut r)?;
            if !in_rows(ix) || odd.last().is_some_and(|(prev, _)| *prev >= ix) {
                return Err(SegmentError("a side entry is out of order"));
            }
            if o.kind.is_some_and(|k| !known(k)) {
                return Err(SegmentError("a side entry points outside the segment"));
            }
            odd.push((ix, o));
        }
        if !r.0.is_empty() {
            return Err(SegmentError("bytes after the end"));
        }
        for (i, row) in rows.iter().enumerate() {
            let needs = row.flags & (ODD_ID | ODD_TIME | HAS_TARGET | ODD_SPANS) != 0
                || row.event_kind.is_none();
            if !needs {
                continue;
            }
            let ix = first_ix + i as Ix;
            let o = odd
                .binary_search_by_key(&ix, |(at, _)| *at)
                .ok()
                .and_then(|at| odd.get(at))
                .map(|(_, o)| o);
            let fits = o.is_some_and(|o| {
                (row.flags & ODD_ID == 0 || o.id.is_some())
                    && (row.flags & ODD_TIME == 0 || o.recorded_at.is_some())
                    && (row.flags & HAS_TARGET == 0 || o.target.is_some())
                    && (row.flags & ODD_SPANS == 0 || o.spans.is_some())
                    && (row.event_kind.is_some() || o.kind.is_some())
            });
            if !fits {
                return Err(SegmentError("a row lacks its side entry"));
            }
        }
        Ok(Segment {
            first_ix,
            rows,
            refs_from,
            refs,
            names_from,
            names,
            runs,
            odd,
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it holds no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}
