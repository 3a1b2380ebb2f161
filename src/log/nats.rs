//! The log's link to a NATS JetStream stream (`[log] backend = "nats"`): the stream is the
//! durable log of every node. The writer publishes each group as a few stream messages, each
//! carrying a run of consecutive records (a chunk: its first seq and count in the
//! `Annals-First` / `Annals-Count` headers, each record framed with its chain hash), as one
//! atomic batch (ADR-50) whose first message expects the stream's last sequence to be the
//! message that ends at the node's head: so a group lands whole right after the head or not at
//! all. A stream sequence is therefore a message, not a seq; the mapping is exact because
//! every message states the seqs it holds, they follow each other without a gap, and the
//! stream never deletes (`deny_delete`, `deny_purge`). A stream written before chunks (one
//! record per message, its stream sequence its seq, its hash in `Annals-Hash`) reads the
//! same. Each node's follower task reads what other nodes appended, in order, and hands it to
//! the writer.
//!
//! Beside the stream, [`Bucket`] is a JetStream key-value bucket of the same cluster and
//! replicas: the state every node shares besides the log (webhook subscriptions, cursors, dead
//! letters and delivery leases; API keys), and [`follow_bucket`] the loop that follows one for a
//! node, not trusting a watch that stopped delivering.
//!
//! This must never write to sled (only the writer thread does), never publish without an
//! expected last sequence, never hand on a record whose seq a message does not state, and
//! never use `Nats-Expected-Last-Msg-Id` (a stale one wedged a replicated stream on
//! nats-server 2.15.1).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, kv, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::config::NatsConfig;
use super::record::Hash;
use super::{Command, Head};

mod bucket;
mod chunks;
mod follow;
pub(crate) use bucket::{Bucket, Change};
use chunks::{
    COUNT_HEADER, Chunk, FIRST_HEADER, ZSTD_HEADER, chunk_messages, chunk_span, stream_records,
};
pub(crate) use follow::{Follower, Watch, follow_bucket};

/// The most messages of one atomic batch: the server's limit is 1000 per batch.
const BATCH_MAX: usize = 1000;
/// How long a request to the cluster (a publish's ack, a stream read) may take. Short: a
/// request to a leader that died is retried only once it times out, and a retry is always
/// safe (a group stored after its ack timed out is found by the catch-up that follows).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Records the follower hands to the writer at most at once.
const FOLLOW_CHUNK: usize = 512;

/// What went wrong with the stream.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The client could not be set up (bad URL, unreadable credentials, no runtime).
    #[error("cannot connect to NATS: {0}")]
    Connect(String),
    /// The stream could not be created or looked up (no quorum, leader election...).
    #[error("the JetStream stream is not available: {0}")]
    Stream(String),
    /// The stream did not take a group: another node appended first (wrong last sequence),
    /// a message id is already stored, or the ack did not come.
    #[error("the stream did not take the group: {0}")]
    Publish(String),
    /// Reading the stream failed or timed out.
    #[error("cannot read the stream: {0}")]
    Read(String),
    /// A key-value bucket could not be created, read or written.
    #[error("the JetStream key-value bucket {bucket} failed: {why}")]
    Kv {
        /// The bucket.
        bucket: String,
        /// What failed.
        why: String,
    },
    /// A stream message is not a record as this backend writes them.
    #[error("stream message {seq} is not a record: {why}")]
    Corrupt {
        /// Its stream sequence.
        seq: u64,
        /// What is wrong with it.
        why: String,
    },
}

/// One record as the stream holds it.
#[derive(Debug, Clone)]
pub(crate) struct StreamRecord {
    /// Its stream sequence: the global seq.
    pub(crate) seq: u64,
    /// Its chain hash, as the publishing node computed it.
    pub(crate) hash: Hash,
    /// The stored record JSON.
    pub(crate) bytes: Bytes,
}

/// Records framed as the chunk messages that publish them right after seq `last`. They own
/// their bytes, so that a publish can be under way on the runtime while the writer stages the
/// next group.
pub(crate) struct Outgoing {
    last: u64,
    messages: Vec<Chunk>,
}

