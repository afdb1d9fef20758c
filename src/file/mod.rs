//! [`FileStore`]: every namespace in one redb database file.
//!
//! # Design
//!
//! - `atomic` — `AtomicStore` and `BatchStore`: their writes are jobs of the
//!   writer thread, so each runs inside one write transaction.
//! - `db` — the shared database handle, redb's errors mapped to the crate's
//!   in one place, and the backup copy.
//! - `tables` — the persisted layout (an entries table and an expiry index
//!   ordered by time, format version 1) and every read and write on it.
//! - `writer` — group commit: one thread per database applies all writes
//!   waiting at the moment in one transaction, then replies to each caller.
//!   A write is a closure over `Tables` with its own result type.
//! - `reader` — lookups: inline on the caller's thread when that cannot
//!   wait on this process, otherwise on a reader thread; both read one
//!   read transaction that stays open while nothing is committed (`db`).
//! - `header` — how reads learn of other processes' commits: the file's
//!   header, compared through a read-only mapping.
//! - `sweep` — the opt-in background sweeper of expired entries.
//! - `worker` — the thread-and-channel plumbing the two share.
//! - `open` — path checks, the read-only probe that refuses a foreign file
//!   without touching it, and the process-wide table of open databases.
//!
//! The only redb work done on an async worker thread is a lookup of at
//! most 64 keys that can begin at once (about a microsecond on cached
//! pages; DESIGN.md says what a cold page costs). Writes go to the writer
//! thread, lookups that would wait to the reader thread, and backup,
//! listing and compaction to tokio's blocking pool (`spawn_blocking`, so
//! those need a tokio runtime).
//!
//! Concurrency modes, durability and what a crash or a clock jump does are
//! documented on [`FileStore`], where users read them.

mod atomic;
mod db;
mod header;
pub(crate) mod list;
mod open;
mod reader;
mod sweep;
mod tables;
mod worker;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::clock::{Clock, opt_ttl_millis, ttl_millis};
use crate::namespace::{table_key, table_prefix};
use crate::stats::{Counters, Event};
use crate::{NamespacedStore, Result, Store};
use db::Options;
use db::{Db, backup, blocking, db_error};
use reader::Reader;
use tables::{Fault, Tables};
use writer::Writer;

pub use list::FileUsage;

/// The most entries one chunk of `delete_expired` removes.
const EXPIRY_CHUNK: usize = 10_000;

/// How long one chunk of `delete_expired` (or of the sweeper) removes
/// entries before it commits what it has: a concurrent write waits about
/// this long plus a commit. A count alone made chunks too small where
/// entries are cheap (40 commits for 10,000 entries) or too slow where they
/// are not (a cold cache).
const EXPIRY_CHUNK_TIME: Duration = Duration::from_millis(5);

