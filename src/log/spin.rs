//! Polling instead of sleeping while one append is alone in flight. On a small VM, waking a
//! sleeping thread costs tens of microseconds at each end: a single client's append slept
//! twice (the writer waiting for work, the request's task waiting for its answer), and those
//! two wakes cost more than the writer's own work on it besides the sync. So while at most one
//! append is in flight, the writer polls its queue and the append's task polls its answer for
//! up to `[log] writer_spin_us` before either sleeps. With more appends in flight neither
//! polls: the writer's wake then costs little against a group's work, and a polling writer
//! would take every request alone (smaller groups, one sync each) and a core the request
//! workers need. Both also stop while the writer's polls run out (appends paced further apart
//! than the budget, as a feed of a batch every 10 ms). This must never hold an answer back (a
//! poll returns it the moment it is there) and never poll while other appends are in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

/// The appends in flight (from [`crate::log::Log::append`]'s call to its answer) and how long
/// to poll while one is alone. Cheap to clone: the count is shared with the writer.
#[derive(Debug, Clone, Default)]
pub(super) struct Lone {
    in_flight: Arc<AtomicUsize>,
    spin: Duration,
    /// Whether the writer's polls pay (set by [`WriterPoll`] alone): a lone append's task
    /// polls only then, so a paced feed costs no polling at either end.
    pays: Arc<AtomicBool>,
}

