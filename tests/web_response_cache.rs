//! `kvstores::web::ResponseCacheLayer` end to end: a real axum server and
//! HTTP client, on MemoryStore, FileStore and a real Redis server; each
//! handler counts its runs, so a hit is seen to skip it.

mod support;
mod web_support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, Response, StatusCode, header};
use axum::middleware::{self, Next};
use axum::routing::get;
use http_body_util::BodyExt;
use kvstores::web::ResponseCacheLayer;
use kvstores::{Bytes, Store};
use tower::{Layer, ServiceExt};

use support::{Kind, Server};
use web_support::{App, client, get as fetch};

/// Runs of each handler.
#[derive(Clone, Default)]
struct Runs(Arc<AtomicUsize>);

impl Runs {
    fn next(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

type Headers = &'static [(&'static str, &'static str)];

/// A route whose handler answers with `headers` and `status`, and a body
/// that is the number of times it has run.
fn counted(
    router: Router,
    path: &str,
    runs: &Runs,
    status: StatusCode,
    headers: Headers,
) -> Router {
    let runs = runs.clone();
    router.route(
        path,
        get(move || {
            let n = runs.next();
            async move {
                let mut map = HeaderMap::new();
                for (name, value) in headers {
                    map.append(*name, value.parse().unwrap());
                }
                (status, map, n.to_string())
            }
        }),
    )
}

/// Whether the second of two GETs of `path` was a hit: the same body, an
/// `Age`, and no second run of the handler.
async fn second_is_a_hit(app: &App, path: &str, runs: &Runs) -> bool {
    let client = client();
    let before = runs.get();
    let first = client.get(app.url(path)).send().await.unwrap();
    let first_body = first.text().await.unwrap();
    let second = client.get(app.url(path)).send().await.unwrap();
    let age = second.headers().get(header::AGE).cloned();
    let second_body = second.text().await.unwrap();
    let hit = runs.get() == before + 1;
    assert_eq!(hit, first_body == second_body);
    if hit {
        assert_eq!(age.unwrap(), "0");
    }
    hit
}

async fn hits_do_not_call_the_handler<S: Store + Clone + 'static>(store: S) {
    let runs = Runs::default();
    let router = counted(Router::new(), "/counted", &runs, StatusCode::OK, &[]);
    let app = App::serve(router.layer(ResponseCacheLayer::new(store.clone()))).await;
    assert!(second_is_a_hit(&app, "/counted?b=2&a=1", &runs).await);
    // The query's order does not matter; its values do.
    assert_eq!(
        fetch(&client(), &app.url("/counted?a=1&b=2")).await,
        (200, "1".into())
    );
    assert_eq!(
        fetch(&client(), &app.url("/counted?a=1&b=3")).await,
        (200, "2".into())
    );
    // Stored for the default 60 s, as a versioned record.
    let key = "GET /counted?a=1&b=2";
    let left = store.expires_in(key).await.unwrap().unwrap();
    assert!(left > Duration::from_secs(55) && left <= Duration::from_secs(60));
    assert_eq!(store.get(key, None).await.unwrap().unwrap()[..2], *b"\x01R");
}

#[tokio::test]
async fn hits_do_not_call_the_handler_on_memory() {
    hits_do_not_call_the_handler(web_support::memory()).await;
}

#[tokio::test]
async fn hits_do_not_call_the_handler_on_file() {
    let dir = tempfile::tempdir().unwrap();
    hits_do_not_call_the_handler(web_support::file(&dir)).await;
}

#[tokio::test]
async fn hits_do_not_call_the_handler_on_redis() {
    hits_do_not_call_the_handler(web_support::redis().await).await;
}

#[tokio::test]
async fn entries_expire_after_the_default_lifetime() {
    let runs = Runs::default();
    let router = counted(Router::new(), "/", &runs, StatusCode::OK, &[]);
    let layer =
        ResponseCacheLayer::new(web_support::memory()).default_ttl(Duration::from_millis(300));
    let app = App::serve(router.layer(layer)).await;
    let client = client();
    assert_eq!(fetch(&client, &app.url("/")).await.1, "1");
    assert_eq!(fetch(&client, &app.url("/")).await.1, "1");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(fetch(&client, &app.url("/")).await.1, "2");
}

#[tokio::test]
async fn the_shared_cache_rules_of_rfc_9111_decide_what_is_stored() {
    let store = web_support::memory();
    let runs = Runs::default();
    let ok = StatusCode::OK;
    let cases: &[(&str, StatusCode, Headers, bool)] = &[
        ("/plain", ok, &[], true),
        ("/no-store", ok, &[("cache-control", "no-store")], false),
        (
            "/private",
            ok,
            &[("cache-control", "public, private")],
            false,
        ),
        ("/no-cache", ok, &[("cache-control", "no-cache")], false),
        ("/cookie", ok, &[("set-cookie", "a=b")], false),
        ("/vary-star", ok, &[("vary", "*")], false),
        ("/max-age-0", ok, &[("cache-control", "max-age=0")], false),
        ("/missing", StatusCode::NOT_FOUND, &[], false),
        ("/failed", StatusCode::INTERNAL_SERVER_ERROR, &[], false),
        (
            "/moved",
            StatusCode::MOVED_PERMANENTLY,
            &[("location", "/plain")],
            true,
        ),
        ("/created", StatusCode::CREATED, &[], true),
    ];
    let mut router = Router::new();
    for (path, status, headers, _) in cases {
        router = counted(router, path, &runs, *status, headers);
    }
    let app = App::serve(router.layer(ResponseCacheLayer::new(store.clone()))).await;
    for (path, _, _, cached) in cases {
        assert_eq!(second_is_a_hit(&app, path, &runs).await, *cached, "{path}");
    }
}

#[tokio::test]
async fn s_maxage_and_max_age_set_the_lifetime() {
    let store = web_support::memory();
    let runs = Runs::default();
    let router = counted(
        Router::new(),
        "/max",
        &runs,
        StatusCode::OK,
        &[("cache-control", "max-age=5")],
    );
    let router = counted(
        router,
        "/s-max",
        &runs,
        StatusCode::OK,
        &[("cache-control", "max-age=5, s-maxage=9")],
    );
    let app = App::serve(router.layer(ResponseCacheLayer::new(store.clone()))).await;
    for (path, seconds) in [("/max", 5), ("/s-max", 9)] {
        assert!(second_is_a_hit(&app, path, &runs).await);
        let left = store
            .expires_in(&format!("GET {path}?"))
            .await
            .unwrap()
            .unwrap();
        assert!(left <= Duration::from_secs(seconds) && left > Duration::from_secs(seconds - 2));
    }
}

#[tokio::test]
async fn requests_with_authorization_bypass_the_cache() {
    let runs = Runs::default();
    let router = counted(Router::new(), "/", &runs, StatusCode::OK, &[]);
    let app = App::serve(router.layer(ResponseCacheLayer::new(web_support::memory()))).await;
    let client = client();
    let with_auth = || {
        client
            .get(app.url("/"))
            .header("authorization", "Bearer x")
            .send()
    };
    assert_eq!(with_auth().await.unwrap().text().await.unwrap(), "1");
    assert_eq!(with_auth().await.unwrap().text().await.unwrap(), "2");
    // Not stored either: a plain request runs the handler.
    assert_eq!(fetch(&client, &app.url("/")).await.1, "3");
    assert_eq!(fetch(&client, &app.url("/")).await.1, "3");
    // And a stored response is not served to a request with credentials.
    assert_eq!(with_auth().await.unwrap().text().await.unwrap(), "4");
}

#[tokio::test]
async fn vary_keys_each_combination_of_the_named_headers() {
    let runs = Runs::default();
    let handler_runs = runs.clone();
    let router = Router::new().route(
        "/",
        get(move |headers: HeaderMap| {
            let n = handler_runs.next();
            async move {
                let language = headers.get("accept-language").cloned();
                let language = language
                    .as_ref()
                    .map_or("-", |v| v.to_str().unwrap())
                    .to_owned();
                ([("vary", "Accept-Language")], format!("{n} {language}"))
            }
        }),
    );
    let app = App::serve(router.layer(ResponseCacheLayer::new(web_support::memory()))).await;
    let client = client();
    let in_language = async |language: &'static str| {
        let response = client
            .get(app.url("/"))
            .header("accept-language", language)
            .send();
        response.await.unwrap().text().await.unwrap()
    };
    assert_eq!(in_language("fr").await, "1 fr");
    assert_eq!(in_language("de").await, "2 de");
    assert_eq!(in_language("fr").await, "1 fr");
    assert_eq!(in_language("de").await, "2 de");
    assert_eq!(fetch(&client, &app.url("/")).await.1, "3 -");
    assert_eq!(runs.get(), 3);
}

