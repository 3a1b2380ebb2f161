//! Delivery: one task per active subscription reads the log after its cursor, skips what its
//! filter refuses, POSTs what it accepts (signed, through the target guard, paced by the rate
//! limit, retried on the schedule) and moves the cursor only past messages that are settled
//! (delivered, or dead-lettered in parallel mode). The log is the outbox: nothing is queued
//! anywhere else, so a restart resumes from the cursor. This module must never write to the
//! log, never wait on another subscription, and never log a secret or a body.

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use prometheus::IntGauge;
use reqwest::Url;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::WebhookConfig;
use super::guard::{self, Checked};
use super::metrics::WebhookMetrics;
use super::retry;
use super::signing;
use super::store::{Store, StoreError};
use super::subscription::{Attempt, DeadLetter, Mode, Status, Subscription, ms_to_rfc3339, now_ms};
use crate::log::{Log, LogError, Record, Recorded};

/// What every delivery task shares.
pub(crate) struct Ctx {
    /// The log (read only).
    pub log: Log,
    /// The `webhooks` tree.
    pub store: Store,
    /// Settings.
    pub config: WebhookConfig,
    /// Instruments.
    pub metrics: WebhookMetrics,
    /// Set when a cursor or record moved since the last `sync_aux`; the syncer clears it.
    pub dirty: AtomicBool,
    /// The client for targets given as IP literals (nothing to resolve, so nothing to pin);
    /// shared so connections are kept alive across subscriptions.
    pub ip_client: reqwest::Client,
}

/// Why a delivery task stopped on its own.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log failed.
    #[error(transparent)]
    Log(#[from] LogError),
}

/// A running delivery task and the switch that stops it.
pub(crate) struct Worker {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl Worker {
    /// Stops the task and waits until it is gone. In-flight requests are dropped; their
    /// messages stay after the cursor and are sent again by the next run (same webhook-id).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.handle.await
            && e.is_panic()
        {
            tracing::error!("a webhook delivery task panicked");
        }
    }
}

/// Starts the delivery task of an active subscription.
pub(crate) fn spawn(ctx: Arc<Ctx>, sub: Subscription) -> Worker {
    let (stop, mut stop_rx) = watch::channel(false);
    let id = sub.id;
    let handle = tokio::spawn(async move {
        tokio::select! {
            result = run(ctx, sub) => if let Err(e) = result {
                tracing::error!(subscription = %id, error = %e, "webhook delivery task stopped");
            },
            _ = stop_rx.wait_for(|s| *s) => {}
        }
    });
    Worker { stop, handle }
}

/// A message ready to send.
#[derive(Clone)]
struct Msg {
    seq: u64,
    event_id: String,
    event_type: String,
    /// `{"type","timestamp","data"}`: built once, signed and sent as is on every attempt.
    body: Bytes,
}

impl Msg {
    fn new(rec: &Record, recorded: &Recorded) -> Result<Msg, serde_json::Error> {
        let body = format!(
            "{{\"type\":{},\"timestamp\":{},\"data\":{}}}",
            serde_json::to_string(&rec.event_type)?,
            serde_json::to_string(&rec.recorded_at)?,
            recorded.envelope_json()
        );
        Ok(Msg {
            seq: recorded.seq,
            event_id: rec.id.to_string(),
            event_type: rec.event_type.clone(),
            body: Bytes::from(body),
        })
    }
}

/// How a message settled.
enum Outcome {
    /// A 2xx came back.
    Delivered,
    /// Stored in the dead letters; delivery goes on.
    DeadLettered,
    /// The subscription must stop (410, ordered exhaustion, failing too long).
    Stop(Status, String),
}

/// What to do when the schedule runs out.
#[derive(Clone, Copy)]
enum Exhaust {
    /// Ordered mode pauses; parallel mode dead-letters.
    ByMode,
    /// A redelivery goes back to the dead letters, with `prior` attempts already made.
    DeadLetter { prior: u32 },
}

/// One attempt's verdict.
enum Verdict {
    Success,
    Gone,
    Failed {
        error: String,
        retry_after: Option<Duration>,
    },
}

/// Paces attempts to the subscription's rate limit (a virtual clock: no burst).
struct Pacer {
    interval: Option<Duration>,
    /// The earliest start of the next attempt. A std mutex: held for two instructions, never
    /// across an await.
    next: std::sync::Mutex<tokio::time::Instant>,
}

