//! The database handle every thread of a `FileStore` shares, how it reopens
//! itself after an I/O error, the one place where redb's errors become the
//! crate's, and the backup copy.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redb::{ConcurrencyMode, ReadableDatabase};

use super::header::{Header, HeaderView};
use super::tables::{self, DbResult, ENTRIES, EntriesTable};
use crate::{Error, Result};

/// What a database is opened with; the same for every handle of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Options {
    pub(super) exclusive: bool,
    pub(super) flush_every: Option<Duration>,
}

impl Options {
    pub(super) fn builder(self) -> redb::Builder {
        let mut builder = redb::Database::builder();
        builder.set_concurrency_mode(if self.exclusive {
            ConcurrencyMode::ExclusiveWriter
        } else {
            ConcurrencyMode::MultiWriter
        });
        builder
    }
}

/// The redb database of one file, shared by the writer, the reader and the
/// blocking pool.
///
/// After an I/O error (a full disk, a failing device) redb refuses every
/// later transaction of that `Database` ("previous I/O error"; in the
/// multi-process mode reads too), until it is closed and opened again. So
/// an error that poisons it marks the slot broken, and the next use of the
/// database, from any thread, reopens the file first: redb then repairs its
/// bookkeeping from the last commit, which every acknowledged write is part
/// of. While the cause lasts, each write fails again and the next use
/// reopens again; once it is gone, the first reopen sticks.
pub(super) struct Db {
    pub(super) path: PathBuf,
    options: Options,
    /// Read-locked by every transaction, write-locked by reopening,
    /// compaction and close (redb needs `&mut Database` for the last two).
    slot: RwLock<Slot>,
    /// Counts the write transactions of this process that have ended; a
    /// snapshot begun before the latest may miss what it committed.
    commits: AtomicU64,
    /// Held through each write transaction and the handling of its error,
    /// so that a write that fails marks the handle for a reopen before the
    /// next one begins on it (the writer thread and a lone caller's thread
    /// both write).
    writing: Mutex<()>,
}

struct Slot {
    /// `None` once closed, or after a reopen that failed.
    database: Option<redb::Database>,
    /// The database must be reopened before its next use.
    broken: bool,
    /// Counts reopens, so that an error of a handle already replaced does not
    /// break its successor.
    generation: u64,
    /// The read transaction reads share while nothing was committed since
    /// it began (DESIGN.md, "FileStore reads").
    snapshot: ArcSwapOption<Snapshot>,
    /// In the multi-process mode, the file's header: how reads learn of
    /// other processes' commits.
    header: Option<HeaderView>,
}

/// A read transaction kept open for the reads that come after it, and what
/// tells whether it still shows every acknowledged commit.
struct Snapshot {
    entries: EntriesTable,
    /// [`Db::commits`] when it began.
    commits: u64,
    /// The file's header as read just before it began (multi-process mode).
    header: Option<Header>,
    /// Whether a read used it since the reader thread last looked; an idle
    /// snapshot is dropped (see [`Db::release_idle_snapshot`]).
    used: AtomicBool,
}

impl Slot {
    fn new(path: &Path, database: redb::Database, options: Options) -> DbResult<Slot> {
        let header = if options.exclusive {
            None
        } else {
            Some(HeaderView::open(path)?)
        };
        Ok(Slot {
            database: Some(database),
            broken: false,
            generation: 0,
            snapshot: ArcSwapOption::empty(),
            header,
        })
    }

    /// Runs `f` on a snapshot that shows every commit of this process
    /// counted in `commits` (read by the caller before this call) and, in
    /// the multi-process mode, every commit of another process acknowledged
    /// before this call: the cached one while the header still reads the
    /// same and nothing was committed here since, otherwise a new one.
    fn read<R>(
        &self,
        database: &redb::Database,
        commits: u64,
        f: impl FnOnce(&EntriesTable) -> DbResult<R>,
    ) -> DbResult<R> {
        // A guard, not a clone: loading touches no count shared with the
        // other threads reading.
        let cached = self.snapshot.load();
        if let Some(snapshot) = &*cached
            && snapshot.commits == commits
            && match (&self.header, &snapshot.header) {
                (Some(view), Some(header)) => view.matches(header)?,
                _ => true,
            }
        {
            if !snapshot.used.load(Ordering::Relaxed) {
                snapshot.used.store(true, Ordering::Relaxed);
            }
            return f(&snapshot.entries);
        }
        drop(cached);
        // Read before beginning, so that a commit landing in between makes
        // the next read begin again rather than be missed.
        let header = self.header.as_ref().map(HeaderView::read).transpose()?;
        let txn = database.begin_read()?;
        let fresh = Arc::new(Snapshot {
            entries: txn.open_table(ENTRIES)?,
            commits,
            header,
            used: AtomicBool::new(true),
        });
        let result = f(&fresh.entries);
        // Whichever of two readers beginning at once stores last wins; the
        // loser's snapshot ends with its read.
        self.snapshot.store(Some(fresh));
        result
    }

