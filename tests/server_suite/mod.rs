//! What only a server-backed store does, written once and stamped per
//! server kind (a real `redis-server`, a real `valkey-server`) by
//! `server_suite!`.
//!
//! Each function names one behaviour. They run against the binary's shared
//! server in root namespaces of their own, or against a server of their own
//! when they stop it or need a password.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use kvstores::{Bytes, Error};
use redis::AsyncCommands;

use kvstores::{NamespacedStore, RedisStore, Store};

use crate::support::{Kind, Options, Server, servers, unique};

/// Stamps every behaviour below as a `#[tokio::test]` for one server kind.
#[macro_export]
macro_rules! server_suite {
    ($kind:expr) => {
        $crate::server_suite!(@each $kind;
            connect_uses_the_documented_default_namespace, keys_are_stored_in_the_documented_form,
            foreign_keys_survive_delete_all, root_segments_cache_and_cache2_are_isolated,
            glob_characters_in_root_segments_select_only_themselves,
            a_store_without_namespace_refuses_delete_all_and_deletes_nothing,
            set_keep_ttl_keeps_the_expiry, database_option_selects_the_database,
            delete_all_sweeps_more_keys_than_one_scan_batch,
            sixty_four_tasks_share_one_connection, reconnects_after_the_server_restarts,
            a_wrong_password_is_refused_and_never_shown,
            a_refused_connection_names_host_and_port_quickly,
            tls_and_foreign_urls_are_clear_errors, debug_shows_server_and_namespace_only);
    };
    (@each $kind:expr; $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $crate::server_suite::$name($kind).await;
        }
    )*};
}

const LONG: Duration = Duration::from_secs(600);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn build(server: &Server, namespace: Option<&str>) -> RedisStore {
    Options::namespace(namespace)
        .connect(&server.url())
        .await
        .expect("connect to the test server")
}

/// `connect(url)` stores keys under the root segment `kvstores`.
pub async fn connect_uses_the_documented_default_namespace(kind: Kind) {
    let server = Server::shared(kind);
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let key = unique("default");
    store.set(&key, b("v"), None).await.unwrap();
    let mut raw = server.raw().await;
    let stored: Option<String> = raw.get(format!("kvstores:{key}")).await.unwrap();
    assert_eq!(stored.as_deref(), Some("v"));
    store.delete(&key).await.unwrap();
}

/// Namespaced keys are `root:child:key` with `%` and `:` escaped.
pub async fn keys_are_stored_in_the_documented_form(kind: Kind) {
    let server = Server::shared(kind);
    let root = unique("form");
    let store = build(server, Some(&root)).await;
    store
        .with_namespace("a:b")
        .set("k:1%", b("v"), Some(LONG))
        .await
        .unwrap();
    let mut raw = server.raw().await;
    let stored: Option<String> = raw.get(format!("{root}:a%3Ab:k%3A1%25")).await.unwrap();
    assert_eq!(stored.as_deref(), Some("v"));
    let ttl: i64 = raw.pttl(format!("{root}:a%3Ab:k%3A1%25")).await.unwrap();
    assert!(ttl > 0 && ttl <= 600_000, "{ttl}");
}

/// Keys other programs wrote, even ones that look alike, survive delete_all.
pub async fn foreign_keys_survive_delete_all(kind: Kind) {
    let server = Server::shared(kind);
    let root = unique("foreign");
    let store = build(server, Some(&root)).await;
    let mut raw = server.raw().await;
    let foreign = [
        root.clone(),
        format!("{root}2:k"),
        format!("{root}x"),
        format!("x{root}:k"),
        format!("{}:k", &root[..root.len() - 1]),
        "unrelated".to_owned(),
    ];
    for key in &foreign {
        let _: () = raw.set(key, "foreign").await.unwrap();
    }
    store.set("k", b("mine"), None).await.unwrap();
    store
        .with_namespace("child")
        .set("k", b("mine"), None)
        .await
        .unwrap();

    store.delete_all().await.unwrap();
    assert!(!store.exists("k").await.unwrap());
    assert!(!store.with_namespace("child").exists("k").await.unwrap());
    for key in &foreign {
        let value: Option<String> = raw.get(key).await.unwrap();
        assert_eq!(value.as_deref(), Some("foreign"), "{key}");
        let _: () = raw.del(key).await.unwrap();
    }
}

