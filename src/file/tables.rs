//! The persisted layout of a `FileStore` database (format version 1) and the
//! reads and writes on it.
//!
//! # Layout
//!
//! Three redb tables, named so that they cannot be mistaken for another
//! program's:
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `kvstores.meta` | `&str` | `u64` |
//! | `kvstores.entries` | stored key (`&[u8]`) | `(Option<u64>, &[u8])`: expiry, value |
//! | `kvstores.expiry` | `(u64, &[u8])`: expiry, stored key | `()` |
//!
//! - `kvstores.meta` holds `"format" => 1`. A database without it is not a
//!   kvstores database and is refused (unless it holds no table at all).
//! - A stored key is the table form of [`crate::namespace`]: a namespace and
//!   its descendants are one contiguous key range.
//! - An expiry is a wall-clock time in milliseconds since the Unix epoch; an
//!   entry is live while `now < expiry`. `None`: the entry never expires.
//!
//! The invariant every write keeps, in one transaction: `kvstores.expiry`
//! holds `(at, key)` exactly when `kvstores.entries` maps `key` to
//! `(Some(at), _)`. The expiry index sorts by time first, so the expired
//! entries are a prefix of it and `delete_expired` reads nothing else.

use std::ops::Bound;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redb::{
    Durability, ReadTransaction, ReadableTable, StorageError, Table, TableDefinition, TableHandle,
    WriteTransaction,
};

use crate::Error;
use crate::ext::{add_to_counter, parse_counter};

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("kvstores.meta");
pub(super) const ENTRIES: TableDefinition<&[u8], (Option<u64>, &[u8])> =
    TableDefinition::new("kvstores.entries");
/// [`ENTRIES`] as a read transaction opens it.
pub(super) type EntriesTable = redb::ReadOnlyTable<&'static [u8], (Option<u64>, &'static [u8])>;
pub(super) const EXPIRY: TableDefinition<(u64, &[u8]), ()> =
    TableDefinition::new("kvstores.expiry");

/// The most bytes of stored key and value one entry may have: redb refuses
/// values over 3 GiB, and the entry's value and the expiry index's key add a
/// few bytes of their own to what is given.
pub(super) const MAX_ENTRY: usize = (3 << 30) - 64;

/// A result carrying any of redb's errors.
pub(super) type DbResult<T> = Result<T, redb::Error>;

const FORMAT_KEY: &str = "format";
/// The layout described above. A database of another version is refused.
pub(super) const FORMAT_VERSION: u64 = 1;

/// What a database holds, as far as opening it is concerned.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Format {
    /// A kvstores database of this version.
    Current,
    /// No table at all: a new database, ready to be initialized.
    Empty,
    /// A kvstores database of another format version.
    Version(u64),
    /// A redb database of some other program.
    Foreign,
}

/// Reads the format marker through any transaction that can read.
pub(super) fn read_format(txn: &ReadTransaction) -> DbResult<Format> {
    match txn.open_table(META) {
        Ok(meta) => Ok(format_of(meta.get(FORMAT_KEY)?.map(|v| v.value()))),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(if txn.list_tables()?.next().is_none() {
            Format::Empty
        } else {
            Format::Foreign
        }),
        Err(e) => Err(e.into()),
    }
}

fn format_of(version: Option<u64>) -> Format {
    match version {
        Some(FORMAT_VERSION) => Format::Current,
        Some(other) => Format::Version(other),
        None => Format::Foreign,
    }
}

/// Initializes an empty database in `txn`, or reports what it holds instead.
/// Re-checks inside the write transaction, because another process may have
/// initialized the file since it was last read.
pub(super) fn initialize(txn: &WriteTransaction) -> DbResult<Format> {
    let existing = txn.list_tables()?.any(|t| t.name() == META.name());
    if existing {
        let meta = txn.open_table(META)?;
        return Ok(format_of(meta.get(FORMAT_KEY)?.map(|v| v.value())));
    }
    if txn.list_tables()?.next().is_some() {
        return Ok(Format::Foreign);
    }
    txn.open_table(META)?.insert(FORMAT_KEY, FORMAT_VERSION)?;
    txn.open_table(ENTRIES)?;
    txn.open_table(EXPIRY)?;
    Ok(Format::Current)
}

/// Why a write did not complete inside its transaction.
pub(super) enum Fault {
    /// Refused for its own caller before it wrote anything (not a counter,
    /// an overflow): the rest of the batch goes on.
    Refused(Error),
    /// redb failed. A value too large fails its own caller alone (the
    /// transaction is abandoned and retried without it); any other error
    /// fails the whole batch.
    Storage(StorageError),
}

impl From<StorageError> for Fault {
    fn from(e: StorageError) -> Self {
        Fault::Storage(e)
    }
}

/// Whether an entry with expiry `expires_at` is live at `now`.
pub(super) fn is_live(expires_at: Option<u64>, now: u64) -> bool {
    expires_at.is_none_or(|at| now < at)
}

