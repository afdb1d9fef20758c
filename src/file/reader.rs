//! Reads: on the caller's thread when that cannot wait on this process,
//! otherwise on one thread per open database.
//!
//! Every read is served from one read transaction that stays open while
//! nothing is committed ([`Db::read`]): a lookup of pages in redb's cache
//! then costs about a microsecond, plus, in the multi-process mode, one
//! `pread` of the file's header to learn of other processes' commits. That
//! is far less than beginning a transaction per read (file locks in the
//! multi-process mode) or handing the read to another thread and back
//! (tens of microseconds), so [`Reader::get_many`] runs it inline, inside
//! the caller's `poll`. It does not when it could wait on this process:
//! while the database must be reopened, or a reopen, compaction or close
//! holds it, or for more than [`MAX_INLINE`] keys; those go to the reader
//! thread, which may wait. What an inline read can still wait on is the
//! disk, for pages not in redb's cache, and another process's header write
//! (DESIGN.md, "FileStore reads", has the worst case and why it is
//! accepted).
//!
//! A read checks its snapshot after the caller's earlier writes were
//! acknowledged, so it sees them.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use bytes::Bytes;

use super::db::{Db, db_error, shared_error};
use super::tables::{self, EntriesTable};
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

/// How long the reader thread lets a snapshot no read uses stay open.
/// While open, it keeps redb, in this process and others, from reusing the
/// pages that later commits freed, so the file may grow for that long.
const IDLE: Duration = Duration::from_secs(1);

/// Reads of one database: inline when they cannot wait, otherwise on its
/// reader thread.
pub(super) struct Reader {
    db: Arc<Db>,
    thread: Worker<Job>,
}

impl Reader {
    /// Starts the reader thread of `db`.
    pub(super) fn start(db: Arc<Db>) -> Result<Reader> {
        let path = db.path.clone();
        let served = db.clone();
        let thread = Worker::start("reader", path, move |queue| serve(&served, &queue))?;
        Ok(Reader { db, thread })
    }

    /// Looks the entry up and returns it if it is live.
    pub(super) async fn get(&self, lookup: Lookup) -> Result<Found> {
        let mut found = self.get_many(vec![lookup]).await?;
        Ok(found.pop().flatten())
    }

    /// Looks every entry up in one read transaction, a snapshot, and
    /// returns those that are live, in order.
    pub(super) async fn get_many(&self, lookups: Vec<Lookup>) -> Result<Vec<Found>> {
        if lookups.len() <= MAX_INLINE {
            let inline = self
                .db
                .try_read(|entries| lookups.iter().map(|l| look_up(entries, l)).collect());
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
fn look_up(entries: &EntriesTable, lookup: &Lookup) -> redb::Result<Found, redb::Error> {
    let Lookup { key, now, value } = lookup;
    let entry = redb::ReadableTable::get(entries, &key[..])?;
    Ok(entry.and_then(|entry| {
        let (at, bytes) = entry.value();
        tables::is_live(at, *now).then(|| (at, value.then(|| Bytes::copy_from_slice(bytes))))
    }))
}

fn serve(db: &Db, queue: &mpsc::Receiver<Job>) {
    loop {
        let first = match queue.recv_timeout(IDLE) {
            Ok(first) => first,
            Err(RecvTimeoutError::Timeout) => {
                db.release_idle_snapshot();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let batch = drain(first, queue, MAX_BATCH);
        let found = db.read(|entries| {
            batch
                .iter()
                .map(|job| job.lookups.iter().map(|l| look_up(entries, l)).collect())
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
