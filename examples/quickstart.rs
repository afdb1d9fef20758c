//! A tour of kvstores: get and set, expiry, renew-on-read, namespaces and a
//! registry with a default factory.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use std::time::Duration;

use kvstores::{Bytes, MemoryStore, NamespacedStore, Store, StoreRegistry};

#[tokio::main]
async fn main() -> kvstores::Result<()> {
    let store = MemoryStore::new();
    println!("store: {store:?}");

    // get and set
    store
        .set("greeting", Bytes::from_static(b"hello"), None)
        .await?;
    let greeting = store.get("greeting", None).await?;
    println!("get greeting       -> {:?}", greeting);
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

    // renew on read: a session read keeps it alive
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
    println!(
        "root greeting      -> {:?} (untouched)",
        store.get("greeting", None).await?
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
    let rate_limits = registry.get("rate-limits");
    rate_limits
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
        std::sync::Arc::ptr_eq(&rate_limits, &registry.get("rate-limits"))
    );

    let removed = store.delete_expired().await;
    println!("delete_expired removed {removed} entries");
    Ok(())
}
