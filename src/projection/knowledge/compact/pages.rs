//! The rows a save holds, served from its pages on disk through a small bounded cache, so the
//! facts' rows leave the heap (issue 13): a save writes every full page of `page_rows` rows,
//! zstd-compressed, under `q` + generation + page size + page number (u32s, big-endian) in the
//! `projections` tree, in the same atomic batch as its chunk and meta, and never writes a page
//! twice (a page is written once it is full; the rows after the last full page stay in the
//! store's in-memory tail). The pages are a copy of the rows the chunks hold, so a save
//! without them (written before pages existed, or with another page size) gets them at its
//! next load; and a save whose pages do not hold its rows is refused. Compressed because sled
//! 0.34 writes a page about three times on its way in (a leaf of up to 16 pages is rewritten
//! whole at every tenth change and at its split) and frees a segment only once half of it is
//! garbage: plain pages grew a served 1M-event folder by about 145 MB for 52 MB of rows, a
//! third of it compressed. (The plain pages of an earlier version were in save layout 6,
//! which is folded again, so none is read.)
//! A view reads a row through [`RowPages::row`]: one page decoded and kept in a
//! least-recently-used cache of at most `[projections] row_cache_bytes`, read through sled's
//! own bounded cache. This module must never write (the save does), never hold more decoded
//! pages than its bound, and never answer a row it could not read as if it were one: a failed
//! read counts against the view (`records::read_failed`, the view is refused).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus::{IntCounter, IntGauge};
use rustc_hash::FxHashMap;

use super::Row;
use super::segment::{ROW_BYTES, decode_row, encode_row};
use crate::log::Log;
use crate::projection::records::read_failed;

/// The key prefix of a page: its rows in their fixed [`ROW_BYTES`], as one zstd block.
pub const PAGE: u8 = b'q';
/// zstd level of a page: levels 1 to 9 give the same size on rows (a third of their plain
/// size, measured on 1M statement facts), and 1 is the cheapest to write.
const PAGE_LEVEL: i32 = 1;

thread_local! {
    /// Each reading thread's zstd context, reused from page to page.
    static UNPACKER: std::cell::RefCell<zstd::block::Decompressor> =
        std::cell::RefCell::new(zstd::block::Decompressor::new());
}

/// The key of page `page` of generation `generation`, in pages of `page_rows` rows.
pub fn page_key(generation: u32, page_rows: u32, page: u32) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[..9].copy_from_slice(&page_prefix(generation, page_rows));
    k[9..].copy_from_slice(&page.to_be_bytes());
    k
}

/// The prefix of every page key of a generation in pages of `page_rows` rows.
pub fn page_prefix(generation: u32, page_rows: u32) -> [u8; 9] {
    prefix(PAGE, generation, page_rows)
}

fn prefix(kind: u8, generation: u32, page_rows: u32) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = kind;
    k[1..5].copy_from_slice(&generation.to_be_bytes());
    k[5..].copy_from_slice(&page_rows.to_be_bytes());
    k
}

/// The prometheus instruments the row cache reports to (registered by the engine).
#[derive(Debug, Clone)]
pub struct PageMetrics {
    /// Rows read from a cached page.
    pub hits: IntCounter,
    /// Pages read from the save.
    pub misses: IntCounter,
    /// Pages dropped to stay within the bound.
    pub evictions: IntCounter,
    /// Pages held.
    pub pages: IntGauge,
}

/// How a knowledge's rows are paged: the size of a new generation's pages, the cache's bound
/// and where it reports. Shared by every knowledge an engine folds.
#[derive(Debug, Clone)]
pub struct PageSetup {
    /// Rows per page of a new generation (an existing one keeps the size its meta records).
    pub page_rows: u32,
    /// Most bytes of decoded pages held (at least one page is always held).
    pub cache_bytes: usize,
    /// Where the cache reports, if anywhere.
    pub metrics: Option<PageMetrics>,
}

/// What the row cache has done, from its own counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageStats {
    /// Rows read from a cached page.
    pub hits: u64,
    /// Pages read from the save.
    pub misses: u64,
    /// Pages dropped to stay within the bound.
    pub evictions: u64,
    /// Pages held now.
    pub pages: usize,
    /// The most pages ever held at once.
    pub peak_pages: usize,
    /// The most pages it may hold.
    pub bound: usize,
}

/// Decoded pages, least recently used first out.
#[derive(Debug, Default)]
struct Lru {
    /// Page number to (its rows, the tick of its last use).
    map: FxHashMap<u32, (Arc<[Row]>, u64)>,
    /// Tick of last use to page number.
    order: BTreeMap<u64, u32>,
    tick: u64,
    stats: PageStats,
}

/// One generation's pages and the cache they are read through.
pub struct RowPages {
    /// The log whose `projections` tree holds the pages, opened per read: holding the tree
    /// would keep the store (and its folder lock) open after the log closes.
    log: Log,
    generation: u32,
    page_rows: u32,
    cache: Mutex<Lru>,
    metrics: Option<PageMetrics>,
}

impl std::fmt::Debug for RowPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowPages")
            .field("generation", &self.generation)
            .field("page_rows", &self.page_rows)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Drop for RowPages {
    fn drop(&mut self) {
        if let Some(m) = &self.metrics {
            m.pages.sub(self.lock().map.len() as i64);
        }
    }
}

