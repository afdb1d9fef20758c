//! What the server-backed tests share: the `redis-server` and
//! `valkey-server` processes they run against, and building stores on them.
#![allow(dead_code)]

#[cfg(feature = "cluster")]
pub mod cluster;
pub mod servers;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[cfg(feature = "redis")]
use kvstores::{RedisStore, RedisStoreBuilder, Result};

pub use servers::{Kind, Server};

#[cfg(feature = "redis")]
/// Builder options; `namespace` is the root segment, `None` for raw keys.
#[derive(Clone, Copy, Debug)]
pub struct Options<'a> {
    pub namespace: Option<&'a str>,
    pub password: Option<&'a str>,
    pub database: Option<i64>,
    pub timeouts: Option<Duration>,
}

#[cfg(feature = "redis")]
impl<'a> Options<'a> {
    pub fn namespace(namespace: Option<&'a str>) -> Self {
        Options {
            namespace,
            password: None,
            database: None,
            timeouts: None,
        }
    }

    /// The builder for `url` with these options.
    pub fn builder(self, url: &str) -> RedisStoreBuilder {
        let mut builder = RedisStore::builder(url).namespace(self.namespace);
        if let Some(password) = self.password {
            builder = builder.password(password);
        }
        if let Some(database) = self.database {
            builder = builder.database(database);
        }
        if let Some(timeout) = self.timeouts {
            builder = builder.connect_timeout(timeout).response_timeout(timeout);
        }
        builder
    }

    /// A store on `url` with these options.
    pub async fn connect(self, url: &str) -> Result<RedisStore> {
        self.builder(url).connect().await
    }
}

/// A root namespace no other test of this process uses.
pub fn unique(label: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "test-{label}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(feature = "redis")]
/// A fresh store on the shared server of `kind`, in a root namespace of
/// its own.
pub async fn fresh(kind: Kind) -> RedisStore {
    let server = Server::shared(kind);
    Options::namespace(Some(&unique("contract")))
        .connect(&server.url())
        .await
        .expect("connect to the shared test server")
}

/// A fresh store on the shared cluster of `kind`, in a root namespace of
/// its own.
#[cfg(feature = "cluster")]
pub async fn fresh_cluster(kind: Kind) -> RedisStore {
    let cluster = cluster::Cluster::shared(kind);
    RedisStore::cluster_builder(cluster.seeds())
        .namespace(Some(&unique("cluster")))
        .connect()
        .await
        .expect("connect to the shared test cluster")
}
