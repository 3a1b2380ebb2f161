//! The projection engine: loads the saved fold, catches up from the log, follows the durable
//! head, saves every N events or T ms, rebuilds from seq 1 in the background and swaps
//! the result in atomically. One follower task folds each record once for every read model.
//! This module must never write to the log, and never let a query see a half-applied batch.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::fold::parse_batch;
use super::knowledge::{ActorIndexBound, Knowledge, PageSetup};
use super::records::Records;
use super::save;
use super::{NAMES, ProjectionConfig, ProjectionError};
use crate::log::Log;
use crate::metrics::Metrics;

mod metrics;
mod rebuild;
use metrics::{HEAP_REPORT_EVERY, ProjMetrics, heap_summary};
use rebuild::rebuild;
pub use rebuild::rebuild_offline;

/// One line of `GET /projections`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    /// Projection name.
    pub name: &'static str,
    /// The seq its state reflects.
    pub seq: u64,
    /// The log's durable head.
    pub head: u64,
    /// `head - seq`.
    pub lag: u64,
    /// Records folded from the log since this process started (a restart from a save
    /// replays only the tail; a rebuild's fold is not counted here).
    pub replayed_since_start: u64,
    /// The seq of the last durable save (the name predates "save" and is part of the HTTP
    /// contract).
    pub last_checkpoint_seq: u64,
    /// Whether a rebuild is running.
    pub rebuilding: bool,
    /// Rebuilds completed since start.
    pub rebuilds: u64,
}

/// What the follower owns between steps; a rebuild takes it to pause the follower.
struct Cursor {
    /// Save generation in the aux tree.
    generation: u32,
    /// Seq of the last durable save.
    saved_seq: u64,
    /// Records folded since that save.
    since_save: u64,
    /// When it was written.
    last_save: Instant,
}

struct Inner {
    log: Log,
    config: ProjectionConfig,
    /// Where every knowledge this engine folds reads its records (one bounded cache).
    records: Records,
    /// How every knowledge this engine saves pages its rows.
    pages: PageSetup,
    /// Set by [`Engine::halt`]: stop without the final save, as a crash would.
    skip_final_save: AtomicBool,
    /// The current knowledge. A std lock, not a tokio one: no `.await` is ever held inside;
    /// the follower applies a whole batch under one write lock, so a query (read lock) sees
    /// the state before or after a batch, never within it.
    state: RwLock<Knowledge>,
    /// The seq `state` reflects, published after each batch (what `?min_seq=` waits on).
    applied: watch::Sender<u64>,
    /// Held by the follower during each step and each save; a rebuild holds it for the
    /// hand-over, so no record is folded twice or skipped across the swap.
    cursor: tokio::sync::Mutex<Cursor>,
    /// Records folded by the follower since start.
    replayed: AtomicU64,
    /// Mirror of `Cursor::saved_seq` for status without taking the async lock.
    saved_seq: AtomicU64,
    rebuilding: AtomicBool,
    rebuilds: AtomicU64,
    /// Views read since the follower last gave free heap memory back ([`super::trim`]).
    views_since_trim: AtomicU64,
    /// When the heap by part was last reported ([`Inner::report_heap`]).
    heap_reported: std::sync::Mutex<Instant>,
    metrics: ProjMetrics,
    /// Flips to true on shutdown; the follower writes a final save and stops.
    stop: watch::Sender<bool>,
    follower: std::sync::Mutex<Option<JoinHandle<()>>>,
    rebuild_task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Inner {
    /// The aux tree, opened per use: holding a `sled::Tree` would keep the store (and its
    /// file lock) alive after the log closes.
    fn tree(&self) -> Result<sled::Tree, ProjectionError> {
        Ok(self.log.aux_tree("projections")?)
    }

    fn read(&self) -> RwLockReadGuard<'_, Knowledge> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Knowledge> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the next records and folds them into the live state (blocking; the caller holds
    /// the cursor). Returns how many were folded.
    fn step(&self) -> Result<u64, ProjectionError> {
        let from = self.read().seq + 1;
        let (records, _) = self
            .log
            .read_range(from, self.config.batch_events.max(1), |_| true)?;
        if records.is_empty() {
            return Ok(0);
        }
        let n = records.len() as u64;
        // Parse outside the write lock: queries wait only for the inserts.
        let parsed = parse_batch(records);
        let seq = {
            let mut st = self.write();
            for (seq, fact, record) in parsed {
                st.apply_read(seq, fact, record)?;
            }
            st.seq
        };
        // Counters first, then the seq: whoever waits for the seq reads counters that
        // include this batch.
        self.replayed.fetch_add(n, Ordering::Relaxed);
        self.metrics.applied.inc_by(n);
        self.metrics.seq.set(seq as i64);
        self.applied.send_replace(seq);
        Ok(n)
    }

    /// Writes the facts folded since the last save and makes them durable (blocking).
    fn save(&self, cursor: &mut Cursor) -> Result<(), ProjectionError> {
        let started = Instant::now();
        let meta = {
            let st = self.read();
            if st.seq == cursor.saved_seq {
                return Ok(());
            }
            save::append(
                &self.tree()?,
                &self.log,
                cursor.generation,
                &st,
                cursor.saved_seq,
            )?
        };
        self.log.sync_aux()?;
        {
            // Durable: the rows of the pages just written can leave the heap.
            let mut st = self.write();
            let saved = st.facts().count_upto(meta.seq);
            if let Err(e) = st.page_out_current(saved) {
                tracing::error!(error = %e, "projection rows stay in memory: a page does not read back");
            }
        }
        cursor.saved_seq = meta.seq;
        cursor.since_save = 0;
        cursor.last_save = Instant::now();
        self.saved_seq.store(meta.seq, Ordering::Relaxed);
        self.metrics
            .save_seconds
            .observe(started.elapsed().as_secs_f64());
        tracing::debug!(seq = meta.seq, "projection saved");
        self.report_heap();
        Ok(())
    }

    /// Reports the knowledge layer's heap by part, at most every few seconds: the figures move
    /// slowly, and taking them walks every index's table.
    fn report_heap(&self) {
        let mut last = self.heap_reported.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() < HEAP_REPORT_EVERY {
            return;
        }
        *last = Instant::now();
        let parts = self.read().heap_parts();
        self.metrics.report_heap(&parts);
    }
}

/// The projection engine: owns the follower task and the rebuilds. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ProjectionError> + Send + 'static,
) -> Result<T, ProjectionError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ProjectionError::Task(e.to_string()))?
}

