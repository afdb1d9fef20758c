//! `kvstores::web::RateLimitLayer` end to end: a real axum server and HTTP
//! client, on MemoryStore, FileStore (two processes) and a real Redis
//! server (two app instances).

mod support;
mod web_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::Method;
use axum::routing::get;
use kvstores::web::{HeaderStyle, Limit, OnStoreError, RateLimitLayer};
use kvstores::{AtomicStore, FileStore};

use support::{Kind, Server};
use web_support::{App, ChildApp, client};

/// The limit most tests use: a day's window, so that a run never straddles
/// two windows (see `clear_of_window_end`).
const LIMIT: Limit = Limit::per_day(5);

/// A handler that sets a rate-limit header of its own, which the layer must
/// replace rather than add to.
fn app(layer: RateLimitLayer<impl AtomicStore + 'static>) -> Router {
    Router::new()
        .route("/", get(|| async { ([("ratelimit-limit", "999")], "ok") }))
        .route("/health", get(|| async { "up" }))
        .layer(layer)
}

/// Waits, if the current window of `limit` ends within 10 s, until the
/// next one has begun, so that the requests of a test share one window.
async fn clear_of_window_end(limit: Limit) {
    let window = limit.window().as_millis();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let left = window - now % window;
    if left < 10_000 {
        tokio::time::sleep(Duration::from_millis(left as u64 + 50)).await;
    }
}

/// The single value of header `name`; fails if it appears twice.
fn one(response: &reqwest::Response, name: &str) -> Option<String> {
    let values: Vec<_> = response.headers().get_all(name).iter().collect();
    assert!(values.len() <= 1, "{name} appears {} times", values.len());
    values.first().map(|v| v.to_str().unwrap().to_owned())
}

/// Statuses of `n` requests sent one after another to `urls` in turn.
async fn statuses(urls: &[String], n: usize) -> Vec<u16> {
    let client = client();
    let mut out = Vec::new();
    for i in 0..n {
        let response = client.get(&urls[i % urls.len()]).send().await.unwrap();
        out.push(response.status().as_u16());
    }
    out
}

/// Five requests pass with Litestar's headers counting down, then 429 with
/// `Retry-After` equal to the reset, every header set exactly once.
async fn a_client_gets_its_limit_then_429<S: AtomicStore + 'static>(store: S) {
    clear_of_window_end(LIMIT).await;
    let app = App::serve(app(RateLimitLayer::new(store, LIMIT))).await;
    let client = client();
    for remaining in (0..5).rev() {
        let response = client.get(app.url("/")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(one(&response, "ratelimit-limit").as_deref(), Some("5"));
        assert_eq!(
            one(&response, "ratelimit-policy").as_deref(),
            Some("5; w=86400")
        );
        assert_eq!(
            one(&response, "ratelimit-remaining"),
            Some(remaining.to_string())
        );
        assert_eq!(one(&response, "retry-after"), None);
    }
    let response = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(one(&response, "ratelimit-remaining").as_deref(), Some("0"));
    let retry: u64 = one(&response, "retry-after").unwrap().parse().unwrap();
    let reset: u64 = one(&response, "ratelimit-reset").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    assert!(
        reset.abs_diff(retry) <= 1,
        "reset {reset}, retry-after {retry}"
    );
    assert_eq!(response.text().await.unwrap(), "");
}

#[tokio::test]
async fn a_client_gets_its_limit_then_429_on_memory() {
    a_client_gets_its_limit_then_429(web_support::memory()).await;
}

#[tokio::test]
async fn a_client_gets_its_limit_then_429_on_file() {
    let dir = tempfile::tempdir().unwrap();
    a_client_gets_its_limit_then_429(web_support::file(&dir)).await;
}

#[tokio::test]
async fn a_client_gets_its_limit_then_429_on_redis() {
    a_client_gets_its_limit_then_429(web_support::redis().await).await;
}

#[tokio::test]
async fn the_ietf_headers_are_an_option() {
    clear_of_window_end(LIMIT).await;
    let layer = RateLimitLayer::new(web_support::memory(), LIMIT).headers(HeaderStyle::Ietf);
    let app = App::serve(app(layer)).await;
    let response = client().get(app.url("/")).send().await.unwrap();
    assert_eq!(
        one(&response, "ratelimit-policy").as_deref(),
        Some("\"86400s\";q=5;w=86400")
    );
    let state = one(&response, "ratelimit").unwrap();
    assert!(state.starts_with("\"86400s\";r=4;t="), "{state}");
    // The handler's own header is left alone in this style.
    assert_eq!(one(&response, "ratelimit-limit").as_deref(), Some("999"));
}

