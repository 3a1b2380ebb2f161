//! `GET /events/live`: Server-Sent Events that catch up from a position, mark the switch to
//! live, then follow the durable head. Readers pull from the log at their own pace; the writer
//! only moves a watch channel, so a slow reader can never slow it. A reader that falls more
//! than `live.max_lag` events behind is cut off with an `error` event that says where to resume.
//! This module must never buffer records on a reader's behalf.

use std::convert::Infallible;

use serde::{Deserialize, Serialize};
use serde_json::json;
use warp::Reply;
use warp::reply::Response;
use warp::sse::Event;

use warp::Filter;
use warp::filters::BoxedFilter;

use super::auth::with_scope;
use super::events::type_param;
use super::problem::Problem;
use super::{Query, Shared, keep_alive, optional_header, other_methods, query, with_state};
use crate::keys::{Principal, Scope};

/// Live feed settings (`[live]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveConfig {
    /// Events a live reader may fall behind before it is cut off.
    pub max_lag: u64,
    /// Seconds between keep-alive comments.
    pub keep_alive_secs: u64,
    /// Records a reader reads from the log per step: what one reader holds at most.
    pub read_batch: usize,
}

fn record_event(rec: &crate::log::Recorded) -> Event {
    Event::default()
        .id(rec.seq.to_string())
        .event("record")
        .data(rec.envelope_json())
}

fn error_event(problem: &Problem) -> Event {
    Event::default()
        .event("error")
        .data(problem.body().to_string())
}

/// `GET /events/live`.
pub fn routes(state: Shared) -> BoxedFilter<(Response,)> {
    warp::path!("events" / "live")
        .and(warp::get())
        .and(with_scope(state.clone(), Scope::Read))
        .and(optional_header::<String>("last-event-id"))
        .and(query())
        .and(with_state(state))
        .map(|_: Principal, last_id, q: Query, st: Shared| feed(st, last_id, &q))
        .or(warp::path!("events" / "live").and(other_methods("GET")))
        .unify()
        .boxed()
}

/// The live feed handler.
fn feed(st: Shared, last_event_id: Option<String>, query: &Query) -> Response {
    // `from` is checked even when Last-Event-ID overrides it: a malformed request is refused
    // whichever parameter would have won.
    let from_param = match query.get("from").map(|f| (f, f.parse::<u64>())) {
        None => None,
        Some((_, Ok(n))) => Some(n.max(1)),
        Some((f, Err(_))) => {
            return Problem::bad_query("from", format!("`from` must be a seq (got `{f}`)"))
                .into_response();
        }
    };
    let from = match (from_param, last_event_id) {
        // A reconnecting browser resumes after the last record it saw.
        (_, Some(last)) => match last.trim().parse::<u64>() {
            Ok(n) => n.saturating_add(1),
            Err(_) => {
                return Problem::bad_query("Last-Event-ID", "Last-Event-ID must be a seq")
                    .into_response();
            }
        },
        (Some(f), None) => f,
        (None, None) => st.log.head().seq + 1,
    };
    let filter = match type_param(query) {
        Ok(f) => f,
        Err(p) => return p.into_response(),
    };
    let interval = keep_alive(&st.live);
    let stream = async_stream::stream! {
        let state = st.clone();
        state.metrics.live_readers.inc();
        let _gauge = GaugeGuard(state.metrics.live_readers.clone());
        let mut head_rx = state.log.subscribe();
        let mut shutdown = state.shutdown.clone();
        let mut next = from;
        let mut live = false;
        loop {
            let head = head_rx.borrow_and_update().seq;
            while next <= head {
                let lag = head + 1 - next;
                if live && lag > state.live.max_lag {
                    state.metrics.live_cutoffs.inc();
                    tracing::info!(next, head, "live reader cut off: too slow");
                    let p = Problem::new(
                        warp::http::StatusCode::TOO_MANY_REQUESTS,
                        "reader-too-slow",
                        "Live reader too slow",
                        format!(
                            "this reader fell {lag} events behind the head (limit live.max_lag = {}); reconnect with from={next}",
                            state.live.max_lag
                        ),
                    )
                    .with("resume_from", json!(next));
                    yield Ok::<Event, Infallible>(error_event(&p));
                    return;
                }
                let window = if filter.is_all() {
                    usize::MAX
                } else {
                    state.limits().max_scan_per_read
                };
                match state.log.read_range_within(next, state.live.read_batch, window, |r| filter.keeps(r)) {
                    Ok((records, after)) => {
                        for rec in &records {
                            yield Ok(record_event(rec));
                        }
                        next = after;
                        if records.is_empty() {
                            // A rare filter: let other tasks run between search windows.
                            tokio::task::yield_now().await;
                        }
                    }
                    Err(e) => {
                        yield Ok(error_event(&Problem::storage(&e)));
                        return;
                    }
                }
            }
            if !live {
                live = true;
                // The head this reader has caught up with (not `from - 1`, which may lie beyond it).
                yield Ok(Event::default().event("live").data(json!({"seq": head}).to_string()));
            }
            tokio::select! {
                changed = head_rx.changed() => if changed.is_err() { return; },
                _ = shutdown.changed() => return,
            }
        }
    };
    warp::sse::reply(warp::sse::keep_alive().interval(interval).stream(stream)).into_response()
}

/// Decrements the reader gauge when the feed ends, however it ends.
struct GaugeGuard(prometheus::IntGauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
