//! One HTTP attempt: signed per Standard Webhooks, through a client that connects only to
//! addresses the target guard has just checked (`http1` for http targets, the pinned reqwest
//! client for https), its answer read no further than the caps, its
//! outcome counted and kept in the attempts ring. This module must never follow a redirect,
//! never send unsigned, and never log a secret or a body.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use super::context::Ctx;
use super::http1;
use super::message::Msg;
use super::stages::{self, Seen};
use super::task::SubCtx;
use crate::webhook::guard;
use crate::webhook::retry;
use crate::webhook::signing;
use crate::webhook::subscription::{Attempt, ms_to_rfc3339, now_ms};

/// The Standard Webhooks headers.
const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// One attempt's verdict.
pub(super) enum Verdict {
    /// A 2xx: delivered.
    Success,
    /// A 410: the target wants no more.
    Gone,
    /// Anything else: try again on the schedule.
    Failed {
        /// What went wrong.
        error: String,
        /// The target's `Retry-After` (429 and 503), within bounds.
        retry_after: Option<Duration>,
    },
}

/// What became of one attempt, as `webhook_attempts_total` counts it (its labels come from
/// here, nowhere else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AttemptOutcome {
    /// A 2xx.
    Success,
    /// Another status (redirects included: they are never followed).
    HttpError,
    /// A 410.
    Gone,
    /// No answer within `webhooks.timeout_ms`.
    Timeout,
    /// The connection or the request failed.
    ConnectError,
    /// The target guard refused the target.
    Refused,
    /// No secret to sign with: never sent.
    Unsigned,
}

impl AttemptOutcome {
    /// The metric label.
    pub(super) fn label(self) -> &'static str {
        match self {
            AttemptOutcome::Success => "success",
            AttemptOutcome::HttpError => "http_error",
            AttemptOutcome::Gone => "gone",
            AttemptOutcome::Timeout => "timeout",
            AttemptOutcome::ConnectError => "connect_error",
            AttemptOutcome::Refused => "refused",
            AttemptOutcome::Unsigned => "unsigned",
        }
    }

    /// The attempts ring's `outcome`: `success` or `failure`.
    fn recorded(self) -> &'static str {
        if self == AttemptOutcome::Success {
            "success"
        } else {
            "failure"
        }
    }
}

/// One HTTP attempt, recorded in the attempts ring and the metrics.
pub(super) async fn attempt(
    ctx: &Ctx,
    s: &SubCtx,
    msg: &Msg,
    number: u32,
    seen: Option<Seen>,
) -> Verdict {
    let id = s.id();
    let at = ms_to_rfc3339(now_ms());
    let sent_ns = if seen.is_some() { stages::now_ns() } else { 0 };
    let start = Instant::now();
    let result = send(ctx, s, msg).await;
    let latency = start.elapsed();
    if let Some(seen) = seen {
        let answered_ns = stages::now_ns();
        ctx.metrics.observe_stages([
            msg.seen_ns,
            msg.prepared_ns,
            seen.queued_ns,
            sent_ns,
            answered_ns,
        ]);
        if seen.trace {
            stages::log(&id, msg.seq, seen, sent_ns, answered_ns);
        }
    }
    ctx.metrics.attempt_seconds.observe(latency.as_secs_f64());
    let (verdict, status, error, response, outcome) = match result {
        Ok((status, retry_after, preview)) => {
            let preview = Some(String::from_utf8_lossy(&preview).into_owned());
            if (200..300).contains(&status) {
                (
                    Verdict::Success,
                    Some(status),
                    None,
                    preview,
                    AttemptOutcome::Success,
                )
            } else if status == 410 {
                (
                    Verdict::Gone,
                    Some(status),
                    Some("HTTP 410 Gone".to_string()),
                    preview,
                    AttemptOutcome::Gone,
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
                    AttemptOutcome::HttpError,
                )
            }
        }
        Err((outcome, error)) => (
            Verdict::Failed {
                error: error.clone(),
                retry_after: None,
            },
            None,
            Some(error),
            None,
            outcome,
        ),
    };
    if outcome == AttemptOutcome::Success {
        s.succeeded.inc();
    } else {
        ctx.metrics
            .attempts
            .with_label_values(&[outcome.label()])
            .inc();
    }
    // One line per attempt. A failure is news (info); a success is the normal case, and at
    // thousands of deliveries a second formatting and writing its line cost a fifth of the
    // delivery's CPU, so it is logged at debug (`ANNALS_LOG=annals::webhook=debug`).
    macro_rules! log_attempt {
        ($level:ident) => {
            tracing::$level!(
                target: "annals::webhook",
                subscription = %id,
                seq = msg.seq,
                webhook_id = %msg.event_id,
                attempt = number,
                status = status.unwrap_or(0),
                outcome = outcome.label(),
                error = error.as_deref().unwrap_or(""),
                micros = latency.as_micros() as u64,
                "webhook attempt"
            )
        };
    }
    if outcome == AttemptOutcome::Success {
        log_attempt!(debug);
    } else {
        log_attempt!(info);
    }
    let record = Attempt {
        at,
        seq: msg.seq,
        event_id: msg.event_id.to_string(),
        attempt: number,
        outcome: outcome.recorded().into(),
        status,
        latency_ms: latency.as_secs_f64() * 1000.0,
        error,
        response,
    };
    let n = s.attempt_no.fetch_add(1, Ordering::AcqRel) + 1;
    if let Err(e) = ctx
        .store
        .push_attempt(&id, n, record, ctx.config.attempts_kept as u64)
    {
        tracing::error!(error = %e, "cannot record a webhook attempt");
    }
    verdict
}

