//! The connection every handle of one root store shares — one server or a
//! cluster behind one type, so that every operation has one code path — and
//! the one place requests are sent, retried, and their errors turned into
//! [`Error`]s; the one SCAN routine, for `delete_all` and listing.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager};
#[cfg(feature = "cluster")]
use ::redis::cluster::ClusterClient;
#[cfg(feature = "cluster")]
use ::redis::cluster_async::ClusterConnection;
#[cfg(feature = "cluster")]
use ::redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo, Slot};
use ::redis::{
    Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisFuture, RedisResult,
    ScriptInvocation, ServerErrorKind, Value,
};

use crate::stats::Counters;
use crate::{Error, Result};

/// How often a request that must not run twice is sent again after a
/// reply proving it did not run (a cluster redirect or outage), and the
/// first wait between tries (doubling, at most `REFUSED_MAX_WAIT`).
const REFUSED_RETRIES: u32 = 8;
const REFUSED_FIRST_WAIT: Duration = Duration::from_millis(20);
const REFUSED_MAX_WAIT: Duration = Duration::from_millis(500);
/// Pipelines of one batch in flight at once on a cluster.
const PIPELINE_WINDOW: usize = 64;
/// Keys SCAN looks at per call: large enough that a sweep takes few round
/// trips, small enough that each call is short on the server.
const SCAN_COUNT: usize = 1000;

/// One server's reconnecting connection, or a cluster's.
#[derive(Clone)]
pub(super) enum Connection {
    Single(ConnectionManager),
    #[cfg(feature = "cluster")]
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            #[cfg(feature = "cluster")]
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "cluster")]
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            #[cfg(feature = "cluster")]
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// What every handle derived from one root store shares.
pub(super) struct Shared {
    /// The connection, and the one for [`Retry::Never`]: on a cluster, a
    /// second connection whose client never retries by itself (its retries
    /// would run an `increment` twice after a lost reply); on one server,
    /// the same connection. Replaced only by [`Renewal`].
    connections: RwLock<(Connection, Connection)>,
    #[cfg(feature = "cluster")]
    cluster: bool,
    #[cfg(feature = "cluster")]
    renewal: Option<Renewal>,
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
        connection: &'a mut Connection,
    ) -> impl Future<Output = RedisResult<Value>> + Send + 'a;

    /// The request as one plain command, if it is one: what can follow an
    /// `ASKING` after an `ASK` redirect.
    fn command(&self) -> Option<&Cmd> {
        None
    }
}

impl Request for Cmd {
    fn send<'a>(
        &'a self,
        connection: &'a mut Connection,
    ) -> impl Future<Output = RedisResult<Value>> + Send + 'a {
        self.query_async(connection)
    }

    fn command(&self) -> Option<&Cmd> {
        Some(self)
    }
}

impl Request for Pipeline {
    fn send<'a>(
        &'a self,
        connection: &'a mut Connection,
    ) -> impl Future<Output = RedisResult<Value>> + Send + 'a {
        self.query_async(connection)
    }
}

impl Request for ScriptInvocation<'_> {
    fn send<'a>(
        &'a self,
        connection: &'a mut Connection,
    ) -> impl Future<Output = RedisResult<Value>> + Send + 'a {
        // Runs by SHA1 and loads the script on a NOSCRIPT reply, so a
        // restarted (or flushed) server gets it back.
        self.invoke_async(connection)
    }
}

/// A command for one node of a cluster (on one server: for that server).
struct Routed<'a> {
    cmd: &'a Cmd,
    /// The node on a cluster; `None` for all primaries (and on one server).
    node: Option<&'a Node>,
}

/// A cluster node's host and port, as the cluster client names it.
type Node = (String, u16);

impl Request for Routed<'_> {
    #[allow(clippy::manual_async_fn)] // `async fn` cannot promise `Send`.
    fn send<'a>(
        &'a self,
        connection: &'a mut Connection,
    ) -> impl Future<Output = RedisResult<Value>> + Send + 'a {
        async move {
            match connection {
                #[cfg(feature = "cluster")]
                Connection::Cluster(cluster) => {
                    let routing = match self.node {
                        Some((host, port)) => {
                            RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                                host: host.clone(),
                                port: *port,
                            })
                        }
                        None => RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
                    };
                    cluster.route_command(self.cmd.clone(), routing).await
                }
                single => {
                    debug_assert!(self.node.is_none(), "no nodes on one server");
                    self.cmd.query_async(single).await
                }
            }
        }
    }
}

