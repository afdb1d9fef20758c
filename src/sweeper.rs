//! The background expiry sweeper's thread, shared by `MemoryStore` and
//! `FileStore`.
//!
//! A plain thread rather than a tokio task, so that a store needs no runtime
//! to sweep (MemoryStore needs none at all) and a sweep, which takes locks or
//! waits for a commit, never occupies an async worker.
//!
//! The store keeps the [`Sweeper`] in its shared state, and the thread's
//! `tick` holds only a weak reference to that state: the thread never keeps
//! the store alive, and stops at its next tick once the store is gone, or at
//! once when the `Sweeper` is dropped or stopped.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// The handle to a sweeper thread. Dropping it stops the thread and, unless
/// it is dropped on that thread, waits for a tick in progress to finish.
pub(crate) struct Sweeper {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Sweeper {
    /// Starts a thread that calls `tick` every `interval` until `tick`
    /// returns `false` or the sweeper is stopped.
    pub(crate) fn start(
        name: &str,
        interval: Duration,
        mut tick: impl FnMut() -> bool + Send + 'static,
    ) -> std::io::Result<Sweeper> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let (stopped, wake) = &*signal;
                loop {
                    let guard = stopped.lock().unwrap_or_else(PoisonError::into_inner);
                    // Waits out the interval, or less if stopped meanwhile.
                    let (guard, _) = wake
                        .wait_timeout_while(guard, interval, |stopped| !*stopped)
                        .unwrap_or_else(PoisonError::into_inner);
                    if *guard {
                        return;
                    }
                    drop(guard);
                    if !tick() {
                        return;
                    }
                }
            })?;
        Ok(Sweeper {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread: no tick starts after this returns (one in progress
    /// finishes).
    pub(crate) fn stop(&self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_all();
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            // The store's last handle can be released by the tick itself,
            // which then drops the sweeper on its own thread: joining there
            // would wait forever, and the thread is about to return anyway.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    fn counting(interval: Duration, stop_after: usize) -> (Sweeper, Arc<AtomicUsize>) {
        let ticks = Arc::new(AtomicUsize::new(0));
        let counted = ticks.clone();
        let sweeper = Sweeper::start("test-sweep", interval, move || {
            counted.fetch_add(1, Ordering::SeqCst) + 1 < stop_after
        })
        .unwrap();
        (sweeper, ticks)
    }

    fn wait_for(ticks: &AtomicUsize, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while ticks.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "only {ticks:?} ticks");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn dropping_the_sweeper_stops_the_thread_before_returning() {
        let (sweeper, ticks) = counting(Duration::from_millis(1), usize::MAX);
        wait_for(&ticks, 3);
        drop(sweeper); // joins: no tick runs after this
        let after = ticks.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(ticks.load(Ordering::SeqCst), after);
    }

    #[test]
    fn a_tick_returning_false_ends_the_thread_and_stop_wakes_it_at_once() {
        let (sweeper, ticks) = counting(Duration::from_millis(1), 2);
        wait_for(&ticks, 2);
        drop(sweeper); // the thread has returned already; the join is immediate
        assert_eq!(ticks.load(Ordering::SeqCst), 2);

        // An hour-long interval: only stop's wake-up lets the drop return.
        let (sweeper, ticks) = counting(Duration::from_secs(3600), usize::MAX);
        let started = Instant::now();
        sweeper.stop();
        drop(sweeper);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(ticks.load(Ordering::SeqCst), 0);
    }
}
