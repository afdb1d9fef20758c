//! Listing, counting and bulk-writing a `FileStore`'s namespace: what the
//! `kvstores` command and programs use to see and move what a file holds.
//!
//! A namespace and its descendants are one contiguous range of the entries
//! table ([`crate::namespace`]), and the namespace's own keys with a given
//! key prefix a narrower one inside it, so a listing is a range scan. Each
//! page is read in one read transaction on tokio's blocking pool, after
//! the last key of the previous page, so neither an async worker nor the
//! reader thread that serves lookups is held up by a long scan.

use std::ops::Bound;

use bytes::Bytes;
use redb::ReadableDatabase;

use super::FileStore;
use super::db::{blocking, db_error};
use super::tables::{ENTRIES, is_live};
use crate::listing::{Entries, Entry, EntryCursor, ListOptions, importable};
use crate::namespace::{decode_table_key, table_key, table_range_end};
use crate::{Error, Result};

/// Rows read per page (live or not): bounds the time a page holds a read
/// transaction and the memory it takes.
const PAGE: usize = 1000;
/// Writes an import keeps in flight: enough to fill the writer's largest
/// group commit (4,096 writes), so an import costs one commit per few
/// thousand entries.
const IN_FLIGHT: usize = 4096;

/// What a namespace of a file holds, from [`FileStore::usage`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileUsage {
    /// Entries that are live.
    pub live: u64,
    /// Entries that have expired but are still in the file (until
    /// [`FileStore::delete_expired`] removes them).
    pub expired: u64,
    /// Bytes of the live entries' keys and values (as given, without the
    /// namespace encoding).
    pub live_bytes: u64,
    /// The size of the whole database file, in bytes.
    pub file_size: u64,
}

impl FileStore {
    /// Counts the live and expired entries of this namespace and its
    /// descendants and the bytes of the live ones, from one snapshot, and
    /// reads the file's size.
    ///
    /// It reads the whole namespace: time proportional to its size.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Io`] if the file cannot be read.
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::{Bytes, FileStore, Store};
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = FileStore::open(dir.path().join("store.redb"))?;
    /// store.set("key", Bytes::from_static(b"value"), None).await?;
    /// let usage = store.usage().await?;
    /// assert_eq!((usage.live, usage.expired, usage.live_bytes), (1, 0, 8));
    /// assert!(usage.file_size > 0);
    /// # Ok::<_, kvstores::Error>(()) }).unwrap();
    /// ```
    pub async fn usage(&self) -> Result<FileUsage> {
        let db = self.inner.db.clone();
        let prefix = self.prefix.to_vec();
        let now = self.clock.unix_millis();
        let mut usage = blocking(move || {
            db.with(|database| {
                let txn = database.begin_read()?;
                let entries = txn.open_table(ENTRIES)?;
                let end = table_range_end(&prefix);
                let range = (
                    Bound::Included(&prefix[..]),
                    end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
                );
                let mut usage = FileUsage::default();
                for row in entries.range::<&[u8]>(range)? {
                    let (key, entry) = row?;
                    let (at, value) = entry.value();
                    if is_live(at, now) {
                        usage.live += 1;
                        // The stored key minus its namespace segments and tag.
                        let key_len = decode_table_key(key.value()).map_or(0, |(_, k)| k.len());
                        usage.live_bytes += (key_len + value.len()) as u64;
                    } else {
                        usage.expired += 1;
                    }
                }
                Ok(usage)
            })
            .map_err(|e| db_error(&db.path, "read", e))
        })
        .await?;
        usage.file_size = std::fs::metadata(self.path())
            .map_err(|source| Error::Io {
                path: self.path().to_owned(),
                action: "read the size of",
                source,
            })?
            .len();
        Ok(usage)
    }
}

