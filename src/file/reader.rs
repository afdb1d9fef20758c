//! Reads: one thread per open database serves every lookup waiting at the
//! moment from one read transaction.
//!
//! Beginning a read transaction is the costly part of a small read (in the
//! multi-process mode it takes a file lock to look for other processes'
//! commits), and handing each read to tokio's blocking pool costs a thread
//! hand-off per read. Batching pays both once per batch: under load a batch
//! holds every reader that is waiting, so throughput grows with the number of
//! concurrent readers, while a lone reader pays one hand-off, as it would
//! with `spawn_blocking`.
//!
//! A read is sent after the caller's earlier writes were acknowledged, and
//! its transaction begins after it is received, so it sees them.

use std::sync::Arc;
use std::sync::mpsc;

use bytes::Bytes;
use redb::ReadableDatabase;

use super::db::{Db, shared_error};
use super::tables::{self, ENTRIES};
use super::worker::{Reply, Worker, drain};
use crate::Result;

/// The most lookups served from one read transaction.
const MAX_BATCH: usize = 1024;

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

/// The handle to a database's reader thread.
pub(super) struct Reader(Worker<Job>);

impl Reader {
    pub(super) fn start(db: Arc<Db>) -> Result<Reader> {
        let path = db.path.clone();
        Worker::start("reader", path, move |queue| serve(&db, &queue)).map(Reader)
    }

    /// Looks the entry up and returns it if it is live.
    pub(super) async fn get(&self, lookup: Lookup) -> Result<Found> {
        let mut found = self.get_many(vec![lookup]).await?;
        Ok(found.pop().flatten())
    }

    /// Looks every entry up in one read transaction, a snapshot, and
    /// returns those that are live, in order.
    pub(super) async fn get_many(&self, lookups: Vec<Lookup>) -> Result<Vec<Found>> {
        self.0.call(|reply| Job { lookups, reply }).await
    }
}

fn serve(db: &Db, queue: &mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let batch = drain(first, queue, MAX_BATCH);
        let found = db.with(|database| {
            let txn = database.begin_read()?;
            let entries = txn.open_table(ENTRIES)?;
            let look_up = |lookup: &Lookup| {
                let Lookup { key, now, value } = lookup;
                let entry = redb::ReadableTable::get(&entries, &key[..])?;
                Ok(entry.and_then(|entry| {
                    let (at, bytes) = entry.value();
                    tables::is_live(at, *now)
                        .then(|| (at, value.then(|| Bytes::copy_from_slice(bytes))))
                }))
            };
            batch
                .iter()
                .map(|job| job.lookups.iter().map(look_up).collect())
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
