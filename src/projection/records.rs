//! Where a view reads the record behind a fact: the fold keeps compact derived facts, never
//! the records, so a view that needs a record's payload or evidence reads it here. Served by
//! the log through a bounded cache (`[projections] record_cache_entries` and
//! `record_cache_bytes`); offline (`annals replay` of a data folder), by the folder's store
//! through the same cache; or, for a fold with no store behind it (`annals replay` of an
//! export, tests), by the records the fold was handed. It also carries the bound of the actor orders the views
//! build (`[projections] actor_index_bytes`), as every fold an engine makes is built over
//! the same records. This module must never write to the log, never let the
//! cache grow past its configured bound, and never keep a view of sled's own buffers (a
//! cached record is a copy, so what it pins is what it counts).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use prometheus::{IntCounter, IntGauge};
use rustc_hash::FxHashMap;

use super::knowledge::ActorIndexBound;
use crate::log::Log;

thread_local! {
    /// Reads on this thread that found no record, for [`failed_reads_in`]: a view runs on one
    /// thread from start to end, so this counts exactly the reads of the view being computed,
    /// whatever other views on other threads meet.
    static FAILED_HERE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Runs `f` (a view, computed on this thread) and counts the record reads in it that found no
/// record or the wrong one. A view that met one must not be shown: a field it read would be
/// missing, and a view answers right or not at all.
pub fn failed_reads_in<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let before = FAILED_HERE.with(std::cell::Cell::get);
    let r = f();
    let after = FAILED_HERE.with(std::cell::Cell::get);
    (r, after.wrapping_sub(before))
}

/// Counts a read of this thread that found no record or not the one expected.
pub(super) fn read_failed() {
    FAILED_HERE.with(|c| c.set(c.get().wrapping_add(1)));
}

/// The bound of the record cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheBound {
    /// Most records held.
    pub entries: usize,
    /// Most record bytes held (a record larger than this is read and never cached).
    pub bytes: usize,
}

/// What the record cache has done, from its own counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads served from the cache.
    pub hits: u64,
    /// Reads that went to the log.
    pub misses: u64,
    /// Records held now.
    pub entries: usize,
    /// Record bytes held now.
    pub bytes: usize,
    /// The most records ever held at once.
    pub peak_entries: usize,
    /// The most record bytes ever held at once.
    pub peak_bytes: usize,
}

/// The prometheus instruments a cache reports to (registered by the engine).
#[derive(Clone)]
pub struct CacheMetrics {
    /// Reads served from the cache.
    pub hits: IntCounter,
    /// Reads that went to the log.
    pub misses: IntCounter,
    /// Records held.
    pub entries: IntGauge,
    /// Record bytes held.
    pub bytes: IntGauge,
}

/// A least-recently-used map of seq to record, bounded in entries and bytes.
struct Lru {
    bound: CacheBound,
    /// Seq to (record, the tick of its last use).
    map: HashMap<u64, (sled::IVec, u64)>,
    /// Tick of last use to seq: the first entry is the least recently used.
    order: BTreeMap<u64, u64>,
    tick: u64,
    bytes: usize,
    stats: CacheStats,
}

impl Lru {
    fn new(bound: CacheBound) -> Lru {
        Lru {
            bound,
            map: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            bytes: 0,
            stats: CacheStats::default(),
        }
    }

    fn get(&mut self, seq: u64) -> Option<sled::IVec> {
        self.tick += 1;
        let tick = self.tick;
        let (record, used) = self.map.get_mut(&seq)?;
        self.order.remove(used);
        *used = tick;
        self.order.insert(tick, seq);
        Some(record.clone())
    }

    fn insert(&mut self, seq: u64, record: sled::IVec) {
        let len = record.len();
        if self.bound.entries == 0 || len > self.bound.bytes || self.map.contains_key(&seq) {
            return;
        }
        while self.map.len() + 1 > self.bound.entries || self.bytes + len > self.bound.bytes {
            let Some((_, old)) = self.order.pop_first() else {
                break;
            };
            if let Some((r, _)) = self.map.remove(&old) {
                self.bytes -= r.len();
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, seq);
        self.map.insert(seq, (record, self.tick));
        self.bytes += len;
        self.stats.peak_entries = self.stats.peak_entries.max(self.map.len());
        self.stats.peak_bytes = self.stats.peak_bytes.max(self.bytes);
    }
}

/// Where records are read from.
enum Source {
    /// A running log: only durable records.
    Log(Log),
    /// The store of a stopped data folder, read without a writer (`annals replay`).
    Store(sled::Tree),
}

impl Source {
    fn read(&self, seq: u64) -> Result<Option<sled::IVec>, crate::log::LogError> {
        let found = match self {
            Source::Log(log) => log.get(seq)?,
            Source::Store(tree) => crate::log::raw::record(tree, seq)?,
        };
        Ok(found.map(|r| sled::IVec::from(&r.bytes[..])))
    }
}

enum Backing {
    /// The records the fold was handed, kept (no log behind the fold).
    Memory(RwLock<FxHashMap<u64, sled::IVec>>),
    /// The log (or, offline, its store), through a bounded cache.
    Log {
        log: Source,
        cache: Mutex<Lru>,
        metrics: Option<CacheMetrics>,
    },
}

/// The records behind a fold's facts. Cheap to clone (shared).
#[derive(Clone)]
pub struct Records {
    backing: Arc<Backing>,
    /// The bound of the actor orders every knowledge over these records keeps (it travels
    /// with the records because every fold an engine makes is built over them).
    actor_index: ActorIndexBound,
    /// Reads that failed (the log could not be read); a view that met one is refused
    /// ([`failed_reads_in`]).
    failures: Arc<AtomicU64>,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.backing {
            Backing::Memory(_) => f.write_str("Records::Memory"),
            Backing::Log { .. } => write!(f, "Records::Log({:?})", self.stats()),
        }
    }
}