/// A persistent store in one redb database file: survives restarts and
/// crashes, and can be shared by several processes at once.
///
/// Cloning is cheap: clones share the open database. Opening a path that is
/// already open in this process gives a handle on the same database, and
/// other processes that open the same file see every write. Dropping the
/// last handle of a database commits its queued writes, makes them durable
/// and closes the file: outside an async runtime before the drop returns,
/// inside one on its blocking pool, which the runtime waits for when it
/// shuts down, so that a drop never stalls an async worker. A write whose
/// future is dropped before it completes may or may not be applied, but
/// never partly.
///
/// # Durability
///
/// By default a write's future completes only after the redb commit holding
/// it is durable ([`Durability::Immediate`](redb::Durability), an fsync):
/// an acknowledged write survives a crash of the process or of the machine.
/// Writers that are waiting at the same moment share one transaction and one
/// fsync (group commit), so many concurrent writers cost little more than
/// one. [`FileStoreBuilder::durability`] with
/// [`FileDurability::Periodic`] trades that for speed; it documents exactly
/// what a crash can lose.
///
/// # Sharing between processes
///
/// By default the file is opened in redb's multi-writer mode: any number of
/// processes open it and each sees the others' writes (one write
/// transaction runs at a time, across all of them). Each commit then takes
/// two fsyncs and each transaction a file lock. With
/// [`FileStoreBuilder::exclusive`] this process alone may open the file
/// (another one gets [`Error::InUse`](crate::Error::InUse)), commits take one fsync, and
/// [`FileDurability::Periodic`] becomes available.
///
/// # Performance
///
/// A write costs a commit, so a lone durable writer gets the disk's commit
/// rate; concurrent writers share commits, so their rate grows with their
/// number. A durable write that is the only one in flight, on a
/// multi-threaded tokio runtime, commits on the caller's thread inside
/// [`tokio::task::block_in_place`] (the runtime moves that worker's other
/// tasks to another thread meanwhile), which saves two thread hand-offs;
/// other writes go to the store's writer thread. `exclusive` halves the fsyncs of a commit, and
/// [`FileDurability::Periodic`] takes them off the write path. Reads never
/// wait for a commit, and run on the caller's thread from one read
/// transaction kept open while nothing is committed, in this process or,
/// in the default mode, another (a look at the file's header through a
/// read-only mapping tells): a cached lookup costs about a microsecond. On
/// a cold cache a read waits for the disk there, a few page reads, once
/// per page. A store that reads nothing for a second lets its transaction
/// go, so that redb can reuse the pages later commits freed.
/// `delete_expired` costs what has expired: its index
/// scan reads nothing else, but removing entries scattered through a large
/// file rewrites one page each. `BENCHMARKS.md` in the repository has the
/// figures of each configuration.
///
/// # Expiry and the clock
///
/// Expiry is persisted as wall-clock time (milliseconds since the Unix
/// epoch), so it means the same after a restart and in another process. If
/// the system clock jumps forward, entries expire early by that much; if it
/// jumps back, they live longer by that much, and
/// [`expires_in`](Store::expires_in) may report more than was set. An
/// expired entry is never returned, by any method, whether or not it has
/// been removed yet; [`delete_expired`](FileStore::delete_expired) removes
/// them, and reads only the expired part of the expiry index to find them;
/// [`FileStoreBuilder::sweep_every`] does the same in the background.
///
/// # A full disk and other I/O errors
///
/// While the file system is full, every write fails with
/// [`Error::Io`](crate::Error::Io) whose message names the file and "the
/// full file system", its source the operating system's error
/// ([`ErrorKind::StorageFull`](std::io::ErrorKind::StorageFull)); a write
/// that failed was not applied, nothing waits for space, and reads keep
/// working. As soon as there is space again the same handle takes writes:
/// nothing needs reopening. No acknowledged write is lost.
///
/// Behind this: redb refuses every later transaction of a database handle
/// that met an I/O error, so the store reopens the file before its next
/// use. Reopening repairs redb's bookkeeping from the last commit, which
/// reads the file: each write refused while the disk is full costs the next
/// operation a reopen (milliseconds on a small file; on a large one, the
/// time the file takes to open after a crash). Any transient I/O error is
/// handled the same way. With [`FileDurability::Periodic`], the reopen
/// loses the writes acknowledged since the last durable commit, as a crash
/// would. A file deleted meanwhile is not recreated: every use fails, naming
/// it, until the store is opened again.
///
/// The kernel refuses to remount a file system read-only while a file on it
/// is open for writing, as a store's is. A change of the permissions of the
/// file or its directory does not affect a store that has it open; a reopen
/// after an I/O error that is refused fails with
/// [`Error::Io`](crate::Error::Io) naming the file, and is tried again at
/// the next use.
///
/// # Crashes
///
/// redb's commits are atomic: a file left by a killed process or a power
/// loss opens again, holding exactly the last commit made durable. Opening it
/// repairs redb's bookkeeping first, which takes a moment on a large file.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use kvstores::{Bytes, FileStore, NamespacedStore, Store};
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("store.redb");
/// let store = FileStore::open(&path)?;
/// let sessions = store.with_namespace("sessions");
/// sessions.set("abc", Bytes::from_static(b"{}"), Some(Duration::from_secs(3600))).await?;
/// drop((store, sessions));
///
/// // Everything is still there after reopening the file.
/// let sessions = FileStore::open(&path)?.with_namespace("sessions");
/// assert_eq!(sessions.get("abc", None).await?, Some(Bytes::from_static(b"{}")));
/// # Ok::<_, kvstores::Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
    /// The namespace path, for `Debug` and `with_namespace`.
    namespace: Arc<[String]>,
    /// `table_prefix(namespace)`, computed once per handle.
    prefix: Arc<[u8]>,
    clock: Clock,
}

