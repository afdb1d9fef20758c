//! [`RedisStoreBuilder`]: the options of a store, and connecting with them.

use std::fmt;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use super::client::{Connection, Shared, map_error};
use super::{DEFAULT_NAMESPACE, RedisStore};
use crate::{Error, Result};

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnection policy: few, quick retries, so that an operation during an
/// outage fails fast; the next operation starts a new round anyway.
const RECONNECT_RETRIES: usize = 2;
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(100);
/// A cluster client's retries of a request after a redirect, a lost
/// connection or an outage, and its waits between them: short, as above
/// (the client's default first wait is 1.28 s).
#[cfg(feature = "cluster")]
const CLUSTER_RETRIES: u32 = 4;
#[cfg(feature = "cluster")]
const CLUSTER_MIN_WAIT_MS: u64 = 10;
#[cfg(feature = "cluster")]
const CLUSTER_MAX_WAIT_MS: u64 = 200;
#[cfg(feature = "cluster")]
const CLUSTER_NODE_ATTEMPTS: std::num::NonZeroUsize = std::num::NonZeroUsize::new(3).unwrap();

/// Options for a [`RedisStore`] (or [`ValkeyStore`](crate::ValkeyStore)),
/// from [`RedisStore::builder`].
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
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[derive(Clone)]
pub struct RedisStoreBuilder {
    /// One URL; on a cluster, the seed nodes'.
    urls: Vec<String>,
    cluster: bool,
    namespace: Option<String>,
    database: Option<i64>,
    username: Option<String>,
    password: Option<String>,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl Default for RedisStoreBuilder {
    /// A builder for [`RedisStore::DEFAULT_URL`].
    fn default() -> Self {
        RedisStore::builder(RedisStore::DEFAULT_URL)
    }
}

impl RedisStoreBuilder {
    pub(super) fn new(urls: &[&str], cluster: bool) -> Self {
        RedisStoreBuilder {
            urls: urls.iter().map(|url| (*url).to_owned()).collect(),
            cluster,
            namespace: Some(DEFAULT_NAMESPACE.to_owned()),
            database: None,
            username: None,
            password: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
        }
    }

    /// Sets the root namespace segment: `Some(name)` stores keys under
    /// `name:` (a `:` inside `name` is just a character); `None` stores this
    /// store's keys verbatim, sharing the key space with other programs, and
    /// makes its [`delete_all`](crate::Store::delete_all) fail with
    /// [`Error::NamespaceRequired`]. Its child namespaces are ordinary ones.
    /// The default is [`RedisStore::DEFAULT_NAMESPACE`].
    pub fn namespace(mut self, namespace: Option<&str>) -> Self {
        self.namespace = namespace.map(str::to_owned);
        self
    }

    /// Selects database number `database` (`SELECT`), overriding any in the
    /// URL. The default is the URL's, or 0. A cluster has only database 0:
    /// connecting to one with another is an error.
    pub fn database(mut self, database: i64) -> Self {
        self.database = Some(database);
        self
    }

    /// Authenticates as `username` (an ACL user), overriding the URL's.
    pub fn username(mut self, username: &str) -> Self {
        self.username = Some(username.to_owned());
        self
    }

    /// Authenticates with `password`, overriding the URL's. It never appears
    /// in `Debug` output or error messages.
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// How long one attempt to connect may take. The default is 1 second.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a command may wait for its reply before failing with
    /// [`Error::Connection`]. The default is 2 seconds.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
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
        #[cfg(feature = "cluster")]
        if self.cluster {
            return self.connect_cluster().await;
        }
        let info = self.connection_info(&self.urls[0])?;
        let server = server_name(info.addr());
        let client = Client::open(info).map_err(invalid_url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_max_delay(RECONNECT_MAX_DELAY);
        let connected = async {
            let mut connection = ConnectionManager::new_with_config(client, config).await?;
            // The handshake only authenticates when given credentials; a PING
            // makes a server that wants a password say so now, not on the
            // first operation.
            ::redis::cmd("PING")
                .query_async::<()>(&mut connection)
                .await?;
            // A user not allowed INFO is not told apart from a server.
            let info: Option<String> = ::redis::cmd("INFO")
                .arg("cluster")
                .query_async(&mut connection)
                .await
                .ok();
            Ok((connection, info.unwrap_or_default()))
        };
        let (connection, info) = connected
            .await
            .map_err(|err| map_error(&server, "connect", err))?;
        if info.lines().any(|line| line.trim() == "cluster_enabled:1") {
            return Err(Error::invalid_argument(format!(
                "{server} is a node of a cluster, which a single-server store would see \
                 a part of: connect with RedisStore::cluster_builder (cargo feature `cluster`)"
            )));
        }
        let shared = Shared::new(
            Connection::Single(connection.clone()),
            Connection::Single(connection),
            server,
        );
        Ok(RedisStore::from_shared(shared, self.namespace.as_deref()))
    }

