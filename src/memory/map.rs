//! The map under a [`MemoryStore`](super::MemoryStore): one set of locked
//! shards for a root store and all its namespaces, each shard holding, per
//! namespace that has entries in it, a table of those entries, plus the
//! shard's expiry index and CLOCK ring.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use bytes::Bytes;
use foldhash::SharedSeed;
use foldhash::fast::SeedableRandomState;
use hashbrown::HashTable;

use crate::clock::Clock;

/// The most shards a store has (and the number of stats stripes).
pub(super) const MAX_SHARDS: usize = 64;

/// A set of namespace ids.
pub(super) type IdSet = hashbrown::HashSet<u64, foldhash::fast::RandomState>;

/// Namespace ids, unique in the process for as long as it runs.
static NEXT_NAMESPACE: AtomicU64 = AtomicU64::new(1);

/// One namespace path, alive while a handle or an entry refers to it.
///
/// Entries are stored under the namespace's `id`, not its path; the
/// `children` registry makes a path resolve to the one live `Namespace` of
/// that path, so every handle of a path sees the same entries. A namespace
/// with entries is kept alive by its [`Space`]s, an empty one only by the
/// handles to it: when the last goes, it leaves its parent's registry, so an
/// empty namespace costs nothing.
pub(super) struct Namespace {
    pub(super) id: u64,
    pub(super) path: Vec<String>,
    /// The store's seeded hasher; every key is hashed with it once, with the
    /// namespace id, for both the shard and the table.
    hasher: SeedableRandomState,
    parent: Option<Arc<Namespace>>,
    /// Live children by name. A dead `Weak` is one whose namespace is being
    /// dropped; its `Drop` removes it unless a new one took its place.
    children: RwLock<HashMap<String, Weak<Namespace>>>,
}

impl Namespace {
    /// A root namespace with a new random hash seed: `std`'s `RandomState`
    /// draws from the operating system, foldhash's global seed too.
    pub(super) fn root() -> Arc<Namespace> {
        let seed = std::hash::RandomState::new().hash_one(0u64);
        Arc::new(Namespace {
            id: NEXT_NAMESPACE.fetch_add(1, Ordering::Relaxed),
            path: Vec::new(),
            hasher: SeedableRandomState::with_seed(seed, SharedSeed::global_random()),
            parent: None,
            children: RwLock::default(),
        })
    }

    pub(super) fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one((self.id, key))
    }

    pub(super) fn is_root(&self) -> bool {
        self.parent.is_none()
    }

    /// The live child `name`, created if there is none.
    pub(super) fn child(self: &Arc<Self>, name: &str) -> Arc<Namespace> {
        if let Some(child) = read(&self.children).get(name).and_then(Weak::upgrade) {
            return child;
        }
        let mut children = write(&self.children);
        if let Some(child) = children.get(name).and_then(Weak::upgrade) {
            return child;
        }
        let mut path = self.path.clone();
        path.push(name.to_owned());
        let child = Arc::new(Namespace {
            id: NEXT_NAMESPACE.fetch_add(1, Ordering::Relaxed),
            path,
            hasher: self.hasher.clone(),
            parent: Some(self.clone()),
            children: RwLock::default(),
        });
        children.insert(name.to_owned(), Arc::downgrade(&child));
        child
    }

    /// This namespace and its live descendants (every one that has entries
    /// is live). The children lock is never held while descending.
    pub(super) fn subtree(self: &Arc<Self>) -> Vec<Arc<Namespace>> {
        let mut all = vec![self.clone()];
        let mut next = 0;
        while let Some(ns) = all.get(next) {
            let children: Vec<_> = read(&ns.children)
                .values()
                .filter_map(Weak::upgrade)
                .collect();
            all.extend(children);
            next += 1;
        }
        all
    }

    /// How many live children this namespace has registered (tests).
    #[cfg(test)]
    pub(super) fn registered_children(&self) -> usize {
        read(&self.children).len()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let (Some(parent), Some(name)) = (&self.parent, self.path.last()) else {
            return;
        };
        let mut children = write(&parent.children);
        // Only our own registration: a new namespace of the same path may
        // already have replaced it.
        if children
            .get(name)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), self))
        {
            children.remove(name);
            if children.capacity() > 64 && children.len() < children.capacity() / 4 {
                children.shrink_to_fit();
            }
        }
    }
}

