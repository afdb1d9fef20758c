//! Rate limiting: [`RateLimitLayer`], a tower layer that counts requests per
//! client in fixed windows with one atomic increment per limit.
//!
//! # Counting
//!
//! Windows are aligned to the Unix epoch: a per-minute limit counts from
//! `hh:mm:00` to `hh:mm+1:00`. A request adds 1 to the counter stored under
//! `"{window seconds}:{window number}:{client}"` with
//! [`AtomicStore::increment`], whose expiry (set when the counter is created)
//! is the end of the window. The increment is one atomic step in every
//! backend, so N per window holds in total across tasks, processes sharing a
//! `FileStore` and app instances sharing a Redis/Valkey server, and each
//! request costs one round trip per limit. The window number is computed
//! from each instance's clock, so instances need synchronised clocks (as
//! any NTP-run machines have).

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use tower::{Layer, Service};

use crate::{AtomicStore, FullStore, StoreRegistry};

/// One limit: at most `max` requests per client per window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    window: Duration,
    max: u64,
}

impl Limit {
    /// At most `max` requests per second.
    pub const fn per_second(max: u64) -> Self {
        Limit::new(Duration::from_secs(1), max)
    }
    /// At most `max` requests per minute.
    pub const fn per_minute(max: u64) -> Self {
        Limit::new(Duration::from_secs(60), max)
    }
    /// At most `max` requests per hour.
    pub const fn per_hour(max: u64) -> Self {
        Limit::new(Duration::from_secs(3600), max)
    }
    /// At most `max` requests per day.
    pub const fn per_day(max: u64) -> Self {
        Limit::new(Duration::from_secs(86_400), max)
    }
    const fn new(window: Duration, max: u64) -> Self {
        Limit { window, max }
    }
    /// The window's length.
    pub fn window(&self) -> Duration {
        self.window
    }
    /// The number of requests allowed per window.
    pub fn max(&self) -> u64 {
        self.max
    }
}

/// Which rate-limit headers the layer sets on every limited response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderStyle {
    /// Litestar's headers: `RateLimit-Policy: 100; w=60`, `RateLimit-Limit`,
    /// `RateLimit-Remaining`, and `RateLimit-Reset` (seconds until the
    /// window ends).
    #[default]
    Litestar,
    /// The IETF draft's structured fields:
    /// `RateLimit-Policy: "60s";q=100;w=60` and `RateLimit: "60s";r=42;t=17`.
    Ietf,
    /// No rate-limit headers (`Retry-After` is still sent with a 429).
    None,
}

/// What the layer does with a request when the store fails to count it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnStoreError {
    /// Let the request through uncounted, without rate-limit headers, and
    /// log the failure (`tracing` warning). The default: an outage of the
    /// store does not take the application down with it.
    #[default]
    Allow,
    /// Answer `503 Service Unavailable` with `Retry-After: 1` and log the
    /// failure: nothing gets through that was not counted.
    Deny,
}

type KeyFn = dyn Fn(&Parts) -> Option<String> + Send + Sync;

struct Config<S> {
    store: S,
    limits: Vec<Limit>,
    key: Option<Box<KeyFn>>,
    trust_forwarded: bool,
    excluded_paths: Vec<String>,
    excluded_methods: Vec<Method>,
    headers: HeaderStyle,
    on_store_error: OnStoreError,
}