impl RowPages {
    /// The pages of `generation`, of `page_rows` rows each, in `log`'s `projections` tree.
    pub fn new(log: Log, generation: u32, page_rows: u32, setup: &PageSetup) -> RowPages {
        let page_bytes = page_rows.max(1) as usize * ROW_BYTES;
        let bound = (setup.cache_bytes / page_bytes).max(1);
        RowPages {
            log,
            generation,
            page_rows: page_rows.max(1),
            cache: Mutex::new(Lru {
                stats: PageStats {
                    bound,
                    ..PageStats::default()
                },
                ..Lru::default()
            }),
            metrics: setup.metrics.clone(),
        }
    }

    /// Rows per page.
    pub fn page_rows(&self) -> u32 {
        self.page_rows
    }

    /// The generation whose pages these are.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The key of page `page`.
    pub fn key(&self, page: u32) -> [u8; 13] {
        page_key(self.generation, self.page_rows, page)
    }

    /// The cache's own counters.
    pub fn stats(&self) -> PageStats {
        self.lock().stats
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Row `ix`, which a full page on disk holds. A page that cannot be read gives a zeroed
    /// row and counts a failed read, so the view that asked is refused.
    pub(super) fn row(&self, ix: u32) -> Row {
        let (page, at) = (ix / self.page_rows, (ix % self.page_rows) as usize);
        {
            let mut lru = self.lock();
            lru.tick += 1;
            let tick = lru.tick;
            if let Some((rows, used)) = lru.map.get_mut(&page) {
                let old = std::mem::replace(used, tick);
                let row = rows.get(at).copied();
                lru.order.remove(&old);
                lru.order.insert(tick, page);
                lru.stats.hits += 1;
                if let Some(m) = &self.metrics {
                    m.hits.inc();
                }
                return row.unwrap_or_default();
            }
        }
        // Read outside the lock: other views go on meanwhile (two may read the same page;
        // the second insert finds it there).
        let Some(rows) = self.read_page(page) else {
            read_failed();
            return Row::default();
        };
        let row = rows.get(at).copied();
        self.keep(page, rows);
        row.unwrap_or_default()
    }

    /// Reads and decodes page `page` from the save.
    pub(super) fn read_page(&self, page: u32) -> Option<Arc<[Row]>> {
        let read = self
            .log
            .aux_tree("projections")
            .map_err(|e| e.to_string())
            .and_then(|t| t.get(self.key(page)).map_err(|e| e.to_string()));
        let bytes = match read {
            Ok(Some(b)) => b,
            Ok(None) => {
                tracing::error!(page, "projection row page missing from the save");
                return None;
            }
            Err(e) => {
                tracing::error!(page, error = %e, "projection row page could not be read");
                return None;
            }
        };
        let plain_len = self.page_rows as usize * ROW_BYTES;
        let unpacked = UNPACKER.with(|d| d.borrow_mut().decompress(&bytes, plain_len));
        let bytes = match unpacked {
            Ok(plain) if plain.len() == plain_len => plain,
            Ok(plain) => {
                tracing::error!(
                    page,
                    len = plain.len(),
                    "projection row page has the wrong size"
                );
                return None;
            }
            Err(e) => {
                tracing::error!(page, error = %e, "projection row page does not decompress");
                return None;
            }
        };
        let rows: Result<Vec<Row>, _> = bytes.chunks_exact(ROW_BYTES).map(decode_row).collect();
        match rows {
            Ok(rows) => Some(rows.into()),
            Err(e) => {
                tracing::error!(page, error = %e, "projection row page does not decode");
                None
            }
        }
    }

    /// Keeps a page just read, dropping the least recently used beyond the bound.
    fn keep(&self, page: u32, rows: Arc<[Row]>) {
        let mut lru = self.lock();
        lru.stats.misses += 1;
        if let Some(m) = &self.metrics {
            m.misses.inc();
        }
        lru.tick += 1;
        let tick = lru.tick;
        if let Some((_, old)) = lru.map.insert(page, (rows, tick)) {
            lru.order.remove(&old);
        } else if let Some(m) = &self.metrics {
            m.pages.inc();
        }
        lru.order.insert(tick, page);
        while lru.map.len() > lru.stats.bound {
            let Some((_, oldest)) = lru.order.pop_first() else {
                break;
            };
            lru.map.remove(&oldest);
            lru.stats.evictions += 1;
            if let Some(m) = &self.metrics {
                m.evictions.inc();
                m.pages.dec();
            }
        }
        lru.stats.pages = lru.map.len();
        lru.stats.peak_pages = lru.stats.peak_pages.max(lru.map.len());
    }
}

/// Packs pages for a save, with one zstd context reused from page to page.
pub(super) struct PagePacker {
    context: zstd::block::Compressor,
    plain: Vec<u8>,
}

impl PagePacker {
    pub(super) fn new() -> PagePacker {
        PagePacker {
            context: zstd::block::Compressor::new(),
            plain: Vec::new(),
        }
    }

    /// Rows as a page stores them: each in its fixed [`ROW_BYTES`], the page compressed.
    pub(super) fn pack(&mut self, rows: impl Iterator<Item = Row>) -> std::io::Result<Vec<u8>> {
        self.plain.clear();
        for row in rows {
            encode_row(&mut self.plain, &row);
        }
        self.context.compress(&self.plain, PAGE_LEVEL)
    }
}
