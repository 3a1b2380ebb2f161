//! Projections: pure folds of the log into read models, with saves (the fold persisted, so a
//! restart folds only the tail), rebuilds and as-of queries. One follower task folds every record once into the shared knowledge layer
//! ([`knowledge`]); the read models ([`negotiation`], [`calendar`], [`actors`], [`sources`],
//! [`history`], [`processes`]) are views of it computed at query time for a cut (`known_at`, `valid_at`). This
//! module must never write to the log: it only reads records and keeps its own aux tree.

pub mod actors;
pub mod asof;
pub mod calendar;
mod engine;
pub mod evidence;
pub mod fact;
mod fold;
pub mod history;
pub mod knowledge;
pub mod negotiation;
pub mod processes;
pub mod records;
pub mod save;
pub mod sources;
mod trim;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use asof::{Cut, KnownAt};
pub use engine::{Engine, Status, rebuild_offline};
pub use fold::fold_log;
pub use knowledge::Knowledge;
pub use trim::set_allocator_release;

/// The projections, by name: every route and status line uses these.
pub const NAMES: &[&str] = &[
    negotiation::NAME,
    calendar::NAME,
    actors::NAME,
    sources::NAME,
    history::NAME,
    processes::NAME,
];

/// Projection settings (`[projections]`); every key is documented in `config/default.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectionConfig {
    /// Save the fold after this many events have been folded since the last save (the key's
    /// name predates "save" and is kept: it is configuration people have written).
    pub checkpoint_every_events: u64,
    /// Save the fold at least this often (milliseconds) while events keep coming.
    pub checkpoint_every_ms: u64,
    /// Records the follower reads and folds per step (one write-lock hold per step).
    pub batch_events: usize,
    /// How long `?min_seq=` waits for the projections to catch up before a 503 (milliseconds).
    pub min_seq_wait_ms: u64,
    /// Most events listed per actor when the request gives no `limit`.
    pub default_limit: usize,
    /// Largest `limit` a request may ask for.
    pub max_limit: usize,
    /// Most records the views' record cache holds (the facts never hold records; a view
    /// that shows a payload reads it from the log through this cache).
    pub record_cache_entries: usize,
    /// Most record bytes the views' record cache holds.
    pub record_cache_bytes: usize,
    /// Most bytes the actor views' time orders hold together (about 4 bytes per fact of each
    /// actor a view asked for); past it the least recently used are dropped and rebuilt on
    /// their next ask.
    pub actor_index_bytes: usize,
    /// Rows per page of the saved rows the views read through the row cache (see
    /// `config/default.toml`).
    pub row_page_rows: u32,
    /// Most bytes of decoded row pages the row cache holds.
    pub row_cache_bytes: usize,
}

impl ProjectionConfig {
    /// How the saved rows are paged, reporting to `metrics`.
    pub fn row_pages(&self, metrics: Option<knowledge::PageMetrics>) -> knowledge::PageSetup {
        knowledge::PageSetup {
            page_rows: self.row_page_rows.max(1),
            cache_bytes: self.row_cache_bytes,
            metrics,
        }
    }

    /// The bound of the views' record cache.
    pub fn record_cache(&self) -> records::CacheBound {
        records::CacheBound {
            entries: self.record_cache_entries,
            bytes: self.record_cache_bytes,
        }
    }
}

