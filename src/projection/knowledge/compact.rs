//! The facts as the knowledge layer holds them in memory ([`FactStore`]): fixed-size rows with
//! no heap allocation per fact. Every string a fact shares with others (type, `recorded_by`,
//! `occurred`, process, the actors and sources it names) is stored once in a symbol table and
//! a row holds its u32 symbol; an event id is held as its 16 bytes and `recorded_at` as
//! microseconds, each only when writing it back gives the very text recorded (anything else,
//! and the rare target of a correction or retraction, goes to a side table); where `data` and
//! `evidence` sit in the record as five 16-bit distances (a record too large for them goes to
//! the side table); seqs are runs, not a field per fact. A view reads a fact through [`FactRef`], which gives back the texts
//! the parsed [`Fact`] held. A save stores the rows, pool and names as they are
//! (`compact/segment.rs`), so loading one copies them back; it also stores every full page of
//! rows on its own (`compact/pages.rs`), and a saved row then leaves the heap: it is read from
//! its page through a bounded cache, so a [`FactRef`] holds a copy of its row. This module must never read
//! storage or parse a record, and never
//! answer a field differently from the [`Fact`] it was built from (`compact.rs` in the API
//! tests and the unit tests below hold the two equal).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::{Serialize, Serializer};

use super::super::fact::{Fact, Role, Span, StoredFact};
use super::Ix;
use super::heap::{HeapPart, table_bytes, vec_bytes};
use crate::event::EventKind;

/// A string's number in the symbol table.
pub(super) type Sym = u32;

/// A reference in the pool: its role in the top three bits, its symbol below.
type PackedRef = u32;
const ROLE_SHIFT: u32 = 29;
const SYM_MASK: u32 = (1 << ROLE_SHIFT) - 1;

/// The row has a process.
const HAS_PROCESS: u8 = 1;
/// The event id is in the side table (not a UUID in its canonical text).
const ODD_ID: u8 = 2;
/// `recorded_at` is in the side table (not in the log's own fixed-width format).
const ODD_TIME: u8 = 4;
/// The row has a target (a correction or retraction), in the side table.
const HAS_TARGET: u8 = 8;
/// The record's spans are in the side table (a distance does not fit 16 bits).
const ODD_SPANS: u8 = 16;
/// `occurred` is a shape, its digits in the row (`compact/occurred.rs`); without it, the
/// whole text.
const OCCURRED_SHAPE: u8 = 32;

/// One fact as held in memory: 68 bytes, none of it on the heap. Every field is made of u32s
/// or smaller, so rows pack at 4-byte alignment (a u64 field would pad each row to 56 and
/// the id and time to 8-byte boundaries): at a million facts each byte here is a megabyte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Row {
    /// The event id as a UUID (0 when it is not one), as [`u128`] words, most significant
    /// first.
    id: [u32; 4],
    /// `recorded_at` in microseconds since the epoch (0 when it is in the side table), as
    /// the high and low words of an [`i64`].
    recorded_at: [u32; 2],
    /// Where `data` and `evidence` sit in the record ([`pack_spans`]; zero with
    /// [`ODD_SPANS`]).
    spans: [u16; 5],
    recorded_by: Sym,
    /// With [`OCCURRED_SHAPE`], the shape of the text, else the text.
    occurred: Sym,
    /// With [`OCCURRED_SHAPE`], the digits of `occurred` as one number, in u32 words, most
    /// significant first: exact times are nearly all distinct, and a name each would grow
    /// the names with the log.
    occurred_digits: [u32; 4],
    /// Meaningful only with [`HAS_PROCESS`].
    process: Sym,
    /// Where the row's references start in the pool (they end where the next row's start).
    refs: u32,
    /// The type; `None` for a type this build does not know (its name is in the side table).
    event_kind: Option<EventKind>,
    flags: u8,
}

// The size the module header and `[projections]` in config/default.toml state.
const _: () = assert!(std::mem::size_of::<Row>() == 68);

/// What a few rows keep beside them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Odd {
    id: Option<Box<str>>,
    recorded_at: Option<Box<str>>,
    target: Option<Box<str>>,
    /// The type's name, for a type this build does not know.
    kind: Option<Sym>,
    /// The record's length and spans, when [`pack_spans`] cannot hold them.
    spans: Option<(u32, Span, Span)>,
}

