//! An axum application whose sessions, rate limits and response cache all
//! live in kvstores stores taken from one registry by name: on the embedded
//! FileStore by default, on Redis/Valkey with one flag.
//!
//! ```sh
//! cargo run --example axum_app -- \
//!     [--listen ADDR] [--file PATH | --redis URL] [--limit N]
//! ```
//!
//! (defaults 127.0.0.1:3000, ./kvstores-data/app.redb, 5). It serves:
//!
//! - `GET /visits` — this visitor's requests, counted in their session;
//! - `GET /limited` — at most N requests per client per minute, 429 beyond;
//! - `GET /cached` — cached for 60 s; the body is how many times the
//!   handler itself has run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use kvstores::web::{Limit, RateLimitLayer, ResponseCacheLayer, Sessions};
use kvstores::{FileStore, NamespacedStore, RedisStore, StoreRegistry, ValkeyStore};
use tower_sessions::{Expiry, Session, SessionManagerLayer};

struct Args {
    listen: SocketAddr,
    file: String,
    redis: Option<String>,
    limit: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: "127.0.0.1:3000".parse().unwrap(),
        file: "kvstores-data/app.redb".to_owned(),
        redis: None,
        limit: 5,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || given.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => args.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--file" => args.file = value()?,
            "--redis" => args.redis = Some(value()?),
            "--limit" => args.limit = value()?.parse().map_err(|e| format!("--limit: {e}"))?,
            "--help" | "-h" => {
                return Err(
                    "usage: axum_app [--listen ADDR] [--file PATH | --redis URL] [--limit N]"
                        .to_owned(),
                );
            }
            other => return Err(format!("unknown argument {other}; see --help")),
        }
    }
    Ok(args)
}

/// One registry whose every name is a namespace of one root store: moving
/// the app from a file to Redis changes only this function.
async fn registry(args: &Args) -> kvstores::Result<(StoreRegistry, String)> {
    Ok(match &args.redis {
        Some(url) if url.starts_with("valkey") => {
            let root = ValkeyStore::builder(url)
                .namespace(Some("axum-app"))
                .connect()
                .await?;
            let registry = StoreRegistry::with_full_factory(move |name| root.with_namespace(name));
            (registry, format!("Valkey at {url}"))
        }
        Some(url) => {
            let root = RedisStore::builder(url)
                .namespace(Some("axum-app"))
                .connect()
                .await?;
            let registry = StoreRegistry::with_full_factory(move |name| root.with_namespace(name));
            (registry, format!("Redis at {url}"))
        }
        None => {
            let root = FileStore::builder(&args.file)
                .create_directories(true)
                .open()?;
            let registry = StoreRegistry::with_full_factory(move |name| root.with_namespace(name));
            (registry, format!("the file {}", args.file))
        }
    })
}

async fn visits(session: Session) -> Result<String, StatusCode> {
    let failed = |_| StatusCode::INTERNAL_SERVER_ERROR;
    let n: u64 = session.get("visits").await.map_err(failed)?.unwrap_or(0) + 1;
    session.insert("visits", n).await.map_err(failed)?;
    Ok(n.to_string())
}

#[tokio::main]
async fn main() {
    let args = parse_args().unwrap_or_else(|message| {
        eprintln!("{message}");
        std::process::exit(2);
    });
    let (registry, place) = registry(&args).await.unwrap_or_else(|error| {
        eprintln!("cannot open the store: {error}");
        std::process::exit(1);
    });

    let sessions = Sessions::from_registry(&registry).expect("every backend is a full store");
    let limits = RateLimitLayer::from_registry(&registry, Limit::per_minute(args.limit))
        .expect("every backend is a full store");
    let cache = ResponseCacheLayer::from_registry(&registry);
    let handler_runs = Arc::new(AtomicU64::new(0));

    let app = Router::new()
        .route("/visits", get(visits))
        .route("/limited", get(|| async { "ok\n" }).layer(limits))
        .route(
            "/cached",
            get(move || {
                let runs = handler_runs.fetch_add(1, Ordering::SeqCst) + 1;
                async move { runs.to_string() }
            })
            .layer(cache),
        )
        .layer(
            SessionManagerLayer::new(sessions)
                .with_secure(false)
                .with_expiry(Expiry::OnInactivity(time::Duration::days(1))),
        );

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .unwrap_or_else(|error| {
            eprintln!("cannot listen on {}: {error}", args.listen);
            std::process::exit(1);
        });
    println!("listening on http://{} with state in {place}", args.listen);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .expect("the server failed");
}
