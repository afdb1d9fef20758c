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
//! A lone durable write commits on the caller's thread instead, inside
//! `block_in_place`: there is nothing to group it with, and the two thread
//! hops would cost a quarter of it.
//!
//! A dedicated thread rather than `spawn_blocking` per batch: the batch
//! boundary then falls naturally where the thread comes back for more.
//! redb's one-writer-at-a-time rule needs no lock of ours: `begin_write`
//! waits for the write transaction in progress, the thread's or a lone
//! caller's.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use redb::{Durability, StorageError};
use tokio::sync::oneshot;

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
pub(super) struct Writer {
    thread: Worker<Queued>,
    db: Arc<Db>,
    /// Whether a lone write may commit on the caller's thread (durable
    /// commits only: the periodic mode's flush timer lives on the thread).
    inline: bool,
    /// Writes of this database in progress in this process.
    in_flight: AtomicUsize,
}

/// Counts a write in progress until dropped, also when the caller's future
/// is dropped while it waits.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Writer {
    /// Starts the writer thread of `db`. With `flush_every`, batches commit
    /// with [`Durability::None`] and a durable commit follows at most that
    /// long after the first non-durable one.
    pub(super) fn start(db: Arc<Db>, flush_every: Option<Duration>) -> Result<Writer> {
        let path = db.path.clone();
        let served = db.clone();
        let thread = Worker::start("writer", path, move |queue| {
            run(&served, &queue, flush_every)
        })?;
        Ok(Writer {
            thread,
            db,
            inline: flush_every.is_none(),
            in_flight: AtomicUsize::new(0),
        })
    }

    /// Commits the write `apply`: on the caller's thread when it is the
    /// only write in flight, durable, and the runtime lets a task block
    /// (see [`may_block_in_place`]); otherwise queued for the thread, whose
    /// commit holds it. Either way it returns once that commit has.
    pub(super) async fn write<R, F>(&self, apply: F) -> Result<R>
    where
        F: FnMut(&mut Tables<'_>) -> Result<R, Fault> + Send + 'static,
        R: Send + 'static,
    {
        let alone = self.in_flight.fetch_add(1, Ordering::Relaxed) == 0;
        let _in_flight = InFlight(&self.in_flight);
        if alone && self.inline && may_block_in_place() {
            // Two thread wake-ups fewer (to the writer and back), a quarter
            // of a lone durable set on the test machine. Meanwhile tokio
            // hands this worker's other tasks to another thread; concurrent
            // writes queue for the thread, which commits them next.
            let (reply, mut replied) = oneshot::channel();
            let batch = vec![job(apply, reply)];
            tokio::task::block_in_place(|| commit_batch(&self.db, batch, true));
            match replied.try_recv() {
                Ok(result) => return result,
                Err(_) => unreachable!("commit_batch replies to every job"),
            }
        }
        self.thread.call(|reply| job(apply, reply)).await
    }

    /// [`write`](Self::write) for a plain thread, outside any runtime.
    pub(super) fn write_blocking<R, F>(&self, apply: F) -> Result<R>
    where
        F: FnMut(&mut Tables<'_>) -> Result<R, Fault> + Send + 'static,
        R: Send + 'static,
    {
        self.thread.call_blocking(|reply| job(apply, reply))
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

/// How long a batch waits for the writers of the last one to come back.
const GATHER: Duration = Duration::from_micros(200);

/// How long the writer looks for the next job before it sleeps.
///
/// A task that writes one key after another through the thread (on a
/// current-thread runtime, or in the periodic mode) sends its next write a
/// few microseconds after the reply to its last one. Asleep, the writer
/// takes a futex wake-up to get it, 50 to 100 µs on the test machine, a
/// sixth of a lone durable `set` there; awake, it starts at once (single-
/// task durable sets through the thread: 0.79x to 0.86x of raw redb,
/// medians of 8 rounds). The cost is up to this much CPU time after each
/// commit, yielding to other threads meanwhile.
const LINGER: Duration = Duration::from_micros(50);

fn run(db: &Db, queue: &mpsc::Receiver<Queued>, flush_every: Option<Duration>) {
    // When the oldest commit not yet durable must be made durable, if any.
    let mut flush_by: Option<Instant> = None;
    // How many writes the last durable batch held: about as many are on
    // their way back once it has replied. Non-durable commits are cheap
    // enough not to wait for anyone.
    let mut expected = 1;
    loop {
        let first = match (linger(queue), flush_by) {
            (Some(job), _) => Ok(job),
            (None, None) => queue.recv().map_err(|_| RecvTimeoutError::Disconnected),
            (None, Some(at)) => queue.recv_timeout(at.saturating_duration_since(Instant::now())),
        };
        let batch = match first {
            Ok(job) => gather(job, queue, expected),
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
        expected = if flush_every.is_none() {
            batch.len()
        } else {
            1
        };
        commit_batch(db, batch, durable);
        if durable {
            flush_by = None;
        }
    }
}

/// Whether this task runs on a multi-threaded tokio runtime, where
/// `block_in_place` moves the worker's other tasks elsewhere while the
/// commit blocks this thread. On a current-thread runtime it would panic,
/// and would stall every task; there writes go to the thread. One case
/// this check cannot see, and tokio offers no way to: a current-thread
/// runtime's `block_on` that has entered a multi-threaded runtime's handle
/// (`Handle::enter`), where `block_in_place` panics.
fn may_block_in_place() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// The batch that starts with `first`: whatever is queued, and, while it
/// holds fewer than `expected` jobs (the size of the last batch), what
/// comes within [`GATHER`].
///
/// The writers of the last batch send their next writes as the runtime
/// wakes them, one after another; committing as soon as the first arrives
/// split every round of 64 writers into two commits of about 30. A commit
/// costs one or two fsyncs, far more than the wait.
fn gather(first: Queued, queue: &mpsc::Receiver<Queued>, expected: usize) -> Vec<Queued> {
    let mut batch = drain(first, queue, MAX_BATCH);
    let until = Instant::now() + GATHER;
    while batch.len() < expected.min(MAX_BATCH) && Instant::now() < until {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(mpsc::TryRecvError::Empty) => std::thread::yield_now(),
            Err(mpsc::TryRecvError::Disconnected) => break,
        }
    }
    batch
}

/// The next job if one comes within [`LINGER`].
fn linger(queue: &mpsc::Receiver<Queued>) -> Option<Queued> {
    let until = Instant::now() + LINGER;
    loop {
        match queue.try_recv() {
            Ok(job) => return Some(job),
            Err(mpsc::TryRecvError::Empty) if Instant::now() < until => std::thread::yield_now(),
            Err(_) => return None,
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
    let mut reopened = false;
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
            // A read failed on this handle first, and redb refuses it from
            // then on, before writing anything. The failure marked it for a
            // reopen: try once more on the new handle, so that this batch
            // gets its own outcome, not the read's.
            Err(redb::Error::PreviousIo) if !reopened => reopened = true,
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
