//! The crate's one public error type.
//!
//! Each backend converts its client's errors in one private place (its own
//! module) into a variant here, keeping the original as `source()`. No
//! dependency type appears in a public signature, and no message contains a
//! password: backends name servers by host and port only.

use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// A `Result` whose error defaults to the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed error from a dependency, kept as the `source()` of an [`Error`].
pub(crate) type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Everything that can go wrong in a store.
///
/// Match on the variant to tell causes apart; the `Display` text is meant for
/// people and names what failed and where (a path, or a `host:port`).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An argument was refused before anything was read or written, such as a
    /// zero `expires_in` or `renew_for`.
    InvalidArgument {
        /// What was wrong with it.
        message: String,
    },
    /// `delete_all` was called on a Redis/Valkey store built without a
    /// namespace: it would have to delete keys it cannot tell from other
    /// programs' keys, so it deletes nothing.
    NamespaceRequired,
    /// [`StoreRegistry::register`](crate::StoreRegistry::register) was given a
    /// name that is already taken and `allow_override` was `false`.
    AlreadyRegistered {
        /// The name that is taken.
        name: String,
    },
    /// The file backend could not read, write or create something on disk.
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What was being done, e.g. `"open"` or `"create directories"`.
        action: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file backend's database failed, or a file is not a kvstores
    /// database. The file is left as it was.
    Database {
        /// The database file.
        path: PathBuf,
        /// What was wrong.
        message: String,
        /// The database engine's error, when there is one.
        source: Option<BoxError>,
    },
    /// The database file is open in another process, and either that
    /// process or this open asked for exclusive access.
    InUse {
        /// The database file.
        path: PathBuf,
    },
    /// A Redis/Valkey server could not be reached, or the connection broke.
    Connection {
        /// The server, as `host:port` (never with credentials).
        server: String,
        /// What was being done.
        message: String,
        /// The client's error, when there is one.
        source: Option<BoxError>,
    },
    /// A Redis/Valkey server answered with an error or with something the
    /// store did not expect (a wrong password, a wrong type, a script error).
    Server {
        /// The server, as `host:port` (never with credentials).
        server: String,
        /// What the server said, with any credentials removed.
        message: String,
        /// The client's error, when there is one.
        source: Option<BoxError>,
    },
    /// A stored record or value does not decode: garbage bytes, another
    /// program's data, or a value written for another type.
    Decode {
        /// What did not decode, e.g. `key "abc"`.
        what: String,
        /// What was wrong.
        message: String,
        /// The decoder's error, when there is one.
        source: Option<BoxError>,
    },
    /// [`Cache::get_or_set_with`](crate::Cache::get_or_set_with) could not
    /// produce the value: its loader failed, or storing the loaded value
    /// failed. Every caller that waited for that run gets this error, with
    /// the same `source`.
    Load {
        /// The key being loaded.
        key: String,
        /// The loader's error, or the store's [`Error`] when storing failed;
        /// shared by every caller of the run, hence the `Arc`.
        source: Arc<dyn StdError + Send + Sync + 'static>,
    },
}

impl Error {
    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument { message } => write!(f, "invalid argument: {message}"),
            Error::NamespaceRequired => f.write_str(
                "delete_all needs a namespace: this store was built without one, \
                 so it cannot tell its keys from other programs' keys",
            ),
            Error::AlreadyRegistered { name } => {
                write!(f, "a store named {name:?} is already registered")
            }
            Error::Io {
                path,
                action,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            Error::Database { path, message, .. } => {
                write!(f, "database {}: {message}", path.display())
            }
            Error::InUse { path } => write!(
                f,
                "database {} is in use by another process \
                 (it or this open asked for exclusive access)",
                path.display()
            ),
            Error::Connection {
                server, message, ..
            } => write!(f, "connection to {server}: {message}"),
            Error::Server {
                server, message, ..
            } => write!(f, "server {server}: {message}"),
            Error::Decode { what, message, .. } => write!(f, "cannot decode {what}: {message}"),
            Error::Load { key, .. } => write!(f, "loading the value of key {key:?} failed"),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Database { source, .. }
            | Error::Connection { source, .. }
            | Error::Server { source, .. }
            | Error::Decode { source, .. } => source.as_deref().map(|e| e as _),
            Error::Load { source, .. } => Some(&**source),
            _ => None,
        }
    }
}