/// The result of a spawned write; a panic in it is resumed here.
fn joined<T>(done: Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    done.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// A `FileStore` listing in progress.
struct FileCursor {
    store: FileStore,
    /// Where the next page starts; `None` once the range is exhausted.
    next: Option<Bound<Vec<u8>>>,
    /// The exclusive end of the range; `None`: the end of the table.
    end: Option<Vec<u8>>,
    options: ListOptions,
}

/// One stored row as a page read it: stored key, expiry, size, value.
type Row = (Vec<u8>, Option<u64>, u64, Option<Bytes>);

#[async_trait::async_trait]
impl EntryCursor for FileCursor {
    async fn next_page(&mut self) -> Result<Option<Vec<Entry>>> {
        // Pages of expired or filtered-out rows give nothing: read on until
        // something is found or the range ends.
        while let Some(start) = self.next.take() {
            let (rows, resume) = self.read_page(start).await?;
            self.next = resume.map(Bound::Excluded);
            let depth = self.store.namespace.len();
            let page: Vec<Entry> = rows
                .into_iter()
                .filter_map(|(stored, expires_at, size, value)| {
                    let (mut namespace, key) = decode_table_key(&stored)?;
                    namespace.drain(..depth);
                    key.starts_with(&self.options.key_prefix).then_some(Entry {
                        namespace,
                        key,
                        expires_at,
                        size,
                        value,
                    })
                })
                .collect();
            if !page.is_empty() {
                return Ok(Some(page));
            }
        }
        Ok(None)
    }
}

impl FileCursor {
    /// Reads up to [`PAGE`] rows from `start`, keeping the live ones, and
    /// returns them with the last key read if the range may go on after it.
    async fn read_page(&self, start: Bound<Vec<u8>>) -> Result<(Vec<Row>, Option<Vec<u8>>)> {
        let db = self.store.inner.db.clone();
        let end = self.end.clone();
        let values = self.options.values;
        let now = self.store.clock.unix_millis();
        blocking(move || {
            db.with(|database| {
                let txn = database.begin_read()?;
                let entries = txn.open_table(ENTRIES)?;
                let range = (
                    start.as_ref().map(|k| &k[..]),
                    end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
                );
                let mut rows = Vec::new();
                for (read, row) in entries.range::<&[u8]>(range)?.enumerate() {
                    let (key, entry) = row?;
                    let (at, value) = entry.value();
                    if is_live(at, now) {
                        let size = value.len() as u64;
                        let value = values.then(|| Bytes::copy_from_slice(value));
                        rows.push((key.value().to_vec(), at, size, value));
                    }
                    if read + 1 == PAGE {
                        // The next page starts after this row, live or not.
                        return Ok((rows, Some(key.value().to_vec())));
                    }
                }
                Ok((rows, None))
            })
            .map_err(|e| db_error(&db.path, "list", e))
        })
        .await
    }
}

#[async_trait::async_trait]
impl crate::Maintenance for FileStore {
    /// What this process has done on this database file, counted for every
    /// handle on it; see [`StoreStats`](crate::StoreStats).
    fn stats(&self) -> crate::StoreStats {
        self.inner.stats.snapshot()
    }

    async fn delete_expired(&self) -> Result<usize> {
        FileStore::delete_expired(self).await
    }

    /// Lists the live entries of this namespace, as `options` say: page by
    /// page, in stored-key order, each entry once.
    ///
    /// Needs a tokio runtime (pages are read on its blocking pool).
    ///
    /// # Example
    ///
    /// See [`Entries::next_page`].
    fn entries(&self, options: ListOptions) -> Entries {
        let prefix = self.prefix.to_vec();
        let start = if options.descendants {
            prefix
        } else {
            // The namespace's own keys starting with the key prefix are
            // exactly the stored keys starting with this.
            table_key(&prefix, &options.key_prefix)
        };
        let end = table_range_end(&start);
        Entries::new(FileCursor {
            store: self.clone(),
            next: Some(Bound::Included(start)),
            end,
            options,
        })
    }

    /// Writes `entries` (listed from any store, or read from an export) into
    /// this namespace, each at its namespace path below this one, with its
    /// value and absolute expiry exactly as given, replacing what is there.
    /// Entries that have already expired are skipped. Returns how many were
    /// written.
    ///
    /// The writes are queued together, so they share the writer's commits;
    /// they are not one transaction: if one fails, others may have been
    /// written.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if an entry has no value (it was listed
    /// without values), before anything is written; the file's errors
    /// otherwise.
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::{Bytes, Entry, FileStore, Maintenance, Store};
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = FileStore::open(dir.path().join("store.redb"))?;
    /// let far = 4_102_444_800_000; // 2100-01-01, in Unix milliseconds
    /// let written = store.import_entries(vec![
    ///     Entry::new("kept", Bytes::from_static(b"v"), Some(far)),
    ///     Entry::new("gone", Bytes::from_static(b"v"), Some(1)), // expired in 1970
    /// ]).await?;
    /// assert_eq!(written, 1);
    /// assert!(store.expires_in("kept").await?.is_some());
    /// # Ok::<_, kvstores::Error>(()) }).unwrap();
    /// ```
    async fn import_entries(&self, entries: Vec<Entry>) -> Result<usize> {
        let entries = importable(entries, self.clock.unix_millis())?;
        let mut tasks = tokio::task::JoinSet::new();
        let mut written = 0;
        for entry in entries {
            let mut prefix = self.prefix.to_vec();
            prefix.extend(crate::namespace::table_prefix(&entry.namespace));
            let key = table_key(&prefix, &entry.key);
            let value = entry.value.unwrap_or_default();
            let at = entry.expires_at;
            let store = self.clone();
            tasks.spawn(async move {
                (store.write(move |tables| Ok(tables.set(&key, &value, at)?))).await
            });
            if tasks.len() >= IN_FLIGHT
                && let Some(done) = tasks.join_next().await
            {
                joined(done)?;
                written += 1;
            }
        }
        while let Some(done) = tasks.join_next().await {
            joined(done)?;
            written += 1;
        }
        Ok(written)
    }
}