#[tokio::test]
async fn excluded_paths_and_methods_are_not_counted() {
    clear_of_window_end(LIMIT).await;
    let layer = RateLimitLayer::new(web_support::memory(), Limit::per_day(1))
        .exclude_path("/health")
        .exclude_method(Method::HEAD);
    let app = App::serve(app(layer)).await;
    let client = client();
    for _ in 0..3 {
        let response = client.get(app.url("/health")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(one(&response, "ratelimit-remaining"), None);
        assert_eq!(
            client.head(app.url("/")).send().await.unwrap().status(),
            200
        );
    }
    assert_eq!(statuses(&[app.url("/")], 2).await, [200, 429]);
}

#[tokio::test]
async fn forwarded_headers_count_only_when_trusted() {
    clear_of_window_end(LIMIT).await;
    let limit = Limit::per_day(1);
    let send = |app: &App, client_ip: &str| {
        client()
            .get(app.url("/"))
            .header("x-forwarded-for", format!("198.51.100.1, {client_ip}"))
            .send()
    };
    let trusting = App::serve(app(
        RateLimitLayer::new(web_support::memory(), limit).trust_forwarded_headers(true)
    ))
    .await;
    assert_eq!(send(&trusting, "203.0.113.1").await.unwrap().status(), 200);
    assert_eq!(send(&trusting, "203.0.113.2").await.unwrap().status(), 200);
    assert_eq!(send(&trusting, "203.0.113.2").await.unwrap().status(), 429);

    // By default the header is ignored: every request is 127.0.0.1's.
    let plain = App::serve(app(RateLimitLayer::new(web_support::memory(), limit))).await;
    assert_eq!(send(&plain, "203.0.113.1").await.unwrap().status(), 200);
    assert_eq!(send(&plain, "203.0.113.2").await.unwrap().status(), 429);
}

#[tokio::test]
async fn a_custom_key_separates_clients() {
    clear_of_window_end(LIMIT).await;
    let layer = RateLimitLayer::new(web_support::memory(), Limit::per_day(1)).key_with(|parts| {
        let user = parts.headers.get("x-user")?;
        Some(user.to_str().ok()?.to_owned())
    });
    let app = App::serve(app(layer)).await;
    let as_user = |user: &'static str| client().get(app.url("/")).header("x-user", user).send();
    assert_eq!(as_user("ann").await.unwrap().status(), 200);
    assert_eq!(as_user("bob").await.unwrap().status(), 200);
    assert_eq!(as_user("ann").await.unwrap().status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_holds_in_total_across_two_instances_on_one_redis() {
    clear_of_window_end(LIMIT).await;
    let namespace = support::unique("shared-limit");
    let one = App::serve(app(RateLimitLayer::new(
        web_support::redis_in(&namespace).await,
        LIMIT,
    )))
    .await;
    let two = App::serve(app(RateLimitLayer::new(
        web_support::redis_in(&namespace).await,
        LIMIT,
    )))
    .await;
    let passed = concurrent_ok(&[one.url("/"), two.url("/")], 20).await;
    assert_eq!(passed, 5, "5 per window in total, not 5 per instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_holds_in_total_across_two_processes_on_one_file() {
    clear_of_window_end(LIMIT).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limits.redb");
    let child = ChildApp::start("rate-limit", &path);
    let here = App::serve(app(RateLimitLayer::new(
        FileStore::open(&path).unwrap(),
        LIMIT,
    )))
    .await;
    let passed = concurrent_ok(&[here.url("/"), child.url("/")], 20).await;
    assert_eq!(passed, 5, "5 per window in total, not 5 per process");
}

/// Sends `n` requests at once, spread over `urls`; returns how many passed.
async fn concurrent_ok(urls: &[String], n: usize) -> usize {
    let client = client();
    let requests: Vec<_> = (0..n)
        .map(|i| tokio::spawn(client.get(&urls[i % urls.len()]).send()))
        .collect();
    let mut passed = 0;
    for request in requests {
        match request.await.unwrap().unwrap().status().as_u16() {
            200 => passed += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    passed
}

#[tokio::test]
async fn a_failing_store_lets_requests_through_or_answers_503_as_chosen() {
    let server = Server::start(Kind::Redis, None);
    let store = kvstores::RedisStore::builder(&server.url())
        .namespace(Some("limits"))
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    let open = App::serve(app(RateLimitLayer::new(store.clone(), LIMIT))).await;
    let closed = App::serve(app(
        RateLimitLayer::new(store, LIMIT).on_store_error(OnStoreError::Deny)
    ))
    .await;
    server.stop();
    let client = client();

    let response = client.get(open.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200, "fails open by default");
    assert_eq!(one(&response, "ratelimit-remaining"), None);

    let response = client.get(closed.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(one(&response, "retry-after").as_deref(), Some("1"));
}

/// The child process of the two-process test.
#[test]
fn child_app() {
    let Ok(role) = std::env::var("KVSTORES_WEB_CHILD") else {
        return;
    };
    assert_eq!(role, "rate-limit");
    let path = std::env::var("KVSTORES_WEB_CHILD_PATH").unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = FileStore::open(path).unwrap();
        web_support::serve_as_child(app(RateLimitLayer::new(store, LIMIT))).await;
    });
}