/// Why a projection operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// Reading the log failed.
    #[error("projections: {0}")]
    Log(#[from] crate::log::LogError),
    /// Reading or writing the saved fold failed.
    #[error("projections: {0}")]
    Save(#[from] save::SaveError),
    /// Folding a record failed.
    #[error("projections: {0}")]
    Fold(#[from] knowledge::FoldError),
    /// Metrics could not be registered (a build defect).
    #[error("projections: metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// A background task died.
    #[error("projections: background task failed: {0}")]
    Task(String),
    /// No projection has this name.
    #[error("no projection is called `{0}`; see GET /projections")]
    UnknownProjection(String),
    /// The projection knows nothing of this entity at the cut.
    #[error("{0}")]
    NotFound(String),
    /// A rebuild is already running.
    #[error("a rebuild is already running")]
    RebuildRunning,
    /// A record a view needed could not be read from the log (the view is not shown: a
    /// field of it would be missing).
    #[error("projections: {0} record(s) this view needs could not be read from the log")]
    RecordUnavailable(u64),
    /// An actor view's `cursor` does not continue a walk of that actor.
    #[error("{0}")]
    NotThisWalk(#[from] actors::NotThisWalk),
    /// The projections did not reach `min_seq` in time.
    #[error("the projections are at seq {at}, not yet at {wanted}; retry shortly")]
    Behind {
        /// Where they are.
        at: u64,
        /// What was asked.
        wanted: u64,
    },
}

/// What a query asks for beyond the projection and entity.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Transaction-time cut.
    pub known_at: Option<KnownAt>,
    /// Valid-time cut (a partial date).
    pub valid_at: Option<String>,
    /// Only this process (negotiation, calendar).
    pub process: Option<String>,
    /// Most events listed per actor.
    pub limit: usize,
    /// Where the previous page of an actor view ended; its cut replaces `known_at`.
    pub cursor: Option<actors::Cursor>,
    /// How the negotiation view also groups positions (`?group=side`).
    pub group: Option<negotiation::Group>,
}

/// Computes a view: the projection `name` (or one entity of it) for the query's cut. Returns
/// the seq the answer reflects and the body.
pub fn answer(
    k: &Knowledge,
    name: &str,
    entity: Option<&str>,
    q: &Query,
) -> Result<(u64, Value), ProjectionError> {
    let seq = match q.cursor {
        // A cursor's pages are all computed at the cut of the first, so appends in between
        // neither repeat nor skip an event. A cut this knowledge has not reached yet (it
        // was handed out before a crash, and the fold is catching up) is a wait, not an error.
        Some(c) if c.seq > k.seq => {
            return Err(ProjectionError::Behind {
                at: k.seq,
                wanted: c.seq,
            });
        }
        Some(c) => c.seq,
        None => asof::resolve(k, q.known_at.as_ref()),
    };
    let cut = Cut {
        seq,
        today: q.valid_at.clone().unwrap_or_else(asof::today),
        valid_at: q.valid_at.clone(),
    };
    let (body, failed) = records::failed_reads_in(|| body(k, name, entity, q, &cut));
    // The pages sled evicted while this view read are freed now, not whenever this thread
    // next reads sled.
    trim::free_deferred();
    if failed > 0 {
        return Err(ProjectionError::RecordUnavailable(failed));
    }
    Ok((seq, body?))
}

/// The body of a view for a resolved cut.
fn body(
    k: &Knowledge,
    name: &str,
    entity: Option<&str>,
    q: &Query,
    cut: &Cut,
) -> Result<Value, ProjectionError> {
    let seq = cut.seq;
    let missing = |what: String| ProjectionError::NotFound(what);
    let body = match (name, entity) {
        (negotiation::NAME, None) => {
            negotiation::view_grouped(k, cut, q.process.as_deref(), q.group)
        }
        (negotiation::NAME, Some(p)) => negotiation::process_grouped(k, cut, p, q.group)
            .ok_or_else(|| missing(format!("no process `{p}` is known at seq {seq}")))?,
        (calendar::NAME, None) => calendar::view(k, cut, q.process.as_deref()),
        (actors::NAME, None) => actors::view(k, cut),
        (actors::NAME, Some(a)) => actors::actor(k, cut, a, q.limit.max(1), q.cursor)?
            .ok_or_else(|| missing(format!("no actor `{a}` is known at seq {seq}")))?,
        (sources::NAME, None) => sources::view(k, cut),
        (sources::NAME, Some(s)) => sources::source(k, cut, s)
            .ok_or_else(|| missing(format!("no source `{s}` is known at seq {seq}")))?,
        (history::NAME, None) => history::view(k, cut),
        (processes::NAME, None) => processes::view(k, cut),
        (n, _) if NAMES.contains(&n) => {
            return Err(missing(format!("projection `{n}` has no per-entity route")));
        }
        (n, _) => return Err(ProjectionError::UnknownProjection(n.to_string())),
    };
    Ok(body)
}

/// Every read model's full default view at the knowledge's own seq (tests compare these).
pub fn all_views(k: &Knowledge) -> Value {
    views_known_at(k, None)
}

/// Every read model's full default view as known at `seq` (tests compare these).
pub fn all_views_as_of(k: &Knowledge, seq: u64) -> Value {
    views_known_at(k, Some(KnownAt::Seq(seq)))
}

fn views_known_at(k: &Knowledge, known_at: Option<KnownAt>) -> Value {
    let q = Query {
        known_at,
        valid_at: Some("2100-01-01".into()),
        limit: usize::MAX,
        ..Query::default()
    };
    let mut out = serde_json::Map::new();
    for name in NAMES {
        let body = answer(k, name, None, &q)
            .map(|(_, v)| v)
            .unwrap_or_else(|e| Value::String(e.to_string()));
        out.insert((*name).to_string(), body);
    }
    for a in k.actors() {
        if let Ok((_, v)) = answer(k, actors::NAME, Some(a), &q) {
            out.insert(format!("actors/{a}"), v);
        }
    }
    for s in k.sources() {
        if let Ok((_, v)) = answer(k, sources::NAME, Some(s), &q) {
            out.insert(format!("sources/{s}"), v);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{Durability, Log, LogConfig};
    use crate::metrics::Metrics;
    use fact::tests::{A, record};

    /// A view whose record read fails must be refused, never shown with a null field. The
    /// log here is real but holds no record at the fact's seq, so the read fails as it would
    /// for a record lost to the store.
    #[tokio::test]
    async fn a_view_whose_record_cannot_be_read_is_refused_not_shown_with_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            durability: Durability::Os,
            max_group_events: 64,
            queue_capacity: 8,
            cache_capacity_bytes: 1 << 20,
            compression: false,
            ..crate::config::Config::defaults().unwrap().log
        };
        let log = Log::open(dir.path(), config, Metrics::new().unwrap(), |_, _, _| {
            Vec::new()
        })
        .unwrap();
        let bound = records::CacheBound {
            entries: 16,
            bytes: 1 << 16,
        };
        let mut k = Knowledge::over(records::Records::log(log.clone(), bound, None));
        let statement = r#"{"statement_id":"statement:x","speaker":"actor:a","content":"c"}"#;
        k.apply(1, &record(1, A, "statement.made", statement))
            .unwrap();
        let q = Query {
            limit: 10,
            ..Query::default()
        };

        let refused = answer(&k, actors::NAME, Some("actor:a"), &q);
        assert!(
            matches!(refused, Err(ProjectionError::RecordUnavailable(n)) if n >= 1),
            "{refused:?}"
        );
        // A view that reads no record still answers.
        assert!(answer(&k, actors::NAME, None, &q).is_ok());
        log.close().await;
    }

    /// The same for `annals replay` of a data folder: its fold reads records from the
    /// folder's store, and one it cannot read there refuses the view instead of printing it
    /// without that record's fields.
    #[test]
    fn a_replayed_view_whose_record_cannot_be_read_from_the_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("log").unwrap();
        let bound = records::CacheBound {
            entries: 16,
            bytes: 1 << 16,
        };
        let mut k = Knowledge::over(records::Records::store(tree, bound));
        let plan = r#"{"plan_id":"plan:x","title":"T","version":1,"points":3}"#;
        k.apply(1, &record(1, A, "plan.proposed", plan)).unwrap();
        let refused = crate::audit::replay::view(&k, "negotiation", "1", None);
        assert!(
            matches!(&refused, Err(crate::audit::replay::ReplayError::Input(m)) if m.contains("1 record(s)")),
            "{refused:?}"
        );
        assert!(crate::audit::replay::view(&k, "audit", "1", None).is_ok());
    }
}