/// New cluster connections from the clients that made the first ones.
///
/// The cluster client repairs itself after most failures, but after a
/// primary is killed it can keep sending that primary's slots to the dead
/// address until each request times out, even once a replica has taken
/// over (seen with Redis 7.0). A timeout or a lost connection on a cluster
/// therefore replaces both connections with new ones, which read the slot
/// map afresh — at most once per [`RENEW_EVERY`].
#[cfg(feature = "cluster")]
pub(super) struct Renewal {
    pub(super) clients: (ClusterClient, ClusterClient),
    last: tokio::sync::Mutex<Option<std::time::Instant>>,
}

#[cfg(feature = "cluster")]
const RENEW_EVERY: Duration = Duration::from_millis(500);

#[cfg(feature = "cluster")]
impl Renewal {
    pub(super) fn new(clients: (ClusterClient, ClusterClient)) -> Self {
        Renewal {
            clients,
            last: tokio::sync::Mutex::new(None),
        }
    }
}

impl Shared {
    pub(super) fn new(connection: Connection, once: Connection, server: String) -> Self {
        Shared {
            #[cfg(feature = "cluster")]
            cluster: !matches!(connection, Connection::Single(_)),
            connections: RwLock::new((connection, once)),
            #[cfg(feature = "cluster")]
            renewal: None,
            server,
            stats: Counters::new(1),
        }
    }

    #[cfg(feature = "cluster")]
    pub(super) fn renewed_by(mut self, renewal: Renewal) -> Self {
        self.renewal = Some(renewal);
        self
    }

    #[cfg(feature = "cluster")]
    fn is_cluster(&self) -> bool {
        self.cluster
    }

    fn connection(&self, retry: Retry) -> Connection {
        let connections = self.connections.read().unwrap_or_else(|e| e.into_inner());
        match retry {
            Retry::IfLost => connections.0.clone(),
            Retry::Never => connections.1.clone(),
        }
    }

    /// After a timeout or a lost connection on a cluster, replaces the
    /// connections (see [`Renewal`]).
    #[cfg(feature = "cluster")]
    async fn renew_after<T>(&self, result: &RedisResult<T>) {
        let Some(renewal) = &self.renewal else {
            return;
        };
        let broken = result.as_ref().is_err_and(|err| {
            err.is_timeout() || err.is_connection_dropped() || err.is_connection_refusal()
        });
        if !broken {
            return;
        }
        let mut last = renewal.last.lock().await;
        if last.is_some_and(|at| at.elapsed() < RENEW_EVERY) {
            return;
        }
        *last = Some(std::time::Instant::now());
        let (client, once) = &renewal.clients;
        // A failure leaves the old connections; the next failure tries again.
        if let (Ok(connection), Ok(once)) = (
            client.get_async_connection().await,
            once.get_async_connection().await,
        ) {
            let mut connections = self.connections.write().unwrap_or_else(|e| e.into_inner());
            *connections = (Connection::Cluster(connection), Connection::Cluster(once));
        }
    }

    /// Sends `request` and maps a failure to an [`Error`] saying `action`
    /// failed. [`Retry::IfLost`] sends it once more if the connection was
    /// lost; [`Retry::Never`] only after a reply proving it did not run.
    pub(super) async fn run<T: FromRedisValue>(
        &self,
        request: &impl Request,
        action: &str,
        retry: Retry,
    ) -> Result<T> {
        // A clone of a connection is a handle on the same connection.
        let result = match retry {
            Retry::IfLost => {
                let mut connection = self.connection(retry);
                let result = request.send(&mut connection).await;
                if connection_lost(&result) {
                    request.send(&mut connection).await
                } else {
                    result
                }
            }
            Retry::Never => {
                let mut connection = self.connection(retry);
                let mut wait = REFUSED_FIRST_WAIT;
                let mut asking = None;
                let mut tries = 0;
                loop {
                    let result = match (&asking, request.command()) {
                        (Some(node), Some(cmd)) => ask(&mut connection, cmd, node).await,
                        _ => request.send(&mut connection).await,
                    };
                    tries += 1;
                    if tries > REFUSED_RETRIES || !did_not_run(&result) {
                        break result;
                    }
                    // The slot is moving and the key already gone to the
                    // node named: ask it there, at once. On other refusals
                    // the client refreshes its slot map; wait for it.
                    asking = result.as_ref().err().and_then(asked_node);
                    if asking.is_none() {
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(REFUSED_MAX_WAIT);
                    }
                }
            }
        };
        #[cfg(feature = "cluster")]
        self.renew_after(&result).await;
        result
            .and_then(|value| Ok(::redis::from_redis_value(value)?))
            .map_err(|err| map_error(&self.server, action, err))
    }

