//! [`StoreStats`]: what a store has done, counted cheaply enough to leave on.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a store's operation counters, from `stats()` on
/// [`MemoryStore`](crate::MemoryStore), [`FileStore`](crate::FileStore),
/// `RedisStore` or `ValkeyStore`.
///
/// The counters belong to a root store and are shared by its clones and
/// namespaces: a `MemoryStore` from `new`/`build`, the database a
/// `FileStore` has open in this process (every handle on the file), or the
/// connection of a Redis/Valkey store from `connect`. They count what this
/// process asked for, not what other processes did to the same file or
/// server.
///
/// - `hits`, `misses`: keys read by `get` and `get_many` that were found
///   live, or not.
/// - `sets`: values written: `set`, each entry of `set_many`, each
///   `increment`, and each `set_if_absent` that stored its value.
/// - `deletes`: keys passed to `delete` and `delete_many` (whether or not
///   they existed); `delete_all` is not counted.
/// - `expirations`: expired entries removed by `delete_expired` or the
///   background sweeper. Redis and Valkey expire keys themselves, so it
///   stays 0 there.
/// - `evictions`: entries a bounded `MemoryStore` removed to stay within
///   its bounds; 0 elsewhere.
///
/// Counters are relaxed atomics, not a consistent snapshot: one taken while
/// operations run may count an operation in one field and not yet in
/// another.
///
/// # Example
///
/// ```
/// use kvstores::*;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// store.set("k", Bytes::from_static(b"v"), None).await?;
/// store.get("k", None).await?;
/// store.get("other", None).await?;
/// let stats = store.stats();
/// assert_eq!((stats.sets, stats.hits, stats.misses), (1, 1, 1));
/// # Ok::<(), kvstores::Error>(()) }).unwrap();
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Keys read that were found live.
    pub hits: u64,
    /// Keys read that were missing or expired.
    pub misses: u64,
    /// Values written.
    pub sets: u64,
    /// Keys deleted one by one or in a batch.
    pub deletes: u64,
    /// Expired entries removed.
    pub expirations: u64,
    /// Entries removed to keep a bounded store within its bounds.
    pub evictions: u64,
}

/// One of the counted events.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "memory"), allow(dead_code))] // Eviction: MemoryStore only
pub(crate) enum Event {
    Hit,
    Miss,
    Set,
    Delete,
    Expiration,
    Eviction,
}

impl Event {
    /// `Hit` for a lookup that found a live value, `Miss` for one that did not.
    pub(crate) fn lookup<T>(found: &Option<T>) -> Event {
        if found.is_some() {
            Event::Hit
        } else {
            Event::Miss
        }
    }
}

/// The live counters behind [`StoreStats`].
///
/// Striped: a store whose operations are spread over locks (MemoryStore's
/// shards) gives each lock a stripe of its own, so that counting never makes
/// two threads write one cache line that their locks did not already share.
pub(crate) struct Counters {
    stripes: Box<[Stripe]>,
}

#[derive(Default)]
#[repr(align(128))]
struct Stripe([AtomicU64; 6]);

impl Counters {
    pub(crate) fn new(stripes: usize) -> Self {
        Counters {
            stripes: (0..stripes.max(1)).map(|_| Stripe::default()).collect(),
        }
    }

    /// Counts `n` events of `event` on stripe `stripe` (taken modulo the
    /// number of stripes).
    pub(crate) fn add(&self, stripe: usize, event: Event, n: u64) {
        if n > 0 {
            let stripe = &self.stripes[stripe % self.stripes.len()];
            // Relaxed: the counters order nothing; they only have to add up.
            stripe.0[event as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts one event on the first stripe, for stores with one.
    #[cfg_attr(not(feature = "file"), allow(dead_code))] // used by FileStore
    pub(crate) fn one(&self, event: Event) {
        self.add(0, event, 1);
    }

    /// Counts each lookup of a batch as a hit or a miss.
    #[cfg_attr(not(any(feature = "file", feature = "redis")), allow(dead_code))]
    pub(crate) fn add_lookups<T>(&self, stripe: usize, found: &[Option<T>]) {
        let hits = found.iter().filter(|v| v.is_some()).count() as u64;
        self.add(stripe, Event::Hit, hits);
        self.add(stripe, Event::Miss, found.len() as u64 - hits);
    }

    pub(crate) fn snapshot(&self) -> StoreStats {
        let sum = |event: Event| {
            self.stripes
                .iter()
                .map(|s| s.0[event as usize].load(Ordering::Relaxed))
                .sum()
        };
        StoreStats {
            hits: sum(Event::Hit),
            misses: sum(Event::Miss),
            sets: sum(Event::Set),
            deletes: sum(Event::Delete),
            expirations: sum(Event::Expiration),
            evictions: sum(Event::Eviction),
        }
    }
}
