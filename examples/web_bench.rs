//! Requests per second through each web integration and its nearest
//! existing crate, measured in one run with the same handler and the same
//! load generator: 64 kept-alive HTTP/1.1 connections on loopback.
//!
//! ```sh
//! cargo run --release --features web,full --example web_bench -- \
//!     --redis redis://127.0.0.1:6390 [--secs 2] [--rounds 3] [--connections 64]
//! ```
//!
//! Prints one JSON line per configuration and round, then one summary line
//! per configuration with the median and the spread of the rounds. Each
//! measurement is bounded in time (`--secs`, after a 0.5 s warm-up); every
//! answer must be a 200 (the limits are set so that none is refused).
//!
//! | workload | what each request does |
//! | --- | --- |
//! | `bare` | a handler answering `ok` |
//! | `rate_limit` | counts the client (all connections are 127.0.0.1) |
//! | `sessions` | loads the connection's session, increments a counter in it, saves it |
//! | `response_cache` | a hit on one cached response |

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use kvstores::web::{Limit, RateLimitLayer, ResponseCacheLayer, Sessions};
use kvstores::{AtomicStore, FileStore, MemoryStore, NamespacedStore, RedisStore, Store};
use tokio::net::{TcpListener, TcpStream};
use tower_sessions::{Session, SessionManagerLayer, SessionStore};

struct Options {
    redis: Option<String>,
    secs: f64,
    rounds: usize,
    connections: usize,
}

fn options() -> Options {
    let mut options = Options {
        redis: None,
        secs: 2.0,
        rounds: 3,
        connections: 64,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--redis" => options.redis = Some(value),
            "--secs" => options.secs = value.parse().expect("--secs: a number"),
            "--rounds" => options.rounds = value.parse().expect("--rounds: a number"),
            "--connections" => options.connections = value.parse().expect("--connections"),
            other => panic!("unknown argument {other}"),
        }
    }
    options
}

async fn visits(session: Session) -> String {
    let n: u64 = session.get("n").await.unwrap().unwrap_or(0) + 1;
    session.insert("n", n).await.unwrap();
    n.to_string()
}

fn bare() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

/// A limit no run reaches: the layer's full cost, never a 429.
fn rate_limited(store: impl AtomicStore + 'static) -> Router {
    bare().layer(RateLimitLayer::new(store, Limit::per_second(u64::MAX / 2)))
}

fn governed() -> Router {
    let config = tower_governor::governor::GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(u32::MAX)
        .finish()
        .unwrap();
    bare().layer(tower_governor::GovernorLayer::new(config))
}

fn with_sessions(store: impl SessionStore + Clone) -> Router {
    Router::new()
        .route("/", get(visits))
        .layer(SessionManagerLayer::new(store).with_secure(false))
}

fn cached(store: impl Store + 'static) -> Router {
    bare().layer(ResponseCacheLayer::new(store))
}

fn peer_cached() -> Router {
    Router::new().route(
        "/",
        get(|| async { "ok" }).layer(axum_response_cache::CacheLayer::with_lifespan(
            Duration::from_secs(60),
        )),
    )
}

async fn configurations(
    options: &Options,
    file: &FileStore,
) -> Vec<(&'static str, &'static str, Router)> {
    let memory = MemoryStore::new();
    let mut list = vec![
        ("bare", "none", bare()),
        (
            "rate_limit",
            "kvstores-memory",
            rate_limited(memory.with_namespace("rl")),
        ),
        (
            "rate_limit",
            "kvstores-file",
            rate_limited(file.with_namespace("rl")),
        ),
        ("rate_limit", "tower_governor", governed()),
        (
            "sessions",
            "kvstores-memory",
            with_sessions(Sessions::new(memory.with_namespace("s"))),
        ),
        (
            "sessions",
            "kvstores-file",
            with_sessions(Sessions::new(file.with_namespace("s"))),
        ),
        (
            "sessions",
            "tower-sessions-memory",
            with_sessions(tower_sessions::MemoryStore::default()),
        ),
        (
            "response_cache",
            "kvstores-memory",
            cached(memory.with_namespace("c")),
        ),
        (
            "response_cache",
            "kvstores-file",
            cached(file.with_namespace("c")),
        ),
        ("response_cache", "axum-response-cache", peer_cached()),
    ];
    if let Some(url) = &options.redis {
        let redis = RedisStore::builder(url)
            .namespace(Some("web-bench"))
            .connect()
            .await
            .expect("connect to --redis");
        redis.delete_all().await.unwrap();
        list.push((
            "rate_limit",
            "kvstores-redis",
            rate_limited(redis.with_namespace("rl")),
        ));
        list.push((
            "sessions",
            "kvstores-redis",
            with_sessions(Sessions::new(redis.with_namespace("s"))),
        ));
        list.push((
            "response_cache",
            "kvstores-redis",
            cached(redis.with_namespace("c")),
        ));
    }
    list
}

/// Serves `router` on a free loopback port; returns the address and the
/// server task (aborted by the caller).
async fn serve(router: Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
    (addr, task)
}

/// One connection sending GET / in turn until `until`, keeping the session
/// cookie it is given. Returns how many answers arrived after `from`.
async fn connection(addr: SocketAddr, from: Instant, until: Instant) -> u64 {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut cookie: Option<String> = None;
    let mut done = 0;
    while Instant::now() < until {
        let mut request = Request::get("/").header(header::HOST, "127.0.0.1");
        if let Some(cookie) = &cookie {
            request = request.header(header::COOKIE, cookie);
        }
        sender.ready().await.unwrap();
        let response = sender
            .send_request(request.body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        if let Some(set) = response.headers().get(header::SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            cookie = Some(pair.to_owned());
        }
        response.into_body().collect().await.unwrap();
        if Instant::now() >= from {
            done += 1;
        }
    }
    done
}

async fn measure(router: Router, options: &Options) -> f64 {
    let (addr, server) = serve(router).await;
    let start = Instant::now() + Duration::from_millis(500);
    let until = start + Duration::from_secs_f64(options.secs);
    let clients: Vec<_> = (0..options.connections)
        .map(|_| tokio::spawn(connection(addr, start, until)))
        .collect();
    let mut total = 0;
    for client in clients {
        total += client.await.unwrap();
    }
    let secs = Instant::now().duration_since(start).as_secs_f64();
    server.abort();
    total as f64 / secs
}

#[tokio::main]
async fn main() {
    let options = options();
    let dir = tempfile::tempdir().unwrap();
    let file = FileStore::open(dir.path().join("web-bench.redb")).unwrap();
    let configurations = configurations(&options, &file).await;
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); configurations.len()];
    for round in 1..=options.rounds {
        for (i, (workload, system, router)) in configurations.iter().enumerate() {
            let rps = measure(router.clone(), &options).await;
            results[i].push(rps);
            println!(
                "{{\"round\":{round},\"workload\":\"{workload}\",\"system\":\"{system}\",\
                 \"connections\":{},\"req_per_s\":{rps:.0}}}",
                options.connections
            );
        }
    }
    for ((workload, system, _), mut runs) in configurations.into_iter().zip(results) {
        runs.sort_by(f64::total_cmp);
        let median = runs[runs.len() / 2];
        println!(
            "{{\"summary\":true,\"workload\":\"{workload}\",\"system\":\"{system}\",\
             \"connections\":{},\"rounds\":{},\"median_req_per_s\":{median:.0},\
             \"min\":{:.0},\"max\":{:.0}}}",
            options.connections,
            runs.len(),
            runs[0],
            runs[runs.len() - 1]
        );
    }
}