/// Sends the request; answers (status, Retry-After, first bytes) or (outcome, error).
async fn send(
    ctx: &Ctx,
    s: &SubCtx,
    msg: &Msg,
) -> Result<(u16, Option<Duration>, Vec<u8>), (AttemptOutcome, String)> {
    let timestamp = (now_ms() / 1000) as i64;
    let keys = s.keys(now_ms());
    if keys.is_empty() {
        // Only a subscription whose unreadable secrets were dropped has none, and it is
        // disabled until rotated; still, nothing is ever sent unsigned.
        return Err((
            AttemptOutcome::Unsigned,
            "no secret to sign with; rotate the subscription's secret".into(),
        ));
    }
    let signature = signing::signature_header_with(&keys, &msg.event_id, timestamp, &msg.body);
    // The headers put together from parts made once (names, the id's value), not through a
    // builder, which parses every name and value again on every attempt.
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
    headers.insert(WEBHOOK_ID, msg.id_header.clone());
    headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp));
    headers.insert(
        WEBHOOK_SIGNATURE,
        HeaderValue::try_from(signature).map_err(|e| {
            (
                AttemptOutcome::Unsigned,
                format!("the signature is not a valid header value: {e}"),
            )
        })?,
    );
    let (status, answer_headers, preview) = match &s.target {
        Some(target) => {
            let checked = guard::check(&s.url, ctx.config.allow_private_targets)
                .await
                .map_err(|e| (AttemptOutcome::Refused, format!("target refused: {e}")))?;
            let limits = http1::Limits {
                timeout: Duration::from_millis(ctx.config.timeout_ms),
                connect_timeout: Duration::from_millis(ctx.config.connect_timeout_ms),
                max_response_bytes: ctx.config.max_response_bytes,
                preview_bytes: ctx.config.response_preview_bytes,
            };
            let answer = http1::post(
                &s.pool,
                target,
                &checked.addrs,
                headers,
                msg.body.clone(),
                &limits,
            )
            .await
            .map_err(|e| match e {
                http1::SendError::Timeout => (AttemptOutcome::Timeout, e.to_string()),
                _ => (AttemptOutcome::ConnectError, e.to_string()),
            })?;
            (answer.status, answer.headers, answer.preview)
        }
        None => send_tls(ctx, s, msg, headers).await?,
    };
    let retry_after = if status == 429 || status == 503 {
        answer_headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                retry::retry_after(v, Duration::from_secs(ctx.config.retry_after_max_secs))
            })
    } else {
        None
    };
    Ok((status, retry_after, preview))
}

/// Sends an https request through the subscription's pinned reqwest client; answers the
/// status, the headers and the first bytes.
async fn send_tls(
    ctx: &Ctx,
    s: &SubCtx,
    msg: &Msg,
    headers: HeaderMap,
) -> Result<(u16, HeaderMap, Vec<u8>), (AttemptOutcome, String)> {
    let client = s
        .client(ctx)
        .await
        .map_err(|e| (AttemptOutcome::Refused, e))?;
    let mut request = reqwest::Request::new(reqwest::Method::POST, s.url.clone());
    *request.headers_mut() = headers;
    *request.body_mut() = Some(msg.body.clone().into());
    let mut resp = client.execute(request).await.map_err(describe)?;
    let status = resp.status().as_u16();
    let answer_headers = std::mem::take(resp.headers_mut());
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
    Ok((status, answer_headers, preview))
}

fn describe(e: reqwest::Error) -> (AttemptOutcome, String) {
    if e.is_timeout() {
        (AttemptOutcome::Timeout, "timed out".to_string())
    } else if e.is_connect() {
        (
            AttemptOutcome::ConnectError,
            format!("connection failed: {}", root_cause(&e)),
        )
    } else {
        (
            AttemptOutcome::ConnectError,
            format!("request failed: {}", root_cause(&e)),
        )
    }
}

/// The innermost error's text (what failed, without the layers that passed it on).
pub(super) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