/// How durable an acknowledged write of a [`FileStore`] is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileDurability {
    /// Every commit is durable before its writers' futures complete: an
    /// acknowledged write survives a crash of the process or the machine.
    /// The default.
    #[default]
    Immediate,
    /// Commits are not synced to disk; a durable commit follows at most this
    /// long after the first one that was not. Writes are visible to this
    /// process at once. Needs [`FileStoreBuilder::exclusive`].
    ///
    /// A crash of the process or the machine loses the writes acknowledged
    /// since the last durable commit, up to this interval's worth, and
    /// nothing older; the file still opens, holding exactly the state of
    /// that last durable commit. Dropping the last handle of the store makes
    /// everything durable.
    Periodic(Duration),
}

/// Options for a [`FileStore`], from [`FileStore::builder`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use kvstores::{FileDurability, FileStore};
///
/// # let dir = tempfile::tempdir().unwrap();
/// let store = FileStore::builder(dir.path().join("cache/store.redb"))
///     .create_directories(true)
///     .exclusive(true)
///     .durability(FileDurability::Periodic(Duration::from_secs(1)))
///     .open()?;
/// # Ok::<_, kvstores::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct FileStoreBuilder {
    path: PathBuf,
    create_directories: bool,
    exclusive: bool,
    durability: FileDurability,
    clock: Clock,
    sweep_every: Option<Duration>,
}

impl FileStoreBuilder {
    /// Creates the file's missing parent directories on open. Off by
    /// default, so that a mistyped path is an error rather than a new tree.
    pub fn create_directories(mut self, create: bool) -> Self {
        self.create_directories = create;
        self
    }

    /// Opens the file for this process alone: faster commits (one fsync
    /// instead of two), and [`FileDurability::Periodic`] becomes available.
    /// Another process opening the file gets [`Error::InUse`](crate::Error::InUse), and so does
    /// this open if another process has the file open. Off by default.
    pub fn exclusive(mut self, exclusive: bool) -> Self {
        self.exclusive = exclusive;
        self
    }

    /// How durable an acknowledged write is; [`FileDurability::Immediate`]
    /// by default.
    pub fn durability(mut self, durability: FileDurability) -> Self {
        self.durability = durability;
        self
    }

    /// Uses `clock` for expiry instead of the system's wall clock, e.g. a
    /// [`ManualClock`](crate::ManualClock) in tests. The clock belongs to the
    /// handle: other handles on the same file keep their own.
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// Opens the database file, creating it if it does not exist.
    ///
    /// This is synchronous: opening a file left by a crash repairs it first,
    /// which reads the whole file. In async code, call it from
    /// `spawn_blocking` if that may take long.
    ///
    /// # Errors
    ///
    /// Every error names the path, and a file that is refused is left as it
    /// was:
    ///
    /// - [`Error::Io`](crate::Error::Io): the path is a directory, its directory is missing
    ///   (and `create_directories` is off), or permission is denied;
    /// - [`Error::Database`](crate::Error::Database): the file is not a kvstores database (not redb
    ///   at all, or another program's redb database), or redb failed. (One
    ///   exception to "left as it was": another program's redb file that
    ///   was not closed cleanly is repaired by redb before it is refused.)
    /// - [`Error::InUse`](crate::Error::InUse): another process has the file open and one of the
    ///   two asked for [`exclusive`](Self::exclusive) access;
    /// - [`Error::InvalidArgument`](crate::Error::InvalidArgument): [`FileDurability::Periodic`] without
    ///   exclusive mode;
    /// - [`Error::AlreadyOpen`](crate::Error::AlreadyOpen): the file is already open in this process
    ///   with other options.
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::{Error, FileStore};
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let missing = dir.path().join("no/such/dir/store.redb");
    /// assert!(matches!(FileStore::open(&missing), Err(Error::Io { .. })));
    /// FileStore::builder(&missing).create_directories(true).open()?;
    /// # Ok::<_, kvstores::Error>(())
    /// ```
    pub fn open(self) -> Result<FileStore> {
        let options = Options {
            exclusive: self.exclusive,
            flush_every: match self.durability {
                FileDurability::Immediate => None,
                FileDurability::Periodic(every) => Some(every),
            },
        };
        let inner = open::open(&self.path, self.create_directories, options)?;
        let store = FileStore {
            inner,
            namespace: Arc::from([]),
            prefix: Arc::from([]),
            clock: self.clock,
        };
        if let Some(interval) = self.sweep_every {
            store.start_sweeper(interval)?;
        }
        Ok(store)
    }
}

