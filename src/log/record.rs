//! The stored record and the hash chain. A record's bytes are the exact JSON that was hashed;
//! this module must never re-encode a stored record before hashing it, or change the field
//! order of [`Record`] (every existing hash depends on it).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A 32-byte SHA-256 digest.
pub type Hash = [u8; 32];

/// The hash before the first record.
pub const GENESIS: Hash = [0u8; 32];

/// One record as stored: the envelope without its own `hash` (which covers these bytes).
/// Field order here is the field order of the stored JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Event id (UUIDv7).
    pub id: Uuid,
    /// Global position, gap-free from 1.
    pub seq: u64,
    /// The stream the event was appended to.
    pub stream: String,
    /// Position in the stream, gap-free from 1.
    pub version: u64,
    /// Dot-separated event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Version of the type's schema.
    pub schema_version: u32,
    /// Transaction time (RFC 3339, UTC, microseconds), assigned by the writer.
    pub recorded_at: String,
    /// The principal whose key made the append.
    pub recorded_by: String,
    /// When it happened in the world, with its precision. Null (and left out of the stored
    /// JSON) on a knowledge event submitted without it, so every older record keeps its bytes.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub occurred: Value,
    /// The negotiation it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// The type's payload.
    pub data: Value,
    /// The sources that back it.
    pub evidence: Value,
    /// Correlation, inference notes, codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
    /// Hex of the previous record's hash (64 zeros for seq 1).
    pub prev_hash: String,
}

/// The content a client chose: what must match for a repeated id to count as the same event.
#[derive(Debug, Clone, PartialEq)]
pub struct Content<'a> {
    /// Stream name.
    pub stream: &'a str,
    /// Event type.
    pub event_type: &'a str,
    /// Schema version.
    pub schema_version: u32,
    /// Occurred.
    pub occurred: &'a Value,
    /// Process.
    pub process: Option<&'a str>,
    /// Data.
    pub data: &'a Value,
    /// Evidence.
    pub evidence: &'a Value,
    /// Meta.
    pub meta: Option<&'a Value>,
}

impl Record {
    /// The client-chosen part of this record.
    pub fn content(&self) -> Content<'_> {
        Content {
            stream: &self.stream,
            event_type: &self.event_type,
            schema_version: self.schema_version,
            occurred: &self.occurred,
            process: self.process.as_deref(),
            data: &self.data,
            evidence: &self.evidence,
            meta: self.meta.as_ref(),
        }
    }

    /// The canonical stored bytes of this record.
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        // Sized for a typical record at once: growing from serde_json's 128 bytes copied the
        // record three or four times on the writer's path.
        let mut bytes = Vec::with_capacity(RECORD_BYTES_HINT);
        serde_json::to_writer(&mut bytes, self)?;
        Ok(bytes)
    }
}

/// The capacity a record's bytes start with: a statement with its evidence is about 600.
const RECORD_BYTES_HINT: usize = 1024;

/// A hash as the 64 lower-case hex digits the records and answers carry, written straight
/// into one string (`hex::encode` collects it a character at a time; this runs per record).
pub fn hash_hex(hash: &Hash) -> String {
    let mut out = [0u8; 64];
    // Infallible: the buffer is exactly twice the hash.
    let _ = hex::encode_to_slice(hash, &mut out);
    // Hex digits are ASCII: never the default.
    std::str::from_utf8(&out)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// `SHA-256(prev || bytes)`: the chain link for a record.
pub fn chain(prev: &Hash, bytes: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(bytes);
    h.finalize().into()
}

/// A record as read back: its sequence number, its hash and its stored bytes.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Global position.
    pub seq: u64,
    /// The record's chain hash.
    pub hash: Hash,
    /// The stored JSON (without `hash`): a view of the stored value, not a copy, so a reader
    /// that keeps many records (a projection rebuild) allocates nothing per record.
    pub bytes: sled::IVec,
}

impl Recorded {
    /// Splits a stored value (`hash || json`) into a [`Recorded`].
    pub fn from_stored(seq: u64, value: &sled::IVec) -> Option<Recorded> {
        if value.len() < 34 {
            return None;
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&value[..32]);
        Some(Recorded {
            seq,
            hash,
            bytes: value.subslice(32, value.len() - 32),
        })
    }

    /// The full envelope as JSON text: the stored bytes with `"hash"` appended as last field.
    /// Built by splicing, not re-encoding, so reads cost no JSON serialisation.
    pub fn envelope_json(&self) -> String {
        let body = String::from_utf8_lossy(&self.bytes);
        let trimmed = body.trim_end();
        let without_brace = trimmed.strip_suffix('}').unwrap_or(trimmed);
        format!("{without_brace},\"hash\":\"{}\"}}", hash_hex(&self.hash))
    }

    /// Parses the stored bytes.
    pub fn record(&self) -> Result<Record, serde_json::Error> {
        serde_json::from_slice(&self.bytes)
    }
}

/// Just the type of a stored record, parsed without touching the rest.
#[derive(Deserialize)]
struct TypeOnly<'a> {
    #[serde(rename = "type", borrow)]
    event_type: std::borrow::Cow<'a, str>,
}

/// The event type of a stored record, if its bytes parse.
pub fn event_type_of(bytes: &[u8]) -> Option<String> {
    serde_json::from_slice::<TypeOnly>(bytes)
        .ok()
        .map(|t| t.event_type.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            id: Uuid::now_v7(),
            seq: 1,
            stream: "process/x".into(),
            version: 1,
            event_type: "meeting.held".into(),
            schema_version: 1,
            recorded_at: "2026-01-23T00:00:00.000000Z".into(),
            recorded_by: "desk".into(),
            occurred: serde_json::json!({"start": "2026-01-22", "precision": "day"}),
            process: None,
            data: serde_json::json!({"b": 1, "a": [1.5, "x"]}),
            evidence: serde_json::json!([]),
            meta: None,
            prev_hash: hex::encode(GENESIS),
        }
    }

    #[test]
    fn stored_bytes_reencode_identically_after_a_round_trip() {
        let r = sample();
        let bytes = r.to_bytes().unwrap();
        let back: Record = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn envelope_json_is_the_record_plus_its_hash() {
        let r = sample();
        let bytes = r.to_bytes().unwrap();
        let hash = chain(&GENESIS, &bytes);
        let rec = Recorded {
            seq: 1,
            hash,
            bytes: bytes.into(),
        };
        let v: Value = serde_json::from_str(&rec.envelope_json()).unwrap();
        assert_eq!(v["hash"], hex::encode(hash));
        assert_eq!(v["seq"], 1);
        assert_eq!(event_type_of(&rec.bytes).as_deref(), Some("meeting.held"));
    }

    #[test]
    fn chain_depends_on_every_byte_and_on_the_previous_hash() {
        let a = chain(&GENESIS, b"{}");
        assert_ne!(a, chain(&GENESIS, b"{ }"));
        assert_ne!(a, chain(&a, b"{}"));
    }
}
