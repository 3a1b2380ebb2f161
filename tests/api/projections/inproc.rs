//! Helpers for the in-process projection tests (engine, save layout, CLI rebuild): a
//! real log over a temp folder, events built without HTTP, and the engine's catch-up.

use annals::log::Durability;
use annals::log::{Append, ExpectedVersion, Log, NewEvent, References};
use annals::projection::{Engine, Knowledge};
use serde_json::{Value, json};
use uuid::Uuid;

/// Opens the log of `dir` with its writer.
pub fn open(dir: &std::path::Path) -> Log {
    crate::helpers::open_log(dir, Durability::Os)
}

/// An event of process `p`, occurred on 22 January 2026.
pub fn event(kind: &str, data: Value, evidence: Value) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        event_type: kind.into(),
        schema_version: 1,
        occurred: json!({"start": "2026-01-22", "precision": "day"}).into(),
        process: Some("p".into()),
        data: data.into(),
        evidence: evidence.into(),
        meta: None,
        refs: References::default(),
        client_id: false,
    }
}

/// Waits until the engine has folded the log's head.
pub async fn caught_up(engine: &Engine, log: &Log) {
    let head = log.head().seq;
    for _ in 0..500 {
        if engine.seq() >= head {
            return;
        }
        let _ = engine.wait_for(head).await;
    }
    panic!("the engine never reached seq {head}");
}

/// A full fold of the log from seq 1.
pub fn full_fold(log: &Log) -> Knowledge {
    let mut k = Knowledge::new();
    let (records, _) = log.read_range(1, usize::MAX, |_| true).unwrap();
    for r in records {
        k.apply(r.seq, &r.bytes).unwrap();
    }
    k
}

/// Whether `key` is a chunk of save generation `generation` (`c`, generation as u32
/// big-endian, first seq as u64 big-endian).
pub fn is_chunk_of(key: &[u8], generation: u32) -> bool {
    key.len() == 13 && key[0] == b'c' && key[1..5] == generation.to_be_bytes()
}

/// Appends `events` to `stream` (any version), as principal `t`.
pub async fn append(log: &Log, stream: &str, events: Vec<NewEvent>) {
    log.append(Append {
        stream: stream.into(),
        expected: ExpectedVersion::Any,
        events,
        principal: "t".into(),
        abort_on_refusal: None,
    })
    .await
    .unwrap();
}
