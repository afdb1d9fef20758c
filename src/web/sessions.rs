//! Server-side sessions for tower-sessions: [`Sessions`], a
//! [`SessionStore`] over any kvstores store.
//!
//! # Record format
//!
//! A session is stored under its id (the 22-character string tower-sessions
//! puts in the cookie) as one byte, the format version [`RECORD_FORMAT`]
//! (`0x01`), followed by a JSON object with named fields:
//!
//! ```json
//! {"id":"<session id>","expires_at_ms":1767225600000,"data":{"visits":3}}
//! ```
//!
//! `expires_at_ms` is the expiry in milliseconds since the Unix epoch; the
//! stored value also carries that expiry as its store expiry, so the store
//! removes it on time. Readers ignore fields they do not know and give a
//! missing `data` its empty default, so a field added later (in the same
//! format version) does not break sessions written earlier, nor the other
//! way round. A change that old readers must not misread gets a new format
//! byte, and old readers then treat such records as missing.
//!
//! JSON (serde_json) is the codec because a session's values are already
//! `serde_json::Value`s: JSON keeps them exactly, with no second conversion,
//! and stays readable with the `kvstores` command.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, ExpiredDeletion, SessionStore};

use crate::{AtomicStore, FullStore, Maintenance, StoreRegistry};

/// The first byte of every stored session record.
pub const RECORD_FORMAT: u8 = 1;

/// A tower-sessions [`SessionStore`] that keeps sessions in a kvstores store.
///
/// Any store with atomic operations works: `MemoryStore` for one process,
/// `FileStore` for sessions that survive restarts and are shared by the
/// processes of one machine, `RedisStore`/`ValkeyStore` for many machines, or
/// the `Arc<dyn FullStore>` a registry hands out under [`SESSIONS`](super::SESSIONS).
///
/// - `create` stores the record with [`AtomicStore::set_if_absent`] and
///   draws a fresh id until one is free, so two sessions never share an id,
///   across processes and machines too.
/// - `save` stores the record with its expiry to the millisecond; a record
///   already past its expiry is deleted instead.
/// - `load` never returns an expired session. A stored record that does not
///   decode (written by something else, or damaged) is treated as missing:
///   `load` logs a warning (`tracing`) and returns `Ok(None)`, and the
///   record is left as it is.
/// - Store failures are returned as `session_store::Error::Backend`, whose
///   message names the failure and its causes; tower-sessions hands them to
///   the handler, which answers as it chooses (typically 500).
/// - [`ExpiredDeletion`] is implemented where the store has
///   [`Maintenance::delete_expired`]: it gives back the space of expired
///   sessions, which no `load` returns anyway.
///
/// # Example
///
/// ```
/// use kvstores::MemoryStore;
/// use kvstores::web::Sessions;
/// use tower_sessions_core::session::Record;
/// use tower_sessions_core::session_store::SessionStore;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let sessions = Sessions::new(MemoryStore::new());
/// let mut record = Record {
///     id: Default::default(),
///     data: [("user".to_owned(), serde_json::json!("alice"))].into(),
///     expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
/// };
/// sessions.create(&mut record).await.unwrap();
/// let loaded = sessions.load(&record.id).await.unwrap().unwrap();
/// assert_eq!(loaded.data["user"], "alice");
/// # });
/// ```
#[derive(Clone)]
pub struct Sessions<S> {
    store: S,
}

impl<S> Sessions<S> {
    /// Keeps sessions in `store`, keyed by session id. Give it a namespace
    /// of its own (the registry's `"sessions"` store is one).
    pub fn new(store: S) -> Self {
        Sessions { store }
    }

    /// The store the sessions are kept in.
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::MemoryStore;
    /// use kvstores::web::Sessions;
    ///
    /// let sessions = Sessions::new(MemoryStore::new());
    /// assert_eq!(kvstores::Maintenance::stats(sessions.store()).sets, 0);
    /// ```
    pub fn store(&self) -> &S {
        &self.store
    }
}

impl Sessions<std::sync::Arc<dyn FullStore>> {
    /// Keeps sessions in the store `registry` hands out under
    /// [`SESSIONS`](super::SESSIONS) (`"sessions"`).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`](crate::Error::Unsupported) if that name holds
    /// a store without the extension traits (registered with `register`).
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::StoreRegistry;
    /// use kvstores::web::Sessions;
    ///
    /// let registry = StoreRegistry::new();
    /// let sessions = Sessions::from_registry(&registry)?;
    /// # Ok::<(), kvstores::Error>(())
    /// ```
    pub fn from_registry(registry: &StoreRegistry) -> crate::Result<Self> {
        Ok(Sessions::new(registry.get_full(super::SESSIONS)?))
    }
}

impl<S> fmt::Debug for Sessions<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

