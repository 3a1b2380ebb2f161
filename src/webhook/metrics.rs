//! The webhook instruments on `/metrics`: deliveries by outcome, attempts by outcome, attempt
//! latency, lag per subscription, dead letters evicted per subscription, and how often the
//! shared message cache spared a read, and where a first attempt's time went, stage by stage
//! (cheap enough to stay on). This module must never fail a delivery over a metric.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
};

use crate::metrics::Metrics;

/// Webhook instruments.
#[derive(Clone)]
pub struct WebhookMetrics {
    /// Settled messages by outcome: `delivered`, `dead_lettered`; and subscriptions stopped:
    /// `paused`, `disabled` (the labels of the dispatcher's `Delivery`).
    pub deliveries: IntCounterVec,
    /// Attempts by outcome: `success`, `http_error`, `gone`, `timeout`, `connect_error`,
    /// `refused` (target guard), `unsigned` (no secret to sign with; never sent): the labels of
    /// the dispatcher's `AttemptOutcome`.
    pub attempts: IntCounterVec,
    /// Seconds per attempt, send to end of the (capped) response.
    pub attempt_seconds: Histogram,
    /// Head seq minus the subscription's cursor.
    pub lag: IntGaugeVec,
    /// Dead letters dropped to keep a subscription within
    /// `webhooks.max_dead_letters_per_subscription`.
    pub dead_letters_evicted: IntCounterVec,
    /// Records a delivery task examined, by where it found them: `hit` (prepared by the
    /// follower or another task, in the shared message cache) or `miss` (read and prepared
    /// from the log by the task itself: it was behind the cache). Mostly
    /// misses at several subscriptions means `webhooks.message_cache_entries` is too small
    /// for how far apart they are.
    pub message_cache_hits: IntCounter,
    /// The `miss` side of `webhook_message_cache_lookups_total`.
    pub message_cache_misses: IntCounter,
    /// `webhook_stage_seconds`: where each message's first attempt spent its time, one
    /// histogram per stage (see [`Stage`]), so a stall can be placed on `/metrics` without
    /// turning on a log: a jump in `prepared_to_queued` is a subscription's own backlog, in
    /// `sent_to_answered` the network or the receiver, in `seen_to_prepared` the log read.
    pub stages: [Histogram; Stage::ALL.len()],
}

/// The stages of a first attempt, in order: `seen` (the follower saw the head move past the
/// record), `prepared` (its message is in the shared cache), `queued` (the subscription's task
/// started settling it), `sent` (the attempt started), `answered` (the attempt ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading and preparing the record after the head moved.
    SeenToPrepared,
    /// Waiting in the subscription's task (its backlog: ordered delivery sends one at a time).
    PreparedToQueued,
    /// Set-up before the request (durability of the last failure, pacing).
    QueuedToSent,
    /// The attempt: signing, the client, the round trip, the answer read.
    SentToAnswered,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 4] = [
        Stage::SeenToPrepared,
        Stage::PreparedToQueued,
        Stage::QueuedToSent,
        Stage::SentToAnswered,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Stage::SeenToPrepared => "seen_to_prepared",
            Stage::PreparedToQueued => "prepared_to_queued",
            Stage::QueuedToSent => "queued_to_sent",
            Stage::SentToAnswered => "sent_to_answered",
        }
    }
}

impl WebhookMetrics {
    /// Records the stage times (monotonic nanoseconds, 0 when unknown) of one first attempt:
    /// a stage with either end unknown is skipped.
    pub fn observe_stages(&self, times: [u64; Stage::ALL.len() + 1]) {
        for (i, h) in self.stages.iter().enumerate() {
            let (from, to) = (times[i], times[i + 1]);
            if from > 0 && to > 0 {
                h.observe(to.saturating_sub(from) as f64 / 1e9);
            }
        }
    }
}

impl WebhookMetrics {
    /// Creates the instruments and registers them with the service's registry.
    pub fn register(metrics: &Metrics) -> Result<WebhookMetrics, prometheus::Error> {
        let deliveries = IntCounterVec::new(
            Opts::new(
                "webhook_deliveries_total",
                "Webhook messages settled, by outcome",
            ),
            &["outcome"],
        )?;
        let attempts = IntCounterVec::new(
            Opts::new("webhook_attempts_total", "Webhook attempts, by outcome"),
            &["outcome"],
        )?;
        let attempt_seconds = Histogram::with_opts(
            HistogramOpts::new("webhook_attempt_seconds", "Seconds per webhook attempt").buckets(
                vec![
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0,
                ],
            ),
        )?;
        let lag = IntGaugeVec::new(
            Opts::new(
                "webhook_lag_events",
                "Head seq minus the subscription's cursor",
            ),
            &["subscription"],
        )?;
        let dead_letters_evicted = IntCounterVec::new(
            Opts::new(
                "webhook_dead_letters_evicted_total",
                "Dead letters evicted (oldest first) to keep a subscription within webhooks.max_dead_letters_per_subscription",
            ),
            &["subscription"],
        )?;
        let message_cache = IntCounterVec::new(
            Opts::new(
                "webhook_message_cache_lookups_total",
                "Log records examined by webhook delivery tasks, by whether the shared message cache held them (hit) or they were read from the log (miss)",
            ),
            &["result"],
        )?;
        let stages = HistogramVec::new(
            HistogramOpts::new(
                "webhook_stage_seconds",
                "Seconds a message's first attempt spent in each stage: seen_to_prepared (the follower's read), prepared_to_queued (the subscription's backlog), queued_to_sent (set-up, pacing), sent_to_answered (the attempt)",
            )
            .buckets(vec![
                0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
                0.25, 0.5, 1.0, 5.0,
            ]),
            &["stage"],
        )?;
        metrics.register(Box::new(stages.clone()))?;
        metrics.register(Box::new(message_cache.clone()))?;
        metrics.register(Box::new(deliveries.clone()))?;
        metrics.register(Box::new(attempts.clone()))?;
        metrics.register(Box::new(attempt_seconds.clone()))?;
        metrics.register(Box::new(lag.clone()))?;
        metrics.register(Box::new(dead_letters_evicted.clone()))?;
        Ok(WebhookMetrics {
            deliveries,
            attempts,
            attempt_seconds,
            lag,
            dead_letters_evicted,
            message_cache_hits: message_cache.with_label_values(&["hit"]),
            message_cache_misses: message_cache.with_label_values(&["miss"]),
            stages: Stage::ALL.map(|st| stages.with_label_values(&[st.label()])),
        })
    }
}
