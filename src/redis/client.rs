//! The connection every handle of one root store shares, and the one place
//! requests are sent, retried, and their errors turned into [`Error`]s; the
//! one SCAN routine, for `delete_all` and listing.

use std::future::Future;

use ::redis::aio::ConnectionManager;
use ::redis::{Cmd, FromRedisValue, Pipeline, RedisError, RedisResult, ScriptInvocation, Value};

use crate::stats::Counters;
use crate::{Error, Result};

/// Keys SCAN looks at per call: large enough that a sweep takes few round
/// trips, small enough that each call is short on the server.
const SCAN_COUNT: usize = 1000;

/// What every handle derived from one root store shares.
pub(super) struct Shared {
    connection: ConnectionManager,
    /// `host:port` (or a socket path): names the server in errors and
    /// `Debug`; never holds credentials.
    pub(super) server: String,
    /// Counted for every handle sharing this connection.
    pub(super) stats: Counters,
}

/// Whether a request may be sent a second time after a lost connection.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    /// Once more on the new connection: for requests whose second run
    /// leaves what one run would (see [`connection_lost`]).
    IfLost,
    /// Never: the first attempt may have been applied with only its reply
    /// lost (`increment`, `set_if_absent`).
    Never,
}

/// Something sent on the connection: a command, a pipeline or a script.
pub(super) trait Request: Sync {
    fn send<'a>(
        &'a self,
        connection: &'a mut ConnectionManager,
    ) -> impl Future<Output = RedisResult<Value>> + Send + 'a;
}

impl Request for Cmd {
    fn send<'a>(
        &'a self,
        connection: &'a mut ConnectionManager,
    ) -> impl Future<Output = RedisResult<Value>> + Send + 'a {
        self.query_async(connection)
    }
}

impl Request for Pipeline {
    fn send<'a>(
        &'a self,
        connection: &'a mut ConnectionManager,
    ) -> impl Future<Output = RedisResult<Value>> + Send + 'a {
        self.query_async(connection)
    }
}

impl Request for ScriptInvocation<'_> {
    fn send<'a>(
        &'a self,
        connection: &'a mut ConnectionManager,
    ) -> impl Future<Output = RedisResult<Value>> + Send + 'a {
        // Runs by SHA1 and loads the script on a NOSCRIPT reply, so a
        // restarted (or flushed) server gets it back.
        self.invoke_async(connection)
    }
}

impl Shared {
    pub(super) fn new(connection: ConnectionManager, server: String) -> Self {
        Shared {
            connection,
            server,
            stats: Counters::new(1),
        }
    }

    /// Sends `request`, once more if `retry` allows and the connection was
    /// lost, and maps a failure to an [`Error`] saying `action` failed.
    pub(super) async fn run<T: FromRedisValue>(
        &self,
        request: &impl Request,
        action: &str,
        retry: Retry,
    ) -> Result<T> {
        // A clone of the manager is a handle on the same connection.
        let mut connection = self.connection.clone();
        let mut result = request.send(&mut connection).await;
        if retry == Retry::IfLost && connection_lost(&result) {
            result = request.send(&mut connection).await;
        }
        result
            .and_then(|value| Ok(::redis::from_redis_value(value)?))
            .map_err(|err| map_error(&self.server, action, err))
    }
}

/// A client-side `SCAN cursor MATCH pattern COUNT 1000` walk.
pub(super) struct Scan {
    pattern: String,
    /// The cursor of the next call; `None` once SCAN returned 0.
    cursor: Option<u64>,
}

impl Scan {
    pub(super) fn new(pattern: String) -> Self {
        Scan {
            pattern,
            cursor: Some(0),
        }
    }

    /// The keys of the next SCAN call (possibly none: COUNT is the slots
    /// looked at, not keys found), or `None` once the walk is over. A failed
    /// call can be repeated: the cursor only moves on success.
    pub(super) async fn next_batch(&mut self, shared: &Shared) -> Result<Option<Vec<Vec<u8>>>> {
        let Some(cursor) = self.cursor else {
            return Ok(None);
        };
        let mut cmd = ::redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(&self.pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT);
        let (next, keys): (u64, Vec<Vec<u8>>) = shared.run(&cmd, "SCAN", Retry::IfLost).await?;
        self.cursor = (next != 0).then_some(next);
        Ok(Some(keys))
    }
}

