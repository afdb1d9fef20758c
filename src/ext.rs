//! Extension traits: atomic counters and set-if-absent ([`AtomicStore`]),
//! multi-key operations ([`BatchStore`]), and looking after a store
//! ([`Maintenance`]: counters, purging, listing, importing), with
//! [`FullStore`] naming all of them at once.
//!
//! They live beside [`Store`] rather than in it so that a type of your own
//! stays a `Store` by writing the six methods of that trait; every backend of
//! this crate implements every extension, and so do `Arc<S>` and `Box<S>`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::store::BoxFuture;
use crate::{Entries, Entry, Error, ListOptions, Result, Store, StoreStats};

/// Operations that read and write one key as a single atomic step: no other
/// task, thread, process or client sharing the store can come in between.
///
/// This is what rate limiting and session creation need: with `get` then
/// `set`, two workers can both read the same count, or both find a session
/// id free.
///
/// | backend | one atomic step because |
/// | --- | --- |
/// | `MemoryStore` | the key's shard is locked for the whole step |
/// | `FileStore` | the step is one redb write transaction (across processes too) |
/// | `RedisStore`, `ValkeyStore` | the step is one command or one Lua script on the server |
///
/// # Counters
///
/// A counter is an ordinary value holding a signed 64-bit integer in ASCII
/// decimal, the canonical form (`"42"`, `"-7"`, `"0"`: no sign on
/// positives, no leading zeros, no spaces), which is what Redis's `INCRBY`
/// reads and writes. So [`Store::get`] returns `b"42"` on every backend, a
/// counter written by Redis's own `INCR` is one here too, and a value set as
/// `b"10"` can be incremented.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use kvstores::*;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let limits = MemoryStore::new();
/// let window = Some(Duration::from_secs(60));
/// assert_eq!(limits.increment("203.0.113.9", 1, window).await?, 1);
/// assert_eq!(limits.increment("203.0.113.9", 1, window).await?, 2);
///
/// assert!(limits.set_if_absent("session:abc", Bytes::from_static(b"{}"), None).await?);
/// assert!(!limits.set_if_absent("session:abc", Bytes::from_static(b"{}"), None).await?);
/// # Ok::<(), kvstores::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait AtomicStore: Store {
    /// Adds `delta` (which may be negative) to the counter at `key` and
    /// returns the new value. A missing or expired key counts as 0: it is
    /// created holding `delta`.
    ///
    /// `expires_in` applies only when the counter is created; incrementing
    /// an existing counter keeps its expiry as it is (or its lack of one).
    /// That is a fixed window: a limit of "100 per minute" counts from the
    /// first request of the minute, and later requests do not push the end
    /// of the window out.
    ///
    /// The counter is stored as described [above](AtomicStore#counters): ASCII
    /// decimal, readable with [`Store::get`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a zero `expires_in`,
    /// [`Error::NotACounter`] when the key holds a value that is not a
    /// counter (not a canonical decimal `i64`), [`Error::CounterOverflow`]
    /// when the result would overflow an `i64`; nothing is written then. Or the
    /// backend's failure; on Redis/Valkey an increment whose connection
    /// breaks before the reply is not retried (it could count twice), so it
    /// may or may not have been applied.
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::*;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// assert_eq!(store.increment("hits", 5, None).await?, 5);
    /// assert_eq!(store.increment("hits", -2, None).await?, 3);
    /// assert_eq!(store.get("hits", None).await?, Some(Bytes::from_static(b"3")));
    ///
    /// store.set("name", Bytes::from_static(b"alice"), None).await?;
    /// assert!(matches!(store.increment("name", 1, None).await, Err(Error::NotACounter)));
    /// # Ok::<(), kvstores::Error>(()) }).unwrap();
    /// ```
    async fn increment(&self, key: &str, delta: i64, expires_in: Option<Duration>) -> Result<i64>;

    /// Stores `value` under `key` only if the key is missing or expired, and
    /// returns whether it did. An existing live value and its expiry are left
    /// untouched.
    ///
    /// Of any number of concurrent calls on one key, exactly one returns
    /// `true`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a zero `expires_in` (nothing is
    /// written), or the backend's failure; on Redis/Valkey a call whose
    /// connection breaks before the reply is not retried (a retry could
    /// report `false` for its own write), so it may or may not have stored
    /// the value.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use kvstores::*;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let sessions = MemoryStore::new();
    /// let hour = Some(Duration::from_secs(3600));
    /// assert!(sessions.set_if_absent("id-1", Bytes::from_static(b"alice"), hour).await?);
    /// assert!(!sessions.set_if_absent("id-1", Bytes::from_static(b"mallory"), hour).await?);
    /// assert_eq!(sessions.get("id-1", None).await?, Some(Bytes::from_static(b"alice")));
    /// # Ok::<(), kvstores::Error>(()) }).unwrap();
    /// ```
    async fn set_if_absent(
        &self,
        key: &str,
        value: Bytes,
        expires_in: Option<Duration>,
    ) -> Result<bool>;
}