impl FileStore {
    /// Opens the database file at `path` with the default options, creating
    /// the file (not its directory) if it does not exist.
    ///
    /// # Errors
    ///
    /// As [`FileStoreBuilder::open`].
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::FileStore;
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = FileStore::open(dir.path().join("store.redb"))?;
    /// # Ok::<_, kvstores::Error>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<FileStore> {
        Self::builder(path).open()
    }

    /// Starts building a store on the file at `path`, with options.
    pub fn builder(path: impl AsRef<Path>) -> FileStoreBuilder {
        FileStoreBuilder {
            path: path.as_ref().to_owned(),
            create_directories: false,
            exclusive: false,
            durability: FileDurability::default(),
            clock: Clock::system(),
            sweep_every: None,
        }
    }

    /// The database file, as an absolute path.
    pub fn path(&self) -> &Path {
        &self.inner.db.path
    }

    /// The namespace path of this handle, from the root store down.
    pub fn namespace(&self) -> &[String] {
        &self.namespace
    }

    /// Removes every expired entry of this namespace and its descendants,
    /// returning how many it removed.
    ///
    /// It reads only the expired part of the expiry index (of the whole
    /// file, since the index is ordered by time), never the live entries,
    /// and removes entries in chunks of at most 10,000 entries or about 5 ms
    /// of work, each a write of its own that shares a group commit with the
    /// other writes waiting then: a concurrent write waits for one chunk,
    /// not for the whole removal.
    /// Entries that expire while it runs may or may not be removed.
    ///
    /// # Errors
    ///
    /// [`Error::Database`](crate::Error::Database) or
    /// [`Error::Io`](crate::Error::Io) if a commit fails; the chunks
    /// committed before it stay removed, and the call can be repeated.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use kvstores::{Bytes, FileStore, ManualClock, Store};
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let clock = ManualClock::new();
    /// let store = FileStore::builder(dir.path().join("store.redb")).clock(clock.clone()).open()?;
    /// store.set("k", Bytes::new(), Some(Duration::from_secs(1))).await?;
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(store.delete_expired().await?, 1);
    /// # Ok::<_, kvstores::Error>(()) }).unwrap();
    /// ```
    pub async fn delete_expired(&self) -> Result<usize> {
        let now = self.clock.unix_millis();
        let mut after = None;
        let mut removed = 0;
        loop {
            let prefix = self.prefix.clone();
            let (n, next) = (self.write(move |tables| {
                Ok(tables.delete_expired_chunk(
                    &prefix,
                    now,
                    after.as_ref(),
                    EXPIRY_CHUNK,
                    EXPIRY_CHUNK_TIME,
                )?)
            }))
            .await?;
            self.inner.stats.add(0, Event::Expiration, n as u64);
            removed += n;
            match next {
                Some(next) => after = Some(next),
                None => return Ok(removed),
            }
        }
    }

    /// Writes a consistent copy of the whole database (every namespace, not
    /// only this handle's) to a new file at `path`, while writers go on.
    ///
    /// The copy is of one snapshot: it holds every write committed before the
    /// call and none committed after. It is written next to `path` under a
    /// temporary name (`path` + `.partial`) and linked into place once
    /// durable, so `path` either does not exist or holds a complete database. The copy is also compact:
    /// it has no free space.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) if `path` already exists (it is never overwritten) or
    /// cannot be written; [`Error::Database`](crate::Error::Database) if reading or writing fails.
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::{Bytes, FileStore, Store};
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = FileStore::open(dir.path().join("store.redb"))?;
    /// store.set("k", Bytes::from_static(b"v"), None).await?;
    /// store.backup_to(dir.path().join("backup.redb")).await?;
    ///
    /// let copy = FileStore::open(dir.path().join("backup.redb"))?;
    /// assert!(copy.exists("k").await?);
    /// # Ok::<_, kvstores::Error>(()) }).unwrap();
    /// ```
    pub async fn backup_to(&self, path: impl AsRef<Path>) -> Result<()> {
        let dest = path.as_ref().to_owned();
        let db = self.inner.db.clone();
        blocking(move || backup(&db, &dest)).await
    }

    /// Returns the file's free space to the file system, after many entries
    /// were deleted. Returns whether the file could shrink.
    ///
    /// redb reuses freed pages for new writes, but the file does not shrink
    /// by itself. Compaction moves pages to the front and truncates the
    /// file. It waits for this process's reads and writes in progress and
    /// holds them back while it runs, which takes time proportional to the
    /// file's size; in the default multi-process mode it also holds back the
    /// other processes. An alternative that never blocks writers is
    /// [`backup_to`](Self::backup_to), whose copy is compact, followed by
    /// replacing the file while no process has it open.
    ///
    /// # Errors
    ///
    /// [`Error::Database`](crate::Error::Database) if redb cannot compact now, e.g. because another
    /// process has a transaction in progress; nothing is lost then, and it
    /// can be tried again.
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::{Bytes, FileStore, Store};
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = FileStore::open(dir.path().join("store.redb"))?;
    /// store.set("big", Bytes::from(vec![0u8; 1 << 20]), None).await?;
    /// store.delete_all().await?;
    /// store.compact().await?;
    /// # Ok::<_, kvstores::Error>(()) }).unwrap();
    /// ```
    pub async fn compact(&self) -> Result<bool> {
        let db = self.inner.db.clone();
        blocking(move || {
            // redb repeats its passes until one makes no progress.
            (db.with_mut(|database| Ok(database.compact()?)))
                .map_err(|e| db_error(&db.path, "compact", e))
        })
        .await
    }

    /// Runs `apply` on the writer thread, in the transaction of the next
    /// group commit, and returns its result once that commit is done.
    async fn write<R, F>(&self, apply: F) -> Result<R>
    where
        F: FnMut(&mut Tables<'_>) -> Result<R, Fault> + Send + 'static,
        R: Send + 'static,
    {
        self.inner.writer().write(apply).await
    }

    /// The stored form of this namespace's `key`, once it is known that redb
    /// can hold it with `value`: an entry too large is refused here, before
    /// it reaches a group commit.
    fn stored_key(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        let key = table_key(&self.prefix, key);
        match key.len().saturating_add(value.len()) {
            size if size > tables::MAX_ENTRY => Err(db::too_large(size)),
            _ => Ok(key),
        }
    }

    /// Looks `key` up (inline, or on the reader thread if that would wait):
    /// its expiry and, if `value`, its value, when it is there and live.
    async fn read(&self, key: &str, value: bool) -> Result<reader::Found> {
        let lookup = reader::Lookup {
            key: table_key(&self.prefix, key),
            now: self.clock.unix_millis(),
            value,
        };
        self.inner.reader().get(lookup).await
    }
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.inner.db.path)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Store for FileStore {
    async fn set(&self, key: &str, value: Bytes, expires_in: Option<Duration>) -> Result<()> {
        let ttl = opt_ttl_millis(expires_in, "expires_in")?;
        let expires_at = ttl.map(|ms| self.clock.unix_millis().saturating_add(ms));
        let key = self.stored_key(key, &value)?;
        self.write(move |tables| Ok(tables.set(&key, &value, expires_at)?))
            .await?;
        self.inner.stats.one(Event::Set);
        Ok(())
    }

    async fn get(&self, key: &str, renew_for: Option<Duration>) -> Result<Option<Bytes>> {
        let value = self.get_or_renew(key, renew_for).await?;
        let event = Event::lookup(&value);
        self.inner.stats.one(event);
        Ok(value)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let key = table_key(&self.prefix, key);
        self.write(move |tables| Ok(tables.delete(&key)?)).await?;
        self.inner.stats.one(Event::Delete);
        Ok(())
    }

    async fn delete_all(&self) -> Result<()> {
        let prefix = self.prefix.to_vec();
        self.write(move |tables| Ok(tables.delete_range(&prefix)?))
            .await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.read(key, false).await?.is_some())
    }

    async fn expires_in(&self, key: &str) -> Result<Option<Duration>> {
        let now = self.clock.unix_millis();
        let at = self.read(key, false).await?.and_then(|(at, _)| at);
        // The read saw the entry live at its own (later or equal) reading of
        // the clock, so `at > now` here.
        Ok(at.map(|at| Duration::from_millis(at.saturating_sub(now).max(1))))
    }
}