    /// Ends the cached snapshot, so that redb may reuse the pages it holds.
    /// Under the slot's write lock (compaction, close, reopen), no reader
    /// holds it any more, so its transaction ends here.
    fn forget_snapshot(&self) {
        self.snapshot.store(None);
    }
}

impl Db {
    pub(super) fn new(path: PathBuf, database: redb::Database, options: Options) -> DbResult<Self> {
        let slot = Slot::new(&path, database, options)?;
        Ok(Db {
            path,
            options,
            slot: RwLock::new(slot),
            commits: AtomicU64::new(0),
            writing: Mutex::new(()),
        })
    }

    /// Runs `f` on the open database, reopening it first if an earlier I/O
    /// error left it poisoned.
    pub(super) fn with<R>(&self, f: impl FnOnce(&redb::Database) -> DbResult<R>) -> DbResult<R> {
        self.with_slot(|_, database| f(database))
    }

    /// Runs `f`, a write transaction, on the open database like
    /// [`with`](Self::with); the reads that begin after it returns see
    /// what it committed.
    pub(super) fn write<R>(&self, f: impl FnOnce(&redb::Database) -> DbResult<R>) -> DbResult<R> {
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        self.with_slot(|slot, database| {
            let result = f(database);
            // Also after a failure: an error from `commit` may come after
            // the commit landed.
            self.commits.fetch_add(1, Ordering::Release);
            // Lets redb reuse the pages this commit freed without waiting
            // for the next read to replace the snapshot.
            slot.forget_snapshot();
            result
        })
    }

    /// Runs `f` on a snapshot of the entries that shows every write
    /// acknowledged before this call, in this process or another;
    /// reopening the database first like [`with`](Self::with).
    pub(super) fn read<R>(&self, f: impl FnOnce(&EntriesTable) -> DbResult<R>) -> DbResult<R> {
        let commits = self.commits.load(Ordering::Acquire);
        self.with_slot(|slot, database| slot.read(database, commits, f))
    }

    /// [`read`](Self::read) at once, unless that could wait on this
    /// process: see [`try_with_slot`](Self::try_with_slot).
    pub(super) fn try_read<R>(
        &self,
        f: impl FnOnce(&EntriesTable) -> DbResult<R>,
    ) -> Option<DbResult<R>> {
        let commits = self.commits.load(Ordering::Acquire);
        self.try_with_slot(|slot, database| slot.read(database, commits, f))
    }

    /// Ends the cached snapshot if no read used it since the last call, so
    /// that an idle store does not keep redb, here and in other processes,
    /// from reusing the pages later commits freed.
    pub(super) fn release_idle_snapshot(&self) {
        let Some(slot) = self.try_slot() else { return };
        let idle = match &*slot.snapshot.load() {
            Some(snapshot) => !snapshot.used.swap(false, Ordering::Relaxed),
            None => false,
        };
        if idle {
            slot.forget_snapshot();
        }
    }

    fn with_slot<R>(&self, f: impl FnOnce(&Slot, &redb::Database) -> DbResult<R>) -> DbResult<R> {
        let mut slot = self.read_slot();
        if slot.broken {
            drop(slot);
            self.reopen()?;
            slot = self.read_slot();
        }
        let generation = slot.generation;
        let result = match &slot.database {
            Some(database) => f(&slot, database),
            None => Err(redb::Error::DatabaseClosed),
        };
        drop(slot);
        if let Err(redb::Error::Io(_) | redb::Error::PreviousIo) = &result {
            let mut slot = self.write_slot();
            slot.broken |= slot.generation == generation && slot.database.is_some();
        }
        result
    }

    /// Runs `f` at once unless that could wait on this process: `None`,
    /// without a result, when the database must be reopened first, when a
    /// reopen, compaction or close holds or waits for the slot (each takes
    /// long), or when `f` met an I/O error (marking the database for a
    /// reopen takes the slot). The caller then runs `f` through
    /// [`with_slot`](Self::with_slot) on a thread that may wait.
    fn try_with_slot<R>(
        &self,
        f: impl FnOnce(&Slot, &redb::Database) -> DbResult<R>,
    ) -> Option<DbResult<R>> {
        let slot = self.try_slot()?;
        if slot.broken {
            return None;
        }
        match &slot.database {
            Some(database) => match f(&slot, database) {
                Err(redb::Error::Io(_) | redb::Error::PreviousIo) => None,
                result => Some(result),
            },
            None => Some(Err(redb::Error::DatabaseClosed)),
        }
    }