/// A store's shards: a key's shard is chosen by bits of its one hash.
pub(super) struct Shards {
    pub(super) shards: Box<[Padded<RwLock<Shard>>]>,
    shift: u32,
}

impl Shards {
    pub(super) fn new() -> Self {
        // Enough shards that two threads rarely meet on one lock, as dashmap
        // sizes its shards; a power of two keeps the index a shift.
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        let count = (cores * 4).next_power_of_two().clamp(4, MAX_SHARDS);
        Shards {
            shards: (0..count).map(|_| Padded(RwLock::default())).collect(),
            shift: 64 - count.trailing_zeros(),
        }
    }

    /// The shard of a key's hash and its index, which is also its stats
    /// stripe. It takes the bits below the top seven, which hashbrown uses
    /// as tags inside a table, and above the low ones it uses for buckets.
    pub(super) fn locate(&self, hash: u64) -> (usize, &Padded<RwLock<Shard>>) {
        let index = ((hash << 7) >> self.shift) as usize;
        (index, &self.shards[index])
    }
}

/// One shard: every namespace's entries whose hash falls here.
#[derive(Default)]
pub(super) struct Shard {
    /// Per namespace id, its entries here. A namespace without entries here
    /// has no `Space`: reading it creates nothing.
    pub(super) spaces: hashbrown::HashMap<u64, Space, foldhash::fast::RandomState>,
    /// `(expires_at, entry id) -> (namespace id, hash)` for every entry that
    /// has an expiry. The entry id makes index keys unique and cheap to
    /// compare: many keys share a millisecond.
    pub(super) expiry: BTreeMap<(u64, u64), (u64, u64)>,
    /// In a bounded store, the CLOCK ring: `(namespace id, hash, entry id)`
    /// of every entry, oldest insertion first, and possibly of entries since
    /// removed (skipped when reached, and compacted away when they outnumber
    /// live ones). Entry ids are never reused, so a stale slot never
    /// matches a newer entry.
    pub(super) ring: VecDeque<(u64, u64, u64)>,
    pub(super) next_id: u64,
    /// The number of entries over all spaces.
    pub(super) entries: usize,
    /// The sum of `key.len() + value.len()` over all entries.
    pub(super) bytes: usize,
}

/// The entries of one namespace in one shard.
pub(super) struct Space {
    /// Keeps the namespace, and so its id's registration under its path,
    /// alive while it has entries.
    #[allow(dead_code)] // held for what its drop does
    pub(super) namespace: Arc<Namespace>,
    pub(super) table: HashTable<Slot>,
}

pub(super) struct Slot {
    pub(super) hash: u64,
    /// Unique in the shard for the store's lifetime; kept by overwrites.
    pub(super) id: u64,
    pub(super) key: Box<str>,
    pub(super) value: Bytes,
    /// Monotonic milliseconds at which the entry expires; `None`: never.
    pub(super) expires_at: Option<u64>,
    /// In a bounded store, set when the entry is used and cleared when the
    /// CLOCK hand passes it: a second chance before eviction.
    pub(super) referenced: AtomicBool,
}

impl Slot {
    pub(super) fn is_live(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }

    /// [`is_live`](Self::is_live), reading the clock only for an entry that
    /// has an expiry: most reads are of entries without one, and the clock
    /// read was a tenth of a lookup's cost.
    pub(super) fn is_live_on(&self, clock: &Clock) -> bool {
        self.expires_at
            .is_none_or(|at| clock.monotonic_millis() < at)
    }
}

/// What [`Shard::insert`] did.
pub(super) enum Inserted {
    /// A new entry, with its id.
    New(u64),
    /// An existing entry's value and expiry were replaced.
    Replaced,
}

