//! Polling instead of sleeping while one append is alone in flight. On a small VM, waking a
//! sleeping thread costs tens of microseconds at each end: a single client's append slept
//! twice (the writer waiting for work, the request's task waiting for its answer), and those
//! two wakes cost more than the writer's own work on it besides the sync. So while at most one
//! append is in flight, the writer polls its queue and the append's task polls its answer for
//! up to `[log] writer_spin_us` before either sleeps. With more appends in flight neither
//! polls: the writer's wake then costs little against a group's work, and a polling writer
//! would take every request alone (smaller groups, one sync each) and a core the request
//! workers need. This must never hold an answer back (a poll returns it the moment it is
//! there) and never poll while other appends are in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// The appends in flight (from [`crate::log::Log::append`]'s call to its answer) and how long
/// to poll while one is alone. Cheap to clone: the count is shared with the writer.
#[derive(Debug, Clone, Default)]
pub(super) struct Lone {
    in_flight: Arc<AtomicUsize>,
    spin: Duration,
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

    /// The answer of `rx` if it comes within the budget while `this` is alone, polled
    /// between yields to the runtime (other tasks on this worker still run); `None`: wait for
    /// it asleep (`rx.await`), as when it is not alone.
    pub(super) async fn poll_answer<T>(
        &self,
        this: &InFlight,
        rx: &mut oneshot::Receiver<T>,
    ) -> Option<T> {
        if !this.alone || self.spin.is_zero() {
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
    }
}