/// A record's length and where `data` and `evidence` sit in it, as five distances: to the
/// start of `data`, its length, from its end to `evidence`, its length, and from there to the
/// record's end. A record's envelope puts `evidence` right after `data`, so each distance is
/// small; `None` when one does not fit 16 bits (a payload or evidence of 64 KiB or more).
fn pack_spans(record_len: u32, (da, db): Span, (ea, eb): Span) -> Option<[u16; 5]> {
    let d = |a: u32, b: u32| b.checked_sub(a).and_then(|n| u16::try_from(n).ok());
    Some([
        d(0, da)?,
        d(da, db)?,
        d(db, ea)?,
        d(ea, eb)?,
        d(eb, record_len)?,
    ])
}

/// The record's length and spans [`pack_spans`] packed.
fn unpack_spans(p: [u16; 5]) -> (u32, Span, Span) {
    let [a, b, c, d, e] = p.map(u32::from);
    let data = (a, a + b);
    let evidence = (data.1 + c, data.1 + c + d);
    (evidence.1 + e, data, evidence)
}

/// A UUID as the row's four words, most significant first.
fn id_words(key: u128) -> [u32; 4] {
    [
        (key >> 96) as u32,
        (key >> 64) as u32,
        (key >> 32) as u32,
        key as u32,
    ]
}

/// A UUID from the row's words.
fn id_key_of(w: [u32; 4]) -> u128 {
    w.iter().fold(0u128, |k, &x| (k << 32) | u128::from(x))
}

/// Every distinct string once, numbered in the order first seen (so the same facts in the
/// same order always get the same numbers).
#[derive(Debug, Clone, Default)]
struct Names {
    texts: Vec<Arc<str>>,
    numbers: FxHashMap<Arc<str>, Sym>,
    /// The row that first named each string, ascending: the names a range of rows added are
    /// the ones a save of that range must carry (`segment.rs`).
    first_row: Vec<Ix>,
}

impl Names {
    /// The number of `s`, which row `row` names (a new string is numbered next).
    fn intern(&mut self, s: &str, row: Ix) -> Sym {
        if let Some(&n) = self.numbers.get(s) {
            return n;
        }
        self.add(Arc::from(s), row)
    }

    /// Numbers a string known to be new.
    fn add(&mut self, text: Arc<str>, row: Ix) -> Sym {
        let n = self.texts.len() as Sym;
        self.texts.push(text.clone());
        self.numbers.insert(text, n);
        self.first_row.push(row);
        n
    }

    /// How many strings rows before `row` named.
    fn count_before(&self, row: Ix) -> usize {
        self.first_row.partition_point(|&r| r < row)
    }

    fn get(&self, n: Sym) -> &str {
        self.texts.get(n as usize).map(AsRef::as_ref).unwrap_or("")
    }
}

/// The facts, in seq order, as compact rows (see the module header).
#[derive(Debug, Clone, Default)]
pub struct FactStore {
    /// The rows from `paged` on: every row, or with `pages`, the tail that is not yet on a
    /// full page of the save.
    rows: Vec<Row>,
    /// Rows before this one are read from `pages` (a whole number of its pages).
    paged: usize,
    /// Where the rows before `paged` are read (`pages.rs`), for a knowledge an engine saves.
    pages: Option<Arc<RowPages>>,
    names: Names,
    /// Every row's references, one after the other.
    refs: Vec<PackedRef>,
    /// Runs of consecutive seqs: (first row, its seq), ascending. A new run starts only where
    /// a record was skipped (it did not parse), so there is usually one.
    runs: Vec<(Ix, u64)>,
    /// Ordered, so a save finds a range's entries without walking them all.
    odd: BTreeMap<Ix, Odd>,
}