impl Shard {
    /// The entry `key` of `ns`, whose hash is `hash`.
    pub(super) fn get(&self, ns: &Namespace, hash: u64, key: &str) -> Option<&Slot> {
        let space = self.spaces.get(&ns.id)?;
        space.table.find(hash, |s| s.hash == hash && *s.key == *key)
    }

    fn get_mut(&mut self, ns: u64, hash: u64, key: &str) -> Option<&mut Slot> {
        let space = self.spaces.get_mut(&ns)?;
        space
            .table
            .find_mut(hash, |s| s.hash == hash && *s.key == *key)
    }

    /// Writes `key` of `ns`; an existing entry keeps its id (and so its
    /// CLOCK slot) and gets its reference bit set.
    pub(super) fn insert(
        &mut self,
        ns: &Arc<Namespace>,
        hash: u64,
        key: &str,
        value: Bytes,
        expires_at: Option<u64>,
    ) -> Inserted {
        let added = value.len();
        if let Some(slot) = self.get_mut(ns.id, hash, key) {
            let (old_len, old_expiry, id) = (slot.value.len(), slot.expires_at, slot.id);
            slot.value = value;
            slot.expires_at = expires_at;
            slot.referenced.store(true, Ordering::Relaxed);
            self.bytes = self.bytes - old_len + added;
            self.reindex(id, (ns.id, hash), old_expiry, expires_at);
            return Inserted::Replaced;
        }
        self.next_id += 1;
        let id = self.next_id;
        let space = self.spaces.entry(ns.id).or_insert_with(|| Space {
            namespace: ns.clone(),
            table: HashTable::new(),
        });
        space.table.insert_unique(
            hash,
            Slot {
                hash,
                id,
                key: key.into(),
                value,
                expires_at,
                referenced: AtomicBool::new(false),
            },
            |s| s.hash,
        );
        self.entries += 1;
        self.bytes += key.len() + added;
        self.reindex(id, (ns.id, hash), None, expires_at);
        Inserted::New(id)
    }

    /// Moves entry `id` in the expiry index from `old` to `new`.
    fn reindex(&mut self, id: u64, at: (u64, u64), old: Option<u64>, new: Option<u64>) {
        if old == new {
            return;
        }
        if let Some(old) = old {
            self.expiry.remove(&(old, id));
        }
        if let Some(new) = new {
            self.expiry.insert((new, id), at);
        }
    }

    /// Reads `key` of `ns` and, if it is live and has an expiry, moves its
    /// deadline to `new_expiry`.
    pub(super) fn renew(
        &mut self,
        ns: &Namespace,
        hash: u64,
        key: &str,
        now: u64,
        new_expiry: u64,
    ) -> Option<Bytes> {
        let slot = self.get_mut(ns.id, hash, key)?;
        if !slot.is_live(now) {
            return None;
        }
        slot.referenced.store(true, Ordering::Relaxed);
        let (value, id, old) = (slot.value.clone(), slot.id, slot.expires_at);
        if old.is_some() {
            slot.expires_at = Some(new_expiry);
            self.reindex(id, (ns.id, hash), old, Some(new_expiry));
        }
        Some(value)
    }

    /// Replaces the value of `key` of `ns` (which must be there), keeping
    /// its expiry.
    pub(super) fn replace_value(&mut self, ns: &Namespace, hash: u64, key: &str, value: Bytes) {
        let added = value.len();
        if let Some(slot) = self.get_mut(ns.id, hash, key) {
            let old = std::mem::replace(&mut slot.value, value).len();
            slot.referenced.store(true, Ordering::Relaxed);
            self.bytes = self.bytes - old + added;
        }
    }