/// Root segments `cache` and `cache2` (and `cach`) never reach each other.
pub async fn root_segments_cache_and_cache2_are_isolated(kind: Kind) {
    let server = Server::shared(kind);
    let names = ["cache", "cache2", "cach"];
    let mut stores = Vec::new();
    for name in names {
        let store = build(server, Some(name)).await;
        store.set("k", b(name), None).await.unwrap();
        store
            .with_namespace("child")
            .set("k", b(name), None)
            .await
            .unwrap();
        stores.push(store);
    }
    stores[0].delete_all().await.unwrap();
    assert!(!stores[0].exists("k").await.unwrap());
    assert!(!stores[0].with_namespace("child").exists("k").await.unwrap());
    for store in &stores[1..] {
        assert!(store.exists("k").await.unwrap(), "{store:?}");
        assert!(store.with_namespace("child").exists("k").await.unwrap());
    }
    let mut raw = server.raw().await;
    let left: Vec<String> = raw.keys("cache2:*").await.unwrap();
    assert_eq!(left.len(), 2, "{left:?}");
    for store in &stores {
        store.delete_all().await.unwrap();
    }
}

/// Root segments full of glob characters delete exactly their own keys.
pub async fn glob_characters_in_root_segments_select_only_themselves(kind: Kind) {
    let server = Server::shared(kind);
    let tag = unique("glob");
    let names: Vec<String> = [
        "*", "?", "[", "]", "\\", "[ab]", "a", "b", "a*", "a?", "a\\", "a\\*", "[a]", "[^a]",
    ]
    .iter()
    .map(|n| format!("{tag}{n}"))
    .collect();
    let mut stores = Vec::new();
    for name in &names {
        let store = build(server, Some(name)).await;
        store.set("*", b(name), None).await.unwrap();
        store.set("k?", b(name), None).await.unwrap();
        stores.push(store);
    }
    for (i, store) in stores.iter().enumerate() {
        store.delete_all().await.unwrap();
        for (j, other) in stores.iter().enumerate() {
            assert_eq!(
                other.get("*", None).await.unwrap().is_some(),
                j > i,
                "after deleting {:?}: {:?}",
                names[i],
                names[j]
            );
            assert_eq!(other.exists("k?").await.unwrap(), j > i);
        }
    }
}

/// `namespace(None)`: raw keys, delete_all refused; a child is ordinary.
pub async fn a_store_without_namespace_refuses_delete_all_and_deletes_nothing(kind: Kind) {
    let server = Server::shared(kind);
    let raw_store = build(server, None).await;
    let key = unique("raw");
    raw_store.set(&key, b("verbatim"), None).await.unwrap();
    let mut raw = server.raw().await;
    let stored: Option<String> = raw.get(&key).await.unwrap();
    assert_eq!(stored.as_deref(), Some("verbatim"), "stored verbatim");

    let err = raw_store.delete_all().await.unwrap_err();
    assert!(matches!(err, Error::NamespaceRequired), "{err:?}");
    assert!(raw_store.exists(&key).await.unwrap());

    let child = raw_store.with_namespace(&unique("child"));
    let other = raw_store.with_namespace(&unique("other"));
    child.set("k", b("c"), None).await.unwrap();
    child
        .with_namespace("grandchild")
        .set("k", b("g"), None)
        .await
        .unwrap();
    other.set("k", b("o"), None).await.unwrap();
    child.delete_all().await.unwrap();
    assert!(!child.exists("k").await.unwrap());
    assert!(
        !child
            .with_namespace("grandchild")
            .exists("k")
            .await
            .unwrap()
    );
    assert!(other.exists("k").await.unwrap());
    assert!(raw_store.exists(&key).await.unwrap());

    other.delete_all().await.unwrap();
    raw_store.delete(&key).await.unwrap();
}

