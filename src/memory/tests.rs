//! What only the map's internals show: that empty namespaces leave nothing
//! behind.

use std::time::Duration;

use super::MemoryStore;
use crate::{Bytes, ManualClock, NamespacedStore, Store};

/// Namespaces with entries in any shard, and the root's registered children.
fn footprint(store: &MemoryStore) -> (usize, usize, usize) {
    let (mut spaces, mut ring) = (0, 0);
    for shard in store.root.shards.shards.iter() {
        let shard = shard.read();
        spaces += shard.spaces.len();
        ring += shard.ring.len();
    }
    (spaces, ring, store.ns.registered_children())
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn a_namespace_emptied_by_deletes_frees_everything() {
    let root = MemoryStore::builder().max_entries(1_000_000).build();
    block_on(async {
        for i in 0..1_000 {
            let session = root.with_namespace(&format!("session-{i}"));
            session
                .set("a", Bytes::from_static(b"1"), None)
                .await
                .unwrap();
            session
                .set("b", Bytes::from_static(b"2"), None)
                .await
                .unwrap();
            session.delete("a").await.unwrap();
            session.delete("b").await.unwrap();
        }
    });
    let (spaces, ring, children) = footprint(&root);
    assert_eq!((spaces, children), (0, 0));
    // Stale CLOCK slots are compacted away, not kept for ever.
    assert!(ring <= 64 * root.root.shards.shards.len(), "{ring} slots");
}

#[test]
fn a_namespace_emptied_by_expiry_frees_everything() {
    let clock = ManualClock::new();
    let root = MemoryStore::builder().clock(clock.clone()).build();
    block_on(async {
        for i in 0..1_000 {
            let session = root.with_namespace(&format!("session-{i}"));
            let ttl = Some(Duration::from_millis(500));
            session
                .set("a", Bytes::from_static(b"1"), ttl)
                .await
                .unwrap();
        }
        // Entries keep their namespaces alive after the handles are gone.
        assert_eq!(footprint(&root).2, 1_000);
        clock.advance(Duration::from_secs(1));
        assert_eq!(root.delete_expired().await, 1_000);
    });
    assert_eq!(footprint(&root), (0, 0, 0));
}

#[test]
fn a_namespace_emptied_by_delete_all_frees_everything() {
    let root = MemoryStore::new();
    block_on(async {
        let tenant = root.with_namespace("tenant");
        for i in 0..100 {
            let child = tenant.with_namespace(&i.to_string());
            child
                .set("k", Bytes::from_static(b"v"), None)
                .await
                .unwrap();
        }
        drop(tenant);
        root.with_namespace("tenant").delete_all().await.unwrap();
    });
    assert_eq!(footprint(&root), (0, 0, 0));
}

#[test]
fn reading_a_namespace_that_never_had_keys_creates_nothing() {
    let root = MemoryStore::new();
    block_on(async {
        let never = root.with_namespace("never").with_namespace("written");
        assert_eq!(never.get("k", None).await.unwrap(), None);
        assert!(!never.exists("k").await.unwrap());
        never.delete("k").await.unwrap();
        never.delete_all().await.unwrap();
        assert_eq!(footprint(&root).0, 0);
    });
    // Only the handle held the namespace.
    assert_eq!(footprint(&root), (0, 0, 0));
}

#[test]
fn handles_of_one_path_share_one_namespace() {
    let root = MemoryStore::new();
    let a = root.with_namespace("a");
    let again = root.with_namespace("a");
    assert!(std::sync::Arc::ptr_eq(&a.ns, &again.ns));
    drop((a, again));
    assert_eq!(footprint(&root).2, 0);
}