    /// Removes the entry of namespace `ns` with `hash` that `eq` picks,
    /// returning it and, if that emptied the namespace's space here, the
    /// space, for the caller to drop after unlocking (dropping it may drop
    /// the namespace, which locks its parent's registry).
    fn take(
        &mut self,
        ns: u64,
        hash: u64,
        eq: impl FnMut(&Slot) -> bool,
    ) -> Option<(Slot, Option<Space>)> {
        let space = self.spaces.get_mut(&ns)?;
        let (slot, _) = space.table.find_entry(hash, eq).ok()?.remove();
        self.entries -= 1;
        self.bytes -= slot.key.len() + slot.value.len();
        let emptied = space
            .table
            .is_empty()
            .then(|| self.spaces.remove(&ns))
            .flatten();
        Some((slot, emptied))
    }

    /// Removes `key` of `ns`, with its expiry index entry.
    pub(super) fn remove(&mut self, ns: &Namespace, hash: u64, key: &str) -> Option<Space> {
        let (slot, emptied) = self.take(ns.id, hash, |s| s.hash == hash && *s.key == *key)?;
        if let Some(at) = slot.expires_at {
            self.expiry.remove(&(at, slot.id));
        }
        emptied
    }

    /// Removes entry `id`, known to be out of the expiry index already.
    fn forget(&mut self, ns: u64, hash: u64, id: u64, garbage: &mut Vec<Space>) {
        if let Some((_, emptied)) = self.take(ns, hash, |s| s.id == id) {
            garbage.extend(emptied);
        }
    }

    /// Removes at most `max` of the entries whose deadline is at or before
    /// `now`, the earliest first, of namespaces that `keep` selects.
    pub(super) fn remove_expired(
        &mut self,
        now: u64,
        max: usize,
        select: Option<&IdSet>,
        garbage: &mut Vec<Space>,
    ) -> usize {
        let mut removed = 0;
        match select {
            None => {
                while removed < max {
                    let Some(first) = self.expiry.first_entry() else {
                        break;
                    };
                    if first.key().0 > now {
                        break;
                    }
                    let ((_, id), (ns, hash)) = first.remove_entry();
                    self.forget(ns, hash, id, garbage);
                    removed += 1;
                }
            }
            Some(select) => {
                let chosen: Vec<_> = self
                    .expiry
                    .range(..(now.saturating_add(1), 0))
                    .filter(|(_, (ns, _))| select.contains(ns))
                    .take(max)
                    .map(|(&at, &to)| (at, to))
                    .collect();
                for (at, (ns, hash)) in chosen {
                    self.expiry.remove(&at);
                    self.forget(ns, hash, at.1, garbage);
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Removes every entry of namespace `ns` here.
    pub(super) fn remove_space(&mut self, ns: u64) -> Option<Space> {
        let space = self.spaces.remove(&ns)?;
        for slot in &space.table {
            self.entries -= 1;
            self.bytes -= slot.key.len() + slot.value.len();
            if let Some(at) = slot.expires_at {
                self.expiry.remove(&(at, slot.id));
            }
        }
        Some(space)
    }

    /// The entry a CLOCK slot points at, if it is still there.
    pub(super) fn slot(&self, (ns, hash, id): (u64, u64, u64)) -> Option<&Slot> {
        self.spaces.get(&ns)?.table.find(hash, |s| s.id == id)
    }

    /// Removes the entry of a CLOCK slot, with its expiry index entry.
    pub(super) fn evict(&mut self, (ns, hash, id): (u64, u64, u64), garbage: &mut Vec<Space>) {
        if let Some((slot, emptied)) = self.take(ns, hash, |s| s.id == id) {
            if let Some(at) = slot.expires_at {
                self.expiry.remove(&(at, slot.id));
            }
            garbage.extend(emptied);
        }
    }
}

/// Aligns a lock to its own cache line pair, so that threads working on
/// neighbouring shards do not invalidate each other's lines.
#[repr(align(128))]
pub(super) struct Padded<T>(pub(super) T);

impl Padded<RwLock<Shard>> {
    pub(super) fn read(&self) -> RwLockReadGuard<'_, Shard> {
        read(&self.0)
    }
    pub(super) fn write(&self) -> RwLockWriteGuard<'_, Shard> {
        write(&self.0)
    }
}

// Nothing under these locks panics short of an allocation failure, which
// aborts; poisoning therefore carries no information and is ignored.
pub(super) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
