//! The options both builders share, and connecting with them.

use std::fmt;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, ConnectionAddr, IntoConnectionInfo};

use super::{
    Core, DEFAULT_CONNECT_TIMEOUT, DEFAULT_NAMESPACE, DEFAULT_RESPONSE_TIMEOUT,
    RECONNECT_MAX_DELAY, RECONNECT_MIN_DELAY, RECONNECT_RETRIES, map_error,
};
use crate::{Error, Result};

/// The builder options both store types share.
#[derive(Clone)]
pub(crate) struct Options {
    url: String,
    namespace: Option<String>,
    database: Option<i64>,
    username: Option<String>,
    password: Option<String>,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl Options {
    pub(crate) fn new(url: &str) -> Self {
        Options {
            url: url.to_owned(),
            namespace: Some(DEFAULT_NAMESPACE.to_owned()),
            database: None,
            username: None,
            password: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
        }
    }

    pub(crate) fn namespace(&mut self, namespace: Option<&str>) {
        self.namespace = namespace.map(str::to_owned);
    }
    pub(crate) fn database(&mut self, database: i64) {
        self.database = Some(database);
    }
    pub(crate) fn username(&mut self, username: &str) {
        self.username = Some(username.to_owned());
    }
    pub(crate) fn password(&mut self, password: &str) {
        self.password = Some(password.to_owned());
    }
    pub(crate) fn connect_timeout(&mut self, timeout: Duration) {
        self.connect_timeout = timeout;
    }
    pub(crate) fn response_timeout(&mut self, timeout: Duration) {
        self.response_timeout = timeout;
    }

    /// Connects and returns the root handle. `kind` ("Redis" or "Valkey")
    /// only words error messages.
    pub(crate) async fn connect(self, kind: &str) -> Result<Core> {
        let scheme = self
            .url
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
                    "not a {kind} URL: expected redis://, valkey:// or unix://, \
                     e.g. {kind_url}",
                    kind_url = if kind == "Valkey" {
                        "valkey://127.0.0.1:6379"
                    } else {
                        "redis://127.0.0.1:6379"
                    }
                )));
            }
        }
        let info = self.url.as_str().into_connection_info().map_err(|err| {
            Error::invalid_argument(self.scrub(format!("invalid {kind} URL: {err}")))
        })?;
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
        let info = info.set_redis_settings(settings);
        let server = server_name(info.addr());
        let client = Client::open(info).map_err(|err| {
            Error::invalid_argument(self.scrub(format!("invalid {kind} URL: {err}")))
        })?;
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
            Ok(connection)
        };
        let connection = connected
            .await
            .map_err(|err| self.scrub_error(map_error(&server, "connect", err)))?;
        Ok(Core::new(connection, server, self.namespace.as_deref()))
    }

    /// [`scrub`](Self::scrub)s the message of a connection or server error.
    /// The redis crate does not echo credentials; scrubbing anyway keeps
    /// that promise independent of its wording.
    fn scrub_error(&self, err: Error) -> Error {
        match err {
            Error::Connection {
                server,
                message,
                source,
            } => Error::Connection {
                server,
                message: self.scrub(message),
                source,
            },
            Error::Server {
                server,
                message,
                source,
            } => Error::Server {
                server,
                message: self.scrub(message),
                source,
            },
            other => other,
        }
    }

    /// Removes the configured password from `text`, should it appear there.
    fn scrub(&self, text: String) -> String {
        match self.password.as_deref().filter(|p| !p.is_empty()) {
            Some(password) if text.contains(password) => text.replace(password, "<redacted>"),
            _ => text,
        }
    }

    /// `host:port` of the URL, for `Debug`; never the URL itself, which may
    /// hold a password.
    fn server(&self) -> String {
        match self.url.as_str().into_connection_info() {
            Ok(info) => server_name(info.addr()),
            Err(_) => "<invalid URL>".to_owned(),
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("server", &self.server())
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
    fn options_debug_names_the_server_and_hides_every_password() {
        let mut options = Options::new("redis://user:in-the-url@cache.internal:6380/2");
        options.password("set-by-option");
        let shown = format!("{options:?}");
        assert!(
            shown.contains(r#"server: "cache.internal:6380""#),
            "{shown}"
        );
        assert!(!shown.contains("in-the-url"), "{shown}");
        assert!(!shown.contains("set-by-option"), "{shown}");

        let v6 = format!("{:?}", Options::new("redis://[::1]:6390"));
        assert!(v6.contains(r#"server: "[::1]:6390""#), "{v6}");

        let unparsable = format!("{:?}", Options::new("redis://:secret@[::1"));
        assert!(unparsable.contains("<invalid URL>"), "{unparsable}");
        assert!(!unparsable.contains("secret"), "{unparsable}");
    }

    #[test]
    fn scrub_removes_the_configured_password() {
        let mut options = Options::new("redis://127.0.0.1");
        assert_eq!(options.scrub("no password".into()), "no password");
        options.password("hunter2");
        assert_eq!(
            options.scrub("AUTH hunter2 refused".into()),
            "AUTH <redacted> refused"
        );
    }

    #[tokio::test]
    async fn tls_and_other_schemes_are_refused_before_connecting() {
        for url in ["rediss://127.0.0.1", "valkeys://127.0.0.1"] {
            let err = Options::new(url).connect("Redis").await.err().unwrap();
            assert!(err.to_string().contains("TLS"), "{err}");
        }
        let err = Options::new("http://127.0.0.1")
            .connect("Valkey")
            .await
            .err()
            .unwrap();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
        assert!(err.to_string().contains("valkey://127.0.0.1:6379"), "{err}");
    }
}