/// A tower [`Layer`] that limits each client to a number of requests per
/// window, in the spirit of Litestar's `RateLimitConfig`.
///
/// - Clients are told apart by their address: axum's
///   `ConnectInfo<SocketAddr>` (serve with
///   `into_make_service_with_connect_info::<SocketAddr>()`), or a
///   `SocketAddr` in the request's extensions. Headers such as
///   `X-Forwarded-For` are read only after
///   [`trust_forwarded_headers`](Self::trust_forwarded_headers), or give
///   your own key with [`key_with`](Self::key_with). Requests without a
///   key share one counter, `"unknown"`.
/// - A request over any limit gets `429 Too Many Requests` with
///   `Retry-After` in whole seconds, rounded up and never 0; the handler is
///   not called. Every counted response carries the rate-limit headers of
///   the limit closest to being exceeded ([`HeaderStyle`]); the layer sets
///   them, replacing any the handler set, never adding a second copy.
/// - When the store fails, [`OnStoreError`] decides.
///
/// The inner service's response body must implement `Default` (the 429 and
/// 503 answers have an empty body), as axum's `Body` does.
///
/// # Example
///
/// ```
/// use std::net::SocketAddr;
/// use axum::{Router, body::Body, http::Request, routing::get};
/// use kvstores::MemoryStore;
/// use kvstores::web::{Limit, RateLimitLayer};
/// use tower::ServiceExt;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(RateLimitLayer::new(MemoryStore::new(), Limit::per_minute(2)).limit(Limit::per_day(500)));
/// // Served with axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()),
/// // each request carries its client's address; here we set it by hand.
/// let from = |ip: [u8; 4]| {
///     let mut request = Request::get("/").body(Body::empty()).unwrap();
///     request.extensions_mut().insert(SocketAddr::from((ip, 40000)));
///     request
/// };
/// let statuses = [
///     app.clone().oneshot(from([192, 0, 2, 1])).await.unwrap().status(),
///     app.clone().oneshot(from([192, 0, 2, 1])).await.unwrap().status(),
///     app.clone().oneshot(from([192, 0, 2, 1])).await.unwrap().status(),
///     app.clone().oneshot(from([192, 0, 2, 2])).await.unwrap().status(),
/// ];
/// assert_eq!(statuses.map(|s| s.as_u16()), [200, 200, 429, 200]);
/// # });
/// ```
pub struct RateLimitLayer<S> {
    config: Arc<Config<S>>,
}

impl<S> Clone for RateLimitLayer<S> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            config: self.config.clone(),
        }
    }
}

impl<S> fmt::Debug for RateLimitLayer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("RateLimitLayer")
            .field("limits", &c.limits)
            .field("custom_key", &c.key.is_some())
            .field("trust_forwarded", &c.trust_forwarded)
            .field("excluded_paths", &c.excluded_paths)
            .field("excluded_methods", &c.excluded_methods)
            .field("headers", &c.headers)
            .field("on_store_error", &c.on_store_error)
            .finish_non_exhaustive()
    }
}

impl<S: AtomicStore + 'static> RateLimitLayer<S> {
    /// Limits requests to `limit`, counting in `store` (give it a namespace
    /// of its own, such as the registry's [`RATE_LIMIT`](super::RATE_LIMIT)).
    pub fn new(store: S, limit: Limit) -> Self {
        RateLimitLayer {
            config: Arc::new(Config {
                store,
                limits: vec![limit],
                key: None,
                trust_forwarded: false,
                excluded_paths: Vec::new(),
                excluded_methods: Vec::new(),
                headers: HeaderStyle::default(),
                on_store_error: OnStoreError::default(),
            }),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Config<S>)) -> Self {
        change(
            Arc::get_mut(&mut self.config)
                .expect("a RateLimitLayer is configured before it is cloned"),
        );
        self
    }

    /// Adds another limit; a request must be within all of them.
    ///
    /// # Panics
    ///
    /// If the layer was cloned before (configure it, then use it).
    pub fn limit(self, limit: Limit) -> Self {
        self.with(|c| c.limits.push(limit))
    }

    /// Keys clients with `key` instead of their address. `None` puts the
    /// request in the shared `"unknown"` bucket.
    pub fn key_with(self, key: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static) -> Self {
        self.with(|c| c.key = Some(Box::new(key)))
    }

    /// Takes the client address from `Forwarded: for=`, then
    /// `X-Forwarded-For`, then `X-Real-IP`, before the connection's address.
    /// Of a list, the last entry counts: the one your proxy appended, which
    /// clients cannot forge. Only for apps behind a proxy that sets them.
    pub fn trust_forwarded_headers(self, trust: bool) -> Self {
        self.with(|c| c.trust_forwarded = trust)
    }

    /// Never limits requests whose path is `path`, or starts with it when
    /// `path` ends with `/` (`"/static/"`).
    pub fn exclude_path(self, path: impl Into<String>) -> Self {
        self.with(|c| c.excluded_paths.push(path.into()))
    }

    /// Never limits requests with this method (such as `OPTIONS`).
    pub fn exclude_method(self, method: Method) -> Self {
        self.with(|c| c.excluded_methods.push(method))
    }

    /// Which rate-limit headers to send; [`HeaderStyle::Litestar`] by default.
    pub fn headers(self, style: HeaderStyle) -> Self {
        self.with(|c| c.headers = style)
    }

    /// What to do when the store fails; [`OnStoreError::Allow`] by default.
    pub fn on_store_error(self, choice: OnStoreError) -> Self {
        self.with(|c| c.on_store_error = choice)
    }
}

