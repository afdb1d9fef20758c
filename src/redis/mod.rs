//! `RedisStore` and `ValkeyStore`: one implementation on a Redis or
//! Valkey server, behind one generic type (`store.rs`).
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
//!   client and `UNLINK`s each batch. It never runs a server-side loop, so
//!   other clients are served between batches however large the namespace.
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
//! (`connection_lost` says why that is safe). So once the server is back on
//! the same address the same store works again, on its first operation and
//! without being rebuilt; and an operation made while the server is down
//! fails with [`Error::Connection`] after at most two rounds of three
//! connection attempts (with a local server that refuses at once, about half
//! a second), never hangs.
//!
//! Client errors are converted in one place, `map_error`: failures to reach
//! or keep talking to the server become [`Error::Connection`], error replies
//! (a wrong password, a key of another type) become [`Error::Server`]. Both
//! name the server as `host:port` and never carry credentials.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::aio::ConnectionManager;
use ::redis::{Cmd, FromRedisValue, RedisError, Script};
use bytes::Bytes;

use crate::clock::opt_ttl_millis;
use crate::namespace::{redis_key, redis_pattern, redis_prefix};
use crate::stats::{Counters, Event};
use crate::{Error, Result};

mod atomic;
pub(crate) mod list;
mod options;
mod store;

#[cfg(feature = "redis")]
pub use store::{Redis, RedisStore, RedisStoreBuilder};
pub use store::{ServerKind, ServerStore, ServerStoreBuilder};
#[cfg(feature = "valkey")]
pub use store::{Valkey, ValkeyStore, ValkeyStoreBuilder};

/// The root namespace segment of a store made by `connect(url)`: its keys
/// are stored as `kvstores:…`.
pub(crate) const DEFAULT_NAMESPACE: &str = "kvstores";
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnection policy: few, quick retries, so that an operation during an
/// outage fails fast; the next operation starts a new round anyway.
const RECONNECT_RETRIES: usize = 2;
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(100);
/// Keys SCAN looks at per call in `delete_all`: large enough that a sweep
/// takes few round trips, small enough that each call is short on the server.
const SCAN_COUNT: usize = 1000;
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

/// What every handle derived from one root store shares.
struct Shared {
    connection: ConnectionManager,
    /// `host:port` (or a socket path): names the server in errors and
    /// `Debug`; never holds credentials.
    server: String,
    /// Counted for every handle sharing this connection.
    stats: Counters,
}

/// One namespace of one server connection: the implementation behind both
/// public store types. Cloning it clones two `Arc`s.
#[derive(Clone)]
pub(crate) struct Core {
    shared: Arc<Shared>,
    path: Arc<[String]>,
    /// `redis_prefix(path)`; `None` (raw keys) only for a root store built
    /// with `namespace(None)`.
    prefix: Option<Arc<str>>,
}

impl Core {
    pub(crate) fn new(connection: ConnectionManager, server: String, root: Option<&str>) -> Self {
        let path: Arc<[String]> = root.map(str::to_owned).into_iter().collect();
        Core {
            prefix: redis_prefix(&path).map(Arc::from),
            shared: Arc::new(Shared {
                connection,
                server,
                stats: Counters::new(1),
            }),
            path,
        }
    }

    pub(crate) fn with_namespace(&self, name: &str) -> Self {
        let path: Arc<[String]> = self
            .path
            .iter()
            .cloned()
            .chain(std::iter::once(name.to_owned()))
            .collect();
        Core {
            shared: self.shared.clone(),
            prefix: redis_prefix(&path).map(Arc::from),
            path,
        }
    }

    pub(crate) fn namespace(&self) -> &[String] {
        &self.path
    }

    pub(crate) fn server(&self) -> &str {
        &self.shared.server
    }

