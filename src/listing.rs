//! Listing what a namespaced store holds, page by page: the [`Entry`]s
//! that [`Maintenance::entries`](crate::Maintenance::entries) returns, the
//! [`ListOptions`] that choose them, and the [`EntryCursor`] a backend (or a
//! store of your own) implements to list.
//!
//! A listing is a cursor, not a snapshot: each page is read on its own (one
//! read transaction of the file, one `SCAN` call on a server), so a program
//! can walk millions of entries in constant memory while other writers go
//! on. An entry that is live for the whole walk is listed; one written,
//! deleted or expiring meanwhile may or may not be. Expired entries are never
//! listed.

use async_trait::async_trait;
use bytes::Bytes;

use crate::{Error, Result};

/// One live entry, as a listing found it.
///
/// Its namespace path is relative to the store that was listed, so that an
/// entry listed from one store can be written into another (see
/// [`Maintenance::import_entries`](crate::Maintenance::import_entries)), e.g.
/// from a `FileStore`'s root into a Redis store's default namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entry {
    /// The namespace below the listed store's (empty for the store's own
    /// keys).
    pub namespace: Vec<String>,
    /// The key within that namespace.
    pub key: String,
    /// When the entry expires, in milliseconds since the Unix epoch; `None`
    /// for an entry without expiry.
    pub expires_at: Option<u64>,
    /// The value's length in bytes.
    pub size: u64,
    /// The value, when the listing was asked for values
    /// ([`ListOptions::values`]).
    pub value: Option<Bytes>,
}

impl Entry {
    /// An entry of the listed store's own namespace holding `value`.
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::{Bytes, Entry};
    ///
    /// let entry = Entry::new("k", Bytes::from_static(b"v"), None);
    /// assert_eq!((entry.size, entry.namespace.len()), (1, 0));
    /// ```
    pub fn new(key: impl Into<String>, value: Bytes, expires_at: Option<u64>) -> Self {
        Entry {
            namespace: Vec::new(),
            key: key.into(),
            expires_at,
            size: value.len() as u64,
            value: Some(value),
        }
    }
}

/// What every backend's `import_entries` does before writing: refuses the
/// whole batch if an entry has no value (it was listed without
/// [`ListOptions::values`]), so that nothing is written, and leaves out the
/// entries that have expired by `now` (Unix milliseconds).
pub(crate) fn importable(entries: Vec<Entry>, now: u64) -> Result<impl Iterator<Item = Entry>> {
    if entries.iter().any(|e| e.value.is_none()) {
        return Err(Error::invalid_argument(
            "an entry to import has no value: list with ListOptions::values(true)",
        ));
    }
    Ok(entries
        .into_iter()
        .filter(move |e| e.expires_at.is_none_or(|at| now < at)))
}

/// Which entries a listing returns and what it reads of them.
///
/// The default lists the store's own keys (not its child namespaces'), all
/// of them, without values.
///
/// # Example
///
/// ```
/// use kvstores::ListOptions;
///
/// // Everything below the store, values included: what an export reads.
/// let options = ListOptions::new().descendants(true).values(true);
/// // The store's own keys that start with "user:".
/// let options = ListOptions::new().key_prefix("user:");
/// ```
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub(crate) key_prefix: String,
    pub(crate) descendants: bool,
    pub(crate) values: bool,
}

impl ListOptions {
    /// The default options: own keys, no values.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lists only keys that start with `prefix` (in every namespace listed).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Lists the entries of every descendant namespace too.
    pub fn descendants(mut self, descendants: bool) -> Self {
        self.descendants = descendants;
        self
    }

    /// Reads each entry's value into [`Entry::value`].
    pub fn values(mut self, values: bool) -> Self {
        self.values = values;
        self
    }
}

/// The source of a listing's pages: what a backend implements to be listed.
///
/// [`Entries`] wraps one, so a store of your own can be listed (and so
/// exported) by implementing this and
/// [`Maintenance::entries`](crate::Maintenance::entries).
#[async_trait]
pub trait EntryCursor: Send {
    /// Returns the next page of entries, or `None` once the listing is over.
    /// A page may be empty (e.g. a `SCAN` step that matched nothing):
    /// `Entries` skips it. After `None`, `Entries` never asks again.
    ///
    /// # Errors
    ///
    /// The backend's error for a failed read; the listing can be resumed by
    /// calling again.
    async fn next_page(&mut self) -> Result<Option<Vec<Entry>>>;
}

/// A listing in progress: call [`next_page`](Entries::next_page) until it
/// returns `None`.
///
/// A `FileStore` and a `MemoryStore` list in stored-key order (namespace by
/// namespace, keys in byte order), each entry once. A Redis/Valkey listing
/// follows `SCAN`: no order, and a key may be listed twice if the server
/// rehashes meanwhile.
pub struct Entries {
    /// `None` once the listing is over.
    cursor: Option<Box<dyn EntryCursor>>,
}

impl Entries {
    /// A listing that reads its pages from `cursor`.
    pub fn new(cursor: impl EntryCursor + 'static) -> Self {
        Entries {
            cursor: Some(Box::new(cursor)),
        }
    }

    /// A listing with nothing in it.
    pub fn empty() -> Self {
        Entries { cursor: None }
    }

    /// Returns the next page of entries (never an empty one), or `None`
    /// once the listing is over.
    ///
    /// # Errors
    ///
    /// The backend's error for a failed read: [`Error::Database`] or
    /// [`Error::Io`] from a file, [`Error::Connection`] or [`Error::Server`]
    /// from a server. The listing can be resumed by calling again.
    ///
    /// [`Error::Database`]: crate::Error::Database
    /// [`Error::Io`]: crate::Error::Io
    /// [`Error::Connection`]: crate::Error::Connection
    /// [`Error::Server`]: crate::Error::Server
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::{Bytes, FileStore, ListOptions, Maintenance, NamespacedStore, Store};
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = FileStore::open(dir.path().join("store.redb"))?;
    /// store.set("a", Bytes::from_static(b"1"), None).await?;
    /// store.with_namespace("child").set("b", Bytes::from_static(b"22"), None).await?;
    ///
    /// let mut listing = store.entries(ListOptions::new().descendants(true));
    /// let mut found = Vec::new();
    /// while let Some(page) = listing.next_page().await? {
    ///     found.extend(page.into_iter().map(|e| (e.namespace, e.key, e.size)));
    /// }
    /// assert_eq!(found, [
    ///     (vec!["child".to_owned()], "b".to_owned(), 2),
    ///     (vec![], "a".to_owned(), 1),
    /// ]);
    /// # Ok::<_, kvstores::Error>(()) }).unwrap();
    /// ```
    pub async fn next_page(&mut self) -> Result<Option<Vec<Entry>>> {
        while let Some(cursor) = &mut self.cursor {
            match cursor.next_page().await? {
                Some(page) if page.is_empty() => continue,
                Some(page) => return Ok(Some(page)),
                None => self.cursor = None,
            }
        }
        Ok(None)
    }
}

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entries").finish_non_exhaustive()
    }
}
