//! [`MemoryStore`]: a sharded, thread-safe map in this process.
//!
//! # Design
//!
//! A root store and all its namespaces share one set of shards, each behind
//! its own `std::sync::RwLock` (on Linux a futex: uncontended read locking
//! is one atomic operation). A key is hashed once, with its namespace's id,
//! by a per-store seeded foldhash; that one hash picks the shard and finds
//! the entry in the shard's table for the namespace (a hashbrown
//! `HashTable`, which takes the hash as it is). Reads take a shard's read
//! lock; writes and `get` with `renew_for` take its write lock, which is
//! what makes a renewal atomic with its read. No lock is held across an
//! `.await` (there is none), so a blocking lock is right here, as in
//! `mini-redis`'s `Db`.
//!
//! A namespace is a small reference-counted record (its id and path) that
//! its handles and its entries keep alive; its parent keeps only a weak
//! reference, by name, so that every handle of a path finds the same one.
//! When its last entry and last handle are gone it is freed: a store that
//! hands out a namespace per session does not grow with the sessions, and
//! reading a namespace that never had keys creates nothing in the map.
//! `delete_all` removes the tables of a namespace and its live descendants
//! from each shard, so its cost follows that subtree, not the whole store.
//!
//! Each shard keeps an expiry index, ordered by deadline, of the entries
//! that have one, so that [`MemoryStore::delete_expired`] visits only what
//! has expired. Entries without expiry cost the index nothing. A bounded
//! store's CLOCK ring is per shard too, and holds every namespace's entries,
//! so eviction chooses its victims store-wide.
//!
//! Time is a monotonic [`Clock`] in milliseconds. An entry is live while
//! `now < expires_at`; every reading method checks that, so an expired entry
//! is never returned even before it is removed.

mod bounds;
mod ext;
mod list;
mod map;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::clock::{Clock, opt_ttl_millis};
use crate::stats::{Counters, Event};
use crate::sweeper::Sweeper;
use crate::{NamespacedStore, Result, Store};
use bounds::Bounds;
use map::{Inserted, MAX_SHARDS, Namespace, Shard, Shards, Slot, Space};

/// A store in this process's memory: the fastest backend, shared by every
/// clone and namespace of it, gone when the last handle is dropped.
///
/// Cloning is cheap: clones share the same data. Safe to use from any number
/// of tasks and threads at once.
///
/// Expired entries are invisible to every method at once, but their memory is
/// only reclaimed by [`delete_expired`](MemoryStore::delete_expired), by the
/// background sweeper of [`MemoryStoreBuilder::sweep_every`], or by
/// overwriting or deleting the key.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use kvstores::{Bytes, MemoryStore, NamespacedStore, Store};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let limits = store.with_namespace("rate-limits");
/// limits.set("203.0.113.9", Bytes::from_static(b"1"), Some(Duration::from_secs(60))).await?;
/// assert!(limits.exists("203.0.113.9").await?);
/// assert!(!store.exists("203.0.113.9").await?);
/// # Ok::<(), kvstores::Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    /// This handle's namespace; it stays registered under its path while
    /// a handle or an entry refers to it.
    ns: Arc<Namespace>,
    clock: Clock,
    /// Shared by the root store and all its clones and namespaces.
    root: Arc<Root>,
}

/// What a root store shares with its clones and namespaces besides the map.
struct Root {
    /// Every namespace's entries.
    shards: Shards,
    /// One stripe per shard index.
    stats: Counters,
    /// The background sweeper, if the builder asked for one.
    sweeper: OnceLock<Sweeper>,
    /// The limits of a bounded store.
    bounds: Option<Bounds>,
}

/// Options for a [`MemoryStore`], from [`MemoryStore::builder`].
#[derive(Clone, Debug, Default)]
pub struct MemoryStoreBuilder {
    clock: Clock,
    sweep_every: Option<Duration>,
    max_entries: Option<usize>,
    max_bytes: Option<usize>,
}

impl MemoryStoreBuilder {
    /// Uses `clock` instead of the system's monotonic clock, e.g. a
    /// [`ManualClock`](crate::ManualClock) in tests.
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// Removes expired entries in the background, every `interval`, so that
    /// a process that never calls [`MemoryStore::delete_expired`] does not
    /// accumulate them.
    ///
    /// The sweeper is a thread of its own (no async runtime needed). Each
    /// tick removes at most 10,000 entries, holding a shard's lock for at
    /// most 256 of them, so it never stalls the store; a larger backlog is
    /// worked off over several ticks. It stops when the last handle of the
    /// store is dropped, or on [`MemoryStore::stop_sweeper`]. Off by default.
    ///
    /// # Panics
    ///
    /// [`build`](Self::build) panics if the operating system refuses to
    /// start the thread.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use kvstores::MemoryStore;
    ///
    /// let store = MemoryStore::builder().sweep_every(Duration::from_secs(30)).build();
    /// # drop(store);
    /// ```
    pub fn sweep_every(mut self, interval: Duration) -> Self {
        self.sweep_every = Some(interval);
        self
    }

