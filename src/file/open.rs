//! Opening a database file: the checks whose errors name the path, the probe
//! that refuses a file that is not a kvstores database without writing to it,
//! and the process-wide table of open databases.

use std::collections::HashMap;
use std::fs;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use redb::ReadableDatabase;

use super::Inner;
use super::db::{Db, Options, db_error, open_error};
use super::reader::Reader;
use super::tables::{self, Format};
use super::writer::Writer;
use crate::stats::Counters;
use crate::{Error, Result};

/// The databases open in this process, by canonical path. redb locks a file
/// per open file description, so a second `Database` on the same file in one
/// process would be a second, competing writer (and refused outright in
/// exclusive mode). Instead every open of one path shares one `Inner`: one
/// `Database`, one writer thread, one group of commits.
///
/// An entry is removed, under this lock, by the `Inner` that closes the
/// database, so an open never races a close of the same file.
static OPEN: LazyLock<Mutex<HashMap<PathBuf, Weak<Inner>>>> = LazyLock::new(Default::default);

pub(super) fn registry() -> MutexGuard<'static, HashMap<PathBuf, Weak<Inner>>> {
    OPEN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Opens (or joins) the database at `path`.
pub(super) fn open(path: &Path, create_directories: bool, options: Options) -> Result<Arc<Inner>> {
    if options.flush_every.is_some() && !options.exclusive {
        return Err(Error::invalid_argument(format!(
            "{}: periodic durability needs exclusive mode (redb refuses non-durable \
             commits in a file shared between processes)",
            path.display()
        )));
    }
    let canonical = canonical_path(path, create_directories)?;
    let mut open = registry();
    // An entry whose handles are all gone is being closed by its last
    // handle's drop, which removes it once the file is closed.
    while open.get(&canonical).is_some_and(|w| w.strong_count() == 0) {
        drop(open);
        std::thread::sleep(Duration::from_millis(1));
        open = registry();
    }
    if let Some(inner) = open.get(&canonical).and_then(Weak::upgrade) {
        if inner.options != options {
            let theirs = inner.options;
            // Not dropped under the registry lock: it may be the last handle,
            // whose drop takes that lock.
            drop(open);
            drop(inner);
            return Err(Error::AlreadyOpen {
                path: canonical,
                options: format!("{theirs:?}"),
            });
        }
        return Ok(inner);
    }
    let db = Arc::new(open_database(&canonical, options)?);
    let writer = Writer::start(db.clone(), options.flush_every)?;
    let reader = Reader::start(db.clone())?;
    let inner = Arc::new(Inner {
        db,
        writer: Some(writer),
        reader: Some(reader),
        options,
        stats: Counters::new(1),
        sweeper: Mutex::default(),
    });
    open.insert(canonical, Arc::downgrade(&inner));
    Ok(inner)
}

/// The absolute path of the database file with symlinks resolved, after
/// checking what can be checked before redb touches anything.
fn canonical_path(path: &Path, create_directories: bool) -> Result<PathBuf> {
    let io = |action, source| Error::Io {
        path: path.to_owned(),
        action,
        source,
    };
    let Some(name) = path.file_name() else {
        return Err(io(
            "open the database file",
            io::Error::new(ErrorKind::InvalidInput, "the path does not name a file"),
        ));
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if create_directories {
        fs::create_dir_all(parent).map_err(|e| io("create the directories of", e))?;
    }
    let parent = fs::canonicalize(parent).map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            io(
                "create a database (create_directories is off) in the missing directory of",
                e,
            )
        } else {
            io("open", e)
        }
    })?;
    let full = parent.join(name);
    match fs::metadata(&full) {
        Ok(meta) if meta.is_dir() => Err(io(
            "open",
            io::Error::new(
                ErrorKind::IsADirectory,
                "it is a directory, not a database file",
            ),
        )),
        Ok(_) => fs::canonicalize(&full).map_err(|e| io("open", e)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(full),
        Err(e) => Err(io("open", e)),
    }
}

/// Opens the file with redb and makes sure it is a kvstores database,
/// initializing it if it is new.
fn open_database(path: &Path, options: Options) -> Result<Db> {
    let exists = fs::metadata(path).is_ok_and(|m| m.len() > 0);
    if exists {
        probe(path, options)?;
    }
    let database = options
        .builder()
        .create(path)
        .map_err(|e| open_error(path, e.into()))?;
    let txn = database
        .begin_write()
        .map_err(|e| db_error(path, "initialize", e))?;
    let format = tables::initialize(&txn).map_err(|e| db_error(path, "initialize", e))?;
    if format == Format::Current {
        txn.commit().map_err(|e| db_error(path, "initialize", e))?;
    } else {
        drop(txn);
        return Err(format_error(path, format));
    }
    Db::new(path.to_owned(), database, options).map_err(|e| db_error(path, "open", e))
}

/// Looks at an existing file through a read-only handle, which cannot write
/// to it, and refuses it unless it is a kvstores database (or an empty redb
/// one). A writable open is not enough: redb records its shutdown state in
/// the file when a writable handle closes.
fn probe(path: &Path, options: Options) -> Result<()> {
    let database = match options.builder().open_read_only(path) {
        Ok(database) => database,
        // The file was not closed cleanly (a crash): only a writable open
        // can repair it, and a crash is what a kvstores database that was in
        // use would show. Its format is checked after the repair.
        Err(redb::DatabaseError::RepairAborted) => return Ok(()),
        Err(e) => return Err(open_error(path, e.into())),
    };
    let format = database
        .begin_read()
        .map_err(redb::Error::from)
        .and_then(|txn| tables::read_format(&txn))
        .map_err(|e| db_error(path, "read", e))?;
    match format {
        Format::Current | Format::Empty => Ok(()),
        other => Err(format_error(path, other)),
    }
}

fn format_error(path: &Path, format: Format) -> Error {
    let message = match format {
        Format::Version(v) => format!(
            "kvstores database format version {v}, but this version of kvstores reads \
             version {}; it was left unchanged",
            tables::FORMAT_VERSION
        ),
        _ => "not a kvstores database: a redb database of another program \
              (it has no kvstores.meta table); it was left unchanged"
            .into(),
    };
    Error::Database {
        path: path.to_owned(),
        message,
        source: None,
    }
}
