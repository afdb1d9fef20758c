//! [`RedisStore`], on a Redis or Valkey server; [`ValkeyStore`] is the same
//! type under the name Valkey users look for.
//!
//! # Design
//!
//! A root store (from `connect`) owns one multiplexed connection, the redis
//! crate's `ConnectionManager`. Every clone and every namespace derived from
//! it shares that connection through an `Arc`: requests from concurrent tasks
//! are written back to back on the one socket and their replies matched in
//! order, so 64 tasks pipeline naturally without a pool.
//!
//! A handle is that shared connection plus its namespace path and the
//! Redis-form key prefix computed once from it ([`crate::namespace`]). Every
//! operation is one command (or, for a renewing `get`, one script run), so
//! there is no client-side state to keep consistent.
//!
//! - `set` is `SET key value [PX ms]`; `set_keep_ttl` is
//!   `SET key value KEEPTTL` (Redis 6.0 or later, any Valkey).
//! - `get` is `GET`; with `renew_for` it is one Lua script, run by its SHA1
//!   (`EVALSHA`) and loaded with `SCRIPT LOAD` on the first `NOSCRIPT` reply
//!   (once per server lifetime), that reads the key and, only if it has an
//!   expiry, sets a new one with `PEXPIRE` — atomically, since a script runs
//!   alone on the server.
//! - `delete` is `UNLINK`, `exists` is `EXISTS`, `expires_in` reads `PTTL`.
//! - The extension traits' commands are described in `atomic.rs`.
//! - `delete_all` sweeps with `SCAN cursor MATCH pattern COUNT 1000` from the
//!   client (`client.rs`, the one SCAN routine, which listing shares) and
//!   `UNLINK`s each batch. It never runs a server-side loop, so other clients
//!   are served between batches however large the namespace.
//!
//! # `delete_all` and concurrent writers
//!
//! The sweep is not a snapshot. Every key of the namespace that exists for
//! the whole sweep is deleted (SCAN's guarantee). A key written while the
//! sweep runs may survive it or not, depending on whether the cursor has
//! already passed its slot; a key written after `delete_all` returns always
//! survives. Readers can observe the namespace half-deleted while it runs,
//! and a sweep that fails midway (the connection breaks) leaves what it
//! already unlinked deleted; calling `delete_all` again finishes the job.
//!
//! # Connections, failures and reconnection
//!
//! Each connection attempt gives up after the connect timeout (default
//! 1 s) and each command after the response timeout (default 2 s); a failed
//! attempt is retried twice with a short backoff (50 ms, then up to 100 ms).
//! When a command finds the connection broken, the connection manager starts
//! reconnecting and the command is tried once more on the new connection
//! (`client.rs` says why that is safe, and which commands are never retried).
//! So once the server is back on the same address the same store works
//! again, on its first operation and without being rebuilt; and an operation
//! made while the server is down fails with [`Error::Connection`] after at
//! most two rounds of three connection attempts (with a local server that
//! refuses at once, about half a second), never hangs.
//!
//! # Cluster mode (feature `cluster`)
//!
//! [`RedisStore::cluster_builder`] connects to a Redis Cluster or a Valkey
//! cluster through the redis crate's cluster client, which follows `MOVED`
//! and `ASK` and refreshes its slot map by itself. The store keeps the same
//! key layout (no hash tags are added), so keys spread over every primary,
//! and every operation takes the same path as on one server
//! (`client::Connection` is either connection), except where a cluster
//! needs otherwise:
//!
//! - `delete_all` and listing send their first `SCAN` to every primary and
//!   continue each primary's cursor on that primary.
//! - Pipelines (`set_many`, import, the listing's reads) are split by slot,
//!   since a cluster refuses one across slots; `set_many` is all or nothing
//!   per slot, not across slots. `get_many` and `delete_many` are split by
//!   the client.
//! - `increment` and `set_if_absent` go through a second connection whose
//!   client never retries, and are sent again only after a reply proving
//!   they did not run.
//! - After a timeout or a lost connection the store replaces its cluster
//!   connections (at most every 500 ms), which reads the slot map afresh:
//!   with Redis 7.0 the client alone kept sending a failed primary's slots
//!   to the dead node after its replica had taken over.
//!
//! A sweep or listing that meets a reshard or a failover can miss keys that
//! moved to a node it had already walked, list a key twice, or fail when a
//! primary it was walking dies; calling `delete_all` (or listing) again
//! finishes the job. The database number must be 0.
//!
//! A server restarted with a *new* password cannot be reached with the old
//! one: every operation then fails with [`Error::Server`] (the rejected
//! credentials) until the store is rebuilt with the new password — the
//! credentials are fixed when the store is built (redis-rs #984).
//!
//! Client errors are converted in one place, `client::map_error`: failures
//! to reach or keep talking to the server become [`Error::Connection`], error
//! replies (a wrong password, a key of another type) become
//! [`Error::Server`]. Both name the server as `host:port`, keep the client's
//! error as `source()` only, and never carry credentials.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::aio::ConnectionManager;
use ::redis::{Cmd, Script};
use bytes::Bytes;

