//! The format of the log's stream messages: a group's records cut into chunk messages (a run
//! of consecutive records, each framed with its chain hash; the first seq and the count in
//! headers), and the reading of a message back into records, including a message written
//! before chunks (one record, its hash in `Annals-Hash`). A chunk's payload may be one zstd
//! frame (`Annals-Zstd` gives its plain length): the cluster stores, replicates and syncs
//! every byte three times, and records compress about fourfold. It must never hand on a record
//! whose seq its message does not state.

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use uuid::Uuid;

use super::super::chunk::{Packer, unframe};
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
/// The header of a compressed chunk: the length of its plain payload, which is one zstd
/// frame.
pub(super) const ZSTD_HEADER: &str = "Annals-Zstd";

/// A run of consecutive records as one stream message.
pub(super) struct Chunk {
    /// Its `Nats-Msg-Id`: the first record's event id.
    pub(super) id: Uuid,
    /// The seq of its first record.
    pub(super) first: u64,
    /// How many records it holds.
    pub(super) count: u64,
    /// Each record framed: its hash, its length, its JSON; compressed when `plain` is given.
    pub(super) payload: Bytes,
    /// The plain payload's length, when `payload` is its zstd frame.
    pub(super) plain: Option<usize>,
}

/// Only the id of a stored record: a chunk's `Nats-Msg-Id`.
#[derive(serde::Deserialize)]
struct IdOnly {
    id: Uuid,
}

