//! Asynchronous key/value stores with expiry and hierarchical namespaces.
//!
//! `kvstores` gives a program one small interface, the [`Store`] trait, for
//! the fast-changing state it keeps: cached responses, server-side sessions,
//! rate-limit counters, long-lived caches. Whatever holds the bytes — this
//! process's memory, one embedded database file, a Redis or Valkey server —
//! the code that uses the store is the same. The design follows Litestar's
//! "stores".
//!
//! ```
//! use std::time::Duration;
//! use kvstores::{Bytes, MemoryStore, NamespacedStore, Store, StoreRegistry};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let root = MemoryStore::new();
//! let registry = StoreRegistry::with_default_factory(move |name| root.with_namespace(name));
//!
//! let sessions = registry.get("sessions");
//! sessions.set("abc", Bytes::from_static(b"{\"user\":1}"), Some(Duration::from_secs(3600))).await?;
//! // Reading a session keeps it alive for another hour.
//! let session = sessions.get("abc", Some(Duration::from_secs(3600))).await?;
//! assert_eq!(session.as_deref(), Some(&b"{\"user\":1}"[..]));
//! # Ok::<(), kvstores::Error>(()) }).unwrap();
//! ```
//!
//! # Backends
//!
//! | store | feature | holds the bytes in | for |
//! | --- | --- | --- | --- |
//! | [`MemoryStore`] | `memory` (default) | this process | the lowest overhead; one process |
//! | [`FileStore`] | `file` (default) | one redb database file | state that survives restarts; several processes on one machine |
//! | `RedisStore` | `redis` | a Redis server | many processes, many machines |
//! | `ValkeyStore` | `redis` (or its alias `valkey`) | a Valkey (or Redis) server | the same: an alias of `RedisStore` |
//!
//! The `full` feature turns on every backend. `export` adds the JSON-lines
//! format that moves entries between stores (`kvstores::export`), and `cli`
//! builds the `kvstores` command on top of it (`cargo install kvstores
//! --features cli`). `json` and `msgpack` add [`Typed`], values of your
//! own types stored through serde.
//!
//! # Semantics
//!
//! The contract is written once, on the [`Store`] trait, and every backend
//! runs the same behaviour suite against it. Namespaces ([`NamespacedStore`])
//! isolate keys; only `delete_all` on a parent reaches its children. How
//! namespaced keys are laid out in a flat key space, a persisted format, is
//! documented in [`namespace`].
//!
//! Beyond the six methods of `Store`, every backend implements the
//! extension traits [`AtomicStore`] (counters and set-if-absent, atomic
//! across tasks, processes and clients) and [`BatchStore`] (many keys in one
//! step), and counts its operations in [`StoreStats`].
//!
//! # Layout
//!
//! - `store` — the [`Store`] and [`NamespacedStore`] traits: the contract.
//! - `error` — the one [`Error`] type and [`Result`].
//! - `ext` — the extension traits every backend implements: [`AtomicStore`]
//!   (counters, set-if-absent), [`BatchStore`] (many keys at once),
//!   [`Maintenance`] (stats, purging, listing, importing), and [`FullStore`]
//!   naming them all.
//! - [`namespace`] — the stable mapping from (namespace path, key) to stored
//!   keys and to the ranges or patterns that select a namespace (the format
//!   is documented and stable; its functions are hidden, for the tests and
//!   fuzz targets only).
//! - `clock` — [`Clock`] and the [`ManualClock`] tests use to move time.
//! - `stats` — [`StoreStats`], the per-store operation counters.
//! - `registry` — [`StoreRegistry`], named stores from a default factory.
//! - `cache` — [`Cache`]: get-or-compute (`get_or_set_with`) with single
//!   flight, an optional cross-process lock and stale serving.
//! - `flight` — the single-flight table behind it: concurrent callers of one
//!   key share one run.
//! - `typed` — [`Typed`]: serde values with a leading format byte (features
//!   `json`, `msgpack`).
//! - `sweeper` — the background thread that removes expired entries on a
//!   schedule, for `MemoryStore` and `FileStore` (their builders'
//!   `sweep_every`).
//! - `memory` — [`MemoryStore`]: `map` (locked shards shared by a root's
//!   namespaces, and the namespaces, freed once empty), `bounds` (eviction
//!   by CLOCK), `ext` (counters and batches), `list` (listing and importing).
//! - `file` — [`FileStore`]: one redb file with an entries table and an
//!   expiry index, group commit on a writer thread, shared by processes.
//! - `redis` — `RedisStore` (`ValkeyStore` is an alias): one multiplexed,
//!   reconnecting connection per root store, or a cluster connection;
//!   `client` sends, retries and maps errors, `builder` connects, `atomic`
//!   and `list` the extensions.
//! - `listing` — [`Entries`], the page-by-page listing of a namespace, the
//!   [`Entry`]s it returns and the [`EntryCursor`] a backend implements.
//! - `export` — the JSON-lines format that carries entries between stores
//!   (feature `export`).
//! - [`web`] — server-side sessions, rate limiting and response caching for
//!   tower/axum (features `sessions`, `rate-limit`, `response-cache`).
//! - [`prelude`] — every trait, for `use kvstores::prelude::*`.
//! - `bin/kvstores` — the `kvstores` command (feature `cli`).
#![cfg_attr(docsrs, feature(doc_cfg))]
// A build with no backend (the traits and registry alone, or `export`)
// leaves the backends' shared helpers unused.
#![cfg_attr(
    not(any(feature = "memory", feature = "file", feature = "redis")),
    allow(dead_code)
)]

