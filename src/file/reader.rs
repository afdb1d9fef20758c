//! Reads: on the caller's thread when that cannot wait, otherwise on one
//! thread per open database that serves every lookup waiting at the moment
//! from one read transaction.
//!
//! A lookup of pages in redb's cache takes about a microsecond, far less
//! than handing it to another thread and back (tens of microseconds), so
//! [`Reader::get_many`] runs it inline, inside the caller's `poll`. It does
//! not when it could wait on this process: while the database must be
//! reopened, or a reopen, compaction or close holds it, or for more than
//! [`MAX_INLINE`] keys; those go to the reader thread, which may wait. What
//! an inline read can still wait on is the disk, for pages not in redb's
//! cache, and another process's header write in the multi-process mode
//! (DESIGN.md, "FileStore reads", has the worst case and why it is
//! accepted).
//!
//! On the thread, beginning a read transaction once per batch pays its cost
//! (a file lock in the multi-process mode) once for every reader waiting.
//!
//! A read begins its transaction after the caller's earlier writes were
//! acknowledged, so it sees them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use bytes::Bytes;
use redb::ReadableDatabase;

use super::db::{Db, db_error, shared_error};
use super::tables::{self, ENTRIES};
use super::worker::{Reply, Worker, drain};
use crate::Result;

/// The most lookups served from one read transaction of the thread.
const MAX_BATCH: usize = 1024;

/// The most lookups of one call served inline; more would hold the
/// caller's runtime worker for longer than a hand-off costs.
const MAX_INLINE: usize = 64;

/// A live entry as a read found it: its expiry, and its value if asked for.
pub(super) type Found = Option<(Option<u64>, Option<Bytes>)>;

pub(super) struct Lookup {
    /// The stored key.
    pub(super) key: Vec<u8>,
    /// The caller's clock reading: entries expired by then are not found.
    pub(super) now: u64,
    /// Whether to copy the value out; `exists` and `expires_in` do not.
    pub(super) value: bool,
}

/// One caller's lookups (one for `get`, several for `get_many`), all served
/// from the same read transaction.
struct Job {
    lookups: Vec<Lookup>,
    reply: Reply<Vec<Found>>,
}

/// Reads of one database: inline when they cannot wait, otherwise on its
/// reader thread.
pub(super) struct Reader {
    db: Arc<Db>,
    thread: Worker<Job>,
    /// Whether a lone read may be served inline: in the exclusive mode
    /// only, where beginning a read transaction touches no file lock.
    inline: bool,
    /// Reads of this database in progress in this process, inline or on
    /// the thread; counted only where `inline`.
    in_flight: AtomicUsize,
}

/// Counts a read in progress until dropped, also when the caller's future
/// is dropped while it waits for the thread.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Reader {
    /// Starts the reader thread of `db`; `inline` lets a lone read of an
    /// exclusive database skip it.
    pub(super) fn start(db: Arc<Db>, inline: bool) -> Result<Reader> {
        let path = db.path.clone();
        let served = db.clone();
        let thread = Worker::start("reader", path, move |queue| serve(&served, &queue))?;
        Ok(Reader {
            db,
            thread,
            inline,
            in_flight: AtomicUsize::new(0),
        })
    }

    /// Looks the entry up and returns it if it is live.
    pub(super) async fn get(&self, lookup: Lookup) -> Result<Found> {
        let mut found = self.get_many(vec![lookup]).await?;
        Ok(found.pop().flatten())
    }

    /// Looks every entry up in one read transaction, a snapshot, and
    /// returns those that are live, in order.
    pub(super) async fn get_many(&self, lookups: Vec<Lookup>) -> Result<Vec<Found>> {
        if !self.inline || lookups.len() > MAX_INLINE {
            return self.thread.call(|reply| Job { lookups, reply }).await;
        }
        // Alone, a read is served inline; among others it joins the
        // thread's next batch, whose one transaction serves them all.
        let alone = self.in_flight.fetch_add(1, Ordering::Relaxed) == 0;
        let _in_flight = InFlight(&self.in_flight);
        if alone {
            let inline = self.db.try_with(|database| {
                let txn = database.begin_read()?;
                let entries = txn.open_table(ENTRIES)?;
                lookups.iter().map(|l| look_up(&entries, l)).collect()
            });
            match inline {
                Some(Ok(found)) => return Ok(found),
                Some(Err(e)) => return Err(db_error(&self.db.path, "read", e)),
                None => {}
            }
        }
        self.thread.call(|reply| Job { lookups, reply }).await
    }
}

/// The entry of `lookup` in `entries`, if it is live.
fn look_up(
    entries: &redb::ReadOnlyTable<&[u8], (Option<u64>, &[u8])>,
    lookup: &Lookup,
) -> redb::Result<Found, redb::Error> {
    let Lookup { key, now, value } = lookup;
    let entry = redb::ReadableTable::get(entries, &key[..])?;
    Ok(entry.and_then(|entry| {
        let (at, bytes) = entry.value();
        tables::is_live(at, *now).then(|| (at, value.then(|| Bytes::copy_from_slice(bytes))))
    }))
}

fn serve(db: &Db, queue: &mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let batch = drain(first, queue, MAX_BATCH);
        let found = db.with(|database| {
            let txn = database.begin_read()?;
            let entries = txn.open_table(ENTRIES)?;
            batch
                .iter()
                .map(|job| job.lookups.iter().map(|l| look_up(&entries, l)).collect())
                .collect::<Result<Vec<Vec<Found>>, redb::Error>>()
        });
        match found {
            Ok(found) => {
                for (job, found) in batch.into_iter().zip(found) {
                    let _ = job.reply.send(Ok(found));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for job in batch {
                    let _ = job.reply.send(Err(shared_error(&db.path, "read", &e)));
                }
            }
        }
    }
}