/// One append counted in flight until it is dropped.
pub(super) struct InFlight {
    in_flight: Arc<AtomicUsize>,
    /// Whether no other append was in flight when this one came.
    alone: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Lone {
    /// Polling for up to `spin_us` microseconds (0: never).
    pub(super) fn new(spin_us: u64) -> Lone {
        Lone {
            in_flight: Arc::default(),
            spin: Duration::from_micros(spin_us),
            pays: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Counts an append in flight until the guard is dropped.
    pub(super) fn enter(&self) -> InFlight {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            in_flight: self.in_flight.clone(),
            alone: before == 0,
        }
    }

    /// How long the writer may poll an empty queue now: the whole budget while at most one
    /// append is in flight (the one just answered may not have left yet), else none.
    pub(super) fn writer_spin(&self) -> Duration {
        if self.in_flight.load(Ordering::Acquire) <= 1 {
            self.spin
        } else {
            Duration::ZERO
        }
    }

    /// The answer of `rx` if it comes within the budget while `this` is alone and the
    /// writer's polls pay, polled between yields to the runtime (other tasks on this worker
    /// still run); `None`: wait for it asleep (`rx.await`), as when it is not alone.
    pub(super) async fn poll_answer<T>(
        &self,
        this: &InFlight,
        rx: &mut oneshot::Receiver<T>,
    ) -> Option<T> {
        if !this.alone || self.spin.is_zero() || !self.pays.load(Ordering::Acquire) {
            return None;
        }
        let since = Instant::now();
        loop {
            match rx.try_recv() {
                Ok(answer) => return Some(answer),
                Err(oneshot::error::TryRecvError::Closed) => return None,
                Err(oneshot::error::TryRecvError::Empty) if since.elapsed() < self.spin => {
                    tokio::task::yield_now().await;
                }
                Err(oneshot::error::TryRecvError::Empty) => return None,
            }
        }
    }
}

/// The writer's side: it polls its queue only while at most one append is in flight, and only
/// while polling pays. A poll that runs out (appends paced further apart than the budget, as
/// a feed of one batch every 10 ms) stops the polling, and a later wait shorter than the
/// budget starts it again: a paced writer would otherwise spend the whole budget after every
/// group, a core's share the webhook deliveries of such a feed need.
#[derive(Debug, Default)]
pub(super) struct WriterPoll {
    lone: Lone,
}

impl WriterPoll {
    /// Polling as `lone` allows (`lone` starts out with polls that pay).
    pub(super) fn new(lone: Lone) -> WriterPoll {
        WriterPoll { lone }
    }

    fn pays(&self) -> bool {
        self.lone.pays.load(Ordering::Acquire)
    }

    fn set_pays(&self, pays: bool) {
        self.lone.pays.store(pays, Ordering::Release);
    }

    /// The next item of `rx`: polled for while that pays, else waited for asleep. `None` once
    /// the queue is closed.
    pub(super) fn next<T>(&mut self, rx: &mut mpsc::Receiver<T>) -> Option<T> {
        let budget = self.lone.writer_spin();
        let since = Instant::now();
        if self.pays() && !budget.is_zero() {
            loop {
                match rx.try_recv() {
                    Ok(item) => return Some(item),
                    Err(mpsc::error::TryRecvError::Disconnected) => return None,
                    Err(mpsc::error::TryRecvError::Empty) if since.elapsed() < budget => {
                        std::hint::spin_loop();
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                }
            }
            self.set_pays(false);
        }
        let item = rx.blocking_recv();
        if since.elapsed() < budget {
            // A poll would have caught it.
            self.set_pays(true);
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_append_with_none_other_in_flight_is_alone_and_the_writer_polls_only_then() {
        let lone = Lone::new(500);
        assert_eq!(lone.writer_spin(), Duration::from_micros(500));
        let first = lone.enter();
        assert!(first.alone);
        // The one in flight may be the one just answered: the writer still polls.
        assert_eq!(lone.writer_spin(), Duration::from_micros(500));
        let second = lone.enter();
        assert!(!second.alone);
        assert_eq!(lone.writer_spin(), Duration::ZERO);
        drop(first);
        drop(second);
        assert_eq!(lone.writer_spin(), Duration::from_micros(500));
        assert_eq!(Lone::new(0).writer_spin(), Duration::ZERO);
    }

    #[test]
    fn the_writer_stops_polling_when_a_poll_runs_out_and_starts_again_after_a_short_wait() {
        let (tx, mut rx) = mpsc::channel::<u32>(8);
        let mut poll = WriterPoll::new(Lone::new(5_000));
        tx.try_send(1).unwrap(); // ok: test code (a #[cfg(test)] module)
        assert_eq!(poll.next(&mut rx), Some(1));
        assert!(poll.pays());
        // Nothing within the 5 ms budget: the poll runs out, then the wait (20 ms) is longer
        // than the budget, so polling stays off.
        let late = tx.clone();
        let feeder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(25));
            late.try_send(2).unwrap(); // ok: test code (a #[cfg(test)] module)
        });
        assert_eq!(poll.next(&mut rx), Some(2));
        assert!(!poll.pays());
        feeder.join().unwrap(); // ok: test code (a #[cfg(test)] module)
        // An item waiting already: the wait was short, so polling pays again.
        tx.try_send(3).unwrap(); // ok: test code (a #[cfg(test)] module)
        assert_eq!(poll.next(&mut rx), Some(3));
        assert!(poll.pays());
        drop(tx);
        assert_eq!(poll.next(&mut rx), None);
    }

    #[tokio::test]
    async fn a_lone_append_gets_an_answer_sent_while_it_polls_and_gives_up_on_a_silent_one() {
        let lone = Lone::new(200_000);
        let this = lone.enter();
        let (tx, mut rx) = oneshot::channel();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let _ = tx.send(7);
        });
        assert_eq!(lone.poll_answer(&this, &mut rx).await, Some(7));
        sender.join().unwrap(); // ok: test code (a #[cfg(test)] module)

        // Nothing comes within the budget: the caller waits asleep instead.
        let short = Lone::new(1_000);
        let this = short.enter();
        let (_tx, mut rx) = oneshot::channel::<u8>();
        assert_eq!(short.poll_answer(&this, &mut rx).await, None);
        // Not alone: no polling at all, even with an answer on its way.
        let other = short.enter();
        let (tx, mut rx) = oneshot::channel();
        tx.send(1).unwrap(); // ok: test code (a #[cfg(test)] module)
        assert_eq!(short.poll_answer(&other, &mut rx).await, None);
        assert_eq!(rx.await.ok(), Some(1));
        // Alone, but the writer's polls do not pay (a paced feed): no polling either.
        drop((this, other));
        let this = short.enter();
        short.pays.store(false, Ordering::Release);
        let (tx, mut rx) = oneshot::channel();
        tx.send(2).unwrap(); // ok: test code (a #[cfg(test)] module)
        assert_eq!(short.poll_answer(&this, &mut rx).await, None);
        assert_eq!(rx.await.ok(), Some(2));
    }
}
