//! The [`Store`] trait: the contract every backend keeps.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::Result;

/// An asynchronous key/value store with per-key expiry.
///
/// This is the whole contract; every backend in this crate keeps it to the
/// letter and runs the same behaviour suite (`tests/suite/`) to prove it.
///
/// - Keys are any `&str`: the empty string, `:`, `*`, `?`, `[`, `\`, `/`,
///   `..`, NUL and non-ASCII are all ordinary keys.
/// - Values are [`Bytes`]; a `get` returns a cheap clone, never a copy that
///   the caller must free.
/// - Expiry has millisecond precision: a duration is truncated to whole
///   milliseconds, and one shorter than a millisecond counts as one. A zero
///   duration is refused with [`Error::InvalidArgument`](crate::Error) and
///   nothing is read or written.
/// - An expired value is never returned by any method, even before the
///   backend has physically removed it.
///
/// The trait is object safe: `Arc<dyn Store>` and `Box<dyn Store>` work, and
/// `Arc<S>` / `Box<S>` are stores whenever `S` is. Richer operations live in
/// other traits so that implementing `Store` for a type of your own means
/// writing exactly these six methods.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use kvstores::{Bytes, MemoryStore, Store};
///
/// # tokio_test_block_on(async {
/// let store = MemoryStore::new();
/// store.set("greeting", Bytes::from_static(b"hello"), None).await?;
/// assert_eq!(store.get("greeting", None).await?, Some(Bytes::from_static(b"hello")));
///
/// store.set("session", Bytes::from_static(b"{}"), Some(Duration::from_secs(60))).await?;
/// let left = store.expires_in("session").await?.unwrap();
/// assert!(left <= Duration::from_secs(60));
/// # Ok::<(), kvstores::Error>(()) }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[async_trait]
pub trait Store: Send + Sync {
    /// Stores `value` under `key`, replacing any value and expiry it had.
    ///
    /// `expires_in: None` stores it without expiry; `Some(d)` makes it expire
    /// `d` from now.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a zero
    /// `expires_in` (nothing is written), or the backend's failure.
    async fn set(&self, key: &str, value: Bytes, expires_in: Option<Duration>) -> Result<()>;

    /// Returns the value of `key`, or `None` if it is missing or expired.
    ///
    /// With `renew_for: Some(d)`, a key that has an expiry gets a new one,
    /// `d` from now (longer or shorter than before), atomically with the read.
    /// A key without expiry is just read: renewing never adds an expiry.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a zero
    /// `renew_for`, or the backend's failure.
    async fn get(&self, key: &str, renew_for: Option<Duration>) -> Result<Option<Bytes>>;

    /// Deletes `key`. Deleting a missing key is not an error.
    ///
    /// # Errors
    ///
    /// The backend's failure.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Deletes every key of this store's namespace and of all namespaces
    /// below it, and nothing else: not a parent's keys, not a sibling's, not
    /// keys of other programs sharing the same server.
    ///
    /// # Errors
    ///
    /// [`Error::NamespaceRequired`](crate::Error::NamespaceRequired) from a
    /// Redis/Valkey store built without a namespace (it then deletes
    /// nothing), or the backend's failure.
    async fn delete_all(&self) -> Result<()>;

    /// Returns whether `key` holds a live value: `false` when it is missing
    /// or expired.
    ///
    /// # Errors
    ///
    /// The backend's failure.
    async fn exists(&self, key: &str) -> Result<bool>;

    /// Returns how long `key` has left to live.
    ///
    /// `Some(remaining)` for a live key with an expiry, where remaining is
    /// more than zero and at most what was last set; `None` for a missing or
    /// expired key and for a key without expiry.
    ///
    /// # Errors
    ///
    /// The backend's failure.
    async fn expires_in(&self, key: &str) -> Result<Option<Duration>>;
}

/// A store that can hand out stores for child namespaces of its own.
///
/// A child shares the parent's backend (the same map, database file or
/// connection) but sees only its own keys; only
/// [`delete_all`](Store::delete_all) on a parent reaches its children. How a
/// namespace path and key become what the backend stores is documented in
/// [`crate::namespace`].
///
/// # Example
///
/// ```
/// use kvstores::{Bytes, MemoryStore, NamespacedStore, Store};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let root = MemoryStore::new();
/// let sessions = root.with_namespace("sessions");
/// sessions.set("id", Bytes::from_static(b"alice"), None).await?;
/// assert!(!root.exists("id").await?);
///
/// root.delete_all().await?; // reaches the child
/// assert!(!sessions.exists("id").await?);
/// # Ok::<(), kvstores::Error>(()) }).unwrap();
/// ```
pub trait NamespacedStore: Store + Sized {
    /// Returns a store for the child namespace `namespace` of this one.
    ///
    /// Any string is a valid name, including the empty string and names
    /// containing separators or glob characters.
    fn with_namespace(&self, namespace: &str) -> Self;
}

/// The future every `async-trait` method returns.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

// `Arc<S>` and `Box<S>` forward each call by handing back the inner store's
// own boxed future, written out rather than with `#[async_trait]`, which
// would box a second future around it: one allocation more on every call
// through an `Arc<dyn Store>` (the registry's and the web layers' handle).
macro_rules! forward_store {
    ($($ptr:ident),*) => {$(
        impl<S: Store + ?Sized> Store for $ptr<S> {
            fn set<'a, 'b, 'f>(&'a self, key: &'b str, value: Bytes, expires_in: Option<Duration>) -> BoxFuture<'f, Result<()>>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).set(key, value, expires_in)
            }
            fn get<'a, 'b, 'f>(&'a self, key: &'b str, renew_for: Option<Duration>) -> BoxFuture<'f, Result<Option<Bytes>>>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).get(key, renew_for)
            }
            fn delete<'a, 'b, 'f>(&'a self, key: &'b str) -> BoxFuture<'f, Result<()>>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).delete(key)
            }
            fn delete_all<'a, 'f>(&'a self) -> BoxFuture<'f, Result<()>>
            where 'a: 'f, Self: 'f {
                (**self).delete_all()
            }
            fn exists<'a, 'b, 'f>(&'a self, key: &'b str) -> BoxFuture<'f, Result<bool>>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).exists(key)
            }
            fn expires_in<'a, 'b, 'f>(&'a self, key: &'b str) -> BoxFuture<'f, Result<Option<Duration>>>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).expires_in(key)
            }
        }
    )*};
}

forward_store!(Arc, Box);
