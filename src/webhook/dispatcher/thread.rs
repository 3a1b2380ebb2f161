//! The delivery threads: every subscription's delivery task, and the HTTP connections its
//! requests open, run on one of a few dedicated threads of the process (each a current-thread
//! tokio runtime), apart from the runtime that serves the API. A delivery is a chain of small
//! steps (sign, write the request, wake on the answer, settle, start the next message); on
//! the shared multi-thread runtime each step could land on another worker, so every round
//! trip paid cross-thread wake-ups (futex calls, a parked worker unparked to find nothing)
//! and queued behind API work. On one thread the connection task and the delivery task hand
//! each other the request and the answer without waking anyone. There are
//! `webhooks.delivery_threads` of them (0: one per core, at most [`MAX_THREADS`]),
//! subscriptions dealt to them in turn, so delivery can still use every core. This module must never run anything but delivery tasks on those threads, and
//! never let a task outlive the runtime that started it.

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio::task::{AbortHandle, JoinHandle};

/// The threads' name (also that of their blocking helpers, which resolve target hosts).
pub(super) const THREAD_NAME: &str = "annals-webhooks";

/// At most this many delivery threads by default (`webhooks.delivery_threads = 0`), whatever
/// the core count: each is cheap when idle, but a subscription's round trips need only one.
const MAX_THREADS: usize = 4;

/// How many delivery threads `configured` (`webhooks.delivery_threads`) asks for on a
/// machine of `cores`.
fn thread_count(configured: usize, cores: usize) -> usize {
    if configured == 0 {
        cores.clamp(1, MAX_THREADS)
    } else {
        configured
    }
}

/// The delivery runtimes, started on first use; empty if none could start (delivery then
/// runs on the caller's runtime, as it did before these threads existed).
static DELIVERY: OnceLock<Vec<Handle>> = OnceLock::new();

/// Which thread the next task goes to.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The next delivery runtime in turn; the threads are started by the first call, `threads`
/// of them (as [`thread_count`]): the setting is read once per process.
fn delivery(threads: usize) -> Option<&'static Handle> {
    let handles = DELIVERY.get_or_init(|| {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let n = thread_count(threads, cores);
        let mut handles = Vec::with_capacity(n);
        for _ in 0..n {
            match start() {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start a webhook delivery thread");
                    break;
                }
            }
        }
        handles
    });
    if handles.is_empty() {
        return None;
    }
    handles.get(NEXT.fetch_add(1, Ordering::Relaxed) % handles.len())
}

fn start() -> std::io::Result<Handle> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name(THREAD_NAME)
        .build()?;
    let handle = runtime.handle().clone();
    // The thread drives the runtime for the life of the process: tasks come and go (each
    // ends with its subscription or with the runtime that started it), the thread stays,
    // idle in epoll when there are none.
    std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
    Ok(handle)
}

/// Aborts the delivery task when the caller's stand-in for it is dropped.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `task` on a delivery thread, the next in turn. The handle answered belongs to a
/// stand-in task on the caller's runtime that ends when the delivery task ends (a panic passed on as a panic), and
/// aborts it if dropped first: when that runtime shuts down (a server dropped without its
/// shutdown, a test's runtime ending), its delivery tasks end with it, as tasks of its own
/// would, instead of delivering on with a log nobody serves.
/// `threads` is `webhooks.delivery_threads`, used by the first call of the process.
pub(super) fn spawn<F>(task: F, threads: usize) -> JoinHandle<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let Some(delivery) = delivery(threads) else {
        return tokio::spawn(task);
    };
    let inner = delivery.spawn(task);
    // Made before the stand-in is spawned: a stand-in dropped before its first poll aborts too.
    let abort = AbortOnDrop(inner.abort_handle());
    tokio::spawn(async move {
        let _abort = abort;
        if let Err(e) = inner.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_delivery_task_runs_on_a_delivery_thread() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let handle = spawn(
            async move {
                let name = std::thread::current().name().map(str::to_owned);
                let _ = tx.send(name);
            },
            0,
        );
        handle.await.unwrap();
        assert_eq!(rx.await.unwrap().as_deref(), Some(THREAD_NAME));
    }

    #[test]
    fn a_delivery_task_ends_when_the_runtime_that_started_it_shuts_down() {
        let (dropped_tx, dropped_rx) = std::sync::mpsc::channel::<()>();
        // Sends when the task's future is dropped, which only an abort can do: it never ends.
        struct Signal(std::sync::mpsc::Sender<()>);
        impl Drop for Signal {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let signal = Signal(dropped_tx);
            let _handle = spawn(
                async move {
                    let _signal = signal;
                    std::future::pending::<()>().await;
                },
                0,
            );
            tokio::task::yield_now().await;
        });
        assert!(
            dropped_rx.try_recv().is_err(),
            "the task must run while its runtime lives"
        );
        drop(runtime);
        dropped_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the delivery task must be dropped with the runtime that started it");
    }

    #[test]
    fn zero_delivery_threads_is_one_per_core_at_most_four_and_any_other_count_is_taken_as_is() {
        assert_eq!(thread_count(0, 1), 1);
        assert_eq!(thread_count(0, 2), 2);
        assert_eq!(thread_count(0, 16), MAX_THREADS);
        assert_eq!(thread_count(1, 16), 1);
        assert_eq!(thread_count(8, 2), 8);
    }

    #[tokio::test]
    async fn a_panic_on_the_delivery_thread_reaches_the_caller_as_a_panic() {
        let handle = spawn(async { panic!("boom") }, 0);
        let e = handle.await.unwrap_err();
        assert!(e.is_panic());
    }
}
