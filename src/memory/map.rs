//! The map under a [`MemoryStore`](super::MemoryStore): a tree of namespace
//! nodes, each split into locked shards holding the entries and their
//! expiry index.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::RandomState;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;

use crate::clock::Clock;

/// The most shards a node has (and the number of stats stripes).
pub(super) const MAX_SHARDS: usize = 64;

/// One namespace: its own sharded map and its children.
pub(super) struct Node {
    pub(super) path: Vec<String>,
    pub(super) hasher: RandomState,
    pub(super) shards: Box<[Padded<RwLock<Shard>>]>,
    /// Children are created on first use and kept for the store's lifetime,
    /// so that a namespace's data outlives the handles to it.
    pub(super) children: RwLock<HashMap<String, Arc<Node>>>,
}

impl Node {
    pub(super) fn new(path: Vec<String>) -> Self {
        // Enough shards that two threads rarely meet on one lock, as dashmap
        // sizes its shards; a power of two keeps the index a mask.
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        let shards = (cores * 4).next_power_of_two().clamp(4, MAX_SHARDS);
        Node {
            path,
            hasher: RandomState::new(),
            shards: (0..shards).map(|_| Padded(RwLock::default())).collect(),
            children: RwLock::default(),
        }
    }

    pub(super) fn child(&self, name: &str) -> Arc<Node> {
        if let Some(child) = read(&self.children).get(name) {
            return child.clone();
        }
        write(&self.children)
            .entry(name.to_owned())
            .or_insert_with(|| {
                let mut path = self.path.clone();
                path.push(name.to_owned());
                Arc::new(Node::new(path))
            })
            .clone()
    }

    pub(super) fn for_each_in_subtree(&self, f: &mut dyn FnMut(&Node)) {
        f(self);
        // Collect first: never hold the children lock while visiting, so a
        // concurrent `with_namespace` on a descendant cannot deadlock.
        let children: Vec<Arc<Node>> = read(&self.children).values().cloned().collect();
        for child in children {
            child.for_each_in_subtree(f);
        }
    }
}

#[derive(Default)]
pub(super) struct Shard {
    pub(super) map: HashMap<Arc<str>, Entry>,
    /// `(expires_at, id) -> key` for every entry of `map` that has an
    /// expiry. The id makes index keys unique and cheap to compare: many keys
    /// share a millisecond, and comparing them by name would cost string
    /// comparisons on every insert.
    pub(super) expiry: BTreeMap<(u64, u64), Arc<str>>,
    pub(super) next_id: u64,
    /// The sum of `key.len() + value.len()` over `map`.
    pub(super) bytes: usize,
    /// In a bounded store, the CLOCK ring: every key of `map`, oldest
    /// insertion first, and possibly slots of keys since deleted (skipped
    /// when reached, and compacted away when they outnumber live keys).
    pub(super) ring: VecDeque<Arc<str>>,
}

pub(super) struct Entry {
    pub(super) value: Bytes,
    /// Monotonic milliseconds at which the entry expires, and the entry's id
    /// in the expiry index; `None`: never.
    pub(super) expiry: Option<(u64, u64)>,
    /// In a bounded store, set when the entry is used and cleared when the
    /// CLOCK hand passes it: a second chance before eviction.
    pub(super) referenced: AtomicBool,
}

impl Entry {
    pub(super) fn is_live(&self, now: u64) -> bool {
        self.expiry.is_none_or(|(at, _)| now < at)
    }

    /// [`is_live`](Self::is_live), reading the clock only for an entry that
    /// has an expiry: most reads are of entries without one, and the clock
    /// read was a tenth of a lookup's cost.
    pub(super) fn is_live_on(&self, clock: &Clock) -> bool {
        self.expiry
            .is_none_or(|(at, _)| clock.monotonic_millis() < at)
    }

    pub(super) fn expires_at(&self) -> Option<u64> {
        self.expiry.map(|(at, _)| at)
    }
}

impl Shard {
    /// Indexes `key` under `expires_at`, returning its index position.
    fn index(&mut self, key: Arc<str>, expires_at: Option<u64>) -> Option<(u64, u64)> {
        let at = expires_at?;
        self.next_id += 1;
        self.expiry.insert((at, self.next_id), key);
        Some((at, self.next_id))
    }

    pub(super) fn insert(&mut self, key: &str, value: Bytes, expires_at: Option<u64>) {
        let (key, old) = match self.map.remove_entry(key) {
            Some((key, old)) => {
                self.bytes -= key.len() + old.value.len();
                (key, old.expiry)
            }
            None => (Arc::from(key), None),
        };
        if let Some(old) = old {
            self.expiry.remove(&old);
        }
        let expiry = self.index(key.clone(), expires_at);
        self.bytes += key.len() + value.len();
        let referenced = AtomicBool::new(false);
        self.map.insert(
            key,
            Entry {
                value,
                expiry,
                referenced,
            },
        );
    }

    pub(super) fn renew(&mut self, key: &str, now: u64, new_expiry: u64) -> Option<Bytes> {
        let entry = self.map.get(key)?;
        if !entry.is_live(now) {
            return None;
        }
        let value = entry.value.clone();
        if let Some(old) = entry.expiry
            && let Some(key) = self.expiry.remove(&old)
        {
            let expiry = self.index(key.clone(), Some(new_expiry));
            if let Some(entry) = self.map.get_mut(&*key) {
                entry.expiry = expiry;
            }
        }
        Some(value)
    }

    pub(super) fn remove(&mut self, key: &str) {
        if let Some(entry) = self.map.remove(key) {
            self.bytes -= key.len() + entry.value.len();
            if let Some(old) = entry.expiry {
                self.expiry.remove(&old);
            }
        }
    }

    /// Removes `key`, known to be out of the expiry index already.
    fn forget(&mut self, key: &str) {
        if let Some(entry) = self.map.remove(key) {
            self.bytes -= key.len() + entry.value.len();
        }
    }

    /// Replaces the value of `key` (which must be there), keeping its expiry.
    pub(super) fn replace_value(&mut self, key: &str, value: Bytes) {
        if let Some(entry) = self.map.get_mut(key) {
            self.bytes = self.bytes - entry.value.len() + value.len();
            entry.value = value;
        }
    }

    /// Removes at most `max` of the entries whose deadline is at or before
    /// `now`, the earliest first.
    pub(super) fn remove_expired_at_most(&mut self, now: u64, max: usize) -> usize {
        let mut removed = 0;
        while removed < max {
            let Some(first) = self.expiry.first_entry() else {
                break;
            };
            if first.key().0 > now {
                break;
            }
            let key = first.remove();
            self.forget(&key);
            removed += 1;
        }
        removed
    }

    /// Removes the entries whose deadline is at or before `now`.
    pub(super) fn remove_expired(&mut self, now: u64) -> usize {
        let live = self.expiry.split_off(&(now.saturating_add(1), 0));
        let expired = std::mem::replace(&mut self.expiry, live);
        for key in expired.values() {
            self.forget(key);
        }
        expired.len()
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
