//! Single flight for the response cache: concurrent callers of one key share
//! one run of their work.
//!
//! Interim: the crate-wide single-flight primitive (`crate::flight`, issue
//! 15) has the same `Flights::run` interface and replaces this module once
//! it is on `main`.
//!
//! The first caller of a key leads: its work runs while later callers of the
//! key wait for its result. A leader whose future is dropped (cancelled, or
//! its work panicked) abandons the flight: its entry is removed, the channel
//! closes, and the waiters try again, one of them leading. No waiter hangs.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;

/// In-flight runs by key.
pub(crate) struct Flights<T> {
    table: Mutex<HashMap<String, watch::Receiver<Option<T>>>>,
}

impl<T: Clone> Flights<T> {
    pub(crate) fn new() -> Self {
        Flights {
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `work`, unless a run of `key` is in flight: then waits for that
    /// run and returns a clone of its result.
    pub(crate) async fn run<Fut>(&self, key: &str, work: impl FnOnce() -> Fut) -> T
    where
        Fut: Future<Output = T>,
    {
        loop {
            let joined = {
                let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
                match table.get(key) {
                    Some(waiting) => Err(waiting.clone()),
                    None => {
                        let (sender, receiver) = watch::channel(None);
                        table.insert(key.to_owned(), receiver);
                        Ok(sender)
                    }
                }
            };
            match joined {
                Ok(sender) => {
                    let lead = Lead {
                        flights: self,
                        key,
                        sender,
                    };
                    let result = work().await;
                    // Out of the table before the waiters wake, so a late
                    // caller starts a new run rather than joining a done one.
                    lead.leave();
                    lead.sender.send_replace(Some(result.clone()));
                    return result;
                }
                Err(mut receiver) => {
                    // `Err` means the leader was dropped before it finished.
                    if let Ok(done) = receiver.wait_for(Option::is_some).await {
                        return done.clone().expect("waited for Some");
                    }
                }
            }
        }
    }
}

/// The leader's side of a flight; dropping it unfinished abandons the
/// flight (the channel closes, the waiters retry).
struct Lead<'a, T> {
    flights: &'a Flights<T>,
    key: &'a str,
    sender: watch::Sender<Option<T>>,
}

impl<T> Lead<'_, T> {
    fn leave(&self) {
        let mut table = self
            .flights
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if table
            .get(self.key)
            .is_some_and(|r| r.same_channel(&self.sender.subscribe()))
        {
            table.remove(self.key);
        }
    }
}

impl<T> Drop for Lead<'_, T> {
    fn drop(&mut self) {
        self.leave();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_run_and_a_cancelled_leader_hands_over() {
        let flights = Arc::new(Flights::<u32>::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, released) = watch::channel(false);
        // A leader that never finishes, then is cancelled.
        let stuck = {
            let flights = flights.clone();
            tokio::spawn(async move { flights.run("k", std::future::pending).await })
        };
        while !flights.table.lock().unwrap().contains_key("k") {
            tokio::task::yield_now().await;
        }
        let waiters: Vec<_> = (0..50)
            .map(|_| {
                let (flights, runs, mut released) =
                    (flights.clone(), runs.clone(), released.clone());
                tokio::spawn(async move {
                    flights
                        .run("k", || async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            released.wait_for(|r| *r).await.unwrap();
                            7
                        })
                        .await
                })
            })
            .collect();
        stuck.abort();
        let _ = stuck.await;
        release.send(true).unwrap();
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), 7);
        }
        // One waiter led after the cancelled leader; usually exactly one
        // run, but a waiter that joined after it finished may run again.
        assert!(runs.load(Ordering::SeqCst) >= 1);
        assert!(flights.table.lock().unwrap().is_empty());
    }
}
