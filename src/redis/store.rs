//! The public face of the shared implementation: one generic store type,
//! named [`RedisStore`] or [`ValkeyStore`] by the server kind it is for.
//!
//! The two differ only in their default URL and the names in messages, so
//! they are one type, [`ServerStore`], with a marker for the kind; each name
//! is an alias under its own cargo feature.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use ::redis::aio::ConnectionManager;
use bytes::Bytes;

use super::options::Options;
use super::{Core, DEFAULT_NAMESPACE};
use crate::Result;

mod sealed {
    pub trait Sealed {}
}

/// The kind of server a [`ServerStore`] is for: [`Redis`] or [`Valkey`].
///
/// Sealed: the kind only chooses defaults and wording, never behaviour.
pub trait ServerKind: sealed::Sealed + Send + Sync + 'static {
    /// The server's name in messages and `Debug` (`"Redis"`).
    const NAME: &'static str;
    /// The URL of such a server on this machine's default port.
    const DEFAULT_URL: &'static str;
}

/// Marks a store for a Redis server. See [`RedisStore`].
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[derive(Debug)]
pub enum Redis {}

#[cfg(feature = "redis")]
impl sealed::Sealed for Redis {}
#[cfg(feature = "redis")]
impl ServerKind for Redis {
    const NAME: &'static str = "Redis";
    const DEFAULT_URL: &'static str = "redis://127.0.0.1:6379";
}

/// Marks a store for a Valkey server. See [`ValkeyStore`].
#[cfg(feature = "valkey")]
#[cfg_attr(docsrs, doc(cfg(feature = "valkey")))]
#[derive(Debug)]
pub enum Valkey {}

#[cfg(feature = "valkey")]
impl sealed::Sealed for Valkey {}
#[cfg(feature = "valkey")]
impl ServerKind for Valkey {
    const NAME: &'static str = "Valkey";
    const DEFAULT_URL: &'static str = "valkey://127.0.0.1:6379";
}

/// A store on a Redis server (or anything that speaks its protocol, such as
/// Valkey): for state shared by many processes and machines.
///
/// The same type as [`ValkeyStore`] apart from its default URL: both accept
/// `redis://` and `valkey://` URLs.
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub type RedisStore = ServerStore<Redis>;

/// Options for a [`RedisStore`], from [`RedisStore::builder`](ServerStore::builder).
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub type RedisStoreBuilder = ServerStoreBuilder<Redis>;

/// A store on a Valkey server (or a Redis server: they speak the same
/// protocol): for state shared by many processes and machines.
///
/// The same type as [`RedisStore`] apart from its default URL,
/// `valkey://127.0.0.1:6379`: both accept `valkey://` and `redis://` URLs.
#[cfg(feature = "valkey")]
#[cfg_attr(docsrs, doc(cfg(feature = "valkey")))]
pub type ValkeyStore = ServerStore<Valkey>;

/// Options for a [`ValkeyStore`], from [`ValkeyStore::builder`](ServerStore::builder).
#[cfg(feature = "valkey")]
#[cfg_attr(docsrs, doc(cfg(feature = "valkey")))]
pub type ValkeyStoreBuilder = ServerStoreBuilder<Valkey>;

/// A store on a Redis or Valkey server; use it as [`RedisStore`] or
/// [`ValkeyStore`].
///
/// One root store holds one multiplexed, automatically reconnecting
/// connection. Clones and namespaces ([`with_namespace`]) share it, so they
/// are cheap, and concurrent tasks pipeline their requests over it.
///
/// Keys are laid out as documented in [`crate::namespace`]: a store made by
/// [`connect`](ServerStore::connect) puts its keys under the root segment
/// `kvstores` (`kvstores:key`, `kvstores:child:key`);
/// [`builder`](ServerStore::builder) chooses another one, or none at all for
/// raw keys shared with other programs (whose
/// [`delete_all`](crate::Store::delete_all) then refuses to run).
///
/// `Debug` shows the server and namespace, never credentials.
///
/// [`with_namespace`]: crate::NamespacedStore::with_namespace
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use kvstores::{Bytes, NamespacedStore, RedisStore, Store};
///
/// # async fn example() -> kvstores::Result<()> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// let sessions = store.with_namespace("sessions");
/// sessions.set("abc", Bytes::from_static(b"{}"), Some(Duration::from_secs(3600))).await?;
/// assert!(sessions.exists("abc").await?);
/// # Ok(()) }
/// ```
pub struct ServerStore<K: ServerKind> {
    pub(super) core: Core,
    kind: PhantomData<fn() -> K>,
}

impl<K: ServerKind> Clone for ServerStore<K> {
    fn clone(&self) -> Self {
        Self::from_core(self.core.clone())
    }
}

