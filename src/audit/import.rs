//! `annals import`: NDJSON into a log, re-validated. A line is either an exported envelope
//! (with `seq` and `hash`: restored verbatim, so export | import reproduces the same chain) or
//! a submission (an event plus its `stream`: appended as new). Import stops at the first bad
//! line; every line before it is durable. This module must never bypass the writer.

use std::io::BufRead;

use serde_json::Value;

use crate::event::{InputError, Validator};
use crate::log::{Append, AppendError, ExpectedVersion, Log, Restore};

/// Records restored per group commit.
const RESTORE_BATCH: usize = 512;
/// Append requests in flight at once (they stay in order: the writer takes them in order).
const IN_FLIGHT: usize = 64;

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The input could not be read.
    #[error("cannot read line {line}: {source}")]
    Io {
        /// 1-based line number.
        line: u64,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not valid.
    #[error("line {line}: {message}")]
    Invalid {
        /// 1-based line number.
        line: u64,
        /// What is wrong, with the field pointer.
        message: String,
    },
    /// The log refused a line.
    #[error("line {line}: {source}")]
    Refused {
        /// 1-based line number (for a restore batch: its first line).
        line: u64,
        /// The refusal.
        source: AppendError,
    },
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Records restored verbatim.
    pub restored: u64,
    /// Events appended as new.
    pub appended: u64,
    /// Events already present with the same content (idempotent re-import).
    pub duplicates: u64,
}

fn describe(e: InputError) -> String {
    match e {
        InputError::Invalid(errors) => errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// The submitted-event view of a stored record, for re-validation.
fn as_submission(v: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(obj) = v.as_object() {
        for key in [
            "id",
            "type",
            "schema_version",
            "occurred",
            "process",
            "data",
            "evidence",
            "meta",
        ] {
            if let Some(x) = obj.get(key) {
                out.insert(key.to_string(), x.clone());
            }
        }
    }
    Value::Object(out)
}

type Pending = (u64, crate::log::Ticket);

/// Imports NDJSON from `input` into `log`; `principal` is recorded for appended lines.
/// `total_bytes` sizes the progress bar when known.
pub async fn import(
    log: &Log,
    validator: &Validator,
    input: impl BufRead,
    principal: &str,
    total_bytes: Option<u64>,
) -> Result<Summary, ImportError> {
    let bar = super::progress(total_bytes, "importing");
    let mut summary = Summary::default();
    let mut restores: Vec<(u64, Restore)> = Vec::new();
    let mut pending: std::collections::VecDeque<Pending> = Default::default();
    let abort = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    async fn settle(
        pending: &mut std::collections::VecDeque<Pending>,
        summary: &mut Summary,
        keep: usize,
    ) -> Result<(), ImportError> {
        while pending.len() > keep {
            let Some((line, ticket)) = pending.pop_front() else {
                break;
            };
            match ticket.wait().await {
                Ok(a) if a.duplicate => summary.duplicates += a.positions.len() as u64,
                Ok(a) => summary.appended += a.positions.len() as u64,
                Err(source) => {
                    // The first refusal is the one to report; later lines were aborted by it.
                    return Err(ImportError::Refused { line, source });
                }
            }
        }
        Ok(())
    }

    async fn flush_restores(
        log: &Log,
        restores: &mut Vec<(u64, Restore)>,
        summary: &mut Summary,
    ) -> Result<(), ImportError> {
        if restores.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(restores);
        let n = batch.len() as u64;
        let records: Vec<Restore> = batch.iter().map(|(_, r)| r.clone()).collect();
        match log.restore(records).await {
            Ok(_) => {
                summary.restored += n;
                Ok(())
            }
            Err(_) => {
                // The batch was refused whole. Replay it one record at a time so that every
                // line before the bad one is restored and the bad one is named exactly.
                for (line, record) in batch {
                    log.restore(vec![record])
                        .await
                        .map_err(|source| ImportError::Refused { line, source })?;
                    summary.restored += 1;
                }
                Ok(())
            }
        }
    }

    for (i, line) in input.lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = line.map_err(|source| ImportError::Io {
            line: line_no,
            source,
        })?;
        bar.inc(line.len() as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        let value =
            crate::event::parse_json(line.as_bytes()).map_err(|e| ImportError::Invalid {
                line: line_no,
                message: describe(e),
            })?;
        let is_record = value.get("seq").is_some() && value.get("hash").is_some();
        if is_record {
            // Appends before this restore must land first.
            settle(&mut pending, &mut summary, 0).await?;
            let new_event =
                validator
                    .event(&as_submission(&value), "")
                    .map_err(|e| ImportError::Invalid {
                        line: line_no,
                        message: describe(e),
                    })?;
            let mut obj = value;
            let hash_hex = obj
                .as_object_mut()
                .and_then(|o| o.remove("hash"))
                .and_then(|h| h.as_str().map(str::to_string))
                .unwrap_or_default();
            let mut hash = [0u8; 32];
            hex::decode_to_slice(&hash_hex, &mut hash).map_err(|_| ImportError::Invalid {
                line: line_no,
                message: "/hash: not 64 hex digits".into(),
            })?;
            let record = serde_json::from_value(obj).map_err(|e| ImportError::Invalid {
                line: line_no,
                message: format!("not an exported record: {e}"),
            })?;
            restores.push((
                line_no,
                Restore {
                    record,
                    hash,
                    refs: new_event.refs,
                },
            ));
            if restores.len() >= RESTORE_BATCH {
                flush_restores(log, &mut restores, &mut summary).await?;
            }
            continue;
        }
        flush_restores(log, &mut restores, &mut summary).await?;
        let Some(stream) = value
            .get("stream")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return Err(ImportError::Invalid {
                line: line_no,
                message: "/stream: a submitted event needs the stream it goes to".into(),
            });
        };
        crate::event::check_stream_name(&stream, validator.limits()).map_err(|e| {
            ImportError::Invalid {
                line: line_no,
                message: describe(e),
            }
        })?;
        let expected = match value.get("expected_version") {
            Some(v) => crate::event::parse_expected(v, "/expected_version").map_err(|e| {
                ImportError::Invalid {
                    line: line_no,
                    message: describe(e),
                }
            })?,
            None => ExpectedVersion::Any,
        };
        let mut event_value = value;
        if let Some(o) = event_value.as_object_mut() {
            o.remove("stream");
            o.remove("expected_version");
        }
        let event = validator
            .event(&event_value, "")
            .map_err(|e| ImportError::Invalid {
                line: line_no,
                message: describe(e),
            })?;
        let append = Append {
            stream,
            expected,
            events: vec![event],
            principal: principal.to_string(),
            abort_on_refusal: Some(abort.clone()),
        };
        // Enqueued here, in line order; only the answers are awaited later.
        let ticket = log
            .enqueue(append)
            .await
            .map_err(|source| ImportError::Refused {
                line: line_no,
                source,
            })?;
        pending.push_back((line_no, ticket));
        settle(&mut pending, &mut summary, IN_FLIGHT).await?;
    }
    flush_restores(log, &mut restores, &mut summary).await?;
    settle(&mut pending, &mut summary, 0).await?;
    bar.finish_and_clear();
    Ok(summary)
}