impl FileStore {
    async fn get_or_renew(&self, key: &str, renew_for: Option<Duration>) -> Result<Option<Bytes>> {
        let Some(renew_for) = renew_for else {
            return Ok(self.read(key, true).await?.and_then(|(_, value)| value));
        };
        let ms = ttl_millis(renew_for, "renew_for")?;
        let now = self.clock.unix_millis();
        let key = table_key(&self.prefix, key);
        let expires_at = now.saturating_add(ms);
        self.write(move |tables| Ok(tables.renew(&key, now, expires_at)?))
            .await
    }
}

impl NamespacedStore for FileStore {
    fn with_namespace(&self, namespace: &str) -> Self {
        let mut path = self.namespace.to_vec();
        path.push(namespace.to_owned());
        FileStore {
            inner: self.inner.clone(),
            prefix: table_prefix(&path).into(),
            namespace: path.into(),
            clock: self.clock.clone(),
        }
    }
}

/// One open database, shared by every handle on its file in this process.
struct Inner {
    db: Arc<Db>,
    /// `Some` until dropped; taken first on drop so that the queued writes
    /// are committed before the database closes.
    writer: Option<Writer>,
    /// `Some` until dropped, like `writer`.
    reader: Option<Reader>,
    options: Options,
    /// Counted for every handle on this database in this process.
    stats: Counters,
    /// The background sweeper, once an open asked for one.
    sweeper: std::sync::Mutex<Option<crate::sweeper::Sweeper>>,
}

