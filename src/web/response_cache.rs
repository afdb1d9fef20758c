//! Response caching: [`ResponseCacheLayer`], a tower layer that keeps whole
//! responses in a kvstores store with the rules of a shared HTTP cache.

use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{AGE, CONNECTION, CONTENT_LENGTH, HeaderName, HeaderValue, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tower::{Layer, Service};

use super::cache_record::{self as record, Cached, Record, Storable};
use crate::flight::Flights;
use crate::{Store, StoreRegistry};

type Filter = dyn Fn(&Method, StatusCode) -> bool + Send + Sync;

/// What one run of the handler hands to the requests that waited for it:
/// the response if it was stored, with the key of its variant.
type Shared = Option<Arc<(Cached, String)>>;

struct Config<S> {
    store: S,
    default_ttl: Duration,
    max_body: usize,
    filter: Box<Filter>,
    flights: Flights<Shared>,
}

/// A tower [`Layer`] that caches responses in a store, in the spirit of
/// Litestar's `ResponseCacheConfig`, with the rules of a shared HTTP cache
/// (RFC 9111).
///
/// - **What is cached**: answers to `GET` and `HEAD` with status 2xx, 301
///   or 308 by default ([`filter`](Self::filter) changes that), for
///   [`default_ttl`](Self::default_ttl) (60 s) unless the response's
///   `s-maxage` or `max-age` says otherwise, with bodies up to
///   [`max_body_size`](Self::max_body_size) (1 MiB).
/// - **Never cached**: responses with `Cache-Control: no-store`, `private`
///   or `no-cache`, with `Set-Cookie`, with `Vary: *` or a lifetime of 0;
///   and requests with `Authorization` bypass the cache both ways.
/// - **Keys**: method, path and the query's pairs sorted, plus the request
///   headers the response names in `Vary` (each combination of their
///   values is an entry of its own).
/// - **Hits** do not call the handler and carry `Age` (whole seconds since
///   the response was stored).
/// - **Single flight**: concurrent misses of one key in one process run the
///   handler once and share its response. If that run fails or is
///   cancelled, the waiting requests try again (one of them runs the
///   handler); none is left hanging.
/// - **Failures never fail a request**: a store error, or a stored record
///   that does not decode, is a miss (logged as a `tracing` warning), and a
///   response that cannot be stored is still returned.
///
/// Records are compact and versioned (see `cache_record` in DESIGN.md): a
/// format byte, the status, the headers and the body as raw bytes.
///
/// The inner service's response body must have `Bytes` chunks and be
/// `Unpin`, as axum's `Body` is; the layer answers with [`CacheBody`].
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::time::Duration;
/// use axum::{Router, body::Body, http::Request, routing::get};
/// use http_body_util::BodyExt;
/// use kvstores::MemoryStore;
/// use kvstores::web::ResponseCacheLayer;
/// use tower::ServiceExt;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let runs = Arc::new(AtomicUsize::new(0));
/// let counter = runs.clone();
/// let app: Router = Router::new()
///     .route("/report", get(move || async move { counter.fetch_add(1, Ordering::SeqCst); "expensive" }))
///     .layer(ResponseCacheLayer::new(MemoryStore::new()).default_ttl(Duration::from_secs(30)));
/// for _ in 0..3 {
///     let request = Request::get("/report").body(Body::empty()).unwrap();
///     let response = app.clone().oneshot(request).await.unwrap();
///     assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "expensive");
/// }
/// assert_eq!(runs.load(Ordering::SeqCst), 1);
/// # });
/// ```
pub struct ResponseCacheLayer<S> {
    config: Arc<Config<S>>,
}

impl<S> Clone for ResponseCacheLayer<S> {
    fn clone(&self) -> Self {
        ResponseCacheLayer {
            config: self.config.clone(),
        }
    }
}

impl<S> fmt::Debug for ResponseCacheLayer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCacheLayer")
            .field("default_ttl", &self.config.default_ttl)
            .field("max_body", &self.config.max_body)
            .finish_non_exhaustive()
    }
}

/// The default filter: `GET`/`HEAD` answered with 2xx, 301 or 308.
fn default_filter(method: &Method, status: StatusCode) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && (status.is_success()
            || status == StatusCode::MOVED_PERMANENTLY
            || status == StatusCode::PERMANENT_REDIRECT)
}

