//! The projections' own instruments on the service's registry (folds, saves, lag, rebuilds,
//! the record and row caches, the knowledge layer's heap by part) and the heap's summary for
//! the log. It must never read the projections' state itself: callers hand it the figures.

use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, IntGaugeVec, Opts};

use super::super::knowledge::{HeapPart, PageMetrics};
use super::super::records::CacheMetrics;
use crate::metrics::Metrics;

/// The projections' own instruments, registered on the service's registry.
#[derive(Clone)]
pub(super) struct ProjMetrics {
    pub(super) applied: IntCounter,
    pub(super) save_seconds: Histogram,
    pub(super) lag: IntGauge,
    pub(super) seq: IntGauge,
    pub(super) rebuilds: IntCounter,
    pub(super) cache: CacheMetrics,
    pub(super) actor_index_bytes: IntGauge,
    /// The knowledge layer's heap by part ([`Knowledge::heap_parts`]).
    pub(super) heap: IntGaugeVec,
    /// The row cache's own counters.
    pub(super) pages: PageMetrics,
}

impl ProjMetrics {
    pub(super) fn new(metrics: &Metrics) -> Result<ProjMetrics, prometheus::Error> {
        let m = ProjMetrics {
            applied: IntCounter::new(
                "projection_events_applied_total",
                "Records folded into the projections (follower and rebuilds)",
            )?,
            save_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    // The metric's name predates "save" and is kept for its dashboards.
                    "projection_checkpoint_seconds",
                    "Seconds to write and sync one projection save",
                )
                .buckets(vec![0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            )?,
            lag: IntGauge::new("projection_lag", "Durable head seq minus projection seq")?,
            seq: IntGauge::new("projection_seq", "Seq the projections reflect")?,
            rebuilds: IntCounter::new("projection_rebuilds_total", "Completed rebuilds")?,
            actor_index_bytes: IntGauge::new(
                "projection_actor_index_bytes",
                "Bytes held by the actor views' time orders (bound: projections.actor_index_bytes)",
            )?,
            heap: IntGaugeVec::new(
                Opts::new(
                    "projection_bytes",
                    "Heap bytes the knowledge layer holds, by part (an estimate from lengths \
                     and capacities; slack: the unused capacity inside the other parts)",
                ),
                &["part"],
            )?,
            pages: PageMetrics {
                hits: IntCounter::new(
                    "projection_row_cache_hits_total",
                    "Saved rows the views read from a page the row cache held",
                )?,
                misses: IntCounter::new(
                    "projection_row_cache_misses_total",
                    "Row pages read from the save (not in the row cache)",
                )?,
                evictions: IntCounter::new(
                    "projection_row_cache_evictions_total",
                    "Row pages the row cache dropped to stay within projections.row_cache_bytes",
                )?,
                pages: IntGauge::new(
                    "projection_row_cache_pages",
                    "Decoded row pages the row cache holds",
                )?,
            },
            cache: CacheMetrics {
                hits: IntCounter::new(
                    "projection_record_cache_hits_total",
                    "Records the views read from the record cache",
                )?,
                misses: IntCounter::new(
                    "projection_record_cache_misses_total",
                    "Records the views read from the log (not in the record cache)",
                )?,
                entries: IntGauge::new(
                    "projection_record_cache_entries",
                    "Records held by the views' record cache",
                )?,
                bytes: IntGauge::new(
                    "projection_record_cache_bytes",
                    "Record bytes held by the views' record cache",
                )?,
            },
        };
        metrics.register(Box::new(m.applied.clone()))?;
        metrics.register(Box::new(m.save_seconds.clone()))?;
        metrics.register(Box::new(m.lag.clone()))?;
        metrics.register(Box::new(m.seq.clone()))?;
        metrics.register(Box::new(m.rebuilds.clone()))?;
        metrics.register(Box::new(m.cache.hits.clone()))?;
        metrics.register(Box::new(m.cache.misses.clone()))?;
        metrics.register(Box::new(m.cache.entries.clone()))?;
        metrics.register(Box::new(m.cache.bytes.clone()))?;
        metrics.register(Box::new(m.actor_index_bytes.clone()))?;
        metrics.register(Box::new(m.heap.clone()))?;
        metrics.register(Box::new(m.pages.hits.clone()))?;
        metrics.register(Box::new(m.pages.misses.clone()))?;
        metrics.register(Box::new(m.pages.evictions.clone()))?;
        metrics.register(Box::new(m.pages.pages.clone()))?;
        Ok(m)
    }
}

impl ProjMetrics {
    /// Reports the knowledge layer's heap by part.
    pub(super) fn report_heap(&self, parts: &[HeapPart]) {
        for p in parts {
            self.heap
                .with_label_values(&[p.part])
                .set(i64::try_from(p.bytes).unwrap_or(i64::MAX));
        }
    }
}

/// How often the saves report the knowledge layer's heap.
pub(super) const HEAP_REPORT_EVERY: Duration = Duration::from_secs(5);

/// The heap parts as one log field: `rows=52.0MiB pool=...`, then their total.
pub(super) fn heap_summary(parts: &[HeapPart]) -> String {
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    let mut out = String::new();
    let mut total = 0;
    for p in parts {
        if p.part != "slack" {
            total += p.bytes;
        }
        out.push_str(&format!("{}={:.1}MiB ", p.part, mib(p.bytes)));
    }
    out.push_str(&format!("total={:.1}MiB", mib(total)));
    out
}