mod cache;
mod clock;
mod error;
#[cfg(feature = "export")]
#[cfg_attr(docsrs, doc(cfg(feature = "export")))]
pub mod export;
mod ext;
#[cfg(feature = "file")]
mod file;
// Single flight, shared by `Cache` and the web response cache.
mod flight;
mod listing;
#[cfg(feature = "memory")]
mod memory;
pub mod namespace;
#[cfg(feature = "redis")]
mod redis;
mod registry;
mod stats;
mod store;
#[cfg(any(feature = "memory", feature = "file"))]
mod sweeper;
#[cfg(any(feature = "json", feature = "msgpack"))]
mod typed;
#[cfg(any(
    feature = "sessions",
    feature = "rate-limit",
    feature = "response-cache"
))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(
        feature = "sessions",
        feature = "rate-limit",
        feature = "response-cache"
    )))
)]
pub mod web;

pub use bytes::Bytes;

#[cfg(feature = "redis")]
pub use self::redis::{RedisStore, RedisStoreBuilder, ValkeyStore, ValkeyStoreBuilder};
pub use cache::Cache;
pub use clock::{Clock, ManualClock};
pub use error::{Error, Result};
pub use ext::{AtomicStore, BatchStore, FullStore, Maintenance};
#[cfg(feature = "file")]
#[cfg_attr(docsrs, doc(cfg(feature = "file")))]
pub use file::{FileDurability, FileStore, FileStoreBuilder, FileUsage};
pub use listing::{Entries, Entry, EntryCursor, ListOptions};
#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
pub use memory::{MemoryStore, MemoryStoreBuilder};
pub use registry::StoreRegistry;
pub use stats::StoreStats;
pub use store::{NamespacedStore, Store};
#[cfg(any(feature = "json", feature = "msgpack"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "json", feature = "msgpack"))))]
pub use typed::{Format, Typed};

/// Every trait of the crate, for `use kvstores::prelude::*;`: the methods
/// of the extension traits are then callable on any store.
pub mod prelude {
    pub use crate::{
        AtomicStore, BatchStore, EntryCursor, FullStore, Maintenance, NamespacedStore, Store,
    };
}
