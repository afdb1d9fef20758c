//! What the Redis and Valkey test binaries share: the servers they run
//! against, and one trait that lets the same test run on either store type.
#![allow(dead_code)]

pub mod servers;

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kvstores::{Bytes, NamespacedStore, Result};

pub use servers::{Kind, Server};

/// A store type backed by a server: `RedisStore` or `ValkeyStore`.
pub trait Backend: NamespacedStore + Clone + Debug + 'static {
    /// The server the store is tested against.
    const KIND: Kind;

    /// `Store::connect(url)`.
    fn connect(url: &str) -> impl Future<Output = Result<Self>> + Send;

    /// The builder with the options tests vary.
    fn build(url: &str, options: Options<'_>) -> impl Future<Output = Result<Self>> + Send;

    /// `Debug` of a builder given `url` and `options`.
    fn builder_debug(url: &str, options: Options<'_>) -> String;

    /// The store's `set_keep_ttl`.
    fn set_keep_ttl(&self, key: &str, value: Bytes) -> impl Future<Output = Result<()>> + Send;
}

/// Builder options; `namespace` is the root segment, `None` for raw keys.
#[derive(Clone, Copy, Debug)]
pub struct Options<'a> {
    pub namespace: Option<&'a str>,
    pub password: Option<&'a str>,
    pub database: Option<i64>,
    pub timeouts: Option<Duration>,
}

impl<'a> Options<'a> {
    pub fn namespace(namespace: Option<&'a str>) -> Self {
        Options {
            namespace,
            password: None,
            database: None,
            timeouts: None,
        }
    }
}

macro_rules! backend {
    ($store:ident, $builder:ident, $feature:literal, $kind:expr) => {
        #[cfg(feature = $feature)]
        impl Backend for kvstores::$store {
            const KIND: Kind = $kind;

            fn connect(url: &str) -> impl Future<Output = Result<Self>> + Send {
                kvstores::$store::connect(url)
            }

            fn build(url: &str, options: Options<'_>) -> impl Future<Output = Result<Self>> + Send {
                builder!(kvstores::$store, url, options).connect()
            }

            fn builder_debug(url: &str, options: Options<'_>) -> String {
                let builder: kvstores::$builder = builder!(kvstores::$store, url, options);
                format!("{builder:?}")
            }

            fn set_keep_ttl(
                &self,
                key: &str,
                value: Bytes,
            ) -> impl Future<Output = Result<()>> + Send {
                kvstores::$store::set_keep_ttl(self, key, value)
            }
        }
    };
}

macro_rules! builder {
    ($store:path, $url:expr, $options:expr) => {{
        let options = $options;
        let mut builder = <$store>::builder($url).namespace(options.namespace);
        if let Some(password) = options.password {
            builder = builder.password(password);
        }
        if let Some(database) = options.database {
            builder = builder.database(database);
        }
        if let Some(timeout) = options.timeouts {
            builder = builder.connect_timeout(timeout).response_timeout(timeout);
        }
        builder
    }};
}

backend!(RedisStore, RedisStoreBuilder, "redis", Kind::Redis);
backend!(ValkeyStore, ValkeyStoreBuilder, "valkey", Kind::Valkey);

/// A root namespace no other test of this process uses.
pub fn unique(label: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "test-{label}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh store on the shared server, in a root namespace of its own.
pub async fn fresh<B: Backend>() -> B {
    let server = Server::shared(B::KIND);
    B::build(&server.url(), Options::namespace(Some(&unique("contract"))))
        .await
        .expect("connect to the shared test server")
}