/// Whether a request failed because the connection was lost or could not
/// be made, rather than on the server or by timing out.
///
/// Such a request is tried once more (unless [`Retry::Never`]). The manager
/// has already started reconnecting, so the second try waits for the new
/// connection: a store whose server restarted while it was idle, or came
/// back after an outage, succeeds on its first operation instead of
/// reporting an outage that is over. Running any of the other requests
/// again (a read, the same SET, an UNLINK, a renewal a moment later) leaves
/// what running it once would, except that a write by another client in
/// between can be overwritten — the same race as if the request had been
/// sent a moment later. Timeouts are not retried: that would double the
/// wait.
fn connection_lost<T>(result: &RedisResult<T>) -> bool {
    result
        .as_ref()
        .is_err_and(|err| err.is_connection_dropped() || err.is_connection_refusal())
}

/// The one place client errors become [`Error`]s.
///
/// A script's `NOTCOUNTER` reply is [`crate::ext::not_a_counter`]. Failing
/// to reach the server, a broken connection and a timeout are
/// [`Error::Connection`]; everything else the server answered (an error
/// reply, a rejected password, an unexpected reply type) is
/// [`Error::Server`]. The message says what failed; the client's error,
/// whose text carries no credentials, is kept as the `source()` only.
pub(super) fn map_error(server: &str, action: &str, err: RedisError) -> Error {
    if err.code() == Some("NOTCOUNTER") {
        return crate::ext::not_a_counter();
    }
    let message = match reason(&err) {
        Some(reason) => format!("{action} failed: {reason}"),
        None => format!("{action} failed"),
    };
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

/// The cause in our own words, for the failures a user can act on; the
/// client's own text stays in `source()`.
fn reason(err: &RedisError) -> Option<&'static str> {
    use ::redis::{ErrorKind, ServerErrorKind};
    if err.is_timeout() {
        return Some("timed out");
    }
    if err.is_connection_refusal() {
        return Some("connection refused");
    }
    if err.is_connection_dropped() {
        return Some("connection lost");
    }
    if matches!(err.code(), Some("WRONGPASS" | "NOAUTH")) {
        return Some("authentication failed (wrong or missing password)");
    }
    Some(match err.kind() {
        ErrorKind::AuthenticationFailed => "authentication failed (wrong or missing password)",
        ErrorKind::Server(ServerErrorKind::ReadOnly) => "the server is a read-only replica",
        ErrorKind::Server(ServerErrorKind::BusyLoading) => "the server is loading its data",
        ErrorKind::Server(ServerErrorKind::NoPerm) => "the user lacks a permission",
        ErrorKind::Server(ServerErrorKind::ClusterDown) => "the cluster is down",
        ErrorKind::Server(ServerErrorKind::MasterDown) => "the slot's primary is down",
        ErrorKind::Server(ServerErrorKind::TryAgain) => "a slot is being moved",
        ErrorKind::Server(ServerErrorKind::CrossSlot) => "keys of different cluster slots",
        _ if err.code() == Some("WRONGTYPE") => "the key holds another type of value",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_failures_are_connection_errors_and_replies_server_errors() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let err = map_error("127.0.0.1:1", "connect", refused);
        assert!(matches!(&err, Error::Connection { server, .. } if server == "127.0.0.1:1"));
        assert_eq!(
            err.to_string(),
            "connection to 127.0.0.1:1: connect failed: connection refused"
        );

        let timeout = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(matches!(
            map_error("h:1", "GET", timeout),
            Error::Connection { .. }
        ));

        let reply = RedisError::from((::redis::ErrorKind::AuthenticationFailed, "bad password"));
        let err = map_error("h:1", "connect", reply);
        assert!(matches!(err, Error::Server { .. }), "{err:?}");
        let source = std::error::Error::source(&err).expect("the client's error");
        assert!(!err.to_string().contains(&source.to_string()), "{err}");
    }
}