/// Two stores are equal when they hold the same facts (whatever numbers their names got).
impl PartialEq for FactStore {
    fn eq(&self, other: &FactStore) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl FactStore {
    /// Number of facts.
    pub fn len(&self) -> usize {
        self.paged + self.rows.len()
    }

    /// Whether there is no fact.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes room for `n` more facts (none when the rows go to pages: they leave the heap).
    pub fn reserve(&mut self, n: usize) {
        if self.pages.is_none() {
            self.rows.reserve_exact(n);
        }
    }

    /// Row `ix`: from the in-memory tail, or from its page. Panics on an index out of range,
    /// as indexing a slice does.
    fn row(&self, ix: Ix) -> Row {
        let at = ix as usize;
        match (at.checked_sub(self.paged), &self.pages) {
            (Some(tail), _) => self.rows[tail],
            (None, Some(pages)) => pages.row(ix),
            // `paged` moves only once pages are set.
            (None, None) => Row::default(),
        }
    }

    /// Where row `ix`'s references end in the pool: where the next row's start.
    fn refs_end(&self, ix: Ix) -> u32 {
        if ix as usize + 1 < self.len() {
            self.row(ix + 1).refs
        } else {
            self.refs.len() as u32
        }
    }

    /// How many rows are read from pages (a whole number of them).
    pub fn paged(&self) -> usize {
        self.paged
    }

    /// The rows' pages, if they go to pages.
    pub fn pages(&self) -> Option<&Arc<RowPages>> {
        self.pages.as_ref()
    }

    /// Reads the rows of the save's full pages from them from now on: a store that a save
    /// holds up to row `saved` drops those rows from the heap, up to the last full page. The
    /// last page dropped is read back and compared first, so a save whose pages do not hold
    /// these rows is refused (`pages` must be the ones the rows' save was written with).
    pub fn page_out(&mut self, pages: &Arc<RowPages>, saved: usize) -> Result<(), SegmentError> {
        let drained = self.page_out_rows(pages, saved)?;
        // A rebuild grew the tail to many pages: give that room back.
        if drained && self.rows.capacity() > 2 * (self.rows.len() + pages.page_rows() as usize) {
            self.rows
                .shrink_to(self.rows.len() + pages.page_rows() as usize);
        }
        Ok(())
    }

    /// [`FactStore::page_out`] keeping the tail's room: a load pages out every few segments
    /// and would only grow it again (it shrinks the store once at its end).
    pub fn page_out_loading(
        &mut self,
        pages: &Arc<RowPages>,
        saved: usize,
    ) -> Result<(), SegmentError> {
        self.page_out_rows(pages, saved).map(|_| ())
    }

    /// Whether rows left the heap.
    fn page_out_rows(&mut self, pages: &Arc<RowPages>, saved: usize) -> Result<bool, SegmentError> {
        if let Some(held) = &self.pages
            && !Arc::ptr_eq(held, pages)
            && self.paged > 0
        {
            return Err(SegmentError("rows are already paged elsewhere"));
        }
        self.pages = Some(pages.clone());
        let per = pages.page_rows() as usize;
        let upto = saved.min(self.len()) / per * per;
        if upto <= self.paged {
            return Ok(false);
        }
        let last = (upto / per - 1) as u32;
        let from = upto - per - self.paged;
        let held = self.rows.get(from..from + per);
        if pages.read_page(last).as_deref() != held {
            return Err(SegmentError("a page of the save does not hold its rows"));
        }
        self.rows.drain(..upto - self.paged);
        self.paged = upto;
        Ok(true)
    }

    /// Pages `first..end` of `pages`' size, as a save writes them: each full, in the page
    /// encoding, compressed (only rows the store still holds in memory can be written).
    pub fn encode_pages(
        &self,
        per: u32,
        first: u32,
        end: u32,
    ) -> std::io::Result<Vec<(u32, Vec<u8>)>> {
        let per = per.max(1);
        let mut packer = pages::PagePacker::new();
        (first..end)
            .map(|page| {
                let rows = (page * per..(page + 1) * per).map(|ix| self.row(ix));
                Ok((page, packer.pack(rows)?))
            })
            .collect()
    }

    /// Gives back what growing left unused (after a load or a rebuild, which grow by doubling).
    pub fn shrink_to_fit(&mut self) {
        self.rows.shrink_to_fit();
        self.refs.shrink_to_fit();
        self.runs.shrink_to_fit();
        self.names.texts.shrink_to_fit();
        self.names.first_row.shrink_to_fit();
    }

    /// The store's parts on the heap ([`Knowledge::heap_parts`](super::Knowledge::heap_parts)),
    /// adding their unused capacity to `slack`.
    pub(super) fn heap_parts(&self, slack: &mut u64) -> Vec<HeapPart> {
        let mut part = |part: &'static str, (bytes, unused): (u64, u64)| {
            *slack += unused;
            HeapPart { part, bytes }
        };
        let names = &self.names;
        // An `Arc<str>` points at its two counts and the text.
        let texts: u64 = names.texts.iter().map(|t| 16 + t.len() as u64).sum();
        let (list, list_slack) = vec_bytes(&names.texts);
        let (first, first_slack) = vec_bytes(&names.first_row);
        let names_bytes = texts + list + first + table_bytes(&names.numbers);
        // A B-tree entry: its key and value, plus about half again for the nodes.
        let odd_texts: u64 = self
            .odd
            .values()
            .flat_map(|o| [&o.id, &o.recorded_at, &o.target])
            .flatten()
            .map(|t| t.len() as u64)
            .sum();
        let odd_entry = (std::mem::size_of::<(Ix, Odd)>() * 3 / 2) as u64;
        vec![
            part("rows", vec_bytes(&self.rows)),
            part("pool", vec_bytes(&self.refs)),
            part("names", (names_bytes, list_slack + first_slack)),
            part("runs", vec_bytes(&self.runs)),
            part("odd", (self.odd.len() as u64 * odd_entry + odd_texts, 0)),
        ]
    }