impl Inner {
    fn writer(&self) -> &Writer {
        self.writer
            .as_ref()
            .expect("the writer lives as long as the Inner")
    }

    fn reader(&self) -> &Reader {
        self.reader
            .as_ref()
            .expect("the reader lives as long as the Inner")
    }
}

impl Drop for Inner {
    /// Closing waits for the queued writes to commit and for the threads to
    /// return, so inside an async runtime it runs on the runtime's blocking
    /// pool rather than stalling a worker; the runtime waits for it when it
    /// shuts down (the end of `#[tokio::main]`), so the file is still closed
    /// cleanly. An open of the same path in this process meanwhile waits for
    /// it (see `open::open`).
    fn drop(&mut self) {
        let closing = Closing {
            sweeper: self.sweeper.get_mut().ok().and_then(Option::take),
            writer: self.writer.take(),
            reader: self.reader.take(),
            db: self.db.clone(),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            // A runtime shutting down drops the task unrun, and with it
            // `closing`: the file is then closed in place.
            runtime.spawn_blocking(move || drop(closing));
        }
    }
}

/// What closing a database takes, in the order it is dropped: the sweeper
/// first (a tick must not find the writer gone), then the writer (which
/// commits what is queued), the reader, and the file.
struct Closing {
    sweeper: Option<crate::sweeper::Sweeper>,
    writer: Option<Writer>,
    reader: Option<Reader>,
    db: Arc<Db>,
}

impl Drop for Closing {
    fn drop(&mut self) {
        drop(self.sweeper.take());
        drop(self.writer.take());
        drop(self.reader.take());
        self.db.close();
        let mut open = open::registry();
        if open
            .get(&self.db.path)
            .is_some_and(|w| w.strong_count() == 0)
        {
            open.remove(&self.db.path);
        }
    }
}