/// Operations on many keys at once, with the semantics of the single-key
/// calls applied to each key, in fewer steps.
///
/// | backend | a batch is |
/// | --- | --- |
/// | `MemoryStore` | each key under its shard's lock: no round trips to save, and no snapshot across keys |
/// | `FileStore` | one read transaction (`get_many`) or one write transaction: a snapshot, all or nothing |
/// | `RedisStore`, `ValkeyStore` | one round trip: `MGET`, `UNLINK`, or `SET`s in one `MULTI`/`EXEC` |
///
/// Keys may repeat; a later `set_many` entry for the same key wins.
///
/// # Example
///
/// ```
/// use kvstores::*;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// store.set_many(&[("a", Bytes::from_static(b"1")), ("b", Bytes::from_static(b"2"))], None).await?;
/// let values = store.get_many(&["a", "missing", "b"]).await?;
/// assert_eq!(values, [Some(Bytes::from_static(b"1")), None, Some(Bytes::from_static(b"2"))]);
///
/// store.delete_many(&["a", "b"]).await?;
/// assert_eq!(store.get_many(&["a", "b"]).await?, [None, None]);
/// # Ok::<(), kvstores::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait BatchStore: Store {
    /// Returns the value of each key, in order: `None` for a missing or
    /// expired one, as [`Store::get`] without renewal.
    ///
    /// # Errors
    ///
    /// The backend's failure; nothing is returned then.
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::*;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// store.set("x", Bytes::from_static(b"1"), None).await?;
    /// assert_eq!(store.get_many(&["x", "y"]).await?, [Some(Bytes::from_static(b"1")), None]);
    /// # Ok::<(), kvstores::Error>(()) }).unwrap();
    /// ```
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>>;

    /// Stores every `(key, value)` of `entries`, each as [`Store::set`] with
    /// the same `expires_in`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a zero `expires_in` (nothing is
    /// written), or the backend's failure. On `FileStore` and Redis/Valkey a
    /// failed batch wrote nothing; `MemoryStore` cannot fail part-way.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use kvstores::*;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let entries = [("a", Bytes::from_static(b"1")), ("b", Bytes::from_static(b"2"))];
    /// store.set_many(&entries, Some(Duration::from_secs(60))).await?;
    /// assert!(store.expires_in("b").await?.is_some());
    /// # Ok::<(), kvstores::Error>(()) }).unwrap();
    /// ```
    async fn set_many(&self, entries: &[(&str, Bytes)], expires_in: Option<Duration>)
    -> Result<()>;

    /// Deletes every key of `keys`; missing keys are not an error.
    ///
    /// # Errors
    ///
    /// The backend's failure.
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::*;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// store.set("a", Bytes::new(), None).await?;
    /// store.delete_many(&["a", "never-set"]).await?;
    /// assert!(!store.exists("a").await?);
    /// # Ok::<(), kvstores::Error>(()) }).unwrap();
    /// ```
    async fn delete_many(&self, keys: &[&str]) -> Result<()>;
}