impl Pacer {
    async fn wait(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let at = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let at = (*next).max(tokio::time::Instant::now());
            *next = at + interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// Per-subscription state shared by its in-flight deliveries (all inside one task).
struct SubCtx {
    url: Url,
    mode: Mode,
    /// The stored record; deliveries update `failing_since_ms` and the status through it. A
    /// std mutex: never held across an await.
    sub: std::sync::Mutex<Subscription>,
    pacer: Pacer,
    attempt_no: AtomicU64,
    /// The client pinned to the last checked addresses of a named host (reused while the
    /// host resolves to the same set, so connections stay alive).
    client: std::sync::Mutex<Option<(Checked, reqwest::Client)>>,
    lag: IntGauge,
}

impl SubCtx {
    fn id(&self) -> uuid::Uuid {
        self.sub.lock().unwrap_or_else(|e| e.into_inner()).id
    }

    fn keys(&self) -> Vec<Vec<u8>> {
        let sub = self.sub.lock().unwrap_or_else(|e| e.into_inner());
        sub.signing_secrets(now_ms())
            .into_iter()
            .filter_map(|s| signing::decode_secret(s).ok())
            .collect()
    }

    /// A client that connects only to addresses the guard has just checked.
    async fn client(&self, ctx: &Ctx) -> Result<reqwest::Client, String> {
        let checked = guard::check(&self.url, ctx.config.allow_private_targets)
            .await
            .map_err(|e| format!("target refused: {e}"))?;
        let Some(host) = checked.host.clone() else {
            return Ok(ctx.ip_client.clone());
        };
        let mut slot = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((c, client)) = slot.as_ref()
            && c.addrs == checked.addrs
        {
            return Ok(client.clone());
        }
        let client = client_builder(&ctx.config)
            .resolve_to_addrs(&host, &checked.addrs)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        *slot = Some((checked, client.clone()));
        Ok(client)
    }

    fn save(&self, ctx: &Ctx, change: impl FnOnce(&mut Subscription)) -> Result<(), StoreError> {
        let mut sub = self.sub.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut sub);
        ctx.store.put_subscription(&sub)?;
        ctx.dirty.store(true, Ordering::Release);
        Ok(())
    }

    fn mark_healthy(&self, ctx: &Ctx) {
        let failing = self
            .sub
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failing_since_ms
            .is_some();
        if failing && let Err(e) = self.save(ctx, |s| s.failing_since_ms = None) {
            tracing::error!(error = %e, "cannot record a healthy subscription");
        }
    }

    /// Notes a failure; returns the reason to disable once it has only failed for too long.
    fn mark_failing(&self, ctx: &Ctx) -> Option<String> {
        let now = now_ms();
        let since = self
            .sub
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failing_since_ms;
        match since {
            None => {
                if let Err(e) = self.save(ctx, |s| s.failing_since_ms = Some(now)) {
                    tracing::error!(error = %e, "cannot record a failing subscription");
                }
                None
            }
            Some(t) if now.saturating_sub(t) >= ctx.config.disable_after_failing_secs * 1000 => {
                Some(format!(
                    "every attempt has failed since {} (webhooks.disable_after_failing_secs = {})",
                    ms_to_rfc3339(t),
                    ctx.config.disable_after_failing_secs
                ))
            }
            Some(_) => None,
        }
    }
}

/// The HTTP client settings every target gets: no redirects, no proxy (a proxy would connect
/// to addresses the guard never saw), timeouts.
pub(crate) fn client_builder(config: &WebhookConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_millis(config.timeout_ms))
        .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
        .tcp_nodelay(true)
        .user_agent(concat!("Annals-Webhooks/", env!("CARGO_PKG_VERSION")))
}

type Pending = Pin<Box<dyn Future<Output = (bool, u64, Outcome)> + Send>>;