#[async_trait]
impl<S: AtomicStore + 'static> SessionStore for Sessions<S> {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let Some(ttl) = time_left(record.expiry_date) else {
            // Born expired: there is nothing a later `load` could return.
            return Ok(());
        };
        loop {
            let value = encode(record)?;
            let key = record.id.to_string();
            if self
                .store
                .set_if_absent(&key, value, Some(ttl))
                .await
                .map_err(backend)?
            {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let key = record.id.to_string();
        match time_left(record.expiry_date) {
            Some(ttl) => self.store.set(&key, encode(record)?, Some(ttl)).await,
            None => self.store.delete(&key).await,
        }
        .map_err(backend)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let key = id.to_string();
        let Some(value) = self.store.get(&key, None).await.map_err(backend)? else {
            return Ok(None);
        };
        match decode(&value, id) {
            Ok(record) if time_left(record.expiry_date).is_some() => Ok(Some(record)),
            Ok(_) => Ok(None),
            Err(message) => {
                tracing::warn!(session = %key, "stored session treated as missing: {message}");
                Ok(None)
            }
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.store.delete(&id.to_string()).await.map_err(backend)
    }
}

#[async_trait]
impl<S: AtomicStore + Maintenance + 'static> ExpiredDeletion for Sessions<S> {
    async fn delete_expired(&self) -> session_store::Result<()> {
        Maintenance::delete_expired(&self.store)
            .await
            .map(drop)
            .map_err(backend)
    }
}

/// How long until `expiry`, or `None` if it has passed (or is under 1 ms).
fn time_left(expiry: OffsetDateTime) -> Option<Duration> {
    let left = expiry - OffsetDateTime::now_utc();
    Duration::try_from(left)
        .ok()
        .filter(|d| *d >= Duration::from_millis(1))
}

#[derive(Serialize)]
struct RecordOut<'a> {
    id: String,
    expires_at_ms: i64,
    data: &'a HashMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct RecordIn {
    id: String,
    expires_at_ms: i64,
    #[serde(default)]
    data: HashMap<String, serde_json::Value>,
}

fn encode(record: &Record) -> session_store::Result<Bytes> {
    let out = RecordOut {
        id: record.id.to_string(),
        expires_at_ms: (record.expiry_date.unix_timestamp_nanos() / 1_000_000) as i64,
        data: &record.data,
    };
    let mut bytes = vec![RECORD_FORMAT];
    serde_json::to_writer(&mut bytes, &out)
        .map_err(|e| session_store::Error::Encode(e.to_string()))?;
    Ok(Bytes::from(bytes))
}

/// Decodes a stored record, checking that it belongs to `id`.
fn decode(bytes: &[u8], id: &Id) -> Result<Record, String> {
    let json = match bytes.split_first() {
        Some((&RECORD_FORMAT, json)) => json,
        Some((format, _)) => return Err(format!("unknown record format {format}")),
        None => return Err("empty record".to_owned()),
    };
    let record: RecordIn =
        serde_json::from_slice(json).map_err(|e| format!("record does not decode: {e}"))?;
    if record.id != id.to_string() {
        return Err("record belongs to another session id".to_owned());
    }
    let expiry_date =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(record.expires_at_ms) * 1_000_000)
            .map_err(|e| format!("expiry out of range: {e}"))?;
    Ok(Record {
        id: *id,
        data: record.data,
        expiry_date,
    })
}

/// A store failure as tower-sessions' error, which holds only a string: the
/// message names the failure and each of its causes.
fn backend(error: crate::Error) -> session_store::Error {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    session_store::Error::Backend(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            id: Id::default(),
            data: [("n".to_owned(), serde_json::json!(1))].into(),
            expiry_date: OffsetDateTime::from_unix_timestamp(2_000_000_000).unwrap(),
        }
    }

    #[test]
    fn a_record_round_trips_with_millisecond_expiry() {
        let record = record();
        let bytes = encode(&record).unwrap();
        assert_eq!(bytes[0], RECORD_FORMAT);
        assert_eq!(decode(&bytes, &record.id).unwrap(), record);
    }

    #[test]
    fn unknown_fields_are_ignored_and_missing_data_is_empty() {
        let id = Id::default();
        let json = format!(r#"{{"id":"{id}","expires_at_ms":5,"added_later":[1,2]}}"#);
        let bytes = [&[RECORD_FORMAT][..], json.as_bytes()].concat();
        let record = decode(&bytes, &id).unwrap();
        assert!(record.data.is_empty());
        assert_eq!(record.expiry_date.unix_timestamp_nanos(), 5_000_000);
    }

    #[test]
    fn malformed_records_are_refused_with_a_reason() {
        let record = record();
        let good = encode(&record).unwrap();
        let other_format = [&[2u8][..], &good[1..]].concat();
        for (bytes, reason) in [
            (&b""[..], "empty"),
            (&other_format[..], "format 2"),
            (&good[..good.len() - 1], "does not decode"),
            (&b"\x01[0,1,2]"[..], "does not decode"),
        ] {
            let error = decode(bytes, &record.id).unwrap_err();
            assert!(error.contains(reason), "{error}");
        }
        assert!(
            decode(&good, &Id::default())
                .unwrap_err()
                .contains("another")
        );
    }
}
