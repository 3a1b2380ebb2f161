//! The groups the nats backend's writer has on their way to the stream: while one group's
//! publish is out, the requests that arrive are staged on the same overlay after it, and the
//! first group after it is published too once it is large enough, expecting the stream
//! message the one before will end at. At most two publishes are out at once. A group's
//! refusals are answered only once its publish is stored: that shows the stream held exactly
//! the state they were judged against. This must never write a group locally, nor answer it,
//! before every group before it was written.

use std::collections::{HashMap, VecDeque};

use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::super::super::merkle::Frontier;
use super::super::super::nats::{NatsError, Outgoing};
use super::super::super::record::Hash;
use super::super::super::{AppendError, Command};
use super::super::stage::{Overlay, Stamp, StreamHead};
use super::super::{Owed, Writer, command_events};

/// Events from which the group staged after the one on its way is published at once when no
/// request waits, rather than once that one is stored: two publishes of a few hundred events
/// overlap, where a smaller one would cost the stream a message for little.
const SEND_AHEAD_EVENTS: usize = 128;

/// A group's publish under way on the runtime, and the stream message it ends at once stored.
pub(super) struct Flight {
    publishing: JoinHandle<Result<(), NatsError>>,
    end: u64,
}

impl Flight {
    /// Waits for the publish, whatever its outcome (a group after a refused one).
    pub(super) fn settle(self, runtime: &tokio::runtime::Handle) {
        let _ = runtime.block_on(self.publishing);
    }
}

/// A group's requests, staged on the shared overlay: what is owed once the stream took it.
#[derive(Default)]
pub(super) struct Staged {
    pub(super) owed: Vec<Owed>,
    pub(super) requests: usize,
    pub(super) refused: Vec<(Command, AppendError)>,
    /// Its publish, once started (an error: it could not be started).
    pub(super) flight: Option<Result<Flight, NatsError>>,
    events: usize,
}

impl Staged {
    /// A group staged on its own.
    pub(super) fn new(
        owed: Vec<Owed>,
        requests: usize,
        refused: Vec<(Command, AppendError)>,
    ) -> Staged {
        Staged {
            owed,
            requests,
            refused,
            ..Staged::default()
        }
    }
}

/// A group staged after the one at the front, and where it starts in the overlay.
pub(super) struct Queued {
    pub(super) split: Split,
    pub(super) staged: Staged,
}

/// Where a group starts in an overlay it shares with the groups before it: what writing
/// those alone needs.
pub(super) struct Split {
    records: usize,
    writes: usize,
    next_seq: u64,
    head_hash: Hash,
    frontier: Frontier,
    streams: HashMap<String, StreamHead>,
    stamp: Stamp,
}

impl Split {
    fn of(overlay: &Overlay) -> Split {
        Split {
            records: overlay.records.len(),
            writes: overlay.writes.len(),
            next_seq: overlay.next_seq,
            head_hash: overlay.head_hash,
            frontier: overlay.frontier.clone(),
            streams: overlay.streams.clone(),
            stamp: overlay.stamp.clone(),
        }
    }

    /// The record count of the overlay where the group starts.
    pub(super) fn records(&self) -> usize {
        self.records
    }

    /// The last seq of the groups before it.
    pub(super) fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The front group, as an overlay of its own, taken out of the shared one, which keeps
    /// the groups after it (their splits in `rest` move down with it). Each request's
    /// staging went in whole and in order, so the front group's writes are a prefix; its ids
    /// and names stay behind for the lookups of the groups after it.
    pub(super) fn take_front(self, overlay: &mut Overlay, rest: &mut VecDeque<Queued>) -> Overlay {
        for q in rest.iter_mut() {
            q.split.records -= self.records;
            q.split.writes -= self.writes;
        }
        Overlay {
            records: overlay.records.drain(..self.records).collect(),
            writes: overlay.writes.drain(..self.writes).collect(),
            next_seq: self.next_seq,
            head_hash: self.head_hash,
            frontier: self.frontier,
            streams: self.streams,
            stamp: self.stamp,
            ..Overlay::default()
        }
    }
}