    /// The seq of fact `ix` (from the runs: no row is read).
    pub fn seq(&self, ix: Ix) -> u64 {
        self.seq_of(ix)
    }

    /// The seq of row `ix`.
    fn seq_of(&self, ix: Ix) -> u64 {
        let at = match self.runs.as_slice() {
            [one] => one,
            runs => {
                let n = runs.partition_point(|&(first, _)| first <= ix);
                match runs.get(n.wrapping_sub(1)) {
                    Some(run) => run,
                    None => return 0,
                }
            }
        };
        at.1 + u64::from(ix - at.0)
    }

    /// The seq of the last fact, if any.
    pub fn last_seq(&self) -> Option<u64> {
        let last = self.len().checked_sub(1)?;
        Some(self.seq_of(last as Ix))
    }

    /// How many facts have a seq at or before `seq` (the index of the first one after it).
    pub fn count_upto(&self, seq: u64) -> usize {
        let n = self.runs.partition_point(|&(_, first)| first <= seq);
        let Some(&(first_ix, first_seq)) = self.runs.get(n.wrapping_sub(1)) else {
            return 0;
        };
        let end = self.runs.get(n).map_or(self.len(), |&(ix, _)| ix as usize);
        let upto = first_ix as usize + (seq - first_seq) as usize + 1;
        upto.min(end)
    }

    /// One fact. Panics on an index out of range, as indexing a slice does.
    pub fn get(&self, ix: Ix) -> FactRef<'_> {
        FactRef {
            seq: self.seq_of(ix),
            ix,
            row: self.row(ix),
            refs_end: self.refs_end(ix),
            store: self,
        }
    }

    /// Every fact, in seq order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = FactRef<'_>> {
        (0..self.len() as Ix).map(|ix| self.get(ix))
    }

    /// The event id of row `ix` as a UUID (0: not one), for the id index.
    pub(super) fn id_key(&self, ix: Ix) -> u128 {
        id_key_of(self.row(ix).id)
    }

    /// What indexing reads of each fact of `range` ([`Loaded`]), from the rows held in
    /// memory as they are: a load indexes the rows it just appended, and reading them one
    /// field at a time through [`FactStore::row`] copied each row about six times. A row of
    /// the range already on a page is read from it.
    pub(super) fn loaded(
        &self,
        range: std::ops::Range<usize>,
    ) -> impl Iterator<Item = Loaded<'_>> + use<'_> {
        range.map(move |at| {
            let ix = at as Ix;
            let (row, refs_end) = match at.checked_sub(self.paged) {
                Some(t) if t < self.rows.len() => (
                    self.rows[t],
                    self.rows
                        .get(t + 1)
                        .map_or(self.refs.len() as u32, |next| next.refs),
                ),
                _ => (self.row(ix), self.refs_end(ix)),
            };
            let odd = || self.odd.get(&ix);
            let uuid = if row.flags & ODD_ID == 0 {
                Some(id_key_of(row.id))
            } else {
                odd()
                    .and_then(|o| o.id.as_deref())
                    .and_then(|t| uuid::Uuid::parse_str(t).ok())
                    .map(|u| u.as_u128())
            };
            let kind = row
                .event_kind
                .ok_or_else(|| odd().and_then(|o| o.kind).unwrap_or(Sym::MAX));
            let refs = self
                .refs
                .get(row.refs as usize..refs_end as usize)
                .unwrap_or(&[]);
            Loaded {
                ix,
                uuid,
                kind,
                process: (row.flags & HAS_PROCESS != 0).then_some(row.process),
                refs,
            }
        })
    }

    /// The string numbered `n`.
    pub(super) fn name(&self, n: Sym) -> &str {
        self.names.get(n)
    }

    /// How many strings are numbered.
    pub(super) fn names_len(&self) -> usize {
        self.names.texts.len()
    }

    /// Adds a fact at the end; returns its index. Facts come in seq order.
    pub fn push(&mut self, fact: &Fact) -> Ix {
        let ix = self.len() as Ix;
        let last = self.len().checked_sub(1).map(|l| self.seq_of(l as Ix));
        if last.is_none_or(|l| l + 1 != fact.seq) {
            self.runs.push((ix, fact.seq));
        }
        let mut odd = Odd::default();
        let mut flags = 0;
        let id_text = fact.id();
        let key = uuid::Uuid::parse_str(id_text).ok();
        let mut canonical = [0u8; 36];
        if key.is_none_or(|u| u.hyphenated().encode_lower(&mut canonical) != id_text) {
            flags |= ODD_ID;
            odd.id = Some(id_text.into());
        }
        let key = key.map_or(0, |u| u.as_u128());
        let recorded_at = match micros(fact.recorded_at()) {
            Some(t) => t,
            None => {
                flags |= ODD_TIME;
                odd.recorded_at = Some(fact.recorded_at().into());
                0
            }
        };
        if !fact.target().is_empty() {
            flags |= HAS_TARGET;
            odd.target = Some(fact.target().into());
        }
        let process = match fact.process() {
            Some(p) => {
                flags |= HAS_PROCESS;
                self.names.intern(p, ix)
            }
            None => 0,
        };
        let refs = self.refs.len() as u32;
        for (role, s) in fact.refs() {
            let sym = self.names.intern(s, ix);
            // A billion distinct names would not fit in memory long before they overflow the
            // symbol's 29 bits.
            self.refs
                .push(((role as u32) << ROLE_SHIFT) | (sym & SYM_MASK));
        }
        let (record_len, data, evidence) = fact.record_spans();
        let spans = pack_spans(record_len, data, evidence).unwrap_or_else(|| {
            flags |= ODD_SPANS;
            odd.spans = Some((record_len, data, evidence));
            [0; 5]
        });
        if fact.event_kind().is_none() {
            odd.kind = Some(self.names.intern(fact.kind(), ix));
        }
        let (occurred, occurred_digits) = match occurred::split(fact.occurred_json()) {
            Some((shape, digits)) => {
                flags |= OCCURRED_SHAPE;
                (self.names.intern(&shape, ix), occurred::words(digits))
            }
            None => (self.names.intern(fact.occurred_json(), ix), [0; 4]),
        };
        let row = Row {
            id: id_words(key),
            recorded_at: [(recorded_at >> 32) as u32, recorded_at as u32],
            spans,
            recorded_by: self.names.intern(fact.recorded_by(), ix),
            occurred,
            occurred_digits,
            process,
            refs,
            event_kind: fact.event_kind(),
            flags,
        };
        if odd != Odd::default() {
            self.odd.insert(ix, odd);
        }
        self.rows.push(row);
        ix
    }
}