impl Outgoing {
    /// `records` (chain hash, JSON), the seqs right after `last`; each message compressed
    /// with `packer` when one is given.
    pub(in crate::log) fn new(
        last: u64,
        records: &[(Hash, Vec<u8>)],
        packer: Option<&mut super::chunk::Packer>,
    ) -> Result<Outgoing, NatsError> {
        Ok(Outgoing {
            last,
            messages: chunk_messages(last, records, packer)?,
        })
    }
}

/// A connection to the cluster and the stream's name; cheap to clone.
#[derive(Clone)]
pub(crate) struct Link {
    /// The runtime the client runs on; the writer thread blocks on it.
    pub(crate) runtime: tokio::runtime::Handle,
    client: async_nats::Client,
    js: jetstream::Context,
    config: NatsConfig,
    subject: String,
    /// Whether the stream is known to exist (created or found once).
    ready: Arc<AtomicBool>,
    /// The latest stream message seen (its stream sequence, and the seq it ends at): where
    /// the next publish expects the stream to end, and where reading past it starts.
    known: Arc<std::sync::Mutex<(u64, u64)>>,
    /// The last seq this node's own publishes stored: the writer holds every record up to it
    /// (it writes its group once the stream took it), so the follower's echo of them is
    /// dropped, not queued, where it would cut the writer's next group in two.
    published: Arc<AtomicU64>,
}

