//! The database handle every thread of a `FileStore` shares, the one place
//! where redb's errors become the crate's, and the backup copy.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use redb::ReadableDatabase;

use super::tables::{self, DbResult};
use crate::{Error, Result};

/// The redb database and its path. `None` once closed: a read that was
/// still queued on the blocking pool when the last handle went gets an error
/// rather than keeping the file open.
pub(super) struct Db {
    pub(super) path: PathBuf,
    /// Read-locked by every transaction, write-locked by compaction and close
    /// (redb needs `&mut Database` for both).
    pub(super) database: RwLock<Option<redb::Database>>,
}

impl Db {
    pub(super) fn new(path: PathBuf, database: redb::Database) -> Self {
        Db {
            path,
            database: RwLock::new(Some(database)),
        }
    }

    /// Runs `f` on the open database.
    pub(super) fn with<R>(&self, f: impl FnOnce(&redb::Database) -> DbResult<R>) -> DbResult<R> {
        let database = self.database.read().unwrap_or_else(PoisonError::into_inner);
        match database.as_ref() {
            Some(database) => f(database),
            None => Err(redb::Error::DatabaseClosed),
        }
    }

    pub(super) fn close(&self) {
        let database = self
            .database
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(database);
    }

    pub(super) fn closed(&self) -> Error {
        db_error(&self.path, "use", redb::Error::DatabaseClosed)
    }
}

/// Turns a redb error into the crate's, naming the file and what was being
/// done (`doing` reads as "cannot {doing} the file"). The one place where
/// redb's errors are mapped; redb's text stays in `source()`.
pub(super) fn db_error(path: &Path, doing: &'static str, e: impl Into<redb::Error>) -> Error {
    let path = path.to_owned();
    match e.into() {
        redb::Error::DatabaseAlreadyOpen => Error::InUse { path },
        redb::Error::Io(source) => Error::Io {
            path,
            action: doing,
            source,
        },
        e => Error::Database {
            path,
            message: format!("could not {doing} it"),
            source: Some(Box::new(e)),
        },
    }
}

/// [`db_error`] for opening a file, which tells a file that is not redb at
/// all from a failure to open one.
pub(super) fn open_error(path: &Path, e: redb::Error) -> Error {
    match e {
        redb::Error::Io(source) if source.kind() == std::io::ErrorKind::InvalidData => {
            Error::Database {
                path: path.to_owned(),
                message: "not a kvstores database: the file is not a redb database at all; \
                      it was left unchanged"
                    .into(),
                source: Some(Box::new(source)),
            }
        }
        e => db_error(path, "open", e),
    }
}

/// [`db_error`] for each caller of a batch that failed as a whole.
pub(super) fn shared_error(path: &Path, doing: &'static str, e: &Arc<redb::Error>) -> Error {
    let path = path.to_owned();
    match &**e {
        redb::Error::Io(io) => Error::Io {
            path,
            action: doing,
            source: std::io::Error::new(io.kind(), e.clone()),
        },
        _ => Error::Database {
            path,
            message: format!("could not {doing} it"),
            source: Some(Box::new(e.clone())),
        },
    }
}

/// A key and value that redb cannot hold, `size` bytes together.
pub(super) fn too_large(size: usize) -> Error {
    Error::TooLarge { size: size as u64 }
}

/// Runs `f` on tokio's blocking pool.
pub(super) async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

pub(super) fn backup(db: &Db, dest: &Path) -> Result<()> {
    let io = |action, source| Error::Io {
        path: dest.to_owned(),
        action,
        source,
    };
    if dest.exists() {
        return Err(io(
            "write a backup to",
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "it already exists"),
        ));
    }
    let mut partial = dest.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = (|| {
        let _ = std::fs::remove_file(&partial);
        let copy = redb::Database::builder()
            .create(&partial)
            .map_err(|e| db_error(&partial, "create", e))?;
        db.with(|database| {
            let snapshot = database.begin_read()?;
            tables::copy_all(&snapshot, &copy)
        })
        .map_err(|e| db_error(&partial, "write to", e))?;
        copy.close().map_err(|e| db_error(&partial, "close", e))?;
        // A link, unlike a rename, never replaces a file that appeared at
        // `dest` meanwhile.
        std::fs::hard_link(&partial, dest).map_err(|e| io("write a backup to", e))?;
        std::fs::remove_file(&partial).map_err(|e| io("remove the temporary copy of", e))?;
        // The new name is durable once the directory is.
        let dir = match dest.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| io("sync the directory of", e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}
