//! [`Cache`]: get-or-compute over any store, with single flight.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::flight::{Flights, TryRun};
use crate::{Error, Result, Store};

/// What one loader run ends with; cloned to every caller that waited for it.
type Outcome = std::result::Result<Bytes, Arc<dyn StdError + Send + Sync>>;

/// A store that computes missing values: [`get_or_set_with`] returns the live
/// value of a key or runs your loader once, stores its result and returns it.
///
/// Written by hand on top of `get` and `set`, that pattern runs the loader
/// once per concurrent miss (a stampede: 100 requests for one cold key make
/// 100 database queries). A `Cache` runs it once:
///
/// - **Within a process**, concurrent callers of one key of one `Cache`
///   (clones included: they share the single-flight table) wait for one
///   loader run and all get its value. A loader error reaches every one of
///   them and nothing is stored, so the next call loads again. If the caller
///   running the loader is cancelled (its future dropped) or the loader
///   panics, one of the waiting callers takes over with its own loader; no
///   caller waits forever.
/// - **Across processes and clients**, with
///   [`lock_across_processes`](Cache::lock_across_processes): a short-lived
///   lock key taken with [`AtomicStore::set_if_absent`](crate::AtomicStore)
///   lets one caller of all the processes sharing a `FileStore` or a Redis
///   server load a key at a time; see that method for the exact guarantee.
/// - **Stale while refreshing**, with [`serve_stale_for`](Cache::serve_stale_for):
///   a value near its end is returned at once while one caller refreshes it.
///
/// Single flight is per `Cache`: two `Cache`s built separately over the same
/// store do not see each other's runs in-process (the cross-process lock
/// still covers them). Build one per namespace and share clones of it.
///
/// Works over any [`Store`]: the four backends, `Arc<dyn Store>`,
/// `Arc<dyn FullStore>` and stores of your own.
///
/// [`get_or_set_with`]: Cache::get_or_set_with
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use kvstores::{Bytes, Cache, MemoryStore};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let cache = Cache::new(MemoryStore::new());
/// let profile = cache
///     .get_or_set_with("user:42", Some(Duration::from_secs(300)), || async {
///         // An HTTP call or a database query; runs once per miss.
///         Ok::<_, std::io::Error>(Bytes::from_static(b"{\"name\":\"Ada\"}"))
///     })
///     .await?;
/// assert_eq!(profile, Bytes::from_static(b"{\"name\":\"Ada\"}"));
///
/// // Now a hit: the loader does not run.
/// let again = cache
///     .get_or_set_with("user:42", Some(Duration::from_secs(300)), || async {
///         Err::<Bytes, _>("not called")
///     })
///     .await?;
/// assert_eq!(again, profile);
/// # Ok::<(), kvstores::Error>(()) }).unwrap();
/// ```
pub struct Cache<S> {
    store: S,
    flights: Arc<Flights<Outcome>>,
    stale_for: Option<Duration>,
    #[cfg(any(feature = "file", feature = "redis"))]
    lock: Option<Arc<lock::Lock>>,
}

impl<S: Store> Cache<S> {
    /// A cache over `store`, with single flight within this process, no
    /// cross-process lock and no stale serving.
    ///
    /// # Example
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvstores::{Cache, MemoryStore, Store};
    ///
    /// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    /// let cache = Cache::new(store);
    /// let for_another_task = cache.clone(); // shares the single flight
    /// ```
    pub fn new(store: S) -> Self {
        Cache {
            store,
            flights: Arc::new(Flights::new()),
            stale_for: None,
            #[cfg(any(feature = "file", feature = "redis"))]
            lock: None,
        }
    }

    /// Keeps each loaded value `stale_for` longer than its `expires_in`,
    /// and serves it during that time while one caller refreshes it.
    ///
    /// A value whose remaining lifetime is `stale_for` or less is stale. A
    /// call that finds one returns it at once, unless no refresh of that key
    /// is running in this `Cache`: then that call runs its loader and returns
    /// the fresh value (or the loader's error; the stale value stays until
    /// it expires). Values stored without expiry are never stale.
    ///
    /// Finding out whether a value is stale costs an
    /// [`expires_in`](Store::expires_in) call on every hit.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use kvstores::{Bytes, Cache, MemoryStore, Store};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let cache = Cache::new(MemoryStore::new()).serve_stale_for(Duration::from_secs(60));
    /// let load = || async { Ok::<_, std::io::Error>(Bytes::from_static(b"v1")) };
    /// cache.get_or_set_with("k", Some(Duration::from_secs(300)), load).await?;
    /// // Stored for 300 s fresh plus 60 s stale.
    /// assert!(cache.store().expires_in("k").await?.unwrap() > Duration::from_secs(300));
    /// # Ok::<(), kvstores::Error>(()) }).unwrap();
    /// ```
    pub fn serve_stale_for(mut self, stale_for: Duration) -> Self {
        self.stale_for = Some(stale_for).filter(|d| !d.is_zero());
        self
    }