impl Default for Records {
    fn default() -> Records {
        Records::memory()
    }
}

impl Records {
    /// Records kept in memory as they are folded (a fold with no log to read them from).
    pub fn memory() -> Records {
        Records {
            backing: Arc::new(Backing::Memory(RwLock::new(FxHashMap::default()))),
            actor_index: ActorIndexBound::default(),
            failures: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Records read from `log` on demand, through a cache bounded by `bound`.
    pub fn log(log: Log, bound: CacheBound, metrics: Option<CacheMetrics>) -> Records {
        Records::read_from(Source::Log(log), bound, metrics)
    }

    /// Records read on demand from the store of a stopped data folder (opened with
    /// `log::raw::open_tree`), through a cache bounded by `bound`: an offline fold
    /// (`annals replay`) holds its facts, never the records.
    pub fn store(tree: sled::Tree, bound: CacheBound) -> Records {
        Records::read_from(Source::Store(tree), bound, None)
    }

    fn read_from(log: Source, bound: CacheBound, metrics: Option<CacheMetrics>) -> Records {
        Records {
            backing: Arc::new(Backing::Log {
                log,
                cache: Mutex::new(Lru::new(bound)),
                metrics,
            }),
            actor_index: ActorIndexBound::default(),
            failures: Arc::new(AtomicU64::new(0)),
        }
    }

    /// These records, with every knowledge folded over them keeping its actor orders within
    /// `bound` (`[projections] actor_index_bytes`).
    pub fn with_actor_index(self, bound: ActorIndexBound) -> Records {
        Records {
            actor_index: bound,
            ..self
        }
    }

    /// The bound of the actor orders kept by a knowledge over these records.
    pub fn actor_index(&self) -> &ActorIndexBound {
        &self.actor_index
    }

    /// Whether folded records must be handed over to be kept ([`Records::keep`]).
    pub fn keeps_records(&self) -> bool {
        matches!(&*self.backing, Backing::Memory(_))
    }

    /// Keeps a folded record, when these records are kept in memory (a no-op otherwise).
    pub fn keep(&self, seq: u64, record: sled::IVec) {
        if let Backing::Memory(map) = &*self.backing {
            map.write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(seq, record);
        }
    }

    /// The stored record JSON at `seq`, or `None` when it cannot be read (counted in
    /// [`Records::failures`] and in this thread's [`failed_reads_in`], and logged).
    pub fn get(&self, seq: u64) -> Option<sled::IVec> {
        let found = match &*self.backing {
            Backing::Memory(map) => map
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&seq)
                .cloned(),
            Backing::Log {
                log,
                cache,
                metrics,
            } => {
                let lock = || cache.lock().unwrap_or_else(|e| e.into_inner());
                {
                    let mut c = lock();
                    if let Some(r) = c.get(seq) {
                        c.stats.hits += 1;
                        if let Some(m) = metrics {
                            m.hits.inc();
                        }
                        return Some(r);
                    }
                }
                // Read outside the lock: other views go on while this one waits for sled.
                let read = match log.read(seq) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(seq, error = %e, "projections: a record could not be read");
                        None
                    }
                };
                let mut c = lock();
                c.stats.misses += 1;
                if let Some(r) = &read {
                    c.insert(seq, r.clone());
                }
                if let Some(m) = metrics {
                    m.misses.inc();
                    m.entries.set(c.map.len() as i64);
                    m.bytes.set(c.bytes as i64);
                }
                read
            }
        };
        if found.is_none() {
            self.failures.fetch_add(1, Ordering::Relaxed);
            read_failed();
        }
        found
    }

    /// Reads that found no record.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The cache's own counters (all zero for records kept in memory).
    pub fn stats(&self) -> CacheStats {
        match &*self.backing {
            Backing::Memory(_) => CacheStats::default(),
            Backing::Log { cache, .. } => {
                let c = cache.lock().unwrap_or_else(|e| e.into_inner());
                CacheStats {
                    entries: c.map.len(),
                    bytes: c.bytes,
                    ..c.stats
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_record_goes_first_and_the_bound_is_never_passed() {
        let mut lru = Lru::new(CacheBound {
            entries: 2,
            bytes: 10,
        });
        lru.insert(1, sled::IVec::from(&b"aaaa"[..]));
        lru.insert(2, sled::IVec::from(&b"bbbb"[..]));
        assert!(lru.get(1).is_some());
        lru.insert(3, sled::IVec::from(&b"cccc"[..]));
        assert!(lru.get(2).is_none(), "2 was the least recently used");
        assert!(lru.get(1).is_some() && lru.get(3).is_some());
        // Room for one more entry, but 4 + 7 bytes would pass 10: both others go.
        lru.insert(4, sled::IVec::from(&b"ddddddd"[..]));
        assert_eq!((lru.map.len(), lru.bytes), (1, 7));
        lru.insert(5, sled::IVec::from(&b"eleven bytes"[..]));
        assert!(
            lru.get(5).is_none(),
            "a record above the byte bound is never cached"
        );
        assert_eq!((lru.stats.peak_entries, lru.stats.peak_bytes), (2, 8));
    }
}