impl RateLimitLayer<Arc<dyn FullStore>> {
    /// Limits requests to `limit`, counting in the store `registry` hands
    /// out under [`RATE_LIMIT`](super::RATE_LIMIT) (`"rate_limit"`).
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
    /// use kvstores::web::{Limit, RateLimitLayer};
    ///
    /// let registry = StoreRegistry::new();
    /// let layer = RateLimitLayer::from_registry(&registry, Limit::per_minute(60))?;
    /// # Ok::<(), kvstores::Error>(())
    /// ```
    pub fn from_registry(registry: &StoreRegistry, limit: Limit) -> crate::Result<Self> {
        Ok(RateLimitLayer::new(
            registry.get_full(super::RATE_LIMIT)?,
            limit,
        ))
    }
}

impl<S, Svc> Layer<Svc> for RateLimitLayer<S> {
    type Service = RateLimit<S, Svc>;

    fn layer(&self, inner: Svc) -> Self::Service {
        RateLimit {
            config: self.config.clone(),
            inner,
        }
    }
}

/// The service [`RateLimitLayer`] wraps around a handler.
pub struct RateLimit<S, Svc> {
    config: Arc<Config<S>>,
    inner: Svc,
}

impl<S, Svc: Clone> Clone for RateLimit<S, Svc> {
    fn clone(&self) -> Self {
        RateLimit {
            config: self.config.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<S, Svc: fmt::Debug> fmt::Debug for RateLimit<S, Svc> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, Svc, ReqB, ResB> Service<Request<ReqB>> for RateLimit<S, Svc>
where
    S: AtomicStore + 'static,
    Svc: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    Svc::Future: Send,
    ReqB: Send + 'static,
    ResB: Default + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = Svc::Error;
    type Future = BoxFuture<Result<Response<ResB>, Svc::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        // The clone that was polled ready handles this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        let (parts, body) = request.into_parts();
        if config.is_excluded(&parts) {
            return Box::pin(inner.call(Request::from_parts(parts, body)));
        }
        let client = config.client_key(&parts);
        Box::pin(async move {
            let verdict = match config.count(&client, SystemTime::now()).await {
                Ok(verdict) => verdict,
                Err(error) => {
                    tracing::warn!(error = %error, client = %client, "rate limit store failed");
                    return Ok(match config.on_store_error {
                        OnStoreError::Allow => inner.call(Request::from_parts(parts, body)).await?,
                        OnStoreError::Deny => {
                            let mut response = empty(StatusCode::SERVICE_UNAVAILABLE);
                            response
                                .headers_mut()
                                .insert(RETRY_AFTER, HeaderValue::from(1));
                            response
                        }
                    });
                }
            };
            let mut response = if verdict.allowed {
                inner.call(Request::from_parts(parts, body)).await?
            } else {
                let mut response = empty(StatusCode::TOO_MANY_REQUESTS);
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(verdict.reset_secs));
                response
            };
            config.set_headers(response.headers_mut(), &verdict);
            Ok(response)
        })
    }
}

fn empty<B: Default>(status: StatusCode) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    response
}

/// The outcome of counting one request: of the limits, the one closest to
/// being exceeded (or exceeded).
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    allowed: bool,
    limit: Limit,
    remaining: u64,
    /// Whole seconds until the window ends, rounded up, at least 1.
    reset_secs: u64,
}

impl<S: AtomicStore> Config<S> {
    fn is_excluded(&self, parts: &Parts) -> bool {
        let path = parts.uri.path();
        self.excluded_methods.contains(&parts.method)
            || self.excluded_paths.iter().any(|excluded| {
                path == excluded || (excluded.ends_with('/') && path.starts_with(excluded.as_str()))
            })
    }

    fn client_key(&self, parts: &Parts) -> String {
        let key = match &self.key {
            Some(key) => key(parts),
            None => self
                .trust_forwarded
                .then(|| forwarded_client(&parts.headers))
                .flatten()
                .or_else(|| connection_address(parts).map(|ip| ip.to_string())),
        };
        key.unwrap_or_else(|| "unknown".to_owned())
    }

