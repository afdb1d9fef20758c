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
/// people and names what failed and where (a path, or a `host:port`). The
/// underlying error of a dependency or of the operating system is never
/// part of that text: it is [`source()`](StdError::source), so that error
/// reporters that walk the chain (`anyhow`, `eyre`, a `{:#}` printer) show
/// each cause once.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An argument was refused before anything was read or written, such as a
    /// zero `expires_in` or `renew_for`.
    InvalidArgument {
        /// What was wrong with it.
        message: String,
    },
    /// The key holds a value that is not a counter, so
    /// [`AtomicStore::increment`](crate::AtomicStore::increment) refused to
    /// change it. A counter is a canonical decimal `i64` (`"42"`, `"-7"`).
    NotACounter,
    /// [`AtomicStore::increment`](crate::AtomicStore::increment) would take
    /// the counter past the range of an `i64`; it was left as it was.
    CounterOverflow {
        /// The counter's value.
        value: i64,
        /// The amount that would have overflowed it.
        delta: i64,
    },
    /// A key and value together are larger than the backend can hold; nothing
    /// was written.
    TooLarge {
        /// The size that was refused, in bytes.
        size: u64,
    },
    /// The database file is already open in this process with other options
    /// (mode, durability or clock); open it with the same ones to share it.
    AlreadyOpen {
        /// The database file.
        path: PathBuf,
        /// The options it is open with, for the message.
        options: String,
    },
    /// The store lacks an ability the caller needs, such as a store
    /// registered with [`StoreRegistry::register`](crate::StoreRegistry::register)
    /// that implements only [`Store`](crate::Store), asked for through
    /// [`StoreRegistry::get_full`](crate::StoreRegistry::get_full).
    Unsupported {
        /// What is missing.
        message: String,
    },
    /// Stored data did not decode: a value, record or line that is not in
    /// the format the reader expects. Nothing was changed.
    Decode {
        /// What could not be decoded, e.g. `key "abc"` or `line 3`.
        what: String,
        /// What is wrong with it.
        message: String,
        /// The decoder's error, when there is one.
        source: Option<BoxError>,
    },
    /// A value could not be encoded for storing, e.g. a map whose keys are
    /// not strings, which JSON cannot represent. Nothing was written.
    Encode {
        /// What could not be encoded, e.g. `the value for key "abc"`.
        what: String,
        /// Why, in the encoder's terms of the format.
        message: String,
        /// The encoder's error, when there is one.
        source: Option<BoxError>,
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
            Error::NotACounter => f.write_str(
                "the key holds a value that is not a counter \
                 (a decimal 64-bit integer such as \"42\")",
            ),
            Error::CounterOverflow { value, delta } => write!(
                f,
                "incrementing the counter {value} by {delta} would overflow a 64-bit integer"
            ),
            Error::TooLarge { size } => write!(
                f,
                "a key and value of {size} bytes are more than the store can hold"
            ),
            Error::AlreadyOpen { path, options } => write!(
                f,
                "{} is already open in this process with other options ({options}); \
                 open it with the same ones to share it",
                path.display()
            ),
            Error::Unsupported { message } => f.write_str(message),
            Error::Decode { what, message, .. } => write!(f, "cannot decode {what}: {message}"),
            Error::Encode { what, message, .. } => write!(f, "cannot encode {what}: {message}"),
            Error::Io { path, action, .. } => write!(f, "cannot {action} {}", path.display()),
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
            Error::Load { key, .. } => write!(f, "loading the value of key {key:?} failed"),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Database { source, .. }
            | Error::Decode { source, .. }
            | Error::Encode { source, .. }
            | Error::Connection { source, .. }
            | Error::Server { source, .. } => source.as_deref().map(|e| e as _),
            Error::Load { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each cause is printed once: by whoever walks `source()`, never also
    /// inside the message.
    #[test]
    fn messages_leave_their_cause_to_source() {
        let cause = std::io::Error::other("disk on fire");
        let err = Error::Io {
            path: PathBuf::from("/data/store.redb"),
            action: "open",
            source: cause,
        };
        assert_eq!(err.to_string(), "cannot open /data/store.redb");
        assert_eq!(err.source().unwrap().to_string(), "disk on fire");

        let err = Error::Decode {
            what: "key \"abc\"".to_owned(),
            message: "not a session record".to_owned(),
            source: Some(Box::new(std::io::Error::other("bad byte"))),
        };
        assert_eq!(
            err.to_string(),
            "cannot decode key \"abc\": not a session record"
        );
        assert_eq!(err.source().unwrap().to_string(), "bad byte");
    }
}