#[tokio::test]
async fn a_body_over_the_limit_is_served_whole_and_not_stored() {
    let runs = Runs::default();
    let handler_runs = runs.clone();
    let router = Router::new().route(
        "/big",
        get(move || {
            handler_runs.next();
            // A streamed body of unknown length, in chunks.
            let chunks = (0..10).map(|i| Ok::<_, Infallible>(Bytes::from(vec![b'a' + i; 100])));
            async move { Body::from_stream(futures_util::stream::iter(chunks)) }
        }),
    );
    let layer = ResponseCacheLayer::new(web_support::memory()).max_body_size(250);
    let app = App::serve(router.layer(layer)).await;
    let expected: String = (0..10)
        .map(|i| String::from(char::from(b'a' + i)).repeat(100))
        .collect();
    for runs_so_far in 1..=2 {
        assert_eq!(fetch(&client(), &app.url("/big")).await.1, expected);
        assert_eq!(runs.get(), runs_so_far);
    }
}

/// Counts requests as they arrive, before the cache sees them.
async fn count_arrivals(
    axum::extract::State(arrived): axum::extract::State<Runs>,
    request: Request<Body>,
    next: Next,
) -> Response<Body> {
    arrived.next();
    next.run(request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_misses_run_the_handler_once() {
    let (runs, arrived) = (Runs::default(), Runs::default());
    let (handler_runs, handler_arrived) = (runs.clone(), arrived.clone());
    let router = Router::new()
        .route(
            "/slow",
            get(move || {
                let n = handler_runs.next();
                let arrived = handler_arrived.clone();
                async move {
                    // Answer only once every request is in (or after 10 s,
                    // so that a failure cannot hang the test).
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                    while arrived.get() < 100 && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    n.to_string()
                }
            }),
        )
        .layer(ResponseCacheLayer::new(web_support::memory()))
        .layer(middleware::from_fn_with_state(
            arrived.clone(),
            count_arrivals,
        ));
    let app = App::serve(router).await;
    let client = client();
    let requests: Vec<_> = (0..100)
        .map(|_| tokio::spawn(client.get(app.url("/slow")).send()))
        .collect();
    for request in requests {
        let response = request.await.unwrap().unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "1");
    }
    assert_eq!(arrived.get(), 100);
    assert_eq!(runs.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_leaves_no_waiter_hanging() {
    let runs = Runs::default();
    let handler_runs = runs.clone();
    let handler = tower::service_fn(move |_: Request<Body>| {
        let n = handler_runs.next();
        async move {
            if n == 1 {
                // The first run never answers; its caller gives up.
                std::future::pending::<()>().await;
            }
            Ok::<_, Infallible>(Response::new(Body::from(n.to_string())))
        }
    });
    let service = ResponseCacheLayer::new(web_support::memory()).layer(handler);
    let call = |service: &_| {
        let service: kvstores::web::ResponseCache<_, _> = Clone::clone(service);
        tokio::spawn(async move {
            let request = Request::get("/x").body(Body::empty()).unwrap();
            let response = service.oneshot(request).await.unwrap();
            response.into_body().collect().await.unwrap().to_bytes()
        })
    };
    let first = call(&service);
    while runs.get() == 0 {
        tokio::task::yield_now().await;
    }
    let waiters: Vec<_> = (0..20).map(|_| call(&service)).collect();
    first.abort();
    for waiter in waiters {
        let body = tokio::time::timeout(Duration::from_secs(10), waiter).await;
        assert_eq!(body.expect("a waiter hung").unwrap(), "2");
    }
    assert_eq!(runs.get(), 2);
}

#[tokio::test]
async fn a_malformed_stored_record_is_a_miss_and_is_replaced() {
    let store = web_support::memory();
    let runs = Runs::default();
    let router = counted(Router::new(), "/", &runs, StatusCode::OK, &[]);
    let app = App::serve(router.layer(ResponseCacheLayer::new(store.clone()))).await;
    for garbage in [&b"\x01R\x00"[..], b"\x09junk", b"", b"\x01V\x00\x05ab"] {
        store
            .set("GET /?", Bytes::copy_from_slice(garbage), None)
            .await
            .unwrap();
        let before = runs.get();
        assert_eq!(
            fetch(&client(), &app.url("/")).await,
            (200, (before + 1).to_string())
        );
        // The handler's response replaced it.
        assert_eq!(
            fetch(&client(), &app.url("/")).await,
            (200, (before + 1).to_string())
        );
    }
}

#[tokio::test]
async fn a_failing_store_is_a_miss_and_requests_still_succeed() {
    let server = Server::start(Kind::Redis, None);
    let store = kvstores::RedisStore::builder(&server.url())
        .namespace(Some("cache"))
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    let runs = Runs::default();
    let router = counted(Router::new(), "/", &runs, StatusCode::OK, &[]);
    let app = App::serve(router.layer(ResponseCacheLayer::new(store))).await;
    server.stop();
    assert_eq!(fetch(&client(), &app.url("/")).await, (200, "1".into()));
    assert_eq!(fetch(&client(), &app.url("/")).await, (200, "2".into()));
}