/// `records` (chain hash, JSON), the seqs right after `last`, cut into chunks of at most
/// [`MESSAGE_BYTES`] (a record larger than that alone in its chunk), each compressed with
/// `packer` when one is given. Only a chunk's first record is parsed, for its id.
pub(super) fn chunk_messages(
    last: u64,
    records: &[(Hash, Vec<u8>)],
    mut packer: Option<&mut Packer>,
) -> Result<Vec<Chunk>, NatsError> {
    let mut out: Vec<Chunk> = Vec::new();
    let mut seal = |first: u64, payload: Vec<u8>| -> Result<(Bytes, Option<usize>), NatsError> {
        match packer.as_deref_mut() {
            None => Ok((Bytes::from(payload), None)),
            Some(packer) => {
                let frame = packer.frame(&payload).map_err(|e| NatsError::Corrupt {
                    seq: first,
                    why: format!("cannot compress the chunk: {e}"),
                })?;
                Ok((Bytes::from(frame), Some(payload.len())))
            }
        }
    };
    let mut payload = Vec::new();
    let mut first = last + 1;
    let mut count = 0u64;
    let mut id = Uuid::nil();
    for (i, (hash, bytes)) in records.iter().enumerate() {
        if count > 0 && payload.len() + FRAME_HEAD + bytes.len() > MESSAGE_BYTES {
            let (payload, plain) = seal(first, std::mem::take(&mut payload))?;
            out.push(Chunk {
                id,
                first,
                count,
                payload,
                plain,
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
        let (payload, plain) = seal(first, payload)?;
        out.push(Chunk {
            id,
            first,
            count,
            payload,
            plain,
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
    let plain = headers.and_then(|h| h.get(ZSTD_HEADER)).map(|v| v.as_str());
    let payload = unpack(stream, plain, &m.payload)?;
    let records = framed_records(stream, first, count, &payload)?;
    Ok((stream, records))
}

/// A chunk's plain payload: `payload` itself, or its zstd frame decompressed when the chunk
/// says its plain length (`plain`, the `Annals-Zstd` header).
fn unpack(stream: u64, plain: Option<&str>, payload: &Bytes) -> Result<Bytes, NatsError> {
    let corrupt = |why: String| NatsError::Corrupt { seq: stream, why };
    let Some(plain) = plain else {
        return Ok(payload.clone());
    };
    let plain: usize = plain
        .parse()
        .map_err(|_| corrupt("Annals-Zstd is not a length".into()))?;
    unframe(payload, plain).map(Bytes::from).ok_or_else(|| {
        corrupt(format!(
            "the chunk does not decompress to the {plain} bytes Annals-Zstd states (at most 64 MiB)"
        ))
    })
}

/// The records framed in a chunk's plain payload, at the seqs from `first` on; exactly
/// `count` of them.
fn framed_records(
    stream: u64,
    first: u64,
    count: u64,
    payload: &Bytes,
) -> Result<Vec<StreamRecord>, NatsError> {
    let corrupt = |why: String| NatsError::Corrupt { seq: stream, why };
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
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` records of about 500 bytes, as the writer stages them (hash, JSON with an id).
    fn records(n: usize) -> Vec<(Hash, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let json = format!(
                    "{{\"id\":\"{}\",\"seq\":{},\"data\":{{\"content\":\"{}\"}}}}",
                    Uuid::now_v7(),
                    i + 1,
                    "The delegations agreed to continue. ".repeat(12)
                );
                ([i as u8; 32], json.into_bytes())
            })
            .collect()
    }

    /// Every chunk read back as the follower reads it: the records, at their seqs.
    fn read_back(chunks: &[Chunk]) -> Vec<StreamRecord> {
        let mut out = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            let plain = c.plain.map(|n| n.to_string());
            let payload = unpack(i as u64 + 1, plain.as_deref(), &c.payload).unwrap();
            out.extend(framed_records(i as u64 + 1, c.first, c.count, &payload).unwrap());
        }
        out
    }

    #[test]
    fn compressed_chunks_read_back_as_the_same_records_at_the_same_seqs_and_are_smaller() {
        let recs = records(1200);
        let plain = chunk_messages(10, &recs, None).unwrap();
        let packed = chunk_messages(10, &recs, Some(&mut Packer::new(1))).unwrap();
        // The same cuts and ids either way: compression changes only the payload.
        let spans = |c: &[Chunk]| {
            c.iter()
                .map(|c| (c.first, c.count, c.id))
                .collect::<Vec<_>>()
        };
        assert_eq!(spans(&plain), spans(&packed));
        assert!(plain.len() > 1, "the records span several messages");
        let plain_bytes: usize = plain.iter().map(|c| c.payload.len()).sum();
        let packed_bytes: usize = packed.iter().map(|c| c.payload.len()).sum();
        assert!(
            packed_bytes * 2 < plain_bytes,
            "{packed_bytes} of {plain_bytes}"
        );
        for (c, p) in packed.iter().zip(&plain) {
            assert_eq!(c.plain, Some(p.payload.len()));
        }
        let back = read_back(&packed);
        assert_eq!(back.len(), recs.len());
        for (i, (r, (hash, json))) in back.iter().zip(&recs).enumerate() {
            assert_eq!(r.seq, 11 + i as u64);
            assert_eq!(&r.hash, hash);
            assert_eq!(&r.bytes[..], &json[..]);
        }
        assert_eq!(read_back(&plain).len(), recs.len());
    }

    #[test]
    fn a_compressed_chunk_whose_stated_length_is_wrong_or_huge_is_corrupt_not_a_panic() {
        let packed = chunk_messages(0, &records(3), Some(&mut Packer::new(1))).unwrap();
        let c = &packed[0];
        let plain = c.plain.unwrap();
        for bad in [
            (plain - 1).to_string(),
            (plain + 1).to_string(),
            ((64usize << 20) + 1).to_string(),
            "x".to_string(),
        ] {
            assert!(matches!(
                unpack(7, Some(&bad), &c.payload),
                Err(NatsError::Corrupt { seq: 7, .. })
            ));
        }
        // A payload that is not a zstd frame.
        assert!(matches!(
            unpack(7, Some("100"), &Bytes::from_static(b"not zstd")),
            Err(NatsError::Corrupt { .. })
        ));
    }
}
