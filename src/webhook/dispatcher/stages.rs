//! Where a delivery's time goes, for finding a stall: each message's first attempt is logged
//! (target `annals::webhook::stages`, level debug, off by default) with the times it passed
//! each stage on the machine's monotonic clock (`CLOCK_MONOTONIC`, which other processes
//! read too, so a load generator's acknowledgement and a receiver's arrival times line up
//! with them; `benches/delivery.sh` with `STAGES=1` does that). The stages: `seen` (the
//! subscription's task saw the head that holds the record), `queued` (the task started
//! settling it; with how long the read that found it took), `sent` (its first attempt
//! started), `answered` (the attempt ended); and each sync of the store. The same first
//! attempts always feed `webhook_stage_seconds` on `/metrics` (a few clock reads and
//! histogram observations per message), with `seen` and `prepared` taken by whoever prepared
//! the record (the follower, mostly). This module must never cost a delivery more than that
//! while its log target is off, and never log a body or a secret.

/// The log target; `ANNALS_LOG=info,annals::webhook::stages=debug` turns it on.
pub(super) const TARGET: &str = "annals::webhook::stages";

/// Whether stage times are wanted (the log target is on).
pub(crate) fn on() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::DEBUG)
}

/// Now on the monotonic clock, in nanoseconds (0 if it cannot be read).
pub(crate) fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill; CLOCK_MONOTONIC always exists
    // on Linux, and a failure leaves zeros, which only makes a stage time unknown.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// When a message was seen and queued, carried to its first attempt (`queued_ns` 0: not a
/// first attempt of the cursor's messages, nothing observed).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Seen {
    /// Whether the stage log is on: the times are logged too.
    pub(super) trace: bool,
    pub(super) seen_ns: u64,
    pub(super) queued_ns: u64,
    /// How long the read that found it held the delivery thread.
    pub(super) read_ns: u64,
}

/// Logs one first attempt's stage times.
pub(super) fn log(sub: &uuid::Uuid, seq: u64, seen: Seen, sent_ns: u64, answered_ns: u64) {
    tracing::debug!(
        target: TARGET,
        subscription = %sub,
        seq,
        seen_ns = seen.seen_ns,
        queued_ns = seen.queued_ns,
        read_ns = seen.read_ns,
        sent_ns,
        answered_ns,
        "delivery stages"
    );
}

/// Logs one sync of the store (cursors and attempts written out, flush, fdatasync): a stall
/// that lines up with syncs points at them.
pub(crate) fn log_sync(started_ns: u64, ended_ns: u64) {
    tracing::debug!(target: TARGET, started_ns, ended_ns, "webhook store sync");
}