    /// Bounds the store (all its namespaces together) to `max` entries,
    /// evicting as described under [`max_bytes`](Self::max_bytes).
    pub fn max_entries(mut self, max: usize) -> Self {
        self.max_entries = Some(max);
        self
    }

    /// Bounds the store (all its namespaces together) to `max` bytes of
    /// keys and values (`key.len() + value.len()` summed over entries; the
    /// map's own overhead, about 100 bytes an entry, is not counted).
    ///
    /// # Eviction
    ///
    /// The bounds are the store's, not a namespace's: every namespace of
    /// the root counts towards them and gives up entries to them. A write
    /// that takes the store over a bound evicts from the shard it wrote to
    /// until the store is back within bounds: expired entries first
    /// (earliest deadline first), then by CLOCK, an approximation of
    /// least-recently-used: entries in insertion order, each read or write
    /// giving an entry a second chance. A shard holds the entries of every
    /// namespace, so the victims are the store's coldest whichever
    /// namespace they are in. Evictions are counted in
    /// [`StoreStats::evictions`](crate::StoreStats::evictions), expired entries removed so in
    /// `expirations`. Evicting from the written shard keeps eviction under
    /// one lock; since keys hash evenly over shards, it approximates a
    /// store-wide policy. When that shard has nothing left to give, the
    /// other shards that no other thread holds at that moment are used.
    ///
    /// Slack: each write evicts before it returns, so the store exceeds a
    /// bound only by the writes still under way on other threads — at most
    /// one entry (and its bytes) per thread writing at that instant, e.g. a
    /// few entries under a busy multi-threaded runtime. A value larger than
    /// the byte bound is kept until the next write evicts it.
    ///
    /// Its hit ratio is close to exact LRU's (`examples/zipf_hit_ratio.rs`;
    /// the figures are in the repository's `BENCHMARKS.md`).
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::*;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cache = MemoryStore::builder().max_entries(2).build();
    /// for key in ["a", "b", "c"] {
    ///     cache.set(key, Bytes::from_static(b"v"), None).await?;
    /// }
    /// assert_eq!(cache.stats().evictions, 1);
    /// assert!(cache.exists("c").await?); // never the entry just written
    /// # Ok::<(), kvstores::Error>(()) }).unwrap();
    /// ```
    pub fn max_bytes(mut self, max: usize) -> Self {
        self.max_bytes = Some(max);
        self
    }

    /// Builds the store.
    pub fn build(self) -> MemoryStore {
        let store = MemoryStore {
            ns: Namespace::root(),
            clock: self.clock,
            root: Arc::new(Root {
                shards: Shards::new(),
                stats: Counters::new(MAX_SHARDS),
                sweeper: OnceLock::new(),
                bounds: (self.max_entries.is_some() || self.max_bytes.is_some()).then(|| Bounds {
                    max_entries: self.max_entries.unwrap_or(usize::MAX),
                    max_bytes: self.max_bytes.unwrap_or(usize::MAX),
                    entries: AtomicUsize::new(0),
                    bytes: AtomicUsize::new(0),
                }),
            }),
        };
        if let Some(interval) = self.sweep_every {
            let sweeper = store
                .start_sweeper(interval)
                .expect("start the MemoryStore sweeper thread");
            let _ = store.root.sweeper.set(sweeper);
        }
        store
    }
}

impl MemoryStore {
    /// Writes one entry under its shard's lock, keeping bounds and stats.
    fn set_one(&self, key: &str, value: Bytes, expires_at: Option<u64>) {
        let hash = self.ns.hash(key);
        let (stripe, shard) = self.root.shards.locate(hash);
        let mut shard = shard.write();
        let before = (shard.entries, shard.bytes);
        let inserted = shard.insert(&self.ns, hash, key, value, expires_at);
        let garbage = self.settle(stripe, hash, &mut shard, before, Some(inserted));
        drop(shard);
        drop(garbage);
        self.root.stats.add(stripe, Event::Set, 1);
    }