impl Writer {
    /// Starts publishing `records`, the seqs right after `last`, on the runtime. `after` is
    /// the stream message a publish still on its way ends at; without it, the message that
    /// ends at `last` is looked up (from what the last publish or read saw, else the stream).
    pub(super) fn send(
        &self,
        last: u64,
        after: Option<u64>,
        records: &[(Hash, Vec<u8>)],
    ) -> Result<Flight, NatsError> {
        let Some(replication) = &self.replication else {
            return Err(NatsError::Publish("no stream to publish to".into()));
        };
        let link = replication.link.clone();
        let expected = match after {
            Some(end) => end,
            None => link.runtime.block_on(link.expected(last))?,
        };
        let outgoing = Outgoing::new(last, expected, records)?;
        let end = outgoing.end();
        let publishing = link
            .runtime
            .clone()
            .spawn(async move { link.publish(outgoing).await });
        Ok(Flight { publishing, end })
    }

    /// Waits for the front group's publish. Meanwhile, the requests that arrive on `rx` are
    /// staged on the overlay after the groups already there, into `queued`: the first group
    /// after the front one is published as soon as it is large enough and no request waits
    /// (or it is full), expecting the message the front one ends at; the next one waits for
    /// the front to be stored. A Close or Follow stops the staging and is kept in `carry`: it
    /// goes after every group staged.
    pub(super) fn stage_meanwhile(
        &mut self,
        flight: Flight,
        overlay: &mut Overlay,
        mut rx: Option<&mut mpsc::Receiver<Command>>,
        carry: &mut Option<Command>,
        queued: &mut VecDeque<Queued>,
    ) -> Result<(), NatsError> {
        let Some(runtime) = self.replication.as_ref().map(|r| r.link.runtime.clone()) else {
            return Ok(());
        };
        let max = self.options.max_group_events;
        let Flight {
            mut publishing,
            end,
        } = flight;
        loop {
            let arrived = runtime.block_on(async {
                match rx.as_deref_mut() {
                    // The publish first: its requests wait for it.
                    Some(rx) => tokio::select! {
                        biased;
                        done = &mut publishing => Err(done),
                        cmd = rx.recv() => Ok(cmd),
                    },
                    None => Err((&mut publishing).await),
                }
            });
            let cmd = match arrived {
                Err(done) => {
                    return done.unwrap_or_else(|e| {
                        Err(NatsError::Publish(format!("the publish task ended: {e}")))
                    });
                }
                Ok(Some(cmd @ (Command::Close(_) | Command::Follow(_)))) => {
                    *carry = Some(cmd);
                    rx = None;
                    continue;
                }
                Ok(None) => {
                    rx = None;
                    continue;
                }
                Ok(Some(cmd)) => cmd,
            };
            let open = queued
                .back()
                .is_some_and(|q| q.staged.flight.is_none() && q.staged.events < max);
            if !open {
                let split = Split::of(overlay);
                // Stamped when staged, as a group of its own would be.
                overlay.stamp.raise(OffsetDateTime::now_utc());
                queued.push_back(Queued {
                    split,
                    staged: Staged::default(),
                });
            }
            let alone = queued.len() == 1;
            let Some(back) = queued.back_mut() else {
                continue;
            };
            back.staged.events += command_events(&cmd);
            let (owed, requests) =
                self.stage_group(vec![cmd], overlay, Some(&mut back.staged.refused));
            back.staged.owed.extend(owed);
            back.staged.requests += requests;
            let events = back.staged.events;
            let waiting = rx.as_ref().is_some_and(|rx| !rx.is_empty());
            let closed = events >= max || (events >= SEND_AHEAD_EVENTS && !waiting);
            if alone && closed {
                let records = &overlay.records[back.split.records..];
                back.staged.flight = Some(self.send(back.split.last_seq(), Some(end), records));
                self.metrics
                    .groups_staged_meanwhile
                    .with_label_values(&["sent_ahead"])
                    .inc();
            } else if !alone && events >= max {
                // Two groups on their way and a third full: the rest waits in the queue.
                rx = None;
            }
        }
    }
}