/// Both tables, open in one write transaction; every method keeps the
/// invariant in the module docs.
pub(super) struct Tables<'txn> {
    entries: Table<'txn, &'static [u8], (Option<u64>, &'static [u8])>,
    expiry: Table<'txn, (u64, &'static [u8]), ()>,
}

impl<'txn> Tables<'txn> {
    pub(super) fn open(txn: &'txn WriteTransaction) -> DbResult<Self> {
        Ok(Tables {
            entries: txn.open_table(ENTRIES)?,
            expiry: txn.open_table(EXPIRY)?,
        })
    }

    /// Stores `value` under `key`, replacing its value and expiry.
    ///
    /// The entry is written first: a value too large for redb is refused
    /// there, before anything has changed.
    pub(super) fn set(
        &mut self,
        key: &[u8],
        value: &[u8],
        expires_at: Option<u64>,
    ) -> Result<(), StorageError> {
        let old = self
            .entries
            .insert(key, (expires_at, value))?
            .and_then(|old| old.value().0);
        if let Some(old) = old {
            self.expiry.remove((old, key))?;
        }
        if let Some(at) = expires_at {
            self.expiry.insert((at, key), ())?;
        }
        Ok(())
    }

    /// The entry at `key` if it is live at `now`: its expiry and value.
    pub(super) fn get_live(
        &self,
        key: &[u8],
        now: u64,
    ) -> Result<Option<(Option<u64>, Bytes)>, StorageError> {
        Ok(self.entries.get(key)?.and_then(|entry| {
            let (at, value) = entry.value();
            is_live(at, now).then(|| (at, Bytes::copy_from_slice(value)))
        }))
    }

    /// Adds `delta` to the counter at `key` (a missing or expired entry
    /// counts as 0) and returns the new value. An existing counter keeps its
    /// expiry; a new one gets `expires_at`. A value that is not a counter,
    /// or an overflow, refuses the write before anything changes.
    pub(super) fn increment(
        &mut self,
        key: &[u8],
        delta: i64,
        now: u64,
        expires_at: Option<u64>,
    ) -> Result<i64, Fault> {
        let live = self.get_live(key, now)?;
        let new = parse_counter(live.as_ref().map(|(_, v)| &v[..]))
            .and_then(|current| add_to_counter(current, delta))
            .map_err(Fault::Refused)?;
        let at = live.map_or(expires_at, |(at, _)| at);
        self.set(key, new.to_string().as_bytes(), at)?;
        Ok(new)
    }

    /// Stores `value` unless `key` holds a live entry; returns whether it did.
    pub(super) fn set_if_absent(
        &mut self,
        key: &[u8],
        value: &[u8],
        now: u64,
        expires_at: Option<u64>,
    ) -> Result<bool, StorageError> {
        if self.get_live(key, now)?.is_some() {
            return Ok(false);
        }
        self.set(key, value, expires_at)?;
        Ok(true)
    }

    pub(super) fn delete(&mut self, key: &[u8]) -> Result<(), StorageError> {
        let old = self.entries.remove(key)?.and_then(|old| old.value().0);
        if let Some(old) = old {
            self.expiry.remove((old, key))?;
        }
        Ok(())
    }

    /// Reads `key` and, if it is live and has an expiry, moves that expiry to
    /// `expires_at`. Returns the value if it was live.
    pub(super) fn renew(
        &mut self,
        key: &[u8],
        now: u64,
        expires_at: u64,
    ) -> Result<Option<Bytes>, StorageError> {
        let (old, value) = match self.entries.get(key)? {
            Some(entry) => {
                let (at, value) = entry.value();
                (at, Bytes::copy_from_slice(value))
            }
            None => return Ok(None),
        };
        if !is_live(old, now) {
            return Ok(None);
        }
        if let Some(old) = old {
            self.entries.insert(key, (Some(expires_at), &value[..]))?;
            self.expiry.remove((old, key))?;
            self.expiry.insert((expires_at, key), ())?;
        }
        Ok(Some(value))
    }

    /// Deletes every entry whose stored key starts with `prefix`: one key
    /// range of the entries table, plus the index entries of those that
    /// expire.
    pub(super) fn delete_range(&mut self, prefix: &[u8]) -> Result<(), StorageError> {
        let end = crate::namespace::table_range_end(prefix);
        let range: (Bound<&[u8]>, Bound<&[u8]>) = (
            Bound::Included(prefix),
            end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
        );
        let mut indexed = Vec::new();
        for removed in self
            .entries
            .extract_from_if::<&[u8], _>(range, |_, _| true)?
        {
            let (key, entry) = removed?;
            if let Some(at) = entry.value().0 {
                indexed.push((at, key.value().to_vec()));
            }
        }
        for (at, key) in indexed {
            self.expiry.remove((at, &key[..]))?;
        }
        Ok(())
    }