    /// Deletes one entry under its shard's lock, keeping bounds and stats.
    fn delete_one(&self, key: &str) {
        let hash = self.ns.hash(key);
        let (stripe, shard) = self.root.shards.locate(hash);
        let mut shard = shard.write();
        let before = (shard.entries, shard.bytes);
        let emptied = shard.remove(&self.ns, hash, key);
        let garbage = self.settle(stripe, hash, &mut shard, before, None);
        drop(shard);
        drop((emptied, garbage));
        self.root.stats.add(stripe, Event::Delete, 1);
    }

    /// Creates an empty store on the system clock.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Starts building a store with options.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder::default()
    }

    /// Removes every expired entry of this namespace and its descendants,
    /// returning how many it removed.
    ///
    /// On the root store its cost follows the number of expired entries,
    /// not the size of the store; on a namespace, the number of expired
    /// entries of the whole store (they share one expiry index per shard).
    pub async fn delete_expired(&self) -> usize {
        let now = self.clock.monotonic_millis();
        let select = self.subtree_ids();
        let mut removed = 0;
        for shard in self.root.shards.shards.iter() {
            let mut garbage = Vec::new();
            let mut shard = shard.write();
            let before = (shard.entries, shard.bytes);
            removed += shard.remove_expired(now, usize::MAX, select.as_ref(), &mut garbage);
            self.account(before, &mut shard);
            drop(shard);
        }
        self.root.stats.add(0, Event::Expiration, removed as u64);
        removed
    }

    /// The ids of this namespace and its descendants, or `None` for a root
    /// store, which covers everything.
    fn subtree_ids(&self) -> Option<map::IdSet> {
        (!self.ns.is_root()).then(|| self.ns.subtree().iter().map(|ns| ns.id).collect())
    }

    /// The namespace path of this handle, from the root store down.
    pub fn namespace(&self) -> &[String] {
        &self.ns.path
    }

    /// Stops the background sweeper of
    /// [`MemoryStoreBuilder::sweep_every`], if there is one: no sweep starts
    /// after this returns. Expired entries stay invisible, and
    /// [`delete_expired`](Self::delete_expired) still removes them.
    pub fn stop_sweeper(&self) {
        if let Some(sweeper) = self.root.sweeper.get() {
            sweeper.stop();
        }
    }

    /// Adds a shard's change since `before` to the bounds, in a bounded
    /// store, and drops the CLOCK slots of removed entries once they
    /// outnumber the live ones.
    fn account(&self, before: (usize, usize), shard: &mut Shard) {
        if let Some(bounds) = &self.root.bounds {
            bounds.account(before, shard);
            bounds::compact(shard);
        }
    }

    /// After a write under `shard`'s lock, in a bounded store: gives a new
    /// entry its CLOCK slot, accounts for the change, and evicts until the
    /// store is back within bounds — from this shard, whose entries belong
    /// to every namespace, then from the other shards that are not locked
    /// at the moment (`try_write`: waiting for one while holding this one
    /// could deadlock). Returns the spaces that eviction emptied, to be
    /// dropped after the lock is released.
    fn settle(
        &self,
        stripe: usize,
        hash: u64,
        shard: &mut Shard,
        before: (usize, usize),
        inserted: Option<Inserted>,
    ) -> Vec<Space> {
        let mut garbage = Vec::new();
        let Some(bounds) = &self.root.bounds else {
            return garbage;
        };
        // A new entry starts unreferenced, as in CLOCK: it has to be used
        // again to earn a second chance.
        let keep = match inserted {
            Some(Inserted::New(id)) => {
                shard.ring.push_back((self.ns.id, hash, id));
                Some(id)
            }
            _ => None,
        };
        self.account(before, shard);
        if !bounds.over() {
            return garbage;
        }
        let now = self.clock.monotonic_millis();
        let (mut expired, mut evicted) = (0, 0);
        let shards = &self.root.shards.shards;
        // Expired entries anywhere go before live ones anywhere.
        for expired_only in [true, false] {
            for index in (0..shards.len()).map(|i| (stripe + i) % shards.len()) {
                if !bounds.over() {
                    break;
                }
                let (e, v) = if index == stripe {
                    bounds.evict_from(shard, now, keep, expired_only, &mut garbage)
                } else if let Ok(mut other) = shards[index].0.try_write() {
                    bounds.evict_from(&mut other, now, None, expired_only, &mut garbage)
                } else {
                    continue;
                };
                (expired, evicted) = (expired + e, evicted + v);
            }
        }
        self.root.stats.add(stripe, Event::Expiration, expired);
        self.root.stats.add(stripe, Event::Eviction, evicted);
        garbage
    }

    /// Marks a read entry used, in a bounded store.
    fn touch(&self, slot: &Slot) {
        if self.root.bounds.is_some() {
            slot.referenced.store(true, Ordering::Relaxed);
        }
    }

    /// Starts the sweeper thread on this (root) store. The thread holds only
    /// a weak reference to `Root`, whose drop stops it.
    fn start_sweeper(&self, interval: Duration) -> std::io::Result<Sweeper> {
        const PER_TICK: usize = 10_000;
        const PER_LOCK: usize = 256;
        let clock = self.clock.clone();
        let root = Arc::downgrade(&self.root);
        Sweeper::start("kvs-mem-sweep", interval, move || {
            let Some(root) = root.upgrade() else {
                return false;
            };
            let now = clock.monotonic_millis();
            let mut left = PER_TICK;
            for (stripe, shard) in root.shards.shards.iter().enumerate() {
                // Drain a shard in bites of PER_LOCK, so no lock is held
                // long, until it has nothing expired or the tick's budget
                // is spent.
                loop {
                    if left == 0 {
                        return true;
                    }
                    let mut garbage = Vec::new();
                    let mut shard = shard.write();
                    let before = (shard.entries, shard.bytes);
                    let removed = shard.remove_expired(now, left.min(PER_LOCK), None, &mut garbage);
                    if let Some(bounds) = &root.bounds {
                        bounds.account(before, &shard);
                        bounds::compact(&mut shard);
                    }
                    drop(shard);
                    root.stats.add(stripe, Event::Expiration, removed as u64);
                    left -= removed;
                    if removed < PER_LOCK {
                        break;
                    }
                }
            }
            true
        })
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("namespace", &self.ns.path)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn set(&self, key: &str, value: Bytes, expires_in: Option<Duration>) -> Result<()> {
        let ttl = opt_ttl_millis(expires_in, "expires_in")?;
        let expires_at = ttl.map(|ms| self.clock.monotonic_millis().saturating_add(ms));
        self.set_one(key, value, expires_at);
        Ok(())
    }

    async fn get(&self, key: &str, renew_for: Option<Duration>) -> Result<Option<Bytes>> {
        let renew = opt_ttl_millis(renew_for, "renew_for")?;
        let hash = self.ns.hash(key);
        let (stripe, shard) = self.root.shards.locate(hash);
        let value = match renew {
            None => (shard.read().get(&self.ns, hash, key))
                .filter(|e| e.is_live_on(&self.clock))
                .map(|e| {
                    self.touch(e);
                    e.value.clone()
                }),
            Some(ms) => {
                let now = self.clock.monotonic_millis();
                let mut shard = shard.write();
                shard.renew(&self.ns, hash, key, now, now.saturating_add(ms))
            }
        };
        let event = Event::lookup(&value);
        self.root.stats.add(stripe, event, 1);
        Ok(value)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.delete_one(key);
        Ok(())
    }

    async fn delete_all(&self) -> Result<()> {
        let subtree = self.ns.subtree();
        for shard in self.root.shards.shards.iter() {
            let mut shard = shard.write();
            let before = (shard.entries, shard.bytes);
            let emptied: Vec<Space> = if self.ns.is_root() {
                let old = std::mem::take(&mut *shard);
                // Entry ids must never repeat within a shard.
                shard.next_id = old.next_id;
                old.spaces.into_values().collect()
            } else {
                subtree
                    .iter()
                    .filter_map(|ns| shard.remove_space(ns.id))
                    .collect()
            };
            self.account(before, &mut shard);
            drop(shard);
            drop(emptied);
        }
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let hash = self.ns.hash(key);
        let shard = self.root.shards.locate(hash).1.read();
        Ok(shard
            .get(&self.ns, hash, key)
            .is_some_and(|e| e.is_live_on(&self.clock)))
    }

    async fn expires_in(&self, key: &str) -> Result<Option<Duration>> {
        let now = self.clock.monotonic_millis();
        let hash = self.ns.hash(key);
        let shard = self.root.shards.locate(hash).1.read();
        Ok(shard
            .get(&self.ns, hash, key)
            .filter(|e| e.is_live(now))
            .and_then(|e| e.expires_at)
            .map(|at| Duration::from_millis(at - now)))
    }
}

impl NamespacedStore for MemoryStore {
    fn with_namespace(&self, namespace: &str) -> Self {
        MemoryStore {
            ns: self.ns.child(namespace),
            clock: self.clock.clone(),
            root: self.root.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