/// What indexing reads of one fact ([`FactStore::loaded`]): the same answers as
/// [`FactStore::uuid_of`], [`FactStore::kind_key`], [`FactStore::process_sym`] and
/// [`FactStore::ref_syms`].
pub(super) struct Loaded<'a> {
    pub(super) ix: Ix,
    pub(super) uuid: Option<u128>,
    pub(super) kind: Result<EventKind, Sym>,
    pub(super) process: Option<Sym>,
    refs: &'a [PackedRef],
}

impl Loaded<'_> {
    /// Its references by number, in indexing order.
    pub(super) fn ref_syms(&self) -> impl Iterator<Item = (Role, Sym)> + use<'_> {
        self.refs.iter().filter_map(|&packed| {
            Some((
                Role::from_u8((packed >> ROLE_SHIFT) as u8)?,
                packed & SYM_MASK,
            ))
        })
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `recorded_at` in the log's own format (`2026-01-01T00:00:00.000000Z`, 27 bytes) as
/// microseconds since the epoch, or `None` for any text that would not be written back the
/// same (another format, an impossible date): that one is kept as it is.
fn micros(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 27 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        part.iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec, frac) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..26)?);
    let t = ((days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec) * 1_000_000) + frac;
    let mut buf = [0u8; 36];
    write_micros(t, &mut buf);
    (buf.get(..27) == Some(b)).then_some(t)
}

/// Writes microseconds since the epoch in the log's format into the first 27 bytes of `buf`.
fn write_micros(t: i64, buf: &mut [u8; 36]) {
    let (secs, frac) = (t.div_euclid(1_000_000), t.rem_euclid(1_000_000));
    let (days, day_secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let mut out = std::io::Cursor::new(&mut buf[..]);
    // Only years 0..=9999 are ever written here: `micros` accepts four digits.
    let _ = std::io::Write::write_fmt(
        &mut out,
        format_args!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
            day_secs / 3600,
            day_secs / 60 % 60,
            day_secs % 60
        ),
    );
}

mod fact_ref;
mod occurred;
mod pages;
mod segment;
#[cfg(test)]
mod tests;

pub use fact_ref::{FactRef, Text};
pub use pages::{PAGE, PageMetrics, PageSetup, PageStats, RowPages, page_prefix};
pub use segment::{Segment, SegmentError};
