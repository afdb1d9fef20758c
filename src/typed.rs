//! [`Typed`]: values of your own types over any store, through serde.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Cache, Error, Result, Store};

/// The first byte of every value a [`Typed`] writes: which format follows.
/// These numbers are persisted; a new format or a new version of one gets a
/// new number and never reuses one.
const JSON: u8 = 1;
const MSGPACK: u8 = 2;

/// How a [`Typed`] writes values. Reads accept every format compiled in,
/// whichever one a value was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// JSON through serde_json, after the format byte `0x01`.
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    Json,
    /// MessagePack through rmp-serde, structs as maps of field names to
    /// values (never as positional arrays, which would misread a struct that
    /// changed), after the format byte `0x02`.
    #[cfg(feature = "msgpack")]
    #[cfg_attr(docsrs, doc(cfg(feature = "msgpack")))]
    MsgPack,
}

/// Values of any `T: Serialize + DeserializeOwned` over any store.
///
/// Each value is stored as one format byte (`0x01` JSON, `0x02` MessagePack
/// with named fields) and then the encoded value, so that:
///
/// - **changing format** never misreads a value: every read looks at the
///   byte and decodes with that format (if its feature is compiled in), so
///   values written before a switch stay readable;
/// - **garbage** — bytes written by another program, a plain `set`, an
///   unknown format byte, or a value that does not fit the type asked for —
///   is an [`Error::Decode`] naming the key, never a panic and never a
///   silent `None`;
/// - **a struct that gained a field** reads values written before if the
///   new field is an `Option` (it reads as `None`) or has
///   `#[serde(default)]`; otherwise the read is an [`Error::Decode`] naming
///   the missing field. A removed field is ignored (unless the struct has
///   `#[serde(deny_unknown_fields)]`). Renaming a field counts as removing
///   one and adding another. Both formats behave the same here because both
///   store field names.
///
/// [`get_or_set_with`](Typed::get_or_set_with) goes through a [`Cache`], so
/// it has single flight (and, if the cache is configured for them, the
/// cross-process lock and stale serving).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use kvstores::{Format, MemoryStore, Typed};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// struct User { name: String, admin: bool }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let users = Typed::new(MemoryStore::new(), Format::Json);
/// let ada = User { name: "Ada".into(), admin: true };
/// users.set("42", &ada, Some(Duration::from_secs(60))).await?;
/// assert_eq!(users.get::<User>("42", None).await?, Some(ada));
///
/// let bob = users
///     .get_or_set_with("7", None, || async {
///         Ok::<_, std::io::Error>(User { name: "Bob".into(), admin: false })
///     })
///     .await?;
/// assert_eq!(bob.name, "Bob");
/// # Ok::<(), kvstores::Error>(()) }).unwrap();
/// ```
#[cfg_attr(docsrs, doc(cfg(any(feature = "json", feature = "msgpack"))))]
pub struct Typed<S> {
    cache: Cache<S>,
    format: Format,
}

impl<S: Store> Typed<S> {
    /// Typed values over `store`, written in `format`.
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::{Format, MemoryStore, Typed};
    ///
    /// let typed = Typed::new(MemoryStore::new(), Format::Json);
    /// ```
    pub fn new(store: S, format: Format) -> Self {
        Typed::with_cache(Cache::new(store), format)
    }

    /// Typed values over a [`Cache`], so that
    /// [`get_or_set_with`](Typed::get_or_set_with) uses its options (the
    /// cross-process lock, stale serving) and its single flight.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use kvstores::{Cache, Format, MemoryStore, Typed};
    ///
    /// let cache = Cache::new(MemoryStore::new()).serve_stale_for(Duration::from_secs(30));
    /// let typed = Typed::with_cache(cache, Format::Json);
    /// ```
    pub fn with_cache(cache: Cache<S>, format: Format) -> Self {
        Typed { cache, format }
    }

    /// The store the values are in.
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::{Format, MemoryStore, Typed};
    ///
    /// let typed = Typed::new(MemoryStore::new(), Format::Json);
    /// let store: &MemoryStore = typed.store();
    /// ```
    pub fn store(&self) -> &S {
        self.cache.store()
    }

