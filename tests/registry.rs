//! StoreRegistry: names, the default factory, overriding, and concurrency.
#![cfg(feature = "memory")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use kvstores::{Bytes, Error, MemoryStore, NamespacedStore, Store, StoreRegistry};

#[test]
fn the_registry_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<StoreRegistry>();
}

#[tokio::test]
async fn the_default_factory_gives_each_name_its_own_memory_store() {
    let registry = StoreRegistry::new();
    let a = registry.get("a");
    let b = registry.get("b");
    a.set("k", Bytes::from_static(b"a"), None).await.unwrap();
    assert!(!b.exists("k").await.unwrap());
    assert!(Arc::ptr_eq(&a, &registry.get("a")));
    assert_eq!(
        registry.get("a").get("k", None).await.unwrap(),
        Some(Bytes::from_static(b"a"))
    );
}

#[tokio::test]
async fn a_custom_factory_receives_the_name() {
    let root = MemoryStore::new();
    let factory_root = root.clone();
    let registry =
        StoreRegistry::with_default_factory(move |name| factory_root.with_namespace(name));
    registry
        .get("sessions")
        .set("id", Bytes::from_static(b"v"), None)
        .await
        .unwrap();
    assert!(root.with_namespace("sessions").exists("id").await.unwrap());
}

#[test]
fn register_refuses_a_taken_name_and_keeps_the_first_store() {
    let registry = StoreRegistry::new();
    registry
        .register("cache", MemoryStore::new(), false)
        .unwrap();
    let first = registry.get("cache");
    let err = registry
        .register("cache", MemoryStore::new(), false)
        .unwrap_err();
    assert!(
        matches!(&err, Error::AlreadyRegistered { name } if name == "cache"),
        "{err:?}"
    );
    assert!(err.to_string().contains("cache"));
    assert!(Arc::ptr_eq(&first, &registry.get("cache")));
}

#[test]
fn a_name_created_by_get_counts_as_taken() {
    let registry = StoreRegistry::new();
    registry.get("made-by-factory");
    assert!(registry.contains("made-by-factory"));
    assert!(matches!(
        registry.register("made-by-factory", MemoryStore::new(), false),
        Err(Error::AlreadyRegistered { .. })
    ));
}

#[tokio::test]
async fn allow_override_replaces_the_store() {
    let registry = StoreRegistry::new();
    let first = MemoryStore::new();
    let second = MemoryStore::new();
    second.set("marker", Bytes::new(), None).await.unwrap();
    registry.register("s", first, false).unwrap();
    registry.register("s", second, true).unwrap();
    assert!(registry.get("s").exists("marker").await.unwrap());
    assert!(registry.get_registered("unknown").is_none());
    assert!(!registry.contains("unknown"));
}