    pub(crate) fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("server", &self.shared.server)
            .field("namespace", &self.path)
            .finish_non_exhaustive()
    }

    fn key(&self, key: &str) -> String {
        redis_key(self.prefix.as_deref(), key)
    }

    async fn query<T: FromRedisValue>(&self, cmd: &Cmd, action: &str) -> Result<T> {
        // A clone of the manager is a handle on the same connection.
        let mut connection = self.shared.connection.clone();
        let mut result = cmd.query_async(&mut connection).await;
        if connection_lost(&result) {
            result = cmd.query_async(&mut connection).await;
        }
        result.map_err(|err| map_error(&self.shared.server, action, err))
    }

    pub(crate) async fn set(
        &self,
        key: &str,
        value: &[u8],
        expires_in: Option<Duration>,
    ) -> Result<()> {
        let ttl = opt_ttl_millis(expires_in, "expires_in")?;
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value);
        if let Some(ms) = ttl {
            cmd.arg("PX").arg(ms.min(MAX_TTL_MILLIS));
        }
        self.query::<()>(&cmd, "SET").await?;
        self.count(Event::Set, 1);
        Ok(())
    }

    pub(crate) fn stats(&self) -> crate::StoreStats {
        self.shared.stats.snapshot()
    }

    fn count(&self, event: Event, n: u64) {
        self.shared.stats.add(0, event, n);
    }

    pub(crate) async fn set_keep_ttl(&self, key: &str, value: &[u8]) -> Result<()> {
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value).arg("KEEPTTL");
        self.query(&cmd, "SET KEEPTTL").await
    }

    pub(crate) async fn get(
        &self,
        key: &str,
        renew_for: Option<Duration>,
    ) -> Result<Option<Bytes>> {
        let renew = opt_ttl_millis(renew_for, "renew_for")?;
        let key = self.key(key);
        let value: Option<Vec<u8>> = match renew {
            None => self.query(::redis::cmd("GET").arg(&key), "GET").await?,
            Some(ms) => {
                let mut connection = self.shared.connection.clone();
                let mut invocation = GET_AND_RENEW.key(&key);
                invocation.arg(ms.min(MAX_TTL_MILLIS));
                let mut result = invocation.invoke_async(&mut connection).await;
                if connection_lost(&result) {
                    result = invocation.invoke_async(&mut connection).await;
                }
                result.map_err(|err| map_error(&self.shared.server, "GET with renewal", err))?
            }
        };
        self.count(Event::lookup(&value), 1);
        // Vec -> Bytes takes over the allocation: no copy.
        Ok(value.map(Bytes::from))
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<()> {
        self.query::<()>(::redis::cmd("UNLINK").arg(self.key(key)), "UNLINK")
            .await?;
        self.count(Event::Delete, 1);
        Ok(())
    }

    pub(crate) async fn exists(&self, key: &str) -> Result<bool> {
        self.query(::redis::cmd("EXISTS").arg(self.key(key)), "EXISTS")
            .await
    }

    pub(crate) async fn expires_in(&self, key: &str) -> Result<Option<Duration>> {
        let ms: i64 = self
            .query(::redis::cmd("PTTL").arg(self.key(key)), "PTTL")
            .await?;
        Ok(match ms {
            // -2: no such key; -1: no expiry.
            ..0 => None,
            // Live with less than a millisecond left: report the one
            // millisecond it is rounded up to, as the contract wants > 0.
            0 => Some(Duration::from_millis(1)),
            ms => Some(Duration::from_millis(ms.unsigned_abs())),
        })
    }

    pub(crate) async fn delete_all(&self) -> Result<()> {
        // Without a prefix this store's keys cannot be told from anyone
        // else's on the server.
        let Some(prefix) = &self.prefix else {
            return Err(Error::NamespaceRequired);
        };
        let pattern = redis_pattern(prefix);
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .query(
                    ::redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(SCAN_COUNT),
                    "SCAN",
                )
                .await?;
            if !keys.is_empty() {
                self.query::<()>(::redis::cmd("UNLINK").arg(&keys), "UNLINK")
                    .await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

/// Whether a command failed because the connection was lost or could not
/// be made, rather than on the server or by timing out.
///
/// Such a command is tried once more. The manager has already started
/// reconnecting, so the second try waits for the new connection: a store
/// whose server restarted while it was idle, or came back after an outage,
/// succeeds on its first operation instead of reporting an outage that is
/// over. Every command here may run twice: running it again (a read, the
/// same SET, an UNLINK, a renewal a moment later) leaves what running it
/// once would, except that a write by another client in between can be
/// overwritten — the same race as if the command had been sent a moment
/// later. Timeouts are not retried: that would double the wait.
fn connection_lost<T>(result: &::redis::RedisResult<T>) -> bool {
    result
        .as_ref()
        .is_err_and(|err| err.is_connection_dropped() || err.is_connection_refusal())
}

/// The one place client errors become [`Error`]s.
///
/// Failing to reach the server, a broken connection and a timeout are
/// [`Error::Connection`]; everything the server answered (an error reply,
/// a rejected password, an unexpected reply type) is [`Error::Server`].
/// `server` is `host:port`; the client's error texts carry no credentials.
pub(crate) fn map_error(server: &str, action: &str, err: RedisError) -> Error {
    let message = format!("{action} failed");
    let server = server.to_owned();
    if err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
    {
        Error::Connection {
            server,
            message,
            source: Some(Box::new(err)),
        }
    } else {
        Error::Server {
            server,
            message,
            source: Some(Box::new(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_failures_are_connection_errors_and_replies_server_errors() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let err = map_error("127.0.0.1:1", "connect", refused);
        assert!(matches!(&err, Error::Connection { server, .. } if server == "127.0.0.1:1"));
        assert!(
            err.to_string()
                .starts_with("connection to 127.0.0.1:1: connect failed")
        );

        let timeout = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(matches!(
            map_error("h:1", "GET", timeout),
            Error::Connection { .. }
        ));

        let reply = RedisError::from((::redis::ErrorKind::AuthenticationFailed, "bad password"));
        let err = map_error("h:1", "connect", reply);
        assert!(matches!(err, Error::Server { .. }), "{err:?}");
        assert!(std::error::Error::source(&err).is_some());
    }
}