    /// The store this cache reads and writes.
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::{Cache, MemoryStore};
    ///
    /// let cache = Cache::new(MemoryStore::new());
    /// let store: &MemoryStore = cache.store();
    /// ```
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Returns the live value of `key`, or runs `loader` once, stores its
    /// value with `expires_in` (plus the stale time, if any) and returns it.
    ///
    /// Concurrent callers of one key share one loader run as described on
    /// [`Cache`]: a caller that waits never runs its own loader, unless the
    /// run it waited for was cancelled or panicked. Before running its
    /// loader, a caller reads the key once more, so a call that raced a run
    /// that just stored the value does not load again.
    ///
    /// The loader's error type is anything that converts into a boxed error
    /// (`std::io::Error`, `String`, `anyhow::Error`, your own error type);
    /// it comes back as the `source` of [`Error::Load`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a zero `expires_in` (the loader does
    /// not run); the store's error if the first read fails; [`Error::Load`]
    /// when the loader fails or storing its value fails — every caller of
    /// that run gets it, with the same `source`, and nothing is stored.
    ///
    /// # Panics
    ///
    /// If the loader panics, the caller that ran it panics (a waiter takes
    /// over the load).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use kvstores::{Bytes, Cache, Error, MemoryStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let cache = Cache::new(MemoryStore::new());
    /// let failed = cache
    ///     .get_or_set_with("k", None, || async { Err::<Bytes, _>("backend down") })
    ///     .await;
    /// let Err(Error::Load { key, source }) = failed else { panic!("a load error") };
    /// assert_eq!((key.as_str(), source.to_string().as_str()), ("k", "backend down"));
    ///
    /// // Nothing was stored: the next call loads again.
    /// let value = cache
    ///     .get_or_set_with("k", Some(Duration::from_secs(60)), || async {
    ///         Ok::<_, Error>(Bytes::from_static(b"ok"))
    ///     })
    ///     .await?;
    /// assert_eq!(value, Bytes::from_static(b"ok"));
    /// # Ok::<(), kvstores::Error>(()) }).unwrap();
    /// ```
    pub async fn get_or_set_with<F, Fut, E>(
        &self,
        key: &str,
        expires_in: Option<Duration>,
        loader: F,
    ) -> Result<Bytes>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<Bytes, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        if expires_in.is_some_and(|d| d.is_zero()) {
            return Err(Error::invalid_argument(
                "expires_in must be longer than zero (use None for no expiry)",
            ));
        }
        let run = || self.load(key, expires_in, loader);
        match self.store.get(key, None).await? {
            None => shared(key, self.flights.run(key, run).await),
            Some(value) => {
                if !self.is_stale(key).await? {
                    return Ok(value);
                }
                match self.flights.try_run(key, run).await {
                    TryRun::Ran(outcome) => shared(key, outcome),
                    TryRun::Busy => Ok(value),
                }
            }
        }
    }

    /// The leader's run: check again, take the cross-process lock if any,
    /// load, store.
    async fn load<F, Fut, E>(&self, key: &str, expires_in: Option<Duration>, loader: F) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<Bytes, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        if let Some(value) = self.fresh(key).await.map_err(share)? {
            return Ok(value);
        }
        #[cfg(any(feature = "file", feature = "redis"))]
        let held = match &self.lock {
            None => None,
            Some(lock) => match lock.acquire(key, || self.fresh(key)).await {
                Ok(lock::Acquired::Held(held)) => Some(held),
                Ok(lock::Acquired::Loaded(value)) => return Ok(value),
                Err(error) => return Err(share(error)),
            },
        };
        let outcome = self.load_and_store(key, expires_in, loader).await;
        #[cfg(any(feature = "file", feature = "redis"))]
        if let Some(held) = held {
            held.release().await;
        }
        outcome
    }

    async fn load_and_store<F, Fut, E>(
        &self,
        key: &str,
        expires_in: Option<Duration>,
        loader: F,
    ) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<Bytes, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let value = loader().await.map_err(|e| Arc::from(e.into()))?;
        let keep_for = expires_in.map(|d| d + self.stale_for.unwrap_or_default());
        self.store
            .set(key, value.clone(), keep_for)
            .await
            .map_err(share)?;
        Ok(value)
    }

    /// The value of `key` if it is live and not stale.
    async fn fresh(&self, key: &str) -> Result<Option<Bytes>> {
        match self.store.get(key, None).await? {
            Some(value) if !self.is_stale(key).await? => Ok(Some(value)),
            _ => Ok(None),
        }
    }

    async fn is_stale(&self, key: &str) -> Result<bool> {
        let Some(stale_for) = self.stale_for else {
            return Ok(false);
        };
        Ok(self
            .store
            .expires_in(key)
            .await?
            .is_some_and(|left| left <= stale_for))
    }
}