impl<S: Store + 'static> ResponseCacheLayer<S> {
    /// Caches responses in `store` (give it a namespace of its own, such as
    /// the registry's [`RESPONSE_CACHE`](super::RESPONSE_CACHE)).
    pub fn new(store: S) -> Self {
        ResponseCacheLayer {
            config: Arc::new(Config {
                store,
                default_ttl: Duration::from_secs(60),
                max_body: 1 << 20,
                filter: Box::new(default_filter),
                flights: Flights::new(),
            }),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Config<S>)) -> Self {
        change(
            Arc::get_mut(&mut self.config)
                .expect("a ResponseCacheLayer is configured before it is cloned"),
        );
        self
    }

    /// How long a response without `s-maxage`/`max-age` is kept; 60 s by
    /// default. A zero duration caches only responses that give a lifetime.
    pub fn default_ttl(self, ttl: Duration) -> Self {
        self.with(|c| c.default_ttl = ttl)
    }

    /// The largest body that is cached, in bytes; 1 MiB by default. Larger
    /// responses are streamed through uncached.
    pub fn max_body_size(self, bytes: usize) -> Self {
        self.with(|c| c.max_body = bytes)
    }

    /// Which (request method, response status) pairs may be cached, of
    /// `GET` and `HEAD` requests (other methods always bypass the cache);
    /// the HTTP rules above still apply to them.
    pub fn filter(
        self,
        filter: impl Fn(&Method, StatusCode) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.with(|c| c.filter = Box::new(filter))
    }
}

impl ResponseCacheLayer<Arc<dyn Store>> {
    /// Caches responses in the store `registry` hands out under
    /// [`RESPONSE_CACHE`](super::RESPONSE_CACHE) (`"response_cache"`).
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::StoreRegistry;
    /// use kvstores::web::ResponseCacheLayer;
    ///
    /// let registry = StoreRegistry::new();
    /// let layer = ResponseCacheLayer::from_registry(&registry);
    /// ```
    pub fn from_registry(registry: &StoreRegistry) -> Self {
        ResponseCacheLayer::new(registry.get(super::RESPONSE_CACHE))
    }
}

impl<S, Svc> Layer<Svc> for ResponseCacheLayer<S> {
    type Service = ResponseCache<S, Svc>;

    fn layer(&self, inner: Svc) -> Self::Service {
        ResponseCache {
            config: self.config.clone(),
            inner,
        }
    }
}

/// The service [`ResponseCacheLayer`] wraps around a handler.
pub struct ResponseCache<S, Svc> {
    config: Arc<Config<S>>,
    inner: Svc,
}

