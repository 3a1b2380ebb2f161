//! The format of the log's stream messages: a group's records cut into chunk messages (a run
//! of consecutive records, each framed with its chain hash; the first seq and the count in
//! headers), and the reading of a message back into records, including a message written
//! before chunks (one record, its hash in `Annals-Hash`). It must never hand on a record whose
//! seq its message does not state.

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use uuid::Uuid;

use super::super::record::Hash;
use super::{NatsError, StreamRecord};

/// The most record bytes one stream message carries: well under NATS' default
/// `max_payload` (1 MiB), so a chunk of large events still fits with its framing.
pub(super) const MESSAGE_BYTES: usize = 256 * 1024;
/// The headers of a chunk message: the seq of its first record, and how many it holds.
pub(super) const FIRST_HEADER: &str = "Annals-First";
pub(super) const COUNT_HEADER: &str = "Annals-Count";
/// A record's framing inside a chunk message: its chain hash, then its length (u32, LE).
pub(super) const FRAME_HEAD: usize = 32 + 4;
/// The header carrying a record's chain hash (hex), checked on every read.
pub(super) const HASH_HEADER: &str = "Annals-Hash";

/// A run of consecutive records as one stream message.
pub(super) struct Chunk {
    /// Its `Nats-Msg-Id`: the first record's event id.
    pub(super) id: Uuid,
    /// The seq of its first record.
    pub(super) first: u64,
    /// How many records it holds.
    pub(super) count: u64,
    /// Each record framed: its hash, its length, its JSON.
    pub(super) payload: Bytes,
}

/// Only the id of a stored record: a chunk's `Nats-Msg-Id`.
#[derive(serde::Deserialize)]
struct IdOnly {
    id: Uuid,
}

/// `records` (chain hash, JSON), the seqs right after `last`, cut into chunks of at most
/// [`MESSAGE_BYTES`] (a record larger than that alone in its chunk). Only a chunk's first
/// record is parsed, for its id.
pub(super) fn chunk_messages(
    last: u64,
    records: &[(Hash, Vec<u8>)],
) -> Result<Vec<Chunk>, NatsError> {
    let mut out: Vec<Chunk> = Vec::new();
    let mut payload = Vec::new();
    let mut first = last + 1;
    let mut count = 0u64;
    let mut id = Uuid::nil();
    for (i, (hash, bytes)) in records.iter().enumerate() {
        if count > 0 && payload.len() + FRAME_HEAD + bytes.len() > MESSAGE_BYTES {
            out.push(Chunk {
                id,
                first,
                count,
                payload: Bytes::from(std::mem::take(&mut payload)),
            });
            first = last + 1 + i as u64;
            count = 0;
        }
        if count == 0 {
            let IdOnly { id: first_id } =
                serde_json::from_slice(bytes).map_err(|e| NatsError::Corrupt {
                    seq: last + 1 + i as u64,
                    why: e.to_string(),
                })?;
            id = first_id;
        }
        payload.extend_from_slice(hash);
        payload.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        payload.extend_from_slice(bytes);
        count += 1;
    }
    if count > 0 {
        out.push(Chunk {
            id,
            first,
            count,
            payload: Bytes::from(payload),
        });
    }
    Ok(out)
}

/// The seqs a stream message holds: (first, count). A message without the chunk headers is
/// one record, at its stream sequence (a stream written before chunks).
pub(super) fn chunk_span(
    stream: u64,
    headers: Option<&HeaderMap>,
) -> Result<(u64, u64), NatsError> {
    let corrupt = |why: &str| NatsError::Corrupt {
        seq: stream,
        why: why.into(),
    };
    let Some(first) = headers.and_then(|h| h.get(FIRST_HEADER)) else {
        return Ok((stream, 1));
    };
    let first: u64 = first
        .as_str()
        .parse()
        .map_err(|_| corrupt("Annals-First is not a seq"))?;
    let count: u64 = headers
        .and_then(|h| h.get(COUNT_HEADER))
        .and_then(|v| v.as_str().parse().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| corrupt("no Annals-Count, or 0"))?;
    Ok((first, count))
}

/// A stream message's records: its stream sequence, and each record with the seq the message
/// states, its hash and its JSON (a message of the older form: one record, its hash in the
/// `Annals-Hash` header).
pub(super) fn stream_records(
    m: &jetstream::Message,
) -> Result<(u64, Vec<StreamRecord>), NatsError> {
    let stream = m
        .info()
        .map_err(|e| NatsError::Read(e.to_string()))?
        .stream_sequence;
    let corrupt = |why: String| NatsError::Corrupt { seq: stream, why };
    let headers = m.headers.as_ref();
    if headers.and_then(|h| h.get(FIRST_HEADER)).is_none() {
        let text = headers
            .and_then(|h| h.get(HASH_HEADER))
            .map(|v| v.as_str().to_string())
            .ok_or_else(|| corrupt("no Annals-Hash header".into()))?;
        let mut hash = [0u8; 32];
        hex::decode_to_slice(&text, &mut hash)
            .map_err(|_| corrupt("Annals-Hash is not 64 hex digits".into()))?;
        let record = StreamRecord {
            seq: stream,
            hash,
            bytes: m.payload.clone(),
        };
        return Ok((stream, vec![record]));
    }
    let (first, count) = chunk_span(stream, headers)?;
    let payload = &m.payload;
    let mut records = Vec::with_capacity(count as usize);
    let mut at = 0usize;
    while at < payload.len() {
        let head = payload
            .get(at..at + FRAME_HEAD)
            .ok_or_else(|| corrupt(format!("a record's framing is cut at byte {at}")))?;
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&head[..32]);
        let mut len = [0u8; 4];
        len.copy_from_slice(&head[32..]);
        let len = u32::from_le_bytes(len) as usize;
        let start = at + FRAME_HEAD;
        if start + len > payload.len() {
            return Err(corrupt(format!("a record is cut at byte {start}")));
        }
        records.push(StreamRecord {
            seq: first + records.len() as u64,
            hash,
            bytes: payload.slice(start..start + len),
        });
        at = start + len;
    }
    if records.len() as u64 != count {
        return Err(corrupt(format!(
            "holds {} records, Annals-Count says {count}",
            records.len()
        )));
    }
    Ok((stream, records))
}
