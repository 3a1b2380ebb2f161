//! Prometheus metrics for everything the server does. Instruments are created once here and
//! shared; this module must never block or fail a request because a metric could not be
//! recorded.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Every instrument the service exports on `/metrics`.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Events made durable by appends (imports included).
    pub events_appended: IntCounter,
    /// Append requests by outcome (`ok`, `duplicate`, `conflict`, `rejected`, `unavailable`).
    pub append_requests: IntCounterVec,
    /// Append bodies by how they were read: `fast` (borrowed, every event taken whole) or
    /// `value` (parsed into `serde_json` values: a refusal, or a body the fast path leaves).
    pub append_bodies: IntCounterVec,
    /// Append requests per group commit.
    pub group_requests: Histogram,
    /// Events per group commit.
    pub group_events: Histogram,
    /// Seconds spent making one group durable (sled batch + flush + fdatasync).
    pub flush_seconds: Histogram,
    /// The durable head sequence number.
    pub head_seq: IntGauge,
    /// HTTP responses by status code.
    pub http_responses: IntCounterVec,
    /// HTTP request latency in seconds.
    pub http_seconds: Histogram,
    /// Live feed readers connected now.
    pub live_readers: IntGauge,
    /// Live readers cut off for falling too far behind.
    pub live_cutoffs: IntCounter,
    /// Registry ids the writer remembers now (at most `[log] known_ids`).
    pub writer_known_ids: IntGauge,
    /// Stream heads the writer remembers now (at most `[log] stream_heads`).
    pub writer_stream_heads: IntGauge,
    /// The async runtime's worker threads (`server.worker_threads`).
    pub runtime_worker_threads: IntGauge,
    /// Groups the nats backend's writer staged while the group before them was being
    /// published, by outcome: `kept` (that group was taken, this one went on) or `restaged`
    /// (it was refused; both were staged again).
    pub groups_staged_meanwhile: IntCounterVec,
    /// Seconds from a group's publish to the stream's ack of it (nats backend): the
    /// replicated stream's share of an append's latency.
    pub stream_publish_seconds: Histogram,
}

impl Metrics {
    /// Creates and registers every instrument.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new_custom(Some("annals".into()), None)?;
        let events_appended =
            IntCounter::new("events_appended_total", "Events made durable by appends")?;
        let append_requests = IntCounterVec::new(
            Opts::new("append_requests_total", "Append requests by outcome"),
            &["outcome"],
        )?;
        let group_requests = Histogram::with_opts(
            HistogramOpts::new("group_commit_requests", "Append requests per group commit")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        )?;
        let group_events = Histogram::with_opts(
            HistogramOpts::new("group_commit_events", "Events per group commit")
                .buckets(vec![1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0]),
        )?;
        let flush_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "group_commit_flush_seconds",
                "Seconds to make one group durable (batch, flush, fdatasync)",
            )
            .buckets(vec![
                0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5,
            ]),
        )?;
        let head_seq = IntGauge::new("log_head_seq", "Durable head sequence number")?;
        let append_bodies = IntCounterVec::new(
            Opts::new(
                "append_bodies_total",
                "Append bodies by how they were read (fast: borrowed; value: parsed into values)",
            ),
            &["path"],
        )?;
        let http_responses = IntCounterVec::new(
            Opts::new("http_responses_total", "HTTP responses by status"),
            &["status"],
        )?;
        let http_seconds = Histogram::with_opts(HistogramOpts::new(
            "http_request_seconds",
            "HTTP request latency",
        ))?;
        let live_readers = IntGauge::new("live_readers", "Live feed readers connected")?;
        let live_cutoffs = IntCounter::new(
            "live_cutoffs_total",
            "Live readers cut off for lagging too far behind",
        )?;
        let writer_known_ids = IntGauge::new(
            "log_writer_known_ids",
            "Registry ids the writer remembers (bound: log.known_ids)",
        )?;
        let writer_stream_heads = IntGauge::new(
            "log_writer_stream_heads",
            "Stream heads the writer remembers (bound: log.stream_heads)",
        )?;
        let groups_staged_meanwhile = IntCounterVec::new(
            Opts::new(
                "log_groups_staged_meanwhile_total",
                "Groups staged while the group before them was being published (nats backend)",
            ),
            &["outcome"],
        )?;
        let stream_publish_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "log_stream_publish_seconds",
                "Seconds from a group's publish to the stream's ack (nats backend)",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 2.0,
            ]),
        )?;
        let runtime_worker_threads = IntGauge::new(
            "runtime_worker_threads",
            "Worker threads of the async runtime that serves HTTP (server.worker_threads)",
        )?;
        registry.register(Box::new(runtime_worker_threads.clone()))?;
        registry.register(Box::new(writer_known_ids.clone()))?;
        registry.register(Box::new(writer_stream_heads.clone()))?;
        registry.register(Box::new(groups_staged_meanwhile.clone()))?;
        registry.register(Box::new(stream_publish_seconds.clone()))?;
        registry.register(Box::new(events_appended.clone()))?;
        registry.register(Box::new(append_requests.clone()))?;
        registry.register(Box::new(append_bodies.clone()))?;
        registry.register(Box::new(group_requests.clone()))?;
        registry.register(Box::new(group_events.clone()))?;
        registry.register(Box::new(flush_seconds.clone()))?;
        registry.register(Box::new(head_seq.clone()))?;
        registry.register(Box::new(http_responses.clone()))?;
        registry.register(Box::new(http_seconds.clone()))?;
        registry.register(Box::new(live_readers.clone()))?;
        registry.register(Box::new(live_cutoffs.clone()))?;
        Ok(Metrics {
            registry,
            events_appended,
            append_requests,
            append_bodies,
            group_requests,
            group_events,
            flush_seconds,
            head_seq,
            http_responses,
            http_seconds,
            live_readers,
            live_cutoffs,
            writer_known_ids,
            writer_stream_heads,
            runtime_worker_threads,
            groups_staged_meanwhile,
            stream_publish_seconds,
        })
    }

    /// Registers an instrument of another module (projections, webhooks) so `/metrics`
    /// exports it.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(collector)
    }

    /// The Prometheus text exposition of every instrument.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec only fails on malformed metric names, which are fixed above.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