impl<S, Svc: Clone> Clone for ResponseCache<S, Svc> {
    fn clone(&self) -> Self {
        ResponseCache {
            config: self.config.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<S, Svc: fmt::Debug> fmt::Debug for ResponseCache<S, Svc> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCache")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, Svc, ReqB, ResB> Service<Request<ReqB>> for ResponseCache<S, Svc>
where
    S: Store + 'static,
    Svc: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    Svc::Future: Send,
    Svc::Error: Send,
    ReqB: Send + 'static,
    ResB: Body<Data = Bytes> + Unpin + Send + 'static,
    ResB::Error: Send,
{
    type Response = Response<CacheBody<ResB>>;
    type Error = Svc::Error;
    type Future = BoxFuture<Result<Self::Response, Svc::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        // The clone that was polled ready handles this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        let method = request.method();
        let cacheable = (method == Method::GET || method == Method::HEAD)
            && record::request_is_cacheable(request.headers());
        if !cacheable {
            let response = inner.call(request);
            return Box::pin(async move { Ok(response.await?.map(CacheBody::passthrough)) });
        }
        Box::pin(async move {
            let primary = record::primary_key(request.method(), request.uri());
            if let Some(hit) = config.lookup(&primary, request.headers()).await {
                return Ok(replay(&hit));
            }
            let headers = request.headers().clone();
            let mut pending = Some((inner, request));
            let mut own: Option<Result<Self::Response, Svc::Error>> = None;
            let (pending_ref, own_ref, cfg, key) = (&mut pending, &mut own, &*config, &primary);
            let shared = config
                .flights
                .run(&primary, move || async move {
                    let (mut inner, request) = pending_ref.take().expect("one leader run");
                    // A run that finished between this request's lookup and
                    // its joining has stored the response: look again.
                    if let Some(hit) = cfg.lookup(key, request.headers()).await {
                        let variant = variant_of(key, &hit, request.headers());
                        *own_ref = Some(Ok(replay(&hit)));
                        return Some(Arc::new((hit, variant)));
                    }
                    let (outcome, shared) = cfg.fill(&mut inner, request, key).await;
                    *own_ref = Some(outcome);
                    shared
                })
                .await;
            if let Some(outcome) = own {
                return outcome;
            }
            // Another request ran the handler; its response serves this one
            // if it was stored and this request selects the same variant.
            if let Some(shared) = shared {
                let (cached, key) = &*shared;
                if variant_of(&primary, cached, &headers) == *key {
                    return Ok(replay(cached));
                }
            }
            let (mut inner, request) = pending.take().expect("not the leader");
            Ok(inner.call(request).await?.map(CacheBody::passthrough))
        })
    }
}

impl<S: Store> Config<S> {
    /// The stored response for this request, if any. Failures are misses.
    async fn lookup(&self, primary: &str, headers: &HeaderMap) -> Option<Cached> {
        match self.read(primary).await? {
            Record::Response(cached) => Some(cached),
            Record::Vary(names) => {
                match self
                    .read(&record::variant_key(primary, &names, headers))
                    .await?
                {
                    Record::Response(cached) => Some(cached),
                    Record::Vary(_) => None,
                }
            }
        }
    }

    async fn read(&self, key: &str) -> Option<Record> {
        let stored = match self.store.get(key, None).await {
            Ok(stored) => stored?,
            Err(error) => {
                tracing::warn!(key, error = %error, "response cache read failed; a miss");
                return None;
            }
        };
        match record::decode(&stored) {
            Ok(found) => Some(found),
            Err(message) => {
                tracing::warn!(key, "cached response treated as missing: {message}");
                None
            }
        }
    }

    /// Runs the handler and stores its response if that is allowed. Returns
    /// the response for this request, and what waiting requests may share.
    async fn fill<Svc, ReqB, ResB>(
        &self,
        inner: &mut Svc,
        request: Request<ReqB>,
        primary: &str,
    ) -> (Result<Response<CacheBody<ResB>>, Svc::Error>, Shared)
    where
        Svc: Service<Request<ReqB>, Response = Response<ResB>>,
        ResB: Body<Data = Bytes> + Unpin,
    {
        let method = request.method().clone();
        let request_headers = request.headers().clone();
        let response = match inner.call(request).await {
            Ok(response) => response,
            Err(error) => return (Err(error), None),
        };
        let lifetime = match (self.filter)(&method, response.status()) {
            true => record::storable(response.headers(), self.default_ttl),
            false => Storable::No,
        };
        let Storable::For(lifetime, vary) = lifetime else {
            return (Ok(response.map(CacheBody::passthrough)), None);
        };
        let (parts, body) = response.into_parts();
        let too_long = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|n| n > self.max_body as u64);
        if too_long {
            return (
                Ok(Response::from_parts(parts, CacheBody::passthrough(body))),
                None,
            );
        }
        let body = match collect(body, self.max_body).await {
            Ok(body) => body,
            Err(replay) => return (Ok(Response::from_parts(parts, replay)), None),
        };
        let mut headers = parts.headers;
        // Hop-by-hop headers describe the handler's connection, not the
        // response; `Age` is set afresh on every hit.
        for name in [CONNECTION, TRANSFER_ENCODING, AGE] {
            headers.remove(name);
        }
        headers.remove("keep-alive");
        let cached = Cached {
            status: parts.status,
            headers,
            body,
            stored_at_ms: record::now_ms(),
        };
        let key = if vary.is_empty() {
            primary.to_owned()
        } else {
            record::variant_key(primary, &vary, &request_headers)
        };
        self.write(primary, &key, &vary, &cached, lifetime).await;
        let response = replay(&cached);
        (Ok(response), Some(Arc::new((cached, key))))
    }

    async fn write(
        &self,
        primary: &str,
        key: &str,
        vary: &[HeaderName],
        cached: &Cached,
        lifetime: Duration,
    ) {
        let Some(encoded) = cached.encode() else {
            return;
        };
        let mut result = Ok(());
        if !vary.is_empty() {
            result = self
                .store
                .set(primary, record::encode_vary(vary), Some(lifetime))
                .await;
        }
        if result.is_ok() {
            result = self.store.set(key, encoded, Some(lifetime)).await;
        }
        if let Err(error) = result {
            tracing::warn!(key, error = %error, "response cache write failed");
        }
    }
}

/// The key under which `cached`, the response to `primary`, is stored for
/// a request with these headers.
fn variant_of(primary: &str, cached: &Cached, request: &HeaderMap) -> String {
    match record::storable(&cached.headers, Duration::from_secs(1)) {
        Storable::For(_, names) if !names.is_empty() => {
            record::variant_key(primary, &names, request)
        }
        _ => primary.to_owned(),
    }
}

/// A stored response as an answer, with its `Age`.
fn replay<B: Body>(cached: &Cached) -> Response<CacheBody<B>> {
    let mut response = Response::new(CacheBody::full(cached.body.clone()));
    *response.status_mut() = cached.status;
    *response.headers_mut() = cached.headers.clone();
    let age = record::now_ms().saturating_sub(cached.stored_at_ms) / 1000;
    response.headers_mut().insert(AGE, HeaderValue::from(age));
    response
}

/// Reads `body` whole if it is at most `max` bytes. Otherwise (too long,
/// trailers, or an error) returns a body that replays what was read and
/// then goes on with the rest, so the client still gets all of it.
async fn collect<B>(mut body: B, max: usize) -> Result<Bytes, CacheBody<B>>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut read = BytesMut::new();
    loop {
        let frame = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        let (frames, error, rest) = match frame {
            None => return Ok(read.freeze()),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if read.len() + data.len() <= max => {
                    read.extend_from_slice(&data);
                    continue;
                }
                Ok(data) => (
                    vec![Frame::data(read.freeze()), Frame::data(data)],
                    None,
                    Some(body),
                ),
                Err(trailers) => (vec![Frame::data(read.freeze()), trailers], None, Some(body)),
            },
            Some(Err(error)) => (vec![Frame::data(read.freeze())], Some(error), None),
        };
        return Err(CacheBody(Inner::Replay {
            frames: frames.into(),
            error,
            rest,
        }));
    }
}