impl Link {
    /// Sets up the client (it connects, and reconnects, in the background: a cluster that is
    /// down at start only delays the first append). Must be called inside a tokio runtime.
    pub(crate) fn connect(config: &NatsConfig) -> Result<Link, NatsError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| NatsError::Connect("the nats backend needs a tokio runtime".into()))?;
        let addrs = config
            .urls
            .iter()
            .map(|u| {
                u.parse::<async_nats::ServerAddr>()
                    .map_err(|e| NatsError::Connect(format!("{u}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let credentials = config.credentials.clone();
        let connecting = async move {
            let mut options = async_nats::ConnectOptions::new()
                .retry_on_initial_connect()
                .name("annals");
            if let Some(path) = credentials {
                options = options
                    .credentials_file(&path)
                    .await
                    .map_err(|e| NatsError::Connect(format!("{}: {e}", path.display())))?;
            }
            options
                .connect(addrs)
                .await
                .map_err(|e| NatsError::Connect(e.to_string()))
        };
        // `Log::open` is synchronous and called from async code: the client is built on a
        // helper thread that may block on the runtime (it returns at once, connecting later).
        let handle = runtime.clone();
        let client = std::thread::scope(|s| {
            s.spawn(move || handle.block_on(connecting))
                .join()
                .unwrap_or_else(|_| Err(NatsError::Connect("the connecting thread died".into())))
        })?;
        let js = jetstream::ContextBuilder::new()
            .timeout(REQUEST_TIMEOUT)
            .build(client.clone());
        Ok(Link {
            runtime,
            client,
            js,
            subject: format!("{}.log", config.stream),
            config: config.clone(),
            ready: Arc::new(AtomicBool::new(false)),
            known: Arc::new(std::sync::Mutex::new((0, 0))),
            published: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Creates the stream on first use (or finds it): file storage, the configured replicas,
    /// atomic publishes allowed, deletes and purges denied (the log is append-only).
    async fn ready(&self) -> Result<(), NatsError> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        self.js
            .get_or_create_stream(stream::Config {
                name: self.config.stream.clone(),
                subjects: vec![self.subject.clone()],
                storage: stream::StorageType::File,
                num_replicas: self.config.replicas,
                allow_atomic_publish: true,
                deny_delete: true,
                deny_purge: true,
                ..Default::default()
            })
            .await
            .map_err(|e| NatsError::Stream(e.to_string()))?;
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// The stream, created on first use.
    async fn stream(&self) -> Result<stream::Stream<()>, NatsError> {
        self.ready().await?;
        self.js
            .get_stream_no_info(&self.config.stream)
            .await
            .map_err(|e| NatsError::Stream(e.to_string()))
    }

    /// The key-value bucket `<stream>_<name>` (created on first use, with the stream's
    /// replicas and file storage, keeping one value per key). `max_age`, when given, makes every
    /// value expire that long after it was written: what a lease needs.
    pub(crate) async fn bucket(
        &self,
        name: &str,
        max_age: Option<Duration>,
    ) -> Result<Bucket, NatsError> {
        let bucket = format!("{}_{name}", self.config.stream);
        let failed = |e: &dyn std::fmt::Display| NatsError::Kv {
            bucket: bucket.clone(),
            why: e.to_string(),
        };
        let kv = match self.js.get_key_value(bucket.clone()).await {
            Ok(kv) => kv,
            Err(_) => self
                .js
                .create_key_value(kv::Config {
                    bucket: bucket.clone(),
                    history: 1,
                    max_age: max_age.unwrap_or_default(),
                    storage: stream::StorageType::File,
                    num_replicas: self.config.replicas,
                    ..Default::default()
                })
                .await
                .map_err(|e| failed(&e))?,
        };
        Ok(Bucket { kv, name: bucket })
    }

    /// The latest message seen: (stream sequence, the seq it ends at).
    fn known(&self) -> (u64, u64) {
        *self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a message seen (stream sequence `stream` ends at seq `end`), if it is the latest.
    fn note(&self, stream: u64, end: u64) {
        note(&self.known, stream, end);
    }

    /// The stream's last stream sequence (0 when empty).
    async fn last_message(&self) -> Result<u64, NatsError> {
        let info = self
            .stream()
            .await?
            .get_info()
            .await
            .map_err(|e| NatsError::Stream(e.to_string()))?;
        Ok(info.state.last_sequence)
    }

    /// The seqs (first, last) stream message `stream` holds, read from the stream's leader.
    async fn span(&self, stream: u64) -> Result<(u64, u64), NatsError> {
        let m = self
            .stream()
            .await?
            .get_raw_message(stream)
            .await
            .map_err(|e| NatsError::Read(format!("stream message {stream}: {e}")))?;
        let (first, count) = chunk_span(stream, Some(&m.headers))?;
        let end = first + count - 1;
        self.note(stream, end);
        Ok((first, end))
    }

    /// The log's last seq as the stream holds it (0 when empty).
    pub(crate) async fn last_seq(&self) -> Result<u64, NatsError> {
        let last = self.last_message().await?;
        if last == 0 {
            return Ok(0);
        }
        let (stream, end) = self.known();
        if stream == last {
            return Ok(end);
        }
        Ok(self.span(last).await?.1)
    }

    /// The stream sequence of the message that ends at seq `head`, when that message is the
    /// stream's last: what a publish right after `head` expects. Else the node is not at the
    /// stream's end, and the publish would be refused anyway.
    async fn expected(&self, head: u64) -> Result<u64, NatsError> {
        let (stream, end) = self.known();
        if end == head {
            // Refused by the stream if another message came since: the caller catches up.
            return Ok(stream);
        }
        let last = self.last_message().await?;
        let end = if last == 0 {
            0
        } else {
            self.span(last).await?.1
        };
        if end == head {
            Ok(last)
        } else {
            Err(NatsError::Publish(format!(
                "this node is at {head} and the stream at {end}"
            )))
        }
    }

    /// The stream sequence of the message that holds seq `seq` (one past the last message
    /// when the stream ends before it): a binary search over the messages, each stating its
    /// seqs, which rise with the stream sequence.
    async fn locate(&self, seq: u64) -> Result<u64, NatsError> {
        let (stream, end) = self.known();
        if seq == end + 1 {
            return Ok(stream + 1);
        }
        let last = self.last_message().await?;
        // Each message holds at least one record: the one holding `seq` is at most `seq`.
        let (mut lo, mut hi) = (1, last.min(seq));
        if hi == 0 || self.span(hi).await?.1 < seq {
            return Ok(hi + 1);
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.span(mid).await?.1 >= seq {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo)
    }

    /// Publishes `out`'s records, the seqs right after its `last`: as chunk messages of at
    /// most [`MESSAGE_BYTES`](chunks::MESSAGE_BYTES), in atomic batches of at most
    /// [`BATCH_MAX`] messages, each expecting the message the one before ended at, so each
    /// lands whole at its place or not at all. Returns once the last batch's ack says where
    /// it ended.
    pub(crate) async fn publish(&self, out: Outgoing) -> Result<(), NatsError> {
        let Outgoing { last, messages } = out;
        self.ready().await?;
        let mut expected = self.expected(last).await?;
        let mut end = last;
        for batch in messages.chunks(BATCH_MAX) {
            let stored = self.publish_batch(expected, batch).await?;
            if stored != expected + batch.len() as u64 {
                return Err(NatsError::Publish(format!(
                    "stored up to stream message {stored}, expected {}",
                    expected + batch.len() as u64
                )));
            }
            end += batch.iter().map(|m| m.count).sum::<u64>();
            self.note(stored, end);
            self.published.fetch_max(end, Ordering::AcqRel);
            expected = stored;
        }
        Ok(())
    }

    /// One batch of chunk messages; the stream sequence of its last message. A batch of one
    /// is a plain publish (whose duplicate answer names the original's sequence, caught by
    /// the caller).
    async fn publish_batch(&self, last: u64, batch: &[Chunk]) -> Result<u64, NatsError> {
        let failed = |e: &dyn std::fmt::Display| NatsError::Publish(e.to_string());
        let batch_id = Uuid::now_v7().simple().to_string();
        let single = batch.len() == 1;
        let inbox = self.client.new_inbox();
        // The server answers a batch's first message (a request) once the batch is started.
        let mut started = if single {
            None
        } else {
            Some(
                self.client
                    .subscribe(inbox.clone())
                    .await
                    .map_err(|e| failed(&e))?,
            )
        };
        let mut ack = None;
        for (i, chunk) in batch.iter().enumerate() {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", chunk.id.to_string().as_str());
            headers.insert(FIRST_HEADER, chunk.first.to_string().as_str());
            headers.insert(COUNT_HEADER, chunk.count.to_string().as_str());
            if let Some(plain) = chunk.plain {
                headers.insert(ZSTD_HEADER, plain.to_string().as_str());
            }
            if i == 0 {
                headers.insert("Nats-Expected-Last-Sequence", last.to_string().as_str());
            }
            if !single {
                headers.insert("Nats-Batch-Id", batch_id.as_str());
                headers.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
            }
            let payload = chunk.payload.clone();
            if i + 1 == batch.len() {
                if !single {
                    headers.insert("Nats-Batch-Commit", "1");
                }
                let message = jetstream::message::PublishMessage::build()
                    .headers(headers)
                    .payload(payload);
                ack = Some(
                    self.js
                        .send_publish(self.subject.clone(), message)
                        .await
                        .map_err(|e| failed(&e))?,
                );
            } else if i == 0 {
                self.client
                    .publish_with_reply_and_headers(
                        self.subject.clone(),
                        inbox.clone(),
                        headers,
                        payload,
                    )
                    .await
                    .map_err(|e| failed(&e))?;
            } else {
                self.client
                    .publish_with_headers(self.subject.clone(), headers, payload)
                    .await
                    .map_err(|e| failed(&e))?;
            }
        }
        let Some(ack) = ack else {
            return Ok(last);
        };
        // Both awaited together: a publish ack's timeout only starts when it is awaited.
        let first = async {
            if let Some(sub) = started.as_mut() {
                let _ = tokio::time::timeout(REQUEST_TIMEOUT, sub.next()).await;
            }
        };
        let (ack, ()) = tokio::join!(ack, first);
        let ack = ack.map_err(|e| failed(&e))?;
        if ack.duplicate {
            return Err(NatsError::Publish(format!(
                "event id {} is already stored in stream message {}",
                batch[0].id, ack.sequence
            )));
        }
        Ok(ack.sequence)
    }

    /// The log's records `from..=to`, in order (an ephemeral ordered consumer).
    pub(crate) async fn read(&self, from: u64, to: u64) -> Result<Vec<StreamRecord>, NatsError> {
        let mut out = Vec::with_capacity((to + 1).saturating_sub(from) as usize);
        if from > to {
            return Ok(out);
        }
        let mut records = std::pin::pin!(self.consume(from).await?);
        while out.len() < (to + 1 - from) as usize {
            let next = tokio::time::timeout(REQUEST_TIMEOUT, records.next())
                .await
                .map_err(|_| {
                    NatsError::Read(format!(
                        "no record {} within {REQUEST_TIMEOUT:?}",
                        from + out.len() as u64
                    ))
                })?;
            match next {
                Some(Ok(rec)) if rec.seq <= to => out.push(rec),
                Some(Ok(_)) => break,
                Some(Err(e)) => return Err(e),
                None => return Err(NatsError::Read("the consumer ended".into())),
            }
        }
        Ok(out)
    }

    /// Every record from seq `from` on, as they are stored (an ordered consumer from the
    /// message holding `from`, recreated by the client when it misses a message).
    async fn consume(
        &self,
        from: u64,
    ) -> Result<impl futures_util::Stream<Item = Result<StreamRecord, NatsError>> + use<>, NatsError>
    {
        let from = from.max(1);
        let start = self.locate(from).await?;
        let consumer = self
            .stream()
            .await?
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: start.max(1),
                },
                ..Default::default()
            })
            .await
            .map_err(|e| NatsError::Read(e.to_string()))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| NatsError::Read(e.to_string()))?;
        let known = self.known.clone();
        Ok(messages.flat_map(move |m| {
            let records = m
                .map_err(|e| NatsError::Read(e.to_string()))
                .and_then(|m| stream_records(&m));
            let out: Vec<Result<StreamRecord, NatsError>> = match records {
                Ok((stream, records)) => {
                    if let Some(last) = records.last() {
                        note(&known, stream, last.seq);
                    }
                    records
                        .into_iter()
                        .filter(|r| r.seq >= from)
                        .map(Ok)
                        .collect()
                }
                Err(e) => vec![Err(e)],
            };
            futures_util::stream::iter(out)
        }))
    }
}

/// Notes in `known` that stream message `stream` ends at seq `end`, if it is the latest seen.
fn note(known: &std::sync::Mutex<(u64, u64)>, stream: u64, end: u64) {
    let mut known = known.lock().unwrap_or_else(|e| e.into_inner());
    if stream >= known.0 {
        *known = (stream, end);
    }
}

/// A node's follower: reads the stream from the node's head on and hands the records to the
/// writer (which skips what it already holds), so reads on this node see appends made on
/// others. Records this node's own publishes stored are left out: the writer holds them. Runs until the writer's queue closes; after a failure it starts again from the
/// head, a second later.
pub(crate) async fn follow(link: Link, tx: mpsc::Sender<Command>, head: watch::Receiver<Head>) {
    loop {
        let from = head.borrow().seq + 1;
        match link.consume(from).await {
            Ok(records) => {
                let mut chunks = std::pin::pin!(records.ready_chunks(FOLLOW_CHUNK));
                while let Some(chunk) = chunks.next().await {
                    let mut batch = Vec::with_capacity(chunk.len());
                    let mut failure = None;
                    let held = link.published.load(Ordering::Acquire);
                    for item in chunk {
                        match item {
                            Ok(rec) if rec.seq <= held => {}
                            Ok(rec) => batch.push(rec),
                            Err(e) => {
                                failure = Some(e);
                                break;
                            }
                        }
                    }
                    if !batch.is_empty() && tx.send(Command::Follow(batch)).await.is_err() {
                        return;
                    }
                    if let Some(e) = failure {
                        tracing::warn!(error = %e, "following the stream failed; starting again");
                        break;
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot follow the stream yet"),
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