    async fn count(&self, client: &str, now: SystemTime) -> crate::Result<Verdict> {
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut closest: Option<Verdict> = None;
        for &limit in &self.limits {
            let window_ms = limit.window.as_millis().max(1);
            let now_ms = since_epoch.as_millis();
            let number = now_ms / window_ms;
            // At least 1 ms: the store refuses a zero expiry.
            let left_ms = (window_ms - now_ms % window_ms) as u64;
            let key = format!("{}:{number}:{client}", limit.window.as_secs());
            let count = self
                .store
                .increment(&key, 1, Some(Duration::from_millis(left_ms)))
                .await?;
            let count = u64::try_from(count).unwrap_or(0);
            let verdict = Verdict {
                allowed: count <= limit.max,
                limit,
                remaining: limit.max.saturating_sub(count),
                reset_secs: left_ms.div_ceil(1000).max(1),
            };
            let closer = match &closest {
                None => true,
                Some(c) => (verdict.allowed, verdict.remaining) < (c.allowed, c.remaining),
            };
            if closer {
                closest = Some(verdict);
            }
        }
        Ok(closest.expect("a RateLimitLayer has at least one limit"))
    }

    fn set_headers(&self, headers: &mut HeaderMap, v: &Verdict) {
        let (max, window) = (v.limit.max, v.limit.window.as_secs().max(1));
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::try_from(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        match self.headers {
            HeaderStyle::Litestar => {
                set("ratelimit-policy", format!("{max}; w={window}"));
                set("ratelimit-limit", max.to_string());
                set("ratelimit-remaining", v.remaining.to_string());
                set("ratelimit-reset", v.reset_secs.to_string());
            }
            HeaderStyle::Ietf => {
                set(
                    "ratelimit-policy",
                    format!("\"{window}s\";q={max};w={window}"),
                );
                set(
                    "ratelimit",
                    format!("\"{window}s\";r={};t={}", v.remaining, v.reset_secs),
                );
            }
            HeaderStyle::None => {}
        }
    }
}

/// The peer address of the connection, as axum's `ConnectInfo` or a bare
/// `SocketAddr` in the extensions.
fn connection_address(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
        .or_else(|| parts.extensions.get::<SocketAddr>().map(SocketAddr::ip))
}

/// The client address a trusted proxy reported: the last `for=` of
/// `Forwarded`, else the last entry of `X-Forwarded-For`, else `X-Real-IP`.
fn forwarded_client(headers: &HeaderMap) -> Option<String> {
    let last_of = |name: &str, pick: fn(&str) -> Option<&str>| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(pick)
            .map(|v| v.trim().trim_matches('"').to_owned())
            .rfind(|v| !v.is_empty())
    };
    last_of("forwarded", |element| {
        element.split(';').find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            name.eq_ignore_ascii_case("for").then_some(value)
        })
    })
    .or_else(|| last_of("x-forwarded-for", |entry| Some(entry)))
    .or_else(|| last_of("x-real-ip", |entry| Some(entry)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut request = Request::builder().uri("/x");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_last_forwarded_entry_is_the_client() {
        let p = parts(&[
            ("x-forwarded-for", "1.1.1.1, 2.2.2.2"),
            ("x-real-ip", "3.3.3.3"),
        ]);
        assert_eq!(forwarded_client(&p.headers).as_deref(), Some("2.2.2.2"));
        let p = parts(&[("forwarded", "for=1.1.1.1;proto=http, for=\"[2001:db8::1]\"")]);
        assert_eq!(
            forwarded_client(&p.headers).as_deref(),
            Some("[2001:db8::1]")
        );
        let p = parts(&[("x-real-ip", "3.3.3.3")]);
        assert_eq!(forwarded_client(&p.headers).as_deref(), Some("3.3.3.3"));
        assert_eq!(forwarded_client(&parts(&[]).headers), None);
    }

    #[cfg(feature = "memory")]
    #[tokio::test]
    async fn windows_are_aligned_and_reset_rounds_up() {
        let layer = RateLimitLayer::new(crate::MemoryStore::new(), Limit::per_minute(2))
            .limit(Limit::per_second(10));
        let at = UNIX_EPOCH + Duration::from_millis(60_000 * 1000 + 59_500);
        let c = &layer.config;
        let first = c.count("a", at).await.unwrap();
        assert_eq!(
            (first.allowed, first.remaining, first.reset_secs),
            (true, 1, 1)
        );
        assert_eq!(first.limit, Limit::per_minute(2));
        c.count("a", at).await.unwrap();
        let third = c.count("a", at).await.unwrap();
        assert!(!third.allowed);
        // The next minute is a new window.
        let next = c.count("a", at + Duration::from_millis(600)).await.unwrap();
        assert!(next.allowed);
        assert_eq!(next.reset_secs, 60);
    }
}
