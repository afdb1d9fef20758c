//! Listing and bulk-writing a Redis/Valkey store's namespace.
//!
//! A listing walks `SCAN cursor MATCH pattern COUNT 1000` from the client,
//! like `delete_all`, and reads each batch's values (`GET`) or sizes
//! (`STRLEN`) and absolute expiries (`PEXPIRETIME`, Redis 7.0 or later, any
//! Valkey) in one pipeline. The pattern narrows what the server returns; the
//! client decodes every key ([`decode_redis_key`]) and keeps only those of
//! the namespaces asked for, so a child namespace whose name matches the
//! glob is never mistaken for a key.
//!
//! Importing writes each batch in one pipeline of `SET key value [PXAT ms]`
//! (Redis 6.2 or later): the absolute expiry is kept exactly, whatever the
//! time the import takes.
//!
//! On a cluster, SCAN walks every primary in turn, and the read and import
//! pipelines are split by slot (a cluster refuses one across slots) and
//! sent at once.

use ::redis::Value;
use bytes::Bytes;

use super::client::Scan;
use super::{MAX_TTL_MILLIS, RedisStore};
use crate::NamespacedStore;
use crate::listing::{Entries, Entry, EntryCursor, ListOptions, importable};
use crate::namespace::{decode_redis_key, redis_key, redis_pattern};
use crate::{Error, Result};

/// Entries per import pipeline.
const IMPORT_BATCH: usize = 1000;

impl RedisStore {
    /// Lists the live entries of this namespace, as `options` say, page by
    /// page in `SCAN` order (see [`Entries`]).
    ///
    /// Needs Redis 7.0 or later (`PEXPIRETIME`), or any Valkey.
    ///
    /// # Errors
    ///
    /// [`Entries::next_page`] fails with
    /// [`Error::NamespaceRequired`] on a store built with `namespace(None)`,
    /// whose keys cannot be told from other programs'.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use kvstores::{ListOptions, RedisStore};
    ///
    /// # async fn example() -> kvstores::Result<()> {
    /// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
    /// let mut listing = store.entries(ListOptions::new().key_prefix("user:"));
    /// while let Some(page) = listing.next_page().await? {
    ///     for entry in page {
    ///         println!("{} ({} bytes)", entry.key, entry.size);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn entries(&self, options: ListOptions) -> Entries {
        let pattern = self.prefix.as_deref().map(|prefix| {
            if options.descendants {
                redis_pattern(prefix)
            } else {
                // The glob of `prefix:escaped-key-prefix`, ending in `*`
                // instead of the `:*` that selects a namespace.
                let mut pattern = redis_pattern(&redis_key(Some(prefix), &options.key_prefix));
                pattern.truncate(pattern.len() - 2);
                pattern.push('*');
                pattern
            }
        });
        Entries::new(ServerCursor {
            store: self.clone(),
            scan: pattern.map(Scan::new),
            options,
        })
    }

    /// Writes `entries` (listed from any store, or read from an export) into
    /// this namespace, each at its namespace path below this one, with its
    /// value and absolute expiry exactly as given (`SET … PXAT`), replacing
    /// what is there. Entries that have already expired are skipped.
    /// Returns how many were written.
    ///
    /// Needs Redis 6.2 or later, or any Valkey. Written in pipelines of a
    /// thousand; not atomic: if one fails, others may have been written.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if an entry has no value, before anything
    /// is written; [`Error::NamespaceRequired`] for an entry of this
    /// namespace itself on a store built with `namespace(None)`; connection
    /// and server errors otherwise.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use kvstores::{Bytes, Entry, RedisStore};
    ///
    /// # async fn example() -> kvstores::Result<()> {
    /// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
    /// let entry = Entry::new("k", Bytes::from_static(b"v"), Some(4_102_444_800_000));
    /// assert_eq!(store.import_entries(vec![entry]).await?, 1);
    /// # Ok(()) }
    /// ```
    pub async fn import_entries(&self, entries: Vec<Entry>) -> Result<usize> {
        let live = importable(entries, crate::Clock::system().unix_millis())?;
        let mut written = 0;
        let mut batch = Vec::with_capacity(IMPORT_BATCH);
        let mut live = live.peekable();
        while live.peek().is_some() {
            batch.clear();
            batch.extend(live.by_ref().take(IMPORT_BATCH));
            let mut keys = Vec::with_capacity(batch.len());
            for entry in &batch {
                let target =
                    (entry.namespace.iter()).fold(self.clone(), |s, n| s.with_namespace(n));
                if target.prefix.is_none() {
                    return Err(Error::NamespaceRequired);
                }
                keys.push(target.key(&entry.key));
            }
            let groups = self.shared.by_slot(&keys);
            let pipelines = groups.into_iter().map(|group| {
                let mut pipe = ::redis::pipe();
                for i in group {
                    let entry = &batch[i];
                    let value = entry.value.as_deref().unwrap_or_default();
                    let cmd = pipe.cmd("SET").arg(&keys[i]).arg(value);
                    if let Some(at) = entry.expires_at {
                        cmd.arg("PXAT").arg(at.min(MAX_TTL_MILLIS));
                    }
                    cmd.ignore();
                }
                pipe
            });
            // Its SETs are safe to apply twice.
            (self.shared)
                .run_all(pipelines.collect(), "SET PXAT")
                .await?;
            written += batch.len();
        }
        Ok(written)
    }
}

