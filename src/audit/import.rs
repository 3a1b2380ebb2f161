//! `annals import`: NDJSON into a log, re-validated. A line is either an exported envelope
//! (with `seq` and `hash`: restored verbatim, so export | import reproduces the same chain) or
//! a submission (an event plus its `stream`: appended as new, under its own id or one derived
//! from the line, so importing the same file again appends nothing twice). The file is
//! streamed in chunks: each chunk is parsed and validated on the rayon pool, then its appends
//! are queued in line order, with a bounded number awaiting the writer. Import stops at the
//! first bad line; every line before it is durable. This module must never bypass the writer,
//! and never hold more of the file than a chunk and the appends in flight.

use std::collections::VecDeque;
use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use rayon::prelude::*;

use crate::event::Validator;
use crate::event::check::line::{Line, LineError, parse_line};
use crate::log::{Append, AppendError, Log, Restore, Ticket};

/// Records restored per group commit.
const RESTORE_BATCH: usize = 512;
/// How much of a file an import holds (`[import]`; every key documented in
/// `config/default.toml`): the import's own memory, beside sled's cache.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportConfig {
    /// Lines read, then parsed in parallel, at a time. A parsed line is several kB (its JSON
    /// as `Value`s, its references), so this and `in_flight` are most of the import's memory.
    pub chunk_lines: usize,
    /// A chunk also ends after this many bytes, so a file of huge lines stays bounded.
    pub chunk_bytes: usize,
    /// Appends queued and not yet answered. They stay in line order (the writer takes them in
    /// order); enough of them that the writer's groups are full (`group_events`) and that it
    /// has work while the next chunk is parsed, few enough to bound memory (an event in flight
    /// is a few kB of parsed JSON): twice `group_events`, so one group is staged while the
    /// one before it is written.
    pub in_flight: usize,
    /// Most events in one of the import's group commits (the import's `[log]
    /// max_group_events`). Larger than the API's: each line is a request that rewrites its
    /// stream's last index page, and a group keeps only the last write of a key, so a group
    /// spanning the file's streams several times writes each page once.
    pub group_events: usize,
    /// sled's cache bound during an import, at most: an import appends, so it reads back only
    /// the right edge of the indexes and a few registry entries.
    pub cache_capacity_bytes: u64,
    /// Ids and event ids `annals import --check` holds in plain maps (a few hundred bytes
    /// each) before it packs them into compressed sorted maps (tens of bytes a line).
    pub check_memory_entries: usize,
}

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

/// The import's state between chunks: what it did, and what awaits the writer.
struct Importer<'a> {
    log: &'a Log,
    in_flight: usize,
    principal: &'a str,
    summary: Summary,
    restores: Vec<(u64, Restore)>,
    pending: VecDeque<(u64, Ticket)>,
    abort: Arc<AtomicBool>,
}