/// set_keep_ttl replaces the value and keeps the deadline; a new key gets none.
pub async fn set_keep_ttl_keeps_the_expiry(kind: Kind) {
    let store = crate::support::fresh(kind).await;
    store.set("k", b("one"), Some(LONG)).await.unwrap();
    store.set_keep_ttl("k", b("two")).await.unwrap();
    assert_eq!(store.get("k", None).await.unwrap(), Some(b("two")));
    let left = store.expires_in("k").await.unwrap().unwrap();
    assert!(left > LONG - Duration::from_secs(60), "{left:?}");

    store.set_keep_ttl("new", b("v")).await.unwrap();
    assert_eq!(store.expires_in("new").await.unwrap(), None);
    assert!(store.exists("new").await.unwrap());
}

/// The database option selects that database.
pub async fn database_option_selects_the_database(kind: Kind) {
    let server = Server::shared(kind);
    let root = unique("db");
    let options = Options {
        database: Some(3),
        ..Options::namespace(Some(&root))
    };
    let store = options.connect(&server.url()).await.unwrap();
    store.set("k", b("in 3"), None).await.unwrap();
    let mut raw = server.raw().await;
    let in_0: Option<String> = raw.get(format!("{root}:k")).await.unwrap();
    assert_eq!(in_0, None);
    let _: () = redis::cmd("SELECT")
        .arg(3)
        .query_async(&mut raw)
        .await
        .unwrap();
    let in_3: Option<String> = raw.get(format!("{root}:k")).await.unwrap();
    assert_eq!(in_3.as_deref(), Some("in 3"));
    store.delete_all().await.unwrap();
}

