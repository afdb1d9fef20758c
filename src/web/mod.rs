//! Stores at work in web applications: server-side sessions, rate limiting
//! and response caching for tower and axum, each behind its own feature.
//!
//! | item | feature | what it is |
//! | --- | --- | --- |
//! | [`Sessions`] | `sessions` | a tower-sessions `SessionStore` |
//! | [`RateLimitLayer`] | `rate-limit` | a tower layer: fixed windows counted with one atomic increment |
//! | [`ResponseCacheLayer`] | `response-cache` | a tower layer: a shared HTTP cache with single flight |
//!
//! Each takes its store by value: a backend, a namespace of one, or what a
//! [`StoreRegistry`](crate::StoreRegistry) hands out under the names below,
//! so that one line of configuration moves all three from memory to a file
//! or to Redis. Sessions and rate limits need [`AtomicStore`](crate::AtomicStore);
//! the cache needs only [`Store`](crate::Store).
//!
//! # Layout
//!
//! - `sessions` — [`Sessions`] and its versioned JSON record.
//! - `rate_limit` — [`RateLimitLayer`], [`Limit`] and the header styles.
//! - `response_cache` — [`ResponseCacheLayer`] and its body type.
//! - `cache_record` — the cached-response record and the RFC 9111 rules.

/// The registry name of the sessions store.
pub const SESSIONS: &str = "sessions";
/// The registry name of the rate-limit counters' store.
pub const RATE_LIMIT: &str = "rate_limit";
/// The registry name of the response cache's store.
pub const RESPONSE_CACHE: &str = "response_cache";

#[cfg(feature = "response-cache")]
mod cache_record;
#[cfg(feature = "rate-limit")]
mod rate_limit;
#[cfg(feature = "response-cache")]
mod response_cache;
#[cfg(feature = "sessions")]
mod sessions;

#[cfg(feature = "rate-limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
pub use rate_limit::{HeaderStyle, Limit, OnStoreError, RateLimit, RateLimitLayer};
#[cfg(feature = "response-cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "response-cache")))]
pub use response_cache::{CacheBody, ResponseCache, ResponseCacheLayer};
#[cfg(feature = "sessions")]
#[cfg_attr(docsrs, doc(cfg(feature = "sessions")))]
pub use sessions::{RECORD_FORMAT, Sessions};
