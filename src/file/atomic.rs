//! `AtomicStore` and `BatchStore` for `FileStore`.
//!
//! Every write here runs on the writer thread inside the write transaction
//! of its group commit. redb runs one write transaction at a time across
//! every process that has the file open, so a read, check and write within
//! one job is atomic against other tasks and processes alike. `get_many`
//! reads all its keys in one read transaction (inline for up to 64 keys,
//! else on the reader thread): a snapshot.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::tables::Fault;
use super::{FileStore, reader};
use crate::clock::opt_ttl_millis;
use crate::namespace::table_key;
use crate::stats::Event;
use crate::{AtomicStore, BatchStore, Result};

#[async_trait]
impl AtomicStore for FileStore {
    async fn increment(&self, key: &str, delta: i64, expires_in: Option<Duration>) -> Result<i64> {
        let ttl = opt_ttl_millis(expires_in, "expires_in")?;
        let now = self.clock.unix_millis();
        let key = self.stored_key(key, &[])?;
        let expires_at = ttl.map(|ms| now.saturating_add(ms));
        let n = (self.write(move |tables| tables.increment(&key, delta, now, expires_at))).await?;
        self.inner.stats.one(Event::Set);
        Ok(n)
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: Bytes,
        expires_in: Option<Duration>,
    ) -> Result<bool> {
        let ttl = opt_ttl_millis(expires_in, "expires_in")?;
        let now = self.clock.unix_millis();
        let key = self.stored_key(key, &value)?;
        let expires_at = ttl.map(|ms| now.saturating_add(ms));
        let stored = (self
            .write(move |tables| Ok(tables.set_if_absent(&key, &value, now, expires_at)?)))
        .await?;
        self.inner.stats.add(0, Event::Set, u64::from(stored));
        Ok(stored)
    }
}

#[async_trait]
impl BatchStore for FileStore {
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.unix_millis();
        let lookups = keys
            .iter()
            .map(|key| reader::Lookup {
                key: table_key(&self.prefix, key),
                now,
                value: true,
            })
            .collect();
        let found = self.inner.reader().get_many(lookups).await?;
        let values: Vec<_> = (found.into_iter())
            .map(|found| found.and_then(|(_, value)| value))
            .collect();
        self.inner.stats.add_lookups(0, &values);
        Ok(values)
    }

    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        expires_in: Option<Duration>,
    ) -> Result<()> {
        let ttl = opt_ttl_millis(expires_in, "expires_in")?;
        if entries.is_empty() {
            return Ok(()); // Not worth a commit.
        }
        let expires_at = ttl.map(|ms| self.clock.unix_millis().saturating_add(ms));
        let count = entries.len() as u64;
        let entries = (entries.iter())
            .map(|(key, value)| Ok((self.stored_key(key, value)?, value.clone())))
            .collect::<Result<Vec<_>>>()?;
        // A value too large for redb after earlier ones were written
        // abandons the transaction; the writer retries the others without
        // this batch, which fails alone.
        self.write(move |tables| {
            for (key, value) in &entries {
                tables.set(key, value, expires_at)?;
            }
            Ok::<_, Fault>(())
        })
        .await?;
        self.inner.stats.add(0, Event::Set, count);
        Ok(())
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let count = keys.len() as u64;
        let keys: Vec<_> = keys
            .iter()
            .map(|key| table_key(&self.prefix, key))
            .collect();
        self.write(move |tables| {
            for key in &keys {
                tables.delete(key)?;
            }
            Ok::<_, Fault>(())
        })
        .await?;
        self.inner.stats.add(0, Event::Delete, count);
        Ok(())
    }
}