use crate::clock::opt_ttl_millis;
use crate::namespace::{redis_key, redis_pattern, redis_prefix};
use crate::stats::Event;
use crate::{Error, Result};

mod atomic;
mod builder;
mod client;
pub(crate) mod list;

pub use builder::RedisStoreBuilder;
use client::{Connection, Retry, Scan, Shared};

/// The root namespace segment of a store made by `connect(url)`: its keys
/// are stored as `kvstores:…`.
const DEFAULT_NAMESPACE: &str = "kvstores";
/// Redis refuses a deadline past `i64::MAX` milliseconds since the epoch;
/// longer expiries are clamped to this, which no server clock will reach.
const MAX_TTL_MILLIS: u64 = (i64::MAX / 2) as u64;

/// `get` with `renew_for`: reads the key and, when it has an expiry
/// (`PTTL` >= 0; -1 means none, -2 missing), moves it to ARGV[1] ms from now.
static GET_AND_RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local value = redis.call('GET', KEYS[1])
if value and redis.call('PTTL', KEYS[1]) >= 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return value",
    )
});

/// A store on a Redis or Valkey server (they speak the same protocol): for
/// state shared by many processes and machines.
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
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[derive(Clone)]
pub struct RedisStore {
    shared: Arc<Shared>,
    path: Arc<[String]>,
    /// `redis_prefix(path)`; `None` (raw keys) only for a root store built
    /// with `namespace(None)`.
    prefix: Option<Arc<str>>,
}

/// A store on a Valkey server: [`RedisStore`] under the name Valkey users
/// look for. The client, the options and the behaviour are the same; both
/// names accept `valkey://` and `redis://` URLs, and
/// [`RedisStore::VALKEY_DEFAULT_URL`] is the local Valkey server.
///
/// # Example
///
/// ```no_run
/// # async fn example() -> kvstores::Result<()> {
/// let store = kvstores::ValkeyStore::connect(kvstores::ValkeyStore::VALKEY_DEFAULT_URL).await?;
/// # Ok(()) }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub type ValkeyStore = RedisStore;

/// Options for a [`ValkeyStore`]: [`RedisStoreBuilder`] under its Valkey
/// name.
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub type ValkeyStoreBuilder = RedisStoreBuilder;

impl RedisStore {
    /// The URL of a Redis server on this machine's default port.
    pub const DEFAULT_URL: &'static str = "redis://127.0.0.1:6379";

    /// The URL of a Valkey server on this machine's default port. It names
    /// the same address as [`DEFAULT_URL`](Self::DEFAULT_URL): the scheme
    /// only says which server is expected there.
    pub const VALKEY_DEFAULT_URL: &'static str = "valkey://127.0.0.1:6379";

    /// The root namespace segment of a store made by
    /// [`connect`](RedisStore::connect): `kvstores`.
    pub const DEFAULT_NAMESPACE: &'static str = DEFAULT_NAMESPACE;