impl<K: ServerKind> ServerStore<K> {
    /// The URL of a server of this kind on this machine's default port:
    /// `redis://127.0.0.1:6379` or `valkey://127.0.0.1:6379`.
    pub const DEFAULT_URL: &'static str = K::DEFAULT_URL;

    /// The root namespace segment of a store made by
    /// [`connect`](ServerStore::connect): `kvstores`.
    pub const DEFAULT_NAMESPACE: &'static str = DEFAULT_NAMESPACE;

    pub(super) fn from_core(core: Core) -> Self {
        ServerStore {
            core,
            kind: PhantomData,
        }
    }

    /// Connects to the server at `url` with the default options and the
    /// default root namespace, [`DEFAULT_NAMESPACE`](Self::DEFAULT_NAMESPACE).
    ///
    /// `url` is `redis://[[username]:password@]host[:port][/database]` or
    /// `redis+unix:///path/to/socket`, and the same with `valkey` for
    /// `redis`; either kind of store accepts either scheme.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a URL
    /// that cannot be parsed or a TLS URL (`rediss://`, `valkeys://`), which
    /// this build does not support;
    /// [`Error::Connection`](crate::Error::Connection) when the server cannot
    /// be reached within the connect timeout;
    /// [`Error::Server`](crate::Error::Server) when it refuses the
    /// credentials or the database.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn example() -> kvstores::Result<()> {
    /// let redis = kvstores::RedisStore::connect("redis://127.0.0.1:6379/0").await?;
    /// let valkey = kvstores::ValkeyStore::connect("valkey://127.0.0.1:6380").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self> {
        Self::builder(url).connect().await
    }

    /// Starts building a store for the server at `url` (see
    /// [`connect`](ServerStore::connect) for its form). Nothing is checked
    /// until [`ServerStoreBuilder::connect`].
    ///
    /// # Example
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// # async fn example() -> kvstores::Result<()> {
    /// let store = kvstores::RedisStore::builder("redis://cache.internal:6379")
    ///     .namespace(Some("my-app"))
    ///     .database(2)
    ///     .password("s3cret")
    ///     .response_timeout(Duration::from_millis(500))
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn builder(url: &str) -> ServerStoreBuilder<K> {
        ServerStoreBuilder {
            options: Options::new(url),
            kind: PhantomData,
        }
    }

    /// Makes a store on a connection the caller already has, sharing it.
    ///
    /// `server` names the server in error messages (e.g. `"cache:6379"`; it
    /// must not contain credentials) and `namespace` is the root segment as
    /// in [`ServerStoreBuilder::namespace`]. The connection's own timeouts
    /// and reconnection settings apply.
    ///
    /// This is the one signature with a type of the `redis` crate: the
    /// manager must come from the `redis` 1.x that kvstores depends on.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let connection = redis::aio::ConnectionManager::new(client).await?;
    /// let store = kvstores::RedisStore::from_connection_manager(connection, "127.0.0.1:6379", Some("my-app"));
    /// # Ok(()) }
    /// ```
    pub fn from_connection_manager(
        connection: ConnectionManager,
        server: &str,
        namespace: Option<&str>,
    ) -> Self {
        Self::from_core(Core::new(connection, server.to_owned(), namespace))
    }

    /// Stores `value` under `key` and keeps the key's current expiry, if it
    /// has one (`SET … KEEPTTL`). A new key gets no expiry.
    ///
    /// Needs Redis 6.0 or later, or any Valkey.
    ///
    /// # Errors
    ///
    /// [`Error::Server`](crate::Error::Server) from a server too old to know
    /// `KEEPTTL`, or a connection failure.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use kvstores::{Bytes, RedisStore, Store};
    /// # async fn example(store: RedisStore) -> kvstores::Result<()> {
    /// store.set("session", Bytes::from_static(b"v1"), Some(Duration::from_secs(60))).await?;
    /// store.set_keep_ttl("session", Bytes::from_static(b"v2")).await?;
    /// assert!(store.expires_in("session").await?.is_some());
    /// # Ok(()) }
    /// ```
    pub async fn set_keep_ttl(&self, key: &str, value: Bytes) -> Result<()> {
        self.core.set_keep_ttl(key, &value).await
    }

    /// The namespace path of this handle, from the root segment down
    /// (empty for a store built with `namespace(None)`).
    pub fn namespace(&self) -> &[String] {
        self.core.namespace()
    }

    /// The server, as `host:port` (or a socket path): how messages name it.
    /// Never holds credentials.
    pub fn server(&self) -> &str {
        self.core.server()
    }

    /// What this process has done through this store's connection, counted
    /// for every clone and namespace sharing it; see
    /// [`StoreStats`](crate::StoreStats). The server expires keys itself, so
    /// `expirations` (and `evictions`) stay 0.
    pub fn stats(&self) -> crate::StoreStats {
        self.core.stats()
    }
}