/// A Redis/Valkey listing in progress.
struct ServerCursor {
    store: RedisStore,
    /// `None` for a store without a namespace.
    scan: Option<Scan>,
    options: ListOptions,
}

#[async_trait::async_trait]
impl EntryCursor for ServerCursor {
    async fn next_page(&mut self) -> Result<Option<Vec<Entry>>> {
        let Some(scan) = &mut self.scan else {
            return Err(Error::NamespaceRequired);
        };
        // SCAN may return nothing for many calls in a row: go on until a
        // page has entries.
        while let Some(keys) = scan.next_batch(&self.store.shared).await? {
            let page = Self::read(&self.store, &self.options, keys).await?;
            if !page.is_empty() {
                return Ok(Some(page));
            }
        }
        Ok(None)
    }
}

impl ServerCursor {
    /// Decodes the keys SCAN returned, keeps those asked for and reads their
    /// values or sizes and expiries in one pipeline.
    async fn read(
        store: &RedisStore,
        options: &ListOptions,
        keys: Vec<Vec<u8>>,
    ) -> Result<Vec<Entry>> {
        let depth = store.path.len();
        let mut wanted = Vec::with_capacity(keys.len());
        for stored in keys {
            let Ok(stored) = String::from_utf8(stored) else {
                continue;
            };
            let Some((path, key)) = decode_redis_key(&stored) else {
                continue;
            };
            // The pattern matched the escaped prefix; the decoded path must
            // still start with this store's (a glob never sees `%3A`).
            let inside = path.len() >= depth && path[..depth] == store.path[..];
            let level_ok = options.descendants || path.len() == depth;
            if inside && level_ok && key.starts_with(&options.key_prefix) {
                wanted.push((stored, path[depth..].to_vec(), key));
            }
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let read = if options.values { "GET" } else { "STRLEN" };
        let stored: Vec<&str> = wanted.iter().map(|(stored, _, _)| &stored[..]).collect();
        let groups = store.shared.by_slot(&stored);
        let pipelines = groups.iter().map(|group| {
            let mut pipe = ::redis::pipe();
            for &i in group {
                pipe.cmd(read)
                    .arg(stored[i])
                    .cmd("PEXPIRETIME")
                    .arg(stored[i]);
            }
            pipe
        });
        let mut replies = vec![Value::Nil; 2 * wanted.len()];
        let answered = (store.shared)
            .run_all(pipelines.collect(), "GET/PEXPIRETIME")
            .await?;
        for (group, answers) in groups.iter().zip(answered) {
            let mut answers = answers.into_iter();
            for &i in group {
                for reply in &mut replies[2 * i..2 * i + 2] {
                    *reply = answers.next().unwrap_or(Value::Nil);
                }
            }
        }
        let mut page = Vec::with_capacity(wanted.len());
        for ((_, namespace, key), pair) in wanted.into_iter().zip(replies.chunks(2)) {
            let [read, expiry] = pair else { continue };
            let expires_at = match expiry {
                // -1: no expiry; -2 (or anything else): gone since SCAN.
                Value::Int(-1) => None,
                Value::Int(at) if *at >= 0 => Some(at.unsigned_abs()),
                _ => continue,
            };
            let (size, value) = match read {
                Value::BulkString(bytes) => (bytes.len() as u64, Some(Bytes::from(bytes.clone()))),
                Value::Int(len) if !options.values => (len.unsigned_abs(), None),
                _ => continue,
            };
            page.push(Entry {
                namespace,
                key,
                expires_at,
                size,
                value,
            });
        }
        Ok(page)
    }
}

/// The server expires keys by itself, so there is never anything for
/// `delete_expired` to remove.
#[async_trait::async_trait]
impl crate::Maintenance for RedisStore {
    fn stats(&self) -> crate::StoreStats {
        RedisStore::stats(self)
    }

    async fn delete_expired(&self) -> Result<usize> {
        Ok(0)
    }

    fn entries(&self, options: ListOptions) -> Entries {
        RedisStore::entries(self, options)
    }

    async fn import_entries(&self, entries: Vec<Entry>) -> Result<usize> {
        RedisStore::import_entries(self, entries).await
    }
}
