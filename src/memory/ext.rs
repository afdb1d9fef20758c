//! [`AtomicStore`](crate::AtomicStore) and [`BatchStore`](crate::BatchStore)
//! for [`MemoryStore`]: each step under the key's shard write lock.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::MemoryStore;
use crate::Result;
use crate::clock::opt_ttl_millis;
use crate::ext::{add_to_counter, parse_counter};
use crate::stats::Event;

#[async_trait]
impl crate::AtomicStore for MemoryStore {
    async fn increment(&self, key: &str, delta: i64, expires_in: Option<Duration>) -> Result<i64> {
        let ttl = opt_ttl_millis(expires_in, "expires_in")?;
        let now = self.clock.monotonic_millis();
        // Read, check and write under one write lock: that is the atomicity.
        let hash = self.ns.hash(key);
        let (stripe, shard) = self.root.shards.locate(hash);
        let mut shard = shard.write();
        let live = shard.get(&self.ns, hash, key).filter(|e| e.is_live(now));
        let current = parse_counter(live.map(|e| &e.value[..]))?;
        let exists = live.is_some();
        let new = add_to_counter(current, delta)?;
        let value = Bytes::from(new.to_string());
        let before = (shard.entries, shard.bytes);
        let inserted = if exists {
            // An existing counter keeps its expiry: only the value changes.
            shard.replace_value(&self.ns, hash, key, value);
            None
        } else {
            let expires_at = ttl.map(|ms| now.saturating_add(ms));
            Some(shard.insert(&self.ns, hash, key, value, expires_at))
        };
        let garbage = self.settle(stripe, hash, &mut shard, before, inserted);
        drop(shard);
        drop(garbage);
        self.root.stats.add(stripe, Event::Set, 1);
        Ok(new)
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: Bytes,
        expires_in: Option<Duration>,
    ) -> Result<bool> {
        let ttl = opt_ttl_millis(expires_in, "expires_in")?;
        let now = self.clock.monotonic_millis();
        let hash = self.ns.hash(key);
        let (stripe, shard) = self.root.shards.locate(hash);
        let mut shard = shard.write();
        if shard
            .get(&self.ns, hash, key)
            .is_some_and(|e| e.is_live(now))
        {
            return Ok(false);
        }
        let before = (shard.entries, shard.bytes);
        let expires_at = ttl.map(|ms| now.saturating_add(ms));
        let inserted = shard.insert(&self.ns, hash, key, value, expires_at);
        let garbage = self.settle(stripe, hash, &mut shard, before, Some(inserted));
        drop(shard);
        drop(garbage);
        self.root.stats.add(stripe, Event::Set, 1);
        Ok(true)
    }
}

#[async_trait]
impl crate::BatchStore for MemoryStore {
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        let now = self.clock.monotonic_millis();
        Ok(keys
            .iter()
            .map(|key| {
                let hash = self.ns.hash(key);
                let (stripe, shard) = self.root.shards.locate(hash);
                let value = (shard.read().get(&self.ns, hash, key))
                    .filter(|e| e.is_live(now))
                    .map(|e| {
                        self.touch(e);
                        e.value.clone()
                    });
                let event = Event::lookup(&value);
                self.root.stats.add(stripe, event, 1);
                value
            })
            .collect())
    }

    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        expires_in: Option<Duration>,
    ) -> Result<()> {
        let ttl = opt_ttl_millis(expires_in, "expires_in")?;
        let expires_at = ttl.map(|ms| self.clock.monotonic_millis().saturating_add(ms));
        for (key, value) in entries {
            self.set_one(key, value.clone(), expires_at);
        }
        Ok(())
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<()> {
        for key in keys {
            self.delete_one(key);
        }
        Ok(())
    }
}
