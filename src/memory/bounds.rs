//! The limits of a bounded [`MemoryStore`](super::MemoryStore) and eviction
//! by CLOCK.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::map::Shard;

/// The limits of a bounded store and its usage, kept in step with every
/// shard's `map.len()` and `bytes` by [`MemoryStore::settle`].
pub(super) struct Bounds {
    pub(super) max_entries: usize,
    pub(super) max_bytes: usize,
    pub(super) entries: AtomicUsize,
    pub(super) bytes: AtomicUsize,
}

impl Bounds {
    pub(super) fn over(&self) -> bool {
        self.entries.load(Ordering::Relaxed) > self.max_entries
            || self.bytes.load(Ordering::Relaxed) > self.max_bytes
    }

    /// Adds what `shard` gained or lost since it held `before` (entries,
    /// bytes). Wrapping adds of the differences are exact modulo 2^64.
    pub(super) fn account(&self, before: (usize, usize), shard: &Shard) {
        let entries = shard.map.len().wrapping_sub(before.0);
        let bytes = shard.bytes.wrapping_sub(before.1);
        self.entries.fetch_add(entries, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Evicts from `shard` until the store is within bounds or the shard
    /// has nothing left to give but `keep` (the key just written): expired
    /// entries first, then, unless `expired_only`, by CLOCK. Returns
    /// (expired, evicted).
    pub(super) fn evict_from(
        &self,
        shard: &mut Shard,
        now: u64,
        keep: Option<&str>,
        expired_only: bool,
    ) -> (u64, u64) {
        let (mut expired, mut evicted) = (0, 0);
        // Every slot is looked at most twice (once to clear its bit), plus
        // the expired entries: then the shard is spent.
        let mut budget = 2 * shard.ring.len() + shard.expiry.len() + 1;
        while self.over() && budget > 0 {
            budget -= 1;
            let before = (shard.map.len(), shard.bytes);
            if shard.remove_expired_at_most(now, 1) == 1 {
                expired += 1;
            } else if expired_only {
                break;
            } else if let Some(slot) = shard.ring.pop_front() {
                match shard.map.get(&*slot) {
                    None => {} // a deleted key's slot
                    Some(_) if Some(&*slot) == keep => shard.ring.push_back(slot),
                    Some(entry) if entry.referenced.swap(false, Ordering::Relaxed) => {
                        shard.ring.push_back(slot);
                    }
                    Some(_) => {
                        shard.remove(&slot);
                        evicted += 1;
                    }
                }
            } else {
                break;
            }
            self.account(before, shard);
        }
        if shard.ring.len() > 2 * shard.map.len() + 64 {
            // Drop the slots of deleted keys, and duplicates left by keys
            // deleted and written again.
            let mut seen = std::collections::HashSet::new();
            let map = &shard.map;
            shard
                .ring
                .retain(|key| map.contains_key(key) && seen.insert(key.clone()));
        }
        (expired, evicted)
    }
}
