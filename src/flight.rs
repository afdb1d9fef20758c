//! Single flight: concurrent callers of one key share one run of their work.
//!
//! [`Flights::run`] makes the first caller of a key its *leader*: it runs its
//! own work while every later caller of that key *waits*, and all of them get
//! a clone of the leader's result. The entry is removed when the leader
//! finishes, so nothing is cached here: a result (an error included) reaches
//! exactly the callers that were waiting for it, and the next call of the key
//! runs again. Caching belongs to the caller (the store).
//!
//! A leader that never finishes — its future dropped (cancelled) or its work
//! panicking — abandons the flight: the entry is removed and every waiter
//! wakes and tries again, so exactly one of them becomes the new leader and
//! runs its own work, and the others wait for that one. No waiter hangs and
//! each caller's work runs at most once.
//!
//! It needs no runtime: a `std::sync::Mutex` guards the table and each
//! flight's state, and waiters are woken through their `Waker`s, so it works
//! on any executor and with every cargo feature. No lock is ever held across
//! an `.await` or while user code runs; a poisoned lock is recovered, since
//! every critical section leaves the state consistent.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// A table of in-flight runs, keyed by string. Cheap to share behind an
/// `Arc`; one table is one single-flight scope.
pub(crate) struct Flights<T> {
    table: Mutex<HashMap<String, Arc<Flight<T>>>>,
}

/// One run of one key, shared by its leader and its waiters.
struct Flight<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    outcome: Outcome<T>,
    /// Wakers of the waiters still waiting, by waiter id: a waiter replaces
    /// its own entry on every poll and removes it when dropped, so the map
    /// never holds more entries than there are waiters.
    waiters: HashMap<u64, Waker>,
    next_waiter: u64,
}

enum Outcome<T> {
    Running,
    Done(T),
    Abandoned,
}

/// What [`Flights::try_run`] did.
pub(crate) enum TryRun<T> {
    /// No run of the key was in flight; this caller's work ran.
    Ran(T),
    /// Another caller's run was in flight; this caller's work did not run.
    Busy,
}

impl<T: Clone> Flights<T> {
    pub(crate) fn new() -> Self {
        Flights {
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `work` unless a run of `key` is in flight, in which case it waits
    /// for that run and returns a clone of its result. If the run it waits
    /// for is abandoned, it tries again, and may then run its own `work`.
    ///
    /// If `work` panics, the panic reaches this caller and the flight is
    /// abandoned, not poisoned.
    pub(crate) async fn run<Fut>(&self, key: &str, work: impl FnOnce() -> Fut) -> T
    where
        Fut: Future<Output = T>,
    {
        loop {
            let (flight, leads) = self.join(key);
            if leads {
                return self.lead(key, flight, work).await;
            }
            if let Some(result) = (Wait { flight, id: None }).await {
                return result;
            }
        }
    }

    /// Runs `work` if no run of `key` is in flight; otherwise returns
    /// [`TryRun::Busy`] at once, without waiting. Callers of [`run`](Self::run)
    /// that come while this work runs wait for it as for any leader.
    pub(crate) async fn try_run<Fut>(&self, key: &str, work: impl FnOnce() -> Fut) -> TryRun<T>
    where
        Fut: Future<Output = T>,
    {
        let (flight, leads) = self.join(key);
        if !leads {
            return TryRun::Busy;
        }
        TryRun::Ran(self.lead(key, flight, work).await)
    }

    /// Whether a run of `key` is in flight now.
    #[cfg(test)]
    pub(crate) fn in_flight(&self, key: &str) -> bool {
        lock(&self.table).contains_key(key)
    }

    /// The flight of `key`, and whether this caller just started it (leads).
    fn join(&self, key: &str) -> (Arc<Flight<T>>, bool) {
        let mut table = lock(&self.table);
        if let Some(flight) = table.get(key) {
            return (Arc::clone(flight), false);
        }
        let flight = Arc::new(Flight {
            state: Mutex::new(State {
                outcome: Outcome::Running,
                waiters: HashMap::new(),
                next_waiter: 0,
            }),
        });
        table.insert(key.to_owned(), Arc::clone(&flight));
        (flight, true)
    }

    async fn lead<Fut>(&self, key: &str, flight: Arc<Flight<T>>, work: impl FnOnce() -> Fut) -> T
    where
        Fut: Future<Output = T>,
    {
        let mut leader = Leader {
            flights: self,
            key,
            flight,
            finished: false,
        };
        let result = work().await;
        leader.end(Outcome::Done(result.clone()));
        result
    }
}

/// Ends its flight when the leader finishes, or abandons it when the
/// leader's future is dropped or its work panics (the `Drop`).
struct Leader<'a, T> {
    flights: &'a Flights<T>,
    key: &'a str,
    flight: Arc<Flight<T>>,
    finished: bool,
}

impl<T> Leader<'_, T> {
    fn end(&mut self, outcome: Outcome<T>) {
        self.finished = true;
        // Out of the table first, so that a waiter woken below that tries
        // again starts a new flight instead of finding this one.
        {
            let mut table = lock(&self.flights.table);
            if table
                .get(self.key)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                table.remove(self.key);
            }
        }
        let waiters = {
            let mut state = lock(&self.flight.state);
            state.outcome = outcome;
            std::mem::take(&mut state.waiters)
        };
        // Woken outside the lock: a waker may run code of the executor.
        for waker in waiters.into_values() {
            waker.wake();
        }
    }
}