    /// Connects to the server at `url` with the default options and the
    /// default root namespace, [`DEFAULT_NAMESPACE`](Self::DEFAULT_NAMESPACE).
    ///
    /// `url` is `redis://[[username]:password@]host[:port][/database]` or
    /// `redis+unix:///path/to/socket`, and the same with `valkey` for
    /// `redis`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a URL that cannot be parsed or a TLS
    /// URL (`rediss://`, `valkeys://`), which this build does not support;
    /// [`Error::Connection`] when the server cannot be reached within the
    /// connect timeout; [`Error::Server`] when it refuses the credentials or
    /// the database.
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
        RedisStoreBuilder::new(&[url], false)
    }

    /// Starts building a store on a Redis Cluster or Valkey cluster, from
    /// the URLs of some of its nodes (any node will do: the client asks it
    /// for the others). The options are those of a single server, except
    /// [`database`](RedisStoreBuilder::database), which a cluster refuses.
    ///
    /// On a cluster, keys keep the layout they have on one server, so data
    /// moves between the two as it is, and spread over every primary by
    /// slot. A key holding `{...}` has its slot chosen by the text between
    /// the braces (Redis's hash tags), which can put all of a namespace's
    /// keys on one primary. `delete_all` and listing walk every primary;
    /// `set_many` is all or nothing per slot; see the module docs for what a
    /// reshard or failover during a sweep leaves behind.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn example() -> kvstores::Result<()> {
    /// let store = kvstores::RedisStore::cluster_builder(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
    ///     .namespace(Some("my-app"))
    ///     .password("s3cret")
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub fn cluster_builder<S: AsRef<str>>(seeds: impl IntoIterator<Item = S>) -> RedisStoreBuilder {
        let seeds: Vec<S> = seeds.into_iter().collect();
        let seeds: Vec<&str> = seeds.iter().map(AsRef::as_ref).collect();
        RedisStoreBuilder::new(&seeds, true)
    }

    /// Makes a store on a connection the caller already has, sharing it.
    ///
    /// `server` names the server in error messages (e.g. `"cache:6379"`; it
    /// must not contain credentials) and `namespace` is the root segment as
    /// in [`RedisStoreBuilder::namespace`]. The connection's own timeouts
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
        let shared = Shared::new(
            Connection::Single(connection.clone()),
            Connection::Single(connection),
            server.to_owned(),
        );
        Self::from_shared(shared, namespace)
    }

    /// Makes a store on a cluster connection the caller already has,
    /// sharing it; like
    /// [`from_connection_manager`](Self::from_connection_manager) otherwise.
    ///
    /// Every command goes through this connection, so its client's retry
    /// settings apply to all of them: build it with `retries(0)` to keep
    /// the promise that `increment` and `set_if_absent` never run twice
    /// (they are still sent again after a redirect), or use
    /// [`cluster_builder`](Self::cluster_builder), which keeps a second
    /// connection for them.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::cluster::ClusterClient::builder(["redis://127.0.0.1:7000"])
    ///     .retries(0)
    ///     .build()?;
    /// let connection = client.get_async_connection().await?;
    /// let store = kvstores::RedisStore::from_cluster_connection(connection, "127.0.0.1:7000", None);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub fn from_cluster_connection(
        connection: ::redis::cluster_async::ClusterConnection,
        server: &str,
        namespace: Option<&str>,
    ) -> Self {
        let shared = Shared::new(
            Connection::Cluster(connection.clone()),
            Connection::Cluster(connection),
            server.to_owned(),
        );
        Self::from_shared(shared, namespace)
    }

    fn from_shared(shared: Shared, root: Option<&str>) -> Self {
        let path: Arc<[String]> = root.map(str::to_owned).into_iter().collect();
        RedisStore {
            prefix: redis_prefix(&path).map(Arc::from),
            shared: Arc::new(shared),
            path,
        }
    }

    /// Stores `value` under `key` and keeps the key's current expiry, if it
    /// has one (`SET … KEEPTTL`). A new key gets no expiry.
    ///
    /// Needs Redis 6.0 or later, or any Valkey.
    ///
    /// # Errors
    ///
    /// [`Error::Server`] from a server too old to know `KEEPTTL`, or a
    /// connection failure.
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
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.key(key)).arg(&value[..]).arg("KEEPTTL");
        self.shared.run(&cmd, "SET KEEPTTL", Retry::IfLost).await
    }

    /// The namespace path of this handle, from the root segment down
    /// (empty for a store built with `namespace(None)`).
    pub fn namespace(&self) -> &[String] {
        &self.path
    }

    /// The server, as `host:port` (or a socket path): how messages name it.
    /// Never holds credentials.
    pub fn server(&self) -> &str {
        &self.shared.server
    }

    /// What this process has done through this store's connection, counted
    /// for every clone and namespace sharing it; see
    /// [`StoreStats`](crate::StoreStats). The server expires keys itself, so
    /// `expirations` (and `evictions`) stay 0.
    pub fn stats(&self) -> crate::StoreStats {
        self.shared.stats.snapshot()
    }

    fn key(&self, key: &str) -> String {
        redis_key(self.prefix.as_deref(), key)
    }

    fn count(&self, event: Event, n: u64) {
        self.shared.stats.add(0, event, n);
    }
}

