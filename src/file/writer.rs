//! Group commit: one thread per open database turns every write waiting at
//! the moment into one redb write transaction.
//!
//! Callers send a [`Job`] down a channel and await its reply. The thread
//! takes the first job, drains whatever else is queued (up to
//! [`MAX_BATCH`]), applies them in order in one transaction, commits, and
//! only then replies to each. So a caller's future completes once the commit
//! holding its write has returned: durable with [`Durability::Immediate`],
//! visible (and durable at the next flush) with [`Durability::None`]. While
//! one batch commits the next one queues, so the commit rate, not the
//! caller count, bounds throughput: many concurrent writers share each fsync.
//!
//! A dedicated thread rather than `spawn_blocking` per batch: the batch
//! boundary then falls naturally where the thread comes back for more, and
//! redb's one-writer-at-a-time rule is kept without a lock.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redb::{Durability, StorageError};

use super::atomic::ExtOp;
use super::db::{Db, batch_error};
use super::tables::Tables;
use super::worker::{Reply, Worker, drain};
use crate::{Error, Result};

/// The most jobs one transaction holds, so that a flood of writers still
/// gets replies at a steady pace.
const MAX_BATCH: usize = 4096;

/// A write, in stored-key form, with times already read from the clock.
pub(super) enum Op {
    Set {
        key: Vec<u8>,
        value: Bytes,
        expires_at: Option<u64>,
    },
    Delete {
        key: Vec<u8>,
    },
    Renew {
        key: Vec<u8>,
        now: u64,
        expires_at: u64,
    },
    DeleteRange {
        prefix: Vec<u8>,
    },
    DeleteExpired {
        prefix: Vec<u8>,
        now: u64,
    },
    /// `AtomicStore` and `BatchStore` operations (`atomic.rs`).
    Ext(ExtOp),
}

/// What a job gives back.
pub(super) enum Done {
    Unit,
    Value(Option<Bytes>),
    Count(usize),
    Int(i64),
    Bool(bool),
}

pub(super) struct Job {
    op: Op,
    reply: Reply<Done>,
}

/// The handle to a database's writer thread. Dropping it lets the thread
/// commit the queued jobs, make everything durable and exit, and waits for
/// that, so that the file can be closed when the last store handle is gone.
pub(super) struct Writer(Worker<Job>);

impl Writer {
    /// Starts the writer thread of `db`. With `flush_every`, batches commit
    /// with [`Durability::None`] and a durable commit follows at most that
    /// long after the first non-durable one.
    pub(super) fn start(db: Arc<Db>, flush_every: Option<Duration>) -> Result<Writer> {
        let path = db.path.clone();
        Worker::start("writer", path, move |queue| run(&db, &queue, flush_every)).map(Writer)
    }

    /// Queues `op` and waits for the commit that holds it.
    pub(super) async fn submit(&self, op: Op) -> Result<Done> {
        self.0.call(|reply| Job { op, reply }).await
    }

    /// [`submit`](Self::submit) for a plain thread, outside any runtime.
    pub(super) fn submit_blocking(&self, op: Op) -> Result<Done> {
        self.0.call_blocking(|reply| Job { op, reply })
    }
}

fn run(db: &Db, queue: &mpsc::Receiver<Job>, flush_every: Option<Duration>) {
    // When the oldest commit not yet durable must be made durable, if any.
    let mut flush_by: Option<Instant> = None;
    loop {
        let first = match flush_by {
            None => queue.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => queue.recv_timeout(at.saturating_duration_since(Instant::now())),
        };
        let mut batch = match first {
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
        commit_batch(db, &mut batch, durable);
        if durable {
            flush_by = None;
        }
    }
}

/// Applies and commits `batch`, then replies to every job in it.
///
/// A job refused by redb before it changed anything (a value too large)
/// fails alone. Any other failure abandons the whole transaction, and every
/// job of the batch gets the error: none of them was written.
fn commit_batch(db: &Db, batch: &mut Vec<Job>, durable: bool) {
    let outcome = db.with(|database| {
        let mut txn = database.begin_write()?;
        if !durable {
            txn.set_durability(Durability::None)?;
        }
        let mut results = Vec::with_capacity(batch.len());
        {
            let mut tables = Tables::open(&txn)?;
            for job in batch.iter() {
                match apply(&mut tables, &job.op) {
                    Ok(done) => results.push(done),
                    Err(StorageError::ValueTooLarge(len)) => {
                        results.push(Err(Error::TooLarge { size: len as u64 }));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        txn.commit()?;
        Ok(results)
    });
    match outcome {
        Ok(results) => {
            for (job, result) in batch.drain(..).zip(results) {
                let _ = job.reply.send(result);
            }
        }
        Err(e) => {
            let e = Arc::new(e);
            for job in batch.drain(..) {
                let doing = "commit (nothing of it was written)";
                let _ = job.reply.send(Err(batch_error(&db.path, doing, &e)));
            }
        }
    }
}

/// Applies `op`. The outer error abandons the transaction; the inner one
/// fails this job alone and is returned only by an op that wrote nothing.
fn apply(tables: &mut Tables<'_>, op: &Op) -> Result<Result<Done>, StorageError> {
    let done = match op {
        Op::Set {
            key,
            value,
            expires_at,
        } => tables.set(key, value, *expires_at).map(|()| Done::Unit),
        Op::Delete { key } => tables.delete(key).map(|()| Done::Unit),
        Op::Renew {
            key,
            now,
            expires_at,
        } => tables.renew(key, *now, *expires_at).map(Done::Value),
        Op::DeleteRange { prefix } => tables.delete_range(prefix).map(|()| Done::Unit),
        Op::DeleteExpired { prefix, now } => tables.delete_expired(prefix, *now).map(Done::Count),
        Op::Ext(op) => return tables.apply_ext(op),
    };
    done.map(Ok)
}

/// Makes every commit so far durable with an empty durable commit. A
/// failure here is not reported to anyone: the writes were acknowledged
/// under the promise of "durable at the next flush", and the next batch's
/// commit will fail and report the same fault.
fn flush(db: &Db) {
    let _ = db.with(|database| Ok(database.begin_write()?.commit()?));
}