    /// Deletes at most `max` of the entries under `prefix` whose expiry is
    /// at or before `now`, the earliest first, reading the expiry index
    /// after `after` (the position a previous chunk returned), and stops
    /// early once it has spent `budget` deleting. Returns how many it
    /// deleted, and where the next chunk starts, or `None` once the expired
    /// part of the index has been read.
    ///
    /// It reads at most `4 * max` index rows, so that a namespace with few
    /// expired entries among many of other namespaces (the index is ordered
    /// by time, not by namespace) still gets chunks of bounded cost.
    pub(super) fn delete_expired_chunk(
        &mut self,
        prefix: &[u8],
        now: u64,
        after: Option<&Position>,
        max: usize,
        budget: Duration,
    ) -> Result<(usize, Option<Position>), StorageError> {
        let started = Instant::now();
        let upper = Bound::Excluded((now.saturating_add(1), &b""[..]));
        let lower = after.map_or(Bound::Unbounded, |(at, key)| {
            Bound::Excluded((*at, &key[..]))
        });
        let mut expired = Vec::new();
        let mut last = None;
        for (read, index) in self.expiry.range((lower, upper))?.enumerate() {
            let (index, _) = index?;
            let (at, key) = index.value();
            if key.starts_with(prefix) {
                expired.push((at, key.to_vec()));
            }
            if expired.len() == max || read + 1 == 4 * max {
                last = Some((at, key.to_vec()));
                break;
            }
        }
        for (i, (at, key)) in expired.iter().enumerate() {
            self.expiry.remove((*at, &key[..]))?;
            self.entries.remove(&key[..])?;
            // Out of time: the next chunk starts after this entry.
            if i + 1 < expired.len() && (i + 1) % 32 == 0 && started.elapsed() >= budget {
                return Ok((i + 1, Some((*at, key.clone()))));
            }
        }
        Ok((expired.len(), last))
    }
}

/// A position in the expiry index: an expiry and a stored key.
pub(super) type Position = (u64, Vec<u8>);

/// Copies every entry of `from` into the new database `to`, committing every
/// `BATCH` entries so that a large copy never builds one huge transaction.
/// Only the last commit is durable: until it, `to` is not worth keeping.
pub(super) fn copy_all(from: &ReadTransaction, to: &redb::Database) -> DbResult<()> {
    const BATCH: usize = 10_000;
    let source = from.open_table(ENTRIES)?;
    let mut rows = source.iter()?.peekable();
    let mut txn = to.begin_write()?;
    initialize(&txn)?;
    loop {
        {
            let mut tables = Tables::open(&txn)?;
            for row in rows.by_ref().take(BATCH) {
                let (key, entry) = row?;
                let (at, value) = entry.value();
                tables.set(key.value(), value, at)?;
            }
        }
        if rows.peek().is_none() {
            txn.commit()?;
            return Ok(());
        }
        txn.set_durability(Durability::None)?;
        txn.commit()?;
        txn = to.begin_write()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks that run out of time at once still remove every expired
    /// entry of the prefix, each exactly once, and nothing else.
    #[test]
    fn chunks_cut_short_by_time_resume_where_they_stopped() {
        let dir = tempfile::TempDir::new().unwrap();
        let db = redb::Database::create(dir.path().join("t.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        initialize(&txn).unwrap();
        {
            let mut tables = Tables::open(&txn).unwrap();
            for i in 0..1_000u64 {
                // Interleaved in the index: `a` and `b` expire at the same times.
                tables
                    .set(format!("a{i}").as_bytes(), b"v", Some(i))
                    .unwrap();
                tables
                    .set(format!("b{i}").as_bytes(), b"v", Some(i))
                    .unwrap();
            }
            tables.set(b"a-live", b"v", Some(5_000)).unwrap();
            tables.set(b"a-forever", b"v", None).unwrap();

            let (mut removed, mut after, mut chunks) = (0, None, 0);
            loop {
                let (n, next) = tables
                    .delete_expired_chunk(b"a", 2_000, after.as_ref(), 10_000, Duration::ZERO)
                    .unwrap();
                removed += n;
                chunks += 1;
                match next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            assert_eq!(removed, 1_000);
            // Out of time after every 32 removals.
            assert!(chunks >= 1_000 / 32, "{chunks} chunks");
            for i in 0..1_000u64 {
                assert!(
                    tables
                        .entries
                        .get(format!("a{i}").as_bytes())
                        .unwrap()
                        .is_none()
                );
                assert!(
                    tables
                        .entries
                        .get(format!("b{i}").as_bytes())
                        .unwrap()
                        .is_some()
                );
            }
            assert!(tables.entries.get(&b"a-live"[..]).unwrap().is_some());
            assert!(tables.entries.get(&b"a-forever"[..]).unwrap().is_some());
            // The index keeps `b`'s entries and the live one only.
            assert_eq!(
                redb::ReadableTableMetadata::len(&tables.expiry).unwrap(),
                1_001
            );
        }
        txn.commit().unwrap();
    }
}
