//! [`RedisStore`], the Redis face of the shared implementation.

use std::time::Duration;

use ::redis::aio::ConnectionManager;
use bytes::Bytes;

use super::{Core, DEFAULT_NAMESPACE, Options, forward_to_core};
use crate::Result;

/// A store on a Redis server (or anything that speaks its protocol, such as
/// Valkey): for state shared by many processes and machines.
///
/// One root store holds one multiplexed, automatically reconnecting
/// connection. Clones and namespaces ([`with_namespace`]) share it, so they
/// are cheap, and concurrent tasks pipeline their requests over it.
///
/// Keys are laid out as documented in [`crate::namespace`]: a store made by
/// [`connect`](RedisStore::connect) puts its keys under the root segment
/// `kvstores` (`kvstores:key`, `kvstores:child:key`);
/// [`builder`](RedisStore::builder) chooses another one, or none at all for
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
#[derive(Clone)]
pub struct RedisStore {
    core: Core,
}

forward_to_core!(RedisStore);

impl RedisStore {
    /// The URL of a Redis server on this machine's default port.
    pub const DEFAULT_URL: &'static str = "redis://127.0.0.1:6379";

    /// The root namespace segment of a store made by
    /// [`connect`](RedisStore::connect): `kvstores`.
    pub const DEFAULT_NAMESPACE: &'static str = DEFAULT_NAMESPACE;

    /// Connects to the server at `url` with the default options and the
    /// default root namespace, [`DEFAULT_NAMESPACE`](Self::DEFAULT_NAMESPACE).
    ///
    /// `url` is `redis://[[username]:password@]host[:port][/database]`, or
    /// `redis+unix:///path/to/socket` (`valkey://` is accepted as well).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a URL
    /// that cannot be parsed or a TLS URL (`rediss://`), which this build
    /// does not support; [`Error::Connection`](crate::Error::Connection) when
    /// the server cannot be reached within the connect timeout;
    /// [`Error::Server`](crate::Error::Server) when it refuses the
    /// credentials or the database.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn example() -> kvstores::Result<()> {
    /// let store = kvstores::RedisStore::connect("redis://127.0.0.1:6379/0").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self> {
        Self::builder(url).connect().await
    }

    /// Starts building a store for the server at `url` (see
    /// [`connect`](RedisStore::connect) for its form). Nothing is checked
    /// until [`RedisStoreBuilder::connect`].
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
    pub fn builder(url: &str) -> RedisStoreBuilder {
        RedisStoreBuilder {
            options: Options::new(url),
        }
    }

    /// Makes a store on a connection the caller already has, sharing it.
    ///
    /// `server` names the server in error messages (e.g. `"cache:6379"`; it
    /// must not contain credentials) and `namespace` is the root segment as
    /// in [`RedisStoreBuilder::namespace`]. The connection's own timeouts and
    /// reconnection settings apply.
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
        RedisStore {
            core: Core::new(connection, server.to_owned(), namespace),
        }
    }

    /// Stores `value` under `key` and keeps the key's current expiry, if it
    /// has one (`SET … KEEPTTL`). A new key gets no expiry.
    ///
    /// Needs Redis 6.0 or later.
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
}

/// Options for a [`RedisStore`], from [`RedisStore::builder`].
///
/// Every option has a default, so only what differs needs setting. Options
/// given here override the same ones in the URL. `Debug` shows the server
/// but never the URL or the password.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use kvstores::{RedisStore, RedisStoreBuilder};
///
/// # async fn example() -> kvstores::Result<()> {
/// let builder: RedisStoreBuilder = RedisStore::builder("redis://10.0.0.5:6379")
///     .namespace(Some("sessions"))
///     .username("app")
///     .password("s3cret")
///     .connect_timeout(Duration::from_millis(500));
/// println!("{builder:?}"); // no password in here
/// let store = builder.connect().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStoreBuilder {
    options: Options,
}

impl Default for RedisStoreBuilder {
    /// A builder for [`RedisStore::DEFAULT_URL`].
    fn default() -> Self {
        RedisStore::builder(RedisStore::DEFAULT_URL)
    }
}

impl std::fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RedisStoreBuilder")
            .field(&self.options)
            .finish()
    }
}

impl RedisStoreBuilder {
    /// Sets the root namespace segment: `Some(name)` stores keys under
    /// `name:` (a `:` inside `name` is just a character); `None` stores this
    /// store's keys verbatim, sharing the key space with other programs, and
    /// makes its [`delete_all`](crate::Store::delete_all) fail with
    /// [`Error::NamespaceRequired`](crate::Error::NamespaceRequired). Its
    /// child namespaces are ordinary ones. The default is
    /// [`RedisStore::DEFAULT_NAMESPACE`].
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

    /// Authenticates as `username` (Redis 6 ACL), overriding the URL's.
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
    /// As [`RedisStore::connect`].
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
    pub async fn connect(self) -> Result<RedisStore> {
        Ok(RedisStore {
            core: self.options.connect("Redis").await?,
        })
    }
}
