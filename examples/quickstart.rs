//! A tour of kvstores on its embedded default, a FileStore: get and set,
//! expiry, renew-on-read, namespaces, and a registry with a default factory.
//!
//! ```text
//! cargo run --example quickstart [PATH]     # default ./kvstores-data/store.redb
//! ```
//!
//! Run it twice: the visit counter lives in the database file.

use std::sync::Arc;
use std::time::Duration;

use kvstores::{Bytes, FileStore, NamespacedStore, Store, StoreRegistry};

#[tokio::main]
async fn main() -> kvstores::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "kvstores-data/store.redb".to_owned());
    let store = FileStore::builder(&path).create_directories(true).open()?;
    println!("opened {store:?}");

    // Persistent state: this survives the process.
    let visits = match store.get("visits", None).await? {
        Some(n) => String::from_utf8_lossy(&n).parse::<u64>().unwrap_or(0) + 1,
        None => 1,
    };
    store
        .set("visits", Bytes::from(visits.to_string()), None)
        .await?;
    println!("visit number {visits} to this database");

    // get and set
    store
        .set("greeting", Bytes::from_static(b"hello"), None)
        .await?;
    println!(
        "get greeting       -> {:?}",
        store.get("greeting", None).await?
    );
    println!(
        "get missing        -> {:?}",
        store.get("missing", None).await?
    );

    // expiry
    store
        .set(
            "flash",
            Bytes::from_static(b"gone soon"),
            Some(Duration::from_millis(300)),
        )
        .await?;
    println!(
        "flash expires in   -> {:?}",
        store.expires_in("flash").await?
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    println!(
        "flash after 400 ms -> exists: {}",
        store.exists("flash").await?
    );

    // renew on read: reading a session keeps it alive
    store
        .set(
            "session",
            Bytes::from_static(b"{\"user\":42}"),
            Some(Duration::from_secs(60)),
        )
        .await?;
    store
        .get("session", Some(Duration::from_secs(3600)))
        .await?;
    println!(
        "session renewed    -> expires in {:?}",
        store.expires_in("session").await?
    );

    // namespaces: isolated, but delete_all on a parent reaches its children
    let app = store.with_namespace("app");
    let cache = app.with_namespace("cache");
    cache
        .set("greeting", Bytes::from_static(b"cached"), None)
        .await?;
    println!(
        "app/cache greeting -> {:?}",
        cache.get("greeting", None).await?
    );
    app.delete_all().await?;
    println!(
        "after app.delete_all: app/cache greeting exists: {}, root greeting exists: {}",
        cache.exists("greeting").await?,
        store.exists("greeting").await?
    );

    // a registry hands out named stores through a default factory
    let root = store.clone();
    let registry = StoreRegistry::with_default_factory(move |name| root.with_namespace(name));
    let limits = registry.get("rate-limits");
    limits
        .set(
            "203.0.113.9",
            Bytes::from_static(b"1"),
            Some(Duration::from_secs(60)),
        )
        .await?;
    println!(
        "registry rate-limits -> {:?}",
        registry.get("rate-limits").get("203.0.113.9", None).await?
    );
    println!(
        "same store both times: {}",
        Arc::ptr_eq(&limits, &registry.get("rate-limits"))
    );

    println!(
        "delete_expired removed {} entries",
        store.delete_expired().await?
    );
    Ok(())
}