/// A namespace much larger than one SCAN batch is emptied completely.
pub async fn delete_all_sweeps_more_keys_than_one_scan_batch(kind: Kind) {
    let store = crate::support::fresh(kind).await;
    let child = store.with_namespace("child");
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (store, child) = (store.clone(), child.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..500 {
                let target = if i % 2 == 0 { &store } else { &child };
                target.set(&format!("{t}-{i}"), b("v"), None).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    store.delete_all().await.unwrap();
    for t in 0..8 {
        for i in (0..500).step_by(37) {
            let target = if i % 2 == 0 { &store } else { &child };
            assert!(!target.exists(&format!("{t}-{i}")).await.unwrap());
        }
    }
}

/// 64 tasks on clones and namespaces of one store use one connection.
pub async fn sixty_four_tasks_share_one_connection(kind: Kind) {
    let server = Server::start(kind, None);
    let mut raw = server.raw().await;
    let root = build(&server, Some("app")).await;
    let mut tasks = Vec::new();
    for t in 0..64 {
        let store = if t % 2 == 0 {
            root.clone()
        } else {
            root.with_namespace(&format!("ns{}", t % 4))
        };
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                let key = format!("{t}-{i}");
                store.set(&key, b(&key), Some(LONG)).await.unwrap();
                assert_eq!(store.get(&key, Some(LONG)).await.unwrap(), Some(b(&key)));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(
        clients.lines().count(),
        2,
        "the raw connection and the store's one: {clients}"
    );
    let keys: Vec<String> = raw.keys("app:*").await.unwrap();
    assert_eq!(keys.len(), 64 * 100);
}

/// While the server is down operations fail fast; once it is back the same
/// store works again.
pub async fn reconnects_after_the_server_restarts(kind: Kind) {
    let server = Server::start(kind, None);
    let store = build(&server, Some("app")).await;
    store.set("k", b("before"), None).await.unwrap();

    server.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let err = store.get("k", None).await.unwrap_err();
        assert!(matches!(err, Error::Connection { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains(&format!("127.0.0.1:{}", server.port())),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    server.restart();
    // The very first operation after the outage succeeds: the broken
    // connection is replaced and the command retried on the new one.
    store.set("k", b("after"), Some(LONG)).await.unwrap();
    // A fresh server has no scripts cached: renewal must reload its script.
    assert_eq!(store.get("k", Some(LONG)).await.unwrap(), Some(b("after")));
    assert!(
        store
            .with_namespace("child")
            .set("k", b("v"), None)
            .await
            .is_ok()
    );

    // A restart while the store is idle goes unnoticed as well.
    server.restart();
    assert_eq!(store.get("k", None).await.unwrap(), None, "a fresh server");
    store.set("k", b("again"), None).await.unwrap();
}

/// A wrong or missing password is a Server error that shows no password,
/// from the builder option and from the URL; Debug never shows one either.
pub async fn a_wrong_password_is_refused_and_never_shown(kind: Kind) {
    const RIGHT: &str = "Right-Pa55word-42";
    const WRONG: &str = "Wrong-Pa55word-17";
    let server = Server::start(kind, Some(RIGHT));
    let scheme = kind.scheme();
    let port = server.port();

    let with_option = Options {
        password: Some(WRONG),
        ..Options::namespace(Some("app"))
    };
    let url_with_password = format!("{scheme}://:{WRONG}@127.0.0.1:{port}");
    let attempts = [
        (server.url(), with_option),
        (url_with_password.clone(), Options::namespace(Some("app"))),
        (server.url(), Options::namespace(Some("app"))),
    ];
    for (url, options) in attempts {
        let started = Instant::now();
        let err = options.connect(&url).await.unwrap_err();
        assert!(matches!(err, Error::Server { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(&format!("127.0.0.1:{port}")), "{shown}");
        assert!(!shown.contains(WRONG) && !shown.contains(RIGHT), "{shown}");
        let debug = format!("{:?}", options.builder(&url));
        assert!(!debug.contains(WRONG), "{debug}");
    }

    let store = Options {
        password: Some(RIGHT),
        ..Options::namespace(Some("app"))
    }
    .connect(&server.url())
    .await
    .unwrap();
    store.set("k", b("v"), None).await.unwrap();
    let url = format!("{scheme}://:{RIGHT}@127.0.0.1:{port}");
    let from_url = Options::namespace(Some("app")).connect(&url).await.unwrap();
    assert_eq!(from_url.get("k", None).await.unwrap(), Some(b("v")));
    for debug in [
        format!("{store:?}"),
        format!("{from_url:?}"),
        format!("{:?}", from_url.with_namespace("x")),
        format!("{:?}", Options::namespace(Some("app")).builder(&url)),
    ] {
        assert!(!debug.contains(RIGHT), "{debug}");
    }
}

/// Nothing listening: a Connection error naming host:port, quickly.
pub async fn a_refused_connection_names_host_and_port_quickly(kind: Kind) {
    let port = servers::free_port();
    let url = format!("{}://127.0.0.1:{port}", kind.scheme());
    let started = Instant::now();
    let err = RedisStore::connect(&url).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
}

/// TLS URLs (not compiled in) and other schemes are clear argument errors.
pub async fn tls_and_foreign_urls_are_clear_errors(_kind: Kind) {
    for url in ["rediss://127.0.0.1:6390", "valkeys://127.0.0.1:6390"] {
        let err = RedisStore::connect(url).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
        assert!(err.to_string().contains("TLS"), "{err}");
    }
    for url in [
        "http://127.0.0.1:6390",
        "127.0.0.1:6390",
        "redis://:pw@[::1",
    ] {
        let err = RedisStore::connect(url).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument { .. }),
            "{url}: {err:?}"
        );
        assert!(!err.to_string().contains(":pw@"), "{err}");
    }
}

/// Debug names the server and the namespace path, nothing else.
pub async fn debug_shows_server_and_namespace_only(kind: Kind) {
    let server = Server::shared(kind);
    let store = build(server, Some("app")).await;
    let child = store.with_namespace("sessions");
    // One type under both names: Debug names it RedisStore for either.
    assert_eq!(
        format!("{child:?}"),
        format!(
            r#"RedisStore {{ server: "127.0.0.1:{}", namespace: ["app", "sessions"], .. }}"#,
            server.port()
        )
    );
}