impl Engine {
    /// Loads the saved fold and starts following the log. Must be called within a tokio
    /// runtime (it spawns the follower task).
    pub fn start(
        log: Log,
        config: ProjectionConfig,
        metrics: &Metrics,
    ) -> Result<Engine, ProjectionError> {
        let metrics = ProjMetrics::new(metrics)?;
        let records = Records::log(
            log.clone(),
            config.record_cache(),
            Some(metrics.cache.clone()),
        )
        .with_actor_index(ActorIndexBound {
            bytes: config.actor_index_bytes,
            gauge: Some(metrics.actor_index_bytes.clone()),
        });
        let tree = log.aux_tree("projections")?;
        let head = log.head().seq;
        // Start-up is mostly this load: its time is logged apart from the log's opening.
        let loading = Instant::now();
        let pages = config.row_pages(Some(metrics.pages.clone()));
        let (meta, knowledge) = match save::load(&tree, &log, &records, &pages) {
            Ok(loaded) => loaded,
            Err(
                e @ (save::SaveError::Mismatch(_)
                | save::SaveError::Corrupt(..)
                | save::SaveError::Compressed(..)
                | save::SaveError::Damaged(..)
                | save::SaveError::Incomplete { .. }),
            ) => {
                // A save is derived data and the log is the truth: one that describes
                // another history (a folder restored from another copy), or that is damaged,
                // is replaced by a fold from seq 1 rather than stopping the service or
                // answering from a state the log does not support.
                tracing::error!(
                    error = %e,
                    head,
                    "projection save unusable; discarding it and folding the log from seq 1"
                );
                let meta = save::discard(&tree, &log)?;
                let mut k = Knowledge::over(records.clone());
                save::attach_pages(&log, meta.generation, &pages, &mut k)?;
                (meta, k)
            }
            Err(e) => return Err(e.into()),
        };
        let load_ms = loading.elapsed().as_millis() as u64;
        let heap = knowledge.heap_parts();
        metrics.report_heap(&heap);
        tracing::info!(
            seq = meta.seq,
            head,
            tail = head - meta.seq,
            facts = knowledge.facts().len(),
            load_ms,
            heap = %heap_summary(&heap),
            "projections resume from their save"
        );
        // The load decoded every saved fact into a temporary before indexing it, and read every
        // chunk through sled, whose cache evicts the pages it read only once more reads come
        // (see `trim::sweep_store_cache`): without the sweep, a server that serves no view
        // and takes no append kept them (RSS 877 MiB at 10M against 636 MiB after views).
        super::trim::sweep_store_cache(&log);
        super::trim::give_back_free_memory();
        metrics.seq.set(meta.seq as i64);
        let (applied, _) = watch::channel(meta.seq);
        let (stop, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            log,
            config,
            records,
            pages,
            skip_final_save: AtomicBool::new(false),
            state: RwLock::new(knowledge),
            applied,
            cursor: tokio::sync::Mutex::new(Cursor {
                generation: meta.generation,
                saved_seq: meta.seq,
                since_save: 0,
                last_save: Instant::now(),
            }),
            replayed: AtomicU64::new(0),
            saved_seq: AtomicU64::new(meta.seq),
            rebuilding: AtomicBool::new(false),
            rebuilds: AtomicU64::new(0),
            views_since_trim: AtomicU64::new(0),
            heap_reported: std::sync::Mutex::new(Instant::now()),
            metrics,
            stop,
            follower: std::sync::Mutex::new(None),
            rebuild_task: std::sync::Mutex::new(None),
        });
        let task = tokio::spawn(follow(inner.clone()));
        *inner.follower.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(Engine { inner })
    }

    /// Stops following and writes a final save; waits for a running rebuild to stop.
    /// Idempotent.
    pub async fn shutdown(&self) {
        self.inner.stop.send_replace(true);
        let rebuild = self
            .inner
            .rebuild_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = rebuild
            && let Err(e) = t.await
        {
            tracing::error!(error = %e, "projection rebuild task failed");
        }
        let follower = self
            .inner
            .follower
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = follower
            && let Err(e) = t.await
        {
            tracing::error!(error = %e, "projection follower task failed");
        }
    }

    /// Stops following WITHOUT the final save, as a crash would (tests use this to check
    /// that a restart replays exactly the tail after the last save).
    pub async fn halt(&self) {
        self.inner.skip_final_save.store(true, Ordering::Release);
        self.shutdown().await;
    }

    /// Runs `f` on the current knowledge under the read lock (never a half-applied batch).
    pub fn read<R>(&self, f: impl FnOnce(&Knowledge) -> R) -> R {
        self.inner.views_since_trim.fetch_add(1, Ordering::Relaxed);
        f(&self.inner.read())
    }

    /// How many events an actor view lists without `limit`.
    pub fn default_limit(&self) -> usize {
        self.inner.config.default_limit.max(1)
    }

    /// The largest `limit` a request may ask for.
    pub fn max_limit(&self) -> usize {
        self.inner.config.max_limit.max(1)
    }

    /// The seq the projections reflect.
    pub fn seq(&self) -> u64 {
        *self.inner.applied.borrow()
    }

    /// Waits up to the configured time for the projections to reach `seq`.
    pub async fn wait_for(&self, seq: u64) -> Result<(), ProjectionError> {
        let mut rx = self.inner.applied.subscribe();
        let wait = Duration::from_millis(self.inner.config.min_seq_wait_ms);
        match tokio::time::timeout(wait, rx.wait_for(|s| *s >= seq)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ProjectionError::Behind {
                at: self.seq(),
                wanted: seq,
            }),
        }
    }

    /// One status line per projection (they share one fold, so they share seq and counters).
    pub fn status(&self) -> Vec<Status> {
        let i = &self.inner;
        let seq = self.seq();
        let head = i.log.head().seq;
        NAMES
            .iter()
            .map(|name| Status {
                name,
                seq,
                head,
                lag: head.saturating_sub(seq),
                replayed_since_start: i.replayed.load(Ordering::Relaxed),
                last_checkpoint_seq: i.saved_seq.load(Ordering::Relaxed),
                rebuilding: i.rebuilding.load(Ordering::Relaxed),
                rebuilds: i.rebuilds.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Starts a rebuild from seq 1 in the background. The read models share one knowledge
    /// fold, so rebuilding any of them rebuilds the fold they all read (`name` is checked).
    pub fn rebuild(&self, name: &str) -> Result<(), ProjectionError> {
        if !NAMES.contains(&name) {
            return Err(ProjectionError::UnknownProjection(name.to_string()));
        }
        if self.inner.rebuilding.swap(true, Ordering::AcqRel) {
            return Err(ProjectionError::RebuildRunning);
        }
        let inner = self.inner.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            tracing::info!("projection rebuild started");
            match rebuild(&inner).await {
                Ok(seq) => {
                    inner.rebuilds.fetch_add(1, Ordering::Relaxed);
                    inner.metrics.rebuilds.inc();
                    tracing::info!(
                        seq,
                        secs = started.elapsed().as_secs_f64(),
                        "projection rebuild swapped in"
                    );
                }
                Err(e) => tracing::error!(error = %e, "projection rebuild failed"),
            }
            inner.rebuilding.store(false, Ordering::Release);
        });
        let mut slot = self
            .inner
            .rebuild_task
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // A finished earlier rebuild's handle is simply replaced.
        *slot = Some(task);
        Ok(())
    }

    /// Waits until no rebuild is running (tests and the CLI use this).
    pub async fn wait_rebuilt(&self) {
        let task = self
            .inner
            .rebuild_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

/// The follower: catch up, then follow the head; save by count and by time; on stop, a
/// final save.
async fn follow(inner: Arc<Inner>) {
    let mut head = inner.log.subscribe();
    let mut stop = inner.stop.subscribe();
    let every = Duration::from_millis(inner.config.checkpoint_every_ms.max(1));
    let every_events = inner.config.checkpoint_every_events.max(1);
    let mut folded_since_trim = 0u64;
    let mut last_trim = Instant::now();
    loop {
        if *stop.borrow() {
            break;
        }
        let mut cursor = inner.cursor.lock().await;
        let i2 = inner.clone();
        let stepped = tokio::task::spawn_blocking(move || i2.step()).await;
        let n = match stepped {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "projection follower could not fold");
                0
            }
            Err(e) => {
                tracing::error!(error = %e, "projection follower step panicked");
                0
            }
        };
        cursor.since_save += n;
        let due = cursor.since_save >= every_events
            || (cursor.since_save > 0 && cursor.last_save.elapsed() >= every);
        if due {
            save_now(&inner, cursor).await;
        } else {
            drop(cursor);
        }
        let lag = inner.log.head().seq.saturating_sub(*inner.applied.borrow());
        inner.metrics.lag.set(lag as i64);
        folded_since_trim += n;
        // Caught up after a long tail (a first start, a restart after kill -9: each record
        // was read and parsed into temporaries), or views were served (each reads records
        // and builds its answer in temporaries, and sled's cache turns pages over): make sled
        // evict the pages the views left above its bound (after views only), then give the
        // heap's free pages back, at most once per TRIM_EVERY while views keep coming.
        let viewed = inner.views_since_trim.load(Ordering::Relaxed) > 0;
        if (n == 0 && folded_since_trim >= super::trim::TRIM_AFTER_RECORDS)
            || (viewed && last_trim.elapsed() >= super::trim::TRIM_EVERY)
        {
            folded_since_trim = 0;
            inner.views_since_trim.store(0, Ordering::Relaxed);
            last_trim = Instant::now();
            let log = inner.log.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if viewed {
                    super::trim::sweep_store_cache(&log);
                }
                super::trim::give_back_free_memory();
            })
            .await;
        }
        if n > 0 {
            continue;
        }
        tokio::select! {
            changed = head.changed() => {
                if changed.is_err() {
                    // The log is closing: nothing more will come; wait for the stop signal.
                    let _ = stop.wait_for(|s| *s).await;
                }
            }
            _ = stop.changed() => {}
            _ = tokio::time::sleep(every) => {}
        }
    }
    let cursor = inner.cursor.lock().await;
    if !inner.skip_final_save.load(Ordering::Acquire) {
        save_now(&inner, cursor).await;
    }
    tracing::info!(seq = *inner.applied.borrow(), "projection follower stopped");
}

/// Writes a save off the async workers, holding the cursor throughout.
async fn save_now(inner: &Arc<Inner>, cursor: tokio::sync::MutexGuard<'_, Cursor>) {
    let mut c = Cursor {
        generation: cursor.generation,
        saved_seq: cursor.saved_seq,
        since_save: cursor.since_save,
        last_save: cursor.last_save,
    };
    let i2 = inner.clone();
    let result = tokio::task::spawn_blocking(move || {
        let r = i2.save(&mut c);
        (c, r)
    })
    .await;
    let mut cursor = cursor;
    match result {
        Ok((c, Ok(()))) => *cursor = c,
        Ok((_, Err(e))) => tracing::error!(error = %e, "projection save failed"),
        Err(e) => tracing::error!(error = %e, "projection save panicked"),
    }
}
