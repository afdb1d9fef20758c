//! The limits of a bounded [`MemoryStore`](super::MemoryStore) and eviction
//! by CLOCK.
//!
//! Every namespace of a root store shares its shards, so a shard's CLOCK
//! ring holds entries of all namespaces in the order they were written:
//! evicting from a shard picks the coldest entries of the whole store that
//! hashed there, whichever namespace they belong to.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::map::{Shard, Space};

/// The limits of a bounded store and its usage, kept in step with every
/// shard's `entries` and `bytes` by [`Bounds::account`].
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
        let entries = shard.entries.wrapping_sub(before.0);
        let bytes = shard.bytes.wrapping_sub(before.1);
        if entries != 0 {
            self.entries.fetch_add(entries, Ordering::Relaxed);
        }
        if bytes != 0 {
            self.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Evicts from `shard` until the store is within bounds or the shard
    /// has nothing left to give but `keep` (the CLOCK slot of the entry just
    /// written): expired entries first, then, unless `expired_only`, by
    /// CLOCK. Returns (expired, evicted); emptied spaces go to `garbage`.
    pub(super) fn evict_from(
        &self,
        shard: &mut Shard,
        now: u64,
        keep: Option<u64>,
        expired_only: bool,
        garbage: &mut Vec<Space>,
    ) -> (u64, u64) {
        let (mut expired, mut evicted) = (0, 0);
        // Every slot is looked at most twice (once to clear its bit), plus
        // the expired entries: then the shard is spent.
        let mut budget = 2 * shard.ring.len() + shard.expiry.len() + 1;
        while self.over() && budget > 0 {
            budget -= 1;
            let before = (shard.entries, shard.bytes);
            if shard.remove_expired(now, 1, None, garbage) == 1 {
                expired += 1;
            } else if expired_only {
                break;
            } else if let Some(slot) = shard.ring.pop_front() {
                match shard.slot(slot) {
                    None => {} // a removed entry's slot
                    Some(_) if Some(slot.2) == keep => shard.ring.push_back(slot),
                    Some(entry) if entry.referenced.swap(false, Ordering::Relaxed) => {
                        shard.ring.push_back(slot);
                    }
                    Some(_) => {
                        shard.evict(slot, garbage);
                        evicted += 1;
                    }
                }
            } else {
                break;
            }
            self.account(before, shard);
        }
        compact(shard);
        (expired, evicted)
    }
}

/// Drops the slots of removed entries once they outnumber the live ones.
/// Entry ids are never reused, so the ring holds no duplicates.
pub(super) fn compact(shard: &mut Shard) {
    if shard.ring.len() > 2 * shard.entries + 64 {
        let mut ring = std::mem::take(&mut shard.ring);
        ring.retain(|&slot| shard.slot(slot).is_some());
        shard.ring = ring;
    }
}