impl<T> Drop for Leader<'_, T> {
    fn drop(&mut self) {
        if !self.finished {
            self.end(Outcome::Abandoned);
        }
    }
}

/// A waiter's future: `Some(result)` when the flight is done, `None` when it
/// was abandoned.
struct Wait<T> {
    flight: Arc<Flight<T>>,
    id: Option<u64>,
}

impl<T: Clone> Future for Wait<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        let mut state = lock(&this.flight.state);
        match &state.outcome {
            Outcome::Done(result) => return Poll::Ready(Some(result.clone())),
            Outcome::Abandoned => return Poll::Ready(None),
            Outcome::Running => {}
        }
        let id = *this.id.get_or_insert_with(|| {
            state.next_waiter += 1;
            state.next_waiter
        });
        state.waiters.insert(id, cx.waker().clone());
        Poll::Pending
    }
}

impl<T> Drop for Wait<T> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            lock(&self.flight.state).waiters.remove(&id);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::*;

    type Shared = Arc<Flights<Result<u32, String>>>;

    fn flights() -> Shared {
        Arc::new(Flights::new())
    }

    /// Waits until `n` waiters are parked on `key`'s flight, so that a test
    /// acts only once its callers really wait (no sleeps racing the clock).
    async fn until_waiting(flights: &Shared, key: &str, n: usize) {
        loop {
            let count = lock(&flights.table)
                .get(key)
                .map_or(0, |f| lock(&f.state).waiters.len());
            if count >= n {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hundred_concurrent_callers_share_one_run() {
        let flights = flights();
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, released) = oneshot::channel::<()>();
        let released = Arc::new(Mutex::new(Some(released)));
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let (flights, runs, released) = (flights.clone(), runs.clone(), released.clone());
            tasks.push(tokio::spawn(async move {
                flights
                    .run("k", || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        let gate = lock(&released).take().expect("one leader");
                        gate.await.unwrap();
                        Ok(7)
                    })
                    .await
            }));
        }
        until_waiting(&flights, "k", 99).await;
        release.send(()).unwrap();
        for task in tasks {
            assert_eq!(task.await.unwrap(), Ok(7));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(!flights.in_flight("k"), "nothing is kept after the run");
    }

    #[tokio::test]
    async fn an_error_reaches_every_waiter_and_is_not_kept() {
        let flights = flights();
        let (release, released) = oneshot::channel::<()>();
        let leader = {
            let flights = flights.clone();
            tokio::spawn(async move {
                flights
                    .run("k", || async {
                        released.await.unwrap();
                        Err("boom".to_owned())
                    })
                    .await
            })
        };
        while !flights.in_flight("k") {
            tokio::task::yield_now().await;
        }
        let waiters: Vec<_> = (0..10)
            .map(|_| {
                let flights = flights.clone();
                tokio::spawn(async move { flights.run("k", || async { Ok(1) }).await })
            })
            .collect();
        until_waiting(&flights, "k", 10).await;
        release.send(()).unwrap();
        assert_eq!(leader.await.unwrap(), Err("boom".to_owned()));
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), Err("boom".to_owned()));
        }
        // The next call runs its own work.
        assert_eq!(flights.run("k", || async { Ok(2) }).await, Ok(2));
    }

    #[tokio::test]
    async fn a_cancelled_leader_hands_over_to_one_waiter() {
        let flights = flights();
        let leader = {
            let flights = flights.clone();
            tokio::spawn(async move {
                flights
                    .run("k", std::future::pending::<Result<u32, String>>)
                    .await
            })
        };
        while !flights.in_flight("k") {
            tokio::task::yield_now().await;
        }
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, released) = oneshot::channel::<()>();
        let released = Arc::new(Mutex::new(Some(released)));
        let waiters: Vec<_> = (0..20)
            .map(|i| {
                let (flights, runs, released) = (flights.clone(), runs.clone(), released.clone());
                tokio::spawn(async move {
                    flights
                        .run("k", || async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            let gate = lock(&released).take().expect("one new leader");
                            gate.await.unwrap();
                            Ok(100 + i)
                        })
                        .await
                })
            })
            .collect();
        until_waiting(&flights, "k", 20).await;
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        // One waiter took over and the others wait for it.
        until_waiting(&flights, "k", 19).await;
        release.send(()).unwrap();
        let mut results = Vec::new();
        for waiter in waiters {
            results.push(waiter.await.unwrap().unwrap());
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|r| *r == results[0]), "{results:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_leader_hands_over_and_its_caller_sees_the_panic() {
        let flights = flights();
        let (release, released) = oneshot::channel::<()>();
        let leader = {
            let flights = flights.clone();
            tokio::spawn(async move {
                flights
                    .run("k", || async {
                        released.await.unwrap();
                        panic!("loader panicked");
                    })
                    .await
            })
        };
        while !flights.in_flight("k") {
            tokio::task::yield_now().await;
        }
        let runs = Arc::new(AtomicUsize::new(0));
        let (go, gone) = oneshot::channel::<()>();
        let gone = Arc::new(Mutex::new(Some(gone)));
        let waiters: Vec<_> = (0..20)
            .map(|_| {
                let (flights, runs, gone) = (flights.clone(), runs.clone(), gone.clone());
                tokio::spawn(async move {
                    flights
                        .run("k", || async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            let gate = lock(&gone).take().expect("one new leader");
                            gate.await.unwrap();
                            Ok(5)
                        })
                        .await
                })
            })
            .collect();
        until_waiting(&flights, "k", 20).await;
        release.send(()).unwrap();
        assert!(leader.await.unwrap_err().is_panic());
        // One waiter took over and the others wait for it.
        until_waiting(&flights, "k", 19).await;
        go.send(()).unwrap();
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), Ok(5));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(!flights.in_flight("k"));
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_the_others_waiting() {
        let flights = flights();
        let (release, released) = oneshot::channel::<()>();
        let leader = {
            let flights = flights.clone();
            tokio::spawn(async move {
                flights
                    .run("k", || async {
                        released.await.unwrap();
                        Ok(3)
                    })
                    .await
            })
        };
        while !flights.in_flight("k") {
            tokio::task::yield_now().await;
        }
        let spawn_waiter = || {
            let flights = flights.clone();
            tokio::spawn(async move { flights.run("k", || async { Ok(0) }).await })
        };
        let (gone, stays) = (spawn_waiter(), spawn_waiter());
        until_waiting(&flights, "k", 2).await;
        gone.abort();
        let _ = gone.await;
        until_waiting(&flights, "k", 1).await;
        let count = lock(&flights.table)
            .get("k")
            .map(|f| lock(&f.state).waiters.len());
        assert_eq!(count, Some(1), "the dropped waiter's waker is gone");
        release.send(()).unwrap();
        assert_eq!(leader.await.unwrap(), Ok(3));
        assert_eq!(stays.await.unwrap(), Ok(3));
    }

    #[tokio::test]
    async fn keys_fly_independently_and_try_run_never_waits() {
        let flights = flights();
        let (release, released) = oneshot::channel::<()>();
        let slow = {
            let flights = flights.clone();
            tokio::spawn(async move {
                flights
                    .run("slow", || async {
                        released.await.unwrap();
                        Ok(1)
                    })
                    .await
            })
        };
        while !flights.in_flight("slow") {
            tokio::task::yield_now().await;
        }
        // Another key is not held up by "slow".
        let other = tokio::time::timeout(
            Duration::from_secs(10),
            flights.run("other", || async { Ok(2) }),
        );
        assert_eq!(other.await.unwrap(), Ok(2));
        // try_run on a busy key returns at once without running.
        let busy = flights
            .try_run("slow", || async { unreachable!("busy key ran") })
            .await;
        assert!(matches!(busy, TryRun::Busy));
        assert!(matches!(
            flights.try_run("free", || async { Ok(4) }).await,
            TryRun::Ran(Ok(4))
        ));
        release.send(()).unwrap();
        assert_eq!(slow.await.unwrap(), Ok(1));
    }

    #[test]
    fn works_without_a_runtime() {
        // A hand-driven executor: the primitive needs no tokio.
        let flights: Flights<u32> = Flights::new();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut fut = std::pin::pin!(flights.run("k", || async { 9 }));
        assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(9));
    }
}