    /// The slot if it can be had at once. `try_read` also fails while a
    /// writer waits for the lock, so a stream of reads never holds off a
    /// compaction or a reopen.
    fn try_slot(&self) -> Option<RwLockReadGuard<'_, Slot>> {
        match self.slot.try_read() {
            Ok(slot) => Some(slot),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Runs `f` with the database to itself: no transaction is running.
    pub(super) fn with_mut<R>(
        &self,
        f: impl FnOnce(&mut redb::Database) -> DbResult<R>,
    ) -> DbResult<R> {
        let mut slot = self.write_slot();
        slot.forget_snapshot();
        match &mut slot.database {
            Some(database) => f(database),
            None => Err(redb::Error::DatabaseClosed),
        }
    }

    /// Closes the poisoned database and opens the file again. The old handle
    /// goes first: it holds the file's lock, which the new one takes.
    fn reopen(&self) -> DbResult<()> {
        let mut slot = self.write_slot();
        if !slot.broken {
            return Ok(()); // Another thread reopened it meanwhile.
        }
        slot.forget_snapshot();
        slot.database = None;
        // `open`, not `create`: a file deleted meanwhile is not replaced by
        // an empty one.
        let database = self.options.builder().open(&self.path)?;
        // The header of the file now open, should it be another one.
        let fresh = Slot::new(&self.path, database, self.options)?;
        slot.database = fresh.database;
        slot.header = fresh.header;
        slot.broken = false;
        slot.generation += 1;
        Ok(())
    }

    pub(super) fn close(&self) {
        let mut slot = self.write_slot();
        slot.broken = false;
        slot.forget_snapshot();
        drop(slot.database.take());
    }

    fn read_slot(&self) -> RwLockReadGuard<'_, Slot> {
        self.slot.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_slot(&self) -> RwLockWriteGuard<'_, Slot> {
        self.slot.write().unwrap_or_else(PoisonError::into_inner)
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
            action: io_action(doing, source.kind()),
            source,
        },
        e => Error::Database {
            path,
            message: format!("could not {doing} it"),
            source: Some(Box::new(e)),
        },
    }
}

/// What was being done, naming the two causes a long-lived program meets
/// most and can fix: a full or a read-only file system. The message then
/// tells the user what to do without the cause's own text.
fn io_action(doing: &'static str, kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => "write to the full file system of",
        ErrorKind::ReadOnlyFilesystem => "write to the read-only file system of",
        _ => doing,
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
            action: io_action(doing, io.kind()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path, exclusive: bool) -> Db {
        let path = dir.join("t.redb");
        let options = Options {
            exclusive,
            flush_every: None,
        };
        let database = options.builder().create(&path).unwrap();
        let txn = database.begin_write().unwrap();
        tables::initialize(&txn).unwrap();
        txn.commit().unwrap();
        Db::new(path, database, options).unwrap()
    }

    fn cached(db: &Db) -> bool {
        db.read_slot().snapshot.load().is_some()
    }

    /// A snapshot some read used since the last look survives it; one no
    /// read used is let go, and the next read begins a new one.
    #[test]
    fn an_unused_snapshot_is_let_go_at_the_second_look() {
        for exclusive in [false, true] {
            let dir = tempfile::TempDir::new().unwrap();
            let db = open(dir.path(), exclusive);
            db.read(|_| Ok(())).unwrap();
            assert!(cached(&db));
            db.release_idle_snapshot(); // used since it began: kept
            assert!(cached(&db));
            db.read(|_| Ok(())).unwrap();
            db.release_idle_snapshot(); // used again: kept
            assert!(cached(&db));
            db.release_idle_snapshot(); // unused since: let go
            assert!(!cached(&db));
            db.read(|_| Ok(())).unwrap();
            assert!(cached(&db));
        }
    }

    /// A write of this process ends the snapshot at once, and the next read
    /// sees what it committed.
    #[test]
    fn a_commit_ends_the_snapshot_and_the_next_read_sees_it() {
        let dir = tempfile::TempDir::new().unwrap();
        let db = open(dir.path(), false);
        let found = |db: &Db| {
            db.read(|entries| Ok(redb::ReadableTable::get(entries, &b"k"[..])?.is_some()))
                .unwrap()
        };
        assert!(!found(&db));
        db.write(|database| {
            let txn = database.begin_write()?;
            tables::Tables::open(&txn)?.set(b"k", b"v", None)?;
            txn.commit()?;
            Ok(())
        })
        .unwrap();
        assert!(!cached(&db));
        assert!(found(&db));
    }
}
