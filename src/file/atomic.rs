//! `AtomicStore` and `BatchStore` for `FileStore`.
//!
//! Every write here is an [`ExtOp`] of the writer thread, applied inside the
//! write transaction of its group commit. redb runs one write transaction
//! at a time across every process that has the file open, so a read, check
//! and write within one op is atomic against other tasks and processes
//! alike. `get_many` reads all its keys in one read transaction of the
//! reader thread: a snapshot.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redb::StorageError;

use super::tables::Tables;
use super::writer::{Done, Op};
use super::{FileStore, reader};
use crate::clock::opt_ttl_millis;
use crate::ext::{add_to_counter, parse_counter};
use crate::namespace::table_key;
use crate::stats::Event;
use crate::{AtomicStore, BatchStore, Result};

/// The extension writes, in stored-key form, with times already read from
/// the handle's clock.
pub(super) enum ExtOp {
    Increment {
        key: Vec<u8>,
        delta: i64,
        now: u64,
        /// The expiry of a counter this creates.
        expires_at: Option<u64>,
    },
    SetIfAbsent {
        key: Vec<u8>,
        value: Bytes,
        now: u64,
        expires_at: Option<u64>,
    },
    SetMany {
        entries: Vec<(Vec<u8>, Bytes)>,
        expires_at: Option<u64>,
    },
    DeleteMany {
        keys: Vec<Vec<u8>>,
    },
    /// The sweeper's tick: at most `max` expired entries of any namespace.
    SweepExpired {
        now: u64,
        max: usize,
    },
}

impl Tables<'_> {
    /// Applies `op`. An inner error (not a counter, overflow) fails only
    /// this op, and is returned before anything was written.
    pub(super) fn apply_ext(&mut self, op: &ExtOp) -> Result<Result<Done>, StorageError> {
        match op {
            ExtOp::Increment {
                key,
                delta,
                now,
                expires_at,
            } => {
                let live = self.get_live(key, *now)?;
                let new = match parse_counter(live.as_ref().map(|(_, v)| &v[..]))
                    .and_then(|current| add_to_counter(current, *delta))
                {
                    Ok(new) => new,
                    Err(e) => return Ok(Err(e)),
                };
                // An existing counter keeps its expiry; a new one gets the
                // caller's.
                let at = match live {
                    Some((at, _)) => at,
                    None => *expires_at,
                };
                self.set(key, new.to_string().as_bytes(), at)?;
                Ok(Ok(Done::Int(new)))
            }
            ExtOp::SetIfAbsent {
                key,
                value,
                now,
                expires_at,
            } => {
                if self.get_live(key, *now)?.is_some() {
                    return Ok(Ok(Done::Bool(false)));
                }
                self.set(key, value, *expires_at)?;
                Ok(Ok(Done::Bool(true)))
            }
            ExtOp::SetMany {
                entries,
                expires_at,
            } => {
                for (i, (key, value)) in entries.iter().enumerate() {
                    match self.set(key, value, *expires_at) {
                        Ok(()) => {}
                        // Too large after earlier entries were written: the
                        // batch must not be left half-applied, so abandon
                        // the whole transaction (and with it the other jobs
                        // of this group commit, which all get the error).
                        Err(StorageError::ValueTooLarge(len)) if i > 0 => {
                            return Err(StorageError::Backend(Box::new(std::io::Error::other(
                                format!("a set_many value of {len} bytes is too large"),
                            ))));
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(Ok(Done::Unit))
            }
            ExtOp::SweepExpired { now, max } => {
                Ok(Ok(Done::Count(self.delete_expired_at_most(*now, *max)?)))
            }
            ExtOp::DeleteMany { keys } => {
                for key in keys {
                    self.delete(key)?;
                }
                Ok(Ok(Done::Unit))
            }
        }
    }
}

impl FileStore {
    async fn write_ext(&self, op: ExtOp) -> Result<Done> {
        self.write(Op::Ext(op)).await
    }
}

#[async_trait]
impl AtomicStore for FileStore {
    async fn increment(&self, key: &str, delta: i64, expires_in: Option<Duration>) -> Result<i64> {
        let ttl = opt_ttl_millis(expires_in, "expires_in")?;
        let now = self.clock.unix_millis();
        let op = ExtOp::Increment {
            key: table_key(&self.prefix, key),
            delta,
            now,
            expires_at: ttl.map(|ms| now.saturating_add(ms)),
        };
        match self.write_ext(op).await? {
            Done::Int(n) => {
                self.inner.stats.one(Event::Set);
                Ok(n)
            }
            _ => unreachable!("Increment replies with an integer"),
        }
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: Bytes,
        expires_in: Option<Duration>,
    ) -> Result<bool> {
        let ttl = opt_ttl_millis(expires_in, "expires_in")?;
        let now = self.clock.unix_millis();
        let op = ExtOp::SetIfAbsent {
            key: table_key(&self.prefix, key),
            value,
            now,
            expires_at: ttl.map(|ms| now.saturating_add(ms)),
        };
        match self.write_ext(op).await? {
            Done::Bool(stored) => {
                self.inner.stats.add(0, Event::Set, u64::from(stored));
                Ok(stored)
            }
            _ => unreachable!("SetIfAbsent replies with a bool"),
        }
    }
}

#[async_trait]
impl BatchStore for FileStore {
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.unix_millis();
        let lookups = keys
            .iter()
            .map(|key| reader::Lookup {
                key: table_key(&self.prefix, key),
                now,
                value: true,
            })
            .collect();
        let found = self.inner.reader().get_many(lookups).await?;
        let values: Vec<_> = (found.into_iter())
            .map(|found| found.and_then(|(_, value)| value))
            .collect();
        self.inner.stats.add_lookups(0, &values);
        Ok(values)
    }

    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        expires_in: Option<Duration>,
    ) -> Result<()> {
        let ttl = opt_ttl_millis(expires_in, "expires_in")?;
        if entries.is_empty() {
            return Ok(()); // Not worth a commit.
        }
        let expires_at = ttl.map(|ms| self.clock.unix_millis().saturating_add(ms));
        let count = entries.len() as u64;
        let entries = entries
            .iter()
            .map(|(key, value)| (table_key(&self.prefix, key), value.clone()))
            .collect();
        self.write_ext(ExtOp::SetMany {
            entries,
            expires_at,
        })
        .await?;
        self.inner.stats.add(0, Event::Set, count);
        Ok(())
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let count = keys.len() as u64;
        let keys = keys
            .iter()
            .map(|key| table_key(&self.prefix, key))
            .collect();
        self.write_ext(ExtOp::DeleteMany { keys }).await?;
        self.inner.stats.add(0, Event::Delete, count);
        Ok(())
    }
}
