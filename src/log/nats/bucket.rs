//! A JetStream key-value bucket of the log's cluster ([`Bucket`]): the state every node shares
//! besides the log (webhook subscriptions, cursors, dead letters and delivery leases; API
//! keys). It must never read a value from a lagging replica where a caller asks for the
//! leader's.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{kv, stream};
use bytes::Bytes;
use futures_util::StreamExt;

use super::NatsError;
use super::follow::Watch;

/// Whether a bucket message holds a value (not a delete, purge or expiry marker).
fn is_put(headers: &HeaderMap) -> bool {
    headers.get("KV-Operation").is_none() && headers.get("Nats-Marker-Reason").is_none()
}

/// A change of a key-value bucket seen by [`Bucket::watch`].
#[derive(Debug, Clone)]
pub(crate) struct Change {
    /// The key.
    pub(crate) key: String,
    /// The value written, `None` for a delete.
    pub(crate) value: Option<Bytes>,
    /// The bucket's revision of this change.
    pub(crate) revision: u64,
}

/// A JetStream key-value bucket of the cluster (one value per key); cheap to clone. Every
/// call fails with [`NatsError::Kv`] naming the bucket.
#[derive(Clone)]
pub(crate) struct Bucket {
    pub(super) kv: kv::Store,
    pub(super) name: String,
}

impl Bucket {
    fn failed(&self, e: &dyn std::fmt::Display) -> NatsError {
        NatsError::Kv {
            bucket: self.name.clone(),
            why: e.to_string(),
        }
    }

    /// The bucket's name (`<stream>_<name>`).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// How long the bucket keeps a value after it was written (zero: for ever), as it was
    /// when the bucket was opened.
    pub(crate) fn max_age(&self) -> Duration {
        self.kv.stream.cached_info().config.max_age
    }

    /// A key's value and revision (`None`: absent or deleted), as the bucket's stream leader
    /// holds it. Never a replica's copy (the bucket allows direct gets, which any replica
    /// answers): one that lags answers a write acknowledged a moment ago with the value
    /// before it, such as a webhook cursor behind the one a node stopped at.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<(Bytes, u64)>, NatsError> {
        let subject = format!("{}{key}", self.kv.prefix);
        match self
            .kv
            .stream
            .get_last_raw_message_by_subject(&subject)
            .await
        {
            Ok(m) => Ok(is_put(&m.headers).then_some((m.payload, m.sequence))),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(self.failed(&e)),
        }
    }

    /// Every value whose key matches `filter` (a subject pattern over the keys: `>` for all,
    /// `dead.<id>.*`), in revision order, read from the bucket's stream leader one message at
    /// a time (each the next stored after the last). Not a key listing and direct gets: those
    /// are answered by any replica, and one that lags misses a key written a moment ago or
    /// holds its older value.
    pub(crate) async fn values(&self, filter: &str) -> Result<Vec<Change>, NatsError> {
        let prefix = self.kv.prefix.as_str();
        let subject = format!("{prefix}{filter}");
        let mut out = Vec::new();
        let mut from = 1;
        loop {
            let next = self
                .kv
                .stream
                .raw_message_builder()
                .sequence(from)
                .next_by_subject(subject.clone())
                .send()
                .await;
            let m = match next {
                Ok(m) => m,
                Err(e) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => {
                    return Ok(out);
                }
                Err(e) => return Err(self.failed(&e)),
            };
            from = m.sequence + 1;
            if let Some(key) = m.subject.as_str().strip_prefix(prefix)
                && is_put(&m.headers)
            {
                out.push(Change {
                    key: key.to_string(),
                    value: Some(m.payload),
                    revision: m.sequence,
                });
            }
        }
    }

    /// Writes a value; answers its revision.
    pub(crate) async fn put(&self, key: &str, value: Bytes) -> Result<u64, NatsError> {
        self.kv.put(key, value).await.map_err(|e| self.failed(&e))
    }

    /// Deletes a key (a no-op when absent).
    pub(crate) async fn delete(&self, key: &str) -> Result<(), NatsError> {
        self.kv.delete(key).await.map_err(|e| self.failed(&e))
    }

    /// Writes a value only if the key holds none; answers its revision, or `None` when the
    /// key holds one.
    pub(crate) async fn create(&self, key: &str, value: Bytes) -> Result<Option<u64>, NatsError> {
        match self.kv.create(key, value).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(self.failed(&e)),
        }
    }

    /// Writes a value only if the key's revision is still `revision`; answers the new
    /// revision, or `None` when another write came first (or the value expired).
    pub(crate) async fn update(
        &self,
        key: &str,
        value: Bytes,
        revision: u64,
    ) -> Result<Option<u64>, NatsError> {
        match self.kv.update(key, value, revision).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(self.failed(&e)),
        }
    }

    /// Deletes a key only if its revision is still `revision` (a lease given back by its
    /// holder, never one another node took since).
    pub(crate) async fn delete_at(&self, key: &str, revision: u64) -> Result<(), NatsError> {
        self.kv
            .delete_expect_revision(key, Some(revision))
            .await
            .map_err(|e| self.failed(&e))
    }

    /// The bucket's last revision (0 when empty), as its stream leader holds it.
    pub(crate) async fn last_revision(&self) -> Result<u64, NatsError> {
        let info = self
            .kv
            .stream
            .get_info()
            .await
            .map_err(|e| self.failed(&e))?;
        Ok(info.state.last_sequence)
    }

    /// The changes made from now on, in the bucket's order ([`super::follow_bucket`] follows
    /// them).
    pub(crate) async fn watch(&self) -> Result<Watch, NatsError> {
        // From a revision asked first, not "new from when the consumer is made": the watch then
        // delivers every change after a revision known here, so one that has not delivered a
        // later one by the next check has stalled (see `follow_bucket`).
        let from = self.last_revision().await?;
        let name = self.name.clone();
        let watch = self
            .kv
            .watch_all_from_revision(from + 1)
            .await
            .map_err(|e| self.failed(&e))?;
        let changes = watch.map(move |entry| {
            let entry = entry.map_err(|e| NatsError::Kv {
                bucket: name.clone(),
                why: e.to_string(),
            })?;
            Ok(Change {
                value: (entry.operation == kv::Operation::Put).then_some(entry.value),
                key: entry.key,
                revision: entry.revision,
            })
        });
        Ok(Watch::new(changes.boxed(), from))
    }
}