impl Importer<'_> {
    /// Awaits answers, oldest first, until at most `keep` appends are in flight.
    async fn settle(&mut self, keep: usize) -> Result<(), ImportError> {
        while self.pending.len() > keep {
            let Some((line, ticket)) = self.pending.pop_front() else {
                break;
            };
            match ticket.wait().await {
                Ok(a) if a.duplicate => self.summary.duplicates += a.positions.len() as u64,
                Ok(a) => self.summary.appended += a.positions.len() as u64,
                // The first refusal is the one to report; later lines were aborted by it.
                Err(source) => return Err(ImportError::Refused { line, source }),
            }
        }
        Ok(())
    }

    async fn flush_restores(&mut self) -> Result<(), ImportError> {
        if self.restores.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.restores);
        let n = batch.len() as u64;
        let records: Vec<Restore> = batch.iter().map(|(_, r)| r.clone()).collect();
        match self.log.restore(records).await {
            Ok(_) => {
                self.summary.restored += n;
                Ok(())
            }
            Err(_) => {
                // The batch was refused whole. Replay it one record at a time so that every
                // line before the bad one is restored and the bad one is named exactly.
                for (line, record) in batch {
                    self.log
                        .restore(vec![record])
                        .await
                        .map_err(|source| ImportError::Refused { line, source })?;
                    self.summary.restored += 1;
                }
                Ok(())
            }
        }
    }

    /// Everything before the stop is durable, and the first problem in line order is the one
    /// reported: a refusal of an earlier line in flight wins over this line's own problem.
    async fn stop(&mut self, error: ImportError) -> ImportError {
        if let Err(earlier) = self.settle(0).await {
            return earlier;
        }
        if let Err(earlier) = self.flush_restores().await {
            return earlier;
        }
        error
    }

    /// Takes one parsed line, in line order.
    async fn take(
        &mut self,
        line_no: u64,
        parsed: Result<Line, LineError>,
    ) -> Result<(), ImportError> {
        match parsed {
            Ok(Line::Blank) => Ok(()),
            Err(e) => Err(self
                .stop(ImportError::Invalid {
                    line: line_no,
                    message: e.to_string(),
                })
                .await),
            Ok(Line::Record(restore)) => {
                // Appends before this restore must land first.
                self.settle(0).await?;
                self.restores.push((line_no, restore));
                if self.restores.len() >= RESTORE_BATCH {
                    self.flush_restores().await?;
                }
                Ok(())
            }
            Ok(Line::Submission {
                stream,
                expected,
                event,
            }) => {
                self.flush_restores().await?;
                let append = Append {
                    stream,
                    expected,
                    events: vec![event],
                    principal: self.principal.to_string(),
                    abort_on_refusal: Some(self.abort.clone()),
                };
                // Queued here, in line order; only the answers are awaited later.
                let ticket = match self.log.enqueue(append).await {
                    Ok(t) => t,
                    Err(source) => {
                        let e = ImportError::Refused {
                            line: line_no,
                            source,
                        };
                        return Err(self.stop(e).await);
                    }
                };
                self.pending.push_back((line_no, ticket));
                self.settle(self.in_flight).await
            }
        }
    }
}

/// Reads up to a chunk of lines into `chunk` (emptied first); `Ok(false)` at the end of input.
/// A read error is returned with the lines read before it left in `chunk`.
fn read_chunk(
    input: &mut impl BufRead,
    chunk: &mut Vec<String>,
    bounds: &ImportConfig,
) -> Result<bool, std::io::Error> {
    chunk.clear();
    let mut bytes = 0;
    while chunk.len() < bounds.chunk_lines.max(1) && bytes < bounds.chunk_bytes.max(1) {
        let mut text = String::new();
        let n = input.read_line(&mut text)?;
        if n == 0 {
            return Ok(!chunk.is_empty());
        }
        bytes += n;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        chunk.push(text);
    }
    Ok(true)
}

/// Imports NDJSON from `input` into `log`; `principal` is recorded for appended lines.
/// `total_bytes` sizes the progress bar when known; `bounds` is how much of the file it holds.
pub async fn import(
    log: &Log,
    validator: &Validator,
    mut input: impl BufRead,
    principal: &str,
    total_bytes: Option<u64>,
    bounds: &ImportConfig,
) -> Result<Summary, ImportError> {
    let bar = super::progress(total_bytes, "importing");
    let mut importer = Importer {
        log,
        in_flight: bounds.in_flight.max(1),
        principal,
        summary: Summary::default(),
        restores: Vec::new(),
        pending: VecDeque::new(),
        abort: Arc::new(AtomicBool::new(false)),
    };
    let mut chunk = Vec::with_capacity(bounds.chunk_lines.max(1));
    let mut first_line = 1u64;
    loop {
        let read = read_chunk(&mut input, &mut chunk, bounds);
        // Parsing is the costly, pure part: the whole chunk at once on the rayon pool, while
        // the writer thread works through what is already queued. This blocks the calling
        // task for one chunk, as the reads of the input do.
        let parsed: Vec<Result<Line, LineError>> = chunk
            .par_iter()
            .enumerate()
            .map(|(i, text)| parse_line(validator, first_line + i as u64, text))
            .collect();
        for (i, (text, parsed)) in chunk.iter().zip(parsed).enumerate() {
            importer.take(first_line + i as u64, parsed).await?;
            bar.inc(text.len() as u64 + 1);
        }
        first_line += chunk.len() as u64;
        match read {
            Ok(true) => {}
            Ok(false) => break,
            Err(source) => {
                let e = ImportError::Io {
                    line: first_line,
                    source,
                };
                return Err(importer.stop(e).await);
            }
        }
    }
    importer.flush_restores().await?;
    importer.settle(0).await?;
    bar.finish_and_clear();
    Ok(importer.summary)
}