#[test]
fn many_threads_asking_for_a_new_name_share_one_factory_call() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let registry = Arc::new(StoreRegistry::with_default_factory(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        // Widen the window in which a second call could happen.
        std::thread::sleep(std::time::Duration::from_millis(20));
        MemoryStore::new()
    }));
    let barrier = Arc::new(Barrier::new(16));
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (registry, barrier) = (registry.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                registry.get("contended")
            })
        })
        .collect();
    let stores: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(stores.iter().all(|s| Arc::ptr_eq(s, &stores[0])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usable_from_many_tasks() {
    let registry = Arc::new(StoreRegistry::new());
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let registry = registry.clone();
            tokio::spawn(async move {
                let store = registry.get(&format!("store-{}", i % 8));
                store
                    .set(&format!("k{i}"), Bytes::new(), None)
                    .await
                    .unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    for i in 0..64 {
        assert!(
            registry
                .get(&format!("store-{}", i % 8))
                .exists(&format!("k{i}"))
                .await
                .unwrap()
        );
    }
}

#[test]
fn debug_lists_the_names() {
    let registry = StoreRegistry::new();
    registry.get("b");
    registry.get("a");
    assert_eq!(
        format!("{registry:?}"),
        r#"StoreRegistry { names: ["a", "b"], .. }"#
    );
}

/// A store of the user's own that implements only `Store`.
#[derive(Clone, Default)]
struct PlainStore(MemoryStore);

#[async_trait::async_trait]
impl Store for PlainStore {
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> kvstores::Result<()> {
        self.0.set(key, value, ttl).await
    }
    async fn get(&self, key: &str, renew: Option<Duration>) -> kvstores::Result<Option<Bytes>> {
        self.0.get(key, renew).await
    }
    async fn delete(&self, key: &str) -> kvstores::Result<()> {
        self.0.delete(key).await
    }
    async fn delete_all(&self) -> kvstores::Result<()> {
        self.0.delete_all().await
    }
    async fn exists(&self, key: &str) -> kvstores::Result<bool> {
        self.0.exists(key).await
    }
    async fn expires_in(&self, key: &str) -> kvstores::Result<Option<Duration>> {
        self.0.expires_in(key).await
    }
}

#[tokio::test]
async fn get_full_hands_out_the_same_store_with_every_ability() {
    let registry = StoreRegistry::new();
    let full = registry.get_full("rate_limit").unwrap();
    assert_eq!(full.increment("client", 1, None).await.unwrap(), 1);
    let plain = registry.get("rate_limit");
    assert_eq!(
        plain.get("client", None).await.unwrap(),
        Some(Bytes::from_static(b"1"))
    );
    let upcast: Arc<dyn Store> = full.clone();
    assert!(Arc::ptr_eq(&upcast, &plain));
    assert!(Arc::ptr_eq(
        &full,
        &registry.get_full("rate_limit").unwrap()
    ));
}

#[tokio::test]
async fn backends_from_the_plain_factory_and_register_are_full_stores() {
    let root = MemoryStore::new();
    let factory_root = root.clone();
    let registry =
        StoreRegistry::with_default_factory(move |name| factory_root.with_namespace(name));
    let sessions = registry.get_full("sessions").unwrap();
    assert!(
        sessions
            .set_if_absent("id", Bytes::from_static(b"v"), None)
            .await
            .unwrap()
    );
    assert!(root.with_namespace("sessions").exists("id").await.unwrap());

    registry
        .register("cache", MemoryStore::new(), false)
        .unwrap();
    assert!(registry.get_full("cache").is_ok());
}

#[tokio::test]
async fn a_plain_store_of_ones_own_is_handed_out_by_get_but_refused_by_get_full() {
    let registry = StoreRegistry::new();
    registry
        .register("mine", PlainStore::default(), false)
        .unwrap();
    registry
        .get("mine")
        .set("k", Bytes::from_static(b"v"), None)
        .await
        .unwrap();
    let err = registry.get_full("mine").err().unwrap();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("\"mine\""), "{err}");

    let plain_factory = StoreRegistry::with_default_factory(|_| PlainStore::default());
    assert!(matches!(
        plain_factory.get_full("any"),
        Err(Error::Unsupported { .. })
    ));
    assert!(
        plain_factory
            .get("any")
            .set("k", Bytes::new(), None)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn register_full_and_the_full_factory_take_any_full_store() {
    // An Arc around a backend is a FullStore, but not one the plain
    // signatures can recognise.
    let registry = StoreRegistry::with_full_factory(|_| Arc::new(MemoryStore::new()));
    registry
        .register("wrapped", Arc::new(MemoryStore::new()), false)
        .unwrap();
    assert!(matches!(
        registry.get_full("wrapped"),
        Err(Error::Unsupported { .. })
    ));
    registry
        .register_full("wrapped", Arc::new(MemoryStore::new()), true)
        .unwrap();
    assert_eq!(
        registry
            .get_full("wrapped")
            .unwrap()
            .increment("n", 2, None)
            .await
            .unwrap(),
        2
    );
    assert!(matches!(
        registry.register_full("wrapped", MemoryStore::new(), false),
        Err(Error::AlreadyRegistered { .. })
    ));
    assert!(registry.get_full("from-factory").is_ok());
}