/// The delivery loop of one subscription.
async fn run(ctx: Arc<Ctx>, sub: Subscription) -> Result<(), RunError> {
    let id = sub.id;
    let url = match guard::parse(&sub.url) {
        Ok(u) => u,
        Err(e) => {
            // Stored URLs were checked at creation; one that no longer parses cannot deliver.
            let mut sub = sub;
            sub.status = Status::Disabled;
            sub.status_reason = Some(e.to_string());
            ctx.store.put_subscription(&sub)?;
            return Ok(());
        }
    };
    let k = match sub.mode {
        Mode::Ordered => 1,
        Mode::Parallel => sub.max_in_flight.clamp(1, ctx.config.max_in_flight) as usize,
    };
    let lag = ctx.metrics.lag.with_label_values(&[&id.to_string()]);
    let s = Arc::new(SubCtx {
        url,
        mode: sub.mode,
        pacer: Pacer {
            interval: sub
                .rate_limit_per_sec
                .filter(|r| *r > 0)
                .map(|r| Duration::from_secs_f64(1.0 / f64::from(r))),
            next: std::sync::Mutex::new(tokio::time::Instant::now()),
        },
        attempt_no: AtomicU64::new(ctx.store.last_attempt_number(&id)?),
        client: std::sync::Mutex::new(None),
        lag,
        sub: std::sync::Mutex::new(sub),
    });
    let mut cursor = ctx.store.cursor(&id)?;
    let mut next = cursor + 1;
    let mut buffer: VecDeque<Msg> = VecDeque::new();
    let mut in_flight: BTreeSet<u64> = BTreeSet::new();
    let mut pending: FuturesUnordered<Pending> = FuturesUnordered::new();

    // Dead letters queued for redelivery run beside the cursor; they never move it.
    for dl in ctx.store.dead_letters(&id)? {
        if !dl.redeliver {
            continue;
        }
        match ctx.log.get(dl.seq)? {
            Some(recorded) => match recorded.record().map(|r| Msg::new(&r, &recorded)) {
                Ok(Ok(msg)) => pending.push(Box::pin(settle(
                    ctx.clone(),
                    s.clone(),
                    msg,
                    Exhaust::DeadLetter { prior: dl.attempts },
                    true,
                ))),
                _ => tracing::error!(seq = dl.seq, "dead letter record does not parse"),
            },
            None => ctx.store.remove_dead_letter(&id, dl.seq)?,
        }
    }

    let mut head_rx = ctx.log.subscribe();
    loop {
        let head = head_rx.borrow_and_update().seq;
        while in_flight.len() < k {
            if buffer.is_empty() && next <= head {
                let (msgs, after) = read(&ctx, &s, next)?;
                next = after;
                buffer.extend(msgs);
            }
            let Some(msg) = buffer.pop_front() else {
                break;
            };
            in_flight.insert(msg.seq);
            pending.push(Box::pin(settle(
                ctx.clone(),
                s.clone(),
                msg,
                Exhaust::ByMode,
                false,
            )));
        }
        // Everything before the oldest unsettled message is settled.
        let settled = in_flight
            .first()
            .or(buffer.front().map(|m| &m.seq))
            .map(|seq| seq - 1)
            .unwrap_or(next - 1);
        if settled > cursor {
            ctx.store.set_cursor(&id, settled)?;
            ctx.dirty.store(true, Ordering::Release);
            cursor = settled;
        }
        s.lag.set(head.saturating_sub(cursor) as i64);
        let room = in_flight.len() < k && buffer.is_empty() && next > head;
        if pending.is_empty() {
            if head_rx.changed().await.is_err() {
                return Ok(());
            }
            continue;
        }
        tokio::select! {
            done = pending.next() => {
                let Some((redelivery, seq, outcome)) = done else { continue };
                if !redelivery {
                    in_flight.remove(&seq);
                }
                match outcome {
                    Outcome::Delivered => {
                        if redelivery {
                            ctx.store.remove_dead_letter(&id, seq)?;
                        }
                    }
                    Outcome::DeadLettered => {}
                    Outcome::Stop(status, reason) => {
                        tracing::warn!(subscription = %id, ?status, %reason, "webhook subscription stopped");
                        let label = if status == Status::Paused { "paused" } else { "disabled" };
                        ctx.metrics.deliveries.with_label_values(&[label]).inc();
                        s.save(&ctx, |sub| {
                            sub.status = status;
                            sub.status_reason = Some(reason);
                            sub.updated_at = ms_to_rfc3339(now_ms());
                        })?;
                        return Ok(());
                    }
                }
            }
            changed = head_rx.changed(), if room => {
                if changed.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// Reads the next matching records after `from` (bounded by the durable head).
fn read(ctx: &Ctx, s: &SubCtx, from: u64) -> Result<(Vec<Msg>, u64), RunError> {
    let filter = s
        .sub
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .filter
        .clone();
    let mut parsed = Vec::new();
    let (records, after) = ctx.log.read_range(from, ctx.config.read_batch, |r| {
        match r.record() {
            Ok(rec) if filter.matches(&rec) => {
                parsed.push(rec);
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::error!(seq = r.seq, error = %e, "stored record does not parse; not delivered");
                false
            }
        }
    })?;
    let mut msgs = Vec::with_capacity(records.len());
    for (rec, recorded) in parsed.iter().zip(records.iter()) {
        match Msg::new(rec, recorded) {
            Ok(m) => msgs.push(m),
            Err(e) => {
                tracing::error!(seq = recorded.seq, error = %e, "cannot build a webhook body")
            }
        }
    }
    Ok((msgs, after))
}

/// Sends one message until it settles: delivered, exhausted (paused or dead-lettered) or a
/// reason to stop the subscription.
async fn settle(
    ctx: Arc<Ctx>,
    s: Arc<SubCtx>,
    msg: Msg,
    exhaust: Exhaust,
    redelivery: bool,
) -> (bool, u64, Outcome) {
    let outcome = settle_inner(&ctx, &s, &msg, exhaust).await;
    if let Outcome::Delivered = outcome {
        ctx.metrics
            .deliveries
            .with_label_values(&["delivered"])
            .inc();
    }
    (redelivery, msg.seq, outcome)
}

async fn settle_inner(ctx: &Ctx, s: &SubCtx, msg: &Msg, exhaust: Exhaust) -> Outcome {
    let schedule = &ctx.config.retry_schedule_ms;
    let mut last_error = String::new();
    let mut made = 0u32;
    if msg.body.len() > ctx.config.max_request_bytes {
        // No retry can make it smaller: straight to the dead letters, in either mode.
        let reason = format!(
            "the message is {} bytes, over webhooks.max_request_bytes ({})",
            msg.body.len(),
            ctx.config.max_request_bytes
        );
        return dead_letter(ctx, s, msg, 0, reason);
    }
    let mut hint: Option<Duration> = None;
    for index in 0..schedule.len() {
        let mut wait = retry::delay(schedule, index, ctx.config.jitter_percent).unwrap_or_default();
        if let Some(h) = hint.take() {
            wait = wait.max(h);
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        s.pacer.wait().await;
        made += 1;
        match attempt(ctx, s, msg, made).await {
            Verdict::Success => {
                s.mark_healthy(ctx);
                return Outcome::Delivered;
            }
            Verdict::Gone => {
                return Outcome::Stop(
                    Status::Disabled,
                    format!(
                        "the target answered 410 Gone (seq {}, webhook-id {})",
                        msg.seq, msg.event_id
                    ),
                );
            }
            Verdict::Failed { error, retry_after } => {
                last_error = error;
                hint = retry_after;
                if let Some(reason) = s.mark_failing(ctx) {
                    return Outcome::Stop(Status::Disabled, reason);
                }
            }
        }
    }
    match (exhaust, s.mode) {
        (Exhaust::ByMode, Mode::Ordered) => Outcome::Stop(
            Status::Paused,
            format!(
                "seq {} (webhook-id {}) failed {made} attempts; ordered delivery waits for it (last error: {last_error}); resume to retry",
                msg.seq, msg.event_id
            ),
        ),
        (Exhaust::ByMode, Mode::Parallel) => dead_letter(ctx, s, msg, made, last_error),
        (Exhaust::DeadLetter { prior }, _) => dead_letter(ctx, s, msg, prior + made, last_error),
    }
}

fn dead_letter(ctx: &Ctx, s: &SubCtx, msg: &Msg, attempts: u32, reason: String) -> Outcome {
    let id = s.id();
    let dl = DeadLetter {
        seq: msg.seq,
        event_id: msg.event_id.clone(),
        event_type: msg.event_type.clone(),
        attempts,
        reason,
        at: ms_to_rfc3339(now_ms()),
        redeliver: false,
    };
    if let Err(e) = ctx.store.put_dead_letter(&id, &dl) {
        // Without the dead letter the cursor must not pass this message.
        return Outcome::Stop(
            Status::Paused,
            format!("cannot store the dead letter for seq {}: {e}", msg.seq),
        );
    }
    ctx.dirty.store(true, Ordering::Release);
    ctx.metrics
        .deliveries
        .with_label_values(&["dead_lettered"])
        .inc();
    tracing::warn!(subscription = %id, seq = msg.seq, attempts, "webhook message dead-lettered");
    Outcome::DeadLettered
}

/// One HTTP attempt, recorded in the attempts ring and the metrics.
async fn attempt(ctx: &Ctx, s: &SubCtx, msg: &Msg, number: u32) -> Verdict {
    let id = s.id();
    let at = ms_to_rfc3339(now_ms());
    let start = Instant::now();
    let result = send(ctx, s, msg).await;
    let latency = start.elapsed();
    ctx.metrics.attempt_seconds.observe(latency.as_secs_f64());
    let (verdict, status, error, response, label) = match result {
        Ok((status, retry_after, preview)) => {
            let preview = Some(String::from_utf8_lossy(&preview).into_owned());
            if (200..300).contains(&status) {
                (Verdict::Success, Some(status), None, preview, "success")
            } else if status == 410 {
                (
                    Verdict::Gone,
                    Some(status),
                    Some("HTTP 410 Gone".to_string()),
                    preview,
                    "gone",
                )
            } else {
                let error = if (300..400).contains(&status) {
                    format!("HTTP {status} (redirects are not followed)")
                } else {
                    format!("HTTP {status}")
                };
                (
                    Verdict::Failed {
                        error: error.clone(),
                        retry_after,
                    },
                    Some(status),
                    Some(error),
                    preview,
                    "http_error",
                )
            }
        }
        Err((label, error)) => (
            Verdict::Failed {
                error: error.clone(),
                retry_after: None,
            },
            None,
            Some(error),
            None,
            label,
        ),
    };
    ctx.metrics.attempts.with_label_values(&[label]).inc();
    tracing::info!(
        target: "annals::webhook",
        subscription = %id,
        seq = msg.seq,
        webhook_id = %msg.event_id,
        attempt = number,
        status = status.unwrap_or(0),
        outcome = label,
        error = error.as_deref().unwrap_or(""),
        micros = latency.as_micros() as u64,
        "webhook attempt"
    );
    let record = Attempt {
        at,
        seq: msg.seq,
        event_id: msg.event_id.clone(),
        attempt: number,
        outcome: if label == "success" {
            "success".into()
        } else {
            "failure".into()
        },
        status,
        latency_ms: latency.as_secs_f64() * 1000.0,
        error,
        response,
    };
    let n = s.attempt_no.fetch_add(1, Ordering::AcqRel) + 1;
    if let Err(e) = ctx
        .store
        .push_attempt(&id, n, &record, ctx.config.attempts_kept as u64)
    {
        tracing::error!(error = %e, "cannot record a webhook attempt");
    }
    verdict
}

/// Sends the request; answers (status, Retry-After, first bytes) or (metric label, error).
async fn send(
    ctx: &Ctx,
    s: &SubCtx,
    msg: &Msg,
) -> Result<(u16, Option<Duration>, Vec<u8>), (&'static str, String)> {
    let client = s.client(ctx).await.map_err(|e| ("refused", e))?;
    let timestamp = (now_ms() / 1000) as i64;
    let signature = signing::signature_header(&s.keys(), &msg.event_id, timestamp, &msg.body);
    let mut resp = client
        .post(s.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &msg.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(msg.body.clone())
        .send()
        .await
        .map_err(describe)?;
    let status = resp.status().as_u16();
    let retry_after = if status == 429 || status == 503 {
        resp.headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                retry::retry_after(v, Duration::from_secs(ctx.config.retry_after_max_secs))
            })
    } else {
        None
    };
    // Read no more than the cap: a target cannot make us buffer an endless answer.
    let mut preview = Vec::new();
    let mut read = 0usize;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                read += chunk.len();
                let room = ctx
                    .config
                    .response_preview_bytes
                    .saturating_sub(preview.len());
                preview.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if read >= ctx.config.max_response_bytes {
                    break;
                }
            }
            Ok(None) => break,
            // The status already arrived; a broken body does not change the verdict.
            Err(_) => break,
        }
    }
    Ok((status, retry_after, preview))
}

fn describe(e: reqwest::Error) -> (&'static str, String) {
    if e.is_timeout() {
        ("timeout", "timed out".to_string())
    } else if e.is_connect() {
        (
            "connect_error",
            format!("connection failed: {}", root_cause(&e)),
        )
    } else {
        (
            "connect_error",
            format!("request failed: {}", root_cause(&e)),
        )
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