#[async_trait::async_trait]
impl crate::Store for RedisStore {
    async fn set(&self, key: &str, value: Bytes, expires_in: Option<Duration>) -> Result<()> {
        let ttl = opt_ttl_millis(expires_in, "expires_in")?;
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.key(key)).arg(&value[..]);
        if let Some(ms) = ttl {
            cmd.arg("PX").arg(ms.min(MAX_TTL_MILLIS));
        }
        self.shared.run::<()>(&cmd, "SET", Retry::IfLost).await?;
        self.count(Event::Set, 1);
        Ok(())
    }

    async fn get(&self, key: &str, renew_for: Option<Duration>) -> Result<Option<Bytes>> {
        let renew = opt_ttl_millis(renew_for, "renew_for")?;
        let key = self.key(key);
        let value: Option<Vec<u8>> = match renew {
            None => {
                let cmd = Cmd::get(&key);
                self.shared.run(&cmd, "GET", Retry::IfLost).await?
            }
            Some(ms) => {
                let mut invocation = GET_AND_RENEW.key(&key);
                invocation.arg(ms.min(MAX_TTL_MILLIS));
                (self.shared)
                    .run(&invocation, "GET with renewal", Retry::IfLost)
                    .await?
            }
        };
        self.count(Event::lookup(&value), 1);
        // Vec -> Bytes takes over the allocation: no copy.
        Ok(value.map(Bytes::from))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let cmd = Cmd::unlink(self.key(key));
        self.shared.run::<()>(&cmd, "UNLINK", Retry::IfLost).await?;
        self.count(Event::Delete, 1);
        Ok(())
    }

    async fn delete_all(&self) -> Result<()> {
        // Without a prefix this store's keys cannot be told from anyone
        // else's on the server.
        let Some(prefix) = &self.prefix else {
            return Err(Error::NamespaceRequired);
        };
        let mut scan = Scan::new(redis_pattern(prefix));
        while let Some(keys) = scan.next_batch(&self.shared).await? {
            if !keys.is_empty() {
                let cmd = Cmd::unlink(&keys);
                self.shared.run::<()>(&cmd, "UNLINK", Retry::IfLost).await?;
            }
        }
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let cmd = Cmd::exists(self.key(key));
        self.shared.run(&cmd, "EXISTS", Retry::IfLost).await
    }

    async fn expires_in(&self, key: &str) -> Result<Option<Duration>> {
        let cmd = Cmd::pttl(self.key(key));
        let ms: i64 = self.shared.run(&cmd, "PTTL", Retry::IfLost).await?;
        Ok(match ms {
            // -2: no such key; -1: no expiry.
            ..0 => None,
            // Live with less than a millisecond left: report the one
            // millisecond it is rounded up to, as the contract wants > 0.
            0 => Some(Duration::from_millis(1)),
            ms => Some(Duration::from_millis(ms.unsigned_abs())),
        })
    }
}

impl crate::NamespacedStore for RedisStore {
    fn with_namespace(&self, name: &str) -> Self {
        let path: Arc<[String]> = self
            .path
            .iter()
            .cloned()
            .chain(std::iter::once(name.to_owned()))
            .collect();
        RedisStore {
            shared: self.shared.clone(),
            prefix: redis_prefix(&path).map(Arc::from),
            path,
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.shared.server)
            .field("namespace", &self.path)
            .finish_non_exhaustive()
    }
}