#[cfg(any(feature = "file", feature = "redis"))]
impl<S: Store> Cache<S> {
    /// Makes one caller of all the processes and clients that share the
    /// store load a key at a time, with a lock key in `locks` that expires
    /// after `lock_for`.
    ///
    /// The lock of key `k` is the key `k` in `locks`, so `locks` must be a
    /// key space of its own, e.g. `store.with_namespace("locks")` — never
    /// the cache's own store, where a lock would read as a value. It is taken with
    /// [`set_if_absent`](crate::AtomicStore::set_if_absent) and an expiry of
    /// `lock_for`. The caller of this process that runs the load first takes
    /// the lock, then reads the key again (a run elsewhere may just have
    /// stored it), then runs its loader, stores the value, and deletes the
    /// lock. A caller that finds the lock taken polls (every 2 ms at first,
    /// backing off to 50 ms) until the value appears, which it returns, or
    /// until it takes the lock itself.
    ///
    /// The guarantee, exactly: `set_if_absent` is atomic, so among all the
    /// `Cache`s sharing `locks` at most one holds the lock of a key at any
    /// moment; a holder stores the value before it lets go, and a caller
    /// that takes the lock reads the key again before it loads. Hence, as
    /// long as each load (read, loader, store) finishes within `lock_for`, a
    /// missing key is loaded once however many callers, processes and
    /// clients ask — or, if a load fails, once more by the next holder. A
    /// holder that crashes or outlives `lock_for` keeps the lock until it
    /// expires: the others wait at most `lock_for`, and then one more load
    /// may start beside the slow one, so at most one load of a key starts
    /// per `lock_for`. A holder that is cancelled or panics inside a tokio
    /// runtime deletes its lock from a spawned task, and the others go on at
    /// once. A holder deletes the lock only while less than `lock_for` has
    /// passed since it took it (by its own clock), so it never frees a lock
    /// taken by someone else after its own expired. Choose `lock_for` well
    /// above the slowest load.
    ///
    /// Polling uses tokio's timer: call it inside a tokio runtime, as the
    /// file and server backends require anyway.
    ///
    /// # Panics
    ///
    /// If `lock_for` is zero.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use kvstores::{Bytes, Cache, FileStore, NamespacedStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = FileStore::open(dir.path().join("cache.redb"))?; // shared by processes
    /// let cache = Cache::new(store.with_namespace("reports"))
    ///     .lock_across_processes(store.with_namespace("report-locks"), Duration::from_secs(30));
    /// let report = cache
    ///     .get_or_set_with("daily", Some(Duration::from_secs(3600)), || async {
    ///         Ok::<_, std::io::Error>(Bytes::from_static(b"...")) // one process computes it
    ///     })
    ///     .await?;
    /// assert_eq!(report, Bytes::from_static(b"..."));
    /// # Ok::<(), kvstores::Error>(()) }).unwrap();
    /// ```
    #[cfg_attr(docsrs, doc(cfg(any(feature = "file", feature = "redis"))))]
    pub fn lock_across_processes(
        mut self,
        locks: impl crate::AtomicStore + 'static,
        lock_for: Duration,
    ) -> Self {
        assert!(!lock_for.is_zero(), "lock_for must be longer than zero");
        self.lock = Some(Arc::new(lock::Lock {
            locks: Arc::new(locks),
            lock_for,
        }));
        self
    }
}