    /// [`connect`](Self::connect) for a builder from
    /// [`RedisStore::cluster_builder`].
    #[cfg(feature = "cluster")]
    async fn connect_cluster(self) -> Result<RedisStore> {
        use ::redis::cluster::ClusterClientBuilder;

        use super::client::Renewal;

        let mut seeds = Vec::with_capacity(self.urls.len());
        for url in &self.urls {
            seeds.push(self.connection_info(url)?);
        }
        let server = seeds
            .iter()
            .map(|info| server_name(info.addr()))
            .collect::<Vec<_>>()
            .join(",");
        if seeds.is_empty() {
            return Err(Error::invalid_argument(
                "a cluster store needs the URL of at least one node",
            ));
        }
        if seeds.iter().any(|info| info.redis_settings().db() != 0) {
            return Err(Error::invalid_argument(
                "a cluster has only database 0: remove the database from the URL or the \
                 database option",
            ));
        }
        let client = |retries| {
            ClusterClientBuilder::new(seeds.clone())
                .connection_timeout(self.connect_timeout)
                .response_timeout(self.response_timeout)
                .retries(retries)
                .min_retry_wait(CLUSTER_MIN_WAIT_MS)
                .max_retry_wait(CLUSTER_MAX_WAIT_MS)
                // Else a dead node is redialled forever and its slots never
                // looked up again; dropped, the next request for them
                // refreshes the slot map and finds the promoted replica.
                .max_connection_attempts(CLUSTER_NODE_ATTEMPTS)
                .build()
                .map_err(invalid_url)
        };
        let (client, once) = (client(CLUSTER_RETRIES)?, client(0)?);
        let connected = async {
            let mut connection = client.get_async_connection().await?;
            ::redis::cmd("PING")
                .query_async::<()>(&mut connection)
                .await?;
            Ok((connection, once.get_async_connection().await?))
        };
        let renewal = Renewal::new((client.clone(), once.clone()));
        let (connection, once) = connected.await.map_err(|err: ::redis::RedisError| {
            // The server's own words, the same in Redis and Valkey.
            if err.to_string().contains("cluster support disabled") {
                Error::invalid_argument(format!(
                    "{server} is a single server, not a cluster node: connect with \
                     RedisStore::builder"
                ))
            } else {
                map_error(&server, "connect to the cluster", err)
            }
        })?;
        let shared = Shared::new(
            Connection::Cluster(connection),
            Connection::Cluster(once),
            server,
        )
        .renewed_by(renewal);
        Ok(RedisStore::from_shared(shared, self.namespace.as_deref()))
    }

    /// What connecting to `url` with these options takes, or why it cannot
    /// be. Checks the scheme first, so that a TLS URL says so.
    fn connection_info(&self, url: &str) -> Result<ConnectionInfo> {
        let scheme = url
            .split_once("://")
            .map_or("", |(scheme, _)| scheme)
            .to_ascii_lowercase();
        match scheme.as_str() {
            "redis" | "valkey" | "unix" | "redis+unix" | "valkey+unix" => {}
            "rediss" | "valkeys" => {
                return Err(Error::invalid_argument(format!(
                    "{scheme}:// (TLS) URLs are not supported: this build of kvstores has no \
                     TLS support; connect with redis:// or valkey:// over a trusted network"
                )));
            }
            _ => {
                return Err(Error::invalid_argument(format!(
                    "not a Redis URL: expected redis://, valkey:// or unix://, \
                     e.g. {} or {}",
                    RedisStore::DEFAULT_URL,
                    RedisStore::VALKEY_DEFAULT_URL
                )));
            }
        }
        let info = url.into_connection_info().map_err(invalid_url)?;
        let mut settings = info.redis_settings().clone();
        if let Some(database) = self.database {
            settings = settings.set_db(database);
        }
        if let Some(username) = &self.username {
            settings = settings.set_username(username);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password);
        }
        Ok(info.set_redis_settings(settings))
    }
}

/// The client's URL errors do not echo the URL, so they cannot leak a
/// password from it; an argument error has no source to keep them in.
fn invalid_url(err: ::redis::RedisError) -> Error {
    Error::invalid_argument(format!("invalid Redis/Valkey URL: {err}"))
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The server from the URL, never the URL itself: it may hold a
        // password.
        let servers: Vec<String> = (self.urls.iter())
            .map(|url| match url.as_str().into_connection_info() {
                Ok(info) => server_name(info.addr()),
                Err(_) => "<invalid URL>".to_owned(),
            })
            .collect();
        f.debug_struct("RedisStoreBuilder")
            .field("server", &servers.join(","))
            .field("cluster", &self.cluster)
            .field("namespace", &self.namespace)
            .field("database", &self.database)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

/// `host:port` (`[v6]:port` for an IPv6 address) or a socket path: how
/// errors and `Debug` name a server.
fn server_name(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. }
            if host.contains(':') =>
        {
            format!("[{host}]:{port}")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_names_the_server_and_hides_every_password() {
        let builder = RedisStore::builder("redis://user:in-the-url@cache.internal:6380/2")
            .password("set-by-option");
        let shown = format!("{builder:?}");
        assert!(
            shown.contains(r#"server: "cache.internal:6380""#),
            "{shown}"
        );
        assert!(!shown.contains("in-the-url"), "{shown}");
        assert!(!shown.contains("set-by-option"), "{shown}");

        let v6 = format!("{:?}", RedisStore::builder("redis://[::1]:6390"));
        assert!(v6.contains(r#"server: "[::1]:6390""#), "{v6}");

        let unparsable = format!("{:?}", RedisStore::builder("redis://:secret@[::1"));
        assert!(unparsable.contains("<invalid URL>"), "{unparsable}");
        assert!(!unparsable.contains("secret"), "{unparsable}");
    }

    #[tokio::test]
    async fn tls_and_other_schemes_are_refused_before_connecting() {
        for url in ["rediss://127.0.0.1", "valkeys://127.0.0.1"] {
            let err = RedisStore::builder(url).connect().await.err().unwrap();
            assert!(err.to_string().contains("TLS"), "{err}");
        }
        let err = RedisStore::builder("http://127.0.0.1")
            .connect()
            .await
            .err()
            .unwrap();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
        assert!(err.to_string().contains("valkey://127.0.0.1:6379"), "{err}");
    }

    #[test]
    fn an_unparsable_url_never_shows_its_password() {
        let builder = RedisStore::builder("redis://:pa55word@[::1");
        let err = builder.connection_info(&builder.urls[0]).err().unwrap();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("pa55word"), "{err:?}");
    }
}