    /// Groups the indexes of `keys` so that each group may share one
    /// pipeline: all in one on a server, one group per slot on a cluster
    /// (the cluster refuses a pipeline or `MULTI` across slots).
    pub(super) fn by_slot<K: AsRef<[u8]>>(&self, keys: &[K]) -> Vec<Vec<usize>> {
        #[cfg(feature = "cluster")]
        if self.is_cluster() {
            let mut groups = std::collections::HashMap::<Slot, Vec<usize>>::new();
            for (i, key) in keys.iter().enumerate() {
                groups.entry(Slot::for_key(key)).or_default().push(i);
            }
            return groups.into_values().collect();
        }
        vec![(0..keys.len()).collect()]
    }

    /// Runs `pipelines` (from [`by_slot`](Self::by_slot)'s groups), at once
    /// when there are several, retried like [`Retry::IfLost`]; returns each
    /// one's replies, in order.
    pub(super) async fn run_all(
        self: &Arc<Self>,
        pipelines: Vec<Pipeline>,
        action: &'static str,
    ) -> Result<Vec<Vec<Value>>> {
        if pipelines.len() <= 1 {
            let mut replies = Vec::new();
            for pipe in &pipelines {
                replies.push(self.run(pipe, action, Retry::IfLost).await?);
            }
            return Ok(replies);
        }
        // At most PIPELINE_WINDOW in flight: thousands at once (one per
        // slot of a large batch) would each wait behind the others and time
        // out on a busy machine.
        let count = pipelines.len();
        let mut pipelines = pipelines.into_iter().enumerate();
        let mut tasks = tokio::task::JoinSet::new();
        let mut replies = vec![Vec::new(); count];
        loop {
            while tasks.len() < PIPELINE_WINDOW
                && let Some((i, pipe)) = pipelines.next()
            {
                let shared = self.clone();
                tasks.spawn(async move {
                    let replies = shared.run::<Vec<Value>>(&pipe, action, Retry::IfLost).await;
                    (i, replies)
                });
            }
            let Some(done) = tasks.join_next().await else {
                break;
            };
            let (i, reply) = done.map_err(|err| Error::Connection {
                server: self.server.clone(),
                message: format!("{action} failed: its task ended"),
                source: Some(Box::new(err)),
            })?;
            replies[i] = reply?;
        }
        Ok(replies)
    }
}

/// A client-side `SCAN cursor MATCH pattern COUNT 1000` walk over the
/// server, or over every primary of a cluster (SCAN sees one node's keys).
pub(super) struct Scan {
    pattern: String,
    /// The nodes still to walk and each one's next cursor; `None` before
    /// the first call. On one server the node is `None`: the server itself.
    pending: Option<Vec<(Option<Node>, u64)>>,
}

impl Scan {
    pub(super) fn new(pattern: String) -> Self {
        Scan {
            pattern,
            pending: None,
        }
    }