impl<S: Clone> Clone for Cache<S> {
    /// A handle on the same store that shares this one's single flight.
    fn clone(&self) -> Self {
        Cache {
            store: self.store.clone(),
            flights: Arc::clone(&self.flights),
            stale_for: self.stale_for,
            #[cfg(any(feature = "file", feature = "redis"))]
            lock: self.lock.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Cache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Cache");
        debug
            .field("store", &self.store)
            .field("stale_for", &self.stale_for);
        #[cfg(any(feature = "file", feature = "redis"))]
        debug.field("lock_for", &self.lock.as_ref().map(|l| l.lock_for));
        debug.finish_non_exhaustive()
    }
}

fn share(error: Error) -> Arc<dyn StdError + Send + Sync> {
    Arc::new(error)
}

fn shared(key: &str, outcome: Outcome) -> Result<Bytes> {
    outcome.map_err(|source| Error::Load {
        key: key.to_owned(),
        source,
    })
}

/// The cross-process lock: a key in a store shared by the processes.
#[cfg(any(feature = "file", feature = "redis"))]
mod lock {
    use std::future::Future;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bytes::Bytes;

    use crate::{AtomicStore, Result};

    const FIRST_PAUSE: Duration = Duration::from_millis(2);
    const LONGEST_PAUSE: Duration = Duration::from_millis(50);

    pub(super) struct Lock {
        pub(super) locks: Arc<dyn AtomicStore>,
        pub(super) lock_for: Duration,
    }

    pub(super) enum Acquired {
        /// This caller holds the lock and must load.
        Held(Held),
        /// Another holder stored the value meanwhile.
        Loaded(Bytes),
    }

    /// A lock this caller holds. Dropped without [`release`](Held::release)
    /// — the holder cancelled or panicking — it releases the lock from a
    /// spawned task, so that the callers waiting for it need not wait for
    /// it to expire; outside a tokio runtime it is left to expire.
    pub(super) struct Held {
        lock: Arc<Lock>,
        key: String,
        since: Instant,
        released: bool,
    }

    impl Held {
        pub(super) async fn release(mut self) {
            self.released = true;
            self.lock.release(&self.key, self.since).await;
        }
    }

    impl Drop for Held {
        fn drop(&mut self) {
            if self.released {
                return;
            }
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let (lock, key, since) = (
                    Arc::clone(&self.lock),
                    std::mem::take(&mut self.key),
                    self.since,
                );
                runtime.spawn(async move { lock.release(&key, since).await });
            }
        }
    }

    impl Lock {
        /// Takes the lock of `key`, or waits until `fresh` finds the value
        /// another holder stored.
        pub(super) async fn acquire<F, Fut>(
            self: &Arc<Self>,
            key: &str,
            fresh: F,
        ) -> Result<Acquired>
        where
            F: Fn() -> Fut,
            Fut: Future<Output = Result<Option<Bytes>>>,
        {
            // Says who holds it, for someone looking at the store.
            let holder = Bytes::from(format!("pid {}", std::process::id()));
            let mut pause = FIRST_PAUSE;
            loop {
                if self
                    .locks
                    .set_if_absent(key, holder.clone(), Some(self.lock_for))
                    .await?
                {
                    let since = Instant::now();
                    // The previous holder stores the value before it lets go.
                    return match fresh().await {
                        Ok(Some(value)) => {
                            self.release(key, since).await;
                            Ok(Acquired::Loaded(value))
                        }
                        Ok(None) => Ok(Acquired::Held(Held {
                            lock: Arc::clone(self),
                            key: key.to_owned(),
                            since,
                            released: false,
                        })),
                        Err(error) => {
                            self.release(key, since).await;
                            Err(error)
                        }
                    };
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_PAUSE);
                if let Some(value) = fresh().await? {
                    return Ok(Acquired::Loaded(value));
                }
            }
        }

        /// Deletes the lock unless it may have expired and been taken by
        /// someone else. A failed delete is ignored: the lock expires anyway.
        pub(super) async fn release(&self, key: &str, since: Instant) {
            if since.elapsed() < self.lock_for {
                let _ = self.locks.delete(key).await;
            }
        }
    }
}