/// Looking after a store: its counters, removing what has expired, and
/// listing and importing its entries (what the `kvstores` command, exports
/// and backups use).
///
/// Every backend implements it; a store of your own can too, and is then
/// listed, exported and imported like the built-in ones.
///
/// | backend | `delete_expired` | `entries` |
/// | --- | --- | --- |
/// | `MemoryStore` | walks the expiry index of the namespace's subtree | a snapshot of the subtree taken at the first page, in stored-key order |
/// | `FileStore` | reads only what has expired, from the expiry index | a range scan, one read transaction per page, in stored-key order |
/// | `RedisStore`, `ValkeyStore` | nothing to do: the server expires keys itself, so it returns 0 | `SCAN` pages, in no order |
///
/// # Example
///
/// ```
/// use kvstores::prelude::*;
/// use kvstores::{Bytes, ListOptions, MemoryStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// store.with_namespace("users").set("alice", Bytes::from_static(b"1"), None).await?;
///
/// let mut listing = store.entries(ListOptions::new().descendants(true).values(true));
/// let page = listing.next_page().await?.unwrap();
/// assert_eq!((page[0].namespace.as_slice(), page[0].key.as_str()), (&["users".to_owned()][..], "alice"));
///
/// let copy = MemoryStore::new();
/// assert_eq!(copy.import_entries(page).await?, 1);
/// assert!(copy.with_namespace("users").exists("alice").await?);
/// assert_eq!(Maintenance::stats(&copy).sets, 1);
/// # Ok::<(), kvstores::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait Maintenance: Store {
    /// The store's operation counters (see [`StoreStats`] for what each
    /// counts and what a root store shares with its namespaces).
    fn stats(&self) -> StoreStats;

    /// Removes the expired entries of this namespace and of its descendants
    /// that are still stored, and returns how many it removed. Expired
    /// entries are never returned by any read, so this only gives their
    /// space back; a store that expires by itself (Redis, Valkey) returns 0.
    ///
    /// # Errors
    ///
    /// The backend's failure; what was removed before it stays removed.
    async fn delete_expired(&self) -> Result<usize>;

    /// Lists the live entries of this namespace, as `options` say, page by
    /// page (see [`Entries`] for the order and what a listing sees of
    /// concurrent writes).
    fn entries(&self, options: ListOptions) -> Entries;

    /// Writes `entries` (listed from any store, or read from an export)
    /// into this namespace, each at its namespace path below this one, with
    /// its value and absolute expiry exactly as given, replacing what is
    /// there. Entries that have already expired are skipped. Returns how
    /// many were written.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if an entry has no value (it was listed
    /// without [`ListOptions::values`]), before anything is written; the
    /// backend's failure otherwise, after which some entries may have been
    /// written.
    async fn import_entries(&self, entries: Vec<Entry>) -> Result<usize>;
}

/// Every ability of a kvstores backend in one trait object:
/// [`Store`] with [`AtomicStore`], [`BatchStore`] and [`Maintenance`].
///
/// It is implemented for every type that implements the four, so each
/// backend is one, and so is a store of your own that implements them.
/// This is what [`StoreRegistry::get_full`](crate::StoreRegistry::get_full)
/// hands out, and what a rate limiter or a session store takes: an
/// `Arc<dyn FullStore>` can count and create atomically, and still goes
/// wherever an `Arc<dyn Store>` is wanted (trait upcasting).
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use kvstores::{FullStore, MemoryStore, Store};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let full: Arc<dyn FullStore> = Arc::new(MemoryStore::new());
/// assert_eq!(full.increment("hits", 1, None).await?, 1);
/// let plain: Arc<dyn Store> = full; // the same store, as a plain Store
/// assert!(plain.exists("hits").await?);
/// # Ok::<(), kvstores::Error>(()) }).unwrap();
/// ```
pub trait FullStore: AtomicStore + BatchStore + Maintenance {}

impl<S: AtomicStore + BatchStore + Maintenance + ?Sized> FullStore for S {}

