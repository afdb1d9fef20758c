//! The opt-in background sweeper of a `FileStore` database.
//!
//! One per open database in this process, started by the first open that
//! asks for it. Each tick is one op of the writer thread, so it shares group
//! commit with other writes and removes a bounded number of entries per
//! transaction, never holding the database for long.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use super::tables::Tables;
use super::{EXPIRY_CHUNK_TIME, FileStore, FileStoreBuilder};
use crate::stats::Event;
use crate::sweeper::Sweeper;
use crate::{Error, Result};

/// The most expired entries one tick removes (in one transaction).
const PER_TICK: usize = 1_000;

impl FileStoreBuilder {
    /// Removes expired entries of the whole database in the background,
    /// every `interval`, so that a process that never calls
    /// [`FileStore::delete_expired`] does not accumulate them in the file.
    ///
    /// The sweeper is a thread of its own, one per open database in this
    /// process (a later open asking for one finds it running). Each tick
    /// removes at most 1,000 entries in one write transaction that takes
    /// its turn with the other writes; a larger backlog is worked off over
    /// several ticks. Its clock is this builder's. It stops when the last
    /// handle on the database is dropped, or on [`FileStore::stop_sweeper`].
    /// Off by default. A sweep that fails (the disk is full) is tried again
    /// at the next tick.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use kvstores::FileStore;
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = FileStore::builder(dir.path().join("store.redb"))
    ///     .sweep_every(Duration::from_secs(60))
    ///     .open()?;
    /// # Ok::<_, kvstores::Error>(())
    /// ```
    pub fn sweep_every(mut self, interval: Duration) -> Self {
        self.sweep_every = Some(interval);
        self
    }
}

impl FileStore {
    /// Stops the background sweeper of [`FileStoreBuilder::sweep_every`] on
    /// this database, if there is one: no sweep starts after this returns.
    /// Expired entries stay invisible, and
    /// [`delete_expired`](Self::delete_expired) still removes them.
    pub fn stop_sweeper(&self) {
        let sweeper = self.inner.sweeper.lock();
        if let Some(sweeper) = &*sweeper.unwrap_or_else(PoisonError::into_inner) {
            sweeper.stop();
        }
    }

    /// Starts the sweeper of this database unless one is running. The
    /// thread holds the database only weakly, so it never keeps it open.
    pub(super) fn start_sweeper(&self, interval: Duration) -> Result<()> {
        let mut slot = (self.inner.sweeper.lock()).unwrap_or_else(PoisonError::into_inner);
        if slot.is_some() {
            return Ok(());
        }
        let inner = Arc::downgrade(&self.inner);
        let clock = self.clock.clone();
        let sweeper = Sweeper::start("kvs-file-sweep", interval, move || {
            let Some(inner) = inner.upgrade() else {
                return false;
            };
            let now = clock.unix_millis();
            let sweep = move |tables: &mut Tables<'_>| {
                Ok(tables
                    .delete_expired_chunk(&[], now, None, PER_TICK, EXPIRY_CHUNK_TIME)?
                    .0)
            };
            if let Ok(n) = inner.writer().write_blocking(sweep) {
                inner.stats.add(0, Event::Expiration, n as u64);
            }
            true
        })
        .map_err(|source| Error::Io {
            path: self.inner.db.path.clone(),
            action: "start the sweeper thread for",
            source,
        })?;
        *slot = Some(sweeper);
        Ok(())
    }
}
