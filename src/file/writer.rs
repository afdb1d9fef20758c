//! Group commit: one thread per open database turns every write waiting at
//! the moment into one redb write transaction.
//!
//! A write is a closure over [`Tables`] with its own result type, sent down a
//! channel with a reply channel of that type. The thread takes the first job,
//! drains whatever else is queued (up to [`MAX_BATCH`]), applies them in
//! order in one transaction, commits, and only then replies to each. So a
//! caller's future completes once the commit holding its write has returned:
//! durable with [`Durability::Immediate`], visible (and durable at the next
//! flush) with [`Durability::None`]. While one batch commits the next one
//! queues, so the commit rate, not the caller count, bounds throughput.
//!
//! A dedicated thread rather than `spawn_blocking` per batch: the batch
//! boundary then falls naturally where the thread comes back for more, and
//! redb's one-writer-at-a-time rule is kept without a lock.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use redb::{Durability, StorageError};

use super::db::{Db, shared_error, too_large};
use super::tables::{Fault, Tables};
use super::worker::{Reply, Worker, drain};
use crate::{Error, Result};

/// The most jobs one transaction holds, so that a flood of writers still
/// gets replies at a steady pace.
const MAX_BATCH: usize = 4096;

/// A queued write of any result type, as the thread sees it.
trait Pending: Send {
    /// Runs the write in `tables`, keeping its own result until the commit.
    /// An error abandons the transaction.
    fn apply(&mut self, tables: &mut Tables<'_>) -> Result<(), StorageError>;
    /// Replies with the kept result, or with `failed` when the write was not
    /// committed.
    fn reply(self: Box<Self>, failed: Option<Error>);
}

struct Job<F, R> {
    /// Re-runnable: an abandoned transaction is retried without the write
    /// that was too large, re-applying the others.
    apply: F,
    result: Option<Result<R>>,
    reply: Reply<R>,
}

impl<F, R> Pending for Job<F, R>
where
    F: FnMut(&mut Tables<'_>) -> Result<R, Fault> + Send,
    R: Send,
{
    fn apply(&mut self, tables: &mut Tables<'_>) -> Result<(), StorageError> {
        self.result = match (self.apply)(tables) {
            Ok(done) => Some(Ok(done)),
            Err(Fault::Refused(e)) => Some(Err(e)),
            Err(Fault::Storage(e)) => return Err(e),
        };
        Ok(())
    }

    fn reply(self: Box<Self>, failed: Option<Error>) {
        let result = match (failed, self.result) {
            (Some(e), _) | (None, Some(Err(e))) => Err(e),
            (None, Some(Ok(done))) => Ok(done),
            (None, None) => unreachable!("a committed write was applied"),
        };
        let _ = self.reply.send(result);
    }
}

type Queued = Box<dyn Pending>;

/// The handle to a database's writer thread. Dropping it lets the thread
/// commit the queued jobs, make everything durable and exit, and waits for
/// that.
pub(super) struct Writer(Worker<Queued>);

impl Writer {
    /// Starts the writer thread of `db`. With `flush_every`, batches commit
    /// with [`Durability::None`] and a durable commit follows at most that
    /// long after the first non-durable one.
    pub(super) fn start(db: Arc<Db>, flush_every: Option<Duration>) -> Result<Writer> {
        let path = db.path.clone();
        Worker::start("writer", path, move |queue| run(&db, &queue, flush_every)).map(Writer)
    }

    /// Queues the write `apply` and waits for the commit that holds it.
    pub(super) async fn write<R, F>(&self, apply: F) -> Result<R>
    where
        F: FnMut(&mut Tables<'_>) -> Result<R, Fault> + Send + 'static,
        R: Send + 'static,
    {
        self.0.call(|reply| job(apply, reply)).await
    }

    /// [`write`](Self::write) for a plain thread, outside any runtime.
    pub(super) fn write_blocking<R, F>(&self, apply: F) -> Result<R>
    where
        F: FnMut(&mut Tables<'_>) -> Result<R, Fault> + Send + 'static,
        R: Send + 'static,
    {
        self.0.call_blocking(|reply| job(apply, reply))
    }
}

fn job<R, F>(apply: F, reply: Reply<R>) -> Queued
where
    F: FnMut(&mut Tables<'_>) -> Result<R, Fault> + Send + 'static,
    R: Send + 'static,
{
    Box::new(Job {
        apply,
        result: None,
        reply,
    })
}

fn run(db: &Db, queue: &mpsc::Receiver<Queued>, flush_every: Option<Duration>) {
    // When the oldest commit not yet durable must be made durable, if any.
    let mut flush_by: Option<Instant> = None;
    loop {
        let first = match flush_by {
            None => queue.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => queue.recv_timeout(at.saturating_duration_since(Instant::now())),
        };
        let batch = match first {
            Ok(job) => drain(job, queue, MAX_BATCH),
            Err(RecvTimeoutError::Timeout) => {
                flush(db);
                flush_by = None;
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => {
                if flush_by.is_some() {
                    flush(db);
                }
                return;
            }
        };
        let durable = match (flush_every, flush_by) {
            (None, _) => true,
            (Some(_), Some(at)) => Instant::now() >= at,
            (Some(every), None) => {
                flush_by = Some(Instant::now() + every);
                false
            }
        };
        commit_batch(db, batch, durable);
        if durable {
            flush_by = None;
        }
    }
}

/// Applies and commits `batch`, then replies to every job in it.
///
/// A job that redb finds too large may have written part of itself, so the
/// transaction is abandoned, that job alone gets the error, and the others
/// are applied again in a new transaction. Any other failure fails the whole
/// batch: none of it was written.
fn commit_batch(db: &Db, mut batch: Vec<Queued>, durable: bool) {
    let outcome = loop {
        let attempt = db.write(|database| {
            let mut txn = database.begin_write()?;
            if !durable {
                txn.set_durability(Durability::None)?;
            }
            {
                let mut tables = Tables::open(&txn)?;
                for (i, job) in batch.iter_mut().enumerate() {
                    match job.apply(&mut tables) {
                        Ok(()) => {}
                        Err(StorageError::ValueTooLarge(size)) => return Ok(Some((i, size))),
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            txn.commit()?;
            Ok(None)
        });
        match attempt {
            Ok(Some((i, size))) => {
                batch.remove(i).reply(Some(too_large(size)));
                if batch.is_empty() {
                    return;
                }
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(Arc::new(e)),
        }
    };
    for job in batch {
        let failed = outcome.as_ref().err();
        job.reply(failed.map(|e| shared_error(&db.path, "commit to", e)));
    }
}

/// Makes every commit so far durable with an empty durable commit. A
/// failure here is not reported to anyone: the writes were acknowledged
/// under the promise of "durable at the next flush", and the next batch's
/// commit will fail and report the same fault.
fn flush(db: &Db) {
    let _ = db.write(|database| Ok(database.begin_write()?.commit()?));
}