/// The body of a response that passed through [`ResponseCacheLayer`]: a
/// stored body, or the handler's own.
pub struct CacheBody<B: Body>(Inner<B>);

enum Inner<B: Body> {
    Full(Option<Bytes>),
    Passthrough(B),
    Replay {
        frames: VecDeque<Frame<Bytes>>,
        error: Option<B::Error>,
        rest: Option<B>,
    },
}

// Only `B` is ever polled through a pin (with `Pin::new`, as it is `Unpin`);
// the stored error and frames are moved out by value.
impl<B: Body + Unpin> Unpin for CacheBody<B> {}

impl<B: Body> CacheBody<B> {
    fn full(bytes: Bytes) -> Self {
        CacheBody(Inner::Full(Some(bytes)))
    }

    fn passthrough(body: B) -> Self {
        CacheBody(Inner::Passthrough(body))
    }
}

impl<B: Body> fmt::Debug for CacheBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.0 {
            Inner::Full(_) => "Full",
            Inner::Passthrough(_) => "Passthrough",
            Inner::Replay { .. } => "Replay",
        };
        f.debug_tuple("CacheBody").field(&kind).finish()
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for CacheBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match &mut self.get_mut().0 {
            Inner::Full(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Inner::Passthrough(body) => Pin::new(body).poll_frame(cx),
            Inner::Replay {
                frames,
                error,
                rest,
            } => {
                if let Some(frame) = frames.pop_front() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                if let Some(error) = error.take() {
                    return Poll::Ready(Some(Err(error)));
                }
                match rest {
                    Some(body) => Pin::new(body).poll_frame(cx),
                    None => Poll::Ready(None),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Inner::Full(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Inner::Passthrough(body) => body.is_end_stream(),
            Inner::Replay { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Inner::Passthrough(body) => body.size_hint(),
            Inner::Replay { .. } => SizeHint::default(),
        }
    }
}