    /// The keys of the next SCAN call (possibly none: COUNT is the slots
    /// looked at, not keys found), or `None` once the walk is over. A failed
    /// call can be repeated: the cursors only move on success.
    pub(super) async fn next_batch(&mut self, shared: &Shared) -> Result<Option<Vec<Vec<u8>>>> {
        // The first call starts every primary (or the server) at cursor 0.
        let (node, cursor) = match &self.pending {
            None => (None, 0),
            Some(pending) => match pending.last() {
                Some((node, cursor)) => (node.clone(), *cursor),
                None => return Ok(None),
            },
        };
        let mut cmd = ::redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(&self.pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT);
        let request = Routed {
            cmd: &cmd,
            node: node.as_ref(),
        };
        let reply: Value = shared.run(&request, "SCAN", Retry::IfLost).await?;
        // A cluster's fan-out answers with a map from node to its reply.
        let replies = match reply {
            Value::Map(nodes) if self.pending.is_none() => {
                let mut replies = Vec::with_capacity(nodes.len());
                for (address, reply) in nodes {
                    let address: String = parse(&shared.server, address)?;
                    let (host, port) = address.rsplit_once(':').unwrap_or((&address, ""));
                    let port = port.parse().unwrap_or_default();
                    replies.push((Some((host.to_owned(), port)), reply));
                }
                replies
            }
            reply => vec![(node, reply)],
        };
        let pending = self.pending.get_or_insert_with(Vec::new);
        if cursor != 0 {
            pending.pop();
        }
        let mut keys = Vec::new();
        for (node, reply) in replies {
            let (next, mut found): (u64, Vec<Vec<u8>>) = parse(&shared.server, reply)?;
            keys.append(&mut found);
            if next != 0 {
                pending.push((node, next));
            }
        }
        Ok(Some(keys))
    }
}

/// The node an `ASK` redirect names.
fn asked_node(err: &RedisError) -> Option<Node> {
    if err.kind() != ErrorKind::Server(ServerErrorKind::Ask) {
        return None;
    }
    let (address, _slot) = err.redirect_node()?;
    let (host, port) = address.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

/// Sends `cmd` to `node` after `ASKING`, as an `ASK` redirect wants.
async fn ask(connection: &mut Connection, cmd: &Cmd, node: &Node) -> RedisResult<Value> {
    match connection {
        #[cfg(feature = "cluster")]
        Connection::Cluster(cluster) => {
            let mut pipe = ::redis::pipe();
            pipe.cmd("ASKING").add_command(cmd.clone());
            let route = SingleNodeRoutingInfo::ByAddress {
                host: node.0.clone(),
                port: node.1,
            };
            let mut replies = cluster.route_pipeline(pipe, 1, 1, route).await?;
            Ok(replies.pop().unwrap_or(Value::Nil))
        }
        single => {
            let _ = node; // A single server never redirects.
            cmd.query_async(single).await
        }
    }
}

/// Converts a SCAN reply, which `run` leaves as a [`Value`].
fn parse<T: FromRedisValue>(server: &str, value: Value) -> Result<T> {
    ::redis::from_redis_value(value).map_err(|err| map_error(server, "SCAN", err.into()))
}

/// Whether a request failed with a reply proving that it did not run:
/// a cluster redirect (`MOVED`, `ASK`), a slot in migration (`TRYAGAIN`),
/// a cluster or primary outage, or a server still loading its data.
fn did_not_run<T>(result: &RedisResult<T>) -> bool {
    result.as_ref().is_err_and(|err| {
        matches!(
            err.kind(),
            ErrorKind::Server(
                ServerErrorKind::Moved
                    | ServerErrorKind::Ask
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::BusyLoading
            )
        )
    })
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
/// The `increment` script's `NOTCOUNTER` and `OVERFLOW` replies are
/// [`crate::ext::not_a_counter`] and [`Error::CounterOverflow`]. Failing
/// to reach the server, a broken connection and a timeout are
/// [`Error::Connection`]; everything else the server answered (an error
/// reply, a rejected password, an unexpected reply type) is
/// [`Error::Server`]. The message says what failed; the client's error,
/// whose text carries no credentials, is kept as the `source()` only.
pub(super) fn map_error(server: &str, action: &str, err: RedisError) -> Error {
    if err.code() == Some("NOTCOUNTER") {
        return crate::ext::not_a_counter();
    }
    if err.code() == Some("OVERFLOW")
        && let Some((value, delta)) = err.detail().and_then(|d| d.trim().split_once(' '))
        && let (Ok(value), Ok(delta)) = (value.parse(), delta.parse())
    {
        return Error::CounterOverflow { value, delta };
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