#[async_trait::async_trait]
impl<K: ServerKind> crate::Store for ServerStore<K> {
    async fn set(&self, key: &str, value: Bytes, expires_in: Option<Duration>) -> Result<()> {
        self.core.set(key, &value, expires_in).await
    }
    async fn get(&self, key: &str, renew_for: Option<Duration>) -> Result<Option<Bytes>> {
        self.core.get(key, renew_for).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.core.delete(key).await
    }
    async fn delete_all(&self) -> Result<()> {
        self.core.delete_all().await
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        self.core.exists(key).await
    }
    async fn expires_in(&self, key: &str) -> Result<Option<Duration>> {
        self.core.expires_in(key).await
    }
}

impl<K: ServerKind> crate::NamespacedStore for ServerStore<K> {
    fn with_namespace(&self, namespace: &str) -> Self {
        Self::from_core(self.core.with_namespace(namespace))
    }
}

impl<K: ServerKind> fmt::Debug for ServerStore<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.debug(&format!("{}Store", K::NAME), f)
    }
}

/// Options for a [`RedisStore`] or [`ValkeyStore`], from
/// [`ServerStore::builder`].
///
/// Every option has a default, so only what differs needs setting. Options
/// given here override the same ones in the URL. `Debug` shows the server
/// but never the URL or the password.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use kvstores::{ValkeyStore, ValkeyStoreBuilder};
///
/// # async fn example() -> kvstores::Result<()> {
/// let builder: ValkeyStoreBuilder = ValkeyStore::builder("valkey://10.0.0.5:6379")
///     .namespace(Some("sessions"))
///     .username("app")
///     .password("s3cret")
///     .connect_timeout(Duration::from_millis(500));
/// println!("{builder:?}"); // no password in here
/// let store = builder.connect().await?;
/// # Ok(()) }
/// ```
pub struct ServerStoreBuilder<K: ServerKind> {
    options: Options,
    kind: PhantomData<fn() -> K>,
}

impl<K: ServerKind> Clone for ServerStoreBuilder<K> {
    fn clone(&self) -> Self {
        ServerStoreBuilder {
            options: self.options.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: ServerKind> Default for ServerStoreBuilder<K> {
    /// A builder for [`ServerStore::DEFAULT_URL`].
    fn default() -> Self {
        ServerStore::<K>::builder(K::DEFAULT_URL)
    }
}

impl<K: ServerKind> fmt::Debug for ServerStoreBuilder<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple(&format!("{}StoreBuilder", K::NAME))
            .field(&self.options)
            .finish()
    }
}

impl<K: ServerKind> ServerStoreBuilder<K> {
    /// Sets the root namespace segment: `Some(name)` stores keys under
    /// `name:` (a `:` inside `name` is just a character); `None` stores this
    /// store's keys verbatim, sharing the key space with other programs, and
    /// makes its [`delete_all`](crate::Store::delete_all) fail with
    /// [`Error::NamespaceRequired`](crate::Error::NamespaceRequired). Its
    /// child namespaces are ordinary ones. The default is
    /// [`ServerStore::DEFAULT_NAMESPACE`].
    pub fn namespace(mut self, namespace: Option<&str>) -> Self {
        self.options.namespace(namespace);
        self
    }

    /// Selects database number `database` (`SELECT`), overriding any in the
    /// URL. The default is the URL's, or 0.
    pub fn database(mut self, database: i64) -> Self {
        self.options.database(database);
        self
    }

    /// Authenticates as `username` (an ACL user), overriding the URL's.
    pub fn username(mut self, username: &str) -> Self {
        self.options.username(username);
        self
    }

    /// Authenticates with `password`, overriding the URL's. It never appears
    /// in `Debug` output or error messages.
    pub fn password(mut self, password: &str) -> Self {
        self.options.password(password);
        self
    }

    /// How long one attempt to connect may take. The default is 1 second.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout(timeout);
        self
    }

    /// How long a command may wait for its reply before failing with
    /// [`Error::Connection`](crate::Error::Connection). The default is 2
    /// seconds.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.options.response_timeout(timeout);
        self
    }

    /// Connects and returns the store.
    ///
    /// # Errors
    ///
    /// As [`ServerStore::connect`].
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn example() -> kvstores::Result<()> {
    /// // Raw keys, shared with other programs; delete_all is refused.
    /// let raw = kvstores::RedisStore::builder("redis://127.0.0.1:6379")
    ///     .namespace(None)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(self) -> Result<ServerStore<K>> {
        let core = self.options.connect(K::NAME, K::DEFAULT_URL).await?;
        Ok(ServerStore::from_core(core))
    }
}