// Forwarded by hand, like `Store`'s (see `src/store.rs`): the inner store's
// boxed future is handed back, not boxed again.
macro_rules! forward_ext {
    ($($ptr:ident),*) => {$(
        impl<S: AtomicStore + ?Sized> AtomicStore for $ptr<S> {
            fn increment<'a, 'b, 'f>(&'a self, key: &'b str, delta: i64, expires_in: Option<Duration>) -> BoxFuture<'f, Result<i64>>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).increment(key, delta, expires_in)
            }
            fn set_if_absent<'a, 'b, 'f>(&'a self, key: &'b str, value: Bytes, expires_in: Option<Duration>) -> BoxFuture<'f, Result<bool>>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).set_if_absent(key, value, expires_in)
            }
        }

        impl<S: BatchStore + ?Sized> BatchStore for $ptr<S> {
            fn get_many<'a, 'b, 'c, 'f>(&'a self, keys: &'b [&'c str]) -> BoxFuture<'f, Result<Vec<Option<Bytes>>>>
            where 'a: 'f, 'b: 'f, 'c: 'f, Self: 'f {
                (**self).get_many(keys)
            }
            fn set_many<'a, 'b, 'c, 'f>(&'a self, entries: &'b [(&'c str, Bytes)], expires_in: Option<Duration>) -> BoxFuture<'f, Result<()>>
            where 'a: 'f, 'b: 'f, 'c: 'f, Self: 'f {
                (**self).set_many(entries, expires_in)
            }
            fn delete_many<'a, 'b, 'c, 'f>(&'a self, keys: &'b [&'c str]) -> BoxFuture<'f, Result<()>>
            where 'a: 'f, 'b: 'f, 'c: 'f, Self: 'f {
                (**self).delete_many(keys)
            }
        }

        impl<S: Maintenance + ?Sized> Maintenance for $ptr<S> {
            fn stats(&self) -> StoreStats {
                (**self).stats()
            }
            fn delete_expired<'a, 'f>(&'a self) -> BoxFuture<'f, Result<usize>>
            where 'a: 'f, Self: 'f {
                (**self).delete_expired()
            }
            fn entries(&self, options: ListOptions) -> Entries {
                (**self).entries(options)
            }
            fn import_entries<'a, 'f>(&'a self, entries: Vec<Entry>) -> BoxFuture<'f, Result<usize>>
            where 'a: 'f, Self: 'f {
                (**self).import_entries(entries)
            }
        }
    )*};
}

forward_ext!(Arc, Box);

/// Reads a stored counter: `None` (a missing or expired key) is 0.
///
/// Only the canonical decimal form is a counter, as for Redis's `INCRBY`,
/// so that every backend accepts and refuses the same values.
#[cfg_attr(not(any(feature = "memory", feature = "file")), allow(dead_code))]
pub(crate) fn parse_counter(value: Option<&[u8]>) -> Result<i64> {
    let Some(bytes) = value else { return Ok(0) };
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .filter(|n| n.to_string().as_bytes() == bytes)
        .ok_or_else(not_a_counter)
}

/// `current + delta`, refused rather than wrapped on overflow.
#[cfg_attr(not(any(feature = "memory", feature = "file")), allow(dead_code))]
pub(crate) fn add_to_counter(current: i64, delta: i64) -> Result<i64> {
    current.checked_add(delta).ok_or(Error::CounterOverflow {
        value: current,
        delta,
    })
}

pub(crate) fn not_a_counter() -> Error {
    Error::NotACounter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_canonical_decimal_form_is_a_counter() {
        assert_eq!(parse_counter(None).unwrap(), 0);
        for ok in [
            "0",
            "42",
            "-7",
            "9223372036854775807",
            "-9223372036854775808",
        ] {
            assert_eq!(parse_counter(Some(ok.as_bytes())).unwrap().to_string(), ok);
        }
        for bad in [
            "",
            "+1",
            "01",
            "-0",
            " 1",
            "1 ",
            "1.0",
            "x",
            "9223372036854775808",
        ] {
            assert!(parse_counter(Some(bad.as_bytes())).is_err(), "{bad:?}");
        }
        assert!(add_to_counter(i64::MAX, 1).is_err());
        assert_eq!(add_to_counter(-1, 1).unwrap(), 0);
    }
}