    /// Stores `value` under `key`, as [`Store::set`] does.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if `value` cannot be encoded in this format (e.g. a
    /// map whose keys are not strings, in JSON), [`Error::InvalidArgument`]
    /// for a zero `expires_in`; nothing is written then. Or the store's
    /// failure.
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::{Format, MemoryStore, Store, Typed};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let typed = Typed::new(MemoryStore::new(), Format::Json);
    /// typed.set("point", &(3, 4), None).await?;
    /// // One format byte, then the JSON.
    /// assert_eq!(&typed.store().get("point", None).await?.unwrap()[..], b"\x01[3,4]");
    /// # Ok::<(), kvstores::Error>(()) }).unwrap();
    /// ```
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        expires_in: Option<Duration>,
    ) -> Result<()> {
        let bytes = encode(self.format, key, value)?;
        self.cache.store().set(key, bytes, expires_in).await
    }

    /// Returns the value of `key` decoded as a `T`, or `None` if the key is
    /// missing or expired; `renew_for` as for [`Store::get`].
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] naming the key if the stored bytes are not a value
    /// of type `T` in a format this build reads (see [`Typed`]); the value
    /// is left as it is. Or the store's failure.
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::{Bytes, Error, Format, MemoryStore, Store, Typed};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let typed = Typed::new(MemoryStore::new(), Format::Json);
    /// assert_eq!(typed.get::<u32>("missing", None).await?, None);
    ///
    /// typed.store().set("raw", Bytes::from_static(b"not typed"), None).await?;
    /// let Err(Error::Decode { what, .. }) = typed.get::<u32>("raw", None).await else {
    ///     panic!("a decode error");
    /// };
    /// assert_eq!(what, "key \"raw\"");
    /// # Ok::<(), kvstores::Error>(()) }).unwrap();
    /// ```
    pub async fn get<T: DeserializeOwned>(
        &self,
        key: &str,
        renew_for: Option<Duration>,
    ) -> Result<Option<T>> {
        match self.cache.store().get(key, renew_for).await? {
            Some(bytes) => decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// [`Cache::get_or_set_with`] for typed values: returns the live value
    /// of `key` decoded as a `T`, or runs `loader` once for all concurrent
    /// callers, stores its value and returns it.
    ///
    /// # Errors
    ///
    /// As [`Cache::get_or_set_with`]; a value that cannot be encoded is an
    /// [`Error::Load`] whose source is the [`Error::Encode`], and a
    /// live value that does not decode is an [`Error::Decode`] (the loader
    /// does not run then: a type mismatch is a bug to see, not a miss).
    ///
    /// # Example
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use std::time::Duration;
    /// use kvstores::{Format, MemoryStore, Typed};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let typed = Typed::new(MemoryStore::new(), Format::Json);
    /// let prices = typed
    ///     .get_or_set_with("prices", Some(Duration::from_secs(60)), || async {
    ///         Ok::<_, std::io::Error>(BTreeMap::from([("tea".to_owned(), 3u32)]))
    ///     })
    ///     .await?;
    /// assert_eq!(prices["tea"], 3);
    /// # Ok::<(), kvstores::Error>(()) }).unwrap();
    /// ```
    pub async fn get_or_set_with<T, F, Fut, E>(
        &self,
        key: &str,
        expires_in: Option<Duration>,
        loader: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let format = self.format;
        let bytes = self
            .cache
            .get_or_set_with(key, expires_in, || async move {
                let value = loader().await.map_err(Into::into)?;
                encode(format, key, &value)
                    .map_err(|e| Box::new(e) as Box<dyn StdError + Send + Sync>)
            })
            .await?;
        decode(key, &bytes)
    }
}

impl<S: Clone> Clone for Typed<S> {
    /// A handle on the same store, sharing the cache's single flight.
    fn clone(&self) -> Self {
        Typed {
            cache: self.cache.clone(),
            format: self.format,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Typed<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Typed")
            .field("cache", &self.cache)
            .field("format", &self.format)
            .finish()
    }
}

fn encode<T: Serialize + ?Sized>(format: Format, key: &str, value: &T) -> Result<Bytes> {
    let cannot = |message: &str, source: Box<dyn StdError + Send + Sync>| Error::Encode {
        what: format!("the value for key {key:?}"),
        message: message.to_owned(),
        source: Some(source),
    };
    match format {
        #[cfg(feature = "json")]
        Format::Json => {
            let mut bytes = vec![JSON];
            serde_json::to_writer(&mut bytes, value)
                .map_err(|e| cannot("JSON cannot represent it", Box::new(e)))?;
            Ok(bytes.into())
        }
        #[cfg(feature = "msgpack")]
        Format::MsgPack => {
            let mut bytes = vec![MSGPACK];
            rmp_serde::encode::write_named(&mut bytes, value)
                .map_err(|e| cannot("MessagePack cannot represent it", Box::new(e)))?;
            Ok(bytes.into())
        }
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    let error = |message: &str, source: Option<Box<dyn StdError + Send + Sync>>| Error::Decode {
        what: format!("key {key:?}"),
        message: message.to_owned(),
        source,
    };
    let Some((&tag, body)) = bytes.split_first() else {
        return Err(error("the value is empty, not a typed value", None));
    };
    match tag {
        #[cfg(feature = "json")]
        JSON => serde_json::from_slice(body).map_err(|e| {
            error(
                "the value is not JSON of the requested type",
                Some(Box::new(e)),
            )
        }),
        #[cfg(not(feature = "json"))]
        JSON => Err(error(
            "the value is JSON, and this build lacks the `json` feature",
            None,
        )),
        #[cfg(feature = "msgpack")]
        MSGPACK => rmp_serde::from_slice(body).map_err(|e| {
            error(
                "the value is not MessagePack of the requested type",
                Some(Box::new(e)),
            )
        }),
        #[cfg(not(feature = "msgpack"))]
        MSGPACK => Err(error(
            "the value is MessagePack, and this build lacks the `msgpack` feature",
            None,
        )),
        _ => Err(error(
            &format!("unknown format byte 0x{tag:02x}: not a value written by kvstores::Typed"),
            None,
        )),
    }
}
